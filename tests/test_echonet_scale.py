"""EchoNet at full scale (issue 23): decoding stops at the last traced frame, tracings looked up through one groupby, a bad
video skipped and listed under `skip` and fatal under `raise`, the parallel cache identical to the serial one."""
import warnings
import numpy as np, pandas as pd
import pytest
from medrepro.core import DataError
from medrepro.data import BadItems
from medrepro.sample import generate
from medrepro.echonet import data as D


@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    return generate('echonet', tmp_path_factory.mktemp('echo')/'echonet', n=6, seed=3)


@pytest.fixture
def cut(sample, scratch_copy):
    "A copy of the sample with its first video truncated to a third of its bytes; returns (folder, video name)."
    p = scratch_copy(sample)
    v = sorted((p/'Videos').glob('*.avi'))[0]
    v.write_bytes(v.read_bytes()[:v.stat().st_size // 3])
    return p, v.stem


def test_read_video_stops_at_the_last_frame_needed(sample):
    d = D.echo_index(sample)
    r = d.frames.iloc[0]
    full = D.read_video(d.video_path(r.FileName))
    part = D.read_video(d.video_path(r.FileName), n_expected=r.NumberOfFrames, last=int(r.Frame))
    assert len(part) == int(r.Frame) + 1 < len(full)
    np.testing.assert_array_equal(part, full[:len(part)])
    with pytest.raises(DataError, match=rf'{r.FileName}\.avi: video truncated: decoded {len(full)} frames, frame {len(full) + 5} is needed'):
        D.read_video(d.video_path(r.FileName), last=len(full) + 5)


def test_coords_through_one_groupby_equal_the_scan():
    rng = np.random.default_rng(0)
    names = np.repeat([f'v{i}' for i in range(300)], 42); frames = np.tile(np.repeat([3, 9], 21), 300)
    tr = pd.DataFrame(dict(FileName=names, X1=rng.random(len(names)), Y1=rng.random(len(names)), X2=rng.random(len(names)),
                           Y2=rng.random(len(names)), Frame=frames)).sample(frac=1, random_state=0).reset_index(drop=True)   # rows in any order
    d = D.EchoData('.', pd.DataFrame(), tr, pd.DataFrame())
    for n, f in [('v0', 3), ('v17', 9), ('v299', 3)]:
        np.testing.assert_array_equal(d.coords(n, f), tr[(tr.FileName == n) & (tr.Frame == f)][['X1', 'Y1', 'X2', 'Y2']].to_numpy(float))
    assert d.coords('v0', 4).shape == (0, 4) and d.coords('nope', 3).shape == (0, 4)


def test_truncated_video_is_fatal_under_raise(cut):
    p, name = cut
    with pytest.raises(DataError, match=rf'{name}\.avi: (video truncated|unreadable video)'):
        D.traced_data(p, 32, cache_dir=None, bad_items='raise')


def test_truncated_video_is_skipped_and_listed_under_skip(cut, tmp_path):
    p, name = cut
    with pytest.warns(UserWarning, match=r'skipped 1 unreadable video\(s\)'):
        d, a, bad = D.traced_data(p, 32, cache_dir=tmp_path/'cache', bad_items='skip', report=tmp_path/'bad.csv')
    assert set(d.frames.FileName[~a['ok']]) == {name} and a['ok'].sum() == len(d.frames) - 2
    rep = pd.read_csv(tmp_path/'bad.csv')
    assert list(rep.columns) == ['item', 'problem'] and len(rep) == 2 and rep.item.str.startswith(name).all()
    assert rep.problem.str.contains(f'{name}.avi', regex=False).all()
    assert (a['x'][~a['ok']] == 0).all() and (a['x'][a['ok']].reshape(int(a['ok'].sum()), -1).max(1) > 0).all()
    # the cache remembers what it skipped: a second run lists the same items without decoding again
    bad2 = BadItems('skip')
    b = D.traced_arrays(d, 32, cache_dir=tmp_path/'cache', bad=bad2)
    assert bad2.items == bad.items and np.array_equal(b['ok'], a['ok'])


def test_parallel_cache_is_identical_to_serial(cut, tmp_path):
    p, _ = cut
    d = D.echo_index(p)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        s = D.traced_arrays(d, 48, cache_dir=tmp_path/'serial', on_error='skip', workers=1)
        q = D.traced_arrays(d, 48, cache_dir=tmp_path/'parallel', on_error='skip', workers=2)
    for k in ('x', 'y', 'ok'): np.testing.assert_array_equal(np.asarray(s[k]), np.asarray(q[k]))
    assert isinstance(q['x'], np.memmap) and s['ok'].sum() == len(d.frames) - 2


def test_cache_is_reused_and_rebuilt_when_a_video_changes(sample, scratch_copy, tmp_path, monkeypatch):
    p = scratch_copy(sample)
    d = D.echo_index(p)
    a = D.traced_arrays(d, 32, cache_dir=tmp_path/'c')
    def no_decode(*a, **k): raise AssertionError('decoded again')
    monkeypatch.setattr(D, 'read_video', no_decode)
    b = D.traced_arrays(d, 32, cache_dir=tmp_path/'c')            # from the cache: nothing decoded
    np.testing.assert_array_equal(a['x'], b['x'])
    monkeypatch.undo()
    v = sorted((p/'Videos').glob('*.avi'))[1]; D.write_video(v, np.zeros((60, 112, 112), np.uint8))
    c = D.traced_arrays(D.echo_index(p), 32, cache_dir=tmp_path/'c')  # a changed video: a new entry, the stale one removed
    assert not np.array_equal(a['x'], c['x']) and len(list((tmp_path/'c').glob('*.x.npy'))) == 1
