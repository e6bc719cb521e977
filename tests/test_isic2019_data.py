"ISIC 2019 labels: CSV readers, bad inputs, the generator read back, the real CSVs, splits and the balanced variant; the one\nmemory-mapped image cache (parallel = serial, bad images skipped or fatal, one file for every run) and the preflight."
from pathlib import Path
import numpy as np, pandas as pd, pytest
from medrepro.core import DataError
from medrepro.isic2019.data import (CLASSES, GT_CSV, META_CSV, IMG_DIR, GT_COLUMNS, META_COLUMNS, THESIS_COUNTS, BALANCED_CLASSES,
                                   read_groundtruth, read_metadata, isic2019_table, load_images, split_70_10_20, cv_folds,
                                   merge_rare, balanced_variant, table_images, channel_stats, decode_image, prepare)
from medrepro.data import leak_fraction, split_labels, BadItems, RowView
from medrepro.isic2019.sample import write_isic2019, sample_counts

GT_HDR = ','.join(GT_COLUMNS)
ROW = 'ISIC_0000000,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0'


def _w(path, lines):
    path.write_bytes(('\r\n'.join(lines) + '\r\n').encode()); return path


@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    return write_isic2019(tmp_path_factory.mktemp('s')/'isic2019', 80, seed=3)


def test_groundtruth_reads_labels(tmp_path):
    gt = read_groundtruth(_w(tmp_path/'g.csv', [GT_HDR, ROW, 'ISIC_0000002_downsampled,0.0,0.0,0.0,0.0,0.0,1.0,0.0,0.0,0.0']))
    assert gt.image.tolist() == ['ISIC_0000000', 'ISIC_0000002_downsampled']
    assert gt.label.tolist() == ['NV', 'DF'] and gt.y.tolist() == [1, 5]


@pytest.mark.parametrize('lines, msg', [
    ([GT_HDR, 'ISIC_0000000,0.0,1.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0'], 'not one-hot'),
    ([GT_HDR, 'ISIC_0000000,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0'], 'not one-hot'),
    ([GT_HDR, 'ISIC_0000000,0.0,0.5,0.5,0.0,0.0,0.0,0.0,0.0,0.0'], 'not one-hot'),
    ([GT_HDR, 'ISIC_0000000,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0'], 'UNK'),
    ([GT_HDR, 'ISIC_0000000,0.0,yes,0.0,0.0,0.0,0.0,0.0,0.0,0.0'], 'not a number'),
    ([GT_HDR.replace(',UNK', ''), 'ISIC_0000000,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0'], 'lacks column'),
    ([GT_HDR, ROW, ROW], 'listed twice'),
])
def test_groundtruth_bad_rows(tmp_path, lines, msg):
    p = _w(tmp_path/'bad_gt.csv', lines)
    with pytest.raises(DataError, match=msg) as e: read_groundtruth(p)
    assert 'bad_gt.csv' in str(e.value)


def test_metadata(tmp_path):
    md = read_metadata(_w(tmp_path/'m.csv', [','.join(META_COLUMNS), 'ISIC_0000000,55,anterior torso,,female', 'ISIC_0000001,,,BCN_0000001,']))
    assert md.age_approx[0] == 55 and np.isnan(md.age_approx[1]) and md.lesion_id.tolist() == ['', 'BCN_0000001'] and md.sex[1] == ''
    with pytest.raises(DataError, match='not a number'): read_metadata(_w(tmp_path/'m2.csv', [','.join(META_COLUMNS), 'ISIC_0000000,old,,,']))
    with pytest.raises(DataError, match='lacks column'): read_metadata(_w(tmp_path/'m3.csv', ['image,age,site,lesion_id,sex', 'ISIC_0000000,5,,,']))
    with pytest.raises(DataError, match='not found'): read_metadata(tmp_path/'nope.csv')


def test_generator_read_back(sample):
    t = isic2019_table(sample)
    assert len(t) == 80 and set(t.label) == set(CLASSES)
    counts = t.label.value_counts()
    assert counts.idxmax() == 'NV' and counts['NV'] > 3 * counts['DF']                 # realistic imbalance
    assert (sample/GT_CSV).read_bytes().count(b'\r\n') == 81 and (sample/META_CSV).read_bytes().count(b'\r\n') == 81
    assert t.lesion_id.ne('').any() and t.group.nunique() < len(t)                     # lesions with several images
    assert t.image.str.endswith('_downsampled').any()
    assert (t.groupby('group').label.nunique() == 1).all()                             # a lesion has one diagnosis
    a, b = (sample/GT_CSV).read_bytes(), write_isic2019(sample.parent/'again', 80, seed=3).joinpath(GT_CSV).read_bytes()
    assert a == b                                                                      # deterministic
    x = load_images(t.path[:4], size=24)
    assert x.shape == (4, 24, 24, 3) and x.dtype == np.uint8 and x.std() > 5


def test_missing_image_and_metadata(sample, tmp_path):
    import shutil
    d = tmp_path/'isic2019'; shutil.copytree(sample, d)
    victim = sorted((d/IMG_DIR).glob('*.jpg'))[5]; victim.unlink()
    with pytest.raises(DataError, match='missing on disk') as e: isic2019_table(d)
    assert victim.name in str(e.value)
    assert len(isic2019_table(d, images=False)) == 80
    lines = (d/META_CSV).read_text().splitlines()
    (d/META_CSV).write_text('\n'.join(lines[:-1]) + '\n')
    with pytest.raises(DataError, match='no metadata row'): isic2019_table(d, images=False)


def test_unreadable_image(tmp_path):
    (p := tmp_path/'ISIC_0000001.jpg').write_bytes(b'\xff\xd8 truncated')
    with pytest.raises(DataError, match='ISIC_0000001.jpg'): load_images([p], 32)


def test_image_cache(sample, tmp_path):
    t = isic2019_table(sample)
    a = load_images(t.path[:3], 32, cache_dir=tmp_path)
    assert isinstance(a, np.memmap) and a.shape == (3, 32, 32, 3) and a.ok.all()
    (f,) = tmp_path.glob('*.x.npy')
    np.testing.assert_array_equal(a[1], decode_image(t.path[1], 32))
    np.testing.assert_array_equal(load_images(t.path[:3], 32, cache_dir=tmp_path), a)
    del a
    f.write_bytes(b'garbage')                                                          # unreadable entry: rebuilt
    b = load_images(t.path[:3], 32, cache_dir=tmp_path)
    np.testing.assert_array_equal(b, load_images(t.path[:3], 32))
    assert len(list(tmp_path.glob('*.x.npy'))) == 1


def test_parallel_decoding_is_the_serial_one(sample, tmp_path):
    t = isic2019_table(sample)
    one = load_images(t.path, 48, 64, cache_dir=tmp_path/'serial', workers=1)
    two = load_images(t.path, 48, 64, cache_dir=tmp_path/'pool', workers=2)
    assert one.shape == (80, 48, 48, 3) and one.std() > 5
    np.testing.assert_array_equal(one, two)


def _with_broken(sample, tmp_path):
    import shutil
    d = tmp_path/'isic2019'; shutil.copytree(sample, d)
    victim = sorted((d/IMG_DIR).glob('*.jpg'))[7]
    victim.write_bytes(victim.read_bytes()[:200])                                      # a truncated JPEG
    return d, victim


def test_bad_image_fatal_under_smoke_skipped_under_paper(sample, tmp_path):
    d, victim = _with_broken(sample, tmp_path)
    t = isic2019_table(d)
    with pytest.raises(DataError, match=victim.name): table_images(t, 32, 32, tmp_path/'c', bad=BadItems('raise'))
    bad = BadItems('skip')
    x, kept = table_images(t, 32, 32, tmp_path/'c', bad=bad)
    row = int(np.flatnonzero(t.path == victim)[0])
    assert len(kept) == 79 and row not in kept.index and not x.ok[row] and (x[row] == 0).all()
    assert len(bad) == 1 and victim.name in bad.items[0][0] + bad.items[0][1]
    bad.save(tmp_path/'bad_items.csv'); assert victim.name in (tmp_path/'bad_items.csv').read_text()
    again = BadItems('raise')                                                          # a rerun reads the cache: the skip is remembered
    x2, kept2 = table_images(t, 32, 32, tmp_path/'c', bad=again)
    assert kept2.index.equals(kept.index) and len(again) == 1


def test_one_cache_for_every_run(sample, tmp_path):
    "Runs and notebooks read subsets of one file keyed by the data set and the size: no second decode for a subset."
    t = isic2019_table(sample)
    x, df = table_images(t, 32, 64, tmp_path)
    f = sorted(tmp_path.glob('*.x.npy'))
    sub = RowView(x, df.index)[np.array([5, 1, 9])]
    np.testing.assert_array_equal(np.asarray(sub), np.stack([x[5], x[1], x[9]]))
    x2, _ = table_images(isic2019_table(sample), 32, 64, tmp_path)
    assert sorted(tmp_path.glob('*.x.npy')) == f and x2.filename == x.filename
    table_images(t, 24, 64, tmp_path)                                                  # another size: its own file beside it
    assert len(list(tmp_path.glob('*.x.npy'))) == 2


def test_channel_stats_by_chunks_match_the_whole():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8)
    m, s = channel_stats(RowView(x, np.arange(0, 30, 2)), chunk_bytes=400)
    w = x[::2].reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(m, w.mean(0), rtol=1e-12); np.testing.assert_allclose(s, w.std(0) + 1e-3, rtol=1e-12)


def test_prepare_for_the_benchmark(sample, tmp_path):
    d, victim = _with_broken(sample, tmp_path)
    r = prepare(d, tmp_path/'cache', dict(img_size=32, decode_size=64))
    assert r['items'] == 80 and r['bad'] == 1 and r['cache_bytes'] >= 80 * 32 * 32 * 3
    assert len(r['mean']) == 3 and r['train'] > 40
    assert r['cache_bytes'] == sum(f.stat().st_size for f in (tmp_path/'cache').iterdir())


def test_missing_weight_file_stops_in_the_first_cells(tmp_path):
    "Notebook 44a under preflight: a pretrained network without its ImageNet file fails before anything trains, naming the file and `make weights`."
    import os, papermill as pm
    root = Path(__file__).resolve().parents[1]
    env = {'MEDREPRO_REPORTS': str(tmp_path/'reports'), 'MEDREPRO_ROOT': str(root), 'MEDREPRO_BATCH': '1',
           'TORCH_HOME': str(tmp_path/'torch'), 'MEDREPRO_CACHE': str(tmp_path/'cache')}
    old = {k: os.environ.get(k) for k in env}; os.environ.update(env)
    try:
        with pytest.raises(pm.PapermillExecutionError) as e:
            pm.execute_notebook(str(root/'nbs'/'44a_isic2019.train.ipynb'), str(tmp_path/'44a.ipynb'), cwd=str(root/'nbs'),
                                kernel_name='python3', progress_bar=False,
                                parameters=dict(preflight=True, archs=['isic_resnet', 'resnet101'], pretrained_archs=['resnet101']))
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    msg = str(e.value)
    assert 'resnet101-' in msg and '.pth' in msg and 'make weights' in msg, msg
    assert e.value.cell_index <= 6, e.value.cell_index                                 # the first cells, before any data or training
    assert not (tmp_path/'reports'/'isic2019'/'models').exists()


def _toy(n_les=60, per=3):
    rng = np.random.default_rng(0)
    y = np.repeat(rng.integers(0, 4, n_les), per)
    return pd.DataFrame(dict(y=y, group=np.repeat([f'L{i}' for i in range(n_les)], per)))


def _lesions_on_two_sides(d, split):
    return int((pd.Series(split_labels(split, len(d))).groupby(d.group.to_numpy()).nunique() > 1).sum())


def test_splits():
    d = _toy()
    s = split_70_10_20(d, 'image', seed=1)
    assert {k: len(v) for k, v in s.items()} == dict(train=126, valid=18, test=36)
    assert sorted(np.concatenate(list(s.values())).tolist()) == list(range(len(d)))     # the shared dict: each item in one part
    assert leak_fraction(d.group, s, 'test', 'train') > 0                              # image level leaks lesions
    g = split_70_10_20(d, 'lesion', seed=1)
    assert _lesions_on_two_sides(d, g) == 0 and all(len(v) for v in g.values())
    assert abs(len(g['test']) / len(d) - 0.2) < 0.06
    for by in ('image', 'lesion'):
        folds = cv_folds(d, by=by)
        tested = np.zeros(len(d), int)
        for f in folds:
            tested[f['test']] += 1
            assert abs(len(f['valid']) / (len(d) - len(f['test'])) - 0.125) < 0.04
            if by == 'lesion': assert _lesions_on_two_sides(d, f) == 0
        assert (tested == 1).all()
    with pytest.raises(ValueError, match='by must be'): split_70_10_20(d, 'patient')


def test_balanced_variant():
    assert list(merge_rare(['AK', 'VASC', 'BKL'])) == ['AK+DF+VASC+SCC', 'AK+DF+VASC+SCC', 'BKL']
    df = pd.DataFrame(dict(label=np.repeat(list(CLASSES), [10, 30, 9, 3, 8, 1, 2, 2])))
    b = balanced_variant(df, seed=0)
    assert b.label.value_counts().to_dict() == {c: 8 for c in BALANCED_CLASSES}
    assert set(b.label8[b.label == 'AK+DF+VASC+SCC']) == {'AK', 'DF', 'VASC', 'SCC'}
    assert b.y.tolist() == [BALANCED_CLASSES.index(l) for l in b.label]
    assert len(balanced_variant(df, per_class=5)) == 25
    with pytest.raises(ValueError, match='only 8'): balanced_variant(df, per_class=9)


@pytest.mark.realdata
def test_real_csvs(shared_data):
    d = shared_data/'isic2019'
    if not (d/GT_CSV).exists(): pytest.skip('no isic2019 CSVs in the shared data')
    t = isic2019_table(d, images=False)
    assert len(t) == 25331 and t.label.value_counts().to_dict() == THESIS_COUNTS
    assert t.image.str.endswith('_downsampled').sum() == 2074
    ids = t.lesion_id[t.lesion_id.ne('')]
    assert len(ids) == 23247 and ids.nunique() == 11847
    assert balanced_variant(t).label.value_counts().to_dict() == {c: 1987 for c in BALANCED_CLASSES}
    s = split_70_10_20(t, 'lesion')
    assert _lesions_on_two_sides(t, s) == 0
    assert _lesions_on_two_sides(t, split_70_10_20(t, 'image')) > 1000
