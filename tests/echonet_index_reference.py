"""The EchoNet index as it was before it worked on whole arrays (lib/medrepro/echonet/data.py at b67a14f, copied verbatim):
the reference that tests/test_echonet_index.py and scripts/bench_echo_index.py compare `echo_index` with, row for row.
Per video it loops `groupby('FileName')`, per frame `groupby('Frame')`, checks each video with `_check_video`, and
computes each frame's area with `np.dot` (10-19 ms a video). Do not "fix" it: it is the behaviour to keep."""
import warnings
from pathlib import Path
import numpy as np, pandas as pd
from medrepro.core import DataError
from medrepro.data import read_csv
from medrepro.echonet.data import FILELIST_COLS, TRACING_COLS, EchoData, video_name


def _read_csv(path, cols, what) -> pd.DataFrame:
    "The shared `read_csv` (missing file, unreadable CSV, missing columns), then every column but FileName and Split numeric."
    df = read_csv(path, cols, what, skipinitialspace=True)
    for c in cols[1:]:
        if c == 'Split': continue
        v = pd.to_numeric(df[c], errors='coerce')
        if v.isna().any():
            row = int(np.flatnonzero(v.isna().to_numpy())[0]) + 2
            raise DataError(path, f'column {c} is not numeric on line {row} ({df[c].iloc[row - 2]!r})')
        df[c] = v
    df['FileName'] = df['FileName'].map(video_name)
    return df


def read_filelist(path) -> pd.DataFrame:
    "FileList.csv with `FileName` without `.avi` and `Split` in upper case."
    df = _read_csv(path, FILELIST_COLS, 'FileList.csv')
    df['Split'] = df['Split'].astype(str).str.strip().str.upper()
    bad = sorted(set(df['Split']) - {'TRAIN', 'VAL', 'TEST'})
    if bad: raise DataError(path, f"unknown Split value(s) {bad} (expected TRAIN, VAL, TEST)")
    if df['FileName'].duplicated().any(): raise DataError(path, f"video {df['FileName'][df['FileName'].duplicated()].iloc[0]} is listed twice")
    for c in ('FrameHeight', 'FrameWidth', 'NumberOfFrames'): df[c] = df[c].astype(int)
    return df.reset_index(drop=True)

def tracing_row_problems(df) -> pd.Series:
    "Per tracing row: what is wrong with it ('' when fine): a coordinate that is not finite, a frame that is not a whole number."
    xy = df[['X1', 'Y1', 'X2', 'Y2']].to_numpy(float)
    fin = np.isfinite(xy)
    frame = df['Frame'].to_numpy(float)
    out = []
    for i in range(len(df)):
        p = [f'{k} = {xy[i, j]} is not finite' for j, k in enumerate(('X1', 'Y1', 'X2', 'Y2')) if not fin[i, j]]
        if not np.isfinite(frame[i]) or frame[i] != np.round(frame[i]): p.append(f'Frame = {frame[i]} is not a whole number')
        out.append('; '.join(p))
    return pd.Series(out, index=df.index, dtype=object)

def read_tracings(path, on_error='raise') -> pd.DataFrame:
    "VolumeTracings.csv with `FileName` without `.avi`, rows in file order; a bad row is a DataError naming line and video (`on_error='skip'`: its video is dropped, listed in `.attrs['skipped']`)."
    df = _read_csv(path, TRACING_COLS, 'VolumeTracings.csv')
    bad = tracing_row_problems(df)
    bad = bad[bad != '']
    skipped = {}
    for i, p in bad.items():
        msg = f"line {i + 2}, video {df.at[i, 'FileName']}: {p}"
        if on_error != 'skip': raise DataError(path, msg)
        skipped.setdefault(df.at[i, 'FileName'], msg)
    if skipped: df = df[~df.FileName.isin(list(skipped))]
    df['Frame'] = df['Frame'].astype(int)
    df.attrs['skipped'] = skipped
    return df if skipped else df.reset_index(drop=True)


def reference_polygon(tracing) -> np.ndarray:
    "echonet/dynamic's polygon: (X1, Y1) of rows 2..n, then (X2, Y2) of rows n..2 (row 1 is the long axis)."
    t = np.asarray(tracing, float)
    return np.stack([np.r_[t[1:, 0], t[:0:-1, 2]], np.r_[t[1:, 1], t[:0:-1, 3]]], 1)


def polygon_area(poly) -> float:
    "Shoelace area of a polygon of (x, y) points."
    x, y = np.asarray(poly, float).T
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def _check_video(root, fl, name, groups):
    "Problems of one traced video (a list of strings; empty when fine)."
    errs = []
    if name not in fl.index: return [f'{name}.avi is traced in VolumeTracings.csv but missing from FileList.csv']
    if not (root/'Videos'/f'{name}.avi').is_file(): errs.append(f'{name}.avi is missing from Videos/')
    n, w, h = (int(fl.at[name, k]) for k in ('NumberOfFrames', 'FrameWidth', 'FrameHeight'))
    for f, g in groups:
        if f < 0 or f >= n: errs.append(f'{name}.avi frame {f} is beyond the video (NumberOfFrames {n})')
        if len(g) - 1 < 3: errs.append(f'{name}.avi frame {f} has {len(g) - 1} chord(s); at least 3 are needed')
        xs, ys = g[['X1', 'X2']].to_numpy(float), g[['Y1', 'Y2']].to_numpy(float)
        out = ((xs < -1) | (xs > w + 1) | (ys < -1) | (ys > h + 1)).any(1)
        if out.any():
            i = int(np.flatnonzero(out)[0]); r = g.iloc[i]
            errs.append(f'{name}.avi frame {f}: line {g.index[i] + 2} ({r.X1:g}, {r.Y1:g}, {r.X2:g}, {r.Y2:g}) and {int(out.sum()) - 1} more row(s) '
                        f'lie outside the {w}x{h} frame')
    return errs

def echo_index(root, on_error='raise') -> EchoData:
    "Read and join FileList.csv, VolumeTracings.csv and Videos/; `on_error='skip'` drops bad videos with one warning."
    root = Path(root)
    if not root.is_dir(): raise DataError(root, 'not a folder (expected FileList.csv, VolumeTracings.csv and Videos/)')
    fl = read_filelist(root/'FileList.csv')
    tr = read_tracings(root/'VolumeTracings.csv', on_error)
    if not (root/'Videos').is_dir(): raise DataError(root/'Videos', 'video folder missing')
    fli = fl.set_index('FileName')
    rows, skipped = [], dict(tr.attrs.get('skipped', {}))
    for name, vg in tr.groupby('FileName', sort=True):
        groups = list(vg.groupby('Frame', sort=True))
        errs = _check_video(root, fli, name, groups)
        if errs:
            if on_error != 'skip':
                where = root/'Videos'/f'{name}.avi' if 'missing from Videos' in errs[0] else root/'VolumeTracings.csv'
                raise DataError(where, '; '.join(errs))
            skipped[name] = '; '.join(errs); continue
        areas = {f: polygon_area(reference_polygon(g[['X1', 'Y1', 'X2', 'Y2']].to_numpy(float))) for f, g in groups}
        ed, es = max(areas, key=areas.get), min(areas, key=areas.get)
        for f, g in groups:
            rows.append(dict(FileName=name, Frame=int(f), Phase='ED' if f == ed else 'ES' if f == es else 'other',
                             Area=areas[f], Chords=len(g) - 1, Split=fli.at[name, 'Split'], EF=float(fli.at[name, 'EF']),
                             NumberOfFrames=int(fli.at[name, 'NumberOfFrames'])))
    if skipped: warnings.warn(f'{root}: skipped {len(skipped)} video(s): ' + ' | '.join(skipped.values()))
    frames = pd.DataFrame(rows, columns=['FileName', 'Frame', 'Phase', 'Area', 'Chords', 'Split', 'EF', 'NumberOfFrames'])
    if frames.empty: raise DataError(root/'VolumeTracings.csv', 'no usable traced frames')
    return EchoData(root, fl, tr[~tr.FileName.isin(list(skipped))].reset_index(drop=True), frames, skipped)
