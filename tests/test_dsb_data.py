"DSB 2018 loaders: both layouts, the sample generator, bad inputs, split, DataLoaders, and the real Kaggle files."
import re, shutil
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from medrepro.core import DataError
from medrepro.sample import generate
from medrepro.dsb import data as D


@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    return generate('dsb2018', tmp_path_factory.mktemp('dsb')/'dsb2018', n=8, seed=3)


def test_generator_writes_exact_kaggle_layout(sample):
    ids = sorted(p.name for p in (sample/'stage1_train').iterdir())
    assert len(ids) == 8 and all(re.fullmatch(r'[0-9a-f]{64}', i) for i in ids)
    sizes, brightness = set(), []
    for i in ids:
        d = sample/'stage1_train'/i
        assert [p.name for p in (d/'images').iterdir()] == [f'{i}.png']
        im = Image.open(d/'images'/f'{i}.png')
        assert im.mode == 'RGBA' and np.all(np.asarray(im)[..., 3] == 255)
        sizes.add(im.size); brightness.append(np.asarray(im)[..., :3].mean())
        masks = sorted((d/'masks').glob('*.png'))
        assert len(masks) >= 5 and all(re.fullmatch(r'[0-9a-f]{64}\.png', m.name) for m in masks)
        total = np.zeros(im.size[::-1], int)
        for m in masks:
            a = np.asarray(Image.open(m))
            assert Image.open(m).mode == 'L' and set(np.unique(a)) == {0, 255} and a.shape == im.size[::-1]
            total += a > 0
        assert total.max() == 1   # nuclei never overlap
    assert len(sizes) >= 3
    assert min(brightness) < 60 and max(brightness) > 150   # dark fluorescence and light brightfield images


def test_generator_is_deterministic(sample, tmp_path):
    again = generate('dsb2018', tmp_path/'again', n=8, seed=3)
    a = sorted(p.relative_to(sample) for p in sample.rglob('*.png'))
    assert a == sorted(p.relative_to(again) for p in again.rglob('*.png'))
    f = a[0]
    assert (sample/f).read_bytes() == (again/f).read_bytes()


def test_sample_has_touching_nuclei(sample):
    from skimage.measure import label
    touching = 0
    for it in D.dsb_items(sample):
        _, lab = D.load_item(it)
        touching += lab.max() - label(lab > 0, connectivity=1).max()
    assert touching > 0


@pytest.mark.parametrize('sub', ['', 'stage1_train'])
def test_kaggle_layout_from_parent_or_stage1_train(sample, sub):
    layout, root = D.detect_layout(sample/sub if sub else sample)
    assert (layout, root) == ('kaggle', sample/'stage1_train')
    items = D.dsb_items(sample/sub if sub else sample)
    assert len(items) == 8 and items[0].layout == 'kaggle'
    img, lab = D.load_item(items[0])
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert lab.shape == img.shape[:2] and lab.max() == len(list(items[0].masks.glob('*.png')))


def test_processed_layout_jpg(sample, tmp_path):
    root = tmp_path/'processed'; (root/'images').mkdir(parents=True); (root/'masks').mkdir()
    for it in D.dsb_items(sample)[:3]:
        img, lab = D.load_item(it)
        Image.fromarray(img).save(root/'images'/f'{it.id[:8]}.jpg', quality=90)
        Image.fromarray(((lab > 0) * 255).astype(np.uint8)).save(root/'masks'/f'{it.id[:8]}.jpg', quality=90)
    assert D.detect_layout(root) == ('processed', root)
    items = D.dsb_items(root)
    assert [it.layout for it in items] == ['processed'] * 3
    orig = D.load_item(D.dsb_items(sample)[0])[1] > 0
    img, lab = D.load_item(items[0])
    assert img.shape[:2] == lab.shape == orig.shape
    assert ((lab > 0) == orig).mean() > 0.99   # JPEG artefacts removed by the threshold
    assert lab.max() >= 1


def test_no_masks_folder(sample, tmp_path, scratch_copy):
    d = scratch_copy(sample)
    victim = sorted((d/'stage1_train').iterdir())[2]
    shutil.rmtree(victim/'masks')
    with pytest.raises(DataError, match='no masks folder') as e:
        D.dsb_items(d)
    assert victim.name in str(e.value)


def test_empty_masks_folder_is_warned_about_and_listed(sample, scratch_copy):
    "Issue 24 item 6: an image whose masks/ folder is empty is read as 0 nuclei, but never silently."
    d = scratch_copy(sample)
    victims = sorted((d/'stage1_train').iterdir())[1:3]
    for v in victims:
        for f in (v/'masks').iterdir(): f.unlink()
    with pytest.warns(UserWarning, match='2 image\\(s\\) with an empty masks/ folder') as w:
        items = D.dsb_items(d)
    msg = str(w[0].message)
    assert all(f'{v.name}/images/{v.name}.png' in msg for v in victims)
    assert D.empty_masks(items) == [v.name for v in victims]
    _, lab = D.load_item(next(it for it in items if it.id == victims[0].name))
    assert lab.max() == 0                                                 # still readable, as an image without nuclei


def test_mask_size_differs(sample, tmp_path, scratch_copy):
    d = scratch_copy(sample)
    it = D.dsb_items(d)[1]
    bad = sorted(it.masks.glob('*.png'))[0]
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(bad)
    with pytest.raises(DataError, match='mask is 12x10 but its image') as e:
        D.load_item(it)
    assert bad.name in str(e.value)


@pytest.mark.parametrize('which', ['image', 'mask'])
def test_unreadable_png(sample, tmp_path, which, scratch_copy):
    d = scratch_copy(sample)
    it = D.dsb_items(d)[0]
    bad = it.image if which == 'image' else sorted(it.masks.glob('*.png'))[0]
    bad.write_bytes(b'\x89PNG\r\n\x1a\n this is not a png')
    with pytest.raises(DataError, match=f'unreadable {which}') as e:
        D.load_item(it)
    assert str(bad) in str(e.value)


def test_not_a_dsb_folder(tmp_path):
    (tmp_path/'x').mkdir(); (tmp_path/'x'/'notes.txt').write_text('hi')
    with pytest.raises(DataError, match='no DSB layout'): D.dsb_items(tmp_path/'x')
    with pytest.raises(DataError, match='not a folder'): D.dsb_items(tmp_path/'missing')


def test_processed_image_without_mask(tmp_path):
    (tmp_path/'images').mkdir(); (tmp_path/'masks').mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path/'images'/'a.jpg')
    with pytest.raises(DataError, match='no mask with the same name') as e:
        D.dsb_items(tmp_path)
    assert 'a.jpg' in str(e.value)


def _ids(items, split):
    "The image ids of each part of a shared split (positions into `items`)."
    return {k: [items[i].id for i in v] for k, v in split.items()}


def _same(a, b): return all(np.array_equal(a[k], b[k]) for k in ('train', 'valid', 'test'))


def test_split_sizes_like_the_report():
    s = D.split_images(670, seed=42)
    assert [len(s[k]) for k in ('train', 'valid', 'test')] == [402, 134, 134]
    assert sorted(np.concatenate([s['train'], s['valid'], s['test']]).tolist()) == list(range(670))   # a partition
    assert all((np.diff(v) > 0).all() for v in s.values())                                          # the shared type: sorted positions
    assert _same(s, D.split_images(670, seed=42)) and not _same(s, D.split_images(670, seed=1))
    with pytest.raises(ValueError, match='too few'): D.split_images(2, seed=0)


def test_split_keeps_the_earlier_rounding():
    "0.2 of 16 images is 3 (rounded), as before the shared split, not 4 (split_items rounds a share up)."
    from medrepro.data import split_items
    assert [len(D.split_images(16)[k]) for k in ('valid', 'test')] == [3, 3] and len(split_items(16)['test']) == 4


def test_stratified_split_shares_out_rare_modalities():
    ids = list(range(200))
    strata = ['fluo'] * 170 + ['histo'] * 25 + ['bright'] * 5
    s = D.split_images(200, seed=42, strata=strata)
    kind = dict(zip(ids, strata))
    for part, n in (('test', 40), ('valid', 40)):
        assert len(s[part]) == n
        assert sum(kind[i] == 'bright' for i in s[part]) >= 1 and sum(kind[i] == 'histo' for i in s[part]) >= 4
    assert _same(s, D.split_images(200, seed=42, strata=strata))


def test_dataloaders_shapes_and_aligned_augmentation(sample):
    ds = D.load_set(sample, 32)
    assert ds.x.shape == (8, 32, 32, 3) and ds.y.shape == (8, 32, 32) and set(np.unique(ds.y)) <= {0, 1}
    # make the image carry its mask, so a flip applied to only one of them would show
    ds.x[:] = (ds.y[..., None] * 255).astype(np.uint8)
    split = _ids(ds.items, D.split_images(len(ds), seed=0))
    dls = D.dsb_dataloaders(ds, split['train'], split['valid'], bs=4, augment=True, seed=0, device='cpu')
    assert len(dls.train_ds) == len(split['train']) and len(dls.valid_ds) == len(split['valid'])
    for _ in range(3):
        xb, yb = dls.one_batch()
        assert xb.shape == (4, 3, 32, 32) and yb.shape == (4, 32, 32)
        assert set(yb.unique().tolist()) <= {0, 1}
        assert ((xb[:, 0] > 0.5).long() == yb).float().mean() > 0.97   # jitter changes intensities, not geometry


def test_crops_keep_split_by_image(sample):
    items = D.dsb_items(sample)
    split = _ids(items, D.split_images(len(items), seed=0))
    cs = D.load_crops(items, 48, per_image=3, seed=0)
    assert cs.x.shape == (24, 48, 48, 3) and cs.y.shape == (24, 48, 48)
    dls = D.dsb_dataloaders(cs, split['train'], split['valid'], bs=4, device='cpu')
    assert len(dls.train_ds) == 3 * len(split['train']) and len(dls.valid_ds) == 3 * len(split['valid'])
    assert cs.y.mean() > 0.02   # crops prefer nuclei
    by_area = D.load_crops(items, 48, per_image=2, seed=0, by_area=True)
    n = {it.id: sum(c.id == it.id for c in by_area.items) for it in items}
    areas = {it.id: np.prod(Image.open(it.image).size) for it in items}
    small, big = min(areas, key=areas.get), max(areas, key=areas.get)
    assert n[small] == 2 and n[big] == round(2 * areas[big] / 256 ** 2) > 2


def _report_load_data(images, masks, split=0.2):
    "The report's load_data, line by line (its paths are sorted globs; ours are ids)."
    from sklearn.model_selection import train_test_split
    size = int(len(images) * split)
    train_x, valid_x = train_test_split(images, test_size=size, random_state=42)
    train_y, valid_y = train_test_split(masks, test_size=size, random_state=42)
    train_x, test_x = train_test_split(train_x, test_size=size, random_state=42)
    train_y, test_y = train_test_split(train_y, test_size=size, random_state=42)
    return (train_x, train_y), (valid_x, valid_y), (test_x, test_y)


def test_paper_split_is_the_reports_procedure():
    from sklearn.utils import shuffle
    ids = sorted(f'{i:064x}' for i in np.random.default_rng(0).integers(0, 2 ** 62, 670))
    images, masks = [f'DSB/images/{i}.jpg' for i in ids], [f'DSB/masks/{i}.jpg' for i in ids]
    (tx, ty), (vx, vy), (sx, sy) = _report_load_data(images, masks)
    np.random.seed(42)
    tx, ty = shuffle(tx, ty)                              # the report's main: shuffle after np.random.seed(42)
    name = lambda ps: [p.split('/')[-1][:-4] for p in ps]
    assert name(tx) == name(ty) and name(vx) == name(vy) and name(sx) == name(sy)   # images and masks stay paired
    import yaml
    prof = yaml.safe_load((Path(__file__).parents[1]/'params'/'paper'/'dsb.yaml').read_text())['33_dsb.train']
    assert prof['split_order'] == 'paper'
    kw = dict(valid=prof['valid_pct'], test=prof['test_pct'], seed=prof['seed'])
    s = {k: [ids[i] for i in v] for k, v in D.paper_split(len(ids), **kw).items()}
    assert sorted(s['train']) == sorted(name(tx)) and s['valid'] == sorted(name(vx)) and s['test'] == sorted(name(sx))   # same ids
    assert [ids[i] for i in D.paper_train_order(len(ids), **kw)] == name(tx)           # in the same training order
    assert [len(s[k]) for k in ('train', 'valid', 'test')] == [402, 134, 134]
    ours = D.split_images(len(ids), seed=42)
    assert np.array_equal(ours['test'], D.paper_split(len(ids), **kw)['valid']) and not set(ours['test']) & set(D.paper_split(len(ids), **kw)['test'])   # why the order matters


@pytest.mark.parametrize('profile', ['paper', 'real-paper'])
def test_paper_profiles_set_the_reports_recipe(profile):
    import yaml
    prof = yaml.safe_load((Path(__file__).parents[1]/'params'/profile/'dsb.yaml').read_text())
    t = prof['33_dsb.train']
    assert (t['bn_momentum'], t['bn_eps']) == (0.01, 1e-3)                       # Keras BatchNormalization defaults
    assert (t['adam_sqr_mom'], t['adam_eps'], t['wd'], t['lr']) == (0.999, 1e-7, 0.0, 1e-4)   # Keras Adam(1e-4)
    assert (t['init'], t['soft_masks'], t['interp'], t['reshuffle'], t['split_order']) == ('glorot', True, 'linear', False, 'paper')
    assert (t['img_size'], t['bs'], t['epochs'], t['losses'], t['crop'], t['augment'], t['one_cycle'], t['fp16']) == (256, 8, 10, ['bce'], False, False, False, False)
    assert t['filters'] == [16, 32, 64, 128, 256]


def test_masks_binarised_by_their_own_value_range(tmp_path):
    m = np.zeros((12, 10), np.uint8); m[2:6, 3:8] = 1
    Image.fromarray(m).save(tmp_path/'01.png')
    assert D.read_mask(tmp_path/'01.png').sum() == 20                 # a 0/1 PNG keeps its nucleus (the old 128 threshold lost it)
    Image.fromarray(m * 255).save(tmp_path/'0255.png')
    assert (D.read_mask(tmp_path/'0255.png') == (m > 0)).all()
    grey = m.copy(); grey[0, 0] = 2
    Image.fromarray(grey).save(tmp_path/'three.png')
    with pytest.raises(DataError, match='3 grey levels') as e: D.read_mask(tmp_path/'three.png')
    assert 'three.png' in str(e.value)
    noisy = np.clip(m * 230 + np.random.default_rng(0).integers(0, 40, m.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(tmp_path/'m.jpg', quality=90)           # lossy JPEG: many grey levels, thresholded
    assert (D.read_mask(tmp_path/'m.jpg') == (m > 0)).mean() > 0.97


def test_kaggle_item_with_01_masks(sample, tmp_path, scratch_copy):
    d = scratch_copy(sample)
    it = D.dsb_items(d)[0]
    f = sorted(it.masks.glob('*.png'))[0]
    a = np.asarray(Image.open(f)) > 0
    Image.fromarray(a.astype(np.uint8)).save(f)                          # 0/1 instead of 0/255
    lab = D.read_instances(it)
    assert (lab == 1).sum() == a.sum() > 0


def test_report_soft_masks_and_fixed_order(sample):
    items = D.dsb_items(sample)
    ds = D.load_set(items, 32, interp='linear', soft=True)
    assert ds.soft and ds.y.dtype == np.uint8 and ((ds.y > 0) & (ds.y < 255)).any()
    split = _ids(ds.items, dict(D.paper_split(len(ds), seed=0), train=D.paper_train_order(len(ds), seed=0)))
    dls = D.dsb_dataloaders(ds, split['train'], split['valid'], bs=3, seed=0, device='cpu', reshuffle=False)
    assert len(dls.train) == -(-len(split['train']) // 3)               # partial last batch kept
    first = [list(dls.train.get_idxs()) for _ in range(2)]
    assert first[0] == first[1] == list(range(len(split['train'])))     # same order every epoch
    xb, yb = dls.one_batch()
    assert yb.dtype.is_floating_point and float(yb.max()) <= 1 and ((yb > 0) & (yb < 1)).any()
    with pytest.raises(ValueError, match='soft targets'): D.dsb_dataloaders(ds, split['train'], split['valid'], augment=True)


@pytest.mark.realdata
def test_real_kaggle_files(shared_data):
    "Every one of the 208 real images: header (mode, size), and every mask file binary and of its image's size."
    path = shared_data/'dsb2018'
    items = D.dsb_items(path)
    assert len(items) == 208 and D.detect_layout(path)[0] == 'kaggle' and len({it.id for it in items}) == 208
    n_masks = 0
    for it in items:
        with Image.open(it.image) as im:
            assert im.mode == 'RGBA' and it.image.name == f'{it.id}.png', it.image
            w, h = im.size
        assert 256 <= w <= 1388 and 256 <= h <= 1040, it.image
        files = sorted(it.masks.glob('*.png'))
        assert files, it.masks
        for f in files:
            m = D.read_mask(f)
            assert m.shape == (h, w) and m.any(), f
        n_masks += len(files)
    assert n_masks > 5000
    big = max(items[:40], key=lambda it: Image.open(it.image).size[0])
    img, lab = D.load_item(big)
    assert img.shape[2] == 3 and img.dtype == np.uint8 and lab.shape == img.shape[:2]
    assert lab.max() == len(list(big.masks.glob('*.png'))) > 0


def test_medrepro_data_check(sample, scratch_copy):
    "`medrepro-data check dsb2018 <folder>`: nothing to say about the sample set; an empty masks/ folder and a broken mask are named."
    from medrepro.data import check_dataset
    assert check_dataset('dsb2018', sample) == []
    d = scratch_copy(sample)
    first, second = sorted((d/'stage1_train').iterdir())[:2]
    for f in (first/'masks').iterdir(): f.unlink()
    sorted((second/'masks').glob('*.png'))[0].write_bytes(b'not a png')
    problems = dict(check_dataset('dsb2018', d))
    assert problems['masks'] == f'1 image(s) with an empty masks/ folder: {first.name}'
    assert 'unreadable mask' in problems[second.name]
