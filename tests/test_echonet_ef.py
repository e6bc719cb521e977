"EchoNet EF: method of discs from a mask on shapes of known volume, EF, Bland-Altman, per-video EF from frames."
import numpy as np, pandas as pd, cv2
import pytest
from medrepro.echonet import ef as E, data as D, sample as S


def test_cylinder_mask_is_exact_and_its_tracing_has_the_right_axis():
    m = np.zeros((80, 80), np.uint8); m[20:60, 30:50] = 1          # 40 tall, 20 wide
    assert E.mask_volume(m) == pytest.approx(np.pi * 10 ** 2 * 40)
    t = E.mask_tracing(m)
    assert t.shape == (21, 4)
    assert np.hypot(t[0, 2] - t[0, 0], t[0, 3] - t[0, 1]) == pytest.approx(40)
    assert np.allclose(np.hypot(t[1:, 2] - t[1:, 0], t[1:, 3] - t[1:, 1]), 20)


@pytest.mark.parametrize('angle', [0, 30, 45, 77])
def test_spheroid_volume_within_3_percent_at_any_angle(angle):
    e = np.zeros((112, 112), np.uint8); cv2.ellipse(e, (56, 56), (40, 15), angle, 0, 360, 1, -1)
    assert E.mask_volume(e) == pytest.approx(4 / 3 * np.pi * 40.5 * 15.5 ** 2, rel=0.03)


def test_mask_volume_agrees_with_the_tracing_volume():
    tracing = S.lv_tracing((56, 20), 0.2, 60, 16)
    m = D.fill_polygon(D.reference_polygon(tracing))                       # the polygon as traced
    assert E.mask_volume(m) == pytest.approx(D.tracing_volume(tracing), rel=0.05)
    # the reference mask (rounded to whole pixels, as echonet/dynamic) keeps the outline's pixels: a few per cent more volume
    assert D.tracing_volume(tracing) < E.mask_volume(D.tracing_mask(tracing)) < 1.08 * D.tracing_volume(tracing)
    assert E.mask_volume(np.zeros((8, 8))) == 0


def test_ef_and_bland_altman_by_hand():
    assert E.ejection_fraction(100, 40) == pytest.approx(60)
    ba = E.bland_altman([1, 2, 3], [1, 1, 1])
    assert (ba['bias'], ba['sd'], ba['mae'], ba['n']) == (1.0, 1.0, 1.0, 3)
    assert ba['lo'] == pytest.approx(1 - 1.96) and ba['hi'] == pytest.approx(1 + 1.96)


def test_video_efs_pairs_ed_and_es():
    fr = pd.DataFrame(dict(FileName=['a', 'a', 'b', 'c', 'c'], Phase=['ED', 'ES', 'ED', 'ES', 'ED']))
    v = E.video_efs(fr, [100, 40, 80, 30, 60])
    assert list(v.index) == ['a', 'c']                                 # b has no ES
    assert v.loc['a', 'EF'] == pytest.approx(60) and v.loc['c', 'EF'] == pytest.approx(50)
