"ISIC 2019 labels: CSV readers, bad inputs, the generator read back, the real CSVs, splits and the balanced variant."
from pathlib import Path
import numpy as np, pandas as pd, pytest
from medrepro.core import DataError
from medrepro.isic2019.data import (CLASSES, GT_CSV, META_CSV, IMG_DIR, GT_COLUMNS, META_COLUMNS, THESIS_COUNTS, BALANCED_CLASSES,
                                   read_groundtruth, read_metadata, isic2019_table, load_images, split_70_10_20, cv_folds,
                                   merge_rare, balanced_variant)
from medrepro.data import leak_fraction, split_labels
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
    (f,) = tmp_path.glob('*.npz')
    np.testing.assert_array_equal(load_images(t.path[:3], 32, cache_dir=tmp_path), a)
    f.write_bytes(b'garbage')                                                          # unreadable entry: rebuilt
    with pytest.warns(UserWarning): np.testing.assert_array_equal(load_images(t.path[:3], 32, cache_dir=tmp_path), a)


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
