"ResUNet architecture, losses, metrics and the save/load round trip of the DSB study."
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from medrepro.dsb.model import ResUNet, make_model, param_counts, layer_summary
from medrepro.dsb import train as T


def test_resunet_output_shape_any_size():
    m = ResUNet().eval()
    with torch.no_grad():
        assert m(torch.rand(2, 3, 64, 64)).shape == (2, 1, 64, 64)
        assert m(torch.rand(1, 3, 100, 75)).shape == (1, 1, 100, 75)   # padded to /16 and cropped back


def test_resunet_parameter_count_matches_keras_design():
    c = param_counts(ResUNet())
    # Keras ResUNet 16-32-64-128-256 (conv biases, BN gamma/beta + moving mean/var): Total 4,723,057 / trainable 4,715,761
    assert c == dict(trainable=4_715_761, bn_running_stats=7_296, keras_total=4_723_057)
    s = layer_summary(ResUNet(), 64)
    assert list(s['block']) == ['e1', 'e2', 'e3', 'e4', 'e5', 'b0', 'b1', 'd1', 'd2', 'd3', 'd4', 'head']
    assert [sh[0] for sh in s['out_shape']] == [16, 32, 64, 128, 256, 256, 256, 256, 128, 64, 32, 1]
    assert s['out_shape'].iloc[4][1:] == (4, 4) and s['out_shape'].iloc[-1][1:] == (64, 64)
    assert s['params'].sum() == c['trainable']


def test_residual_blocks_are_preactivation_with_bn_shortcut():
    m = ResUNet()
    blk = m.e2
    assert [type(l).__name__ for l in blk.block1] == ['BatchNorm2d', 'ReLU', 'Conv2d'] and blk.block1[2].stride == (2, 2)
    assert [type(l).__name__ for l in blk.short] == ['Conv2d', 'BatchNorm2d'] and blk.short[0].kernel_size == (1, 1)
    assert blk.short[0].stride == (2, 2)


def test_narrow_resunet_and_baseline():
    assert param_counts(make_model('resunet', filters=(8, 16, 32, 64, 128)))['trainable'] < 1.3e6
    base = make_model('unet_resnet34', 64).eval()
    with torch.no_grad(): assert base(torch.rand(1, 3, 64, 64)).shape == (1, 1, 64, 64)
    with pytest.raises(ValueError, match='unknown arch'): make_model('vgg')


def test_resunet_learns_a_tiny_batch():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32); y = (x[:, 0] > 0.5).long()
    m = ResUNet(filters=(4, 8, 16, 32, 64)); opt = torch.optim.Adam(m.parameters(), 1e-2); loss = T.dsb_loss('bce')
    first, threads = None, torch.get_num_threads()
    torch.set_num_threads(1)   # tiny tensors: one thread avoids thread-pool stalls on a busy CPU
    try:
        for _ in range(15):
            opt.zero_grad(); l = loss(m(x), y); l.backward(); opt.step(); first = first or l.item()
    finally: torch.set_num_threads(threads)
    assert l.item() < 0.7 * first


def test_losses_on_hand_made_masks():
    targ = torch.zeros(1, 20, 20, dtype=torch.long); targ[:, :10] = 1           # top half
    good = torch.where(targ.bool(), 9., -9.)[:, None]; bad = -good
    bce = T.dsb_loss('bce')
    assert float(bce(good, targ)) == pytest.approx(float(F.binary_cross_entropy_with_logits(good[:, 0], targ.float())))
    dice = T.dsb_loss('dice')
    assert float(dice(good, targ)) < 0.01 and float(dice(bad, targ)) > 0.99
    half = torch.full((1, 1, 20, 20), -9.); half[..., :10] = 9.                 # left half: Dice 0.5
    assert float(dice(half, targ)) == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match='unknown loss'): T.dsb_loss('focal')


def test_foreground_metrics_on_hand_made_masks():
    class L: pass
    learn = L(); learn.pred = torch.tensor([[[[5., -5.], [5., -5.]]]]); learn.y = torch.tensor([[[1, 1], [0, 0]]])
    d, j = T.FgDice(), T.FgJaccard()
    for m in (d, j): m.reset(); m.accumulate(learn)
    assert d.value == pytest.approx(0.5) and j.value == pytest.approx(1 / 3)
    assert (d.name, j.name) == ('dice', 'jaccard')


def test_save_and_load_model(tmp_path):
    m = ResUNet(filters=(4, 8, 16, 32, 64))
    p = T.save_model(m, tmp_path/'m.pth', arch='resunet', filters=[4, 8, 16, 32, 64], img_size=32, mode='native', test_ids=['a'])
    m2, meta = T.load_model(p)
    assert meta['mode'] == 'native' and meta['test_ids'] == ['a']
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))
    with pytest.raises(FileNotFoundError, match='run 33_dsb_train first'): T.load_model(tmp_path/'none.pth')
    with pytest.raises(ValueError, match='do not fit'): T.load_model(p, filters=[16, 32, 64, 128, 256])
