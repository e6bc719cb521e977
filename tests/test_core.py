import os
from pathlib import Path
import pandas as pd, pytest, torch
from medrepro import core
from medrepro.core import DataError, atomic_write, cache_dir, data_root, reports_dir, save_table, get_device, seed_everything
from medrepro.data import dataset_path


def test_project_root_has_pyproject():
    assert (core.project_root()/'pyproject.toml').exists()


def test_data_root_order(monkeypatch, tmp_path):
    monkeypatch.delenv('MEDREPRO_DATA', raising=False)
    assert data_root() == core.project_root()/'data'
    monkeypatch.setenv('MEDREPRO_DATA', str(tmp_path/'env'))
    assert data_root() == tmp_path/'env'
    assert data_root(tmp_path/'arg') == tmp_path/'arg'


def test_dataset_path_missing_raw_names_folder(tmp_path):
    with pytest.raises(DataError, match='raw/nope'):
        dataset_path('nope', source='raw', root=tmp_path)
    with pytest.raises(DataError, match='does not exist'):
        dataset_path('x', path=tmp_path/'missing')


def test_reports_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv('MEDREPRO_REPORTS', str(tmp_path/'r'))
    d = reports_dir('dsb')
    assert d == tmp_path/'r'/'dsb' and d.is_dir()


def test_cache_dir_is_under_the_data_root_not_the_reports(tmp_path, monkeypatch):
    monkeypatch.setenv('MEDREPRO_DATA', str(tmp_path/'data'))
    monkeypatch.setenv('MEDREPRO_REPORTS', str(tmp_path/'reports'))
    d = cache_dir('rsna')
    assert d == tmp_path/'data'/'cache'/'rsna' and d.is_dir()
    assert not d.is_relative_to(reports_dir('rsna').parent)
    assert cache_dir('isic', root=tmp_path/'elsewhere') == tmp_path/'elsewhere'/'cache'/'isic'


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path/'a.csv') as tmp:
            tmp.write_text('half'); raise RuntimeError('boom')
    assert list(tmp_path.iterdir()) == []
    save_table(pd.DataFrame({'x': [1]}), tmp_path/'a.csv')
    assert [p.name for p in tmp_path.iterdir()] == ['a.csv']
    assert pd.read_csv(tmp_path/'a.csv').x.tolist() == [1]


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    p = tmp_path/'keep.txt'; p.write_text('old')
    with pytest.raises(ValueError):
        with atomic_write(p) as tmp:
            tmp.write_text('new'); raise ValueError
    assert p.read_text() == 'old'


def test_device_and_seed():
    assert get_device('cpu').type == 'cpu'
    assert get_device().type in ('cpu', 'cuda', 'mps')
    seed_everything(3); a = torch.randn(4)
    seed_everything(3); b = torch.randn(4)
    assert torch.equal(a, b)


def test_data_error_message_and_pickling():
    import pickle
    e = DataError('x/y.png', 'truncated')
    assert str(e) == 'x/y.png: truncated' and isinstance(e, ValueError)
    e2 = pickle.loads(pickle.dumps(e))      # raised inside a process pool, re-raised in the parent
    assert str(e2) == str(e) and e2.path == e.path and e2.problem == 'truncated'


# ---- the one cache, the one checkpoint convention, parameter checks ----
import numpy as np, torch, warnings
from medrepro.core import cached, cache_path, save_model, load_model, ModelConfig, register_model, check_params, Param, DataError


@register_model('test_linear')
def _test_linear(n_in=3, n_out=2): return torch.nn.Linear(n_in, n_out)


def test_save_model_roundtrip_bytes_and_errors(tmp_path):
    m = _test_linear(3, 2)
    save_model(tmp_path/'a', m, ModelConfig('test_linear', {'n_in': 3, 'n_out': 2}, meta={'split': [1, 2]}))
    m2, cfg = load_model(tmp_path/'a')
    assert torch.equal(m.weight, m2.weight) and cfg.meta == {'split': [1, 2]} and cfg.module == __name__
    save_model(tmp_path/'b', m, dict(arch='test_linear', params={'n_in': 3, 'n_out': 2}))
    assert (tmp_path/'a'/'model.pth').read_bytes() == (tmp_path/'b'/'model.pth').read_bytes()   # byte-reproducible
    with pytest.raises(ValueError, match='does not fit its builder'):
        save_model(tmp_path/'c', m, ModelConfig('test_linear', {'width': 3}))
    with pytest.raises(RuntimeError, match='size mismatch'):
        save_model(tmp_path/'c', m, ModelConfig('test_linear', {'n_in': 4, 'n_out': 2}))
    assert not (tmp_path/'c').exists()                                                  # nothing half-written
    (tmp_path/'a'/'model.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(DataError, match='model.pth: not a readable weights-only checkpoint'):
        load_model(tmp_path/'a')
    with pytest.raises(FileNotFoundError, match='no saved model'):
        load_model(tmp_path/'missing')


def test_cached_rebuilds_on_key_change_input_change_and_corruption(tmp_path):
    calls, src = [], tmp_path/'in.txt'
    src.write_text('a')
    build = lambda: calls.append(1) or {'x': np.arange(3)}
    for _ in range(2): np.testing.assert_array_equal(cached(tmp_path/'c', 't', build, k=1, src=src)['x'], np.arange(3))
    assert len(calls) == 1
    cached(tmp_path/'c', 't', build, version=2, k=1, src=src); assert len(calls) == 2
    src.write_text('bb'); cached(tmp_path/'c', 't', build, k=1, src=src); assert len(calls) == 3
    cache_path(tmp_path/'c', 't', k=1, src=src).write_bytes(b'junk')
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always'); cached(tmp_path/'c', 't', build, k=1, src=src)
    assert len(calls) == 4 and any('unreadable cache entry' in str(x.message) for x in w)


def test_check_params_names_every_bad_parameter():
    rules = dict(img_size=Param(int, lo=16), bs=Param(int, lo=1), arch=Param(str, choices=('a', 'b')))
    assert check_params(dict(img_size=32, bs=2, arch='a'), **rules) == dict(img_size=32, bs=2, arch='a')
    with pytest.raises(ValueError) as e: check_params(dict(img_size=-1, bs='four', arch='c'), **rules)
    msg = str(e.value)
    assert "img_size=-1: must be >= 16" in msg and "bs='four': expected int, got str" in msg and 'must be one of' in msg


def test_atomic_write_temp_file_sits_beside_its_target(tmp_path):
    "A temp file elsewhere (the system temp folder) would make the final rename a copy across file systems."
    from medrepro.core import atomic_write
    seen = []
    with atomic_write(tmp_path/'sub'/'x.csv') as tmp:
        seen.append(tmp); tmp.write_text('a')
    assert seen[0].parent == tmp_path/'sub' and seen[0].name.startswith('.tmp.x.') and not seen[0].exists()
    assert (tmp_path/'sub'/'x.csv').read_text() == 'a'
    assert (tmp_path/'sub'/'x.csv').stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
    m = os.umask(0); os.umask(m); return m


def test_disk_full_names_the_file(tmp_path):
    "Issue 24 (9): '[Errno 28]' alone names no file; the error says which file and that the disk is full."
    import errno
    def full(_): raise OSError(errno.ENOSPC, 'No space left on device')
    with pytest.raises(OSError, match=r'the disk is full \(writing .*t\.csv\)'):
        with atomic_write(tmp_path/'t.csv') as tmp: full(tmp)
    assert not list(tmp_path.iterdir())


def test_cache_can_live_elsewhere(tmp_path, monkeypatch):
    "Issue 24 (9): read-only data: MEDREPRO_CACHE puts the caches elsewhere; an unwritable cache folder is one clear error."
    monkeypatch.setenv('MEDREPRO_CACHE', str(tmp_path/'c'))
    assert cache_dir('dsb') == tmp_path/'c'/'dsb' and (tmp_path/'c'/'dsb').is_dir()
    monkeypatch.setenv('MEDREPRO_CACHE', '/proc/no-such/cache')         # cannot be created, even as root
    with pytest.raises(DataError, match='cannot create the cache folder .*MEDREPRO_CACHE'):
        cache_dir('dsb')


def test_other_ranks_write_nothing(tmp_path, monkeypatch):
    "Issue 24 (11): in a data-parallel run only rank 0 writes figures, tables, JSON, models and the training history."
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    from fastai.data.core import DataLoaders
    from torch.utils.data import TensorDataset
    from medrepro.core import save_fig, save_json, save_model, ModelConfig, register_model
    from medrepro.train import make_learner
    register_model('rank_test_linear')(lambda: torch.nn.Linear(2, 1))
    monkeypatch.setenv('RANK', '1')
    save_table(pd.DataFrame(dict(a=[1])), tmp_path/'t.csv'); save_json({'a': 1}, tmp_path/'j.json')
    save_fig(plt.figure(), tmp_path/'f.png'); plt.close('all')
    save_model(tmp_path/'m', torch.nn.Linear(2, 1), ModelConfig('rank_test_linear'))
    x = torch.randn(16, 2)
    dls = DataLoaders.from_dsets(TensorDataset(x[:12], x[:12, :1]), TensorDataset(x[12:], x[12:, :1]), bs=4, device='cpu')
    learn = make_learner(dls, torch.nn.Linear(2, 1), torch.nn.MSELoss(), out_dir=tmp_path/'run', folder=tmp_path/'run', config=ModelConfig('rank_test_linear'))
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    assert [f for f in tmp_path.rglob('*') if f.is_file()] == []
    monkeypatch.setenv('RANK', '0')
    save_table(pd.DataFrame(dict(a=[1])), tmp_path/'t.csv')
    assert (tmp_path/'t.csv').exists()                                   # and rank 0 does
