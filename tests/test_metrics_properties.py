"Properties of the shared segmentation and classification metrics (Hypothesis), beside the worked examples in test_metrics."
import pytest
pytestmark = pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
import numpy as np, pandas as pd
from hypothesis import given, settings, strategies as st, HealthCheck
from hypothesis.extra.numpy import arrays
from sklearn.metrics import balanced_accuracy_score, recall_score
from medrepro import metrics as M

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
masks = arrays(bool, (5, 6))


@FAST
@given(masks, masks)
def test_counts_add_up_and_scores_are_bounded(p, t):
    c = M.mask_counts(p, t)
    assert sum(c.values()) == p.size and c['tp'] == int((p & t).sum()) and c['fp'] == int((p & ~t).sum())
    s = M.seg_scores([p], [t]).iloc[0]
    for k in ('accuracy', 'precision', 'recall', 'f1', 'jaccard', 'dice_all'): assert 0 <= s[k] <= 1, k
    assert np.isclose(s['dice_all'], s['accuracy'])          # all-pixel Dice of a binary mask is pixel accuracy


@FAST
@given(masks, masks)
def test_dice_and_jaccard_are_symmetric_and_related(p, t):
    a, b = M.seg_scores([p], [t]).iloc[0], M.seg_scores([t], [p]).iloc[0]
    assert np.isclose(a['f1'], b['f1']) and np.isclose(a['jaccard'], b['jaccard'])
    assert np.isclose(a['precision'], b['recall'])             # swapping roles swaps precision and recall
    assert np.isclose(a['jaccard'], a['f1'] / (2 - a['f1']))    # J = D / (2 - D)


@FAST
@given(masks)
def test_perfect_prediction_scores_one(t):
    s = M.seg_scores([t], [t]).iloc[0]
    assert s[['accuracy', 'precision', 'recall', 'f1', 'jaccard', 'dice_all']].eq(1).all()


@FAST
@given(st.lists(st.tuples(masks, masks), min_size=1, max_size=5))
def test_pooled_scores_equal_scores_of_the_concatenated_set(pairs):
    s = M.seg_summary(M.seg_scores([p for p, _ in pairs], [t for _, t in pairs]))
    whole = M.seg_scores([np.concatenate([p for p, _ in pairs])], [np.concatenate([t for _, t in pairs])]).iloc[0]
    for k in s.index: assert np.isclose(s.loc[k, 'pooled'], whole[k]), k


@FAST
@given(arrays(float, st.integers(1, 20), elements=st.floats(0, 1)), st.floats(0.05, 0.95))
def test_thresholded_jaccard(j, thr):
    tj = M.thresholded_jaccard(j, thr)
    assert 0 <= tj <= j.mean() + 1e-12
    assert np.isclose(tj, np.mean([v if v >= thr else 0 for v in j]))


@FAST
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), min_size=2, max_size=60))
def test_balanced_accuracy_is_mean_per_class_recall(pairs):
    y, p = np.array(pairs).T
    ours = M.balanced_accuracy(y, p)
    assert np.isclose(ours, balanced_accuracy_score(y, p))
    labels = np.unique(y)
    assert np.isclose(ours, recall_score(y, p, labels=labels, average=None, zero_division=0).mean())
    r = M.per_class_recall(y, p, labels=labels)
    assert np.isclose(r.mean(), ours)
