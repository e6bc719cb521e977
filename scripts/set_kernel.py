"""Set every notebook's kernel to the project's, `medrepro` (the kernelspec `make setup` installs, scripts/install_kernel.py),
so JupyterLab opens them with this environment's Python whatever other `python3` kernels the machine has.
The display name is the kernel's name, as nbdev-clean writes it (nbdev/clean.py sets `display_name = name`), so
`make sync-check` stays clean; JupyterLab shows the installed kernelspec's own name, "Python (medrepro)". Run it once,
then `make export` and commit.

    python scripts/set_kernel.py [notebooks ...]      # default: nbs/*.ipynb; --check: exit 1 if any differs, change nothing
"""
import argparse, json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNELSPEC = {'display_name': 'medrepro', 'language': 'python', 'name': 'medrepro'}   # display_name: as nbdev-clean keeps it


def set_kernel(path, check=False) -> bool:
    "Give notebook `path` the project's kernelspec; True if it had another one. Other bytes stay as nbdev-clean wrote them."
    text = Path(path).read_text(encoding='utf-8')
    nb = json.loads(text)
    if nb.get('metadata', {}).get('kernelspec') == KERNELSPEC: return False
    if not check:
        nb.setdefault('metadata', {})['kernelspec'] = dict(KERNELSPEC)
        Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')   # nbdev-clean's layout
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('notebooks', nargs='*', type=Path)
    ap.add_argument('--check', action='store_true', help='change nothing; exit 1 if a notebook has another kernel')
    a = ap.parse_args(argv)
    nbs = a.notebooks or sorted((ROOT/'nbs').glob('*.ipynb'))
    changed = [p for p in nbs if set_kernel(p, check=a.check)]
    for p in changed: print(f"{p}: {'has another kernel' if a.check else 'kernel set to medrepro'}")
    if a.check and changed: sys.exit(1)


if __name__ == '__main__': main()
