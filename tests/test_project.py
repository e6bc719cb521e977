"The project's own files: dependencies named alike in pyproject and environment.yml (bounds too: test_environment.py), Makefile targets, layout."
import re, subprocess, tomllib
from pathlib import Path
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req):
    return re.split(r'[\s<>=!~\[;]', req.strip(), maxsplit=1)[0].lower().replace('_', '-')


def test_environment_yml_names_the_same_dependencies():
    proj = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']
    want = {_name(r) for r in proj['dependencies'] + proj['optional-dependencies']['dev']}
    env = yaml.safe_load((ROOT/'environment.yml').read_text())
    pip = next(d['pip'] for d in env['dependencies'] if isinstance(d, dict) and 'pip' in d)
    have = {_name(r) for r in pip if not r.startswith('-')}            # not -e .[dev], -c constraints.txt
    assert want == have, f'only in pyproject: {sorted(want - have)}; only in environment.yml: {sorted(have - want)}'
    assert any(r.startswith('-e') and '[dev]' in r for r in pip)
    assert any(str(d).startswith('python=3.11') for d in env['dependencies'])
    # the torch pins must agree
    pins = {_name(r): r for r in proj['dependencies']}
    assert pins['torch'].replace(' ', '') in [p.replace(' ', '') for p in pip]


def test_nbdev_config():
    cfg = tomllib.loads((ROOT/'pyproject.toml').read_text())['tool']['nbdev']
    assert cfg['lib_path'] == 'lib/medrepro' and 'tags' in cfg['allowed_cell_metadata_keys']


def test_layout_and_make_help():
    for p in ['nbs', 'data', 'lib/medrepro', 'reports', 'tests', 'params/smoke', 'params/paper', 'environment.yml', 'README.md', 'data/README.md', '.ci/run']:
        assert (ROOT/p).exists(), p
    out = subprocess.run(['make', '-s', 'help'], cwd=ROOT, capture_output=True, text=True).stdout
    for t in ['setup', 'data', 'reports', 'report', 'test', 'export', 'lab']:
        assert re.search(rf'make {t}\b', out), t


def test_library_is_tracked_not_ignored():
    r = subprocess.run(['git', 'check-ignore', '-q', 'lib/medrepro/core.py'], cwd=ROOT)
    assert r.returncode == 1, 'lib/medrepro is git-ignored: the exported library must be committed'


def test_committed_notebooks_carry_no_outputs():
    "The readable copy with figures is the executed report (reports/notebooks/*.html); nbs/ holds the source only."
    import json
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        cells = json.loads(nb.read_text())['cells']
        with_out = [i for i, c in enumerate(cells) if c.get('outputs') or c.get('execution_count')]
        assert not with_out, f'{nb.name}: cells {with_out} carry outputs; run make export (nbdev-clean) and do not commit executed notebooks'
