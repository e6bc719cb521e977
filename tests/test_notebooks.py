"""Every numbered notebook: a title, `#| default_exp`, then ONE papermill parameters cell whose every line papermill sees;
every profile setting names a parameter a matching notebook declares."""
import fnmatch, json
from pathlib import Path
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted((ROOT/'nbs').glob('[0-9][0-9]_*.ipynb'))
PROFILES = sorted((ROOT/'params').glob('*/*.yaml'))


def _declared(nb):
    import papermill as pm
    return set(pm.inspect_notebook(str(nb)))


def test_every_study_has_notebooks():
    stems = [p.stem for p in NBS]
    for first in ['00_core', '10_rsna_dicom', '30_dsb.data']: assert first in stems
    assert sorted(p.stem for p in (ROOT/'nbs').glob('3*_dsb.*.ipynb')) == ['30_dsb.data', '30a_dsb.sample', '31_dsb.eda', '32_dsb.model', '33_dsb.train', '34_dsb.evaluate']


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
