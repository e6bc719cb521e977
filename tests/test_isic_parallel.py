"ISIC's fit functions through the shared data-parallel switch (issue #12): two CPU processes over gloo, the same code as one."
import numpy as np, pandas as pd, pytest, torch
from fastai.data.core import DataLoaders
from fastai.losses import CrossEntropyLossFlat
from torch.utils.data import TensorDataset
from medrepro.core import load_model
from medrepro.nets import MaskLoss, MaskScore
from medrepro.train import make_learner
from medrepro.isic2018.model import isic_unet
from medrepro.isic2018.train import seg_learner, fit_seg, export_checkpoints
from medrepro.isic2019.model import model_config
from medrepro.isic2019.train import array_dataloaders, train_run, accuracy_metric, bma_metric
from ranks import record_rank, run_two_ranks


@pytest.mark.slow
def test_two_gloo_processes_train_the_unet_and_a_classifier(tmp_path):
    g = torch.Generator().manual_seed(0)
    xs = torch.rand(13, 3, 16, 16, generator=g); ys = (xs.mean(1) < 0.5).long()          # lesion = dark pixels
    seg_dls = DataLoaders.from_dsets(TensorDataset(xs[:8], ys[:8]), TensorDataset(xs[8:], ys[8:]), bs=2, device='cpu')  # 5 valid: one padded
    rng = np.random.default_rng(0)
    xc = rng.integers(0, 255, (25, 16, 16, 3), dtype=np.uint8); yc = rng.integers(0, 3, 25)
    split = np.array(['train'] * 18 + ['valid'] * 7)                                       # 7 valid: one padded
    cls_dls = array_dataloaders(xc, yc, split, bs=4, augment=False, device='cpu')
    cfg = model_config('isic_resnet', 3, widths=[4, 8], mean=cls_dls.stats[0], std=cls_dls.stats[1])   # BatchNorm and dropout
    ranks = tmp_path/'ranks'; ranks.mkdir()

    def train():
        seg = fit_seg(seg_learner(seg_dls, isic_unet([4, 8]), lr=1e-2, out_dir=tmp_path/'seg'), 3, 1e-2)
        export_checkpoints(seg, tmp_path/'models'/'unet', dict(arch='isic_unet', params=dict(widths=[4, 8])))
        cls = train_run(cls_dls, cfg, tmp_path/'cls', epochs=3, lr=3e-3)
        record_rank(ranks, dict(seg=seg, cls=cls))

    run_two_ranks(train, ranks, ['seg', 'cls'])                                             # same synced numbers, identical weights
    # segmentation: one history, fastai's two checkpoint files exported by rank 0 and then deleted
    assert sorted(p.name for p in (tmp_path/'seg').iterdir()) == ['history.csv']
    assert sorted(p.name for p in (tmp_path/'models').iterdir()) == ['unet_jaccard', 'unet_loss']
    hist = pd.read_csv(tmp_path/'seg'/'history.csv')
    assert len(hist) == 3
    model, _ = load_model(tmp_path/'models'/'unet_jaccard')
    one = make_learner(seg_dls, model, MaskLoss('dice_bce'), metrics=[MaskScore('mean_jaccard')], out_dir=tmp_path/'eval', callbacks=False)
    with one.no_bar(), one.no_logging(): _, jac = one.validate()
    assert jac == pytest.approx(hist.jaccard.max(), abs=1e-9)                             # the gathered per-image mean: the whole set's
    # classifier: three checkpoints and one history from rank 0; accuracy and BMA (AccumMetrics) are the whole validation set's
    assert sorted(p.name for p in (tmp_path/'cls').iterdir()) == ['best_accuracy', 'best_bma', 'best_loss', 'history.csv']
    model, c = load_model(tmp_path/'cls'/'best_bma')
    one = make_learner(cls_dls, model, CrossEntropyLossFlat(), metrics=[accuracy_metric(), bma_metric()], out_dir=tmp_path/'eval', callbacks=False)
    with one.no_bar(), one.no_logging(): _, acc, bma = one.validate()
    assert bma == pytest.approx(c.meta['bma'], abs=1e-9)
    assert acc == pytest.approx(pd.read_csv(tmp_path/'cls'/'history.csv').accuracy[c.meta['epoch']], abs=1e-9)   # 7 images: k / 7, no padding
