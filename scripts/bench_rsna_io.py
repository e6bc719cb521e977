#!/usr/bin/env python
"""RSNA I/O benchmark: reading a CT study (default 300 slices of 512x512) with plain serial pydicom versus
`medrepro.rsna.dicom.read_series` (thread pool, or process pool), uncompressed and JPEG 2000, plus the peak memory of
`preprocess_series` on one study. Prints figures; it asserts nothing about timings.

    .venv/bin/python scripts/bench_rsna_io.py                       # 300 x 512 x 512, none + j2k
    .venv/bin/python scripts/bench_rsna_io.py --slices 100 --size 256 --compress none,j2k,rle --workers 1,2,4
"""
import argparse, os, subprocess, sys, tempfile, time, tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom

from medrepro.rsna.data import NeckPhantom, write_study
from medrepro.rsna.dicom import preprocess_series, read_series


def plain_pydicom(folder):
    "The baseline: serial dcmread + pixel_array + rescale, sorted by ImagePositionPatient z (head first)."
    dss = [pydicom.dcmread(f) for f in sorted(Path(folder).glob('*.dcm'))]
    dss.sort(key=lambda d: -float(d.ImagePositionPatient[2]))
    return np.stack([d.pixel_array.astype(np.float32)*float(d.RescaleSlope) + float(d.RescaleIntercept) for d in dss])


def best_of(fn, repeat):
    ts, out = [], None
    for _ in range(repeat):
        t = time.perf_counter(); out = fn(); ts.append(time.perf_counter() - t)
    return min(ts), out


_CHILD = r"""
import sys, time, numpy as np
from medrepro.rsna.dicom import preprocess_series, read_series
import torch, torch.nn.functional              # imported up front so the baseline includes the libraries
def status(key):                               # kB, from /proc (ru_maxrss would include the parent's RSS at fork)
    for line in open('/proc/self/status'):
        if line.startswith(key): return int(line.split()[1])
base = status('VmRSS')
open('/proc/self/clear_refs', 'w').write('5')  # reset the peak (VmHWM) to the current RSS
t = time.perf_counter()
x = preprocess_series(sys.argv[1], depth=int(sys.argv[2]), size=int(sys.argv[3]))
dt = time.perf_counter() - t
print(base, status('VmHWM'), dt, *x.shape)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--slices', type=int, default=300)
    ap.add_argument('--size', type=int, default=512)
    ap.add_argument('--compress', default='none,j2k', help='comma list of none, j2k, rle')
    ap.add_argument('--workers', default='1,0', help='comma list of read_series workers (0: its default)')
    ap.add_argument('--executors', default='thread,process', help="read_series executors: thread (default), process")
    ap.add_argument('--repeat', type=int, default=2)
    ap.add_argument('--depth', type=int, default=64, help='preprocess_series depth for the memory measurement')
    ap.add_argument('--out-size', type=int, default=128, help='preprocess_series size for the memory measurement')
    ap.add_argument('--tmp', default=None, help='where to write the generated studies (default: system temp)')
    a = ap.parse_args()
    n, cpus = a.slices, os.cpu_count()
    print(f'# RSNA I/O benchmark: {n} slices of {a.size}x{a.size}, {cpus} CPUs, pydicom {pydicom.__version__}, '
          f'best of {a.repeat}; files were just written, so both readers read from the page cache')
    rows = []
    with tempfile.TemporaryDirectory(dir=a.tmp) as tmp:
        for comp in a.compress.split(','):
            folder = Path(tmp)/comp
            t = time.perf_counter()
            write_study(folder, NeckPhantom(size=a.size, n_slices=n, fractures=('C5',), seed=0), '1.2.826.0.1.3680043.8.498.77',
                        compress=comp, reverse=True)
            mb = sum(f.stat().st_size for f in folder.iterdir())/1e6
            print(f'generated {comp}: {mb:.0f} MB in {time.perf_counter() - t:.1f}s')
            tb, ref = best_of(lambda: plain_pydicom(folder), a.repeat)
            rows.append(dict(compression=comp, reader='plain pydicom, serial', workers=1, seconds=tb, slices_per_s=n/tb, speedup=1.0))
            for ex in a.executors.split(','):
                for w in [int(x) for x in a.workers.split(',')]:
                    nw = w or None                 # 0: read_series' own choice (threads only for files of 256 KB or more)
                    if ex == 'process' and nw == 1: continue
                    ts, s = best_of(lambda: read_series(folder, workers=nw, executor=None if ex == 'thread' and nw is None else ex), a.repeat)
                    assert np.array_equal(s.hu.astype(np.float32), ref), 'read_series and plain pydicom disagree'
                    rows.append(dict(compression=comp, reader=f'read_series ({ex})', workers=nw or 'auto', seconds=ts, slices_per_s=n/ts, speedup=tb/ts))
            del ref, s
        df = pd.DataFrame(rows)
        print()
        print(df.to_string(index=False, float_format=lambda v: f'{v:.2f}'))
        for comp, g in df.groupby('compression', sort=False):
            best = g[g.reader.str.startswith('read_series')].slices_per_s.max()
            print(f'{comp}: read_series (best) {best:.0f} slices/s vs plain pydicom {g.slices_per_s.iloc[0]:.0f} slices/s '
                  f'-> x{best/g.slices_per_s.iloc[0]:.2f}')

        # peak memory of preprocessing one study
        folder = Path(tmp)/a.compress.split(',')[-1]
        print(f'\n# peak memory of preprocess_series({n}x{a.size}x{a.size} -> 3x{a.depth}x{a.out_size}x{a.out_size}), '
              f'HU volume itself: {n*a.size*a.size*2/2**20:.0f} MiB as int16')
        r = subprocess.run([sys.executable, '-c', _CHILD, str(folder), str(a.depth), str(a.out_size)], capture_output=True, text=True)
        if r.returncode: print(r.stderr[-2000:]); sys.exit(r.returncode)
        base, peak, dt, *shape = r.stdout.split()[-7:]
        print(f'/proc VmHWM (fresh process): peak RSS {int(peak)/1024:.0f} MiB, of which imports {int(base)/1024:.0f} MiB '
              f'-> preprocessing added {(int(peak) - int(base))/1024:.0f} MiB; {float(dt):.1f}s; output {tuple(map(int, shape))}')
        tracemalloc.start()
        preprocess_series(folder, depth=a.depth, size=a.out_size)
        cur, pk = tracemalloc.get_traced_memory(); tracemalloc.stop()
        print(f'tracemalloc (numpy/python allocations; torch buffers are not traced): peak {pk/2**20:.0f} MiB')


if __name__ == '__main__':
    main()
