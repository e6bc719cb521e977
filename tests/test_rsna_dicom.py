"RSNA DICOM layer: reading real and generated series, ordering, HU, bad inputs, windows, resampling, preprocessing cache."
import shutil, warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1, RLELossless

from medrepro.core import DataError
from medrepro.imaging import window
from medrepro.rsna.dicom import CTSeries, decoder_hint, dicom_files, preprocess_series, read_series
from medrepro.rsna.sample import NeckPhantom, write_study


def _phantom(size=32, n=12, seed=1, fractures=('C3',)):
    return NeckPhantom(size=size, n_slices=n, fractures=fractures, seed=seed)


@pytest.fixture(scope='module')
def studies(tmp_path_factory):
    "Small generated studies: one per compression, one reversed, one signed."
    root = tmp_path_factory.mktemp('rsna_dicom')
    ph = _phantom()
    out = {}
    for name, kw in {'none': {}, 'j2k': dict(compress='j2k'), 'rle': dict(compress='rle'),
                     'reversed': dict(reverse=True), 'signed_j2k': dict(compress='j2k', signed=True)}.items():
        write_study(root/name, ph, '1.2.3.4', **kw)
        out[name] = root/name
    return ph, out


# ---------------------------------------------------------------- real files

@pytest.mark.realdata
def test_real_j2k_series_ordered_by_position(shared_data, tmp_path):
    """The real series copied under names that sort FEET first (the original SOP-UID names already sort head first, so a
    reader that kept the name order would pass on them): the order must come from the positions."""
    src = sorted((shared_data/'ct_series_j2k').iterdir())
    z_src = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in src]
    for rank, i in enumerate(np.argsort(z_src)):                # lowest z (feet) gets the first name
        shutil.copy(src[i], tmp_path/f'{rank:03d}')
    by_name = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in sorted(tmp_path.iterdir())]
    assert np.all(np.diff(by_name) > 0), 'precondition: the names sort feet first'
    s = read_series(tmp_path)
    assert s.hu.shape == (20, 512, 512)
    assert np.all(np.diff(s.z) < 0), 'z must be strictly descending (head first)'
    assert [f.name for f in s.files] == [f'{k:03d}' for k in range(19, -1, -1)]
    assert s.spacing[0] == pytest.approx(2.0) and s.spacing[1] == pytest.approx(0.9765625)
    assert s.hu.min() <= -900 and s.hu.min() >= -1100           # air
    assert 1000 <= s.hu.max() <= 4000                           # dense bone present
    assert 'JPEG 2000' in s.meta['transfer_syntax']
    for k in (0, 7, 19):                                        # each slice's HU come from the file at that z
        ds = pydicom.dcmread(s.files[k])
        assert float(ds.ImagePositionPatient[2]) == pytest.approx(s.z[k])
        assert np.array_equal(s.hu[k], ds.pixel_array.astype(np.int32)*int(ds.RescaleSlope) + int(ds.RescaleIntercept))
    assert len(set(s.slice_numbers)) == 20                       # InstanceNumber (names are not numbers)
    assert s.hu.dtype == np.int16                                # integer rescale: int16 kept
    procs = read_series(tmp_path, workers=2, executor='process')
    assert np.array_equal(procs.hu, s.hu) and np.array_equal(procs.z, s.z)
    orig = read_series(shared_data/'ct_series_j2k')
    assert np.array_equal(orig.hu, s.hu) and np.array_equal(orig.z, s.z)


@pytest.mark.realdata
def test_real_j2k_scrambled_names_and_instance_numbers(shared_data, tmp_path):
    "File names and InstanceNumbers shuffled (in the original they run in z order, so sorting by either would pass)."
    ref = read_series(shared_data/'ct_series_j2k')
    files = sorted((shared_data/'ct_series_j2k').iterdir())
    perm = np.random.default_rng(7).permutation(len(files))
    for f, p in zip(files, perm):
        ds = pydicom.dcmread(f)
        ds.InstanceNumber = int(p) + 1
        ds.save_as(tmp_path/f'IMG{(int(p)*37) % 101:04d}')             # encapsulated J2K pixel data kept as is
    s = read_series(tmp_path)
    assert np.array_equal(s.hu, ref.hu) and np.array_equal(s.z, ref.z)
    # the InstanceNumbers come along with their slices: the one written for the k-th file by name is where that file's z is
    by_z = {float(z): n for z, n in zip(s.z, s.slice_numbers)}
    for f, p in zip(files, perm):
        assert by_z[float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2])] == int(p) + 1
    assert sorted(s.slice_numbers) == list(range(1, len(files) + 1)) and s.slice_numbers.tolist() != list(range(1, len(files) + 1))


@pytest.mark.realdata
def test_real_j2k_affine_matches_ipp(shared_data):
    s = read_series(shared_data/'ct_series_j2k')
    A = s.affine
    for k in (0, 10, 19):
        assert np.allclose(A @ [k, 0, 0, 1], [*s.positions[k], 1], atol=1e-3)
    # one pixel step along a row = PixelSpacing[1] along IOP's first vector
    assert np.allclose((A @ [0, 0, 1, 1])[:3] - s.origin, s.orientation[:3]*s.spacing[2])


def test_jpeg_lossless_ct_from_pydicom_data(tmp_path):
    from pydicom.data import get_testdata_file
    f = get_testdata_file('bad_sequence.dcm')        # CT, MONOCHROME2, JPEG Lossless SV1, 512x512, in pydicom-data
    if f is None: pytest.skip('pydicom-data is not installed')
    ds = pydicom.dcmread(f, stop_before_pixels=True)
    assert ds.file_meta.TransferSyntaxUID == JPEGLosslessSV1 and ds.Modality == 'CT'
    shutil.copy(f, tmp_path/'1.dcm')
    s = read_series(tmp_path)
    assert s.hu.shape == (1, 512, 512)
    assert -1100 <= s.hu.min() <= -900 and 500 < s.hu.max() < 3000
    assert s.slice_numbers.tolist() == [1]
    assert s.spacing[0] > 0


# ---------------------------------------------------------------- generated files: exact round trip

@pytest.mark.parametrize('name', ['none', 'j2k', 'rle', 'reversed', 'signed_j2k'])
def test_roundtrip_hu_exact_and_head_first(studies, name):
    ph, dirs = studies
    s = read_series(dirs[name])
    assert isinstance(s, CTSeries) and len(s) == ph.n
    assert np.all(np.diff(s.z) < 0)
    for k in (0, ph.n//2, ph.n - 1):
        assert np.array_equal(s.hu[k], ph.slice(k)[0]), f'slice {k} HU differ'
    expected = list(range(ph.n, 0, -1)) if name == 'reversed' else list(range(1, ph.n + 1))
    assert s.slice_numbers.tolist() == expected
    assert s.spacing == pytest.approx((ph.dz, ph.ps, ph.ps))
    assert s.uid == '1.2.3.4'


def test_order_ignores_file_names(studies, tmp_path):
    ph, dirs = studies
    rng = np.random.default_rng(0)
    files = sorted(dirs['none'].glob('*.dcm'))
    for f, name in zip(files, rng.permutation(len(files))):
        shutil.copy(f, tmp_path/f'CT.{name*7919 % 1000:04d}')    # no extension, names unrelated to position
    s = read_series(tmp_path)
    ref = read_series(dirs['none'])
    assert np.array_equal(s.hu, ref.hu) and np.array_equal(s.z, ref.z)
    assert s.slice_numbers.tolist() == list(range(1, ph.n + 1))   # names are not numbers: InstanceNumber


# ---------------------------------------------------------------- bad inputs

def _copy(studies, dest, n):
    "Copy slices 1..n of the uncompressed study into `dest`."
    for i in range(1, n + 1): shutil.copy(studies[1]['none']/f'{i}.dcm', dest/f'{i}.dcm')


def test_empty_folder(tmp_path):
    with pytest.raises(DataError, match='no DICOM files'): read_series(tmp_path)


def test_not_a_folder(tmp_path):
    with pytest.raises(DataError, match='not a folder'): read_series(tmp_path/'missing')


def test_not_dicom(studies, tmp_path):
    shutil.copy(studies[1]['none']/'1.dcm', tmp_path/'1.dcm')
    (tmp_path/'2.dcm').write_bytes(b'\x89PNG\r\n this is not a DICOM file')
    with pytest.raises(DataError, match=r'2\.dcm: not a DICOM file'): read_series(tmp_path)


def test_missing_pixel_data(studies, tmp_path):
    _copy(studies, tmp_path, 3)
    ds = pydicom.dcmread(tmp_path/'2.dcm'); del ds.PixelData; ds.save_as(tmp_path/'2.dcm')
    with pytest.raises(DataError, match=r'2\.dcm: no pixel data'): read_series(tmp_path)


def test_two_series_mixed(tmp_path):
    write_study(tmp_path, _phantom(n=4), '1.2.3', series_uid='1.2.3.1')
    write_study(tmp_path, _phantom(n=4, seed=2), '1.2.3', series_uid='1.2.3.2', numbers=[11, 12, 13, 14])
    with pytest.raises(DataError, match='2 series mixed.*SeriesInstanceUID'): read_series(tmp_path)


def test_inconsistent_slice_size(tmp_path):
    write_study(tmp_path, _phantom(size=32, n=4), '1.2.3', series_uid='1.2.3.1')
    write_study(tmp_path/'x', _phantom(size=24, n=4, seed=2), '1.2.3', series_uid='1.2.3.1')
    shutil.copy(tmp_path/'x'/'1.dcm', tmp_path/'9.dcm')
    with pytest.raises(DataError, match=r'9\.dcm: slice is 24x24 .*inconsistent slice size'): read_series(tmp_path)


def test_duplicate_position(studies, tmp_path):
    _copy(studies, tmp_path, 3)
    ds = pydicom.dcmread(tmp_path/'3.dcm'); ds.ImagePositionPatient = pydicom.dcmread(tmp_path/'2.dcm').ImagePositionPatient
    ds.save_as(tmp_path/'3.dcm')
    with pytest.raises(DataError, match='same position'): read_series(tmp_path)


def test_missing_position(studies, tmp_path):
    _copy(studies, tmp_path, 2)
    ds = pydicom.dcmread(tmp_path/'2.dcm'); del ds.ImagePositionPatient; ds.save_as(tmp_path/'2.dcm')
    with pytest.raises(DataError, match=r'2\.dcm: missing ImagePositionPatient'): read_series(tmp_path)


def _hide_plugins(monkeypatch, ts):
    "Make every decoding plugin of `ts` look uninstalled."
    from pydicom.pixels import get_decoder
    dec = get_decoder(ts)
    monkeypatch.setattr(dec, '_available', {})
    monkeypatch.setattr(dec, '_unavailable', {'pylibjpeg': ('pylibjpeg (test: hidden)',)})
    assert not dec.is_available


def test_missing_j2k_decoder(studies, monkeypatch):
    _hide_plugins(monkeypatch, JPEG2000Lossless)
    with pytest.raises(DataError, match=r'1\.dcm: compressed as JPEG 2000.*install pylibjpeg and pylibjpeg-openjpeg'):
        read_series(studies[1]['j2k'])
    read_series(studies[1]['none'])                 # uncompressed still reads


def test_missing_jpeg_lossless_decoder(tmp_path, monkeypatch):
    from pydicom.data import get_testdata_file
    f = get_testdata_file('bad_sequence.dcm')
    if f is None: pytest.skip('pydicom-data is not installed')
    shutil.copy(f, tmp_path/'1.dcm')
    _hide_plugins(monkeypatch, JPEGLosslessSV1)
    with pytest.raises(DataError, match='JPEG Lossless.*pylibjpeg-libjpeg'): read_series(tmp_path)


def test_missing_rle_decoder(studies, monkeypatch):
    _hide_plugins(monkeypatch, RLELossless)
    with pytest.raises(DataError, match='RLE Lossless.*pylibjpeg-rle'): read_series(studies[1]['rle'])


def test_decoder_hints():
    assert 'pylibjpeg-openjpeg' in decoder_hint(JPEG2000Lossless)
    assert 'pylibjpeg-libjpeg' in decoder_hint(JPEGLosslessSV1)
    assert 'pylibjpeg-rle' in decoder_hint(RLELossless)


def test_dicom_files_skips_hidden_and_warns_about_non_dicom(studies, tmp_path):
    shutil.copy(studies[1]['none']/'1.dcm', tmp_path/'1.dcm')
    (tmp_path/'notes.txt').write_text('x'); (tmp_path/'.DS_Store').write_text('x'); (tmp_path/'DICOMDIR').write_bytes(b'x')
    with pytest.warns(UserWarning, match=r'skipped 1 file\(s\) that are not DICOM: notes\.txt$'):
        assert [f.name for f in dicom_files(tmp_path)] == ['1.dcm']


def test_series_read_by_content_whatever_the_suffix(studies, tmp_path):
    "Issue 24 (3): slices named *.dcm, *.DCM and without suffix in one folder are all read; a stray file is named in one warning."
    ph, dirs = studies
    ref = read_series(dirs['none'])
    for k, f in enumerate(sorted(dirs['none'].glob('*.dcm'))):
        shutil.copy(f, tmp_path/(f.name if k % 3 == 0 else f.stem + '.DCM' if k % 3 == 1 else f.stem))
    (tmp_path/'README').write_text('exported by hand'); (tmp_path/'thumb.png').write_bytes(b'\x89PNG')
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        s = read_series(tmp_path)
    assert len(s) == ph.n and np.array_equal(s.hu, ref.hu) and np.array_equal(s.z, ref.z)
    assert s.slice_numbers.tolist() == ref.slice_numbers.tolist()
    msgs = [str(x.message) for x in w if 'not DICOM' in str(x.message)]
    assert len(msgs) == 1 and 'README' in msgs[0] and 'thumb.png' in msgs[0]


def test_only_non_dicom_files_is_an_error(tmp_path):
    (tmp_path/'a').write_text('x'); (tmp_path/'b.txt').write_text('y')
    with pytest.raises(DataError, match='no DICOM files in this folder .2 other files'): dicom_files(tmp_path)


def _drop(dirs, tmp_path, missing):
    files = sorted(dirs['none'].glob('*.dcm'), key=lambda f: int(f.stem))
    for k, f in enumerate(files):
        if k not in missing: shutil.copy(f, tmp_path/f.name)
    return files


def test_missing_slice_is_an_error_naming_the_gap(studies, tmp_path):
    "Issue 24 (4): a 2-step gap (one slice missing) is refused by default, naming the folder and the slices around it."
    ph, dirs = studies
    files = _drop(dirs, tmp_path, {5})
    with pytest.raises(DataError, match=rf"{tmp_path.name}: slice gap: {files[4].name} \(z=.*\) and {files[6].name} .* are {2*ph.dz:.2f} mm apart"):
        read_series(tmp_path)
    with pytest.raises(DataError, match='slice gap'): preprocess_series(tmp_path, depth=8, size=16)
    with pytest.raises(ValueError, match='gaps must be'): read_series(tmp_path, gaps='ignore')


def test_missing_slice_accepted_is_resampled_on_real_positions(studies, tmp_path):
    ph, dirs = studies
    files = _drop(dirs, tmp_path, {5})
    s = read_series(tmp_path, gaps='accept')
    assert len(s) == ph.n - 1 and s.meta['gaps'] == [(files[4].name, files[6].name, pytest.approx(2*ph.dz, abs=1e-3))]
    full = read_series(dirs['none'])
    from medrepro.imaging import multi_window, resize_inplane, resample_axis
    x = preprocess_series(tmp_path, depth=ph.n, size=16, windows=('bone',), dtype=np.float32, gaps='accept')
    truth = multi_window(resample_axis(resize_inplane(full.hu, 16), ph.n), ('bone',))    # the complete series
    on_index = multi_window(resample_axis(resize_inplane(s.hu, 16), ph.n), ('bone',))     # the gap ignored
    err, err_index = np.abs(x - truth).mean(), np.abs(on_index - truth).mean()
    assert np.allclose(x[:, :5], truth[:, :5], atol=1e-5) and np.allclose(x[:, 6:], truth[:, 6:], atol=1e-5)   # every real slice where it belongs
    assert err < err_index/5, (err, err_index)
    assert not np.allclose(preprocess_series(dirs['none'], depth=8, size=16), preprocess_series(tmp_path, depth=8, size=16, gaps='accept'), atol=0)


def test_even_series_has_no_gaps(studies):
    for name in ('none', 'reversed', 'j2k'): assert read_series(studies[1][name]).meta['gaps'] == []


# ---------------------------------------------------------------- preprocess_series + cache

def test_preprocess_series_shape_and_cache(studies, tmp_path, monkeypatch):
    ph, dirs = studies
    x = preprocess_series(dirs['j2k'], depth=8, size=16, windows=('bone', 'soft'), cache_dir=tmp_path)
    assert x.shape == (2, 8, 16, 16) and x.dtype == np.float16 and 0 <= x.min() and x.max() <= 1
    from medrepro.imaging import resample_axis, resize_inplane
    want = window(resample_axis(resize_inplane(read_series(dirs['j2k']).hu, 16), 8, axis=0), 'soft')
    assert np.abs(x[1].astype(np.float32) - want).max() < 1e-3          # channel 1 = the soft window of the resampled HU
    cached = list(tmp_path.glob('*.npz'))
    assert len(cached) == 1 and not list(tmp_path.glob('.tmp*'))
    import medrepro.rsna.dicom as D
    monkeypatch.setattr(D, 'read_series', lambda *a, **k: (_ for _ in ()).throw(AssertionError('cache not used')))
    assert np.array_equal(preprocess_series(dirs['j2k'], depth=8, size=16, windows=('bone', 'soft'), cache_dir=tmp_path), x)
    monkeypatch.undo()
    # any setting change is a new key, which replaces the study's older entry
    y = preprocess_series(dirs['j2k'], depth=8, size=16, windows=('bone', 'brain'), cache_dir=tmp_path)
    z = preprocess_series(dirs['j2k'], depth=6, size=16, windows=('bone', 'soft'), cache_dir=tmp_path, dtype=np.float32)
    now = list(tmp_path.glob('*.npz'))
    assert len(now) == 1 and now != cached and z.dtype == np.float32 and y.shape == (2, 8, 16, 16)
    assert np.array_equal(y[0], x[0])


def test_preprocess_series_head_first(studies):
    ph, dirs = studies
    a = preprocess_series(dirs['none'], depth=ph.n, size=ph.size, windows=('bone',), dtype=np.float32)
    b = preprocess_series(dirs['reversed'], depth=ph.n, size=ph.size, windows=('bone',), dtype=np.float32)
    assert np.array_equal(a, b)                         # numbering does not change the volume
    assert np.allclose(a[0, 0], window(ph.slice(0)[0], 'bone'))


def test_process_executor_gives_the_same_volume(studies):
    from concurrent.futures import ProcessPoolExecutor
    ph, dirs = studies
    ref = read_series(dirs['j2k'], workers=1)
    assert np.array_equal(read_series(dirs['j2k'], workers=2, executor='process').hu, ref.hu)
    with ProcessPoolExecutor(2) as pool:
        assert np.array_equal(read_series(dirs['reversed'], executor=pool).hu, ref.hu)
    with pytest.raises(ValueError, match='executor'): read_series(dirs['j2k'], executor='gpu')


def test_decode_error_in_worker_names_the_file(studies, tmp_path):
    _copy(studies, tmp_path, 3)
    raw = (tmp_path/'2.dcm').read_bytes()
    (tmp_path/'2.dcm').write_bytes(raw[:len(raw) - 500])          # truncated pixel data
    with pytest.raises(DataError, match=r'2\.dcm'): read_series(tmp_path, workers=2, executor='process')


# ---------------------------------------------------------------- issue 10, cases 1-4: bad input named as such

@pytest.mark.parametrize('comp', ['j2k', 'rle'])
@pytest.mark.parametrize('cut', [10, 300])
def test_truncated_compressed_slice_is_named(studies, tmp_path, comp, cut):
    for f in studies[1][comp].glob('*.dcm'): shutil.copy(f, tmp_path/f.name)
    raw = (tmp_path/'5.dcm').read_bytes()
    (tmp_path/'5.dcm').write_bytes(raw[:-cut])
    with pytest.raises(DataError, match=r'5\.dcm: truncated or unreadable DICOM') as e: read_series(tmp_path)
    assert 'series mixed' not in str(e.value)


def test_truncated_uncompressed_slice_is_named(studies, tmp_path):
    _copy(studies, tmp_path, 3)
    raw = (tmp_path/'2.dcm').read_bytes()
    (tmp_path/'2.dcm').write_bytes(raw[:-10])
    with pytest.raises(DataError, match=r'2\.dcm: truncated or unreadable DICOM'): read_series(tmp_path)


def _edit(path, **tags):
    ds = pydicom.dcmread(path)
    for k, v in tags.items():
        if v is None: delattr(ds, k)
        else: setattr(ds, k, v)
    ds.save_as(path)


@pytest.mark.parametrize('tag', ['RescaleSlope', 'RescaleIntercept'])
def test_rescale_tag_missing_on_one_slice_is_refused(studies, tmp_path, tag):
    _copy(studies, tmp_path, 4)
    _edit(tmp_path/'3.dcm', **{tag: None})
    with pytest.raises(DataError, match=rf'3\.dcm: no {tag}, while 3 other slices .*inconsistent rescale tags'): read_series(tmp_path)


def test_pixel_representation_differing_between_slices_is_refused(studies, tmp_path):
    _copy(studies, tmp_path, 3)
    _edit(tmp_path/'2.dcm', PixelRepresentation=1)
    with pytest.raises(DataError, match=r'2\.dcm: PixelRepresentation is 1 but 1\.dcm has 0'): read_series(tmp_path)


def test_implausible_hu_warns_with_slice_names(studies, tmp_path):
    "A PixelRepresentation that contradicts the data (12-bit unsigned read as signed) puts bone at about -3000 HU."
    ph = studies[0]
    _copy(studies, tmp_path, ph.n)
    for f in tmp_path.glob('*.dcm'): _edit(f, PixelRepresentation=1)
    with pytest.warns(UserWarning, match=r'slices have HU below -2000 .*PixelRepresentation.*\d+\.dcm') as w: s = read_series(tmp_path)
    assert s.hu.min() < -2000
    with warnings.catch_warnings():
        warnings.simplefilter('error')                      # the intact study: no warning
        read_series(studies[1]['none'])


@pytest.mark.parametrize('tagged', [True, False])
def test_padding_value_below_minus_2000_is_not_implausible(tmp_path, tagged):
    "Scanners pad outside the field of view with one value (here -3024 HU), tagged PixelPaddingValue or not: no warning."
    write_study(tmp_path, _phantom(n=3), '1.2.3', signed=True, intercept=-1024)
    for f in tmp_path.glob('*.dcm'):
        ds = pydicom.dcmread(f); a = ds.pixel_array.copy(); a[0, :4] = -2000
        if tagged: ds.PixelPaddingValue = -2000; ds['PixelPaddingValue'].VR = 'SS'
        ds.PixelData = a.tobytes(); ds.save_as(f)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        s = read_series(tmp_path)
    assert s.hu[0, 0, 0] == -3024 and s.hu.dtype == np.int16


def test_one_coronal_slice_among_axial_is_refused(studies, tmp_path):
    _copy(studies, tmp_path, 4)
    _edit(tmp_path/'3.dcm', ImageOrientationPatient=[1, 0, 0, 0, 0, -1])
    with pytest.raises(DataError, match=r'3\.dcm: orientation coronal .* differs from 1\.dcm \(axial'): read_series(tmp_path)


def test_three_plane_localiser_is_an_orientation_problem(studies, tmp_path):
    _copy(studies, tmp_path, 3)
    ipp = pydicom.dcmread(tmp_path/'1.dcm').ImagePositionPatient
    _edit(tmp_path/'2.dcm', ImageOrientationPatient=[1, 0, 0, 0, 0, -1], ImagePositionPatient=ipp)
    _edit(tmp_path/'3.dcm', ImageOrientationPatient=[0, 1, 0, 0, 0, -1], ImagePositionPatient=ipp)
    with pytest.raises(DataError, match='orientation (coronal|sagittal).*2 of 3 slices differ'): read_series(tmp_path)


def test_multi_frame_is_named_before_missing_position(studies, tmp_path):
    _copy(studies, tmp_path, 2)
    _edit(tmp_path/'2.dcm', NumberOfFrames=2, ImagePositionPatient=None)
    with pytest.raises(DataError, match=r'2\.dcm: multi-frame DICOM \(2 frames'): read_series(tmp_path)


def test_signed_16_bit_with_integer_intercept_stays_int16(tmp_path):
    ph = _phantom()
    write_study(tmp_path, ph, '1.2.3', signed=True, intercept=-1024)
    s = read_series(tmp_path)
    assert s.hu.dtype == np.int16 and np.array_equal(s.hu[3], ph.slice(3)[0])


# ---------------------------------------------------------------- issue 14: exact HU whatever the rescale

def _stored_times_slope_plus_intercept(folder):
    "Expected HU straight from the files (float64), in head-first order."
    dss = sorted((pydicom.dcmread(f) for f in Path(folder).glob('*.dcm')), key=lambda d: -float(d.ImagePositionPatient[2]))
    return np.stack([d.pixel_array.astype(np.float64)*float(d.RescaleSlope) + float(d.RescaleIntercept) for d in dss])


@pytest.mark.parametrize('slope,intercept,dtype', [(2, -1024, np.int16), (1, -1100, np.int16),
                                                   (0.5, -1024.5, np.float32), (2, -2047.75, np.float32), (0.5, -1024, np.float32)])
@pytest.mark.parametrize('compress', ['none', 'j2k'])
def test_hu_exact_for_any_slope_and_intercept(tmp_path, slope, intercept, dtype, compress):
    ph = _phantom()
    write_study(tmp_path, ph, '1.2.3', slope=slope, intercept=intercept, compress=compress, reverse=True)
    s = read_series(tmp_path)
    want = _stored_times_slope_plus_intercept(tmp_path)
    assert s.hu.dtype == dtype
    assert np.array_equal(s.hu.astype(np.float64), want)
    assert np.abs(want - np.stack([ph.slice(k)[0] for k in range(ph.n)])).max() <= abs(slope)/2 + 1e-9   # and it is the phantom


def test_slope_per_slice_is_used(studies, tmp_path):
    "Slices may carry their own slope: each slice is rescaled by its own tags."
    _copy(studies, tmp_path, 3)
    ds = pydicom.dcmread(tmp_path/'2.dcm'); a = ds.pixel_array.astype(np.int32)
    ds.PixelData = ((a + 1024)//2).astype(np.uint16).tobytes(); ds.RescaleSlope = 2; ds.RescaleIntercept = -2048; ds.save_as(tmp_path/'2.dcm')
    s = read_series(tmp_path)
    assert np.array_equal(s.hu[1], ((a + 1024)//2)*2 - 2048) and s.hu.dtype == np.int16



# ---------------------------------------------------------------- property: any file order reads back the same

from hypothesis import given, settings, HealthCheck, strategies as st


@pytest.fixture(scope='module')
def small_study(tmp_path_factory):
    ph = _phantom(size=16, n=8, seed=5)
    d = tmp_path_factory.mktemp('prop')/'s'
    write_study(d, ph, '1.2.9', compress='rle')
    return ph, d, read_series(d)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(perm=st.permutations(list(range(8))), names=st.sampled_from(['num', 'uid']))
def test_any_file_order_reads_back_identically(small_study, tmp_path_factory, perm, names):
    ph, d, ref = small_study
    out = tmp_path_factory.mktemp('perm')
    for f, p in zip(sorted(d.glob('*.dcm'), key=lambda f: int(f.stem)), perm):
        shutil.copy(f, out/(f'{p + 1}.dcm' if names == 'num' else f'CT.{p * 7919 % 1000:04d}'))
    s = read_series(out)
    assert np.array_equal(s.hu, ref.hu) and np.array_equal(s.z, ref.z) and np.array_equal(s.positions, ref.positions)
    want = [p + 1 for p in perm] if names == 'num' else list(range(1, ph.n + 1))   # file number, else InstanceNumber
    assert s.slice_numbers.tolist() == want


# ---------------------------------------------------------------- issue 10, case 15: the default decoder

@pytest.mark.parametrize('load,want', [(0.0, 'process x2'), (9.0, 'serial')])
def test_default_uses_processes_only_for_large_slow_series_on_idle_cores(studies, monkeypatch, load, want):
    import medrepro.rsna.dicom as D
    ph, dirs = studies
    monkeypatch.setattr(D.os, 'cpu_count', lambda: 2)
    monkeypatch.setattr(D, '_idle_cpus', lambda: 2 - load + 1)
    assert read_series(dirs['j2k']).meta['decoder'] == 'serial'              # small series: serial
    monkeypatch.setattr(D, 'AUTO_PROCESS_PIXELS', 1000)                      # now "large"
    s = read_series(dirs['j2k'])
    assert s.meta['decoder'] == want and np.array_equal(s.hu, read_series(dirs['j2k'], executor='serial').hu)
    assert read_series(dirs['none']).meta['decoder'] == 'serial'             # uncompressed: decoding is cheap
    assert read_series(dirs['j2k'], workers=1).meta['decoder'] == 'serial'
    assert read_series(dirs['j2k'], workers=2, executor='thread').meta['decoder'] == 'thread x2'   # threads only when asked
