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
    for r in data.frames.itertuples():   # the hull never loses area (against the unrounded polygon: the rounded reference adds outline pixels)
        c = data.coords(r.FileName, r.Frame)
        assert D.tracing_mask(c, method='hull').sum() >= 0.999 * D.fill_polygon(D.reference_polygon(c)).sum()


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
    runs = pd.DataFrame([dict(run='r', paper_experiment=np.nan, loss='bce', split='video', epochs=2, bridge=True, attention=True, valid_dice_all=0.9,
                              valid_dice_fg=0.5, test_dice_fg=0.45, test_is_valid=False, train_dice_all=0.95, train_loss=0.2, valid_loss=0.1, seconds=3.0),
                         dict(run='e1', paper_experiment=1, loss='bce', split='frames', epochs=20, bridge=True, attention=False, valid_dice_all=0.98,
                              test_is_valid=True, test_dice_fg=0.9, n_train=16, n_valid=4, seconds=9.0),
                         dict(run='all-black prediction', loss=np.nan, valid_dice_all=0.88)])
    lms = pd.DataFrame([dict(approach='landmarks', loss='paper_ce', K=7, epochs=5, split='frames', dice_fg=0.3, dice_all=0.8, landmark_err_px=4.5,
                             train_s=5.0, train_dice_all=0.85, train_loss=0.06, valid_loss=0.07, n_train=800, n_valid=200),
                        dict(approach='landmarks', loss='paper_ce', K=3, epochs=3, split='video', dice_fg=0.2, n_train=8, n_valid=2)])
    t = V.results_table(PAPER_RESULTS, runs, lms, hardware='cpu')
    assert t.run.tolist() == ['experiment 1', 'e1', 'experiment 2', 'experiment 3', 'landmarks_paper_ce_k7', 'experiment 4', 'all-black prediction',
                              'all-black prediction', 'DeepLabV3', 'r', 'landmarks_paper_ce_k3']      # only the run at experiment 3's settings is set beside it
    assert t.source.tolist()[:5] == ['paper', 'ours', 'paper', 'paper', 'ours (landmarks)']
    r = t.set_index('run').loc['r']
    assert r.setting == 'bce, reference masks, split by video, 2 epochs, attention' and r.test_dice_fg == 0.5 and r.unseen_dice_fg == 0.45
    assert (r.train_dice, r.train_loss, r.test_dice, r.test_loss) == (0.95, 0.2, 0.9, 0.1)
    e1 = t.set_index('run').loc['e1']
    assert (e1.n_train, e1.n_test) == (16, 4) and np.isnan(e1.unseen_dice_fg)     # its test part is the validation part: not unseen
    lm = t.set_index('run').loc['landmarks_paper_ce_k7']
    assert lm.setting == 'paper_ce, K = 7, 5 epochs' and lm.landmark_err_px == 4.5 and lm.time == '5 s' and lm.experiment == 3
    assert (lm.train_dice, lm.train_loss, lm.test_dice, lm.test_loss, lm.n_train, lm.n_test) == (0.85, 0.06, 0.8, 0.07, 800, 200)
    assert t.iloc[0].test_dice == 0.9862 and t.iloc[0].train_dice == 0.9946 and (t.iloc[0].n_train, t.iloc[0].n_test) == (16038, 4010)
    assert t.test_dice[t.run == 'all-black prediction'].tolist() == [0.85, 0.88]
    assert t.set_index('run').loc['DeepLabV3'].unseen_dice_fg == 0.92
