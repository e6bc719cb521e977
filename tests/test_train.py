import pandas as pd, pytest, torch
from fastai.callback.tracker import SaveModelCallback, ReduceLROnPlateau, EarlyStoppingCallback
from fastai.callback.progress import CSVLogger
from fastai.data.core import DataLoaders
from torch.utils.data import TensorDataset
from medrepro.core import seed_everything
from medrepro.train import keras_callbacks, make_learner, save_weights, load_weights


def _dls():
    seed_everything(0)
    x = torch.randn(40, 3); y = x @ torch.tensor([[1.], [-1.], [2.]])
    return DataLoaders.from_dsets(TensorDataset(x[:32], y[:32]), TensorDataset(x[32:], y[32:]), bs=8, device='cpu')


def test_keras_mapping():
    cbs = keras_callbacks(monitor='dice', comp=None, lr_factor=0.1, lr_patience=5, min_lr=1e-7, es_patience=20)
    kinds = {type(c): c for c in cbs}
    assert set(kinds) == {SaveModelCallback, ReduceLROnPlateau, CSVLogger, EarlyStoppingCallback}
    r = kinds[ReduceLROnPlateau]
    assert r.factor == pytest.approx(10) and r.patience == 5 and r.min_lr == 1e-7 and r.monitor == 'dice'
    assert kinds[EarlyStoppingCallback].patience == 20


def test_learner_trains_logs_and_checkpoints(tmp_path):
    learn = make_learner(_dls(), torch.nn.Linear(3, 1), torch.nn.MSELoss(), lr=0.1, out_dir=tmp_path)
    with learn.no_bar(), learn.no_logging(): learn.fit(3)
    h = pd.read_csv(tmp_path/'history.csv')
    assert len(h) == 3 and h.valid_loss.iloc[-1] < h.valid_loss.iloc[0]
    assert (tmp_path/'best.pth').exists()
    sd = torch.load(tmp_path/'best.pth', weights_only=True)      # fastai's checkpoint is a plain state_dict
    assert set(sd) == {'weight', 'bias'}


def test_save_load_roundtrip_and_errors(tmp_path):
    m = torch.nn.Linear(3, 2); p = save_weights(m, tmp_path/'w.pth')
    m2 = load_weights(torch.nn.Linear(3, 2), p)
    assert torch.equal(m.weight, m2.weight)
    with pytest.raises(ValueError, match='do not fit'):
        load_weights(torch.nn.Linear(4, 2), p)
    (tmp_path/'bad.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='bad.pth'):
        load_weights(m, tmp_path/'bad.pth')
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_weights(m, tmp_path/'missing.pth')
