"ISIC 2018 Task 1 loaders, generator and split (the 2019 part lives in its own tests); the memory-mapped set cache: parallel =\nserial, bad pairs skipped (paper) or fatal (smoke), the benchmark's `prepare`."
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from medrepro.core import DataError
from medrepro.isic2018.data import (seg_items, seg_folders, read_pair, read_mask, image_size, load_pair, load_seg_set, seg_split,
                                    SegItem, decode_pair, prepare)
from medrepro.data import dataset_path, BadItems, RowView
from medrepro.isic2018.sample import make_isic2018
from medrepro.isic2018.eda import seg_stats


@pytest.fixture
def sample(tmp_path):
    return make_isic2018(tmp_path/'isic2018', n=4, seed=3)


def _pair(folder, part, k, w, h, mask_size=None, val=255):
    inp, gt = (folder/f for f in seg_folders(part))
    inp.mkdir(parents=True, exist_ok=True); gt.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 200, np.uint8)).save(inp/f'ISIC_{k:07d}.jpg')
    mw, mh = mask_size or (w, h)
    m = np.zeros((mh, mw), np.uint8); m[mh // 4: mh // 2, mw // 4: mw // 2] = val
    Image.fromarray(m).save(gt/f'ISIC_{k:07d}_segmentation.png')
    return inp/f'ISIC_{k:07d}.jpg', gt/f'ISIC_{k:07d}_segmentation.png'


def test_generator_read_back(sample, tmp_path):
    items = seg_items(sample)
    assert [it.part for it in items] == ['train'] * 4 and all(it.id.startswith('ISIC_') and len(it.id) == 12 for it in items)
    for it in items:
        assert it.mask.name == f'{it.id}_segmentation.png' and it.mask.parent.name == 'ISIC2018_Task1_Training_GroundTruth'
        with Image.open(it.mask) as m, Image.open(it.image) as im:
            assert m.mode == 'L' and im.mode == 'RGB' and im.format == 'JPEG' and m.size == im.size
            assert set(np.unique(np.asarray(m))) == {0, 255}
        img, m = read_pair(it)
        assert img[m].mean() < img[~m].mean()          # the lesion is darker
    again = make_isic2018(tmp_path/'again', n=4, seed=3)
    assert all((again/f.relative_to(sample)).read_bytes() == f.read_bytes() for f in sample.rglob('*.*'))


def test_parts_and_pairing(tmp_path):
    _pair(tmp_path, 'train', 1, 40, 30); _pair(tmp_path, 'train', 2, 40, 30)
    _pair(tmp_path, 'valid', 3, 50, 40); _pair(tmp_path, 'test', 4, 30, 30)
    (tmp_path/seg_folders('train')[0]/'LICENSE.txt').write_text('x')      # extra files in the real folders are ignored
    items = seg_items(tmp_path)
    assert [(it.id, it.part) for it in items] == [('ISIC_0000001', 'train'), ('ISIC_0000002', 'train'), ('ISIC_0000003', 'valid'), ('ISIC_0000004', 'test')]
    assert [it.id for it in seg_items(tmp_path, 'valid')] == ['ISIC_0000003']
    assert [it.id for it in seg_items(tmp_path/seg_folders('test')[0])] == ['ISIC_0000001', 'ISIC_0000002', 'ISIC_0000003', 'ISIC_0000004']
    assert {k: v.tolist() for k, v in seg_split(items).items()} == {'train': [0, 1], 'valid': [2], 'test': [3]}   # positions into items
    img, m = read_pair(items[2])
    assert img.shape == (40, 50, 3) and m.sum() == 10 * 13


def test_bad_inputs(tmp_path):
    with pytest.raises(DataError, match='not a folder'): seg_items(tmp_path/'nope')
    with pytest.raises(DataError, match='no ISIC 2018 Task 1 folders'): seg_items(tmp_path)
    img, msk = _pair(tmp_path, 'train', 1, 40, 30, mask_size=(41, 30))
    with pytest.raises(DataError, match=r'mask is 41x30 but its image ISIC_0000001.jpg is 40x30') as e: read_pair(seg_items(tmp_path)[0])
    assert str(msk) in str(e.value)
    msk.unlink()
    with pytest.raises(DataError, match='missing mask') as e: seg_items(tmp_path)
    assert str(img) in str(e.value)
    img.unlink(); _pair(tmp_path, 'train', 2, 40, 30); msk.write_bytes((tmp_path/seg_folders('train')[1]/'ISIC_0000002_segmentation.png').read_bytes())
    with pytest.raises(DataError, match='mask without an image'): seg_items(tmp_path)
    msk.unlink()
    bad = tmp_path/seg_folders('train')[0]/'ISIC_0000002.jpg'; bad.write_bytes(b'\xff\xd8\xff garbage')
    with pytest.raises(DataError, match='unreadable image') as e: read_pair(seg_items(tmp_path)[0])
    assert str(bad) in str(e.value)
    (tmp_path/seg_folders('train')[1]/'ISIC_0000002_segmentation.png').write_bytes(b'nope')
    with pytest.raises(DataError, match='unreadable mask'): read_mask(tmp_path/seg_folders('train')[1]/'ISIC_0000002_segmentation.png')
    with pytest.raises(DataError, match='mask folder missing'):
        (tmp_path/'x'/seg_folders('valid')[0]).mkdir(parents=True); seg_items(tmp_path/'x')
    with pytest.raises(DataError, match='does not exist'): dataset_path('isic2018', tmp_path/'missing')


@pytest.mark.parametrize('values', [(0, 255), (0, 1), (10, 200), (3, 4)])
def test_masks_are_read_by_their_values(tmp_path, values):
    "Issue 24 (2): a 0/1 mask (or any two values) is the same lesion as a 0/255 one, not an empty mask."
    _pair(tmp_path, 'train', 1, 40, 30, val=values[1])
    msk = tmp_path/seg_folders('train')[1]/'ISIC_0000001_segmentation.png'
    if values[0]: Image.fromarray(np.where(np.asarray(Image.open(msk)) == values[1], values[1], values[0]).astype(np.uint8)).save(msk)
    img, m = read_pair(seg_items(tmp_path)[0])
    assert m.dtype == bool and m.sum() == 8 * 10 and m[7:15, 10:20].all()       # rows 7:15, cols 10:20 of 30x40
    assert seg_stats(seg_items(tmp_path)).mask_frac[0] == pytest.approx(80 / 1200)
    x, y = load_pair(seg_items(tmp_path)[0], (15, 20), tmp_path/'cache')
    assert set(np.unique(y)) == {0, 1} and y.sum() > 0


def test_masks_that_are_not_binary_are_an_error(tmp_path):
    _, msk = _pair(tmp_path, 'train', 1, 40, 30)
    Image.fromarray(np.tile(np.arange(40, dtype=np.uint8) * 6, (30, 1))).save(msk)        # a grey ramp: 40 values
    with pytest.raises(DataError, match=r'not a binary mask: 40 values \(0, 6, 12') as e: read_mask(msk)
    assert str(msk) in str(e.value)
    Image.fromarray(np.full((30, 40), 255, np.uint8)).save(msk)                          # one value: all lesion
    assert read_mask(msk).all()
    Image.fromarray(np.full((30, 40), 0, np.uint8)).save(msk)                            # or all background
    assert not read_mask(msk).any()
    Image.fromarray(np.full((30, 40), 77, np.uint8)).save(msk)                           # one other value: which is it?
    with pytest.raises(DataError, match='not a binary mask'): read_mask(msk)


def test_macos_appledouble_files_are_ignored(tmp_path):
    "Issue 24 (9): macOS `._` files beside the images and masks are not pairs (no 'mask without an image' error)."
    _pair(tmp_path, 'train', 1, 40, 30); _pair(tmp_path, 'train', 2, 40, 30)
    inp, gt = (tmp_path/f for f in seg_folders('train'))
    junk = b'\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        '
    for f in (inp/'._ISIC_0000001.jpg', gt/'._ISIC_0000001_segmentation.png', gt/'._ISIC_0000003_segmentation.png', tmp_path/'._ISIC2018_Task1-2_Training_Input'):
        f.write_bytes(junk)
    items = seg_items(tmp_path)
    assert [it.id for it in items] == ['ISIC_0000001', 'ISIC_0000002']
    assert [it.mask.name for it in items] == ['ISIC_0000001_segmentation.png', 'ISIC_0000002_segmentation.png']
    assert read_pair(items[0])[1].sum() == 8 * 10


def test_load_is_cached_and_resized(tmp_path, monkeypatch):
    _pair(tmp_path/'d', 'train', 1, 400, 300)
    it = seg_items(tmp_path/'d')[0]
    x, y = load_pair(it, (30, 40), tmp_path/'cache')
    assert x.shape == (30, 40, 3) and y.shape == (30, 40) and y.dtype == np.uint8
    assert 7 * 10 <= y.sum() <= 8 * 10           # rows 75:150, cols 100:200 of 300x400 scaled by 1/10
    ds = load_seg_set([it], (30, 40), tmp_path/'cache')
    assert ds.x.shape == (1, 30, 40, 3) and ds.ids == ['ISIC_0000001'] and isinstance(ds.x, np.memmap)
    assert (ds.x[0] == x).all() and (ds.y[0] == y).all() and ds.y.dtype == np.uint8
    import medrepro.isic2018.data as D
    monkeypatch.setattr(D, 'read_pair', lambda *a, **k: (_ for _ in ()).throw(AssertionError('decoded again')))
    x2, y2 = load_pair(it, (30, 40), tmp_path/'cache')           # served from the cache: no decoding
    assert (x2 == x).all() and (y2 == y).all()
    ds2 = load_seg_set([it], (30, 40), tmp_path/'cache')         # the set's memmap too
    assert ds2.x.filename == ds.x.filename and (ds2.y[0] == y).all()


def _six(tmp_path):
    d = make_isic2018(tmp_path/'isic2018', n=6, seed=2)
    return d, seg_items(d)


def test_set_cache_parallel_is_serial(tmp_path):
    d, items = _six(tmp_path)
    one = load_seg_set(items, (48, 64), tmp_path/'c1', workers=1)
    two = load_seg_set(items, (48, 64), tmp_path/'c2', workers=2)
    assert one.x.shape == (6, 48, 64, 3) and one.y.shape == (6, 48, 64) and one.y.max() == 1
    np.testing.assert_array_equal(one.x, two.x); np.testing.assert_array_equal(one.y, two.y)
    d0 = decode_pair(items[3], (48, 64))
    np.testing.assert_array_equal(one.x[3], d0['x']); np.testing.assert_array_equal(one.y[3], d0['y'])


def test_bad_pair_fatal_under_smoke_skipped_under_paper(tmp_path):
    d, items = _six(tmp_path)
    victim = items[1].image; victim.write_bytes(victim.read_bytes()[:300])
    with pytest.raises(DataError, match=victim.name): load_seg_set(items, (24, 32), tmp_path/'c', bad=BadItems('raise'))
    bad = BadItems('skip')
    ds = load_seg_set(items, (24, 32), tmp_path/'c', bad=bad)
    assert len(ds) == 5 and items[1].id not in ds.ids and len(bad) == 1
    assert isinstance(ds.x, RowView) and ds.x.shape == (5, 24, 32, 3)
    np.testing.assert_array_equal(ds.y[1], decode_pair(items[2], (24, 32))['y'])      # the views skip the bad row
    np.testing.assert_array_equal(ds.x[np.array([0, 1])][1], decode_pair(items[2], (24, 32))['x'])
    again = BadItems('raise')                                                          # reread: remembered, not fatal
    assert load_seg_set(items, (24, 32), tmp_path/'c', bad=again).ids == ds.ids and len(again) == 1


def test_prepare_for_the_benchmark(tmp_path):
    d, items = _six(tmp_path)
    r = prepare(d, tmp_path/'cache', dict(img_h=48, img_w=64))
    assert r['items'] == 6 and r['bad'] == 0 and r['train'] >= 3
    assert r['cache_bytes'] == sum(f.stat().st_size for f in (tmp_path/'cache').glob('isic2018-*')) >= 6 * 48 * 64 * 4


def test_split_random():
    items = [SegItem(f'ISIC_{i:07d}', None, None) for i in range(36)]
    s = seg_split(items, valid=0.15, test=0.3, seed=1)
    assert [len(s[k]) for k in ('train', 'valid', 'test')] == [20, 5, 11]
    assert sorted(np.concatenate(list(s.values())).tolist()) == list(range(36))           # each pair in one part
    assert all((s[k] == seg_split(items, valid=0.15, test=0.3, seed=1)[k]).all() for k in s)
    with pytest.raises(ValueError, match='too few'): seg_split(items[:2], valid=0.5, test=0.5)


def test_stats(tmp_path):
    _pair(tmp_path, 'train', 1, 40, 20)
    st = seg_stats(seg_items(tmp_path))
    assert st.loc[0, ['width', 'height']].tolist() == [40, 20]
    assert st.loc[0, 'mask_frac'] == pytest.approx(5 * 10 / 800)


@pytest.mark.realdata
def test_real_pairs(shared_data):
    root = shared_data/'isic2018'
    if not root.is_dir(): pytest.skip(f'{root} not present')
    items = seg_items(root)
    assert len(items) == 36 and all(it.part == 'train' for it in items)
    st = seg_stats(items)                                   # every mask read at full size against its image's header
    assert (st.width >= 1000).all() and (st.width <= 6000).all() and st.mask_frac.between(0.005, 0.99).all()
    img, m = read_pair(items[0], max_side=256)              # JPEG draft decoding: small array straight away
    assert max(img.shape[:2]) <= 256 and m.shape == img.shape[:2] and 0 < m.mean() < 1
