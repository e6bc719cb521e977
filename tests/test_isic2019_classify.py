"ISIC 2019 classifiers: the five architectures, pretrained weights only from the cache, checkpoints, class weights, a smoke run."
import json
from pathlib import Path
import numpy as np, pytest, torch
from sklearn.metrics import balanced_accuracy_score
from medrepro.core import load_model, seed_everything
from medrepro.isic2019.model import TV_ARCHS, torchvision_classifier, imagenet_weights, isic_resnet, model_config, build
from medrepro.isic2019.train import array_dataloaders, channel_stats, class_weights, accuracy_metric, bma_metric, train_classifier, CHECKPOINTS
from medrepro.isic2019.evaluate import predict_probs
from medrepro.isic2019.data import isic2019_table, load_images, split_70_10_20
from medrepro.isic2019.sample import write_isic2019
from medrepro.data import split_labels


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1); yield; torch.set_num_threads(n)


@pytest.mark.parametrize('arch', ['alexnet', 'vgg16', 'resnet101', 'wrn50_2'])
def test_torchvision_heads(arch):
    m = torchvision_classifier(arch, 8)
    with torch.no_grad(): out = m.eval()(torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, 8)


def test_pretrained_needs_local_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match='local torch cache'): torchvision_classifier('resnet101', 8, pretrained=True)
    with pytest.raises(FileNotFoundError, match='pretrained=False'): build(model_config('wrn50_2', 8, pretrained=True))
    with pytest.raises(ValueError, match='unknown arch'): torchvision_classifier('resnet18')


def test_own_resnet_shapes_and_size():
    m = isic_resnet(5, widths=(8, 16, 32))
    assert m(torch.zeros(2, 3, 48, 48)).shape == (2, 5)
    assert sum(p.numel() for p in isic_resnet(8, widths=(8,)).parameters()) == (3*8*9 + 8 + 8 + 8*8*9 + 8 + 8 + 3*8 + 8*256 + 256 + 256*8 + 8)


def test_class_weights_and_stats():
    np.testing.assert_allclose(class_weights([0, 0, 0, 1], 3).numpy(), [4 / 9, 4 / 3, 1.0], rtol=1e-6)
    x = np.zeros((2, 4, 4, 3), np.uint8); x[1] = 10
    mean, std = channel_stats(x)
    np.testing.assert_allclose(mean, [5, 5, 5]); np.testing.assert_allclose(std, [5.001] * 3, rtol=1e-4)


def test_bma_metric_matches_sklearn():
    met = bma_metric(); met.reset()
    yt, yp = torch.tensor([0, 0, 1, 1, 1, 2]), torch.tensor([0, 1, 1, 1, 0, 0])
    met.accum_values(yp, yt)
    assert met.name == 'bma' and met.value == pytest.approx(balanced_accuracy_score(yt, yp)) == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    acc = accuracy_metric(); acc.reset(); acc.accum_values(yp, yt)
    assert acc.name == 'accuracy' and acc.value == pytest.approx(3 / 6)


@pytest.fixture(scope='module')
def sample_set(tmp_path_factory):
    d = write_isic2019(tmp_path_factory.mktemp('s')/'isic2019', 400, seed=0)
    t = isic2019_table(d)
    return t, load_images(t.path, size=32, decode_size=64)


def test_three_checkpoints_and_reload(sample_set, tmp_path):
    t, x = sample_set
    s = split_70_10_20(t, seed=0)
    dls = array_dataloaders(x, t.y.to_numpy(), s, bs=64)
    cfg = model_config('isic_resnet', 8, widths=[8, 16], mean=dls.stats[0], std=dls.stats[1])
    train_classifier(dls, cfg, tmp_path, epochs=2, lr=3e-3, quiet=True)
    for ck, (monitor, _) in CHECKPOINTS.items():
        meta = json.loads((tmp_path/f'best_{ck}'/'config.json').read_text())['meta']
        assert meta['checkpoint'] == ck and meta['epoch'] in (0, 1) and monitor in meta
        m, c = load_model(tmp_path/f'best_{ck}')
        p = predict_probs(m, x[:5], c.meta['mean'], c.meta['std'])
        assert p.shape == (5, 8) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert (tmp_path/'history.csv').read_text().count('\n') == 3


@pytest.mark.slow
def test_smoke_model_beats_chance(sample_set, tmp_path):
    t, x = sample_set
    split = split_70_10_20(t, seed=0); y = t.y.to_numpy(); s = split_labels(split, len(t))
    seed_everything(0)                          # python's random too: fastai's DataLoader shuffles with it
    dls = array_dataloaders(x, y, split, bs=64)
    cfg = model_config('isic_resnet', 8, widths=[16, 32, 64], mean=dls.stats[0], std=dls.stats[1])
    train_classifier(dls, cfg, tmp_path, epochs=8, lr=3e-3, weights=class_weights(y[s == 'train'], 8), quiet=True)
    m, c = load_model(tmp_path/'best_bma')
    te = s == 'test'
    bma = balanced_accuracy_score(y[te], predict_probs(m, x[te], c.meta['mean'], c.meta['std']).argmax(1))
    assert bma > 0.3, bma                       # chance (and the majority-class baseline) is 1/8
