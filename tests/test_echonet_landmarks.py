"""EchoNet landmark approach (nb 23): optimal landmarks by angle, heat-map targets, decoding, losses, scores, smoke training."""
import cv2
import numpy as np
import pytest
import torch

from medrepro.core import seed_everything
from medrepro.data import dataset_path, dataloaders
from medrepro.train import fit
from medrepro.echonet.data import fill_polygon, echo_index, traced_arrays, split_frames, frame_sets
from medrepro.echonet.model import echonet_unet
from medrepro.echonet.landmarks import (corner_angles, optimal_landmarks, expansion_map, border_band, euclidean_map,
                                        gaussian_map, landmark_targets, argmax_points, soft_argmax, points_mask,
                                        target_points, landmark_loss, decode_points, landmark_set, landmark_scores,
                                        frame_contours, predict_points, LandmarkErr)

# a right triangle (0,0)-(8,0)-(8,8) with extra points on its sides: corners 45, 90, 45 degrees, side points 180
TRI = np.array([[0, 0], [4, 0], [8, 0], [8, 4], [8, 8], [4, 4], [2, 2]], float)
# an arrow-like hexagon: a sharp tip at (50, 10), a near-right corner at (0, 10), two blunt corners, one straight point
HEX = np.array([[0, 10], [12, 0], [30, 5], [50, 10], [30, 15], [10, 20]], float)


def _angle_at(pts, p):
    from medrepro.echonet.data import order_points
    o = order_points(pts, 'centroid')
    return dict(zip(map(tuple, o), corner_angles(o)))[tuple(map(float, p))]


def test_corner_angles_hand_made():
    np.testing.assert_allclose([_angle_at(TRI, p) for p in [(8, 0), (0, 0), (8, 8), (4, 0), (8, 4), (4, 4), (2, 2)]],
                               [90, 45, 45, 180, 180, 180, 180], atol=1e-9)
    sq = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], float)
    np.testing.assert_allclose(corner_angles(sq), [90, 90, 90, 90])
    with pytest.raises(ValueError, match='repeated'): corner_angles([[0, 0], [0, 0], [1, 1]])


def test_optimal_landmarks_known_answer():
    assert {tuple(p) for p in optimal_landmarks(TRI, 3)} == {(0., 0.), (8., 0.), (8., 8.)}
    # hexagon: tip (50, 10) 2*atan(5/20) = 28.1 deg, (0, 10) 84.8, (10, 20) 121.0, (12, 0) 124.7, (30, 15) 180
    np.testing.assert_allclose(_angle_at(HEX, (50, 10)), np.degrees(2 * np.arctan2(5, 20)))
    np.testing.assert_allclose(_angle_at(HEX, (30, 15)), 180, atol=1e-6)
    got = optimal_landmarks(HEX, 3)
    assert {tuple(p) for p in got} == {(50., 10.), (0., 10.), (10., 20.)}
    assert {tuple(p) for p in optimal_landmarks(HEX, 4)} == {(50., 10.), (0., 10.), (10., 20.), (12., 0.)}
    # returned in centroid order (ascending arctan2 angle around the centroid of all points)
    c = HEX.mean(0)
    ang = np.arctan2(got[:, 1] - c[1], got[:, 0] - c[0])
    assert np.all(np.diff(ang) > 0)
    # duplicates are dropped, and bad k is refused
    np.testing.assert_array_equal(optimal_landmarks(np.vstack([TRI, TRI[:3]]), 3), optimal_landmarks(TRI, 3))
    with pytest.raises(ValueError, match='fewer than k=7'): optimal_landmarks(TRI[:3], 7)
    with pytest.raises(ValueError, match='at least 3'): optimal_landmarks(TRI, 2)


def test_border_band_is_dilate_xor_erode():
    m = np.zeros((20, 20), np.uint8); cv2.circle(m, (10, 9), 6, 1, -1)
    for band in (1, 2, 3):
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
        want = (cv2.dilate(m, k).astype(bool) ^ cv2.erode(m, k).astype(bool))
        np.testing.assert_array_equal(border_band(m, band).astype(bool), want)
        assert set(np.unique(border_band(m, band))) == {0.0, 1.0}
    sq = np.zeros((9, 9), np.uint8); sq[2:7, 2:7] = 1
    assert border_band(sq, 1).sum() == (25 + 4 * 5) - 9          # cross kernel: square + 4 sides, minus inner 3x3
    with pytest.raises(ValueError, match='2-D'): border_band(np.zeros((2, 4, 4)))


def test_single_maps():
    e = expansion_map((4.4, 3.6), (9, 9), 1)
    np.testing.assert_array_equal(e[3:6, 3:6], [[0, 1, 0], [1, 1, 1], [0, 1, 0]]); assert e.sum() == 5
    np.testing.assert_allclose(euclidean_map((4, 4), (9, 9), 4)[4, [4, 5, 6, 8]], [1, 0.8, 0.6, 0.2])
    g = gaussian_map((2, 6), (9, 9), 1.5)
    assert np.unravel_index(g.argmax(), g.shape) == (6, 2) and g.max() == pytest.approx(1) and g.min() >= 0
    assert g[6, 3] == pytest.approx(np.exp(-1 / (2 * 1.5 ** 2)), rel=0.02)    # one pixel away: Gaussian fall-off
    with pytest.raises(ValueError, match='outside'): gaussian_map((9, 0), (9, 9))


@pytest.mark.parametrize('kind', ['gaussian', 'euclidean'])
def test_heatmaps_peak_range_and_support(kind):
    sq = np.array([[3, 3], [12, 3], [12, 12], [3, 12]], float)
    msk = fill_polygon(sq, (16, 16))
    t = landmark_targets(sq, msk, kind, radius=3, band=1, sigma=1.5)
    assert t.shape == (4, 16, 16) and t.dtype == np.float32
    assert t.min() >= 0 and t.max() <= 1
    np.testing.assert_allclose(t.max(axis=(1, 2)), 1)
    np.testing.assert_array_equal(argmax_points(t), sq)                                   # peak at each landmark
    support = landmark_targets(sq, msk, 'expansion', radius=3).astype(bool) & landmark_targets(sq, msk, 'border', band=1).astype(bool)
    assert ((t > 0) <= support).all()                                                     # zero off expansion x border
    with pytest.raises(ValueError, match='unknown target kind'): landmark_targets(sq, msk, 'cosine')


def test_decode_round_trip():
    rng = np.random.default_rng(0)
    poly = np.array([[20, 4], [30, 12], [28, 28], [12, 30], [4, 14]], float) + rng.uniform(-0.4, 0.4, (5, 2))
    msk = fill_polygon(poly, (32, 32))
    for kind in ('gaussian', 'euclidean'):
        t = landmark_targets(poly, msk, kind, radius=3, band=1)
        np.testing.assert_array_equal(argmax_points(t), np.rint(poly))                    # exact (nearest pixel)
        np.testing.assert_array_equal(target_points(torch.tensor(t)).numpy(), np.rint(poly))
        np.testing.assert_array_equal(decode_points(torch.tensor(t)[None] * 20, 'spatial_ce')[0].numpy(), np.rint(poly))
        np.testing.assert_allclose(decode_points(torch.tensor(t)[None] * 100 - 50, 'softargmax')[0].numpy(), np.rint(poly), atol=1e-3)
    flat = soft_argmax(torch.zeros(1, 1, 5, 7))
    np.testing.assert_allclose(flat.numpy(), [[[3., 2.]]])                                # centre (x 3, y 2)
    assert points_mask(poly[[3, 0, 4, 1, 2]], (32, 32)).sum() == fill_polygon(poly, (32, 32)).sum()


def test_losses():
    targ = torch.zeros(1, 2, 4, 4); targ[0, 0, 1, 1] = 1; targ[0, 1, 2, 3] = 1
    logits = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    shift = torch.zeros(1, 1, 4, 4); shift[..., 1, 1] = 9.
    ce = landmark_loss('paper_ce')
    assert float(ce(logits + shift, targ)) == pytest.approx(float(ce(logits, targ)), abs=1e-5)   # softmax over maps
    sce = landmark_loss('spatial_ce')
    assert float(sce(logits + shift, targ)) != pytest.approx(float(sce(logits, targ)), abs=1e-3)
    assert float(sce(targ * 30, targ)) == pytest.approx(0, abs=1e-6)
    assert float(landmark_loss('softargmax')(targ * 100 - 50, targ)) == pytest.approx(0, abs=1e-3)
    # a map peaked 3 pixels right of the landmark: soft-argmax loss 3 for that map
    off = torch.full((1, 1, 6, 6), -100.); off[0, 0, 2, 4] = 100; t1 = torch.zeros(1, 1, 6, 6); t1[0, 0, 2, 1] = 1
    assert float(landmark_loss('softargmax')(off, t1)) == pytest.approx(3, abs=1e-3)
    with pytest.raises(ValueError, match='unknown loss'): landmark_loss('mse')
    with pytest.raises(ValueError, match='unknown loss'): decode_points(logits, 'mse')


def test_landmark_set_and_scores():
    sq = np.array([[3, 3], [12, 3], [12, 12], [3, 12]], float)
    msk = fill_polygon(sq, (16, 16)).astype(bool)
    imgs = np.zeros((2, 16, 16), np.uint8)
    ds = landmark_set(imgs, np.stack([msk, msk]), [sq, sq], k=4, radius=2, band=1)
    assert ds['y'].shape == (2, 4, 16, 16) and ds['pts'].shape == (2, 4, 2)
    s = landmark_scores(ds['pts'], ds['pts'], ds['masks'], px=3.5)
    np.testing.assert_allclose(s.landmark_err_px, 0); np.testing.assert_allclose(s.f1, 1)
    shifted = ds['pts'] + np.array([3., 4.])                                              # every landmark 5 px off
    s = landmark_scores(shifted, ds['pts'], ds['masks'], px=2.0)
    np.testing.assert_allclose(s.landmark_err_px, 10.0)
    assert (s.f1 < 1).all() and (s.dice_all > s.f1).all()                                 # background inflates the all-pixel Dice
    with pytest.raises(ValueError, match='same'): landmark_set(imgs, np.stack([msk]), [sq, sq], k=4)
    with pytest.raises(ValueError, match='contours'): landmark_set(imgs, np.stack([msk, msk]), [sq], k=4)
    with pytest.raises(ValueError, match='landmarks'): landmark_scores(ds['pts'][:, :3], ds['pts'], ds['masks'])


@pytest.mark.slow
def test_smoke_training_beats_mean_landmark_baseline(tmp_path):
    torch.set_num_threads(1)
    data = echo_index(dataset_path('echonet'))
    sp = split_frames(data.frames, 'video', seed=42)
    sel = np.r_[sp['train'], sp['valid']]
    tr, va = np.arange(len(sp['train'])), np.arange(len(sp['train']), len(sel))
    arr = traced_arrays(data, 32)
    contours = frame_contours(data, sel, 32)
    np.testing.assert_allclose(contours[0].max(), 32 / 112 * frame_contours(data, sel[:1], 112)[0].max())
    ds = landmark_set(arr['x'][sel], arr['y'][sel], contours, k=3, radius=3, band=1, sigma=1.0)
    base = landmark_scores(np.repeat(ds['pts'][tr].mean(0, keepdims=True), len(va), 0), ds['pts'][va], ds['masks'][va])
    seed_everything(42)   # 45 epochs: at 30, seed 42 passed in CI but on an AVX-512 machine (different float rounding) ran poorly (error 3.5 px against 4.0, F1 0.415 < 0.438); at 45, seeds 42, 0, 1 all pass there
    learn = fit(dataloaders(*frame_sets(ds['x'], ds['y'], dict(train=tr, valid=va)), bs=8, valid_bs=16, device='cpu'), echonet_unet(1, 3, [8, 16, 32]),
                landmark_loss('spatial_ce'), 45, 3e-3, metrics=[LandmarkErr('spatial_ce')], out_dir=tmp_path, quiet=True,
                monitor='landmark_err', comp=np.less, lr_patience=None, es_patience=None)
    got = landmark_scores(predict_points(learn.model, ds['x'][va], 'spatial_ce'), ds['pts'][va], ds['masks'][va])
    assert got.landmark_err_px.mean() < 0.9 * base.landmark_err_px.mean()   # at least 10 % better (the per-patient looks of issue 27 made the sample harder)
    assert got.f1.mean() > base.f1.mean()
