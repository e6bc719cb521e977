"RSNA vertebra localiser: inputs and their cache, z resampling, post-processing, save/load, a tiny training, study_presence."
import json
import numpy as np, pandas as pd, pytest, torch
from medrepro.rsna.data import write_sample, seg_file, study_presence, VERTEBRAE
from medrepro.rsna.dicom import read_series
from medrepro.rsna.localise import (series_input, resample_presence, to_slices, localiser_inputs, LocaliserNet, LocaliserDataset,
                                    postprocess, range_scores, localiser_metrics, Localiser, save_localiser, load_localiser)

CFG = dict(depth=16, img_size=16, windows=['bone', 'soft'], widths=[4, 8], hidden=8)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    "Four small generated studies (64 px, 40 slices): 0, 1 and 3 have a segmentation, 2 has none."
    root = write_sample(tmp_path_factory.mktemp('rsna')/'rsna', n=4, seed=5, size=64, n_slices=40)
    uids = pd.read_csv(root/'train.csv')['StudyInstanceUID'].tolist()
    return root, uids


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
    assert d['path'].exists() and d['pres'].sum(0).min() > 0                         # every vertebra on some slice of the phantom
    again = localiser_inputs(root, uids[0], depth=16, size=16, cache_dir=tmp_path)   # read back from the cache
    for k in ('x', 'y', 'pres', 'est', 'z'): assert np.array_equal(again[k], d[k])
    none = localiser_inputs(root, uids[2], depth=16, size=16, cache_dir=tmp_path)    # no segmentation: no target
    assert seg_file(root, uids[2]) is None and none['y'] is None and none['pres'] is None and none['x'].shape == (16, 2, 16, 16)
    assert localiser_inputs(root, uids[2], depth=16, size=16, cache_dir=tmp_path)['y'] is None
    assert LocaliserNet(2, (4, 8), 8)(torch.zeros(3, 16, 2, 16, 16)).shape == (3, 16, 7)
    ds = LocaliserDataset(d['x'][None], d['y'][None], augment=True, zcrop=0.5)
    torch.manual_seed(0)
    for _ in range(5):
        xa, ya = ds[0]
        assert xa.shape == (16, 2, 16, 16) and ya.shape == (16, 7) and 0 <= float(ya.min()) and float(ya.max()) <= 1


def test_z_resampling_back_to_slices():
    ramp = np.linspace(0, 1, 10)[:, None].repeat(7, 1)
    r = resample_presence(ramp, 4)                          # first and last slices kept, linear in between
    assert r.shape == (4, 7) and r[0, 0] == 0 and r[-1, 0] == pytest.approx(1) and np.allclose(np.diff(r[:, 0]), 1/3)
    assert np.allclose(to_slices(r, 10), ramp, atol=1e-6)   # a linear profile survives the round trip exactly
    pres = np.zeros((40, 7)); pres[10:20, 2] = 1
    back = postprocess(to_slices(resample_presence(pres, 16), 40))
    assert back[:, 2].sum() > 0 and abs(int(np.argmax(back[:, 2])) - 10) <= 1 and abs(int(back[:, 2].sum()) - 10) <= 2
    assert to_slices(np.ones((1, 7)), 5).shape == (5, 7)


def test_postprocess_one_run_per_vertebra_in_order():
    p = np.zeros((20, 7), np.float32)
    p[[2, 3, 4, 12], 0] = .9                     # C1: a run of 3 and a stray slice
    p[[0, 6, 7, 8, 9], 1] = .8                   # C2: a stray slice above C1 and the real run
    p[[10, 11], 2] = .7; p[[15, 16, 17, 18], 2] = .6   # C3: two runs; the bigger (by summed p) wins
    p[:, 3] = .4                                 # C4: never above 0.5 -> absent
    out = postprocess(p)
    for i in range(7): assert _runs(out[:, i]) <= 1
    assert np.nonzero(out[:, 0])[0].tolist() == [2, 3, 4]
    assert np.nonzero(out[:, 1])[0].tolist() == [6, 7, 8, 9]          # order: C2 below C1, so the stray slice 0 is dropped
    assert np.nonzero(out[:, 2])[0].tolist() == [15, 16, 17, 18]
    assert out[:, 3].sum() == 0
    assert np.nonzero(postprocess(p, order=False)[:, 1])[0].tolist() == [6, 7, 8, 9]
    q = np.zeros((10, 7)); q[[0, 1], 1] = .95; q[[6, 7, 8], 1] = .6; q[[4, 5], 0] = .9
    assert np.nonzero(postprocess(q)[:, 1])[0].tolist() == [6, 7, 8]      # the run above C1 is not allowed
    assert np.nonzero(postprocess(q, order=False)[:, 1])[0].tolist() == [0, 1]     # without order: the bigger run


def test_range_scores():
    t = np.zeros((10, 7)); p = np.zeros((10, 7))
    t[0:4, 0] = 1; p[2:6, 0] = 1                 # C1: 2 shared of 6 -> IoU 1/3, centres 1.5 vs 3.5
    t[5:8, 1] = 1                                # C2: predicted nowhere -> IoU 0, no centre error
    sc = range_scores(p, t, z=np.arange(10)*-2.0)
    assert sc.loc['C1', 'iou'] == pytest.approx(1/3) and sc.loc['C1', 'centre_err_mm'] == pytest.approx(4.0)
    assert sc.loc['C2', 'iou'] == 0 and np.isnan(sc.loc['C2', 'centre_err_mm']) and sc.loc['C3', 'iou'] == 1


def test_missing_model_names_the_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match='14_rsna_localise'): load_localiser(tmp_path/'nothing')
    with pytest.raises(ValueError, match='config lacks'): save_localiser(LocaliserNet(2, (4, 8), 8), tmp_path/'m', dict(depth=16))


def test_train_save_load_and_study_presence(tiny, tmp_path):
    from medrepro.rsna.models import volume_dls
    from medrepro.train import make_learner
    from fastai.losses import BCEWithLogitsLossFlat
    import fastai.callback.schedule
    root, uids = tiny
    seg = [u for u in uids if seg_file(root, u) is not None]
    inp = {u: localiser_inputs(root, u, depth=16, size=16, cache_dir=tmp_path/'cache') for u in seg}
    st = lambda us, k: np.stack([inp[u][k] for u in us])
    dls = volume_dls(st(seg[:2], 'x'), st(seg[:2], 'y'), st(seg[2:], 'x'), st(seg[2:], 'y'), bs=2, device='cpu', augment=True,
                     dataset=lambda x, y, a: LocaliserDataset(x, y, a, zcrop=0.3))
    torch.manual_seed(0)
    learn = make_learner(dls, LocaliserNet(2, (4, 8), 8), BCEWithLogitsLossFlat(), metrics=localiser_metrics(), lr=1e-2,
                         out_dir=tmp_path/'loc', lr_patience=None)
    with learn.no_bar(), learn.no_logging(): learn.fit_flat_cos(2, 1e-2)
    h = pd.read_csv(tmp_path/'loc'/'history.csv')
    assert len(h) == 2 and {'accuracy', 'iou'} <= set(h.columns) and np.isfinite(h['valid_loss']).all()
    save_localiser(learn, tmp_path/'loc', CFG)
    assert json.loads((tmp_path/'loc'/'config.json').read_text())['depth'] == 16
    a, b = Localiser(learn.model, CFG), load_localiser(tmp_path/'loc')
    x = inp[seg[0]]['x']
    assert np.array_equal(a.probs(x), b.probs(x)) and a.probs(np.stack([x, x])).shape == (2, 16, 7)
    assert load_localiser(tmp_path/'loc').key == b.key       # the cache key of notebook 16's inputs is stable
    # study_presence: the NIfTI where there is one, the localiser elsewhere
    s_seg, s_none = read_series(root/'train_images'/seg[0]), read_series(root/'train_images'/uids[2])
    p_seg, p_none = study_presence(root, s_seg, localiser=b), study_presence(root, s_none, localiser=b)
    assert p_seg.attrs['source'] == 'nifti' and p_none.attrs['source'] == 'model'
    assert len(p_none) == len(s_none) and list(p_none.columns[:7]) == VERTEBRAE
    assert np.array_equal(p_none[VERTEBRAE].to_numpy(), b.presence(b.inputs(s_none), len(s_none)))
    for v in VERTEBRAE: assert _runs(p_none[v].to_numpy()) <= 1
    assert study_presence(root, s_none).attrs['source'] == 'estimate'
