"RSNA networks: output shapes, patient_overall from the vertebrae, pretrained weights, autocast, learning, save/load through core."
import numpy as np, pytest, torch
from medrepro.core import ModelConfig, save_model, load_model
from medrepro.rsna.metrics import rsna_loss
from medrepro.rsna.model import Cnn3dStandIn, EffNetGRU, CropGRU, effnet_b0, with_patient, patient_logit


def test_cnn3d_shapes():
    x = torch.randn(2, 2, 16, 32, 32)
    assert Cnn3dStandIn(2, widths=(4, 8, 8, 8))(x).shape == (2, 8)
    out = Cnn3dStandIn(2, widths=(4, 8), patient='noisy_or')(x)
    assert out.shape == (2, 8) and out.dtype == torch.float32
    assert Cnn3dStandIn(1, widths=(4, 4, 4, 4), padding=0)(torch.randn(1, 1, 64, 64, 64)).shape == (1, 8)
    with pytest.raises(ValueError, match='expects'): Cnn3dStandIn(2, widths=(4,))(torch.randn(2, 16, 32, 32))


def test_effnet_gru_and_crop_shapes():
    assert EffNetGRU(n_out=1, hidden=8).eval()(torch.randn(2, 2, 3, 32, 32)).shape == (2, 1)
    assert EffNetGRU(n_out=1, in_ch=2, hidden=8).eval()(torch.randn(1, 5, 2, 32, 32)).shape == (1, 1)
    m = CropGRU(in_ch=3, widths=(4, 8), hidden=8).eval()
    assert m(torch.randn(3, 7, 5, 3, 16, 16)).shape == (3, 8) and m.slice_logits.shape == (3, 7, 5)
    with pytest.raises(ValueError, match=r'\(n, 7, T, K, S, S\)'): m(torch.randn(3, 6, 5, 3, 16, 16))
    with pytest.raises(ValueError, match='encoder'): CropGRU(encoder='resnet')


def test_patient_from_vertebrae():
    p = torch.tensor([[.1, .2, .05, .05, .05, .05, .05]])
    out = torch.sigmoid(with_patient(torch.logit(p)))
    assert out.shape == (1, 8) and torch.allclose(out[:, :7], p, atol=1e-6)
    assert out[0, 7].item() == pytest.approx(1 - np.prod([.9, .8] + [.95] * 5), rel=1e-4)
    assert torch.sigmoid(patient_logit(torch.logit(p), 'max')).item() == pytest.approx(.2, rel=1e-5)
    assert torch.isfinite(patient_logit(torch.full((2, 7), -40.))).all()
    with pytest.raises(ValueError): patient_logit(p, 'mean')


def test_pretrained_without_cache_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.setattr(torch.hub, '_hub_dir', None, raising=False)
    with pytest.raises(FileNotFoundError, match='not cached.*pretrained=False'): effnet_b0(pretrained=True)
    with pytest.raises(FileNotFoundError, match='not cached'): EffNetGRU(pretrained=True)
    with pytest.raises(FileNotFoundError, match='not cached'): CropGRU(encoder='effnet_b0', pretrained=True)


def test_autocast_dtypes():
    x6, x5 = torch.randn(2, 7, 3, 3, 16, 16), torch.randn(2, 2, 8, 16, 16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        for m, x in [(CropGRU(3, widths=(4, 8), hidden=8), x6), (Cnn3dStandIn(2, widths=(4, 8)), x5)]:
            out = m(x)
            assert out.dtype == torch.float32 and torch.isfinite(rsna_loss()(out, torch.zeros(2, 8)))


@pytest.mark.parametrize('make,shape', [(lambda: CropGRU(3, widths=(4, 8), hidden=8, dropout=0), (6, 7, 2, 3, 12, 12)),
                                        (lambda: Cnn3dStandIn(2, widths=(4, 8), dropout=0, hidden=16), (6, 2, 8, 12, 12))])
def test_training_steps_reduce_loss(make, shape):
    torch.manual_seed(0)
    m, x = make(), torch.randn(*shape)
    y = torch.zeros(6, 8); y[:3, 0] = 1; y[:3, 7] = 1; y[3, 6] = 1; y[3, 7] = 1
    x[:3] += 1.0
    opt, loss_fn = torch.optim.Adam(m.parameters(), 1e-2), rsna_loss()
    m.train(); first = loss_fn(m(x), y).item()
    for _ in range(15):
        opt.zero_grad(); loss = loss_fn(m(x), y); loss.backward(); opt.step()
    m.eval()
    with torch.no_grad(): last = loss_fn(m(x), y).item()
    assert last < first * 0.8


@pytest.mark.parametrize('arch,params,x', [
    ('rsna_cnn3d', dict(in_ch=2, widths=[4, 8], hidden=8, padding=1, patient='head'), torch.randn(1, 2, 8, 16, 16)),
    ('rsna_crop_gru', dict(in_ch=3, encoder='small', widths=[4, 8], hidden=4), torch.randn(1, 7, 2, 3, 16, 16)),
    ('rsna_effnet_gru', dict(n_out=1, in_ch=3, hidden=4), torch.randn(1, 2, 3, 32, 32)),
    ('rsna_effnet_gru', dict(n_out=1, in_ch=3, hidden=4, width=0.25), torch.randn(1, 2, 3, 32, 32))])
def test_registered_save_and_load(tmp_path, arch, params, x):
    m = ModelConfig(arch, params).build().eval()
    save_model(tmp_path, m, ModelConfig(arch, params, meta=dict(test_uids=['a'], valid_uids=['b'])))
    m2, cfg = load_model(tmp_path, device='cpu')
    assert cfg.arch == arch and cfg.module == 'medrepro.rsna.model' and cfg.meta['test_uids'] == ['a']
    with torch.no_grad(): assert torch.allclose(m(x), m2(x), atol=1e-6)


def test_effnet_width_one_is_torchvision_b0_and_narrower_is_smaller():
    "width 1.0 builds exactly torchvision's B0 (same weights for the same seed); the smoke width is a tenth of its size."
    from torchvision.models import efficientnet_b0
    torch.manual_seed(0); ours = effnet_b0(width=1.0)
    torch.manual_seed(0); tv = efficientnet_b0()
    assert all(torch.equal(a, b) for a, b in zip(ours[0].state_dict().values(), tv.features.state_dict().values()))
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(effnet_b0(width=0.25)) < n(ours) / 10
    assert EffNetGRU(hidden=4, width=0.5).gru.input_size == 640
    with pytest.raises(ValueError, match='width 1.0'): EffNetGRU(pretrained=True, width=0.25)
