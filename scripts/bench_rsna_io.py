#!/usr/bin/env python
"""RSNA I/O benchmark: a 200-slice JPEG 2000 series made from the real sample `../shared/data/ct_series_j2k` (its 20
slices of 512x512 repeated at new positions, pixel data untouched), read with a plain serial pydicom loop and with
`medrepro.rsna.dicom.read_series` as it decodes by default (it picks a process pool by itself for a series this
large when the machine has more than one core), serially, and with threads. Prints figures; asserts only that every
reader returns the same HU.

    .venv/bin/python scripts/bench_rsna_io.py                          # 200 slices, best of 2
    .venv/bin/python scripts/bench_rsna_io.py --slices 300 --repeat 3 --real ../shared/data/ct_series_j2k
    .venv/bin/python scripts/bench_rsna_io.py --memory                 # also the peak memory of preprocess_series
"""
import argparse, os, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from pydicom.uid import generate_uid

from medrepro.rsna.dicom import AUTO_PROCESS_PIXELS, read_series

ROOT = Path(__file__).resolve().parents[1]


def make_series(real, dest, n):
    "`n` slices from the real series' files, in order, each at its own z (header edits only: the J2K bytes are copied)."
    src = sorted(Path(real).iterdir(), key=lambda f: -float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]))
    dest.mkdir(parents=True, exist_ok=True)
    ds0 = pydicom.dcmread(src[0], stop_before_pixels=True)
    z0, dz, series = float(ds0.ImagePositionPatient[2]), float(ds0.get('SliceThickness') or 1.0), generate_uid()
    for k in range(n):
        ds = pydicom.dcmread(src[k % len(src)])
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], round(z0 - k*dz, 3)]
        ds.InstanceNumber, ds.SeriesInstanceUID = k + 1, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(dest/f'{k + 1}.dcm')
    return dest


def plain_pydicom(folder):
    "The baseline: serial dcmread + pixel_array + rescale, sorted by ImagePositionPatient z (head first)."
    dss = [pydicom.dcmread(f) for f in Path(folder).glob('*.dcm')]
    dss.sort(key=lambda d: -float(d.ImagePositionPatient[2]))
    return np.stack([d.pixel_array.astype(np.float32)*float(d.RescaleSlope) + float(d.RescaleIntercept) for d in dss])


def best_of(fn, repeat):
    ts, out = [], None
    for _ in range(repeat):
        t = time.perf_counter(); out = fn(); ts.append(time.perf_counter() - t)
    return min(ts), out


_CHILD = r"""
import sys, time
from medrepro.rsna.dicom import preprocess_series
import torch, torch.nn.functional              # imported up front so the baseline includes the libraries
def status(key):                               # kB, from /proc
    for line in open('/proc/self/status'):
        if line.startswith(key): return int(line.split()[1])
base = status('VmRSS')
open('/proc/self/clear_refs', 'w').write('5')  # reset the peak (VmHWM) to the current RSS
t = time.perf_counter()
x = preprocess_series(sys.argv[1], depth=64, size=128)
print(base, status('VmHWM'), time.perf_counter() - t)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--real', default=str(ROOT.parent/'shared'/'data'/'ct_series_j2k'), help='the real J2K series to build from')
    ap.add_argument('--slices', type=int, default=200)
    ap.add_argument('--repeat', type=int, default=2)
    ap.add_argument('--workers', type=int, default=2, help='threads for the thread-pool row')
    ap.add_argument('--memory', action='store_true', help='also measure the peak memory of preprocess_series')
    a = ap.parse_args()
    if not Path(a.real).is_dir(): sys.exit(f'no real series at {a.real} (see --real)')
    n, cpus = a.slices, os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_series(a.real, Path(tmp)/'j2k', n)
        mb = sum(f.stat().st_size for f in folder.iterdir())/1e6
        print(f'# {n} JPEG 2000 slices of 512x512 ({mb:.0f} MB) from {a.real}; {cpus} CPUs; pydicom {pydicom.__version__}; '
              f'best of {a.repeat}; read_series uses processes by itself from {AUTO_PROCESS_PIXELS/512**2:.0f} slices of 512x512')
        tb, ref = best_of(lambda: plain_pydicom(folder), a.repeat)
        rows = [dict(reader='plain pydicom loop (serial)', decoder='serial', seconds=tb)]
        for label, kw in [('read_series() default', {}), ("read_series(executor='serial')", dict(executor='serial')),
                          (f"read_series(executor='process', workers={a.workers})", dict(executor='process', workers=a.workers)),
                          (f"read_series(executor='thread', workers={a.workers})", dict(executor='thread', workers=a.workers))]:
            ts, s = best_of(lambda: read_series(folder, **kw), a.repeat)
            assert np.array_equal(s.hu.astype(np.float32), ref), f'{label} and plain pydicom disagree'
            rows.append(dict(reader=label, decoder=s.meta['decoder'], seconds=ts))
        df = pd.DataFrame(rows)
        df['slices_per_s'], df['speedup'] = n/df.seconds, tb/df.seconds
        print(df.to_string(index=False, float_format=lambda v: f'{v:.2f}'))
        d = df.iloc[1]
        print(f'\nserial pydicom {tb:.2f}s vs read_series default ({d.decoder}) {d.seconds:.2f}s: x{d.speedup:.2f}; '
              f'1-minute load average {os.getloadavg()[0]:.1f} on {cpus} CPUs (the default uses processes only when 2 or more are idle)')
        if a.memory:
            r = subprocess.run([sys.executable, '-c', _CHILD, str(folder)], capture_output=True, text=True)
            if r.returncode: print(r.stderr[-2000:]); sys.exit(r.returncode)
            base, peak, dt = r.stdout.split()[-3:]
            print(f'preprocess_series -> 3x64x128x128: peak RSS {int(peak)/1024:.0f} MiB ({(int(peak) - int(base))/1024:.0f} MiB '
                  f'above the imports), {float(dt):.1f}s')


if __name__ == '__main__':
    main()
