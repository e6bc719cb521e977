"""EchoNet index at the real set's size: `echo_index` (whole arrays) against the per-video pandas loops it replaced
(tests/echonet_index_reference.py), in the same run, on the same synthetic folder; the two results must be identical (areas up to rounding in the last bits).

The folder repeats the sample set's FileList rows and tracings under new names, to the real set's 10,030 videos (about
421,000 tracing rows: two traced frames of 21 rows each); each video is a hard link to a sample video (a copy where
links fail). The index never opens a video: it only asks whether each AVI exists, so the links cost nothing.

    .venv/bin/python scripts/bench_echo_index.py [--videos 10030] [--repeat 3] [--skip-old]
"""
import argparse, os, shutil, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np, pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tests'))                     # the frozen reference implementation lives beside its test
from medrepro.data import dataset_path
from medrepro.echonet.data import echo_index
import echonet_index_reference as ref                      # noqa: E402


def write_folder(src, dest, n):
    "`n` videos: FileList rows and tracings of the sample's videos in turn, under new names; videos hard-linked."
    fl, tr = pd.read_csv(src/'FileList.csv'), pd.read_csv(src/'VolumeTracings.csv')
    (dest/'Videos').mkdir(parents=True)
    names = [f'0X{i:016X}' for i in range(n)]
    big = fl.iloc[np.arange(n) % len(fl)].copy(); big['FileName'] = names
    by = dict(list(tr.groupby('FileName', sort=False)))
    parts = []
    for i, name in enumerate(names):
        old = fl.FileName[i % len(fl)]
        parts.append(by[old + '.avi'].assign(FileName=name + '.avi'))
        try: os.link(src/'Videos'/f'{old}.avi', dest/'Videos'/f'{name}.avi')
        except OSError: shutil.copy(src/'Videos'/f'{old}.avi', dest/'Videos'/f'{name}.avi')
    big.to_csv(dest/'FileList.csv', index=False, float_format='%.8f')
    pd.concat(parts).to_csv(dest/'VolumeTracings.csv', index=False, float_format='%.8f')


def timed(fn, root, repeat):
    "Best wall time of `repeat` calls, and the last result."
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter('ignore'); out = fn(root)
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--videos', type=int, default=10030); ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--skip-old', action='store_true', help='time only the new index (the old one takes minutes)')
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)/'echonet'
        t = time.perf_counter(); write_folder(dataset_path('echonet'), root, a.videos); t_write = time.perf_counter() - t
        rows = sum(1 for _ in open(root/'VolumeTracings.csv')) - 1
        print(f'{a.videos} videos, {rows} tracing rows (folder written in {t_write:.1f} s)')
        t_new, new = timed(echo_index, root, a.repeat)
        print(f'echo_index, whole arrays       : {t_new:7.2f} s  ({1e3 * t_new / a.videos:.3f} ms a video, best of {a.repeat})')
        if a.skip_old: return dict(videos=a.videos, rows=rows, new_s=t_new)
        t_old, old = timed(ref.echo_index, root, 1)
        nf, of = new.frames, old.frames                 # Area up to rounding (another summation order), everything else exactly
        same = (nf.drop(columns='Area').equals(of.drop(columns='Area')) and np.allclose(nf.Area, of.Area, rtol=1e-12, atol=1e-8)
                and new.tracings.equals(old.tracings) and new.skipped == old.skipped)
        print(f'echo_index, per-video loops    : {t_old:7.2f} s  ({1e3 * t_old / a.videos:.3f} ms a video, one call)')
        print(f'speed-up {t_old / t_new:.0f}x; frames (areas up to rounding), tracings and skipped identical: {same}')
        return dict(videos=a.videos, rows=rows, new_s=t_new, old_s=t_old, same=same)


if __name__ == '__main__': main()
