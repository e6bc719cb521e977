"""The library's import graph: core <- shared modules <- study packages; no cycles, no study importing another,
no private names imported across modules, no function-local imports of the library (the way cycles get dodged)."""
import ast
from pathlib import Path
import pytest

LIB = Path(__file__).resolve().parents[1]/'lib'/'medrepro'
# discovered, not listed: every top-level module but core is the shared layer, every sub-package a study
SHARED = {f.stem for f in LIB.glob('*.py') if f.stem not in ('__init__', '_modidx', 'core')}
STUDIES = {d.name for d in LIB.iterdir() if (d/'__init__.py').exists()}
SKELETON = {'sample', 'data', 'eda', 'model', 'train', 'evaluate'}   # every study has these modules


def _modname(path: Path) -> str:
    rel = path.relative_to(LIB.parent).with_suffix('')
    parts = rel.parts[:-1] if rel.name == '__init__' else rel.parts
    return '.'.join(parts)


def _resolve(mod: str, node: ast.ImportFrom, is_pkg: bool) -> str:
    if node.level == 0: return node.module or ''
    base = mod.split('.') if is_pkg else mod.split('.')[:-1]
    base = base[:len(base) - (node.level - 1)]
    return '.'.join(base + ([node.module] if node.module else []))


def import_graph():
    "module -> list of (imported medrepro module, names, top_level) for every library module."
    graph = {}
    for f in sorted(LIB.rglob('*.py')):
        if f.name == '_modidx.py': continue
        mod, tree = _modname(f), ast.parse(f.read_text())
        top = {id(n) for n in tree.body} | {id(n) for s in tree.body if isinstance(s, (ast.If, ast.Try)) for n in ast.walk(s)}
        edges = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                edges += [(a.name, [], id(node) in top) for a in node.names if a.name.startswith('medrepro')]
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(mod, node, f.name == '__init__.py')
                if not target.startswith('medrepro'): continue
                names = [a.name for a in node.names]
                subs = [f'{target}.{n}' for n in names if (LIB.parent/f'{target}.{n}'.replace('.', '/')).with_suffix('.py').exists()]
                edges += [(s, [], id(node) in top) for s in subs] or [(target, names, id(node) in top)]
        graph[mod] = edges
    return graph


def layer(mod: str):
    parts = mod.split('.')
    if len(parts) == 1: return ('root', None)
    if parts[1] == 'core': return ('core', None)
    if parts[1] in SHARED: return ('shared', None)
    if parts[1] in STUDIES: return ('study', parts[1])
    return ('unknown', parts[1])


GRAPH = import_graph()


@pytest.mark.parametrize('study', sorted(STUDIES))
def test_every_study_has_the_skeleton(study):
    have = {f.stem for f in (LIB/study).glob('*.py')}
    assert SKELETON <= have, f'medrepro.{study} lacks {sorted(SKELETON - have)} (see CONTRIBUTING.md)'


def test_graph_found_the_library():
    assert {'medrepro.core', 'medrepro.imaging', 'medrepro.metrics'} <= set(GRAPH)
    assert any(layer(m)[0] == 'study' for m in GRAPH)


@pytest.mark.parametrize('mod', sorted(GRAPH))
def test_imports_point_down_the_layers(mod):
    kind, study = layer(mod)
    assert kind != 'unknown', f'{mod}: not a known layer (a top-level module is shared, a sub-package a study)'
    for target, names, _ in GRAPH[mod]:
        tkind, tstudy = layer(target)
        if target == 'medrepro': continue
        if kind == 'core': assert False, f'{mod} imports {target}: core imports nothing from the library'
        if kind == 'shared': assert tkind in ('core', 'shared'), f'{mod} (shared) imports {target} (a study)'
        if kind == 'study':
            assert tkind in ('core', 'shared') or tstudy == study, f'{mod} imports {target}: a study never imports another study'
        private = [n for n in names if n.startswith('_')]
        assert not private or target == mod, f'{mod} imports private {private} from {target}'


@pytest.mark.parametrize('mod', sorted(GRAPH))
def test_no_function_local_imports_of_the_library(mod):
    local = [t for t, _, top in GRAPH[mod] if not top and t != 'medrepro']
    assert not local, f'{mod} imports {local} inside a function (move the import to the top, or the code to the right layer)'


def test_no_import_cycles():
    edges = {m: {t for t, _, _ in e if t in GRAPH and t != m} for m, e in GRAPH.items()}
    state, stack = {}, []
    def visit(m):
        state[m] = 'open'; stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 'open': raise AssertionError('import cycle: ' + ' -> '.join(stack[stack.index(t):] + [t]))
            if t not in state: visit(t)
        state[m] = 'done'; stack.pop()
    for m in sorted(edges):
        if m not in state: visit(m)


def test_the_checker_catches_what_it_should():
    "The layer names and relative-import resolution the rules rely on, on small cases."
    assert layer('medrepro.dsb.train') == ('study', 'dsb') and layer('medrepro.imaging') == ('shared', None)
    node = ast.parse('from ..core import x').body[0]
    assert _resolve('medrepro.dsb.data', node, False) == 'medrepro.core'
    node = ast.parse('from .data import y').body[0]
    assert _resolve('medrepro.dsb.train', node, False) == 'medrepro.dsb.data'
