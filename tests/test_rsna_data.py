"RSNA data layer: sample generator (format, determinism), labels/boxes loaders, NIfTI->DICOM mapping, presence, crops."
import hashlib, shutil, warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.uid import CTImageStorage

from medrepro.core import DataError
from medrepro.rsna.dicom import read_series
from medrepro.imaging import window
from medrepro.rsna.data import (BOX_COLS, LABELS, TRAIN_COLS, VERTEBRAE, box_slices, estimate_presence, read_boxes,
                                read_labels, seg_file, seg_to_series, study_dirs, study_presence,
                                vertebra_crops, vertebra_presence, vertebra_slices)
from medrepro.rsna.sample import NeckPhantom, write_study, phantom_nifti, study_phantom, write_sample

SIZE, NS = 48, 32


@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    "A small sample (6 studies, 48x48, 32 slices)."
    return write_sample(tmp_path_factory.mktemp('rsna')/'rsna', n=6, seed=0, size=SIZE, n_slices=NS)


def _hashes(root):
    return {str(f.relative_to(root)): hashlib.sha1(f.read_bytes()).hexdigest() for f in sorted(Path(root).rglob('*')) if f.is_file()}


# ---------------------------------------------------------------- generator

def test_registered_generator_is_deterministic(tmp_path):
    from medrepro.sample import generate, generators
    assert 'rsna' in generators() and generators()['rsna'].n >= 10
    a = generate('rsna', tmp_path/'a', n=2, seed=3)
    b = generate('rsna', tmp_path/'b', n=2, seed=3)
    c = generate('rsna', tmp_path/'c', n=2, seed=4)
    ha, hb = _hashes(a), _hashes(b)
    assert ha == hb and len(ha) > 2*60
    assert ha != _hashes(c)
    s = read_series(study_dirs(a)[0])
    assert s.hu.shape == (64, 128, 128)           # the default sample geometry


def test_sample_layout_and_consistency(sample):
    lab = read_labels(sample)
    assert list(lab.columns) == TRAIN_COLS and len(lab) == 6
    assert (lab.patient_overall == lab[VERTEBRAE].max(axis=1)).all()
    assert 0 < lab.patient_overall.sum() < 6
    dirs = study_dirs(sample)
    assert [d.name for d in dirs] == sorted(lab.StudyInstanceUID)
    segs = [d.name for d in dirs if seg_file(sample, d.name)]
    assert 0 < len(segs) < len(dirs)
    tss, firsts = set(), []
    for d in dirs:
        files = list(d.glob('*.dcm'))
        assert sorted(int(f.stem) for f in files) == list(range(1, NS + 1))
        ds = pydicom.dcmread(d/'1.dcm')
        assert ds.SOPClassUID == CTImageStorage and ds.file_meta.MediaStorageSOPClassUID == CTImageStorage
        assert ds.StudyInstanceUID == d.name and ds.Modality == 'CT' and ds.InstanceNumber == 1
        for tag in ('SeriesInstanceUID', 'SOPInstanceUID', 'ImagePositionPatient', 'ImageOrientationPatient', 'PixelSpacing',
                    'SliceThickness', 'RescaleSlope', 'RescaleIntercept', 'BitsStored', 'PixelRepresentation'):
            assert tag in ds, tag
        tss.add(ds.file_meta.TransferSyntaxUID.name)
        firsts.append(float(ds.ImagePositionPatient[2]) > float(pydicom.dcmread(d/f'{NS}.dcm').ImagePositionPatient[2]))
    assert any('JPEG 2000' in t for t in tss) and any('RLE' in t for t in tss) and any('Explicit' in t for t in tss)
    assert any(firsts) and not all(firsts)          # some studies are numbered bottom-up


def test_boxes_point_at_cracks_of_fractured_vertebrae(sample):
    lab, bx = read_labels(sample).set_index('StudyInstanceUID'), read_boxes(sample)
    assert list(bx.columns) == BOX_COLS and len(bx) > 0
    assert set(bx.StudyInstanceUID) <= set(lab.index[lab.patient_overall == 1])
    for uid, g in bx.groupby('StudyInstanceUID'):
        s = read_series(Path(sample)/'train_images'/uid)
        i = list(lab.index).index(uid)
        truth = study_phantom(0, i, SIZE, NS).labels()
        fractured = {VERTEBRAE.index(v) + 1 for v in VERTEBRAE if lab.loc[uid, v]}
        for _, b in g.iterrows():
            k = int(np.nonzero(s.slice_numbers == b.slice_number)[0][0])
            win = np.s_[int(b.y):int(b.y + b.height), int(b.x):int(b.x + b.width)]
            patch, hu = truth[k][win], s.hu[k][win]
            assert set(np.unique(patch)) & fractured, f'box on {b.slice_number}.dcm misses the fractured vertebra'
            # inside the box the vertebra has bone (> 500 HU) AND the crack (soft-tissue HU): the fracture is visible
            bone = np.isin(patch, list(fractured))
            assert hu[bone].max() > 500 and hu[bone].min() < 200


# ---------------------------------------------------------------- loaders

def _write(tmp_path, text, name='train.csv'):
    (tmp_path/name).write_text(text); return tmp_path


HDR = 'StudyInstanceUID,patient_overall,C1,C2,C3,C4,C5,C6,C7\n'


def test_read_labels_ok(tmp_path):
    df = read_labels(_write(tmp_path, HDR + '1.2,1,0,1,0,0,0,0,0\n1.3,0,0,0,0,0,0,0,0\n'))
    assert df.C2.tolist() == [1, 0] and df.dtypes['C2'].kind == 'i'


@pytest.mark.parametrize('text,match', [
    ('StudyInstanceUID,patient_overall,C1,C2\n1.2,1,0,1\n', 'lacks column.*C3'),
    (HDR + '1.2,1,0,2,0,0,0,0,0\n', 'C2 must be 0 or 1; row 2'),
    (HDR + '1.2,1,0,x,0,0,0,0,0\n', 'C2 must be 0 or 1'),
    (HDR + '1.2,1,0,1,0,0,0,0,0\n1.2,1,0,1,0,0,0,0,0\n', 'more than once'),
    ('', 'not a readable'),
])
def test_read_labels_bad(tmp_path, text, match):
    with pytest.raises(DataError, match=match) as e: read_labels(_write(tmp_path, text))
    assert 'train.csv' in str(e.value)


def test_read_labels_missing_file(tmp_path):
    with pytest.raises(DataError, match='train.csv: labels file train.csv not found'): read_labels(tmp_path)


def test_read_boxes(tmp_path):
    assert list(read_boxes(tmp_path).columns) == BOX_COLS and len(read_boxes(tmp_path)) == 0
    _write(tmp_path, ','.join(BOX_COLS) + '\n1.2,10.5,20,5,6,33\n', 'train_bounding_boxes.csv')
    b = read_boxes(tmp_path)
    assert b.slice_number.tolist() == [33] and b.x.tolist() == [10.5]
    _write(tmp_path, 'StudyInstanceUID,x,y\n1.2,1,2\n', 'train_bounding_boxes.csv')
    with pytest.raises(DataError, match='lacks column'): read_boxes(tmp_path)


def test_study_dirs_missing(tmp_path):
    with pytest.raises(DataError, match='no train_images folder'): study_dirs(tmp_path)


# ---------------------------------------------------------------- NIfTI -> DICOM mapping

def _seg_studies(sample):
    for i, d in enumerate(study_dirs(sample)):
        if seg_file(sample, d.name): yield i, d


def test_seg_to_series_recovers_the_generator_geometry(sample):
    n = 0
    for i, d in _seg_studies(sample):
        s = read_series(d)
        truth = study_phantom(0, i, SIZE, NS).labels()          # known labels, (k, i, j) head first
        raw = np.asanyarray(nib.load(seg_file(sample, d.name)).dataobj)
        assert raw.shape == (SIZE, SIZE, NS)                    # stored in another orientation
        assert np.array_equal(seg_to_series(seg_file(sample, d.name), s), truth)
        n += 1
    assert n >= 2


def test_mapping_depends_on_the_affine_not_on_the_layout(sample, tmp_path):
    i, d = next(_seg_studies(sample))
    s, ph = read_series(d), study_phantom(0, i, SIZE, NS)
    truth = ph.labels()
    # the same labels stored in DICOM order with an LPS->RAS affine built from the series: same result
    A = np.diag([-1.0, -1.0, 1.0, 1.0]) @ s.affine
    nib.save(nib.Nifti1Image(truth.astype(np.uint8), A), tmp_path/'dicom_order.nii.gz')
    assert np.array_equal(seg_to_series(tmp_path/'dicom_order.nii.gz', s), truth)
    # forgetting the LPS/RAS sign flip misplaces the labels: the test can fail
    bad = nib.Nifti1Image(truth.astype(np.uint8), s.affine)
    assert not np.array_equal(seg_to_series(bad, s), truth)


def test_vertebra_presence_and_slices(sample):
    i, d = next(_seg_studies(sample))
    s, truth = read_series(d), study_phantom(0, i, SIZE, NS).labels()
    p = vertebra_presence(seg_file(sample, d.name), s)
    assert list(p.columns) == VERTEBRAE + ['slice_number', 'z'] and len(p) == len(s)
    assert np.array_equal(p.slice_number.values, s.slice_numbers) and np.array_equal(p.z.values, s.z)
    for j, v in enumerate(VERTEBRAE):
        assert np.array_equal(p[v].values, (truth == j + 1).any(axis=(1, 2)).astype(int))
    sl = vertebra_slices(p)
    assert set(sl) == set(VERTEBRAE) and all(sl[v] for v in VERTEBRAE)
    assert np.mean(sl['C1']) < np.mean(sl['C4']) < np.mean(sl['C7'])         # head first
    y0, x0, y1, x1 = p.attrs['boxes']['C5']
    ys, xs = np.nonzero((truth == 5).any(0))
    assert (y0, x0, y1, x1) == (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)


def test_bad_segmentation(sample, tmp_path):
    s = read_series(study_dirs(sample)[0])
    (tmp_path/'x.nii').write_bytes(b'garbage')
    with pytest.raises(DataError, match=r'x\.nii: cannot read NIfTI'): seg_to_series(tmp_path/'x.nii', s)
    nib.save(nib.Nifti1Image(np.zeros((4, 4), np.uint8), np.eye(4)), tmp_path/'flat.nii')
    with pytest.raises(DataError, match='3D label volume'): seg_to_series(tmp_path/'flat.nii', s)


def test_estimate_presence_baseline(sample):
    accs = []
    for i, d in _seg_studies(sample):
        s = read_series(d)
        e, t = estimate_presence(s), vertebra_presence(seg_file(sample, d.name), s)
        assert e.attrs['source'] == 'estimate' and t.attrs['source'] == 'nifti'
        sl = vertebra_slices(e)
        assert all(sl[v] == list(range(sl[v][0], sl[v][-1] + 1)) for v in VERTEBRAE)     # contiguous blocks
        assert [sl[v][0] for v in VERTEBRAE] == sorted(sl[v][0] for v in VERTEBRAE)       # C1 first
        accs.append((e[VERTEBRAE].values == t[VERTEBRAE].values).mean())
    assert np.mean(accs) > 0.8                         # the documented crude baseline (~0.9 per slice and vertebra)
    assert study_presence(sample, s).attrs['source'] == 'nifti'


def test_study_presence_without_segmentation(sample):
    d = next(d for d in study_dirs(sample) if seg_file(sample, d.name) is None)
    assert study_presence(sample, read_series(d)).attrs['source'] == 'estimate'


# ---------------------------------------------------------------- crops

def test_vertebra_crops_contract(sample):
    i, d = next(_seg_studies(sample))
    s = read_series(d)
    p = vertebra_presence(seg_file(sample, d.name), s)
    x = vertebra_crops(s, p, 'C3', size=24, windows=('bone',), context=1)
    assert x.shape == (len(vertebra_slices(p)['C3']), 3, 24, 24) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1 and x.max() > 0.5          # bone in the crop
    y = vertebra_crops(s, p, 'C3', n_slices=5, size=16, windows=('bone', 'soft'), context=2)
    assert y.shape == (5, 10, 16, 16)
    # window-major channels: channel `context` = bone window of the slice itself, `5 + context` = soft window of it
    one = vertebra_crops(s, p, 'C3', n_slices=1, size=16, windows=('bone', 'soft'), context=0)
    assert np.allclose(one[0, 0], vertebra_crops(s, p, 'C3', n_slices=1, size=16, windows=('bone',), context=2)[0, 2])
    k = vertebra_slices(p)['C3'][0]
    box = (0, 0, SIZE, SIZE)
    full = vertebra_crops(s, p, 'C3', n_slices=1, size=SIZE, windows=('soft',), context=0, margin=0, box=box)
    assert np.allclose(full[0, 0], window(s.hu[k], 'soft'), atol=1e-5)
    with pytest.raises(KeyError): vertebra_crops(s, p, 'T1')
    empty = p.copy(); empty['C7'] = 0
    with pytest.raises(DataError, match='C7 is on no slice'): vertebra_crops(s, empty, 'C7')


def test_vertebra_crops_from_estimate(sample):
    d = next(d for d in study_dirs(sample) if seg_file(sample, d.name) is None)
    s = read_series(d)
    x = vertebra_crops(s, estimate_presence(s), 'C7', n_slices=4, size=32)
    assert x.shape == (4, 3, 32, 32) and np.isfinite(x).all()


# ---------------------------------------------------------------- issue 10, case 5: a segmentation that does not fit

def test_half_resolution_segmentation_with_the_same_affine_is_refused(sample, tmp_path):
    i, d = next(_seg_studies(sample))
    s = read_series(d)
    img = nib.load(seg_file(sample, d.name))
    half = np.asarray(img.dataobj)[::2, ::2, ::2]
    nib.save(nib.Nifti1Image(half, img.affine), tmp_path/'half.nii')
    with pytest.raises(DataError, match=r'half\.nii: does not fit series .*lies inside its voxel grid'): seg_to_series(tmp_path/'half.nii', s)


def test_segmentation_off_the_scan_is_refused_and_presence_falls_back(sample, tmp_path):
    i, d = next(_seg_studies(sample))
    s = read_series(d)
    img = nib.load(seg_file(sample, d.name))
    A = img.affine.copy(); A[2, 3] += 500                      # 50 cm above the neck
    root = tmp_path/'root'; (root/'segmentations').mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), A), root/'segmentations'/f'{d.name}.nii')
    with pytest.raises(DataError, match='does not fit series'): seg_to_series(root/'segmentations'/f'{d.name}.nii', s)
    with pytest.warns(UserWarning, match=r'does not fit series.*using estimate_presence'):
        p = study_presence(root, s)
    assert p.attrs['source'] == 'estimate'
    with pytest.warns(UserWarning, match='using the localiser'):
        assert study_presence(root, s, localiser=lambda ser: 'localised') == 'localised'


def test_segmentation_partly_off_the_scan_is_refused(sample, tmp_path):
    "The grid overlaps, but C5..C7 fall below the last slice: the labelled volume does not land on the series."
    i, d = next(_seg_studies(sample))
    s = read_series(d)
    img = nib.load(seg_file(sample, d.name))
    A = img.affine.copy(); A[2, 3] -= 0.45*NS*s.spacing[0]
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), A), tmp_path/'low.nii')
    with pytest.raises(DataError, match=r'low\.nii: does not fit series .*(labelled volume|on no slice)'): seg_to_series(tmp_path/'low.nii', s)


def test_vertebra_on_no_slice_is_refused(sample, tmp_path):
    i, d = next(_seg_studies(sample))
    s = read_series(d)
    img = nib.load(seg_file(sample, d.name))
    lab = np.asarray(img.dataobj).copy()
    lab[0, 0, 0] = 9; lab[lab == 7] = 0; lab[-1, -1, -1] = 7   # a one-voxel C7 on a corner voxel that no pixel centre hits...
    A = img.affine.copy()
    nib.save(nib.Nifti1Image(lab, A), tmp_path/'c7.nii')
    out = seg_to_series(tmp_path/'c7.nii', s)                  # ...here the grids coincide, so it does land: accepted
    assert (out == 7).sum() == 1
    lab2 = lab.copy(); lab2[-1, -1, -1] = 0
    big = np.zeros((lab.shape[0], lab.shape[1], lab.shape[2] + 4), lab.dtype); big[..., 4:] = lab2
    big[5, 5, 0] = 7                                           # C7 only on slices below the scan
    B = A.copy(); B[:3, 3] -= A[:3, 2]*4
    nib.save(nib.Nifti1Image(big, B), tmp_path/'c7low.nii')
    with pytest.raises(DataError, match=r'C7 labelled in the file but on no slice'): seg_to_series(tmp_path/'c7low.nii', s)


def test_sform_and_qform_codes_zero_is_refused(sample, tmp_path):
    i, d = next(_seg_studies(sample))
    img = nib.load(seg_file(sample, d.name))
    bad = nib.Nifti1Image(np.asarray(img.dataobj), img.affine)
    bad.set_sform(img.affine, code=0); bad.set_qform(img.affine, code=0)
    nib.save(bad, tmp_path/'nocode.nii')
    with pytest.raises(DataError, match=r'nocode\.nii: sform and qform codes are both 0'): seg_to_series(tmp_path/'nocode.nii', read_series(d))


# ---------------------------------------------------------------- issue 10, case 14 and issue 14: geometry that must be right

def _dicom_affine(folder):
    "LPS affine (k, i, j) -> mm from the files' own tags (independent of CTSeries), slices sorted head first, and their z."
    dss = sorted((pydicom.dcmread(f, stop_before_pixels=True) for f in Path(folder).glob('*.dcm')), key=lambda d: -float(d.ImagePositionPatient[2]))
    P = np.array([[float(v) for v in d.ImagePositionPatient] for d in dss])
    iop = np.array([float(v) for v in dss[0].ImageOrientationPatient])
    dy, dx = (float(v) for v in dss[0].PixelSpacing)
    A = np.eye(4); A[:3, 0] = (P[-1] - P[0])/(len(P) - 1); A[:3, 1] = iop[3:]*dy; A[:3, 2] = iop[:3]*dx; A[:3, 3] = P[0]
    return A


def test_non_square_pixels_map_exactly(tmp_path):
    "PixelSpacing [0.6, 1.1] (rows, columns): swapping row and column spacing in seg_to_series would misplace the labels."
    ph = NeckPhantom(size=40, n_slices=10, seed=3)
    write_study(tmp_path/'s', ph, '1.2.3')
    for f in (tmp_path/'s').glob('*.dcm'):
        ds = pydicom.dcmread(f); ds.PixelSpacing = [0.6, 1.1]; ds.save_as(f)
    s = read_series(tmp_path/'s')
    assert s.spacing[1:] == pytest.approx((0.6, 1.1))
    lab = np.random.default_rng(0).integers(0, 8, s.hu.shape).astype(np.uint8)
    A = np.diag([-1.0, -1.0, 1.0, 1.0]) @ _dicom_affine(tmp_path/'s')
    # stored the RSNA way: axes (col, reversed row, slice bottom-up)
    data = np.ascontiguousarray(lab[::-1, ::-1, :].transpose(2, 1, 0))
    R = s.hu.shape[1]
    P = np.zeros((4, 4)); P[0, 2] = -1; P[0, 3] = len(s) - 1; P[1, 1] = -1; P[1, 3] = R - 1; P[2, 0] = 1; P[3, 3] = 1   # (a,b,c) -> (k,i,j)
    nib.save(nib.Nifti1Image(data, A @ P), tmp_path/'seg.nii')
    assert np.array_equal(seg_to_series(tmp_path/'seg.nii', s), lab)


def test_uneven_slice_spacing_maps_each_slice_at_its_position(sample, tmp_path):
    "Two slices missing: the gaps are uneven, and every remaining slice still gets its own labels."
    i, d = next(_seg_studies(sample))
    keep = [k for k in range(NS) if k not in (5, 6, 20)]
    full = read_series(d)
    for k in keep: shutil.copy(full.files[k], tmp_path/full.files[k].name)
    with pytest.raises(DataError, match='slice gap'): read_series(tmp_path)      # by default a gap is refused
    s = read_series(tmp_path, gaps='accept')
    assert len(set(np.round(np.diff(s.z), 3))) > 1              # uneven
    truth = study_phantom(0, i, SIZE, NS).labels()
    assert np.array_equal(seg_to_series(seg_file(sample, d.name), s), truth[keep])


def test_seg_to_series_general_affine_path(sample, tmp_path):
    "A rotated segmentation grid (not axis-aligned) goes through the general affine transform and still maps exactly."
    i, d = next(_seg_studies(sample))
    s = read_series(d)
    truth = study_phantom(0, i, SIZE, NS).labels()
    A = np.diag([-1.0, -1.0, 1.0, 1.0]) @ s.affine
    th = np.deg2rad(30); Rz = np.eye(4); Rz[:2, :2] = [[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]
    # rotate the world AND the grid: the same labels sit in the same places, the voxel axes are no longer aligned with the CT
    from scipy import ndimage
    img = nib.Nifti1Image(truth.astype(np.uint8), A)
    out = seg_to_series(img, s)
    assert np.array_equal(out, truth)
    from medrepro.rsna import data as D
    o, a, b = D._ct_to_voxel(s, A)
    rot = D._sample_grid(truth, o, a + 1e-3*b, b, s.hu.shape, np.zeros(s.hu.shape, np.uint8))   # not a permutation: general path
    assert (rot == truth).mean() > 0.99


# ---------------------------------------------------------------- issue 10, cases 6-8: boxes, labels, study folders

def test_box_off_the_series_is_refused(sample):
    bx = read_boxes(sample)
    uid = bx.StudyInstanceUID.iloc[0]
    s = read_series(Path(sample)/'train_images'/uid)
    ok = box_slices(bx, s)
    assert len(ok) == (bx.StudyInstanceUID == uid).sum()
    assert np.array_equal(s.slice_numbers[ok['slice'].to_numpy()], ok.slice_number.to_numpy())
    bad = bx.copy(); bad.loc[bad.index[0], 'slice_number'] = 5053
    with pytest.raises(DataError, match=r'train_bounding_boxes\.csv: study .* slice_number 5053, which is not in its series'): box_slices(bad, s)
    wide = bx.copy(); wide.loc[wide.index[0], 'width'] = 1000
    with pytest.raises(DataError, match='leaves the'): box_slices(wide, s)


@pytest.mark.parametrize('row,match', [('1.2,10,20,5,6,43.7', 'slice_number must be a whole number; row 2'),
                                       ('1.2,10,20,-5,6,43', 'width must be > 0; row 2'),
                                       ('1.2,10,20,5,0,43', 'height must be > 0'),
                                       ('1.2,-3,20,5,6,43', 'x must be >= 0'),
                                       (',10,20,5,6,43', 'empty StudyInstanceUID in row 2')])
def test_bad_box_rows(tmp_path, row, match):
    _write(tmp_path, ','.join(BOX_COLS) + '\n' + row + '\n', 'train_bounding_boxes.csv')
    with pytest.raises(DataError, match=match): read_boxes(tmp_path)


def test_empty_study_uid_in_train_csv_is_refused(tmp_path):
    with pytest.raises(DataError, match=r'train\.csv: empty StudyInstanceUID in row 3'):
        read_labels(_write(tmp_path, HDR + '1.2,1,0,1,0,0,0,0,0\n,0,0,0,0,0,0,0,0\n'))


def test_patient_overall_zero_with_fracture_warns(tmp_path):
    with pytest.warns(UserWarning, match=r'1 studies have patient_overall = 0 but a fractured vertebra, e.g. row 3 \(1\.3\)'):
        df = read_labels(_write(tmp_path, HDR + '1.2,1,0,1,0,0,0,0,0\n1.3,0,0,0,1,0,0,0,0\n'))
    assert df.C3.tolist() == [0, 1]
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        read_labels(_write(tmp_path, HDR + '1.2,1,0,1,0,0,0,0,0\n'))


def test_uids_are_read_as_text(tmp_path):
    "A UID that looks like a number keeps its digits (no float conversion)."
    df = read_labels(_write(tmp_path, HDR + '1.20,0,0,0,0,0,0,0,0\n'))
    assert df.StudyInstanceUID.tolist() == ['1.20']


def test_study_dirs_ignore_files_and_hidden_entries(tmp_path):
    (tmp_path/'train_images'/'1.2').mkdir(parents=True); (tmp_path/'train_images'/'1.1').mkdir()
    (tmp_path/'train_images'/'.DS_Store').write_text('x'); (tmp_path/'train_images'/'notes.txt').write_text('x')
    (tmp_path/'train_images'/'.hidden').mkdir()
    assert [p.name for p in study_dirs(tmp_path)] == ['1.1', '1.2']


# ---------------------------------------------------------------- issue 10, case 10: notebooks 10 and 11 validate their parameters

@pytest.mark.parametrize('nb,bad,match', [('10_rsna.dicom', dict(depth=0), 'depth=0: must be >= 1'),
                                          ('10_rsna.dicom', dict(source='s3'), 'source=.*must be one of'),
                                          ('10_rsna.dicom', dict(workers='two'), 'workers=.*expected int'),
                                          ('11_rsna.data', dict(n='four'), "n='four': expected int"),
                                          ('11_rsna.data', dict(context=-1), 'context=-1')])
def test_notebook_parameters_are_validated(nb, bad, match):
    import json
    cells = json.loads((Path(__file__).resolve().parents[1]/'nbs'/f'{nb}.ipynb').read_text())['cells']
    i = next(i for i, c in enumerate(cells) if 'parameters' in c['metadata'].get('tags', []))
    src = [''.join(cells[i]['source']), ''.join(cells[i + 1]['source'])]
    assert 'check_params' in src[1]                                  # right after the parameters cell
    ok = {}; exec(src[0], ok); exec(src[1], ok)                      # the defaults pass
    ns = {}; exec(src[0], ns); ns.update(bad)
    with pytest.raises(ValueError, match=match): exec(src[1], ns)


def test_label_counts_any_label_dtype():
    "Voxels per label, slice by slice: a uint8 volume counted as it is, other dtypes clipped to 0..255 first (same counts)."
    from medrepro.rsna.data import _label_counts
    v = np.random.default_rng(0).integers(0, 9, (5, 7, 6)).astype(np.uint8)
    want = np.bincount(v.ravel(), minlength=256)
    np.testing.assert_array_equal(_label_counts(v), want)
    np.testing.assert_array_equal(_label_counts(v.astype(np.int16)), want)
    np.testing.assert_array_equal(_label_counts(np.asfortranarray(v)), want)   # NIfTI's order, read along its contiguous axis: the same counts
    w = v.astype(np.int16); w[0, 0, 0], w[1, 0, 0] = -3, 300          # out of range: clipped to 0 and 255
    got = _label_counts(w)
    np.testing.assert_array_equal(got, np.bincount(np.clip(w, 0, 255).ravel(), minlength=256))
    assert got[255] == 1 and got.sum() == v.size
