"DSB notebooks: one papermill parameters cell after the title, and every profile setting names a declared parameter."
import json
from pathlib import Path
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted((ROOT/'nbs').glob('3*_dsb_*.ipynb'))


def _declared(nb):
    import papermill as pm
    return set(pm.inspect_notebook(str(nb)))


def test_dsb_notebooks_exist():
    assert [p.stem for p in NBS][:5] == ['30_dsb_data', '31_dsb_eda', '32_dsb_model', '33_dsb_train', '34_dsb_evaluate']


@pytest.mark.parametrize('nb', NBS, ids=lambda p: p.stem)
def test_structure_and_parameters(nb):
    cells = json.loads(nb.read_text())['cells']
    assert cells[0]['cell_type'] == 'markdown' and ''.join(cells[0]['source']).startswith('# ')
    assert ''.join(cells[1]['source']).startswith('#| default_exp dsb.')
    tagged = [c for c in cells if 'parameters' in c.get('metadata', {}).get('tags', [])]
    assert len(tagged) == 1 and tagged[0] is cells[2]
    src = ''.join(tagged[0]['source'])
    names = [l.split('=')[0].strip() for l in src.splitlines() if '=' in l and not l.lstrip().startswith('#')]
    assert set(names) == _declared(nb)   # papermill parses every line (a second '=' in a comment would hide one)


@pytest.mark.parametrize('profile', ['paper', 'real'])
def test_profiles_only_set_declared_parameters(profile):
    import fnmatch
    spec = yaml.safe_load((ROOT/'params'/profile/'dsb.yaml').read_text())
    declared = {nb.stem: _declared(nb) for nb in NBS}
    for pat, vals in spec.items():
        hit = [s for s in declared if fnmatch.fnmatch(s, pat)]
        assert hit, pat
        for k in vals: assert any(k in declared[s] for s in hit), f'{profile}: {pat}.{k} is no notebook parameter'
