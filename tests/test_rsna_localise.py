"RSNA vertebra localiser: inputs and their cache, z resampling, post-processing, save/load, training that learns, study_presence."
import numpy as np, pandas as pd, pytest, torch
from fastai.losses import BCEWithLogitsLossFlat
from fastai.metrics import AccumMetric, ActivationType, accuracy_multi
import fastai.callback.schedule
from medrepro.core import ModelConfig, save_model
from medrepro.imaging import resample_axis
from medrepro.train import make_learner
from medrepro.rsna.data import seg_file, study_presence, range_scores, VERTEBRAE
from medrepro.rsna.sample import write_sample
from medrepro.rsna.dicom import read_series
from medrepro.data import ArraySet, dataloaders
from medrepro.rsna.preprocess import series_input, localiser_inputs, as_float32
from medrepro.rsna.localise import LocaliserNet, LocaliserAugment, postprocess, mean_range_iou, Localiser


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    "Four small generated studies (64 px, 40 slices): 0, 1 and 3 have a segmentation, 2 has none."
    root = write_sample(tmp_path_factory.mktemp('rsna')/'rsna', n=4, seed=5, size=64, n_slices=40)
    return root, pd.read_csv(root/'train.csv')['StudyInstanceUID'].tolist()


def _runs(col):
    on = np.concatenate([[0], col, [0]])
    return int((np.diff(on) == 1).sum())


def test_inputs_shapes_and_cache(tiny, tmp_path):
    root, uids = tiny
    s = read_series(root/'train_images'/uids[0])
    x = series_input(s, depth=16, size=16)
    assert x.shape == (16, 2, 16, 16) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    d = localiser_inputs(root, uids[0], depth=16, size=16, cache_dir=tmp_path)
    assert d['x'].shape == (16, 2, 16, 16) and d['y'].shape == (16, 7) and d['pres'].shape == (len(s), 7) and d['z'].shape == (len(s),)
    assert len(list(tmp_path.glob('*.npz'))) == 1 and d['pres'].sum(0).min() > 0
    assert np.allclose(d['y'], resample_axis(d['pres'], 16))
    again = localiser_inputs(root, uids[0], depth=16, size=16, cache_dir=tmp_path)
    for k in ('x', 'y', 'pres', 'est', 'z'): assert np.array_equal(again[k], d[k])
    none = localiser_inputs(root, uids[2], depth=16, size=16, cache_dir=tmp_path)
    assert seg_file(root, uids[2]) is None and none['y'] is None and none['pres'] is None and none['x'].shape == (16, 2, 16, 16)
    aug = LocaliserAugment(zcrop=0.5)
    ds = ArraySet(d['x'][None], d['y'][None], x_tfm=aug.x, y_tfm=aug.y)
    torch.manual_seed(0)
    for _ in range(5):
        xa, ya = ds[0]
        assert xa.shape == (16, 2, 16, 16) and ya.shape == (16, 7) and 0 <= float(ya.min()) and float(ya.max()) <= 1


def test_z_resampling_round_trip_and_postprocess():
    ramp = np.linspace(0, 1, 10)[:, None].repeat(7, 1)
    r = resample_axis(ramp, 4)
    assert np.allclose(r[:, 0], [0, 1/3, 2/3, 1]) and np.allclose(resample_axis(r, 10), ramp, atol=1e-6)
    pres = np.zeros((40, 7)); pres[10:20, 2] = 1
    back = postprocess(resample_axis(resample_axis(pres, 16), 40))
    assert np.nonzero(back[:, 2])[0].min() in (9, 10, 11) and abs(int(back[:, 2].sum()) - 10) <= 2


def test_postprocess_one_run_per_vertebra_in_order():
    p = np.zeros((20, 7), np.float32)
    p[[2, 3, 4, 12], 0] = .9
    p[[0, 6, 7, 8, 9], 1] = .8
    p[[10, 11], 2] = .7; p[[15, 16, 17, 18], 2] = .6
    p[:, 3] = .4
    out = postprocess(p)
    for i in range(7): assert _runs(out[:, i]) <= 1
    assert np.nonzero(out[:, 0])[0].tolist() == [2, 3, 4]
    assert np.nonzero(out[:, 1])[0].tolist() == [6, 7, 8, 9]
    assert np.nonzero(out[:, 2])[0].tolist() == [15, 16, 17, 18]
    assert out[:, 3].sum() == 0
    q = np.zeros((10, 7)); q[[0, 1], 1] = .95; q[[6, 7, 8], 1] = .6; q[[4, 5], 0] = .9
    assert np.nonzero(postprocess(q)[:, 1])[0].tolist() == [6, 7, 8]
    assert np.nonzero(postprocess(q, order=False)[:, 1])[0].tolist() == [0, 1]


def test_mean_range_iou():
    y = np.zeros((1, 10, 7)); y[0, 0:4, 0] = 1
    p = np.zeros((1, 10, 7)); p[0, 2:6, 0] = .9
    assert mean_range_iou(y, y) == 1.0
    assert mean_range_iou(p, y) == pytest.approx((1/3 + 6) / 7)      # C1 IoU 1/3, the six empty vertebrae 1


def test_missing_model_names_the_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match='14_rsna.localise'): Localiser.load(tmp_path/'nothing')


def test_training_learns_save_load_and_study_presence(tiny, tmp_path):
    root, uids = tiny
    seg = [u for u in uids if seg_file(root, u) is not None]
    inp = {u: localiser_inputs(root, u, depth=16, size=16, cache_dir=tmp_path/'cache') for u in seg}
    st = lambda us, k: np.stack([inp[u][k] for u in us])
    aug = LocaliserAugment(zcrop=0.1)
    dls = dataloaders(ArraySet(st(seg[:2], 'x'), st(seg[:2], 'y'), x_tfm=aug.x, y_tfm=aug.y),
                      ArraySet(st(seg[2:], 'x'), st(seg[2:], 'y'), x_tfm=as_float32, y_tfm=as_float32), bs=2, device='cpu', drop_last=False)
    torch.manual_seed(0)
    metrics = [accuracy_multi, AccumMetric(mean_range_iou, activation=ActivationType.Sigmoid, flatten=False, name='iou')]
    learn = make_learner(dls, LocaliserNet(2, (4, 8), 8), BCEWithLogitsLossFlat(), metrics=metrics, lr=2e-2,
                         out_dir=tmp_path/'loc', lr_patience=None)
    with learn.no_bar(), learn.no_logging(): learn.fit_flat_cos(12, 2e-2)
    h = pd.read_csv(tmp_path/'loc'/'history.csv')
    assert len(h) == 12 and {'accuracy_multi', 'iou'} <= set(h.columns)
    assert h["train_loss"].iloc[-1] < 0.85 * h["train_loss"].iloc[0]           # the loss falls
    assert h['valid_loss'].min() < h['valid_loss'].iloc[0]
    cfg = ModelConfig('rsna_localiser', dict(in_ch=2, widths=[4, 8], hidden=8),
                      meta=dict(depth=16, img_size=16, windows=['bone', 'soft'], test_uids=[uids[2]], valid_uids=seg[2:]))
    save_model(tmp_path/'loc', learn, cfg)
    a, b = Localiser(learn.model, cfg), Localiser.load(tmp_path/'loc')
    x = inp[seg[0]]['x']
    assert np.array_equal(a.probs(x), b.probs(x)) and a.probs(np.stack([x, x])).shape == (2, 16, 7)
    assert Localiser.load(tmp_path/'loc').key == b.key
    assert not set(b.meta['valid_uids']) & set(b.meta['test_uids'])
    s_seg, s_none = read_series(root/'train_images'/seg[0]), read_series(root/'train_images'/uids[2])
    p_seg, p_none = study_presence(root, s_seg, localiser=b), study_presence(root, s_none, localiser=b)
    assert p_seg.attrs['source'] == 'nifti' and p_none.attrs['source'] == 'model'
    assert np.array_equal(p_none[VERTEBRAE].to_numpy(), b.presence(b.inputs(s_none), len(s_none)))
    for v in VERTEBRAE: assert _runs(p_none[v].to_numpy()) <= 1
    assert study_presence(root, s_none).attrs['source'] == 'estimate'
