"EchoNet's fit functions through the shared data-parallel switch (issue #12): two CPU processes over gloo, the same code as one."
import numpy as np, pandas as pd, pytest
from medrepro.core import ModelConfig, save_model, load_model
from medrepro.nets import MaskLoss, MaskScore
from medrepro.train import make_learner, fit
from medrepro.data import dataloaders
import medrepro.echonet.model  # noqa: F401  registers echonet_unet for save_model / load_model
from medrepro.echonet.data import frame_sets, fill_polygon
from medrepro.echonet.train import mask_metrics
from medrepro.echonet.landmarks import landmark_set, landmark_loss, LandmarkErr
from ranks import record_rank, run_two_ranks


def _frames(n=17, size=16, seed=0):
    "Noisy frames with one bright square each, its mask, and its four corners (the landmarks)."
    rng = np.random.default_rng(seed)
    x, m, corners = rng.integers(0, 60, (n, size, size)).astype(np.uint8), np.zeros((n, size, size), np.uint8), []
    for i in range(n):
        a, b = rng.integers(2, size - 8, 2); w = int(rng.integers(4, 7))
        sq = np.array([[a, b], [a + w, b], [a + w, b + w], [a, b + w]], float)
        m[i] = fill_polygon(sq, (size, size)); x[i][m[i] > 0] = 200; corners.append(sq)
    return x, m, corners


@pytest.mark.slow
def test_two_gloo_processes_train_the_unet_and_a_landmark_model(tmp_path):
    x, m, corners = _frames()
    split = dict(train=np.arange(12), valid=np.arange(12, 17))      # 5 validation frames: the distributed sampler pads one
    mask_dls = dataloaders(*frame_sets(x, m, split), bs=4, valid_bs=8, device='cpu')
    lm = landmark_set(x, m, corners, k=4, radius=2, band=1, sigma=1.0)
    lm_dls = dataloaders(*frame_sets(lm['x'], lm['y'], split), bs=4, valid_bs=8, device='cpu')
    cfg_mask = ModelConfig('echonet_unet', dict(n_in=1, n_out=1, widths=[4, 8]))    # with BatchNorm: its buffers must agree too
    cfg_lm = ModelConfig('echonet_unet', dict(n_in=1, n_out=4, widths=[4, 8]))
    ranks = tmp_path/'ranks'; ranks.mkdir()

    def train():
        a = fit(mask_dls, cfg_mask.build(), MaskLoss('bce'), 2, 1e-2, metrics=mask_metrics(), out_dir=tmp_path/'mask', quiet=True, monitor='dice_fg', lr_patience=None, es_patience=None)
        b = fit(lm_dls, cfg_lm.build(), landmark_loss('spatial_ce'), 2, 1e-2, metrics=[LandmarkErr('spatial_ce')], out_dir=tmp_path/'lm', quiet=True,
                monitor='landmark_err', comp=np.less, lr_patience=None, es_patience=None)
        record_rank(ranks, dict(mask=a, lm=b))
        save_model(tmp_path/'mask'/'model', a.model, cfg_mask)

    run_two_ranks(train, ranks, ['mask', 'lm'])                                          # same synced numbers, identical weights
    assert sorted(p.name for p in (tmp_path/'lm').iterdir()) == ['history.csv']       # one history, no checkpoint left behind
    assert sorted(p.name for p in (tmp_path/'mask').iterdir()) == ['history.csv', 'model']
    assert len(pd.read_csv(tmp_path/'lm'/'history.csv')) == 2
    hist = pd.read_csv(tmp_path/'mask'/'history.csv')
    assert list(hist.columns) == ['epoch', 'train_loss', 'valid_loss', 'dice_fg', 'dice_all', 'time']
    best = hist.loc[hist.dice_fg.idxmax()]                                              # SaveModelCallback reloaded this epoch
    model, _ = load_model(tmp_path/'mask'/'model', device='cpu')
    one = make_learner(mask_dls, model, MaskLoss('bce'), metrics=[MaskScore('dice', name='dice_fg'), MaskScore('accuracy', name='dice_all')],
                       out_dir=tmp_path/'eval', callbacks=False)
    with one.no_bar(), one.no_logging(): _, fg, acc = one.validate()
    assert (fg, acc) == pytest.approx((best['dice_fg'], best['dice_all']), abs=1e-9)  # gathered over both shards: the whole set's
