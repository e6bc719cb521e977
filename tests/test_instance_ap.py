"""Instance AP (issue 24 item 10): a predicted nucleus is a hit only if its IoU is *greater* than the threshold, as the
DSB 2018 competition scored it. Each case puts an IoU exactly on a threshold, so `>=` in the matching fails it."""
import numpy as np
import pytest
from medrepro.imaging import AP_THRESHOLDS, instance_ap, iou_matrix


def _nucleus_and_part(rows, cols):
    "A true 4x10 nucleus (40 pixels) and a prediction covering rows x cols of it (its IoU is its area / 40)."
    t, p = np.zeros((8, 12), int), np.zeros((8, 12), int)
    t[2:6, 0:10] = 1
    p[2:2 + rows, 0:cols] = 1
    return t, p


@pytest.mark.parametrize('rows, cols, iou', [(4, 5, 0.5), (3, 10, 0.75), (4, 8, 0.8)])
def test_iou_exactly_on_a_threshold_is_a_miss_there(rows, cols, iou):
    t, p = _nucleus_and_part(rows, cols)
    assert iou_matrix(t, p)[0, 0] == iou and iou in AP_THRESHOLDS          # exactly on a threshold, no rounding
    score, per = instance_ap(t, p)
    hit = AP_THRESHOLDS < iou                                               # strictly below the IoU: a hit (TP 1 of 1)
    assert per.tolist() == hit.astype(float).tolist()
    assert score == pytest.approx(hit.mean())


def test_iou_on_the_lowest_threshold_scores_zero_not_a_tenth():
    t, p = _nucleus_and_part(4, 5)                                          # IoU 0.5: one FP and one FN at every threshold
    score, per = instance_ap(t, p)
    assert score == 0.0 and per[0] == 0.0


def test_two_nuclei_one_on_the_threshold_one_above():
    t, p = _nucleus_and_part(3, 10)                                         # IoU 0.75
    t[7, 0:10] = 2; p[7, 0:10] = 2                                          # a second nucleus found exactly (IoU 1)
    _, per = instance_ap(t, p)
    at = int(np.flatnonzero(AP_THRESHOLDS == 0.75)[0])
    assert per[at - 1] == 1.0 and per[at] == pytest.approx(1 / 3)          # at 0.75: TP 1, FP 1, FN 1
