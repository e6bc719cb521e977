"""ISIC's fit functions through the shared data-parallel switch (issue #12): two CPU processes over gloo, the same code as one.
Both models learn something (issue 24, 12), so that the per-image Jaccard and the BMA differ between the two ranks' halves of
the validation set: a score that equals the whole set's re-evaluation was gathered, not one rank's half."""
import numpy as np, pandas as pd, pytest, torch
from fastai.data.core import DataLoaders
from fastai.losses import CrossEntropyLossFlat
from torch.utils.data import TensorDataset
from medrepro.core import load_model
from medrepro.nets import MaskLoss, MaskScore
from medrepro.train import make_learner
from medrepro.isic2018.model import isic_unet
from medrepro.isic2018.train import fit_unet
from medrepro.isic2019.model import model_config
from medrepro.isic2019.train import array_dataloaders, train_classifier, accuracy_metric, bma_metric, DihedralNorm
from medrepro.data import ArraySet
from ranks import record_rank, run_two_ranks

N_SEG, N_CLS = 16, 18                     # training images; 5 and 7 validation images (one padded on two ranks)


def _seg_data():
    g = torch.Generator().manual_seed(0)
    xs = torch.rand(N_SEG + 5, 3, 16, 16, generator=g); ys = (xs.mean(1) < 0.5).long()   # lesion = dark pixels
    flip = torch.rand(2, 16, 16, generator=g) < 0.4
    ys[-2:] = torch.where(flip, 1 - ys[-2:], ys[-2:])                                     # the last two validation masks: 40 % wrong, hard
    return xs, ys


def _cls_data():
    rng = np.random.default_rng(0)
    yc = np.r_[np.arange(N_CLS) % 3, [0, 1, 2, 0, 1, 2, 1]]
    off = rng.integers(0, 50, len(yc))[:, None, None, None]                                        # each image's own exposure
    xc = (rng.integers(0, 160, (len(yc), 16, 16, 3)) + 40 * yc[:, None, None, None] + off).clip(0, 255).astype(np.uint8)   # class = brightness
    return xc, yc


def _halves(n):
    "The validation items each of two ranks sees (fastai's DistributedDL pads n to an even count with the first items)."
    idx = list(range(n)) + list(range(n))[: n % 2]
    return idx[: len(idx) // 2], idx[len(idx) // 2:]


def _validate(model, dsets, loss, metrics, tmp_path):
    one = make_learner(DataLoaders.from_dsets(*dsets, bs=2, device='cpu'), model, loss, metrics=metrics, out_dir=tmp_path/'eval', callbacks=False)
    with one.no_bar(), one.no_logging(): return one.validate()[1:]


@pytest.mark.slow
def test_two_gloo_processes_train_the_unet_and_a_classifier(tmp_path):
    xs, ys = _seg_data()
    seg_dls = DataLoaders.from_dsets(TensorDataset(xs[:N_SEG], ys[:N_SEG]), TensorDataset(xs[N_SEG:], ys[N_SEG:]), bs=2, device='cpu')
    xc, yc = _cls_data()
    split = np.array(['train'] * N_CLS + ['valid'] * 7)
    cls_dls = array_dataloaders(xc, yc, split, bs=4, augment=False, device='cpu')
    cfg = model_config('isic_resnet', 3, widths=[4, 8], mean=cls_dls.stats[0], std=cls_dls.stats[1])   # BatchNorm and dropout
    ranks = tmp_path/'ranks'; ranks.mkdir()

    def train():
        seg = fit_unet(seg_dls, isic_unet([4, 8]), 6, 3e-2, out_dir=tmp_path/'seg', folder=tmp_path/'models'/'unet', config=dict(arch='isic_unet', params=dict(widths=[4, 8])))
        cls = train_classifier(cls_dls, cfg, tmp_path/'cls', epochs=4, lr=1e-2)
        record_rank(ranks, dict(seg=seg, cls=cls))

    run_two_ranks(train, ranks, ['seg', 'cls'])                                             # same synced numbers, identical weights
    # segmentation: one history and the two checkpoints, from rank 0
    assert sorted(p.name for p in (tmp_path/'seg').iterdir()) == ['history.csv']
    assert sorted(p.name for p in (tmp_path/'models'/'unet').iterdir()) == ['best_jaccard', 'best_loss']
    hist = pd.read_csv(tmp_path/'seg'/'history.csv')
    assert len(hist) == 6 and hist.jaccard.max() > 0.3, hist                               # it learned: not all background
    model, _ = load_model(tmp_path/'models'/'unet'/'best_jaccard')
    seg_eval = lambda idx: _validate(model, (TensorDataset(xs[:2], ys[:2]), TensorDataset(xs[N_SEG:][idx], ys[N_SEG:][idx])),
                                     MaskLoss('dice_bce'), [MaskScore('mean_jaccard')], tmp_path)[0]
    whole = seg_eval(list(range(5)))
    assert whole == pytest.approx(hist.jaccard.max(), abs=1e-6)                            # the gathered per-image mean: the whole set's
    r0 = _halves(5)[0]                                                                      # rank 0 logs: without the gather it would log its half
    assert abs(seg_eval(r0) - whole) > 0.03, (r0, whole)
    # classifier: three checkpoints and one history from rank 0; accuracy and BMA (AccumMetrics) are the whole validation set's
    assert sorted(p.name for p in (tmp_path/'cls').iterdir()) == ['best_accuracy', 'best_bma', 'best_loss', 'history.csv']
    model, c = load_model(tmp_path/'cls'/'best_bma')
    va = cls_dls.valid.dataset.idx
    cls_eval = lambda idx: _validate(model, (cls_dls.train.dataset, ArraySet(xc, yc, va[idx], x_tfm=DihedralNorm(*cls_dls.stats))),
                                     CrossEntropyLossFlat(), [accuracy_metric(), bma_metric()], tmp_path)
    acc, bma = cls_eval(list(range(7)))
    assert bma == pytest.approx(c.meta['bma'], abs=1e-9) and bma > 0.4, bma               # learned: one class for all scores 1/3
    assert acc == pytest.approx(pd.read_csv(tmp_path/'cls'/'history.csv').accuracy[c.meta['epoch']], abs=1e-9)   # 7 images: k / 7, no padding
    r0 = _halves(7)[0]                                                                      # rank 0's 4 images: accuracy k/4, never k/7 but 0 or 1
    r0_acc, r0_bma = cls_eval(r0)
    assert abs(r0_bma - bma) > 0.03 or abs(r0_acc - acc) > 0.03, (r0, r0_acc, acc, r0_bma, bma)   # its own half scores otherwise
