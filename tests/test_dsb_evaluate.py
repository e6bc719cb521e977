"DSB evaluation: prediction at the network's and the original size, the report's per-image scores, scoring a set, the comparison table."
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from PIL import Image
from sklearn import metrics as skm
from medrepro.dsb import evaluate as E
from medrepro.dsb.data import dsb_items


class Bright(nn.Module):
    "A stand-in model: logit = 40 * (red - 0.5), i.e. foreground where the image is bright."
    def __init__(self):
        super().__init__(); self.w = nn.Parameter(torch.zeros(1))
    def forward(self, x): return 40 * (x[:, :1] - 0.5) + self.w


@pytest.mark.parametrize('mode', ['resize', 'native'])
def test_predict_prob_returns_original_size(mode):
    img = np.zeros((70, 90, 3), np.uint8); img[10:40, 20:60] = 255
    p = E.predict_prob(Bright(), img, 32, mode)
    assert p.shape == (70, 90) and p.dtype == np.float32
    assert ((p > 0.5) == (img[..., 0] > 0)).mean() > 0.97
    assert E.net_prob(Bright(), img, 32, 'resize').shape == (32, 32)
    with pytest.raises(ValueError, match='unknown mode'): E.predict_prob(Bright(), img, 32, 'tiles')


def test_paper_scores_equal_sklearn_with_its_zero_division():
    rng = np.random.default_rng(0)
    t, p = rng.random((16, 16)) > 0.7, rng.random((16, 16)) > 0.6
    r = E.paper_scores(p, t)
    for k, f in dict(accuracy=skm.accuracy_score, f1=skm.f1_score, jaccard=skm.jaccard_score,
                     recall=skm.recall_score, precision=skm.precision_score).items():
        assert r[k] == pytest.approx(f(t.ravel(), p.ravel())), k
    empty = np.zeros((16, 16), bool)
    r0 = E.paper_scores(empty, t)                                    # nothing predicted
    assert r0['precision'] == skm.precision_score(t.ravel(), empty.ravel(), zero_division=0) == 0
    assert E.paper_scores(empty, t, zero_division=1.0)['precision'] == 1.0
    both = E.paper_scores(empty, empty)                               # nothing to find, nothing found
    assert (both['f1'], both['jaccard'], both['recall'], both['precision'], both['accuracy']) == (0, 0, 0, 0, 1)


def test_paper_mask_is_bilinear_then_half():
    m = np.zeros((4, 4), bool); m[:, :2] = True
    assert E.paper_mask(m, 8)[:, :3].all() and not E.paper_mask(m, 8)[:, 5:].any()


def test_evaluate_items_on_a_processed_folder(tmp_path):
    (tmp_path/'images').mkdir(); (tmp_path/'masks').mkdir()
    for k in range(3):
        m = np.zeros((64, 80), np.uint8); m[8:20, 10 + 10 * k:22 + 10 * k] = 255; m[40:52, 40:56] = 255
        Image.fromarray(np.dstack([m] * 3)).save(tmp_path/'images'/f'im{k}.png')
        Image.fromarray(m).save(tmp_path/'masks'/f'im{k}.png')
    scores, rep, kept, px = E.evaluate_items(Bright(), dsb_items(tmp_path), dict(img_size=64, mode='native'), instances='cc', paper_size=32, n_pixels=100)
    assert list(scores['id']) == ['im0', 'im1', 'im2'] and set(kept) == {'im0', 'im1', 'im2'}
    for c in ('accuracy', 'f1', 'jaccard', 'recall', 'precision', 'instance_ap'):
        assert scores[c].tolist() == pytest.approx([1.0] * 3), c
    assert rep['Jaccard'].tolist() == pytest.approx([1.0] * 3) and list(rep['Image']) == ['im0', 'im1', 'im2']
    assert scores['n_nuclei'].tolist() == [2, 2, 2]
    assert len(px) == 300 and set(px['truth']) == {0, 1} and px.loc[px['truth'] == 1, 'prob'].min() > 0.5
    truth, pred = kept['im0'][3]                                          # the report's 32x32 truth and prediction
    assert truth.shape == pred.shape == (32, 32) and (truth == pred).all()


def test_comparison_columns_name_recipe_data_and_resolution():
    r = pd.DataFrame([dict(scoring='report: 256x256, undefined = 0', accuracy=.9, f1=.8, jaccard=.7, recall=.6, precision=.5, instance_ap=np.nan),
                      dict(scoring='ours: full size, undefined = 1', accuracy=.91, f1=.81, jaccard=.71, recall=.61, precision=.51, instance_ap=.3)])
    t = E.comparison({'report recipe, our data': r, 'our recipe, our data': None})
    assert list(t.columns) == ['report (its data, its recipe), 256x256', 'report recipe, our data, 256x256',
                               'report recipe, our data, full size', 'best known']
    assert t.loc['jaccard', 'report (its data, its recipe), 256x256'] == 0.71774
    assert t.loc['jaccard', 'report recipe, our data, full size'] == .71 and t.loc['instance mAP', 'best known'] == 0.6316
