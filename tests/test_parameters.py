"""One parameter vocabulary (issue 28): every name in a notebook's `parameters` cell is written down once, in
params/vocabulary.yaml, with the types its values may take, and means the same in every notebook."""
import ast, json, re
from pathlib import Path
import pytest, yaml

ROOT = Path(__file__).resolve().parents[1]
VOCAB = yaml.safe_load((ROOT/'params'/'vocabulary.yaml').read_text())
NBS = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if re.match(r'^\d\d[a-z]?_', p.name))
TYPES = {'int': int, 'float': float, 'str': str, 'bool': bool, 'list': (list, tuple), 'none': type(None)}


def _params(nb) -> dict:
    cell = next(c for c in json.loads(nb.read_text())['cells'] if 'parameters' in c.get('metadata', {}).get('tags', []))
    return {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(''.join(cell['source'])).body if isinstance(n, ast.Assign)}


PARAMS = {nb.stem: _params(nb) for nb in NBS}


def _ok(v, kinds) -> bool:
    if isinstance(v, bool): return 'bool' in kinds                          # True is an int to Python, not to us
    if isinstance(v, int) and 'float' in kinds: return True
    return any(isinstance(v, TYPES[k]) for k in kinds)


@pytest.mark.parametrize('nb', sorted(PARAMS))
def test_every_parameter_is_in_the_vocabulary_with_its_type(nb):
    for k, v in PARAMS[nb].items():
        assert k in VOCAB, f'{nb}: parameter {k!r} is not in params/vocabulary.yaml (add it, or use the name that means this)'
        assert _ok(v, VOCAB[k]['type']), f"{nb}: {k} = {v!r} is not of a type params/vocabulary.yaml allows for it ({VOCAB[k]['type']})"


def test_the_vocabulary_names_only_what_notebooks_use():
    used = {k for p in PARAMS.values() for k in p}
    assert not set(VOCAB) - used, f'params/vocabulary.yaml lists unused names: {sorted(set(VOCAB) - used)}'
    assert all(VOCAB[k].get('meaning') for k in VOCAB)


def test_shared_names_take_the_same_values_everywhere():
    for nb, p in PARAMS.items():
        if 'seed' in p: assert p['seed'] == 42, f'{nb}: seed defaults to {p["seed"]}, 42 everywhere else'
        if 'source' in p: assert p['source'] in ('sample', 'raw'), nb
        if 'threads' in p: assert p['threads'] is None or p['threads'] >= 1, f'{nb}: threads=0; None means torch\'s default'
        if 'split' in p:
            parts = [s.strip() for s in str(p['split']).split(',')]
            assert set(parts) <= {'train', 'valid', 'test', 'all'}, f"{nb}: split={p['split']!r}: use 'train', 'valid', 'test', 'all'"
        if 'device' in p: assert p['device'] is None or isinstance(p['device'], str), nb
