"RSNA losses and metrics: competition weights, the weighted log loss (by column name), WeightedBCE, the paper's metric, fastai metrics."
import numpy as np, pandas as pd, pytest, torch
import torch.nn.functional as F
from medrepro.rsna.data import LABELS, VERTEBRAE
from medrepro.rsna.metrics import label_weights, weighted_log_loss, WeightedBCE, rsna_loss, paper_score, rsna_metrics
from medrepro.rsna.train import SliceAuxLoss
from medrepro.rsna.model import CropGRU


def test_weights():
    assert LABELS == VERTEBRAE + ['patient_overall']
    w = label_weights([[1, 0, 0, 0, 0, 0, 0, 1], [0] * 8])
    assert w.tolist() == [[2, 1, 1, 1, 1, 1, 1, 14], [1, 1, 1, 1, 1, 1, 1, 7]]


def test_log_loss_by_hand():
    y = np.array([[1., 0, 0, 0, 0, 0, 0, 1], [0] * 8])
    p = np.array([[.9, .5, .5, .5, .5, .5, .5, .5], [.2] * 8])
    num = 2 * -np.log(.9) + 6 * -np.log(.5) + 14 * -np.log(.5) + 7 * -np.log(.8) + 7 * -np.log(.8)
    assert weighted_log_loss(y, p) == pytest.approx(num / 36, rel=1e-6)
    assert rsna_loss()(torch.logit(torch.tensor(p)), torch.tensor(y)).item() == pytest.approx(num / 36, rel=1e-5)
    with pytest.raises(ValueError, match=r'\(n, 8\)'): weighted_log_loss(np.zeros((2, 7)), np.zeros((2, 7)))


def test_log_loss_reads_dataframes_by_column_name():
    "Distinct probabilities per column, columns shuffled: taking them by position gives another number."
    rng = np.random.default_rng(0)
    y = pd.DataFrame((rng.random((6, 8)) < .4).astype(int), columns=LABELS)
    p = pd.DataFrame(rng.uniform(.05, .95, (6, 8)), columns=LABELS)
    want = weighted_log_loss(y.to_numpy(), p.to_numpy())
    shuffled = p[list(np.random.default_rng(1).permutation(LABELS))]
    assert list(shuffled.columns) != LABELS
    assert weighted_log_loss(y, shuffled) == pytest.approx(want)
    assert weighted_log_loss(y[LABELS[::-1]], shuffled) == pytest.approx(want)
    assert weighted_log_loss(y.to_numpy(), shuffled.to_numpy()) != pytest.approx(want)   # by position: wrong


def test_loss_matches_metric_random():
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(20, 8, generator=g) < .3).float(); logits = torch.randn(20, 8, generator=g)
    assert rsna_loss()(logits, y).item() == pytest.approx(weighted_log_loss(y, torch.sigmoid(logits)), rel=1e-5)


def test_weighted_bce_scalar_and_shape_check():
    l = WeightedBCE(2., 1.)(torch.logit(torch.tensor([[.9], [.3]])), torch.tensor([[1.], [0.]])).item()
    assert l == pytest.approx((2 * -np.log(.9) + -np.log(.7)) / 3, rel=1e-5)
    with pytest.raises(ValueError, match=r'\(n, 8\)'): rsna_loss()(torch.zeros(2, 7), torch.zeros(2, 7))


def test_paper_score():
    y = np.array([[1, 1, 0, 0, 0, 0, 0, 1], [0] * 8, [0] * 8, [0, 0, 0, 0, 0, 0, 1, 1]], float)
    assert paper_score(y, y) == 1.0
    assert paper_score(y, np.zeros_like(y)) == pytest.approx(2 / 5)      # 3 fractures + 2 free patients; only the free score
    assert paper_score(y, np.ones_like(y)) == pytest.approx(3 / 5)
    p = y.copy(); p[0, 2:7] = 1                                          # false alarms on a fractured patient: not penalised
    assert paper_score(y, p) == 1.0
    p = y.copy(); p[1, 4] = .9                                           # a false alarm on a free patient costs that patient
    assert paper_score(y, p) == pytest.approx(4 / 5)


def test_fastai_wll_metric_takes_targets_and_predictions_in_order():
    y = torch.tensor([[1., 0, 0, 0, 0, 0, 0, 1], [0] * 8]); p = torch.tensor([[.9] + [.2] * 6 + [.7], [.1] * 8])
    m = rsna_metrics()[2]; m.reset(); m.accum_values(p, y)
    assert m.name == 'wll' and m.value == pytest.approx(weighted_log_loss(y, p))


def test_slice_aux_loss():
    torch.manual_seed(0)
    m = CropGRU(3, widths=(4, 8), hidden=4).eval()
    out = m(torch.randn(2, 7, 3, 3, 12, 12))
    y = torch.zeros(2, 8); y[0, [1, 7]] = 1
    base = rsna_loss()(out, y)
    by_hand = base + .5 * F.binary_cross_entropy_with_logits(m.slice_logits, y[:, :7, None].expand(2, 7, 3), pos_weight=torch.tensor(4.))
    assert SliceAuxLoss(m, aux=.5)(out, y).item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert SliceAuxLoss(m, aux=0)(out, y).item() == pytest.approx(base.item())
    assert 'model' not in dict(SliceAuxLoss(m).named_modules())


def test_fastai_f1_is_the_fractured_class_f1_with_one_label_too():
    "A one-output model that never says fractured scores F1 0 (sklearn's average='macro' would give 12/26, both classes averaged)."
    from types import SimpleNamespace
    from fastai.torch_core import to_detach
    m = rsna_metrics()[1]
    y1 = torch.tensor([[0.]] * 6 + [[1.]])
    for logits, want in [(torch.full((7, 1), -3.), 0.), (torch.where(y1 > 0, 3., -3.), 1.)]:
        m.reset(); m.accumulate(SimpleNamespace(pred=logits, y=y1, to_detach=to_detach))
        assert m.name == 'f1_score' and m.value == pytest.approx(want)
    from sklearn.metrics import f1_score
    y8 = (torch.rand(30, 8, generator=torch.Generator().manual_seed(0)) < .4).float()
    logits = torch.randn(30, 8, generator=torch.Generator().manual_seed(1))
    m.reset(); m.accumulate(SimpleNamespace(pred=logits, y=y8, to_detach=to_detach))
    assert m.value == pytest.approx(f1_score(y8.numpy(), (logits > 0).numpy(), average='macro', zero_division=0))
