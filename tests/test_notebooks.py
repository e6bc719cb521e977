"""Every numbered notebook: a title, `#| default_exp`, then ONE papermill parameters cell whose every line papermill sees;
every profile setting names a parameter a matching notebook declares."""
import fnmatch, json, re
from pathlib import Path
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if re.match(r'^\d\d[a-z]?_', p.name))
PROFILES = sorted((ROOT/'params').glob('*/*.yaml'))


def _declared(nb):
    import papermill as pm
    return set(pm.inspect_notebook(str(nb)))


def test_every_study_has_notebooks():
    from medrepro.sample import studies
    stems = [p.stem for p in NBS]
    assert '00_core' in stems
    for study in studies():
        assert any(re.match(rf'^\d\d[a-z]?_{study}\.', s) for s in stems), f'study {study} has no notebook NN_{study}.<module>'


@pytest.mark.parametrize('nb', NBS, ids=lambda p: p.stem)
def test_one_notebook_one_module(nb):
    "A notebook exports to exactly one module, and its name says which: NN_<module>.ipynb / NN_<study>.<module>.ipynb."
    srcs = [''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code']
    exps = [m for s in srcs for m in re.findall(r'^#\|\s*default_exp[ \t]+(\S+)', s, re.M)]
    others = [m for s in srcs for m in re.findall(r'^#\|\s*export[si]?[ \t]+(\S+)', s, re.M)]
    assert len(exps) == 1, f'{nb.name}: {len(exps)} default_exp cells'
    assert not others, f'{nb.name}: exports into other modules {others}'
    assert re.sub(r'^\d\d[a-z]?_', '', nb.stem) == exps[0], f'{nb.name} exports {exps[0]}: name the notebook NN_{exps[0]}.ipynb'


@pytest.mark.parametrize('nb', NBS, ids=lambda p: p.stem)
def test_structure_and_parameters(nb):
    cells = json.loads(nb.read_text())['cells']
    assert cells[0]['cell_type'] == 'markdown' and ''.join(cells[0]['source']).startswith('# ')
    assert ''.join(cells[1]['source']).startswith('#| default_exp ')
    tagged = [c for c in cells if 'parameters' in c.get('metadata', {}).get('tags', [])]
    assert len(tagged) == 1 and tagged[0] is cells[2]
    src = ''.join(tagged[0]['source'])
    names = [l.split('=')[0].strip() for l in src.splitlines() if '=' in l and not l.lstrip().startswith('#')]
    assert set(names) == _declared(nb)   # papermill parses every line (a second '=' in a comment would hide one)


@pytest.mark.parametrize('path', PROFILES, ids=lambda p: f'{p.parent.name}/{p.stem}')
def test_profiles_only_set_declared_parameters(path):
    spec = yaml.safe_load(path.read_text()) or {}
    declared = {nb.stem: _declared(nb) for nb in NBS}
    for pat, vals in spec.items():
        hit = [s for s in declared if fnmatch.fnmatch(s, pat)]
        assert hit, f'{path.name}: {pat} matches no notebook'
        for k in vals: assert any(k in declared[s] for s in hit), f'{path}: {pat}.{k} is no notebook parameter'


def test_every_notebook_opens_with_the_project_kernel():
    "Issue 28: JupyterLab selects the project's kernel (`medrepro`, installed by make setup), not whichever `python3` the machine has."
    bad = [nb.name for nb in NBS if json.loads(nb.read_text())['metadata'].get('kernelspec', {}).get('name') != 'medrepro']
    assert not bad, f'{bad}: run scripts/set_kernel.py'
