#!/usr/bin/env python
"""Mutation testing with mutmut: mutate the metric, imaging and DICOM code and run the tests that cover it;
print the count of killed and surviving mutants and list the survivors. By hand (`make mutation`), not in CI:
it takes a while. The settings are `[tool.mutmut]` in pyproject.toml.

mutmut copies the project into `mutants/` and imports the mutated code from there. It names mutants after the
module path of their file, stripping only `src/`, while our package lives in `lib/`; so this wrapper shows mutmut
the library through a temporary `src -> lib` link (removed afterwards) and puts `mutants/src` ahead of the editable
install on the import path.
"""
import os, shutil, sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    os.chdir(ROOT)
    if '--fresh' in sys.argv: shutil.rmtree(ROOT/'mutants', ignore_errors=True)
    link = ROOT/'src'
    made = not link.exists()
    if made: link.symlink_to('lib', target_is_directory=True)
    (ROOT/'mutants'/'src').mkdir(parents=True, exist_ok=True)   # exists before Python caches a finder for it
    sys.path.insert(0, str(ROOT/'mutants'/'src'))           # the mutated copy shadows the editable install
    os.environ['PYTHONPATH'] = os.pathsep.join([str(ROOT/'mutants'/'src'), os.environ.get('PYTHONPATH', '')])
    from mutmut.__main__ import cli
    try: cli(['run', '--max-children', str(os.cpu_count() or 2)], standalone_mode=False)
    except SystemExit: pass
    finally:
        if made: link.unlink()
    import json
    from mutmut.stats import status_by_exit_code
    counts, survivors = Counter(), []
    for meta in sorted((ROOT/'mutants').rglob('*.py.meta')):
        for name, code in json.loads(meta.read_text())['exit_code_by_key'].items():
            st = status_by_exit_code[code]; counts[st] += 1
            if st == 'survived': survivors.append(name)
    for s in sorted(survivors): print('survived:', s)
    print(' '.join(f'{k}={v}' for k, v in sorted(counts.items())), f'total={sum(counts.values())}')


if __name__ == '__main__': main()
