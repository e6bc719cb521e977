"RSNA at full scale (issue 23): parallel reading identical to serial, bad studies skipped under paper and fatal under smoke, cache keys stable across runs with stale entries removed, the localiser key without its weights, and the paper profile's preflight."
import os, subprocess, sys, json
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from medrepro.core import DataError
from medrepro.data import BadItems
from medrepro.rsna.data import VERTEBRAE
from medrepro.rsna.sample import write_sample
from medrepro.rsna.preprocess import load_inputs, prepare, inputs_max_bytes

ROOT = Path(__file__).resolve().parents[1]
KW = dict(n_slices=2, img_size=16, crop_size=8, context=1)


@pytest.fixture(scope='module')
def tiny_rsna(tmp_path_factory):
    "Four small generated studies (48 px, 24 slices)."
    return write_sample(tmp_path_factory.mktemp('rsna')/'rsna', n=4, seed=3, size=48, n_slices=24)


def _uids(root): return pd.read_csv(root/'train.csv')['StudyInstanceUID'].astype(str).tolist()


def _all(seq, crops):
    return [crops[:]] + [seq[v][:] for v in VERTEBRAE] + [crops.raw(i) for i in range(len(crops))]


def test_parallel_reading_is_identical_to_serial(tiny_rsna, tmp_path):
    uids = _uids(tiny_rsna)
    for route in ('hu', 'jpg'):
        a = load_inputs(tiny_rsna, uids, tmp_path/'serial', route=route, workers=1, **KW)
        b = load_inputs(tiny_rsna, uids, tmp_path/'parallel', route=route, workers=2, **KW)
        assert a[2] == b[2] and all(np.array_equal(x, y) for x, y in zip(_all(*a[:2]), _all(*b[:2])))
    for f in (tmp_path/'serial'/'rsna_inputs').glob('*.npy'):                # the cache files themselves, byte for byte
        assert f.read_bytes() == (tmp_path/'parallel'/'rsna_inputs'/f.name).read_bytes()


@pytest.fixture
def one_bad(tiny_rsna, tmp_path):
    "A copy of the sample in which one study's slice file is truncated."
    import shutil
    root = tmp_path/'bad'; shutil.copytree(tiny_rsna, root)
    uid = _uids(root)[1]
    f = sorted((root/'train_images'/uid).iterdir())[3]
    f.write_bytes(f.read_bytes()[:200])
    return root, uid


def test_a_bad_study_is_skipped_and_listed_under_paper(one_bad, tmp_path):
    root, uid = one_bad
    bad = BadItems('skip')
    seq, crops, src = load_inputs(root, _uids(root), tmp_path, workers=2, bad=bad, **KW)
    assert len(crops) == 3 and uid not in crops.uids and crops.uids == [u for u in _uids(root) if u != uid]
    assert [u for u, _ in bad.items] == [uid] and uid in bad.table().item.iloc[0]
    out = bad.save(tmp_path/'bad_items.csv')
    assert pd.read_csv(out).item.tolist() == [uid]
    r = prepare(root, tmp_path/'prep', dict(img_size=16, crop_size=8, slice_limits=None), workers=1)
    assert r['items'] == 3 and [u for u, _ in r['bad']] == [uid]


def test_a_bad_study_is_fatal_under_smoke(one_bad, tmp_path):
    root, uid = one_bad
    for workers in (1, 2):
        with pytest.raises((DataError, OSError, ValueError)) as e:
            load_inputs(root, _uids(root), tmp_path/str(workers), workers=workers, bad=BadItems('raise'), **KW)
        assert uid in str(e.value)


def test_cache_keys_are_stable_and_stale_entries_go(tiny_rsna, tmp_path):
    import shutil
    root = tmp_path/'r'; shutil.copytree(tiny_rsna, root)
    uids = _uids(root)
    load_inputs(root, uids, tmp_path/'c', **KW)
    files = lambda: {f.name: f.stat().st_mtime_ns for f in (tmp_path/'c'/'rsna_inputs').iterdir()}
    first = files()
    load_inputs(root, uids, tmp_path/'c', **KW)                              # a rerun: same keys, nothing rebuilt
    assert files() == first
    f = sorted((root/'train_images'/uids[0]).iterdir())[0]                  # one study's file changes: that study alone is rebuilt
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    load_inputs(root, uids, tmp_path/'c', **KW)
    now = files()
    assert len(now) == len(first) and {k for k in now if k not in first} and all(k.startswith(uids[0]) for k in set(now) - set(first))
    assert all(now[k] == first[k] for k in now if not k.startswith(uids[0]))


def test_localiser_key_is_its_config_not_its_weights(tmp_path):
    from medrepro.core import ModelConfig, save_model
    from medrepro.rsna.localise import Localiser, LocaliserNet
    cfg = ModelConfig('rsna_localiser', dict(in_ch=2, widths=[4, 8], hidden=4, pos=True), meta=dict(depth=8, img_size=16, windows=['bone', 'soft'], seed=0))
    keys = []
    for seed in (0, 1):                                                      # two trainings of one config: other weights
        torch.manual_seed(seed)
        save_model(tmp_path/str(seed), LocaliserNet(2, [4, 8], 4, pos=True), cfg)
        keys.append(Localiser.load(tmp_path/str(seed), 'cpu').key)
    assert (tmp_path/'0'/'model.pth').read_bytes() != (tmp_path/'1'/'model.pth').read_bytes() and keys[0] == keys[1]
    save_model(tmp_path/'2', LocaliserNet(2, [4, 8], 4, pos=True), ModelConfig(cfg.arch, cfg.params, meta={**cfg.meta, 'seed': 1}))
    assert Localiser.load(tmp_path/'2', 'cpu').key != keys[0]


def test_paper_cache_size_per_study_is_bounded():
    "At the paper's settings a study's cache takes at most its picks at one byte (JPG) plus two (HU) per pixel, plus int16 crops."
    lim = {'C1': 100, 'C2': 25, 'C3': 50, 'C4': 55, 'C5': 25, 'C6': 80, 'C7': 75}
    assert inputs_max_bytes(8, 224, 64, 1, lim) == 410 * 224**2 * 3 + 7 * 8 * 3 * 64**2 * 2


@pytest.mark.slow
def test_a_missing_weight_file_fails_in_the_first_cells(tiny_rsna, tmp_path):
    "Notebook 16 under preflight with pretrained weights and an empty torch cache stops before any data is read, naming the file and `make weights`."
    from medrepro.report import notebook_source
    from medrepro.data import weight_file
    src = notebook_source(ROOT/'nbs'/'16_rsna.train.ipynb', 'smoke', dict(data_dir=str(tiny_rsna), preflight=True, pretrained=True, n_test=1))
    upto = next(i for i, s in enumerate(src) if 'mdata.preflight(' in s)
    script = tmp_path/'first_cells.py'
    script.write_text('\n\n'.join(f'exec(compile({s!r}, "cell{i}", "exec"))' for i, s in enumerate(src[:upto + 1])) + '\nprint("NOT STOPPED")\n')
    env = {**os.environ, 'TORCH_HOME': str(tmp_path/'torch'), 'MEDREPRO_CACHE': str(tmp_path/'cache'), 'MPLBACKEND': 'Agg'}
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    name = Path(weight_file('EfficientNet_B0_Weights')[0]).name
    assert r.returncode != 0 and 'NOT STOPPED' not in r.stdout, r.stdout[-2000:]
    assert name in r.stderr and 'make weights' in r.stderr and 'preflight rsna' in r.stdout, r.stderr[-2000:]
    assert not (tmp_path/'cache'/'rsna'/'rsna_inputs').exists()                 # nothing decoded


def test_batches_converted_on_the_device_equal_the_float_path(tiny_rsna, tmp_path):
    "The DataLoader of stored arrays + `batch_tfms` gives the batches of the float32 path, and the same random flips."
    from medrepro.data import dataloaders
    from medrepro.rsna.preprocess import float_sets, batch_tfms
    y = np.zeros((4, 1), np.float32)
    for route in ('hu', 'jpg'):
        seq, crops, _ = load_inputs(tiny_rsna, _uids(tiny_rsna), tmp_path, route=route, **KW)
        for x in (crops, seq['C3'], seq['C1']):
            raw = dataloaders(*float_sets(x, y, x, y, raw=True), bs=3, device='cpu', tfmd=True, **batch_tfms(x))
            flt = dataloaders(*float_sets(x, y, x, y), bs=3, device='cpu', tfmd=True)
            pairs = list(zip(raw.valid, flt.valid))
            assert len(pairs) == 2 and all(a[0].dtype == torch.float32 and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in pairs)
            ra, fa = float_sets(x, y, x, y, raw=True)[0], float_sets(x, y, x, y)[0]
            for i in range(4):
                torch.manual_seed(i); r = raw.after_batch(ra[i][0][None])
                torch.manual_seed(i); assert torch.equal(r[0], fa[i][0])


def test_jpg_route_is_stored_compressed_and_decodes_to_the_same_pixels(tiny_rsna, tmp_path):
    "The JPG route's cache holds PNG bytes (smaller than its pixels), and a vertebra's slices decode to exactly what `jpg_grey` makes."
    from medrepro.rsna.dicom import read_series
    from medrepro.rsna.data import study_presence
    from medrepro.rsna.preprocess import jpg_grey, slice_picks, study_stores
    from medrepro.rsna.data import vertebra_slices
    uid = _uids(tiny_rsna)[0]
    kw = dict(KW, slice_limits={v: 6 for v in VERTEBRAE})
    seq, _, _ = load_inputs(tiny_rsna, [uid], tmp_path, route='jpg', **kw)
    s = read_series(tiny_rsna/'train_images'/uid)
    present = vertebra_slices(study_presence(tiny_rsna, s))
    for v in VERTEBRAE:
        if present[v]: assert np.array_equal(seq[v].raw(0), jpg_grey(s.hu[slice_picks(present[v], 6)], 16))
    st = study_stores(tiny_rsna, [uid], tmp_path, **kw)[0]
    rows = len(st['hu'])
    assert st['jpg'].dtype == np.uint8 and st['jpg'].ndim == 1 and st['jpg'].nbytes < rows * 16 * 16


def test_pool_workers_write_their_studies(tiny_rsna, tmp_path, monkeypatch):
    "With a pool, each study's cache files are written by the worker that read it (nothing but its meta comes back to the parent)."
    import medrepro.rsna.preprocess as pre
    write, marks = pre._write_entry, tmp_path/'writers'
    marks.mkdir()
    def spy(base, arrays, meta):
        (marks/f'{os.getpid()}-{base.name}').touch(); return write(base, arrays, meta)
    monkeypatch.setattr(pre, '_write_entry', spy)
    seq, crops, _ = load_inputs(tiny_rsna, _uids(tiny_rsna), tmp_path/'c', workers=2, **KW)
    pids = {int(f.name.split('-')[0]) for f in marks.iterdir()}
    assert len(list(marks.iterdir())) == 4 and os.getpid() not in pids and len(crops[:]) == 4


def test_pool_workers_fork_with_the_parents_objects_frozen():
    "`imap_items` freezes the parent's objects for the collector while its forked workers run (their pages stay shared), and unfreezes after."
    import gc
    from medrepro.data import parallel_map
    assert parallel_map(_freeze_count, [0, 1], workers=2) and all(c > 0 for c in parallel_map(_freeze_count, [0, 1], workers=2))
    assert gc.get_freeze_count() == 0


def _freeze_count(_):
    import gc
    return gc.get_freeze_count()


def test_presence_and_inputs_of_a_study_need_no_whole_volume_copy():
    "`vertebra_presence` works slice by slice and `study_arrays` reads the picked slices in chunks: neither allocates a copy of the volume."
    import tracemalloc
    from medrepro.rsna.dicom import CTSeries
    from medrepro.rsna.data import vertebra_presence
    from medrepro.rsna.preprocess import study_arrays
    n, S = 64, 128
    lab = np.zeros((n, S, S), np.uint8)
    for i in range(7): lab[4 + 8 * i: 12 + 8 * i, 30:90, 40:100] = i + 1
    hu = np.where(lab > 0, 700, -1000).astype(np.int16)
    s = CTSeries(hu=hu, z=-np.arange(n, dtype=float), spacing=(1., 1, 1), slice_numbers=np.arange(n), files=[], origin=np.zeros(3),
                 orientation=np.array([1., 0, 0, 0, 1, 0]), uid='t', positions=np.zeros((n, 3)))
    tracemalloc.start()
    try:
        pres = vertebra_presence(None, s, labels=lab)
        peak_p = tracemalloc.get_traced_memory()[1]; tracemalloc.reset_peak()
        study_arrays(s, pres, n_slices=2, img_size=16, crop_size=8, slice_limits={v: 8 for v in VERTEBRAE}, chunk=8)
        peak_a = tracemalloc.get_traced_memory()[1]
    finally: tracemalloc.stop()
    assert pres.attrs['boxes']['C4'] == (30, 40, 90, 100) and pres['C7'].sum() == 8
    assert peak_p < lab.nbytes / 2 and peak_a < hu.nbytes / 2, (peak_p, peak_a, lab.nbytes)


def test_preprocess_series_removes_its_stale_entries(tiny_rsna, tmp_path):
    "The 3D CNN's cache: a study rebuilt under other settings leaves one entry for it, and other studies' entries stay."
    from medrepro.rsna.dicom import preprocess_series
    a, b = (tiny_rsna/'train_images'/u for u in _uids(tiny_rsna)[:2])
    preprocess_series(a, depth=8, size=16, cache_dir=tmp_path); preprocess_series(b, depth=8, size=16, cache_dir=tmp_path)
    x = preprocess_series(a, depth=6, size=16, cache_dir=tmp_path)
    assert len(list(tmp_path.glob(f'rsna-{a.name}-*.npz'))) == 1 and len(list(tmp_path.glob(f'rsna-{b.name}-*.npz'))) == 1
    assert np.array_equal(preprocess_series(a, depth=6, size=16, cache_dir=tmp_path), x) and x.shape[1] == 6


@pytest.mark.slow
@pytest.mark.parametrize('nb', ['14_rsna.localise', '15_rsna.model'])
def test_preflight_of_14_and_15_stops_before_any_decoding(tiny_rsna, tmp_path, nb):
    "Notebooks 14 and 15 under preflight, on a copy of the data with a study's folder missing: the first cells stop, listing it; nothing is cached."
    import shutil
    from medrepro.report import notebook_source
    root = tmp_path/'rsna'; shutil.copytree(tiny_rsna, root)
    gone = _uids(root)[2]; shutil.rmtree(root/'train_images'/gone)
    src = notebook_source(ROOT/'nbs'/f'{nb}.ipynb', 'smoke', dict(data_dir=str(root), preflight=True, n_test=1))
    upto = next(i for i, s in enumerate(src) if 'mdata.preflight(' in s)
    assert upto < next(i for i, s in enumerate(src) if 'cache_dir=cache' in s or 'load_volumes(' in s)   # before anything is read
    script = tmp_path/'first_cells.py'
    script.write_text('\n\n'.join(f'exec(compile({s!r}, "cell{i}", "exec"))' for i, s in enumerate(src[:upto + 1])) + '\nprint("NOT STOPPED")\n')
    env = {**os.environ, 'MEDREPRO_CACHE': str(tmp_path/'cache'), 'MPLBACKEND': 'Agg'}
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode != 0 and 'NOT STOPPED' not in r.stdout and 'preflight rsna' in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    assert gone in r.stderr, r.stderr[-2000:]
    assert not any((tmp_path/'cache').rglob('*.npz'))


def test_the_3d_cnn_volumes_skip_a_bad_study_under_paper(one_bad, tmp_path):
    "Notebook 17's 3D CNN volumes (`load_volumes`): under 'skip' an unreadable study is left out and listed; under 'raise' it stops, naming it."
    from medrepro.rsna.preprocess import load_volumes
    root, uid = one_bad
    bad = BadItems('skip')
    x = load_volumes(root, _uids(root), depth=4, size=8, cache_dir=tmp_path, bad=bad)
    assert x.shape == (3, 2, 4, 8, 8) and [u for u, _ in bad.items] == [uid]
    keep = [u for u in _uids(root) if u != uid]
    assert np.array_equal(x, load_volumes(root, keep, depth=4, size=8, cache_dir=tmp_path))
    with pytest.raises((DataError, OSError, ValueError)) as e:
        load_volumes(root, _uids(root), depth=4, size=8, cache_dir=tmp_path/'r')
    assert uid in str(e.value)
    src = '\n'.join(''.join(c['source']) for c in json.loads((ROOT/'nbs'/'17_rsna.evaluate.ipynb').read_text())['cells'])
    assert 'load_volumes(root, test_uids' in src and "cache_dir=cache_dir('rsna'), bad=bad)" in src   # 17 reads the volumes under its policy
