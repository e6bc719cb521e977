#!/usr/bin/env python
"""RSNA I/O benchmark: a 200-slice JPEG 2000 series made from the real sample `../shared/data/ct_series_j2k` (its 20
slices of 512x512 repeated at new positions, pixel data untouched), read with a plain serial pydicom loop and with
`medrepro.rsna.dicom.read_series` as it decodes by default (it picks a process pool by itself for a series this
large when the machine has more than one core), serially, and with threads. Prints figures; asserts only that every
reader returns the same HU.

    .venv/bin/python scripts/bench_rsna_io.py                          # 200 slices, best of 2
    .venv/bin/python scripts/bench_rsna_io.py --slices 300 --repeat 3 --real ../shared/data/ct_series_j2k
    .venv/bin/python scripts/bench_rsna_io.py --memory                 # also the peak memory of preprocess_series
    .venv/bin/python scripts/bench_rsna_io.py --studies 8              # the input caches of notebook 16 at the paper's sizes:
                                                                       # serial vs parallel build (identical), bytes per study,
                                                                       # x 2,019 studies, peak RSS reading 1, 4 and all studies
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


_RSS_CHILD = r"""
import sys, resource, numpy as np
from medrepro.rsna.preprocess import load_inputs
root, cache, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
import pandas as pd
uids = pd.read_csv(root + '/train.csv')['StudyInstanceUID'].astype(str).tolist()[:n]
kw = eval(sys.argv[4])
for r in ('hu', 'jpg'):                        # what notebook 16 does: both routes' references, then an epoch's reads
    seq, crops, _ = load_inputs(root, uids, cache, route=r, workers=1, **kw)
    for i in range(len(crops)): seq['C1'][i].mean(); crops[i].mean()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def bench_studies(n, workers):
    "Notebook 16's input caches at the paper's sizes on `n` generated studies: serial and parallel builds (identical), bytes, peak RSS."
    from medrepro.data import n_workers
    from medrepro.report import profile_params
    from medrepro.rsna.sample import write_sample
    from medrepro.rsna.preprocess import load_inputs, inputs_max_bytes
    p = profile_params('paper', '16_rsna.train.ipynb')
    kw = {k: p[k] for k in ('n_slices', 'img_size', 'crop_size', 'slice_limits')}
    w = n_workers(workers)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_sample(Path(tmp)/'rsna', n=n, seed=0)
        times, out = {}, {}
        for label, nw in (('serial', 1), (f'parallel ({w} workers)', w)):
            t = time.perf_counter()
            out[label] = load_inputs(root, pd.read_csv(root/'train.csv')['StudyInstanceUID'].astype(str).tolist(), Path(tmp)/label, workers=nw, **kw)
            times[label] = time.perf_counter() - t
        (sa, ca, _), (sb, cb, _) = out.values()
        same = all(np.array_equal(ca.raw(i), cb.raw(i)) and all(np.array_equal(sa[v].raw(i), sb[v].raw(i)) for v in sa) for i in range(len(ca)))
        assert same, 'serial and parallel caches differ'
        nbytes = sum(f.stat().st_size for f in (Path(tmp)/'serial'/'rsna_inputs').iterdir())
        ts, tp = times.values()
        print(f'# notebook 16 inputs, paper sizes ({kw["img_size"]} px, {sum(kw["slice_limits"].values())} picks per study), {n} generated studies, both routes from one read')
        print(f'serial {ts:.1f}s ({n / ts:.2f} studies/s), parallel {tp:.1f}s ({n / tp:.2f} studies/s): x{ts / tp:.2f}, identical arrays')
        print(f'cache {nbytes / 1e6:.1f} MB: {nbytes / n / 1e6:.1f} MB per study here (repeated picks stored once), at most '
              f'{inputs_max_bytes(**kw) / 1e6:.1f} MB; x 2,019 studies: {nbytes / n * 2019 / 1e9:.1f} GB here, at most {inputs_max_bytes(**kw) * 2019 / 1e9:.0f} GB')
        for k in sorted({1, min(4, n), n}):
            r = subprocess.run([sys.executable, '-c', _RSS_CHILD, str(root), str(Path(tmp)/'serial'), str(k), repr(kw)], capture_output=True, text=True)
            if r.returncode: print(r.stderr[-2000:]); sys.exit(r.returncode)
            print(f'peak RSS reading {k} studies (both routes, one pass): {int(r.stdout.split()[-1]) / 1024:.0f} MiB')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--real', default=str(ROOT.parent/'shared'/'data'/'ct_series_j2k'), help='the real J2K series to build from')
    ap.add_argument('--slices', type=int, default=200)
    ap.add_argument('--repeat', type=int, default=2)
    ap.add_argument('--workers', type=int, default=2, help='threads for the thread-pool row')
    ap.add_argument('--memory', action='store_true', help='also measure the peak memory of preprocess_series')
    ap.add_argument('--studies', type=int, help="instead: notebook 16's input caches on this many generated studies")
    a = ap.parse_args()
    if a.studies: return bench_studies(a.studies, None)
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
