"EchoNet loaders: the CSVs, videos, the four tracing->mask methods, the method of discs, the generator read back, bad inputs."
import re
import numpy as np, pandas as pd
import cv2
import pytest
from medrepro.core import DataError
from medrepro.sample import generate
from medrepro.echonet import data as D, sample as S


@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    return generate('echonet', tmp_path_factory.mktemp('echo')/'echonet', n=6, seed=3)


RECT = np.array([[5, 2, 5, 10], [2, 4, 8, 4], [2, 6, 8, 6], [2, 8, 8, 8]], float)


def test_reference_polygon_worked_example():
    np.testing.assert_array_equal(D.reference_polygon(RECT), [[2, 4], [2, 6], [2, 8], [8, 8], [8, 6], [8, 4]])
    m = D.tracing_mask(RECT, (12, 12))
    exp = np.zeros((12, 12), np.uint8); exp[4:9, 2:9] = 1
    np.testing.assert_array_equal(m, exp)
    assert D.polygon_area(D.reference_polygon(RECT)) == 24.0


def test_sort_makes_a_bow_tie_and_centroid_hull_recover_a_convex_shape():
    ref = D.tracing_mask(RECT, (12, 12))
    srt = D.tracing_mask(RECT, (12, 12), 'sort', axis=False)
    assert (srt[4, 5], srt[8, 5], srt[6, 5]) == (0, 0, 1) and srt.sum() < ref.sum()
    for m in ('centroid', 'hull'): np.testing.assert_array_equal(D.tracing_mask(RECT, (12, 12), m, axis=False), ref)
    np.testing.assert_array_equal(D.order_points([[0, 0], [2, 1], [1, 5]], 'sort'), [[0, 0], [1, 5], [2, 1]])
    with pytest.raises(ValueError, match='unknown ordering'): D.order_points(RECT[:, :2], 'spline')


def test_hull_fills_a_concave_tracing_and_reference_does_not():
    # a waist: the middle chord is narrower than the others
    c = np.array([[5, 0, 5, 12], [1, 2, 9, 2], [4, 6, 6, 6], [1, 10, 9, 10]], float)
    ref, hull = D.tracing_mask(c, (12, 12)), D.tracing_mask(c, (12, 12), 'hull', axis=False)
    assert ref[6, 2] == 0 and hull[6, 2] == 1 and (hull >= ref).all()
    cen = D.tracing_mask(c, (12, 12), 'centroid', axis=False)
    np.testing.assert_array_equal(cen, ref)   # a star-shaped outline around its centroid: the angle order is right


def test_method_of_discs_on_a_cylinder_and_a_cone():
    cyl = np.array([[0, 0, 0, 20]] + [[-5, y, 5, y] for y in np.arange(20) + 0.5], float)
    assert D.tracing_volume(cyl) == pytest.approx(np.pi * 25 * 20)
    n, L, R = 200, 30.0, 6.0    # a cone of radius R and length L: volume pi R^2 L / 3 in the limit of many discs
    y = (np.arange(n) + 0.5) * L / n
    cone = np.array([[0, 0, 0, L]] + [[-R * v / L, v, R * v / L, v] for v in y])
    assert D.tracing_volume(cone) == pytest.approx(np.pi * R ** 2 * L / 3, rel=1e-3)


def test_generator_writes_the_real_format(sample):
    fl_text = (sample/'FileList.csv').read_text()
    assert fl_text.splitlines()[0] == 'FileName,EF,ESV,EDV,FrameHeight,FrameWidth,FPS,NumberOfFrames,Split'
    tr_text = (sample/'VolumeTracings.csv').read_text()
    assert tr_text.splitlines()[0] == 'FileName,X1,Y1,X2,Y2,Frame'
    fl, tr = pd.read_csv(sample/'FileList.csv'), pd.read_csv(sample/'VolumeTracings.csv')
    assert all(re.fullmatch(r'0X[0-9A-F]{16}', n) for n in fl.FileName)             # no .avi in FileList
    assert all(re.fullmatch(r'0X[0-9A-F]{16}\.avi', n) for n in tr.FileName)         # .avi in VolumeTracings
    assert set(fl.Split) == {'TRAIN', 'VAL', 'TEST'} and (fl.FPS == 50).all()
    assert (tr.groupby(['FileName', 'Frame']).size() == 21).all() and (tr.groupby('FileName').Frame.nunique() == 2).all()
    for name in fl.FileName:
        p = sample/'Videos'/f'{name}.avi'
        cap = cv2.VideoCapture(str(p))
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, 'little').decode()
        assert fourcc == 'MJPG' and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 112 and int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == 112
        cap.release()


def test_generator_read_back_through_the_loaders(sample):
    d = D.echo_index(sample)
    assert len(d.frames) == 12 and d.frames.Phase.value_counts().to_dict() == {'ED': 6, 'ES': 6}
    fl = d.filelist.set_index('FileName')
    for name, g in d.frames.groupby('FileName'):
        ed, es = (g[g.Phase == p].iloc[0] for p in ('ED', 'ES'))
        assert ed.Area > es.Area
        ved, ves = (D.tracing_volume(d.coords(name, r.Frame)) * S.SAMPLE_CM_PER_PX ** 3 for r in (ed, es))
        assert fl.loc[name, 'EF'] == pytest.approx(100 * (ved - ves) / ved, abs=1e-5)
        assert fl.loc[name, 'EDV'] == pytest.approx(ved, abs=1e-5)
        v = D.read_video(d.video_path(name), fl.loc[name, 'NumberOfFrames'])
        assert v.shape == (fl.loc[name, 'NumberOfFrames'], 112, 112)
        # the cavity under the traced mask is darker than the band just outside it (the wall; each patient has its own brightness)
        m = D.tracing_mask(d.coords(name, ed.Frame)).astype(bool)
        ring = cv2.dilate(m.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool) & ~m
        assert v[ed.Frame][m].mean() < 0.7 * v[ed.Frame][ring].mean()
    # the same seed writes the same data
    assert D.echo_index(sample).frames.equals(d.frames)


def test_generator_is_deterministic(tmp_path):
    a = generate('echonet', tmp_path/'a', n=3, seed=5); b = generate('echonet', tmp_path/'b', n=3, seed=5)
    assert (a/'FileList.csv').read_text() == (b/'FileList.csv').read_text()
    assert (a/'VolumeTracings.csv').read_text() == (b/'VolumeTracings.csv').read_text()


def test_filelist_names_with_avi_and_lower_case_split(sample, tmp_path, scratch_copy):
    p = scratch_copy(sample)
    fl = pd.read_csv(p/'FileList.csv'); fl['FileName'] += '.avi'; fl['Split'] = fl.Split.str.lower()
    fl.to_csv(p/'FileList.csv', index=False)
    d = D.echo_index(p)
    assert len(d.frames) == 12 and set(d.frames.Split) == {'TRAIN', 'VAL', 'TEST'}


def test_traced_arrays_cache(sample, tmp_path):
    d = D.echo_index(sample)
    a = D.traced_arrays(d, 64, cache_dir=tmp_path/'cache')
    assert a['x'].shape == (12, 64, 64) and a['y'].dtype == np.uint8 and a['ok'].all()
    assert len(list((tmp_path/'cache').glob('echonet-traced-*.x.npy'))) == 1 and isinstance(a['x'], np.memmap)   # one memory-mapped array
    b = D.traced_arrays(d, 64, cache_dir=tmp_path/'cache')
    np.testing.assert_array_equal(a['x'], b['x'])
    # the mask area at 64 px, scaled back, matches the area of the tracing's polygon rounded to whole pixels (echonet/dynamic's)
    area = [D.polygon_area(np.rint(D.reference_polygon(d.coords(r.FileName, r.Frame)))) for r in d.frames.itertuples()]
    np.testing.assert_allclose(a['y'].reshape(12, -1).sum(1) * (112 / 64) ** 2, area, rtol=0.05)


# ---- bad inputs: each names the file and the problem
def test_wrong_header(sample, tmp_path, scratch_copy):
    p = scratch_copy(sample)
    t = (p/'VolumeTracings.csv').read_text().replace('FileName,X1,Y1,X2,Y2,Frame', 'FileName,X1,Y1,X2,Y2,FrameNumber', 1)
    (p/'VolumeTracings.csv').write_text(t)
    with pytest.raises(DataError, match=r'VolumeTracings\.csv: VolumeTracings\.csv lacks column\(s\) Frame'): D.echo_index(p)
    (p/'FileList.csv').write_text('name,ef\nx,1\n')
    with pytest.raises(DataError, match=r'FileList\.csv: FileList\.csv lacks column'): D.read_filelist(p/'FileList.csv')


def test_non_numeric_coordinate_and_bad_split(sample, tmp_path, scratch_copy):
    p = scratch_copy(sample)
    tr = pd.read_csv(p/'VolumeTracings.csv'); tr['X1'] = tr.X1.astype(object); tr.loc[3, 'X1'] = 'abc'
    tr.to_csv(p/'VolumeTracings.csv', index=False)
    with pytest.raises(DataError, match=r'VolumeTracings\.csv: column X1 is not numeric on line 5'): D.echo_index(p)
    fl = pd.read_csv(p/'FileList.csv'); fl.loc[0, 'Split'] = 'HOLDOUT'; fl.to_csv(p/'FileList.csv', index=False)
    with pytest.raises(DataError, match=r"FileList\.csv: unknown Split value\(s\) \['HOLDOUT'\]"): D.read_filelist(p/'FileList.csv')


def test_traced_video_missing_from_filelist_and_skip(sample, tmp_path, scratch_copy):
    p = scratch_copy(sample)
    fl = pd.read_csv(p/'FileList.csv'); gone = fl.FileName[0]; fl.iloc[1:].to_csv(p/'FileList.csv', index=False)
    with pytest.raises(DataError, match=rf'VolumeTracings\.csv: {gone}\.avi is traced in VolumeTracings\.csv but missing from FileList\.csv'):
        D.echo_index(p)
    with pytest.warns(UserWarning, match=rf'skipped 1 video\(s\): {gone}\.avi'):
        d = D.echo_index(p, on_error='skip')
    assert gone not in set(d.frames.FileName) and len(d.frames) == 10 and list(d.skipped) == [gone]


def test_video_missing_from_videos(sample, tmp_path, scratch_copy):
    p = scratch_copy(sample)
    name = pd.read_csv(p/'FileList.csv').FileName[2]
    (p/'Videos'/f'{name}.avi').unlink()
    with pytest.raises(DataError, match=rf'Videos/{name}\.avi: {name}\.avi is missing from Videos/'): D.echo_index(p)


def test_traced_frame_beyond_the_video(sample, tmp_path, scratch_copy):
    p = scratch_copy(sample)
    tr = pd.read_csv(p/'VolumeTracings.csv'); name = tr.FileName[0]
    tr.loc[tr.FileName == name, 'Frame'] += 1000; tr.to_csv(p/'VolumeTracings.csv', index=False)
    with pytest.raises(DataError, match=rf'VolumeTracings\.csv: {name} frame \d+ is beyond the video \(NumberOfFrames \d+\)'):
        D.echo_index(p)


def test_tracing_with_too_few_chords(sample, tmp_path, scratch_copy):
    p = scratch_copy(sample)
    tr = pd.read_csv(p/'VolumeTracings.csv')
    name, frame = tr.FileName[0], tr.Frame[0]
    g = tr.index[(tr.FileName == name) & (tr.Frame == frame)]
    tr.drop(g[3:]).to_csv(p/'VolumeTracings.csv', index=False)        # long axis + 2 chords
    with pytest.raises(DataError, match=rf'{name} frame {frame} has 2 chord\(s\); at least 3 are needed'): D.echo_index(p)


def test_unreadable_zero_frame_and_truncated_videos(sample, tmp_path, scratch_copy):
    p = scratch_copy(sample)
    names = pd.read_csv(p/'FileList.csv').FileName
    (p/'Videos'/f'{names[0]}.avi').write_bytes(b'this is not a video')
    with pytest.raises(DataError, match=rf'{names[0]}\.avi: unreadable video|{names[0]}\.avi: video has no readable frames'):
        D.read_video(p/'Videos'/f'{names[0]}.avi')
    vw = cv2.VideoWriter(str(p/'Videos'/f'{names[1]}.avi'), cv2.VideoWriter_fourcc(*'MJPG'), 50.0, (112, 112), True); vw.release()
    with pytest.raises(DataError, match=rf'{names[1]}\.avi: (unreadable video|video has no readable frames)'):
        D.read_video(p/'Videos'/f'{names[1]}.avi')
    v = p/'Videos'/f'{names[2]}.avi'; b = v.read_bytes(); v.write_bytes(b[:len(b) // 3])
    n = int(pd.read_csv(p/'FileList.csv').NumberOfFrames[2])
    with pytest.raises(DataError, match=rf'{names[2]}\.avi: (video truncated: decoded \d+ of the {n} frames|unreadable video)'):
        D.read_video(v, n_expected=n)
    with pytest.raises(DataError, match=r'video file not found'): D.read_video(p/'Videos'/'nope.avi')
    # a whole-data-set run can skip them with one warning
    d = D.echo_index(p)
    with pytest.warns(UserWarning, match=r'skipped 3 unreadable video\(s\)'):
        a = D.traced_arrays(d, 32, cache_dir=None, on_error='skip')
    assert (~a['ok']).sum() == 6 and a['ok'].sum() == 6
    with pytest.raises(DataError): D.traced_arrays(d, 32, cache_dir=None)


# ---- issue 24 item 5: tracings that would draw an empty or a wrong mask without a word
@pytest.mark.parametrize('what, change, message', [
    ('inf', lambda tr, i: tr.assign(X1=tr.X1.where(tr.index != i, np.inf)), r'X1 = inf is not finite'),
    ('nan', lambda tr, i: tr.assign(Y2=tr.Y2.where(tr.index != i, np.nan)), r'column Y2 is not numeric'),
    ('frame 7.7', lambda tr, i: tr.assign(Frame=tr.Frame.astype(float).where(tr.Frame != tr.Frame[i], tr.Frame[i] + 0.7)),
     r'Frame = \d+\.7 is not a whole number')])
def test_bad_tracing_rows_are_errors_naming_file_line_and_video(sample, scratch_copy, what, change, message):
    p = scratch_copy(sample)
    tr = pd.read_csv(p/'VolumeTracings.csv'); i = 25; name = D.video_name(tr.FileName[i])
    change(tr, i).to_csv(p/'VolumeTracings.csv', index=False)
    line = r'line \d+' if what == 'frame 7.7' else rf'line {i + 2}'
    with pytest.raises(DataError, match=rf'VolumeTracings\.csv: .*{line}, video {name}: .*{message}' if what != 'nan' else message):
        D.echo_index(p)
    if what == 'nan': return                                          # not numeric: the CSV reader's own error, no skipping
    with pytest.warns(UserWarning, match=rf'skipped 1 video\(s\): line \d+, video {name}'):
        d = D.echo_index(p, on_error='skip')
    assert name not in set(d.frames.FileName) and len(d.frames) == 10 and list(d.skipped) == [name]
    assert name not in set(d.tracings.FileName)


def test_tracing_outside_the_frame_is_an_error_not_an_empty_mask(sample, scratch_copy):
    p = scratch_copy(sample)
    tr = pd.read_csv(p/'VolumeTracings.csv'); name = D.video_name(tr.FileName[0])
    big = tr.FileName == tr.FileName[0]
    tr.loc[big, ['X1', 'Y1', 'X2', 'Y2']] *= 10                       # ten times too large
    tr.to_csv(p/'VolumeTracings.csv', index=False)
    with pytest.raises(DataError, match=rf'VolumeTracings\.csv: {name}\.avi frame \d+: line 2 \(.*\) and \d+ more row\(s\) lie outside the 112x112 frame'):
        D.echo_index(p)
    with pytest.warns(UserWarning, match=rf'skipped 1 video\(s\): {name}\.avi frame'):
        d = D.echo_index(p, on_error='skip')
    assert name not in set(d.frames.FileName) and len(d.frames) == 10
    # no silently empty mask: every frame the index keeps draws a mask with pixels in it
    assert all(D.tracing_mask(d.coords(r.FileName, r.Frame)).sum() > 0 for r in d.frames.itertuples())
    # a point just on the border (within a pixel) is fine
    tr = pd.read_csv(sample/'VolumeTracings.csv'); tr.loc[0, 'X1'] = 112.5
    tr.to_csv(p/'VolumeTracings.csv', index=False)
    assert len(D.echo_index(p).frames) == 12


def test_layout_check_names_what_is_wrong(sample, scratch_copy):
    from medrepro.data import check_dataset
    assert check_dataset('echonet', sample) == []
    p = scratch_copy(sample); name = pd.read_csv(p/'FileList.csv').FileName[0]
    (p/'Videos'/f'{name}.avi').write_bytes(b'not a video')
    assert [w for w, _ in check_dataset('echonet', p, n_read=24)] == [f'Videos/{name}.avi']
    (p/'VolumeTracings.csv').unlink()
    assert [w for w, _ in check_dataset('echonet', p)] == ['VolumeTracings.csv', 'reading']


def _echonet_dynamic_mask(t, shape=(112, 112)):
    "echonet/dynamic's steps (echonet/datasets/echo.py, Echo.__getitem__, target 'LargeTrace'/'SmallTrace'), re-implemented line by line."
    import skimage.draw
    x1, y1, x2, y2 = t[:, 0], t[:, 1], t[:, 2], t[:, 3]
    x = np.concatenate((x1[1:], np.flip(x2[1:])))
    y = np.concatenate((y1[1:], np.flip(y2[1:])))
    r, c = skimage.draw.polygon(np.rint(y).astype(int), np.rint(x).astype(int), shape)
    mask = np.zeros(shape, np.float32)
    mask[r, c] = 1
    return mask


def _random_tracing(rng, shape=112):
    "A tracing in EchoNet's format with non-integer coordinates: a long axis, then 20 chords across a wobbly ellipse."
    cx, cy, a, b, th = rng.uniform(40, 70), rng.uniform(40, 70), rng.uniform(12, 30), rng.uniform(6, 15), rng.uniform(0, np.pi)
    u, n = np.array([np.cos(th), np.sin(th)]), np.array([-np.sin(th), np.cos(th)])
    s = np.linspace(-a, a, 22)[1:-1]
    half = b * np.sqrt(1 - (s / a) ** 2) * rng.uniform(0.8, 1.2, len(s))
    p1 = np.array([cx, cy]) + s[:, None] * u + half[:, None] * n
    p2 = np.array([cx, cy]) + s[:, None] * u - half[:, None] * n
    axis = np.r_[np.array([cx, cy]) - a * u, np.array([cx, cy]) + a * u]
    return np.clip(np.vstack([axis, np.c_[p1, p2]]), 0, shape - 1)


def test_reference_mask_is_echonet_dynamics_rasterisation():
    rng = np.random.default_rng(0)
    differ = 0
    for _ in range(200):
        t = _random_tracing(rng)
        assert (t != np.round(t)).any()                                        # non-integer coordinates
        ours = D.tracing_mask(t, (112, 112))
        np.testing.assert_array_equal(ours, _echonet_dynamic_mask(t))          # identical, pixel for pixel
        differ += int((D.fill_polygon(D.reference_polygon(t), (112, 112)) != ours).any())
    assert differ > 100                                                        # without rounding most masks would differ


def test_reference_mask_rounds_in_the_video_grid_then_scales():
    t = _random_tracing(np.random.default_rng(1))
    np.testing.assert_array_equal(D.tracing_mask(t, (56, 56), scale=0.5), D.fill_polygon(np.rint(D.reference_polygon(t)) * 0.5, (56, 56)))


def test_reference_mask_matches_echonet_dynamic_on_the_sample(sample):
    d = D.echo_index(sample)
    for r in d.frames.itertuples():
        t = d.coords(r.FileName, r.Frame)
        np.testing.assert_array_equal(D.tracing_mask(t), _echonet_dynamic_mask(t))
