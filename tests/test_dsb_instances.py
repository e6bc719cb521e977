"""DSB issue 26: contour targets and contour-split instances, the Otsu baseline, choosing post-processing on
cross-validation folds, and the report-recipe diagnosis helpers (one setting per variant, BatchNorm re-estimation)."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from PIL import Image
from medrepro.imaging import instance_ap, mask_instances
from medrepro.core import ModelConfig
from medrepro.nets import pixel_counts
from medrepro.dsb import data as D, evaluate as E, train as T
from medrepro.dsb.data import dsb_items
from medrepro.sample import generate


@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    return generate('dsb2018', tmp_path_factory.mktemp('dsb')/'dsb2018', n=4, seed=3)


class Bright(nn.Module):
    "A stand-in model: logit = 40 * (red - 0.5), i.e. foreground where the image is bright."
    def __init__(self):
        super().__init__(); self.w = nn.Parameter(torch.zeros(1))
    def forward(self, x): return 40 * (x[:, :1] - 0.5) + self.w


def _touching_discs(shape=(40, 60), centres=((20, 20), (20, 41)), r=12):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    lab = np.zeros(shape, np.int32)
    for k, (cy, cx) in enumerate(centres, 1): lab[((yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2) & (lab == 0)] = k
    return lab


def test_instance_targets_mark_the_seam_between_touching_nuclei():
    lab = np.zeros((7, 10), np.int32); lab[1:6, 1:5] = 1; lab[1:6, 5:9] = 2
    t = D.instance_targets(lab)
    assert t.dtype == np.uint8 and set(np.unique(t)) == {0, 1, 2}
    assert t[3].tolist() == [0, 2, 1, 1, 2, 2, 1, 1, 2, 0]                  # both sides of the seam are contour
    assert ((t > 0) == (lab > 0)).all()                                     # every nucleus pixel stays nucleus
    single = np.zeros((7, 10), np.int32); single[1:6, 1:9] = 1              # the same pixels as one nucleus: no seam
    assert D.instance_targets(single)[3].tolist() == [0, 2, 1, 1, 1, 1, 1, 1, 2, 0]


def test_load_crops_with_contours(sample):
    items = dsb_items(sample)[:3]
    plain = D.load_crops(items, 48, per_image=2, seed=0)
    cont = D.load_crops(items, 48, per_image=2, seed=0, contours=True)
    assert set(np.unique(plain.y)) <= {0, 1} and set(np.unique(cont.y)) == {0, 1, 2}
    assert ((cont.y > 0) == (plain.y > 0)).all()                            # the same crops, the same nuclei


def test_contour_instances_split_where_the_contour_says():
    lab = _touching_discs()
    fg = (lab > 0).astype(np.float32)
    assert E.contour_instances(fg, np.zeros_like(fg)).max() == 1            # no contour: one blob
    contour = (D.instance_targets(lab) == 2).astype(np.float32)
    inst = E.contour_instances(fg, contour)
    assert inst.max() == 2 and ((inst > 0) == (lab > 0)).all()
    assert instance_ap(lab, inst)[0] == 1.0                                 # the true nuclei back exactly
    lone = fg.copy(); lone[0:3, 55:58] = 1                                  # a 9-pixel part without a seed (all contour)
    c2 = contour.copy(); c2[0:3, 55:58] = 1
    assert E.contour_instances(lone, c2).max() == 3                         # kept as its own object
    assert E.contour_instances(lone, c2, min_size=10).max() == 2            # or dropped when smaller than min_size
    with pytest.raises(ValueError, match='contour channel'): E.instances_of(fg, None, 0.5, 'contour')


@pytest.mark.realdata
def test_contour_instances_recover_real_nuclei(shared_data):
    "On real masks, perfect nucleus and contour maps give back the annotated nuclei (touching ones included) far better than the distance watershed."
    items = dsb_items(shared_data/'dsb2018')[:12]
    ours, ws = [], []
    for it in items:
        _, lab = D.load_item(it)
        t = D.instance_targets(lab)
        ours.append(instance_ap(lab, E.contour_instances((t > 0).astype(np.float32), (t == 2).astype(np.float32)))[0])
        ws.append(instance_ap(lab, mask_instances(lab > 0))[0])
    assert np.mean(ours) > 0.9 and np.mean(ours) > np.mean(ws)


def test_otsu_mask_takes_the_smaller_side():
    g = np.full((20, 20, 3), 30, np.uint8); g[5:9, 5:9] = 220
    assert E.otsu_mask(g).sum() == 16 and E.otsu_mask(255 - g).sum() == 16
    assert not E.otsu_mask(np.zeros((4, 4, 3), np.uint8)).any()


def _folder(tmp_path, n=4):
    (tmp_path/'images').mkdir(); (tmp_path/'masks').mkdir()
    for k in range(n):
        m = np.zeros((64, 80), np.uint8); m[8:20, 10 + 10 * k:22 + 10 * k] = 255; m[40:52, 40:56] = 255
        Image.fromarray(np.dstack([m] * 3)).save(tmp_path/'images'/f'im{k}.png'); Image.fromarray(m).save(tmp_path/'masks'/f'im{k}.png')
    return dsb_items(tmp_path)


def test_cv_scores_choose_setting_and_table(tmp_path):
    items = _folder(tmp_path)
    cv = E.cv_scores(Bright(), items, dict(img_size=64, mode='native'), thresholds=(0.3, 0.5), instances=('watershed', 'cc'),
                     params=dict(watershed=(4, 8), cc=(0,)))
    assert len(cv) == 4 * (2 * 3 + 1) and {'brightness', 'saturation'} <= set(cv.columns)
    assert (cv['jaccard'] == 1.0).all() and (cv.loc[cv['method'] == 'otsu', 'instance_ap'] == 1.0).all()
    fake = pd.DataFrame(dict(method='model', threshold=[.4, .4, .5, .5], instances='cc', param=0, instance_ap=[.2, .4, .6, .5]))
    assert E.choose_setting(fake) == dict(threshold=.5, instances='cc', param=0, instance_ap=.55)
    cv.loc[(cv['id'] == 'im0') & (cv['method'] == 'model'), 'jaccard'] = 0.5  # fold 0 worse for the model
    t = E.cv_table(cv, {it.id: k % 2 for k, it in enumerate(items)}, dict(threshold=0.5, instances='cc', param=0))
    assert t.index.tolist() == ['fold 0', 'fold 1', 'mean', 'sd']
    assert t.loc['fold 0', 'model jaccard'] == 0.75 and t.loc['fold 1', 'model jaccard'] == 1.0
    assert t.loc['mean', 'model jaccard'] == pytest.approx(0.875) and t.loc['sd', 'model jaccard'] == pytest.approx(np.std([0.75, 1.0], ddof=1))
    assert t.loc['mean', 'otsu jaccard'] == 1.0


def test_evaluate_items_with_an_ensemble_and_contours(tmp_path):
    items = _folder(tmp_path, 2)

    class TwoChannel(nn.Module):
        def __init__(self): super().__init__(); self.w = nn.Parameter(torch.zeros(1))
        def forward(self, x): return torch.cat([40 * (x[:, :1] - 0.5), -10 + 0 * x[:, :1]], 1) + self.w   # no contour anywhere
    full, rep, kept, px = E.evaluate_items([TwoChannel(), TwoChannel()], items, dict(img_size=64, mode='native'), instances='contour', paper_size=32)
    assert full['jaccard'].tolist() == [1.0, 1.0] and full['instance_ap'].tolist() == [1.0, 1.0]
    assert kept['im0'][4].max() == 2                                          # the instances kept for the figures


def test_contour_loss_and_score():
    t = torch.zeros(2, 8, 8, dtype=torch.long); t[:, 2:6, 2:6] = 2; t[:, 3:5, 3:5] = 1
    good = torch.stack([(t > 0).float(), (t == 2).float()], 1) * 20 - 10
    assert float(T.ContourLoss()(good, t)) < 1e-3 < 10 < float(T.ContourLoss()(-good, t))
    wrong_contour = good * torch.tensor([1., -1.])[None, :, None, None]
    assert float(T.ContourLoss(contour_weight=0)(wrong_contour, t)) < 1e-3 < float(T.ContourLoss()(wrong_contour, t))
    assert pixel_counts(good[:, :1], t > 0)[0].tolist() == [16., 0., 0., 48.]


def test_two_channel_resunet_builds():
    m = ModelConfig('resunet', dict(filters=[4, 8, 16, 32, 64], n_out=2)).build()
    with torch.no_grad(): assert m.eval()(torch.zeros(1, 3, 48, 40)).shape == (1, 2, 48, 40)


def test_recipe_variants_change_one_report_setting_each():
    assert T.RECIPE_VARIANTS[0][1] == {}
    for name, change in T.RECIPE_VARIANTS[1:]:
        (k, v), = change.items()
        assert k in T.REPORT_RECIPE and T.REPORT_RECIPE[k] != v, name
    assert len({k for _, c in T.RECIPE_VARIANTS for k in c}) == len(T.RECIPE_VARIANTS) - 1   # every variant a different setting


def test_reestimate_bn_replaces_lagging_statistics_only():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, momentum=0.01))
    x = np.random.default_rng(0).integers(0, 256, (8, 10, 10, 3)).astype(np.uint8)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).float().div(255)
    r = T.reestimate_bn(m, x, bs=4)
    with torch.no_grad(): feats = m[0](xt)
    assert torch.allclose(r[1].running_mean, feats.mean((0, 2, 3)), atol=1e-5)     # equal batches: the exact mean
    assert torch.equal(m[1].running_mean, torch.zeros(4))                         # the original is untouched
    assert torch.equal(r[0].weight, m[0].weight) and r[1].momentum == 0.01 and not r.training
