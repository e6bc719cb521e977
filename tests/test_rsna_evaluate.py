"RSNA evaluation: prediction, per-label scores with the paper's NA, constant answers (the paper's C7 arithmetic), and a smoke model that learns."
import numpy as np, pandas as pd, pytest, torch
from medrepro.train import predict
from medrepro.rsna.evaluate import label_scores, constant_predictions, rule_prediction, wll_table


def test_predict_in_batches():
    p = predict(torch.nn.Linear(3, 2), np.zeros((5, 3), np.float32), bs=2, device='cpu')
    assert p.shape == (5, 2) and np.allclose(p, p[0])


def test_the_papers_c7_row_is_a_constant_answer():
    y = np.zeros((120, 8)); y[:21, 6] = 1; y[:11, 0] = 1; y[:, 7] = y[:, :7].max(1)
    s = label_scores(y, rule_prediction(120, always=('C7',)))
    assert s.loc['C7', 'accuracy'] == pytest.approx(.175) and s.loc['C7', 'f1'] == pytest.approx(42 / 141)
    assert s.loc['C1', 'accuracy'] == pytest.approx(109 / 120) and np.isnan(s.loc['C1', 'f1'])     # never predicted: NA
    assert s.loc['C1', 'predicted'] == 0 and s.loc['C7', 'predicted'] == 120 and s.loc['C7', 'positives'] == 21
    assert rule_prediction(3, always=())[:, 7].sum() == 0 and rule_prediction(3)[:, 7].tolist() == [1, 1, 1]


def test_scores_and_constants():
    y = np.array([[1, 0, 0, 0, 0, 0, 0, 1], [0] * 8, [0, 0, 0, 0, 0, 0, 1, 1], [0] * 8], float)
    c = constant_predictions(y, 2)
    assert c['constant 0.5'].shape == (2, 8) and c['constant prevalence'][0, 0] == pytest.approx(.25)
    assert c['constant prevalence'][0, 1] == pytest.approx(.01)
    t = wll_table(y, {'truth': np.clip(y, .01, .99), **constant_predictions(y, 4)})
    assert t.loc['constant 0.5', 'weighted_log_loss'] == pytest.approx(np.log(2))
    assert t.loc['truth', 'weighted_log_loss'] < t.loc['constant prevalence', 'weighted_log_loss'] < np.log(2)
    assert t.loc['truth', 'paper_score'] == 1.0 and t.loc['constant prevalence', 'paper_score'] == pytest.approx(.5)
    s = label_scores(y, np.where(y > 0, .9, .1))
    assert (s['accuracy'] == 1).all() and (s.loc[['C1', 'C7'], 'f1'] == 1).all() and np.isnan(s.loc['C3', 'f1'])


@pytest.mark.slow
def test_smoke_crop_model_learns_and_never_sees_the_test_studies(tmp_path):
    "Notebook 16's smoke settings: the crop model beats the constant prevalence on the test studies and finds some fractures."
    import fastai.callback.schedule
    from medrepro.core import seed_everything
    from medrepro.train import make_learner
    from medrepro.rsna.data import read_labels, rsna_root, split_studies, study_labels
    from medrepro.rsna.metrics import rsna_metrics, weighted_log_loss
    from medrepro.rsna.train import SliceAuxLoss
    from medrepro.rsna.model import CropGRU
    from medrepro.data import dataloaders
    from medrepro.rsna.preprocess import load_inputs, float_sets
    root = rsna_root(n_studies=36)
    sp = split_studies(read_labels(root), .25, .25, None, 42)
    assert not set(sp['test']) & (set(sp['train']) | set(sp['valid']))
    kw = dict(n_slices=6, img_size=16, crop_size=24, windows=('bone',), crop_window='bone', context=1)
    (_, c_tr, _), (_, c_va, _), (_, c_te, _) = (load_inputs(root, sp[k], tmp_path, **kw) for k in ('train', 'valid', 'test'))
    y_tr, y_va, y_te = (study_labels(root, sp[k]) for k in ('train', 'valid', 'test'))
    seed_everything(42)
    model = CropGRU(3, widths=(16, 32, 64), hidden=32)
    learn = make_learner(dataloaders(*float_sets(c_tr, y_tr, c_va, y_va), bs=4, device='cpu', drop_last=False), model, SliceAuxLoss(model, 1.), metrics=rsna_metrics(),
                         lr=3e-3, out_dir=tmp_path/'m', monitor='wll', comp=np.less, lr_patience=None)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(16, 3e-3)
    p = predict(learn.model, c_te, device='cpu')
    const = weighted_log_loss(y_te, np.tile(np.clip(y_tr.mean(0), .01, .99), (len(y_te), 1)))
    assert weighted_log_loss(y_te, p) < const
    s = label_scores(y_te, p)
    print(s, p.round(2))
    assert s.loc['patient_overall', 'f1'] > 0.5                          # F1 is not stuck at 0 (nor NA)
    from sklearn.metrics import roc_auc_score
    v = [i for i in range(7) if 0 < y_te[:, i].sum() < len(y_te)]
    assert np.mean([roc_auc_score(y_te[:, i], p[:, i]) for i in v]) > 0.7   # it ranks fractured vertebrae first
