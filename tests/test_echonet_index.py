"""`echo_index` on whole arrays gives, row for row, what the per-video pandas loops gave (tests/echonet_index_reference.py):
the same `frames`, `tracings`, `skipped`, warning and error (file and message), on the sample, on a shuffled table of
many videos, and on tables with every kind of bad video `_check_video` knew."""
import os, shutil, warnings
import numpy as np, pandas as pd
import pytest
from medrepro.core import DataError
from medrepro.sample import generate
from medrepro.echonet import data as D
import echonet_index_reference as REF

# polygon_area sums the shoelace terms in the order numpy's np.dot took them through OpenBLAS (strided columns): where
# numpy links OpenBLAS the areas must be bit-identical; with another BLAS the reference's np.dot may differ in the last bit


@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    return generate('echonet', tmp_path_factory.mktemp('echo')/'echonet', n=6, seed=3)


def _run(fn, root, on_error):
    "What one implementation does with a folder: its EchoData (or its DataError's file and problem) and its warnings."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try: out = fn(root, on_error=on_error)
        except DataError as e: out = ('DataError', e.path, e.problem)
    return out, [str(w.message) for w in caught]


def assert_same(root, on_error):
    "The new echo_index and the reference do the same with `root`: same error, or the same EchoData and warnings."
    (old, w_old), (new, w_new) = _run(REF.echo_index, root, on_error), _run(D.echo_index, root, on_error)
    assert w_new == w_old
    if isinstance(old, tuple):
        assert new == old
        return old
    assert not isinstance(new, tuple), f'the new index raised {new}, the reference did not'
    pd.testing.assert_frame_equal(new.frames.drop(columns='Area'), old.frames.drop(columns='Area'), check_exact=True)   # ED/ES labels and the rest: exact
    np.testing.assert_allclose(new.frames.Area, old.frames.Area, rtol=1e-12, atol=1e-8)   # summed in another order than the old per-frame np.dot
    assert list(new.frames.dtypes) == list(old.frames.dtypes) and new.frames.index.equals(old.frames.index)
    pd.testing.assert_frame_equal(new.tracings, old.tracings, check_exact=True)
    assert new.tracings.attrs == old.tracings.attrs
    pd.testing.assert_frame_equal(new.filelist, old.filelist, check_exact=True)
    assert list(new.skipped.items()) == list(old.skipped.items()) and new.root == old.root
    return old


def replicate(src, dest, n, seed=0, shuffle=True):
    "A folder of `n` videos: the sample's FileList rows and tracings under new names (of mixed case, so the sort matters), videos hard-linked; tracing rows shuffled."
    rng = np.random.default_rng(seed)
    fl, tr = pd.read_csv(src/'FileList.csv'), pd.read_csv(src/'VolumeTracings.csv')
    (dest/'Videos').mkdir(parents=True)
    names = [('0x' if i % 3 == 0 else '0X') + f'{rng.integers(0, 2 ** 40):010X}' for i in range(n)]
    big = fl.iloc[np.arange(n) % len(fl)].copy(); big['FileName'] = names
    by = dict(list(tr.groupby('FileName', sort=False)))
    parts = []
    for i, name in enumerate(names):
        parts.append(by[fl.FileName[i % len(fl)] + '.avi'].assign(FileName=name + '.avi'))
        s, d = src/'Videos'/f'{fl.FileName[i % len(fl)]}.avi', dest/'Videos'/f'{name}.avi'
        try: os.link(s, d)
        except OSError: shutil.copy(s, d)
    t = pd.concat(parts, ignore_index=True)
    if shuffle: t = t.iloc[rng.permutation(len(t))]
    big.to_csv(dest/'FileList.csv', index=False, float_format='%.8f')
    t.to_csv(dest/'VolumeTracings.csv', index=False, float_format='%.8f')
    return dest


def test_the_sample_row_for_row(sample):
    for on_error in ('raise', 'skip'):
        d = assert_same(sample, on_error)
        assert len(d.frames) == 12 and not d.skipped


def test_many_videos_shuffled_rows(sample, tmp_path):
    root = replicate(sample, tmp_path/'many', 60)
    d = assert_same(root, 'raise')
    assert len(d.frames) == 120 and d.frames.FileName.str.startswith('0x').any()     # lower-case names sort after upper-case ones


# every defect _check_video (and read_tracings) knew, one per video: (name, how the tables and folder are changed)
def _frames_of(tr, name):
    return sorted(tr.Frame[tr.FileName == name + '.avi'].unique())

def _rows(tr, name, frame=None):
    m = tr.FileName == name + '.avi'
    return m if frame is None else m & (tr.Frame == frame)

def no_filelist_row(root, fl, tr, name): return fl[fl.FileName != name], tr
def no_video(root, fl, tr, name): (root/'Videos'/f'{name}.avi').unlink(); return fl, tr
def video_is_a_folder(root, fl, tr, name): (root/'Videos'/f'{name}.avi').unlink(); (root/'Videos'/f'{name}.avi').mkdir(); return fl, tr
def frame_at_the_end(root, fl, tr, name):
    n = int(fl.NumberOfFrames[fl.FileName == name].iloc[0])
    tr.loc[_rows(tr, name, _frames_of(tr, name)[-1]), 'Frame'] = n; return fl, tr          # frame n of n: one too far
def negative_frame(root, fl, tr, name): tr.loc[_rows(tr, name, _frames_of(tr, name)[0]), 'Frame'] = -1; return fl, tr
def two_chords(root, fl, tr, name): return fl, tr.drop(tr.index[_rows(tr, name, _frames_of(tr, name)[0])][3:])
def axis_only(root, fl, tr, name): return fl, tr.drop(tr.index[_rows(tr, name, _frames_of(tr, name)[1])][1:])
def ten_times_too_large(root, fl, tr, name):
    tr.loc[_rows(tr, name, _frames_of(tr, name)[0]), ['X1', 'Y1', 'X2', 'Y2']] *= 10; return fl, tr
def one_point_just_out(root, fl, tr, name):
    i = tr.index[_rows(tr, name)][4]; tr.loc[i, 'Y2'] = 113.5; tr.loc[tr.index[_rows(tr, name)][5], 'X1'] = -1.0; return fl, tr   # -1 is in
def _just_out(col, value):
    "One coordinate a quarter pixel beyond the pixel of slack (the frame is 112x112), another exactly on the slack's edge (still in)."
    def change(root, fl, tr, name):
        r = tr.index[_rows(tr, name)]
        tr.loc[r[6], col] = value; tr.loc[r[8], col] = 113.0 if value > 0 else -1.0; return fl, tr
    change.__name__ = f'{col}_at_{value}'
    return change
def everything_at_once(root, fl, tr, name):
    for f in (no_video, frame_at_the_end, two_chords, one_point_just_out): fl, tr = f(root, fl, tr, name)
    return fl, tr
def inf_coordinate(root, fl, tr, name): tr.loc[tr.index[_rows(tr, name)][7], 'X2'] = np.inf; return fl, tr
def half_frame(root, fl, tr, name):
    tr['Frame'] = tr.Frame.astype(float); tr.loc[_rows(tr, name, _frames_of(tr, name)[0]), 'Frame'] += 0.5; return fl, tr

DEFECTS = [no_filelist_row, no_video, video_is_a_folder, frame_at_the_end, negative_frame, two_chords, axis_only,
           ten_times_too_large, one_point_just_out, everything_at_once, inf_coordinate, half_frame,
           _just_out('X1', -1.25), _just_out('X2', 113.25), _just_out('Y1', 113.25), _just_out('Y2', -1.25)]

# and tables that are fine but unusual: three traced frames, one, two of equal area, 3 and 11 chords (other polygon lengths)
def three_frames(root, fl, tr, name):
    r = tr[_rows(tr, name, _frames_of(tr, name)[0])].assign(Frame=_frames_of(tr, name)[0] + 1)
    r[['X1', 'X2']] = r[['X1', 'X2']] * 0.9 + 5; return fl, pd.concat([tr, r])
def one_frame(root, fl, tr, name): return fl, tr[~_rows(tr, name, _frames_of(tr, name)[1])]
def equal_areas(root, fl, tr, name):
    f0, f1 = _frames_of(tr, name)
    return fl, pd.concat([tr[~_rows(tr, name, f1)], tr[_rows(tr, name, f0)].assign(Frame=f1)])
def other_chord_counts(root, fl, tr, name):
    f0, f1 = _frames_of(tr, name)
    return fl, tr.drop(tr.index[_rows(tr, name, f0)][4:]).drop(tr.index[_rows(tr, name, f1)][12:])   # 3 and 11 chords
def filelist_names_with_avi(root, fl, tr, name):
    fl.loc[fl.FileName == name, 'FileName'] = f'Videos/{name}.AVI'; return fl, tr

UNUSUAL = [three_frames, one_frame, equal_areas, other_chord_counts, filelist_names_with_avi]


def damaged(sample, dest, changes, seed=0):
    "A replicated folder with change k applied to the k-th video (in FileList order)."
    root = replicate(sample, dest, max(len(changes), 1) + 8, seed)
    fl, tr = pd.read_csv(root/'FileList.csv'), pd.read_csv(root/'VolumeTracings.csv')
    for name, change in zip(fl.FileName.tolist(), changes): fl, tr = change(root, fl, tr, name)
    fl.to_csv(root/'FileList.csv', index=False, float_format='%.8f'); tr.to_csv(root/'VolumeTracings.csv', index=False, float_format='%.8f')
    return root


@pytest.mark.parametrize('change', DEFECTS + UNUSUAL, ids=lambda f: f.__name__)
def test_each_defect_raises_or_is_skipped_as_before(sample, tmp_path, change):
    root = damaged(sample, tmp_path/'d', [change])
    old = assert_same(root, 'raise')
    assert isinstance(old, tuple) == (change in DEFECTS)                  # the defects are errors (a tuple), the unusual tables are not                 # the defects are errors, the unusual tables are not
    d = assert_same(root, 'skip')
    assert len(d.skipped) == (change in DEFECTS)


def test_every_defect_at_once_skipped_in_the_same_order(sample, tmp_path):
    root = damaged(sample, tmp_path/'d', DEFECTS + UNUSUAL, seed=1)
    assert assert_same(root, 'raise')[0] == 'DataError'                   # the first bad video in name order, as before
    d = assert_same(root, 'skip')
    assert len(d.skipped) == len(DEFECTS) and set(d.frames.Phase) == {'ED', 'ES', 'other'}


def test_polygon_area_batches_and_matches_the_old_np_dot_up_to_rounding():
    rng = np.random.default_rng(0)
    for m in (3, 4, 6, 22, 40, 41):
        polys = rng.uniform(-5, 120, (50, m, 2))
        batch = D.polygon_area(polys)
        assert batch.shape == (50,) and all(batch[i] == D.polygon_area(p) for i, p in enumerate(polys))   # one formula, batch or not
        old = np.array([REF.polygon_area(p) for p in polys])
        np.testing.assert_allclose(batch, old, rtol=1e-12, atol=1e-8)   # random polygons cancel: an absolute floor
    t = rng.uniform(0, 112, (7, 21, 4))
    np.testing.assert_array_equal(D.reference_polygon(t), np.stack([REF.reference_polygon(x) for x in t]))


def test_no_usable_frame_and_an_empty_table(sample, tmp_path):
    root = damaged(sample, tmp_path/'all', [no_video, two_chords, inf_coordinate])
    fl = pd.read_csv(root/'FileList.csv'); tr = pd.read_csv(root/'VolumeTracings.csv')
    keep = tr.FileName.isin([f + '.avi' for f in fl.FileName[:3]])
    tr[keep].to_csv(root/'VolumeTracings.csv', index=False)               # only the three bad videos are traced
    for on_error in ('raise', 'skip'):
        old = assert_same(root, on_error)
        assert isinstance(old, tuple) and (on_error == 'raise' or old[2] == 'no usable traced frames')
    tr.iloc[:0].to_csv(root/'VolumeTracings.csv', index=False)            # a header and no rows
    for on_error in ('raise', 'skip'): assert_same(root, on_error)


def test_bench_script_runs_and_finds_them_identical(capsys):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1]/'scripts'/'bench_echo_index.py'
    spec = importlib.util.spec_from_file_location('bench_echo_index', path)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    out = mod.main(['--videos', '40', '--repeat', '1'])                  # no timing asserted: the two agree, and it says so
    assert (out['videos'], out['rows'], out['same']) == (40, 40 * 42, True) and 'identical: True' in capsys.readouterr().out
