"RSNA model inputs: depth reduction, per-study inputs (HU and JPG routes, per-vertebra limits) and their cache, read as references, volumes."
import numpy as np, pandas as pd, pytest, torch
from medrepro.rsna.data import seg_file, VERTEBRAE
from medrepro.rsna.sample import write_sample
from medrepro.rsna.preprocess import (pick_depth, interp_depth, slab_depth, fracture_sampled, positions, roundtrip_box_error,
                                      load_inputs, load_volumes, StudyInputs, float_sets, jpg_slices, slice_picks)


@pytest.fixture(scope='module')
def tiny_rsna(tmp_path_factory):
    "Three small generated studies (64 px, 40 slices); study 2 has no segmentation."
    return write_sample(tmp_path_factory.mktemp('rsna')/'rsna', n=3, seed=5, size=64, n_slices=40)


def test_depth_reductions():
    v = np.arange(10, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
    assert pick_depth(v, 4)[:, 0, 0].tolist() == [0, 3, 6, 9]
    assert interp_depth(v, 3)[:, 0, 0].tolist() == pytest.approx([0, 4.5, 9])
    assert slab_depth(v, 5)[:, 0, 0].tolist() == pytest.approx([.5, 2.5, 4.5, 6.5, 8.5])
    assert slab_depth(np.stack([v, v]), 5).shape == (2, 5, 2, 3)
    assert not fracture_sampled([10, 11], 64, 8, 'numpy pick') and fracture_sampled([9], 64, 8, 'numpy pick')
    assert fracture_sampled([10, 11], 64, 8, 'slab mean') and positions(64, 8, 'linear interpolation')[1] == pytest.approx(9)
    assert roundtrip_box_error(v, 10, [(3, 0, 0, 2, 3)]) == pytest.approx(0)


def test_jpg_route_and_slice_picks():
    hu = np.stack([np.full((40, 40), -1000.), np.full((40, 40), 1400.)])
    j = jpg_slices(hu, size=16)
    assert j.shape == (2, 3, 16, 16)
    assert j[0, 0].mean() == pytest.approx(-.485 / .229, abs=.05) and j[1, 1].mean() == pytest.approx((1 - .456) / .224, abs=.05)
    assert slice_picks([4, 5, 6, 7, 8, 9, 10], 3) == [4, 7, 10] and slice_picks([3], 2) == [3, 3]


def test_study_inputs_shapes_sources_and_cache(tiny_rsna, tmp_path):
    uids = pd.read_csv(tiny_rsna/'train.csv')['StudyInstanceUID'].astype(str).tolist()
    assert seg_file(tiny_rsna, uids[0]) is not None and seg_file(tiny_rsna, uids[2]) is None
    kw = dict(n_slices=3, img_size=16, crop_size=12, windows=('bone', 'soft'), crop_window='bone', context=1)
    seq, crops, src = load_inputs(tiny_rsna, uids, tmp_path, workers=1, **kw)
    assert {v: a[0].shape for v, a in seq.items()} == {v: (3, 2, 16, 16) for v in VERTEBRAE}
    assert crops[0].shape == (7, 3, 3, 12, 12) and crops[0].dtype == np.float32 and crops[0].max() > .5
    assert crops.raw(0).dtype == np.int16 and seq['C3'].raw(0).shape == (3, 16, 16)      # stored: HU, one channel
    assert src == ['nifti', 'nifti', 'estimate']
    files = lambda: sorted(p.name for p in (tmp_path/'rsna_inputs').iterdir())
    first = files()
    assert len(first) == 4 * 3
    seq2, crops2, _ = load_inputs(tiny_rsna, uids, tmp_path, workers=1, **kw)
    assert files() == first and np.array_equal(crops[0], crops2[0]) and np.array_equal(seq['C3'][1], seq2['C3'][1])
    load_inputs(tiny_rsna, uids[:1], tmp_path, workers=1, **{**kw, 'context': 2})     # another setting: that study's old entry removed
    assert len(files()) == 4 * 3 and set(files()) != set(first)
    limits = {'C1': 4, 'C2': 1, 'C3': 2, 'C4': 2, 'C5': 1, 'C6': 3, 'C7': 3}
    jseq, jcrops, _ = load_inputs(tiny_rsna, uids[:1], tmp_path, route='jpg', slice_limits=limits, **kw)
    assert {v: a[0].shape for v, a in jseq.items()} == {v: (limits[v], 3, 16, 16) for v in VERTEBRAE}
    assert jcrops[0].shape == (7, 3, 3, 12, 12) and jseq['C1'].raw(0).dtype == np.uint8


def test_load_inputs_references_and_volumes(tiny_rsna, tmp_path):
    uids = pd.read_csv(tiny_rsna/'train.csv')['StudyInstanceUID'].astype(str).tolist()
    kw = dict(n_slices=2, img_size=16, crop_size=16, windows=('bone',), context=1)
    seq, crops, src = load_inputs(tiny_rsna, uids, tmp_path, **kw)
    assert isinstance(crops, StudyInputs) and len(crops) == 3 and crops.uids == uids
    assert crops[:].shape == (3, 7, 2, 3, 16, 16) and seq['C5'][[0, 2]].shape == (2, 2, 1, 16, 16) and src == ['nifti', 'nifti', 'estimate']
    assert all(s._arrays is None for s in crops.stores)                    # references: nothing of a study is held
    mseq, mcrops, _ = load_inputs(tiny_rsna, uids, None, **kw)             # no cache folder: the same inputs, in memory
    assert np.array_equal(mcrops[1], crops[1]) and np.array_equal(mcrops[0:2], crops[0:2]) and np.array_equal(mseq['C5'][2], seq['C5'][2])
    x, y = float_sets(crops, np.zeros((3, 8)), crops, np.zeros((3, 8)))[1][2]
    assert x.dtype == torch.float32 and np.allclose(x.numpy(), crops[2])
    vols = load_volumes(tiny_rsna, uids[:2], depth=8, size=16, windows=('bone', 'soft'))
    assert vols.shape == (2, 2, 8, 16, 16) and vols.dtype == np.float16


def _tiny_cnn():
    from medrepro.rsna.model import Cnn3dStandIn
    return Cnn3dStandIn(in_ch=2, widths=(4, 8), hidden=8)


def test_volumes_train_and_predict_exactly_as_the_stacked_array(tiny_rsna, tmp_path):
    "The same model trained on `Volumes` (float16 as stored, float32 per batch) and on the stacked array ends with the same weights and predictions."
    import random
    from medrepro.data import dataloaders
    from medrepro.train import predict
    from medrepro.rsna.preprocess import Volumes, batch_tfms
    uids = pd.read_csv(tiny_rsna/'train.csv')['StudyInstanceUID'].astype(str).tolist() * 2
    vols = load_volumes(tiny_rsna, uids, depth=8, size=16, cache_dir=tmp_path)
    arr = np.asarray(vols)
    assert isinstance(vols, Volumes) and arr.shape == (6, 2, 8, 16, 16) and arr.dtype == np.float16
    y = np.random.default_rng(0).integers(0, 2, (6, 8)).astype(np.float32)

    def train(x):
        random.seed(0); torch.manual_seed(0)
        tf = batch_tfms(x)
        dls = dataloaders(*float_sets(x, y, x[[0, 1]], y[:2], raw=bool(tf)), bs=2, device='cpu', drop_last=False, tfmd=True, **tf)
        model = _tiny_cnn(); opt = torch.optim.SGD(model.parameters(), lr=0.5)
        for _ in range(2):
            for xb, yb in dls.train:
                assert xb.dtype == torch.float32
                opt.zero_grad(); torch.nn.functional.binary_cross_entropy_with_logits(model(xb), yb).backward(); opt.step()
        return model

    m_ref, m_vol = train(arr), train(vols)
    assert all(torch.equal(a, b) for a, b in zip(m_ref.state_dict().values(), m_vol.state_dict().values()))
    assert not torch.equal(m_ref.head[-1].weight, _tiny_cnn().head[-1].weight)         # it did train
    p_ref = predict(m_ref, arr, bs=4, device='cpu')
    assert np.array_equal(predict(m_vol, vols, bs=4, device='cpu', prep=vols.prep), p_ref)
    assert np.array_equal(predict(m_vol, vols, bs=4, device='cpu'), p_ref)              # the default `prep` reads slices too
    # a subset in batches of 1: other batch shapes may take other convolution kernels, so equal up to float rounding
    np.testing.assert_allclose(predict(m_vol, vols[[4, 0]], bs=1, device='cpu', prep=vols.prep), p_ref[[4, 0]], rtol=1e-4, atol=1e-5)


def test_volumes_hold_paths_and_memory_is_bounded_by_the_batch(tiny_rsna, tmp_path):
    "Loading N studies holds N paths, not N volumes: tracemalloc's peak while loading and iterating a DataLoader is about a batch."
    import pickle, tracemalloc
    from pathlib import Path
    from medrepro.data import dataloaders
    from medrepro.rsna.preprocess import batch_tfms
    uids = pd.read_csv(tiny_rsna/'train.csv')['StudyInstanceUID'].astype(str).tolist() * 8      # 24 studies (the files repeat)
    kw = dict(depth=32, size=64, windows=('bone', 'soft'), cache_dir=tmp_path)
    load_volumes(tiny_rsna, uids[:3], **kw)                                      # the caches exist (notebook 10's work, not measured)
    one = 2 * 32 * 64 * 64 * 2                                                   # bytes of one float16 volume: 256 KiB
    y = np.zeros((len(uids), 8), np.float32)

    def peak(stacked):
        tracemalloc.start()
        try:
            x = load_volumes(tiny_rsna, uids, **kw)
            if stacked: x = np.asarray(x)
            dls = dataloaders(*float_sets(x, y, x, y, raw=not stacked), bs=2, device='cpu', drop_last=False, tfmd=True, **({} if stacked else batch_tfms(x)))
            n = sum(len(xb) for xb, _ in dls.train)
            return x, n, tracemalloc.get_traced_memory()[1]
        finally: tracemalloc.stop()

    vols, n, p_ref = peak(False)
    assert n == len(uids) and all(isinstance(s, Path) for s in vols.sources)
    assert len(pickle.dumps(vols)) < one / 10                                    # what travels to DataLoader workers: paths
    assert p_ref < 6 * one, f'peak {p_ref / one:.1f} volumes for batches of 2'     # measured: 4.3 (a batch of 2 read, collated, the next read)
    _, _, p_stack = peak(True)                                                   # the stacked array: the whole set, the measure sees it
    assert p_stack > len(uids) * one, p_stack / one
