"RSNA model pipeline: EDA tables, depth reduction, per-study inputs and their cache, model reload and evaluation."
import json
import numpy as np, pandas as pd, pytest, torch
from medrepro.rsna.eda import label_prevalence, cooccurrence
from medrepro.rsna.preprocess import pick_depth, slab_depth, fracture_sampled, positions, roundtrip_box_error
from medrepro.rsna.models import Cnn3d, save_model, study_labels, load_volumes, rsna_root
from medrepro.rsna.seq import study_inputs, load_inputs, CropGRU
from medrepro.rsna.evaluate import load_config, load_model, predict, label_scores, constant_predictions, wll_table


@pytest.fixture(scope='module')
def tiny_rsna(tmp_path_factory):
    "Three small generated studies (64 px, 40 slices) in the Kaggle layout."
    from medrepro.rsna.data import write_sample
    return write_sample(tmp_path_factory.mktemp('rsna')/'rsna', n=3, seed=5, size=64, n_slices=40)


def _labels():
    return pd.DataFrame({'StudyInstanceUID': list('abcd'), 'patient_overall': [1, 1, 0, 1],
                         'C1': [1, 0, 0, 0], 'C2': [1, 1, 0, 0], 'C3': 0, 'C4': 0, 'C5': 0, 'C6': 0, 'C7': [0, 0, 0, 1]})


def test_prevalence_and_cooccurrence():
    prev = label_prevalence(_labels())
    assert prev.loc['C2', 'positives'] == 2 and prev.loc['patient_overall', 'rate'] == pytest.approx(.75)
    co = cooccurrence(_labels())
    assert co.loc['C1', 'C2'] == 1 and co.loc['C2', 'C2'] == 2 and co.loc['C1', 'C7'] == 0 and (co.values == co.values.T).all()


def test_depth_reductions():
    v = np.arange(10, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
    assert pick_depth(v, 4)[:, 0, 0].tolist() == [0, 3, 6, 9]
    s = slab_depth(v, 5)
    assert s.shape == (5, 2, 3) and s[:, 0, 0].tolist() == pytest.approx([.5, 2.5, 4.5, 6.5, 8.5])
    assert slab_depth(np.stack([v, v]), 5).shape == (2, 5, 2, 3)
    # a 2-slice fracture at slices 10-11 of 64: picking 8 slices (0, 9, 18, ...) steps over it
    assert not fracture_sampled([10, 11], 64, 8, 'numpy pick (paper)') and fracture_sampled([9], 64, 8, 'numpy pick (paper)')
    assert fracture_sampled([10, 11], 64, 8, 'slab mean') and len(positions(64, 8)) == 8
    assert roundtrip_box_error(v, 10, [(3, 0, 0, 2, 3)]) == pytest.approx(0)


def test_study_inputs_shapes_and_cache(tiny_rsna, tmp_path):
    uid = pd.read_csv(tiny_rsna/'train.csv')['StudyInstanceUID'].astype(str)[0]
    kw = dict(n_slices=3, img_size=16, crop_size=12, windows=('bone', 'soft'), crop_window='bone', context=1)
    d = study_inputs(tiny_rsna, uid, cache_dir=tmp_path, **kw)
    assert d['seq'].shape == (7, 3, 2, 16, 16) and d['crops'].shape == (7, 3, 3, 12, 12)
    assert d['presence_source'] in ('nifti', 'estimate') and d['crops'].dtype == np.float16
    assert d['crops'].max() > .5                                   # bone shows in the crops
    cached = list(tmp_path.glob('*.npz'))
    assert len(cached) == 1
    d2 = study_inputs(tiny_rsna, uid, cache_dir=tmp_path, **kw)
    assert np.array_equal(d['crops'], d2['crops']) and np.array_equal(d['seq'], d2['seq'])
    study_inputs(tiny_rsna, uid, cache_dir=tmp_path, **{**kw, 'context': 2})     # another setting: another cache file
    assert len(list(tmp_path.glob('*.npz'))) == 2


def test_load_inputs_labels_and_model(tiny_rsna, tmp_path):
    uids = pd.read_csv(tiny_rsna/'train.csv')['StudyInstanceUID'].astype(str).tolist()
    seq, crops, src = load_inputs(tiny_rsna, uids, n_slices=2, img_size=16, crop_size=16, windows=('bone',), context=1)
    y = study_labels(tiny_rsna, uids)
    assert crops.shape == (3, 7, 2, 3, 16, 16) and y.shape == (3, 8) and len(src) == 3
    assert (y[:, 7] == y[:, :7].max(1)).all()                       # patient_overall = any vertebra
    out = CropGRU(3, widths=(4, 8), hidden=4).eval()(torch.as_tensor(crops, dtype=torch.float32))
    assert out.shape == (3, 8)
    vols = load_volumes(tiny_rsna, uids[:2], depth=8, size=16, windows=('bone', 'soft'))
    assert vols.shape == (2, 2, 8, 16, 16) and vols.dtype == np.float16


def test_study_labels_missing_study(tiny_rsna):
    from medrepro.core import DataError
    with pytest.raises(DataError, match='no labels'): study_labels(tiny_rsna, ['1.2.3.nope'])


def test_rsna_root_data_dir(tiny_rsna):
    assert rsna_root(tiny_rsna) == tiny_rsna


def test_save_and_reload_model(tmp_path):
    m = Cnn3d(2, widths=(4, 8), hidden=8).eval()
    save_model(m, tmp_path, dict(model='cnn3d', in_ch=2, widths=[4, 8], patient='head', hidden=8))
    with pytest.raises(ValueError, match='do not fit'):            # config says one architecture, weights another
        cfg = json.loads((tmp_path/'config.json').read_text()); cfg['widths'] = [4, 16]
        (tmp_path/'config.json').write_text(json.dumps(cfg)); load_model(tmp_path)
    save_model(m, tmp_path, dict(model='cnn3d', in_ch=2, widths=[4, 8], patient='head', hidden=8))
    m2, cfg = load_model(tmp_path)
    x = torch.randn(1, 2, 8, 16, 16)
    with torch.no_grad(): assert torch.allclose(m(x), m2(x))


def test_reload_predicts_identically(tmp_path):
    m = CropGRU(3, widths=(4, 8), hidden=4).eval()
    save_model(m, tmp_path, dict(model='crop_gru', in_ch=3, encoder='small', widths=[4, 8], hidden=4))
    m2, cfg = load_model(tmp_path)
    x = np.random.default_rng(0).random((3, 7, 2, 3, 16, 16)).astype(np.float32)
    p = predict(m2, x, bs=2, device='cpu')
    assert p.shape == (3, 8) and ((p >= 0) & (p <= 1)).all()
    with torch.no_grad(): assert np.allclose(p, torch.sigmoid(m(torch.as_tensor(x))).numpy(), atol=1e-6)


def test_missing_model_says_which_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match='15_rsna_cnn3d'): load_config(tmp_path)


def test_scores_and_constants():
    y = np.array([[1, 0, 0, 0, 0, 0, 0, 1], [0] * 8, [0, 0, 0, 0, 0, 0, 1, 1], [0] * 8], float)
    c = constant_predictions(y, 2)
    assert c['constant 0.5'].shape == (2, 8) and c['constant prevalence'][0, 0] == pytest.approx(.25)
    assert c['constant prevalence'][0, 1] == pytest.approx(.01)    # never-seen label clipped away from 0
    t = wll_table(y, {'truth': np.clip(y, .01, .99), **constant_predictions(y, 4)})
    assert t.loc['constant 0.5', 'weighted_log_loss'] == pytest.approx(np.log(2))
    assert t.loc['truth', 'weighted_log_loss'] < t.loc['constant prevalence', 'weighted_log_loss'] < np.log(2)
    s = label_scores(y, np.where(y > 0, .9, .1))
    assert (s['accuracy'] == 1).all() and s.loc['patient_overall', 'positives'] == 2


def test_lazy_inputs_index_like_the_stacked_array(tmp_path):
    from medrepro.rsna.seq import LazyInputs
    rng = np.random.default_rng(0)
    seq, crops = rng.random((3, 7, 2, 3, 4, 4)).astype(np.float16), rng.random((3, 7, 2, 3, 5, 5)).astype(np.float16)
    paths = []
    for i in range(3):
        paths.append(tmp_path/f's{i}.npz'); np.savez(paths[-1], seq=seq[i], crops=crops[i], src=np.array('nifti'))
    lz = LazyInputs(paths, 'crops')
    assert len(lz) == 3 and np.array_equal(lz[1], crops[1]) and np.array_equal(lz[0:2], crops[0:2])
    v = LazyInputs(paths, 'seq')[:, 4]
    assert len(v) == 3 and np.array_equal(v[2], seq[2, 4]) and np.array_equal(v[1:3], seq[1:3, 4])
    from medrepro.rsna.models import VolumeDataset
    x, y = VolumeDataset(lz, np.zeros((3, 8)))[2]
    assert x.dtype == torch.float32 and np.allclose(x.numpy(), crops[2].astype(np.float32))
