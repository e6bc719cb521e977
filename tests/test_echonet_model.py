"EchoNet U-Net: shapes, the bridge option, attention gates, n_out maps, parameter counts, save/load through the registry."
import numpy as np, torch
import pytest
from medrepro.core import save_model, load_model, ModelConfig
from medrepro.echonet import model as N
from medrepro.nets import n_params


def test_paper_widths_parameter_count():
    # Ronneberger widths with batch norm: 31.0 M; without the bridge the 1024-channel level is gone
    assert n_params(N.EchoUNet()) == 31_036_481
    assert n_params(N.EchoUNet(bridge=False)) == 15_828_033


def test_shapes_bridge_and_attention():
    x = torch.randn(2, 1, 32, 32)
    for b in (True, False):
        for a in (False, True):
            m = N.EchoUNet(n_out=3, widths=(4, 8, 16), bridge=b, attention=a)
            assert m(x).shape == (2, 3, 32, 32)
    m = N.EchoUNet(widths=(4, 8, 16), bridge=False)
    assert isinstance(m.bridge, torch.nn.Identity) and m.up[0].in_channels == 8
    m = N.EchoUNet(widths=(4, 8, 16), attention=True); m(x)
    a = m.gates[-1].last
    assert a.shape == (2, 1, 32, 32) and float(a.min()) >= 0 and float(a.max()) <= 1
    with pytest.raises(ValueError, match='divisible by 4'): m(torch.zeros(1, 1, 30, 30))
    with pytest.raises(ValueError, match='at least 2 widths'): N.EchoUNet(widths=(4,))


def test_save_and_load_through_the_registry(tmp_path):
    torch.manual_seed(0)
    m = N.echonet_unet(widths=(4, 8), attention=True, n_out=2).eval()
    save_model(tmp_path/'m', m, ModelConfig('echonet_unet', dict(widths=[4, 8], attention=True, n_out=2)))
    m2, cfg = load_model(tmp_path/'m', 'cpu')
    x = torch.randn(1, 1, 16, 16)
    assert cfg.arch == 'echonet_unet' and torch.allclose(m(x), m2(x))
