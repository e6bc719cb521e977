import subprocess, sys
from pathlib import Path
import pytest
from medrepro import core, sample


@pytest.fixture
def toy():
    calls = []
    @sample.register('toy-test', n=2)
    def _gen(dest, n, seed):
        "Toy generator."
        calls.append(n)
        for i in range(n): (dest/f'{i}.txt').write_text(f'{seed}:{i}')
        if seed == 666: raise RuntimeError('generator crashed')
    yield calls
    sample._REGISTRY.pop('toy-test')


def test_generate_is_deterministic_and_atomic(tmp_path, toy):
    a = sample.generate('toy-test', tmp_path/'a', seed=1)
    b = sample.generate('toy-test', tmp_path/'b', seed=1)
    assert sorted(p.read_text() for p in a.glob('*.txt')) == sorted(p.read_text() for p in b.glob('*.txt')) == ['1:0', '1:1']
    with pytest.raises(RuntimeError):
        sample.generate('toy-test', tmp_path/'c', seed=666)
    assert not (tmp_path/'c').exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a', 'b']   # no half-written temp folder


def test_generate_keeps_existing_unless_overwrite(tmp_path, toy):
    sample.generate('toy-test', tmp_path/'a', n=3)
    sample.generate('toy-test', tmp_path/'a', n=5)
    assert len(list((tmp_path/'a').glob('*.txt'))) == 3
    sample.generate('toy-test', tmp_path/'a', n=5, overwrite=True)
    assert len(list((tmp_path/'a').glob('*.txt'))) == 5


def test_unknown_dataset(tmp_path):
    with pytest.raises(KeyError, match='unknown sample data set'):
        sample.generate('no-such-set', tmp_path/'x')


def test_cli_lists_generators():
    r = subprocess.run([sys.executable, '-m', 'medrepro.sample', '--list-sets'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    names = list(sample.generators())
    assert names, 'no generators registered'
    for name in names: assert name in r.stdout


def test_overwrite_never_deletes_a_folder_it_did_not_write(tmp_path, toy):
    "Issue 24 (1): --overwrite on a real data set (or a user's folder) refuses and deletes nothing."
    real = tmp_path/'mine'; (real/'stage1_train').mkdir(parents=True); (real/'notes.txt').write_text('my notes')
    with pytest.raises(ValueError, match='not a folder medrepro generated'):
        sample.generate('toy-test', real, overwrite=True)
    assert (real/'notes.txt').read_text() == 'my notes' and (real/'stage1_train').is_dir()


def test_never_writes_under_data_raw(tmp_path, toy, monkeypatch):
    "Issue 24 (1): `medrepro-sample --dest data/raw --overwrite` is refused before anything is touched."
    monkeypatch.setenv('MEDREPRO_DATA', str(tmp_path/'data'))
    raw = tmp_path/'data'/'raw'/'toy-test'; raw.mkdir(parents=True); (raw/'real.png').write_bytes(b'x')
    with pytest.raises(ValueError, match='refusing to write sample data under'):
        sample.generate('toy-test', raw, overwrite=True)
    assert (raw/'real.png').exists()
    r = subprocess.run([sys.executable, '-m', 'medrepro.sample', '--dataset', 'toy-test', '--dest', str(tmp_path/'data'/'raw'), '--overwrite'],
                       capture_output=True, text=True, env={**__import__('os').environ, 'MEDREPRO_DATA': str(tmp_path/'data')})
    assert r.returncode != 0 and (raw/'real.png').exists()
