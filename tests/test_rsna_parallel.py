"RSNA training through the shared data-parallel switch (issue #12): two CPU processes over gloo train the crop model like one."
import numpy as np, pandas as pd, pytest, torch
import fastai.callback.schedule  # Learner.fit_one_cycle
from medrepro.core import ModelConfig, save_model, load_model
from medrepro.train import data_parallel, make_learner
from medrepro.rsna.metrics import rsna_loss, rsna_metrics, weighted_log_loss
from medrepro.rsna.train import SliceAuxLoss
from medrepro.data import dataloaders
from medrepro.rsna.preprocess import float_sets
from medrepro.rsna.model import CropGRU
from ranks import record_rank, run_two_ranks


def _crops(n=13, t=3, size=16, seed=0):
    "(n, 7, T, 3, S, S) crops in which a fractured vertebra has a bright crack on its slices, and (n, 8) labels."
    rng = np.random.default_rng(seed)
    y = np.zeros((n, 8), np.float32); y[:, :7] = rng.random((n, 7)) < .3; y[:, 7] = y[:, :7].max(1)
    x = rng.normal(0, .1, (n, 7, t, 3, size, size)).astype(np.float32)
    x[..., 6:10, :] += 2 * y[:, :7, None, None, None, None]
    return x, y


@pytest.mark.slow
def test_two_gloo_processes_train_the_crop_model(tmp_path):
    "CropGRU with SliceAuxLoss (which reads the unwrapped model's slice logits) and the wll checkpoint, as notebook 16 trains it."
    x, y = _crops()
    x_tr, y_tr, x_va, y_va = x[:8], y[:8], x[8:], y[8:]             # 5 validation studies: the distributed sampler pads one
    cfg = ModelConfig('rsna_crop_gru', dict(in_ch=3, encoder='small', widths=[4, 8], hidden=8))   # BatchNorm: buffers must agree too
    out, ranks = tmp_path/'crop_gru', tmp_path/'ranks'; ranks.mkdir()

    def train():
        dls = dataloaders(*float_sets(x_tr, y_tr, x_va, y_va), bs=2, device='cpu', drop_last=False)
        model = cfg.build()
        learn = make_learner(dls, model, SliceAuxLoss(model, 1.), metrics=rsna_metrics(), lr=1e-2, out_dir=out,
                             monitor='wll', comp=np.less, lr_patience=None)
        with data_parallel(learn), learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(3, 1e-2)
        record_rank(ranks, dict(crop=learn))
        save_model(out/'model', learn, cfg)

    w0 = run_two_ranks(train, ranks, ['crop'])['weights']['crop']   # two ranks, the same synced numbers, identical weights
    assert sorted(p.name for p in out.iterdir()) == ['history.csv', 'model']      # one history, one model, no checkpoint left
    hist = pd.read_csv(out/'history.csv')
    assert list(hist.columns) == ['epoch', 'train_loss', 'valid_loss', 'accuracy_multi', 'f1_score', 'wll', 'time']
    model, _ = load_model(out/'model', device='cpu')
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), w0.values()))
    from medrepro.train import predict
    p = predict(model, x_va, bs=2, device='cpu')
    assert weighted_log_loss(y_va, p) == pytest.approx(hist['wll'].min(), abs=1e-6)   # gathered over both shards: the whole set's, best epoch
