"ISIC 2019 scoring: BMA (correct vs printed formula, against scikit-learn), bootstrap intervals, the 5/8 conversion, scoring a saved model."
import numpy as np, pandas as pd, pytest, torch
from sklearn.metrics import balanced_accuracy_score
from medrepro.core import DataError, save_model
from medrepro.metrics import balanced_accuracy
from medrepro.isic2019.data import CLASSES, BALANCED_CLASSES, isic2019_table
from medrepro.isic2019.sample import write_isic2019
from medrepro.isic2019.model import model_config, build
from medrepro.isic2019.evaluate import (printed_bma, bootstrap_ci, five_to_eight, score_model, summarise, THESIS_6_1, THESIS_6_2, THESIS_6_4,
                                       THESIS_6_5_OWN, cv_accuracy, min_cross_entropy, mean_cross_entropy)


def test_bma_formula():
    yt = np.array([0] * 6 + [1] * 3 + [2]); yp = np.array([0] * 6 + [0, 1, 1] + [2])
    assert balanced_accuracy(yt, yp) == pytest.approx((1 + 2 / 3 + 1) / 3) == pytest.approx(balanced_accuracy_score(yt, yp))
    assert printed_bma(yt, yp) == pytest.approx(1 + 3 / 2 + 1)
    assert printed_bma([0, 0, 1], [0, 0, 0]) == np.inf
    assert balanced_accuracy([0] * 9 + [1] * 3 + [2] * 2, [0] * 14) == pytest.approx(1 / 3)     # majority class: 1/C
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.integers(0, 8, 60), rng.integers(0, 8, 60)
        assert bootstrap_ci(a, b, n=20).value.tolist() == pytest.approx([(a == b).mean(), balanced_accuracy_score(a, b)])


def test_bootstrap_ci():
    yt = np.r_[np.zeros(80), np.ones(20)].astype(int); yp = np.r_[np.zeros(75), np.ones(5), np.ones(15), np.zeros(5)].astype(int)
    ci = bootstrap_ci(yt, yp, n=500, seed=1).set_index('metric')
    assert ci.value['accuracy'] == pytest.approx(0.9) and ci.value['bma'] == pytest.approx((75 / 80 + 15 / 20) / 2)
    assert (ci.lo < ci.value).all() and (ci.value < ci.hi).all()
    assert ci.hi['bma'] - ci.lo['bma'] > ci.hi['accuracy'] - ci.lo['accuracy']      # the rare class makes BMA less certain
    pd.testing.assert_frame_equal(ci.reset_index(), bootstrap_ci(yt, yp, n=500, seed=1))
    perfect = bootstrap_ci(yt, yt, n=50)
    assert (perfect.lo == 1).all() and (perfect.hi == 1).all()


def test_five_to_eight():
    assert five_to_eight([0, 1, 2, 3, 4]).tolist() == [0, 1, 2, 4, 3]
    assert five_to_eight([4], rare='SCC').tolist() == [7]
    with pytest.raises(ValueError): five_to_eight([4], rare='MEL')
    y8 = np.arange(8); p5 = np.array([0, 1, 2, 4, 3, 4, 4, 4])
    assert balanced_accuracy_score(y8, five_to_eight(p5)) == pytest.approx(5 / 8)
    folds = THESIS_6_4[[f'fold{i}' for i in range(5)]].mean(axis=1)                 # the thesis's printed means are its fold means
    np.testing.assert_allclose(folds, THESIS_6_4['mean'], atol=5e-4)
    own = pd.Series(THESIS_6_5_OWN)[THESIS_6_4.model]                               # Table 6.5 repeats them, AlexNet as 0.346
    assert (own.to_numpy() != THESIS_6_4['mean'].to_numpy()).sum() == 1 and own['AlexNet'] == 0.346


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    d = write_isic2019(tmp_path_factory.mktemp('s')/'isic2019', 40, seed=2)
    t = isic2019_table(d)
    torch.manual_seed(0)
    out = {}
    for name, classes in (('std', CLASSES), ('bal', BALANCED_CLASSES)):
        cfg = model_config('isic_resnet', len(classes), widths=[4], classes=list(classes), img_size=16, decode_size=32,
                           mean=[120.] * 3, std=[50.] * 3, test_images=t.image[:10].tolist(), fit_images=t.image[10:30].tolist())
        out[name] = save_model(tmp_path_factory.mktemp(name), build(cfg), cfg)
    return d, t, out


def test_score_model_splits(saved):
    d, t, m = saved
    s, cfg = score_model(m['std'], d, 'test')
    assert s.image.tolist() == t.image[:10].tolist() and s.y.tolist() == t.y[:10].tolist()
    assert np.allclose(s[[f'p_{c}' for c in CLASSES]].sum(axis=1), 1, atol=1e-5)
    assert len(score_model(m['std'], d, 'all')[0]) == 40 and len(score_model(m['std'], d, 'not_fit')[0]) == 20
    sb, _ = score_model(m['bal'], d, 'all')
    assert set(sb.y) <= set(range(5)) and (sb.y == [BALANCED_CLASSES.index(l if l not in ('AK', 'DF', 'VASC', 'SCC') else 'AK+DF+VASC+SCC') for l in sb.label8]).all()
    summ = summarise(s, CLASSES, n_boot=50)
    assert summ['n'] == 10 and summ['acc_lo'] <= summ['accuracy'] <= summ['acc_hi']
    assert summ['bma'] == pytest.approx(balanced_accuracy_score(s.y, s.pred))
    p = s[[f'p_{c}' for c in CLASSES]].to_numpy()
    assert summ['loss'] == pytest.approx(-np.mean(np.log(p[np.arange(len(s)), s.y])), rel=1e-6)
    assert summ['loss'] >= min_cross_entropy(summ['accuracy']) - 1e-9                # the bound holds for any model
    with pytest.raises(ValueError, match='split must be'): score_model(m['std'], d, 'train')


def test_score_model_other_folder(saved, tmp_path):
    d, t, m = saved
    other = write_isic2019(tmp_path/'other', 12, seed=9)
    with pytest.raises(DataError, match="split='all'"): score_model(m['std'], other, 'test')
    assert len(score_model(m['std'], other, 'all')[0]) == 12


def test_table_6_2_looks_converted_by_5_8():
    "A one-class model scores 1/5 on a balanced 5-class test set; the thesis's VGG16 row is 5/8 of that, in both columns."
    y5 = np.repeat(np.arange(5), 20)
    one = balanced_accuracy(y5, np.zeros_like(y5))
    assert one == pytest.approx((y5 == 0).mean()) == pytest.approx(0.2)
    assert THESIS_6_2.bma[0] == pytest.approx(5 / 8 * one) and THESIS_6_2.accuracy[0] == pytest.approx(5 / 8 * one)
    assert (THESIS_6_2.accuracy == THESIS_6_2.bma).all()


def test_cv_accuracy_and_the_loss_bound():
    rng = np.random.default_rng(0)
    folds = [pd.DataFrame(dict(y=rng.integers(0, 3, k), pred=rng.integers(0, 3, k))) for k in (30, 31, 29)]
    cv = cv_accuracy(folds, n=200, seed=1)
    allp = pd.concat(folds)
    assert cv['folds'] == 3 and cv['n'] == 90
    assert cv['accuracy'] == pytest.approx(np.mean([(f.y == f.pred).mean() for f in folds]))
    assert cv['pooled_accuracy'] == pytest.approx((allp.y == allp.pred).mean()) and cv['acc_lo'] <= cv['pooled_accuracy'] <= cv['acc_hi']
    assert min_cross_entropy(0.5) == pytest.approx(mean_cross_entropy([[0.5, 0.5], [1, 0]], [1, 0]))   # reached at ties
    low = [min_cross_entropy(a) > l for a, l in zip(THESIS_6_1.accuracy, THESIS_6_1.loss)]
    assert low == [False, True, True, True, True]                                    # only VGG16's loss fits its accuracy
