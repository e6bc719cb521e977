"medrepro.imaging: windows, resizing, interpolation along an axis, crops, big-JPEG reading, instance scoring."
import numpy as np, pytest
from hypothesis import given, settings, strategies as st, HealthCheck
from hypothesis.extra.numpy import arrays
from PIL import Image
from medrepro import imaging as im
from medrepro.core import DataError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_window_values_and_errors():
    np.testing.assert_allclose(im.window([-1000, 0, 40, 240, 2000], (40, 400)), [0, 0.4, 0.5, 1, 1])
    np.testing.assert_allclose(im.window(np.array([400.]), 'bone'), [0.5])
    with pytest.raises(ValueError, match='width must be > 0'): im.window([0], (0, 0))
    assert im.multi_window(np.zeros((2, 3)), ('bone', 'soft')).shape == (2, 2, 3)


@FAST
@given(arrays(np.float32, st.integers(2, 30), elements=st.floats(-3000, 3000, width=32)))
def test_window_is_monotone_and_bounded(hu):
    out = im.window(np.sort(hu), 'soft')
    assert out.min() >= 0 and out.max() <= 1 and np.all(np.diff(out) >= 0)


def test_resize_image_orders_height_width_and_keeps_masks():
    img = np.zeros((10, 20), np.uint8); img[:, :10] = 200              # left half bright
    out = im.resize_image(img, (5, 40), 'nearest')
    assert out.shape == (5, 40) and out[:, :20].min() == 200 and out[:, 20:].max() == 0
    m = np.zeros((7, 9), bool); m[3, 4] = True
    assert im.resize_image(m, (14, 18)).sum() == 4 and im.resize_image(m, (14, 18)).dtype == bool
    assert im.resize_image(np.zeros((4, 4, 1), np.uint8), 8).shape == (8, 8, 1)
    with pytest.raises(ValueError, match='unknown interp'): im.resize_image(img, 4, 'magic')


def test_resample_axis_exact_values():
    a = np.stack([np.full((2, 2), v, np.float32) for v in (0, 3, 6)])     # (3, 2, 2), linear along axis 0
    np.testing.assert_allclose(im.resample_axis(a, 5)[:, 0, 0], [0, 1.5, 3, 4.5, 6])
    np.testing.assert_allclose(im.resample_axis(a.transpose(1, 0, 2), 5, axis=1)[0, :, 0], [0, 1.5, 3, 4.5, 6])
    np.testing.assert_allclose(im.resample_axis(np.arange(5.), 3), [0, 2, 4])
    with pytest.raises(ValueError): im.resample_axis(a, 0)


@FAST
@given(st.integers(2, 12), st.integers(2, 25), st.floats(-5, 5), st.floats(-100, 100))
def test_resample_axis_keeps_ends_and_linear_signals(d, n, slope, icpt):
    x = icpt + slope * np.arange(d, dtype=np.float64)
    out = im.resample_axis(x, n)
    assert out.shape == (n,)
    np.testing.assert_allclose([out[0], out[-1]], [x[0], x[-1]], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(out, icpt + slope * np.linspace(0, d - 1, n), rtol=1e-4, atol=1e-3)


def test_square_box_and_crop_box():
    assert im.square_box((0, 0, 10, 20), (100, 100), margin=0.5) == (-15, -10, 25, 30)
    a = np.arange(25).reshape(5, 5)
    np.testing.assert_array_equal(im.crop_box(a, (0, 0, 5, 5)), a)
    c = im.crop_box(a, (3, 3, 7, 7), fill=-1)
    assert c.shape == (4, 4) and c[0, 0] == 18 and (c[2:, :] == -1).all() and (c[:, 2:] == -1).all()


@FAST
@given(st.integers(-6, 12), st.integers(-6, 12), st.integers(1, 8), st.integers(1, 8))
def test_crop_box_matches_padded_slicing(y0, x0, h, w):
    a = np.arange(1, 7 * 9 + 1).reshape(7, 9)
    pad = np.pad(a, 20, constant_values=0)
    np.testing.assert_array_equal(im.crop_box(a, (y0, x0, y0 + h, x0 + w)), pad[y0 + 20:y0 + h + 20, x0 + 20:x0 + w + 20])


def test_read_rgb_reduces_big_jpegs_and_names_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (1200, 1600, 3), dtype=np.uint8)).save(tmp_path/'big.jpg')
    Image.fromarray(rng.integers(0, 255, (30, 40), dtype=np.uint8)).save(tmp_path/'grey.png')
    assert im.read_rgb(tmp_path/'big.jpg', max_side=200).shape == (150, 200, 3)
    assert im.read_rgb(tmp_path/'grey.png').shape == (30, 40, 3)
    (tmp_path/'cut.jpg').write_bytes((tmp_path/'big.jpg').read_bytes()[:300])
    with pytest.raises(DataError, match=r'cut\.jpg: unreadable image'): im.read_rgb(tmp_path/'cut.jpg')


def test_iou_matrix_and_instance_ap_worked_example():
    t = np.zeros((4, 8), int); t[:, 0:2] = 1; t[:, 4:6] = 2                 # two true objects of 8 px
    p = np.zeros((4, 8), int); p[:, 0:2] = 5; p[:2, 4:7] = 9                 # one exact, one 6 px overlapping 4
    np.testing.assert_allclose(im.iou_matrix(t, p), [[1, 0], [0, 4 / 10]])
    score, per = im.instance_ap(t, p)
    np.testing.assert_allclose(per, [1 / 3] * 10)                            # 1 TP, 1 FP, 1 FN at every threshold
    assert im.instance_ap(np.zeros((3, 3), int), np.zeros((3, 3), int))[0] == 1.0
    assert im.instance_ap(t, np.zeros_like(t))[0] == 0.0
    with pytest.raises(ValueError, match='differ in size'): im.iou_matrix(t, p[:, :4])


@FAST
@given(arrays(np.int64, (6, 7), elements=st.integers(0, 4)), st.permutations([1, 2, 3, 4]))
def test_instance_ap_perfect_prediction_is_one_whatever_the_label_ids(lab, perm):
    relabelled = np.where(lab > 0, np.asarray([0, *perm])[lab], 0)           # same objects, other ids
    assert im.instance_ap(lab, relabelled)[0] == 1.0
    iou = im.iou_matrix(lab, relabelled)
    assert ((iou >= 0) & (iou <= 1)).all()


def test_mask_instances_splits_touching_discs():
    yy, xx = np.mgrid[:40, :60]
    two = ((yy - 20)**2 + (xx - 20)**2 < 100) | ((yy - 20)**2 + (xx - 37)**2 < 100)
    assert im.mask_instances(two, 'cc').max() == 1 and im.mask_instances(two, 'watershed').max() == 2
    speck = np.zeros((10, 10), bool); speck[2, 2] = True
    assert im.mask_instances(speck, 'cc', min_size=4).max() == 0
    with pytest.raises(ValueError, match='unknown method'): im.mask_instances(two, 'magic')


def test_read_rgb_drafts_wide_jpegs_at_their_shape(tmp_path, monkeypatch):
    "A 3:2 photo with max_side half its width decodes at half size in the JPEG decoder (a square draft box would decode it whole)."
    from PIL import JpegImagePlugin
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (800, 1200, 3), dtype=np.uint8)).save(tmp_path/'wide.jpg')
    seen, draft = [], JpegImagePlugin.JpegImageFile.draft
    def spy(self, mode, size): r = draft(self, mode, size); seen.append(self.size); return r
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, 'draft', spy)
    a = im.read_rgb(tmp_path/'wide.jpg', max_side=600)
    assert seen == [(600, 400)] and a.shape == (400, 600, 3)
    assert im.read_rgb(tmp_path/'wide.jpg', max_side=500).shape == (333, 500, 3) and seen[-1] == (600, 400)
