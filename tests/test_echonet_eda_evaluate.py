"EchoNet EDA and evaluation helpers: the mask-method comparison (IoU), LV fractions, per-frame and per-phase scores, results table."
import numpy as np, pandas as pd
import pytest
from medrepro.sample import generate
from medrepro.echonet import data as D, eda as A, evaluate as V
from medrepro.echonet.evaluate import PAPER_RESULTS


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return D.echo_index(generate('echonet', tmp_path_factory.mktemp('e')/'echonet', n=4, seed=2))


def test_compare_mask_methods(data):
    cmp = A.compare_mask_methods(data)
    assert len(cmp) == len(data.frames) * 3 * 2 and set(cmp.method) == {'sort', 'centroid', 'hull'}
    for _, w in cmp.sample(5, random_state=0).iterrows():                # IoU and area ratio by hand
        c = data.coords(w.FileName, w.Frame)
        mk, ref = D.tracing_mask(c, method=w.method, axis=w.axis).astype(bool), D.tracing_mask(c).astype(bool)
        assert w.iou == pytest.approx((mk & ref).sum() / (mk | ref).sum()) and w.area_ratio == pytest.approx(mk.sum() / ref.sum())
    s = cmp.groupby(['method', 'axis']).iou.mean()
    assert s[('sort', False)] < 0.8 < s[('centroid', False)]          # sort zig-zags, the angle order follows the outline
    assert (cmp[cmp.method == 'hull'].area_ratio >= 0.999).all()       # the hull never loses area


def test_lv_fractions_give_the_all_black_dice(data):
    fr = A.lv_fractions(data)
    assert fr.lv_fraction.between(0.03, 0.3).all()
    assert (fr[fr.Phase == 'ED'].set_index('FileName').lv_fraction > fr[fr.Phase == 'ES'].set_index('FileName').lv_fraction).all()


def test_frame_scores_and_phase_summary():
    fr = pd.DataFrame(dict(FileName=['a', 'a'], Frame=[1, 9], Phase=['ED', 'ES']))
    t = np.zeros((2, 4, 4), bool); t[0, :2, :2] = True; t[1, :1, :2] = True
    p = t.copy(); p[1] = False                                         # ED perfect, ES all black
    s = V.frame_scores(fr, p, t)
    assert s.f1.tolist() == [1.0, 0.0] and s.dice_all.tolist() == [1.0, 14 / 16]
    ps = V.phase_summary(s)
    assert ps.loc['ED', 'dice_fg_mean'] == 1.0 and ps.loc['ES', 'dice_fg_mean'] == 0.0
    assert ps.loc['all', 'dice_fg_pooled'] == pytest.approx(2 * 4 / (2 * 4 + 2))
    assert ps.loc['all', 'dice_all_pooled'] == pytest.approx(30 / 32)


def test_results_table_rows():
    runs = pd.DataFrame([dict(run='r', loss='bce', split='video', epochs=2, bridge=True, attention=True, test_dice_all=0.9,
                              test_dice_fg=0.5, valid_loss=0.1, seconds=3.0), dict(run='all-black prediction', loss=np.nan)])
    lms = pd.DataFrame([dict(approach='landmarks', loss='paper_ce', K=7, epochs=3, dice_fg=0.3, landmark_err_px=4.5, train_s=5.0)])
    t = V.results_table(PAPER_RESULTS, runs, lms, hardware='cpu')
    assert t.source.tolist() == ['paper'] * 4 + ['echonet/dynamic (Ouyang 2020)', 'ours', 'ours (landmarks)']
    assert t.iloc[5].setting == 'bce, split by video, 2 epochs, attention' and t.iloc[6].dice_fg == 0.3
    assert t.iloc[6].setting == 'paper_ce, K = 7, 3 epochs' and t.iloc[6].landmark_err_px == 4.5 and t.iloc[6].time == '5 s'
    assert t.iloc[0].dice_all == 0.9862 and t.iloc[4].dice_fg == 0.92
