"ResUNet architecture, losses, metrics and the save/load round trip of the DSB study."
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from medrepro.core import ModelConfig, save_model, load_model, DataError
from medrepro.dsb.model import ResUNet, make_model, param_counts, layer_summary, keras_defaults
from medrepro.dsb import train as T
from medrepro.nets import MaskLoss


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
    small = make_model('unet_xresnet18s', 64)
    assert param_counts(small)['trainable'] < 3e6   # a few MB: the smoke baseline


def test_resunet_learns_a_tiny_batch():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32); y = (x[:, 0] > 0.5).long()
    m = ResUNet(filters=(4, 8, 16, 32, 64)); opt = torch.optim.Adam(m.parameters(), 1e-2); loss = MaskLoss('bce')
    first, threads = None, torch.get_num_threads()
    torch.set_num_threads(1)   # tiny tensors: one thread avoids thread-pool stalls on a busy CPU
    try:
        for _ in range(15):
            opt.zero_grad(); l = loss(m(x), y); l.backward(); opt.step(); first = first or l.item()
    finally: torch.set_num_threads(threads)
    assert l.item() < 0.7 * first


def test_keras_defaults_batchnorm_and_glorot():
    m = make_model('resunet', filters=(4, 8, 16, 32, 64), bn_momentum=0.01, bn_eps=1e-3, init='glorot')
    bns = [x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)]
    assert bns and all((b.momentum, b.eps) == (0.01, 1e-3) for b in bns)
    convs = [x for x in m.modules() if isinstance(x, torch.nn.Conv2d)]
    assert all(float(c.bias.detach().abs().max()) == 0 for c in convs)
    w = m.d1.block1[2].weight; bound = (6 / (w.shape[1] * 9 + w.shape[0] * 9)) ** 0.5
    assert 0.9 * bound < float(w.detach().abs().max()) <= bound
    d = make_model('resunet', filters=(4, 8, 16, 32, 64))
    assert d.e2.block1[0].momentum == 0.1 and float(d.head.bias.detach().abs().max()) > 0   # PyTorch's defaults otherwise
    with pytest.raises(ValueError, match='init must be'): keras_defaults(d, init='he')


def test_save_and_load_model(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig('resunet', dict(filters=[4, 8, 16, 32, 64], bn_momentum=0.01, bn_eps=1e-3, init='glorot'), dict(mode='native', test_ids=['a']))
    m = cfg.build()
    save_model(tmp_path/'m', m, cfg)
    m2, cfg2 = load_model(tmp_path/'m')
    assert cfg2.meta['mode'] == 'native' and cfg2.meta['test_ids'] == ['a'] and m2.e1.block[0].eps == 1e-3
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))
    with pytest.raises(FileNotFoundError, match='no saved model'): load_model(tmp_path/'none')
    import json
    f = tmp_path/'m'/'config.json'
    c = json.loads(f.read_text()); c['params']['filters'] = [8, 16, 32, 64, 128]; f.write_text(json.dumps(c))
    with pytest.raises(DataError, match='do not fit'): load_model(tmp_path/'m')


def test_smoke_recipe_beats_all_foreground(tmp_path):
    "The smoke defaults of notebook 33 (half-width ResUNet, 64-px crops, one-cycle 1e-2) learn: Jaccard far above an all-foreground mask."
    from fastai.callback.progress import ProgressCallback
    from medrepro.core import seed_everything
    from medrepro.sample import generate
    from medrepro.metrics import seg_scores
    from medrepro.dsb import data as D
    from medrepro.dsb.evaluate import predict_prob
    threads = torch.get_num_threads(); torch.set_num_threads(1)
    try:
        seed_everything(42)
        items = D.dsb_items(generate('dsb2018', tmp_path/'dsb', n=16, seed=0))
        split = {k: [items[i].id for i in v] for k, v in D.split_images(len(items), seed=42).items()}
        ds = D.load_crops([it for it in items if it.id not in set(split['test'])], 64, per_image=8, seed=42)
        dls = D.dsb_dataloaders(ds, split['train'], split['valid'], bs=8, seed=42, device='cpu')
        learn = T.train_model(dls, ModelConfig('resunet', dict(filters=[8, 16, 32, 64, 128])), 'bce', epochs=8, lr=1e-2,
                            out_dir=tmp_path/'run', one_cycle=True)
        test = [it for it in items if it.id in set(split['test'])]
        loaded = [D.load_item(it) for it in test]
        preds = [predict_prob(learn.model, img, 64, 'native') > 0.5 for img, _ in loaded]
        truths = [lab > 0 for _, lab in loaded]
    finally: torch.set_num_threads(threads)
    ours = seg_scores(preds, truths)['jaccard'].mean()
    all_fg = seg_scores([np.ones_like(t) for t in truths], truths)['jaccard'].mean()
    assert all_fg < 0.15 and ours > 0.6 and ours > 4 * all_fg, (ours, all_fg)
