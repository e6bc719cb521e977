"The DSB instance score (worked example), mask-to-instance splitting, prediction at original size, and scoring a model."
import numpy as np
import pytest
import torch
from torch import nn
from PIL import Image
from medrepro.dsb import evaluate as E
from medrepro.dsb.data import dsb_items


def test_instance_ap_worked_example():
    truth = np.zeros((40, 40), int); truth[5:15, 5:15] = 1; truth[25:35, 25:35] = 2
    pred = np.zeros((40, 40), int); pred[5:15, 7:17] = 1; pred[25:35, 2:12] = 2   # A shifted by 2 (IoU 80/120), B missed, C false
    iou = E.iou_matrix(truth, pred)
    assert iou.shape == (2, 2) and iou[0, 0] == pytest.approx(80 / 120) and iou[0, 1] == iou[1, 0] == iou[1, 1] == 0
    score, per = E.instance_ap(truth, pred)
    assert list(E.AP_THRESHOLDS) == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    assert per == pytest.approx([1 / 3] * 4 + [0] * 6)
    assert score == pytest.approx(4 / 30)


def test_instance_ap_edge_cases():
    lab = np.zeros((20, 20), int); lab[2:10, 2:10] = 7; lab[10:18, 10:18] = 3   # label values need not be 1..k
    assert E.instance_ap(lab, lab)[0] == 1.0
    assert E.instance_ap(lab, (lab > 0).astype(int) * 0)[0] == 0.0
    assert E.instance_ap(np.zeros((5, 5), int), np.zeros((5, 5), int))[0] == 1.0
    merged = (lab > 0).astype(int)                                        # both nuclei as one prediction: IoU 0.5 each, no hit
    assert E.instance_ap(lab, merged)[0] == 0.0
    exact_half = np.zeros((10, 10), int); exact_half[:, :5] = 1           # IoU exactly 0.5 is not a hit (> t)
    full = np.ones((10, 10), int)
    assert E.instance_ap(full, exact_half)[1][0] == 0.0
    with pytest.raises(ValueError, match='differ in size'): E.iou_matrix(lab, lab[:5])


def test_mask_instances_splits_touching_nuclei():
    yy, xx = np.mgrid[:40, :60]
    two = ((yy - 20) ** 2 + (xx - 20) ** 2 < 12 ** 2) | ((yy - 20) ** 2 + (xx - 41) ** 2 < 12 ** 2)
    assert E.mask_instances(two, 'cc').max() == 1
    ws = E.mask_instances(two, 'watershed')
    assert ws.max() == 2 and ((ws > 0) == two).all()
    noisy = two.copy(); noisy[0, 0] = True
    assert E.mask_instances(noisy, 'cc', min_size=8).max() == 1 and E.mask_instances(noisy, 'cc', min_size=0).max() == 2
    assert E.mask_instances(np.zeros((5, 5), bool)).max() == 0
    with pytest.raises(ValueError, match='unknown method'): E.mask_instances(two, 'magic')


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
    with pytest.raises(ValueError, match='unknown mode'): E.predict_prob(Bright(), img, 32, 'tiles')


def test_evaluate_items_on_a_processed_folder(tmp_path):
    (tmp_path/'images').mkdir(); (tmp_path/'masks').mkdir()
    for k in range(3):
        m = np.zeros((64, 80), np.uint8); m[8:20, 10 + 10 * k:22 + 10 * k] = 255; m[40:52, 40:56] = 255
        Image.fromarray(np.dstack([m] * 3)).save(tmp_path/'images'/f'im{k}.png')
        Image.fromarray(m).save(tmp_path/'masks'/f'im{k}.png')
    scores, kept = E.evaluate_items(Bright(), dsb_items(tmp_path), dict(img_size=64, mode='native'), instances='cc')
    assert list(scores['id']) == ['im0', 'im1', 'im2'] and set(kept) == {'im0', 'im1', 'im2'}
    for c in ('accuracy', 'f1', 'jaccard', 'recall', 'precision', 'instance_ap'):
        assert scores[c].tolist() == pytest.approx([1.0] * 3), c
    assert scores['n_nuclei'].tolist() == [2, 2, 2]
