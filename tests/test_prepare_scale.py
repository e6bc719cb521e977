"Each study's `prepare` (issue 23): the paper profile's cache, built in parallel, holds exactly the serial path's arrays."
import warnings
import numpy as np, pytest
from medrepro.sample import generate
from medrepro.dsb.data import prepare as dsb_prepare, dsb_items, load_set, cached_pairs
from medrepro.echonet.data import prepare as echo_prepare, echo_index, traced_arrays

PRM = dict(img_size=32, interp='linear', soft_masks=True)


def _same(a, b, keys):
    for k in keys: np.testing.assert_array_equal(np.asarray(a['cache'][k]), np.asarray(b['cache'][k]))


@pytest.fixture(scope='module')
def dsb(tmp_path_factory):
    return generate('dsb2018', tmp_path_factory.mktemp('dsb')/'dsb2018', n=10, seed=1)


@pytest.fixture(scope='module')
def echo(tmp_path_factory):
    return generate('echonet', tmp_path_factory.mktemp('echo')/'echonet', n=9, seed=3)


def test_dsb_prepare_serial_is_parallel_is_load_set(dsb, tmp_path):
    ser, par = (dsb_prepare(dsb, tmp_path/f'c{w}', PRM, workers=w) for w in (1, 2))
    _same(ser, par, ('x', 'y'))
    ref = load_set(dsb_items(dsb), 32, interp='linear', soft=True)             # the notebooks' loader: the same rows
    np.testing.assert_array_equal(np.asarray(par['cache']['x']), ref.x); np.testing.assert_array_equal(np.asarray(par['cache']['y']), ref.y)
    assert par['items'] == 10 and par['bad'] == [] and par['cache_bytes'] > 10 * 32 * 32 * 4
    assert isinstance(par['cache']['x'], np.memmap) and par['cache']['x'].ok.all()


def test_dsb_prepare_skips_a_bad_image_under_paper(dsb, tmp_path, scratch_copy):
    d = scratch_copy(dsb)
    img = dsb_items(d)[4].image; img.write_bytes(img.read_bytes()[:50])
    out = dsb_prepare(d, tmp_path/'c', dict(PRM, bad_items='skip'), workers=2)
    assert [b for b, _ in out['bad']] == [str(dsb_items(d)[4])] and img.name in out['bad'][0][1]
    assert out['cache']['x'].ok.tolist() == [i != 4 for i in range(10)]
    with pytest.raises(Exception, match=img.name): dsb_prepare(d, tmp_path/'d', dict(PRM, bad_items='raise'), workers=2)


def test_dsb_prepare_on_real_kaggle_files(shared_data, tmp_path):
    "Real stage-1 images (sizes 256x256 to 1388x1040, a PNG per nucleus): the pool's cache is the serial one."
    items = dsb_items(shared_data/'dsb2018')[:12]
    ser, par = (cached_pairs(items, 64, 'linear', True, tmp_path/f'c{w}', workers=w, progress=False) for w in (1, 2))
    for k in ('x', 'y'): np.testing.assert_array_equal(np.asarray(ser[k]), np.asarray(par[k]))
    assert par['y'].max() == 255 and 0 < (np.asarray(par['y']) > 127).mean() < 0.9


def test_echonet_prepare_serial_is_parallel_and_the_loader_reads_it(echo, tmp_path):
    ser, par = (echo_prepare(echo, tmp_path/f'c{w}', dict(img_size=32, mask_method='centroid'), workers=w) for w in (1, 2))
    _same(ser, par, ('x', 'y', 'ok'))
    assert par['items'] == 9 and par['frames'] == 18 and par['bad'] == []
    arr = traced_arrays(echo_index(echo), 32, 'centroid', tmp_path/'c2')     # the notebooks' loader finds the same cache
    assert arr['x'].filename == par['cache']['x'].filename
    assert par['cache_bytes'] == 2 * (18 * 32 * 32 + 128)                    # two uint8 .npy files, headers included


def test_echonet_prepare_skips_a_truncated_video(echo, tmp_path, scratch_copy):
    d = scratch_copy(echo)
    v = sorted((d/'Videos').glob('*.avi'))[2]; v.write_bytes(v.read_bytes()[:v.stat().st_size // 4])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ser, par = (echo_prepare(d, tmp_path/f'c{w}', dict(img_size=32), workers=w) for w in (1, 2))
    _same(ser, par, ('x', 'y', 'ok'))
    assert {b.split(':')[0] for b, _ in par['bad']} == {v.stem} and int((~par['cache']['ok']).sum()) == len(par['bad'])
