import os
from pathlib import Path
import pandas as pd, pytest, torch
from medrepro import core
from medrepro.core import DataError, atomic_write, data_root, dataset_path, reports_dir, save_table, get_device, seed_everything


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
