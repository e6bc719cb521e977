import subprocess, sys
from pathlib import Path
import pytest
from medrepro import core, sample


@pytest.fixture
def toy():
    calls = []
    @core.register('toy-test', n=2)
    def _gen(dest, n, seed):
        "Toy generator."
        calls.append(n)
        for i in range(n): (dest/f'{i}.txt').write_text(f'{seed}:{i}')
        if seed == 666: raise RuntimeError('generator crashed')
    yield calls
    core._REGISTRY.pop('toy-test')


def test_generate_is_deterministic_and_atomic(tmp_path, toy):
    a = core.generate('toy-test', tmp_path/'a', seed=1)
    b = core.generate('toy-test', tmp_path/'b', seed=1)
    assert sorted(p.read_text() for p in a.iterdir()) == sorted(p.read_text() for p in b.iterdir()) == ['1:0', '1:1']
    with pytest.raises(RuntimeError):
        core.generate('toy-test', tmp_path/'c', seed=666)
    assert not (tmp_path/'c').exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a', 'b']   # no half-written temp folder


def test_generate_keeps_existing_unless_overwrite(tmp_path, toy):
    core.generate('toy-test', tmp_path/'a', n=3)
    core.generate('toy-test', tmp_path/'a', n=5)
    assert len(list((tmp_path/'a').iterdir())) == 3
    core.generate('toy-test', tmp_path/'a', n=5, overwrite=True)
    assert len(list((tmp_path/'a').iterdir())) == 5


def test_unknown_dataset(tmp_path):
    with pytest.raises(KeyError, match='unknown sample data set'):
        core.generate('no-such-set', tmp_path/'x')


def test_cli_lists_generators():
    r = subprocess.run([sys.executable, '-m', 'medrepro.sample', '--list-sets'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    names = list(core.generators())
    assert names, 'no generators registered'
    for name in names: assert name in r.stdout
