"Full-scale building blocks of `medrepro.data`: parallel decoding gives the serial arrays, bad items, memory-mapped caches."
import sys
import numpy as np, pytest
from PIL import Image
from medrepro.core import DataError
from medrepro.data import BadItems, memmap_cache, parallel_map, RunningStats, item_chunks


def _decode(path):
    "A real decode: a PNG file to a uint8 array (what the ISIC/DSB caches do per item)."
    try:
        with Image.open(path) as im: return np.asarray(im.convert('RGB'))
    except OSError as e: raise DataError(path, f'not a readable image ({e})') from None


@pytest.fixture
def pngs(tmp_path):
    rng = np.random.default_rng(0)
    files = []
    for i in range(12):
        f = tmp_path/f'img{i:02d}.png'
        Image.fromarray(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)).save(f); files.append(f)
    return files


def test_parallel_cache_is_serial_cache(pngs, tmp_path):
    serial = memmap_cache(tmp_path/'serial', 'img', pngs, (16, 20, 3), np.uint8, _decode, workers=1, progress=False)
    pooled = memmap_cache(tmp_path/'pooled', 'img', pngs, (16, 20, 3), np.uint8, _decode, workers=2, progress=False)
    assert isinstance(pooled, np.memmap) and pooled.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(serial), np.asarray(pooled))
    np.testing.assert_array_equal(np.asarray(pooled[5]), _decode(pngs[5]))
    assert pooled.ok.all()


def test_bad_item_skipped_or_fatal(pngs, tmp_path):
    pngs[3].write_bytes(pngs[3].read_bytes()[:40])              # a truncated file
    bad = BadItems('skip')
    arr = memmap_cache(tmp_path/'c', 'img', pngs, (16, 20, 3), np.uint8, _decode, workers=2, bad=bad, progress=False)
    assert arr.ok.tolist() == [i != 3 for i in range(12)]
    assert [n for n, _ in bad.items] == [str(pngs[3])] and 'img03.png' in bad.items[0][1]
    bad.save(tmp_path/'bad_items.csv'); assert 'img03.png' in (tmp_path/'bad_items.csv').read_text()
    with pytest.raises(DataError, match='img03.png'):
        memmap_cache(tmp_path/'d', 'img', pngs, (16, 20, 3), np.uint8, _decode, workers=2, progress=False)
    assert not list((tmp_path/'d').glob('img-*')), 'a failed build leaves no cache files'


def test_cache_reused_and_stale_removed(pngs, tmp_path):
    calls = tmp_path/'calls'
    def counting(p):
        with open(calls, 'a') as f: f.write('x')
        return _decode(p)
    memmap_cache(tmp_path/'c', 'img', pngs, (16, 20, 3), np.uint8, counting, workers=1, progress=False)
    memmap_cache(tmp_path/'c', 'img', pngs, (16, 20, 3), np.uint8, counting, workers=1, progress=False)
    assert len(calls.read_text()) == 12, 'the second call reads the cache'
    memmap_cache(tmp_path/'c', 'img', pngs[:6], (16, 20, 3), np.uint8, counting, workers=1, progress=False)
    assert len(list((tmp_path/'c').glob('img-*.x.npy'))) == 1, 'the older entry of the tag is removed'


def test_parallel_map_order_and_running_stats():
    out = parallel_map(np.sqrt, [float(i) for i in range(40)], workers=2, progress=False)
    assert out == [np.sqrt(float(i)) for i in range(40)]
    x = np.random.default_rng(1).integers(0, 256, (30, 3, 8, 8)).astype(np.uint8)
    rs = RunningStats((0, 2, 3))
    for chunk in np.array_split(x, 4): rs.update(chunk)
    np.testing.assert_allclose(rs.mean, x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(rs.std, x.astype(np.float64).std(axis=(0, 2, 3)), rtol=1e-12)


def test_item_chunks_cover_in_order_and_keep_groups():
    for n, w in ((1, 2), (7, 2), (400, 2), (1000, 16)):
        c = item_chunks(n, w)
        assert [i for a, b in c for i in range(a, b)] == list(range(n)) and c[-1][1] - c[-1][0] == 1
        assert len(c) <= n and (n < 100 or len(c) < n / 3), 'few tasks for many items'
    g = [i // 2 for i in range(41)]
    assert all(g[a] != g[a - 1] for a, b in item_chunks(41, 2, g) if a)


class _Memo:
    "A fill that, like EchoNet's, decodes a group's source once per process for its consecutive items (and logs each decode)."
    def __init__(self, log): self.log, self.last = log, None
    def __call__(self, item):
        g, k = item
        if self.last != g:
            with open(self.log, 'a') as f: f.write(f'{g}\n')
            self.last = g
        return np.full((2, 3), 10 * g + k, np.uint8)


def test_groups_go_to_one_worker(tmp_path):
    items = [(i // 2, i % 2) for i in range(40)]                                 # 20 videos of two traced frames
    groups = [g for g, _ in items]
    ser = memmap_cache(tmp_path/'s', 't', items, (2, 3), np.uint8, _Memo(tmp_path/'s.log'), workers=1, progress=False)
    par = memmap_cache(tmp_path/'p', 't', items, (2, 3), np.uint8, _Memo(tmp_path/'p.log'), workers=2, progress=False, groups=groups)
    np.testing.assert_array_equal(np.asarray(ser), np.asarray(par))
    assert sorted((tmp_path/'p.log').read_text().split()) == sorted((tmp_path/'s.log').read_text().split()), 'each group decoded once'


def test_chunked_bad_items_in_order(pngs, tmp_path):
    for i in (2, 9): pngs[i].write_bytes(b'not a png')
    bad = BadItems('skip')
    out = parallel_map(_decode, pngs, workers=2, progress=False, bad=bad, chunks=True)
    assert [o is None for o in out] == [i in (2, 9) for i in range(12)]
    assert [n for n, _ in bad.items] == [str(pngs[2]), str(pngs[9])]
    with pytest.raises(DataError, match='img02.png'): parallel_map(_decode, pngs, workers=2, progress=False, chunks=True)


def test_parallel_cache_largest_first_keeps_rows_and_order(tmp_path):
    "With files of very different sizes the pool takes the largest first; rows, `.ok` and the bad list stay in item order."
    from medrepro.data import _item_bytes
    rng = np.random.default_rng(1)
    files = []
    for i in range(10):                                   # noise compresses badly, flat images well: sizes differ ~100x
        a = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) if i % 3 == 2 else np.full((40, 50, 3), i * 20, np.uint8)
        f = tmp_path/f'img{i:02d}.png'; Image.fromarray(a).save(f); files.append(f)
    sizes = _item_bytes(files)
    assert max(sizes) > 10 * min(sizes) and np.argmax(sizes) != 0   # the big files are not already first
    for i in (4, 7): files[i].write_bytes(b'not a png')
    b1, b2 = BadItems('skip'), BadItems('skip')
    serial = memmap_cache(tmp_path/'s', 'img', files, (40, 50, 3), np.uint8, _decode, workers=1, bad=b1, progress=False)
    pooled = memmap_cache(tmp_path/'p', 'img', files, (40, 50, 3), np.uint8, _decode, workers=2, bad=b2, progress=False)
    np.testing.assert_array_equal(np.asarray(serial), np.asarray(pooled))
    np.testing.assert_array_equal(np.asarray(pooled[3]), _decode(files[3]))
    assert pooled.ok.tolist() == [i not in (4, 7) for i in range(10)] == serial.ok.tolist()
    assert [n for n, _ in b2.items] == [str(files[4]), str(files[7])] == [n for n, _ in b1.items]
    assert _item_bytes([('a', 'b')]) is None               # no files named: no order to change


_PINNED = []

def _fragment(i):
    "Heap blocks (64 KiB, under glibc's mmap threshold) freed but for every 50th, which stays: this worker's RSS at entry."
    import os, psutil
    rss = psutil.Process().memory_info().rss
    blocks = [bytearray(64 * 1024) for _ in range(2000)]
    _PINNED.append(blocks[::50]); del blocks
    return os.getpid(), rss


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason="malloc_trim is glibc's")
def test_worker_memory_does_not_creep_between_tasks():
    "Each task's freed heap goes back to the system: a worker's later items start where its first did (not ~125 MB higher)."
    from medrepro.data import _trim_heap
    if not _trim_heap(): pytest.skip('no malloc_trim in this C library')
    seen = {}
    for pid, rss in parallel_map(_fragment, range(6), workers=2): seen.setdefault(pid, []).append(rss)
    assert any(len(v) > 1 for v in seen.values())
    for v in seen.values(): assert max(v[1:], default=v[0]) - v[0] < 40 * 2**20, [r / 2**20 for r in v]


def test_byte_sums_exact_past_float32_counts():
    "OpenCV counts in float32 (exact to 2**24): a bin holding more than that must still sum exactly."
    from medrepro.data import _byte_sums
    n = 2**24 + 3                                                  # as float32, 2**24 + 3 rounds to 2**24 + 4
    s, ss = _byte_sums(np.full((n, 1), 255, np.uint8), (0,))
    assert s[0] == 255 * n and ss[0] == 255**2 * n
