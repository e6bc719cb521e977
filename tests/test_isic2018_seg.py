"ISIC 2018 segmentation: the U-Net, the fastai baseline, loss, metric, prediction, scoring and the Otsu baseline."
import ast, json
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
from medrepro.core import save_model, load_model, seed_everything
from medrepro.metrics import thresholded_jaccard
from medrepro.nets import MaskLoss, MaskScore, n_params
from medrepro.train import make_learner
from medrepro.isic2018.data import SegItem, seg_items, seg_split, load_seg_set, seg_dataloaders
from medrepro.isic2018.sample import make_isic2018
from medrepro.isic2018.model import UNet, isic_unet, fastai_unet
from medrepro.isic2018.train import fit_unet, SEG_CHECKPOINTS
from medrepro.isic2018.evaluate import predict_probs, otsu_lesion, upsample, score_masks, score_summary, central_component, keep_central, pooled_jaccard


def test_unet_shapes_and_params():
    m = UNet((4, 8, 16))
    assert tuple(m(torch.zeros(2, 3, 20, 30)).shape) == (2, 1, 20, 30)      # sizes that do not divide by 4 work too
    # by hand: enc 3->4, 4->8 (+bottom 8->16), up 16->8, 8->4, decoders 16->8, 8->4, head 4->1; BN = 4 per channel and conv
    dc = lambda a, b: 9 * a * b + 9 * b * b + 4 * b
    expect = dc(3, 4) + dc(4, 8) + dc(8, 16) + (4 * 16 * 8 + 8) + dc(16, 8) + (4 * 8 * 4 + 4) + dc(8, 4) + 4 + 1
    assert n_params(m) == expect
    assert 31_000_000 < n_params(UNet(bn=False)) < 31_100_000


def test_input_norm_is_per_image():
    m = UNet((4, 8), in_norm=True).eval()
    x = torch.rand(1, 3, 16, 16)
    assert torch.allclose(m(x), m(0.5 * x + 0.2), atol=1e-4)       # brightness and contrast of the photo do not matter
    assert len(m.state_dict()) == len(UNet((4, 8)).state_dict())   # no weights added


def test_post_processing():
    m = np.zeros((20, 30), bool); m[5:15, 10:20] = True; m[9:11, 14:16] = False; m[0:3, 0:3] = True
    c = central_component(m)
    assert c.sum() == 100 and not c[0, 0] and c[10, 15]
    assert not central_component(np.zeros((5, 5), bool)).any()
    p = np.where(m, 0.9, 0.1).astype(np.float32); p[10, 15] = 0.2
    k = keep_central(p)
    assert k[0, 0] == 0 and k[10, 15] == 1.0 and k[7, 12] == pytest.approx(0.9) and (k > 0.5).sum() == 100


def test_colour_augmentation(tmp_path):
    items = seg_items(make_isic2018(tmp_path/'d', n=4, seed=0))
    ds = load_seg_set(items, (32, 48))
    dls = seg_dataloaders(ds, seg_split(items, valid=0.25, test=0.0), bs=2, augment=True, colour=True, seed=0)
    names = [type(t).__name__ for t in dls.train.after_batch.fs]
    assert 'Saturation' in names and 'Hue' in names
    xb, yb = dls.one_batch()
    assert tuple(xb.shape) == (2, 3, 32, 48) and set(yb.unique().tolist()) <= {0, 1}


def test_save_load_roundtrip(tmp_path):
    for arch, params, m in [('isic_unet', dict(widths=[4, 8, 16], in_norm=True), isic_unet([4, 8, 16], in_norm=True)),
                            ('isic_fastai_unet', dict(backbone='resnet18', img_size=[32, 32]), fastai_unet('resnet18', (32, 32)))]:
        x = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3)).astype(np.uint8)
        before = predict_probs(m, x)
        save_model(tmp_path/arch, m, dict(arch=arch, params=params, meta=dict(img_size=[32, 32])))
        m2, cfg = load_model(tmp_path/arch)
        assert cfg.arch == arch and np.allclose(predict_probs(m2, x), before, atol=1e-6)


def _tiny_dls(n_train=6, n_valid=3, size=16, seed=0):
    "In-memory images whose dark pixels are the lesion."
    from fastai.data.core import DataLoaders
    from torch.utils.data import TensorDataset
    x = torch.rand(n_train + n_valid, 3, size, size, generator=torch.Generator().manual_seed(seed)); y = (x.mean(1) < 0.5).long()
    return DataLoaders.from_dsets(TensorDataset(x[:n_train], y[:n_train]), TensorDataset(x[n_train:], y[n_train:]), bs=2, device='cpu')


def test_loss_and_metric_are_the_shared_ones(tmp_path):
    learn = fit_unet(_tiny_dls(), isic_unet([4, 8]), 1, 1e-3, out_dir=tmp_path, quiet=True)
    assert isinstance(learn.loss_func, MaskLoss) and learn.loss_func.kind == 'dice_bce'
    assert fit_unet(_tiny_dls(), isic_unet([4, 8]), 1, 1e-3, loss='bce', out_dir=tmp_path, quiet=True).loss_func.kind == 'bce'
    with pytest.raises(ValueError, match='unknown loss'): fit_unet(_tiny_dls(), isic_unet([4, 8]), 1, 1e-3, loss='focal', out_dir=tmp_path)
    targ = torch.tensor([[[1, 1], [0, 0]]])
    perfect, wrong = torch.tensor([[[[20., 20.], [-20., -20.]]]]), torch.tensor([[[[-20., -20.], [20., 20.]]]])
    assert float(learn.loss_func(perfect, targ)) == pytest.approx(0, abs=1e-3)
    # BCE ~20 per pixel, soft Dice = (0 + 1) / (2 + 2 + 1)
    assert float(learn.loss_func(wrong, targ)) == pytest.approx(20 + (1 - 1 / 5), abs=1e-3)
    (mj,) = learn.metrics
    assert mj.name == 'jaccard'                              # the history column the notebooks read
    class L: pass
    l = L(); l.pred = torch.cat([perfect, wrong, -perfect.abs()]); l.y = torch.cat([targ, targ, torch.zeros_like(targ)]); l.to_detach = lambda t: t
    mj.reset(); mj.accumulate(l)
    assert mj.value == pytest.approx(2 / 3)                  # per image 1, 0 and 1 (both empty), then the mean


@pytest.mark.parametrize('model', ['isic_unet', 'isic_fastai_unet'])
def test_two_checkpoints_saved_and_best_jaccard_loaded(tmp_path, model):
    "Both networks (ours, and what fastai's unet_learner builds) train through fit_unet: two saved models, one history, best-Jaccard weights in the learner."
    net, params = (isic_unet([4, 8]), dict(widths=[4, 8])) if model == 'isic_unet' else (fastai_unet('resnet18', (16, 16)), dict(backbone='resnet18', img_size=[16, 16]))
    learn = fit_unet(_tiny_dls(), net, 3, 1e-2, out_dir=tmp_path/'train', folder=tmp_path/'models', config=dict(arch=model, params=params), quiet=True)
    assert sorted(p.name for p in (tmp_path/'train').iterdir()) == ['history.csv']
    assert sorted(p.name for p in (tmp_path/'models').iterdir()) == ['best_jaccard', 'best_loss']
    hist = pd.read_csv(tmp_path/'train'/'history.csv')
    assert list(hist.columns) == ['epoch', 'train_loss', 'valid_loss', 'jaccard', 'time']
    for k, (col, _) in SEG_CHECKPOINTS.items():
        m, cfg = load_model(tmp_path/'models'/f'best_{k}')
        best = hist[col].idxmin() if k == 'loss' else hist[col].idxmax()
        assert cfg.meta['checkpoint'] == k and cfg.meta['epoch'] == best and cfg.meta[col] == pytest.approx(hist[col][best], abs=1e-6)
    m, _ = load_model(tmp_path/'models'/'best_jaccard')
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), learn.model.state_dict().values()))


def test_predict_tta_flips():
    class Left(torch.nn.Module):        # lesion = left half: flips move it, so TTA averages 1/3 and 2/3 there
        def __init__(self): super().__init__(); self.p = torch.nn.Parameter(torch.zeros(1))
        def forward(self, x):
            out = torch.full(x[:, :1].shape, -50.); out[..., : x.shape[-1] // 2] = 50.; return out + 0 * self.p
    x = np.zeros((1, 4, 6, 3), np.uint8)
    assert np.allclose(predict_probs(Left(), x)[0, :, :3], 1) and np.allclose(predict_probs(Left(), x)[0, :, 3:], 0)
    p = predict_probs(Left(), x, tta=True)[0]
    assert np.allclose(p[:, :3], 2 / 3) and np.allclose(p[:, 3:], 1 / 3)


def test_otsu_baseline():
    img = np.full((60, 80, 3), 210, np.uint8)
    img[np.hypot(*np.mgrid[-30:30, -40:40]) > 38] = 15          # the dermatoscope's dark rim (centroid in the middle)
    lesion = np.hypot(*np.mgrid[-30:30, -40:40]) < 15
    img[lesion] = 60; img[np.hypot(*np.mgrid[-30:30, -40:40]) < 4] = 200     # light centre: a hole to fill
    m = otsu_lesion(img, sigma=0.5)
    assert m[30, 40] and not m[0, 0] and not m[30, 79]
    assert abs(int(m.sum()) - int(lesion.sum())) < 40
    assert not otsu_lesion(np.full((10, 10, 3), 100, np.uint8)).any()     # a flat image has no lesion


def test_full_resolution_scoring(tmp_path):
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path/'ISIC_0000001.jpg')
    mm = np.zeros((40, 60), np.uint8); mm[:20] = 255; Image.fromarray(mm).save(tmp_path/'ISIC_0000001_segmentation.png')
    it = SegItem('ISIC_0000001', tmp_path/'ISIC_0000001.jpg', tmp_path/'ISIC_0000001_segmentation.png')
    low = np.zeros((4, 6), np.float32); low[:2] = 1.0
    half = np.zeros((4, 6), np.float32); half[:1] = 1.0                      # a quarter of the image: J = 0.5
    s = score_masks([it, it, it], [low, half, np.zeros((4, 6), bool)])
    assert s.jaccard.round(3).tolist() == [1.0, 0.5, 0.0]
    summ = score_summary({'m': s}).iloc[0]
    assert summ.jaccard == pytest.approx(0.5) and summ.thresholded_jaccard == pytest.approx(1 / 3)
    assert summ.pooled_jaccard == pytest.approx((1200 + 600) / (1200 + 1200 + 1200))   # tp over the union of the three images, pooled
    assert pooled_jaccard(s.iloc[:0]) == 1.0                                         # nothing anywhere: both empty
    assert thresholded_jaccard([0.9, 0.64, 0.65]) == pytest.approx((0.9 + 0.65) / 3)
    assert upsample(np.eye(2, dtype=bool), (4, 4)).sum() == 8


@pytest.mark.slow
def test_smoke_training_beats_trivial_masks(tmp_path):
    torch.set_num_threads(1)
    path = make_isic2018(tmp_path/'data', n=16, seed=0)
    items = seg_items(path)
    split = seg_split(items, valid=0.25, test=0.0, seed=0)
    ds = load_seg_set(items, (48, 64))
    seed_everything(0)
    dls = seg_dataloaders(ds, split, bs=4, augment=True, seed=0)
    fit_unet(dls, isic_unet([8, 16, 32]), 25, 3e-3, out_dir=tmp_path/'run', folder=tmp_path/'models', config=dict(arch='isic_unet', params=dict(widths=[8, 16, 32])), quiet=True)
    model, cfg = load_model(tmp_path/'models'/'best_jaccard')
    va = split['valid']
    s = score_masks([items[i] for i in va], predict_probs(model, ds.x[va], tta=True))
    all_fg = score_masks([items[i] for i in va], [np.ones((48, 64), bool)] * len(va))
    assert s.jaccard.mean() > all_fg.jaccard.mean() + 0.15, (s.jaccard.mean(), all_fg.jaccard.mean())   # all-background: 0


@pytest.mark.realdata
def test_otsu_on_real_pairs(shared_data, tmp_path):
    root = shared_data/'isic2018'
    if not root.is_dir(): pytest.skip(f'{root} not present')
    items = seg_items(root)
    ds = load_seg_set(items, (192, 256), tmp_path/'cache')
    s = score_masks(items, [otsu_lesion(x) for x in ds.x])
    assert len(s) == 36 and 0.45 < s.jaccard.mean() < 0.8      # "about 0.6" on real dermoscopy


def test_headline_is_the_thesis_beside_ours(tmp_path):
    "The index's ISIC 2018 headline is notebook 42's table with the thesis's numbers, not a table of ours alone."
    from medrepro.report import study_headlines
    for f in ('42_seg_summary_test.csv', '42_seg_vs_thesis_test.csv'): (tmp_path/f).write_text('a\n1\n')
    assert [p.name for p in study_headlines('isic2018', tmp_path)] == ['42_seg_vs_thesis_test.csv']


# --- issue 26: classical cues, cross-validation, choices made out of fold ---------------------------------------------
from medrepro.data import kfold
from medrepro.isic2018.data import SegSet
from medrepro.isic2018.model import Cues, cue_unet, otsu_threshold, gaussian_blur
from medrepro.isic2018.train import train_cv
from medrepro.isic2018.evaluate import read_cv, fold_of, cv_predict, ensemble_probs, score_grid, best_setting, nested_choice, SETTING, CHECKPOINT_DIRS, WIDE_THRESHOLDS
from medrepro.report import profile_params


def _lesion_image(h=60, w=80):
    img = np.full((h, w, 3), 210, np.uint8)
    yy, xx = np.mgrid[:h, :w]
    img[np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) > 0.48 * w] = 15           # the dermatoscope's dark rim
    img[np.hypot(yy - h / 2, xx - w / 2) < h / 4] = 60                          # the lesion
    return img


def test_cues_match_the_otsu_baseline():
    img = _lesion_image()
    x = torch.tensor(img).permute(2, 0, 1)[None].float() / 255
    c = Cues(('central', 'otsu', 'radius'))(x)
    assert tuple(c.shape) == (1, 3, 60, 80)
    central = c[0, 0].numpy() > 0
    assert (central ^ otsu_lesion(img)).sum() < 0.01 * central.size
    assert c[0, 1, 0, 0] > 0 and not central[0, 0]                              # the rim is dark but not the lesion
    with pytest.raises(ValueError, match='unknown cue'): Cues(('rgb', 'lab'))


def test_torch_otsu_and_blur():
    from skimage.filters import threshold_otsu
    from scipy import ndimage
    v = np.r_[np.full(100, 0.2), np.full(300, 0.8)].astype(np.float32)
    assert 0.2 < float(otsu_threshold(torch.tensor(v)[None])[0]) <= 0.8 and abs(float(otsu_threshold(torch.tensor(v)[None])[0]) - threshold_otsu(v)) < 1 / 64 + 0.3
    g = torch.rand(1, 1, 20, 20)
    assert np.allclose(gaussian_blur(g, 1.5)[0, 0].numpy(), ndimage.gaussian_filter(g[0, 0].numpy(), 1.5, mode='nearest', truncate=3), atol=1e-5)


def test_residual_unet_starts_from_the_otsu_answer(tmp_path):
    net = cue_unet([4, 8], residual=True).eval()
    with torch.no_grad(): net.unet.head.weight.zero_(); net.unet.head.bias.zero_()
    img = _lesion_image()
    p = predict_probs(net, img[None], device='cpu')[0]
    assert ((p > 0.5) == otsu_lesion(img)).mean() > 0.99
    save_model(tmp_path/'m', net, dict(arch='isic_cue_unet', params=dict(widths=[4, 8], residual=True)))
    m2, _ = load_model(tmp_path/'m', 'cpu')
    assert np.allclose(predict_probs(m2, img[None], device='cpu'), p, atol=1e-5)
    with pytest.raises(ValueError, match="needs the 'central' cue"): cue_unet([4, 8], cues=('rgb',), residual=True)


def test_fit_unet_keep_last(tmp_path):
    learn = fit_unet(_tiny_dls(), isic_unet([4, 8]), 2, 1e-2, out_dir=tmp_path/'t', folder=tmp_path/'m', config=dict(arch='isic_unet', params=dict(widths=[4, 8])), quiet=True, keep='last')
    assert sorted(p.name for p in (tmp_path/'m').iterdir()) == ['best_jaccard', 'best_loss', 'last']
    m, cfg = load_model(tmp_path/'m'/'last')
    assert cfg.meta['checkpoint'] == 'last' and cfg.meta['epoch'] == 1
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), learn.model.state_dict().values()))
    with pytest.raises(ValueError, match='keep must be'): fit_unet(_tiny_dls(), isic_unet([4, 8]), 1, 1e-2, keep='first')


def test_cross_validation_predicts_each_image_out_of_fold(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(100, 255, (9, 16, 16, 3)).astype(np.uint8); y = np.zeros((9, 16, 16), np.uint8)
    x[:, 4:12, 4:12] //= 3; y[:, 4:12, 4:12] = 1
    ds = SegSet([SegItem(f'ISIC_{k:07d}', None, None) for k in range(9)], x, y)
    folds = kfold(9, k=3, seed=0, valid=1)
    cfg = dict(arch='isic_cue_unet', params=dict(widths=[4, 8], cues=['rgb', 'otsu']))
    table, learners = train_cv(ds, folds, lambda: cue_unet([4, 8], ('rgb', 'otsu')), cfg, 1, 1e-2, bs=2, folder=tmp_path/'cv', out_dir=tmp_path/'t', device='cpu')
    assert len(table) == 3 and (table.cpu_seconds > 0).all() and len(learners) == 3
    cv = read_cv(tmp_path/'cv')
    assert sorted(i for f in cv['folds'] for i in f['test']) == ds.ids
    assert all(not set(f['test']) & set(f['train'] + f['valid']) for f in cv['folds'])
    p = cv_predict(tmp_path/'cv', ds.ids, ds.x, 'last', tta=False, device='cpu')
    for k, f in enumerate(folds):
        assert np.allclose(p[f['test']], predict_probs(learners[k].model, ds.x[f['test']], device='cpu'), atol=1e-3)
    e = ensemble_probs(tmp_path/'cv', ds.x[:2], 'last', tta=False, device='cpu')
    assert np.allclose(e, np.mean([predict_probs(l.model, ds.x[:2], device='cpu') for l in learners], 0), atol=1e-3)
    with pytest.raises(ValueError, match='in no fold'): cv_predict(tmp_path/'cv', ['ISIC_9999999'], ds.x[:1])
    assert fold_of(cv, ['ISIC_9999999']).tolist() == [-1]
    with pytest.raises(ValueError, match='no validation images'): train_cv(ds, kfold(9, k=3, seed=0), lambda: cue_unet([4, 8]), cfg, 1, 1e-2, device='cpu')


def test_nested_choice_never_scores_on_what_it_chose_on(tmp_path):
    its = []
    for k in range(4):
        Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path/f'ISIC_000000{k}.jpg')
        mm = np.zeros((40, 60), np.uint8); mm[:20] = 255; Image.fromarray(mm).save(tmp_path/f'ISIC_000000{k}_segmentation.png')
        its.append(SegItem(f'ISIC_000000{k}', tmp_path/f'ISIC_000000{k}.jpg', tmp_path/f'ISIC_000000{k}_segmentation.png'))
    top = np.zeros((4, 6), np.float32); top[:2] = 1.0
    left = np.zeros((4, 6), np.float32); left[:, :3] = 1.0
    g = score_grid(its, {'a': np.stack([top, left, top, left]), 'b': np.stack([left, top, left, top])}, thresholds=(0.5,), posts=(False,))
    assert len(g) == 8 and best_setting(g) == ('a', False, 0.5)              # a tie: the first in sorted order
    nc = nested_choice(g, {f'ISIC_000000{k}': k % 2 for k in range(4)})
    assert sorted(nc.index) == [it.id for it in its]
    assert nc.jaccard.mean() == pytest.approx(1 / 3)                           # each fold gets the other fold's (wrong) choice
    assert g.groupby(SETTING).jaccard.mean().max() == pytest.approx(2 / 3)


def _load_calls(nb):
    "The source of every `load_seg_set(...)` call in notebook `nb`, up to its closing parenthesis."
    src = '\n'.join(''.join(c['source']) for c in json.loads((Path(__file__).parents[1]/'nbs'/nb).read_text())['cells']
                    if c['cell_type'] == 'code' and not ''.join(c['source']).lstrip().startswith('#| export'))
    tree = ast.parse('\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!'))))
    return [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, 'id', '') == 'load_seg_set']


@pytest.mark.parametrize('nb', ['41a_isic2018.train.ipynb', '42_isic2018.evaluate.ipynb'])
def test_training_and_scoring_pass_bad_items(nb):
    # as notebook 40: an unreadable pair stops a smoke run (the notebooks' default) and is skipped under the paper profile
    calls = _load_calls(nb)
    assert calls and all('bad=' in c for c in calls), [c for c in calls if 'bad=' not in c]
    assert profile_params('paper', nb)['bad_items'] == 'skip'
    assert 'bad_items' not in profile_params('smoke', nb)


def test_real_profile_candidates_are_saved_checkpoints():
    # the real profile narrows notebook 42's choice; what it keeps must be something notebook 41a saves and 42 scores
    p = profile_params('real', '42_isic2018.evaluate.ipynb')
    assert p['checkpoint'] == 'cv' and set(p['checkpoints']) <= set(CHECKPOINT_DIRS) and p['checkpoints']
    assert all(0 < t < 1 for t in p['thresholds']) and set(p['thresholds']) <= set(WIDE_THRESHOLDS)
