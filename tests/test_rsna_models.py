"RSNA models: output shapes, the competition-weighted loss, patient_overall, pretrained weights, learning."
import numpy as np, pandas as pd, pytest, torch
from medrepro.metrics import rsna_weighted_log_loss
from medrepro.rsna.models import Cnn3d, RsnaLoss, with_patient, patient_logit, split_studies, vertebra_accuracy, vertebra_f1
from medrepro.rsna.seq import EffNetGRU, CropGRU, WeightedBCE, effnet_b0


def test_cnn3d_shapes():
    x = torch.randn(2, 2, 16, 32, 32)
    assert Cnn3d(2, widths=(4, 8, 8, 8))(x).shape == (2, 8)
    out = Cnn3d(2, widths=(4, 8), patient='noisy_or')(x)
    assert out.shape == (2, 8) and out.dtype == torch.float32
    with pytest.raises(ValueError, match='expects'): Cnn3d(2, widths=(4,))(torch.randn(2, 16, 32, 32))


def test_effnet_gru_shapes():
    m = EffNetGRU(n_out=1, hidden=8).eval()
    assert m(torch.randn(2, 2, 3, 32, 32)).shape == (2, 1)
    assert EffNetGRU(n_out=7, in_ch=2, hidden=8).eval()(torch.randn(1, 2, 2, 32, 32)).shape == (1, 7)


def test_crop_model_shapes():
    m = CropGRU(in_ch=3, widths=(4, 8), hidden=8).eval()
    assert m(torch.randn(3, 7, 5, 3, 16, 16)).shape == (3, 8)
    with pytest.raises(ValueError, match=r'\(n, 7, T, K, S, S\)'): m(torch.randn(3, 6, 5, 3, 16, 16))
    assert CropGRU(in_ch=3, encoder='effnet_b0', hidden=8).eval()(torch.randn(1, 7, 2, 3, 32, 32)).shape == (1, 8)


def test_weighted_loss_hand_computed():
    y = torch.tensor([[1., 0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0, 0]])
    p = torch.tensor([[.9, .5, .5, .5, .5, .5, .5, .5], [.2] * 8])
    # row 1: C1 positive w=2, six negatives w=1, patient positive w=14; row 2: seven negatives w=1, patient negative w=7
    num = 2 * -np.log(.9) + 6 * -np.log(.5) + 14 * -np.log(.5) + 7 * -np.log(.8) + 7 * -np.log(.8)
    den = 2 + 6 + 14 + 7 + 7
    assert RsnaLoss()(torch.logit(p), y).item() == pytest.approx(num / den, rel=1e-5)
    assert rsna_weighted_log_loss(y.numpy(), p.numpy()) == pytest.approx(num / den, rel=1e-5)
    assert RsnaLoss(reduction='none')(torch.logit(p), y).shape == (2, 8)
    with pytest.raises(ValueError, match='8'): RsnaLoss()(torch.zeros(2, 7), torch.zeros(2, 7))


def test_weighted_loss_matches_metric_random():
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(20, 8, generator=g) < .3).float(); logits = torch.randn(20, 8, generator=g)
    assert RsnaLoss()(logits, y).item() == pytest.approx(rsna_weighted_log_loss(y.numpy(), torch.sigmoid(logits).numpy()), rel=1e-5)


def test_vertebra_bce_weights():
    l = WeightedBCE()(torch.logit(torch.tensor([[.9], [.3]])), torch.tensor([[1.], [0.]])).item()
    assert l == pytest.approx((2 * -np.log(.9) + -np.log(.7)) / 3, rel=1e-5)


def test_patient_from_vertebrae():
    p = torch.tensor([[.1, .2, .05, .05, .05, .05, .05]])
    out = torch.sigmoid(with_patient(torch.logit(p)))
    assert out.shape == (1, 8) and torch.allclose(out[:, :7], p, atol=1e-6)
    assert out[0, 7].item() == pytest.approx(1 - np.prod([.9, .8] + [.95] * 5), rel=1e-4)
    assert torch.sigmoid(patient_logit(torch.logit(p), 'max')).item() == pytest.approx(.2, rel=1e-5)
    assert torch.isfinite(patient_logit(torch.full((2, 7), -40.))).all()   # all vertebrae surely healthy: no NaN
    with pytest.raises(ValueError): patient_logit(p, 'mean')


def test_pretrained_without_cache_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.setattr(torch.hub, '_hub_dir', None, raising=False)
    with pytest.raises(FileNotFoundError, match='not cached.*pretrained=False'): effnet_b0(pretrained=True)
    with pytest.raises(FileNotFoundError, match='not cached'): EffNetGRU(pretrained=True)
    with pytest.raises(FileNotFoundError, match='not cached'): CropGRU(encoder='effnet_b0', pretrained=True)


def test_autocast_dtypes():
    "Under (CPU bfloat16) autocast the models return float32 logits and the loss is finite."
    x6, x5 = torch.randn(2, 7, 3, 3, 16, 16), torch.randn(2, 2, 8, 16, 16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        for m, x in [(CropGRU(3, widths=(4, 8), hidden=8), x6), (Cnn3d(2, widths=(4, 8)), x5)]:
            out = m(x)
            assert out.dtype == torch.float32
            assert torch.isfinite(RsnaLoss()(out, torch.zeros(2, 8)))
        assert EffNetGRU(hidden=8)(torch.randn(1, 2, 3, 32, 32)).dtype == torch.float32


@pytest.mark.parametrize('make,shape', [(lambda: CropGRU(3, widths=(4, 8), hidden=8, dropout=0), (6, 7, 2, 3, 12, 12)),
                                        (lambda: Cnn3d(2, widths=(4, 8), dropout=0, hidden=16), (6, 2, 8, 12, 12))])
def test_training_steps_reduce_loss(make, shape):
    torch.manual_seed(0)
    m, x = make(), torch.randn(*shape)
    y = torch.zeros(6, 8); y[:3, 0] = 1; y[:3, 7] = 1; y[3, 6] = 1; y[3, 7] = 1
    x[:3] += 1.0                                   # a learnable signal
    opt, loss_fn = torch.optim.Adam(m.parameters(), 1e-2), RsnaLoss()
    m.train(); first = loss_fn(m(x), y).item()
    for _ in range(15):
        opt.zero_grad(); loss = loss_fn(m(x), y); loss.backward(); opt.step()
    m.eval()
    with torch.no_grad(): last = loss_fn(m(x), y).item()
    assert last < first * 0.8


def test_split_studies_disjoint_and_deterministic():
    lab = pd.DataFrame({'StudyInstanceUID': [f'1.2.{i}' for i in range(12)], 'patient_overall': [0, 1] * 6})
    tr, va = split_studies(lab, 0.25, seed=3)
    assert len(va) == 3 and len(tr) == 9 and not set(tr) & set(va)
    assert (tr, va) == split_studies(lab, 0.25, seed=3)
    with pytest.raises(ValueError): split_studies(lab.head(1))


def test_vertebra_metrics():
    y = np.array([[1, 0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1, 1]], float)
    p = np.array([[.8, .1, .1, .1, .1, .1, .1, .8], [.1, .1, .1, .1, .1, .1, .3, .6]])
    assert vertebra_accuracy(p, y) == pytest.approx(13 / 14)
    assert vertebra_f1(p, y) == pytest.approx(1 / 7)     # C1 found (F1 1), C7 missed (0), others no positives (0)


def test_slice_aux_loss():
    "The deep-supervision term: competition loss + pos-weighted BCE of each slice score against its vertebra's label."
    import torch.nn.functional as F
    from medrepro.rsna.seq import SliceAuxLoss
    torch.manual_seed(0)
    m = CropGRU(3, widths=(4, 8), hidden=4).eval()
    out = m(torch.randn(2, 7, 3, 3, 12, 12))
    assert m.slice_logits.shape == (2, 7, 3)
    y = torch.zeros(2, 8); y[0, [1, 7]] = 1
    base = RsnaLoss()(out, y)
    by_hand = base + .5 * F.binary_cross_entropy_with_logits(m.slice_logits, y[:, :7, None].expand(2, 7, 3), pos_weight=torch.tensor(4.))
    assert SliceAuxLoss(m, aux=.5)(out, y).item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert SliceAuxLoss(m, aux=0)(out, y).item() == pytest.approx(base.item())
    assert SliceAuxLoss(m, reduction='none')(out, y).shape == (2, 8)
    assert 'model' not in dict(SliceAuxLoss(m).named_modules())     # the model is not registered inside the loss
