import numpy as np, pandas as pd, pytest
from sklearn import metrics as skm
from medrepro.metrics import (mask_counts, seg_scores, seg_summary, thresholded_jaccard, binary_scores,
                              balanced_accuracy, per_class_recall)


def square(n=4, sl=(slice(1, 3), slice(1, 3))):
    m = np.zeros((n, n), bool); m[sl] = True; return m


def test_counts_and_scores_by_hand():
    t = square(); p = t.copy(); p[1, 1] = False; p[0, 0] = True
    assert mask_counts(p, t) == dict(tp=3, fp=1, fn=1, tn=11)
    s = seg_scores([p], [t]).iloc[0]
    assert s.f1 == pytest.approx(6 / 8) and s.jaccard == pytest.approx(3 / 5)
    assert s.precision == pytest.approx(3 / 4) and s.recall == pytest.approx(3 / 4)
    assert s.accuracy == pytest.approx(14 / 16)
    assert s.dice_all == pytest.approx(s.accuracy)        # Dice over both classes == pixel accuracy


def test_scores_match_sklearn_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(5):
        t = rng.random((17, 23)) > .6; p = rng.random((17, 23)) > .5
        s = seg_scores([p], [t]).iloc[0]
        assert s.f1 == pytest.approx(skm.f1_score(t.ravel(), p.ravel()))
        assert s.jaccard == pytest.approx(skm.jaccard_score(t.ravel(), p.ravel()))
        assert s.precision == pytest.approx(skm.precision_score(t.ravel(), p.ravel()))
        assert s.recall == pytest.approx(skm.recall_score(t.ravel(), p.ravel()))
        assert s.accuracy == pytest.approx(skm.accuracy_score(t.ravel(), p.ravel()))


def test_empty_masks_conventions():
    z = np.zeros((5, 5), bool)
    s = seg_scores([z], [z]).iloc[0]
    assert (s[['precision', 'recall', 'f1', 'jaccard', 'accuracy']] == 1).all()
    one = z.copy(); one[2, 2] = True
    s = seg_scores([one], [z]).iloc[0]      # false alarm on an empty image
    assert s.f1 == 0 and s.jaccard == 0 and s.precision == 0 and s.recall == 1
    s = seg_scores([z], [one]).iloc[0]      # missed everything
    assert s.f1 == 0 and s.recall == 0 and s.precision == 1


def test_per_image_mean_differs_from_pooled():
    big = np.zeros((10, 10), bool); big[:8, :8] = True          # 64 px, found perfectly
    small_t = np.zeros((10, 10), bool); small_t[0, 0] = True     # 1 px, missed
    s = seg_scores([big, np.zeros_like(small_t)], [big, small_t])
    summ = seg_summary(s)
    assert summ.loc['f1', 'per_image_mean'] == pytest.approx(0.5)
    assert summ.loc['f1', 'pooled'] == pytest.approx(128 / 129)
    assert summ.loc['dice_all', 'pooled'] > 0.99


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match='shape'):
        mask_counts(np.zeros((3, 3)), np.zeros((3, 4)))


def test_thresholded_jaccard():
    assert thresholded_jaccard([0.9, 0.7, 0.6, 0.2]) == pytest.approx(0.4)
    assert thresholded_jaccard([0.65]) == pytest.approx(0.65)


def test_binary_and_balanced():
    yt, yp = [0, 1, 1, 0, 1], [0, 1, 0, 0, 0]
    b = binary_scores(yt, yp)
    assert b == pytest.approx(dict(accuracy=.6, precision=1., recall=1 / 3, f1=.5))
    yt = ['NV'] * 8 + ['MEL'] * 2; yp = ['NV'] * 8 + ['NV', 'MEL']
    assert balanced_accuracy(yt, yp) == pytest.approx((1 + .5) / 2)
    assert per_class_recall(yt, yp).to_dict() == {'MEL': .5, 'NV': 1.}
    rng = np.random.default_rng(1); a = rng.integers(0, 8, 200); p = rng.integers(0, 8, 200)
    assert balanced_accuracy(a, p) == pytest.approx(per_class_recall(a, p).mean())
