"medrepro.nets: the U-Net level block shared by the EchoNet and ISIC networks."
import torch
from medrepro.nets import conv_block


def n_params(m): return sum(p.numel() for p in m.parameters())


def test_conv_block_count_by_hand():
    assert n_params(conv_block(1, 4, bn=False)) == (9 + 1) * 4 + (36 + 1) * 4
    assert n_params(conv_block(1, 4, bn=True)) == 9 * 4 + 36 * 4 + 4 * 4   # no conv bias; BN weight + bias twice


def test_conv_block_keeps_size():
    assert conv_block(3, 8)(torch.zeros(1, 3, 17, 23)).shape == (1, 8, 17, 23)


# --- the one-channel loss and metrics (DSB, EchoNet, ISIC) ------------------------------------------------------
import pytest
import torch.nn.functional as F
from medrepro.nets import MaskLoss, MaskScore, pixel_counts, score_counts, soft_dice


def _top_half():
    targ = torch.zeros(1, 20, 20, dtype=torch.long); targ[:, :10] = 1
    return targ, torch.where(targ.bool(), 9., -9.)[:, None]


def test_mask_losses_on_hand_made_masks():
    targ, good = _top_half(); bad = -good
    bce = MaskLoss('bce')
    assert float(bce(good, targ)) == pytest.approx(float(F.binary_cross_entropy_with_logits(good[:, 0], targ.float())))
    dice = MaskLoss('dice')
    assert float(dice(good, targ)) < 0.01 and float(dice(bad, targ)) > 0.99
    half = torch.full((1, 1, 20, 20), -9.); half[..., :10] = 9.                 # left half against the top half: Dice 0.5
    assert float(dice(half, targ)) == pytest.approx(0.5, abs=0.01)
    both = MaskLoss('dice_bce', dice_weight=0.5)
    assert float(both(half, targ)) == pytest.approx(float(bce(half, targ)) + 0.5 * float(dice(half, targ)), rel=1e-6)
    w = MaskLoss('wbce', pos_weight=4.)(bad, targ)                           # missed foreground costs 4x
    assert float(w) == pytest.approx(float(F.binary_cross_entropy_with_logits(bad[:, 0], targ.float(), pos_weight=torch.tensor(4.))))
    assert float(w) > float(bce(bad, targ))
    for bad_kind in ('focal', 'BCE'):
        with pytest.raises(ValueError, match='unknown loss'): MaskLoss(bad_kind)
    with pytest.raises(ValueError, match='pos_weight'): MaskLoss('wbce')


def test_mask_loss_shapes_and_soft_targets():
    "A (n, 1, H, W) logit map against (n, H, W) or (n, 1, H, W) targets; soft targets are used as they are."
    logits = torch.randn(3, 1, 8, 8); t = (torch.rand(3, 8, 8) > 0.5).long()
    for k in ('bce', 'dice', 'dice_bce'):
        assert float(MaskLoss(k)(logits, t)) == pytest.approx(float(MaskLoss(k)(logits, t[:, None])))
    soft = torch.full((1, 4, 4), 0.5)
    assert float(MaskLoss('bce')(torch.zeros(1, 1, 4, 4), soft)) == pytest.approx(float(torch.log(torch.tensor(2.))))
    assert soft_dice(torch.full((2, 1, 4, 4), 20.), torch.ones(2, 4, 4)).tolist() == pytest.approx([1., 1.])


def test_mask_scores_against_sklearn():
    from sklearn.metrics import f1_score, jaccard_score, accuracy_score
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 1, 12, 9, generator=g); targ = (torch.rand(5, 12, 9, generator=g) > 0.6).float()
    p, t = (logits[:, 0] > 0).flatten().numpy(), (targ > 0.5).flatten().numpy()
    c = pixel_counts(logits, targ)
    assert c.shape == (5, 4) and int(c.sum()) == 5 * 12 * 9
    assert score_counts(c, 'dice') == pytest.approx(f1_score(t, p))
    assert score_counts(c, 'jaccard') == pytest.approx(jaccard_score(t, p))
    assert score_counts(c, 'accuracy') == pytest.approx(accuracy_score(t, p))
    per_image = [jaccard_score((targ[i] > 0.5).flatten().numpy(), (logits[i, 0] > 0).flatten().numpy()) for i in range(5)]
    assert score_counts(c, 'mean_jaccard') == pytest.approx(sum(per_image) / 5)


def test_mask_score_empty_cases_and_names():
    empty = torch.full((2, 1, 4, 4), -5.); none = torch.zeros(2, 4, 4)
    c = pixel_counts(empty, none)
    assert [score_counts(c, s) for s in ('dice', 'jaccard', 'mean_jaccard', 'accuracy')] == [1., 1., 1., 1.]
    one = torch.zeros(2, 4, 4); one[0, 0, 0] = 1                                 # image 0 has one missed pixel, image 1 is empty/empty
    assert score_counts(pixel_counts(empty, one), 'mean_jaccard') == pytest.approx(0.5)
    assert score_counts(pixel_counts(empty, one), 'dice') == 0.0
    m = MaskScore('dice'); m.reset(); assert m.value is None                      # no batch seen yet
    assert MaskScore('mean_jaccard', name='jaccard').name == 'jaccard'
    with pytest.raises(ValueError, match='unknown score'): MaskScore('f1')


def test_mask_score_accumulates_through_a_learner():
    "In a fastai Learner the metric equals the score of all validation predictions at once."
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from torch.utils.data import TensorDataset
    g = torch.Generator().manual_seed(1)
    x = torch.randn(13, 1, 6, 6, generator=g); y = (torch.rand(13, 6, 6, generator=g) > 0.5).float()
    dls = DataLoaders.from_dsets(TensorDataset(x, y), TensorDataset(x, y), bs=4, device='cpu')
    model = torch.nn.Conv2d(1, 1, 3, padding=1)
    learn = Learner(dls, model, loss_func=MaskLoss('bce'), metrics=[MaskScore('dice'), MaskScore('mean_jaccard')])
    with learn.no_bar(), learn.no_logging(): _, dice, mj = learn.validate()
    with torch.no_grad(): c = pixel_counts(model(x), y)
    assert dice == pytest.approx(score_counts(c, 'dice')) and mj == pytest.approx(score_counts(c, 'mean_jaccard'))
