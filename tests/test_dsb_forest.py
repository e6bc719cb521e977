"""DSB issue 26: the pixel forest (features, balanced pixel samples, fit), marker-controlled watershed, the stronger
classical baseline, and choosing each fold's post-processing on the other folds only."""
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from medrepro.imaging import instance_ap, mask_instances
from medrepro.dsb import data as D, evaluate as E, model as M, train as T
from medrepro.dsb.data import dsb_items, load_item
from medrepro.sample import generate

def _discs(shape=(48, 72), centres=((24, 22), (24, 45)), r=12):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    lab = np.zeros(shape, np.int32)
    for k, (cy, cx) in enumerate(centres, 1): lab[((yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2) & (lab == 0)] = k
    return lab


def _rgb(lab, fg=210, bg=25): return np.where(lab[..., None] > 0, fg, bg).astype(np.uint8).repeat(3, -1)


def test_nuclei_bright_makes_stained_images_look_like_fluorescence():
    lab = _discs()
    g1, m1 = M.nuclei_bright(_rgb(lab)); g2, m2 = M.nuclei_bright(_rgb(lab, fg=40, bg=230))
    assert (m1 == (lab > 0)).all() and (m2 == m1).all()
    assert g2[lab > 0].mean() > 0.9 > 0.1 > g2[lab == 0].mean()


def test_pixel_features_are_finite_and_fixed_in_number():
    f = M.pixel_features(_rgb(_discs()))
    assert f.shape == (48, 72, M.N_PIXEL_FEATURES) and np.isfinite(f).all()
    assert np.isfinite(M.pixel_features(np.zeros((16, 16, 3), np.uint8))).all()        # a blank image: no division by zero


def test_pixel_sample_balances_the_classes():
    t = D.instance_targets(_discs())
    s = T.pixel_sample(t, 90, seed=0)
    assert np.bincount(t.ravel()[s], minlength=3).tolist() == [30, 30, 30]
    assert not np.array_equal(s, T.pixel_sample(t, 90, seed=1))


def test_seeded_watershed_splits_touching_nuclei_that_connected_components_merge():
    lab = _discs(); m = lab > 0
    assert mask_instances(m, 'cc').max() == 1
    ws = E.seeded_watershed(m, ndi.distance_transform_edt(m), h=1)
    assert ws.max() == 2 and instance_ap(lab, ws)[0] == 1.0
    assert E.seeded_watershed(m, ndi.distance_transform_edt(m), h=50).max() == 1


def test_classical_instances_find_dark_and_bright_nuclei():
    lab = _discs()
    for img in (_rgb(lab), _rgb(lab, fg=40, bg=230)):
        assert instance_ap(lab, E.classical_instances(img))[0] == 1.0


def test_forest_learns_nuclei_on_sample_images_and_scores_a_held_out_one(tmp_path):
    folder = generate('dsb2018', tmp_path/'dsb2018', n=6, seed=5)
    pairs = [load_item(it) for it in dsb_items(folder)]
    rf = T.fit_forest([M.pixel_features(x) for x, _ in pairs[:5]], [D.instance_targets(y) for _, y in pairs[:5]], n=600, n_trees=10)
    img, lab = pairs[5]
    p = E.forest_prob(rf, M.pixel_features(img))
    assert p.shape == (*lab.shape, 3) and np.allclose(p.sum(-1), 1, atol=1e-5)
    fg = p[..., 1] + p[..., 2] > 0.5
    assert (fg & (lab > 0)).sum() / (fg | (lab > 0)).sum() > 0.5                          # it found the nuclei, not the background
    assert E.forest_instances(p).max() >= 1


def test_context_forest_learns_on_sample_images_and_its_first_stage_is_the_plain_forest(tmp_path):
    folder = generate('dsb2018', tmp_path/'dsb2018', n=7, seed=5)
    pairs = [load_item(it) for it in dsb_items(folder)]
    cf = T.fit_context_forest([x for x, _ in pairs[:6]], [y for _, y in pairs[:6]], n=600, n_trees=10)
    assert cf.second.n_features_in_ == M.N_PIXEL_FEATURES + M.N_CONTEXT_FEATURES
    plain = T.fit_forest([M.pixel_features(x) for x, _ in pairs[:6]], [D.instance_targets(y) for _, y in pairs[:6]], n=600, n_trees=10)
    img, lab = pairs[6]
    q, p = T.context_prob(cf, img, both=True)
    assert np.array_equal(q, E.forest_prob(plain, M.pixel_features(img)))               # the first stage: the same forest as fit_forest's
    fg = p[..., 1] + p[..., 2] > 0.5
    assert (fg & (lab > 0)).sum() / (fg | (lab > 0)).sum() > 0.5 and E.forest_instances(p).max() >= 1


def test_cross_choose_never_scores_a_fold_at_its_own_favourite():
    rows = pd.DataFrame(dict(method='m', fold=[0, 0, 1, 1, 2, 2], id=list('abcdef'), threshold=0.5, seeds='contour',
                             h=[.1, .3] * 3, jaccard=.7, instance_ap=[.9, .1, .2, .6, .3, .5]))
    c = E.cross_choose(rows).set_index('fold')
    assert c.loc[0, 'h'] == .3 and c.loc[0, 'instance_ap'] == .1                        # folds 1, 2 prefer 0.3
    assert c.loc[1, 'h'] == .1 and c.loc[1, 'instance_ap'] == .2                        # folds 0, 2: 0.1 (mean 0.6 vs 0.3)


def test_forest_cv_on_real_images_gives_every_method_a_row_per_image(shared_data):
    folder = shared_data/'dsb2018'/'stage1_train'
    if not folder.is_dir(): pytest.skip(f'no real DSB images at {folder}')
    items = dsb_items(folder)[:4]
    pairs = {it.id: load_item(it) for it in items}
    rows = E.forest_cv(pairs, {i: k % 2 for k, i in enumerate(pairs)}, settings=dict(threshold=(0.5,), contour=(0.3,), distance=(1.0,)),
                       classical_h=(1.0,), n=300, n_trees=5)
    assert rows.groupby('method')['id'].nunique().to_dict() == dict(classical=4, context=4, forest=4, objects=4, otsu=4)
    assert rows[['jaccard', 'instance_ap']].apply(lambda c: c.between(0, 1)).all().all()


def _candidates(lab, p=None, settings=((0.5, 0.1), (0.5, 5.0))):
    "Forest-like probabilities of a label image (interior 1, a faint contour where labels meet) and its candidates."
    from skimage.segmentation import find_boundaries
    if p is None:
        touch = find_boundaries(lab, mode='inner') & (ndi.grey_dilation(lab, 3) != ndi.grey_erosion(np.where(lab > 0, lab, 99), 3)) & (lab > 0)
        p = np.zeros((*lab.shape, 3), np.float32); p[..., 0] = lab == 0; p[..., 1] = (lab > 0) & ~touch; p[..., 2] = touch
    labs = E.candidate_labels(p, settings)
    return p, labs, E.candidate_features(_rgb(lab), p, labs, settings)


def test_candidates_of_touching_discs_split_or_merge_by_setting_and_their_iou_says_which_is_right():
    lab = _discs()
    p, labs, f = _candidates(lab)
    assert [l.max() for l in labs] == [2, 1]
    assert len(f) == 3 and f['setting'].tolist() == [0, 0, 1] and np.isfinite(f[E.CANDIDATE_FEATURES].to_numpy(float)).all()
    iou = E.candidate_iou(lab, labs)
    assert (iou[:2] > 0.9).all() and 0.3 < iou[2] < 0.6            # the halves are the nuclei; the merged pair is neither
    assert f.loc[2, 'rel_area'] > f.loc[0, 'rel_area']              # the merged pair is bigger than the image's typical nucleus


def test_select_candidates_keeps_the_best_predicted_without_overlap_and_nothing_below_tau():
    lab = _discs()
    _, labs, f = _candidates(lab)
    two = E.select_candidates(labs, f, [0.9, 0.8, 0.7])
    assert instance_ap(lab, two)[0] > 0.9
    one = E.select_candidates(labs, f, [0.6, 0.6, 0.9])
    assert one.max() == 1 and (one > 0).sum() == (labs[1] > 0).sum()
    assert E.select_candidates(labs, f, [0.49, 0.3, 0.2]).max() == 0
    assert E.select_candidates(labs, f, [0.49, 0.3, 0.2], tau=0.4).max() == 1      # tau is the line
    assert E.select_candidates(labs, f, [0.9, 0.8, 0.7], max_overlap=1.0, min_size=1).max() == 2   # the pair's free pixels: none left


def test_forest_cv_fits_each_folds_object_model_on_the_other_folds_only(monkeypatch):
    pairs = {f'im{k}': (_rgb(_discs(centres=((24, 22 + k), (24, 45 + k)))), _discs(centres=((24, 22 + k), (24, 45 + k)))) for k in range(6)}
    fold_of = {f'im{k}': k % 3 for k in range(6)}
    pairs['blank'] = (_rgb(np.zeros((48, 72), np.int32)), np.zeros((48, 72), np.int32)); fold_of['blank'] = 0   # no nucleus, maybe no candidate
    seen, fit = [], E.fit_object_model
    monkeypatch.setattr(E, 'fit_object_model', lambda table, seed=0: seen.append(sorted(set(table['id']))) or fit(table, seed))
    rows = E.forest_cv(pairs, fold_of, settings=dict(threshold=(0.5,), contour=(0.3,), distance=(1.0,)), classical_h=(1.0,), context=False, n=300, n_trees=5)
    obj = rows[rows['method'] == 'objects']
    assert sorted(obj['id']) == sorted(pairs) and (obj['instance_ap'] > 0.5).all()      # every image scored, the blank one too
    assert len(seen) == 3
    for k, ids in enumerate(seen): assert not set(ids) & {i for i, f in fold_of.items() if f == k}    # fold k never trains its own model
