#!/usr/bin/env python
"""Scale benchmark (issue 23, item 6): for each study, synthetic data at the real set's image sizes (the library's own
sample generators), the `paper` profile's data preparation at 1x and 4x the items, and a few training and evaluation
batches of the paper-sized network on the CPU; then an extrapolation to the full data set on a 16-core machine.

    .venv/bin/python scripts/bench_scale.py                      # every study (about 15 minutes on an idle 2-core machine)
    .venv/bin/python scripts/bench_scale.py --only dsb,isic2019  # some studies
    .venv/bin/python scripts/bench_scale.py --quick              # tiny sizes, no training batches: the test's smoke run
    .venv/bin/python scripts/bench_scale.py --readme build/bench/scale.csv   # put saved runs' tables (a,b.csv) into README.md

Each measurement runs in a fresh subprocess; a thread here samples the resident memory (RSS) of that process and all
its children every 50 ms, so peaks of different runs never mix. RSS counts a page that forked workers share
with their parent (libraries, torch) once per process; the proportional set size (PSS: such a page counts 1/k in each
of the k processes that map it) is sampled beside it every 0.25 s, and its sum over the tree is what the tree costs.
Reading PSS makes the kernel walk every mapping of every process (about 15 ms a sample for an RSNA tree): CPU that a run
with one worker per core loses and a serial run, with a core to spare, does not. So the timed runs sample RSS only.
Per study: 1x items with `MEDREPRO_DECODE_WORKERS` = the cores (RSS and PSS), one memory run at 4x items with as many
workers (RSS and PSS, not timed), then at 4x items `--repeats` (default 2) serial runs (`MEDREPRO_DECODE_WORKERS=1`)
and as many parallel runs, interleaved (serial, parallel, serial, ...), each into a fresh cache; the best (shortest) of
each is reported, and every one of their caches must hold identical arrays (`identical`: sha1 of every array).
The library is imported before the clock starts (the first `import torch`, fastai, scikit-learn take seconds that a
notebook pays once, whatever the number of workers), and each run reports two phases: the whole `prepare`, and its
cache building alone (the time inside `data.memmap_cache`, or inside `data.imap_items` where a study decodes through it
directly; index building, splits and statistics are the rest). `speed-up 2 workers` is serial / parallel of the whole
`prepare`, `cache speed-up` of the cache building alone; `CPU s` adds this process's and its workers' CPU seconds (on a
loaded machine the wall times stretch, CPU seconds much less), and the `from CPU s (est.)` columns estimate the idle
machine's speed-ups from them (`cpu_estimates`: perfect balance, an upper bound; a serial path that itself runs several
threads, as torch may, makes it too high).
Measure on a quiet machine: Linux with autogroup (`/proc/sys/kernel/sched_autogroup_enabled` = 1) shares the cores
between sessions, not processes, so while another session keeps them busy a run with 2 workers gets the same share as
a serial one and its wall-time speed-up reads about 1, whatever the code (the header line says when autogroup is on).
The table goes to stdout (Markdown) and to build/bench/scale.csv.

Extrapolation (an estimate, not a measurement): time = the serial seconds per item at 4x x the full item count / S16,
with S16 = the 16-worker speed-up by Amdahl's law from the measured 2-worker speed-up S2 (serial fraction
f = 2/S2 - 1, clipped to [0, 1]; S16 = 1 / (f + (1 - f)/16)); cache bytes and RSS linear in items from the 1x and 4x runs.
"""
import argparse, hashlib, json, os, shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gpu import paper_params, md_table      # noqa: E402

FULL = dict(rsna=2019, echonet=10030, dsb=670, isic2018=2594, isic2019=25331)   # the real sets' item counts (issue 23)
UNIT = dict(rsna='studies', echonet='videos', dsb='images', isic2018='pairs', isic2019='images')
ITEMS = dict(rsna=2, echonet=50, dsb=40, isic2018=25, isic2019=500)          # 1x items of the default run (4x: four times)
# ISIC 2019's images decode in a few ms each: at 250 / 1,000 its parallel cache phase lasted about 2 s and the pool's
# start and the final flush were a tenth of it; 500 / 2,000 measure the steady rate.
# RSNA's 1x is 2 studies, not 1: the pool starts only for more than one item, so with one study the parent works alone
# and 1x vs 4x would compare one process with three (parent + 2 workers), not 1x with 4x the data.
QUICK = dict(rsna=1, echonet=3, dsb=4, isic2018=2, isic2019=8)
RSNA_SLICES = 352            # 711,000 slices / 2,019 studies: the real mean; slices are 512x512 (the real size)
ECHO_FRAMES = 175            # about the real mean video length at 112x112, 50 fps (EchoNet-Dynamic)
# Image sizes (h, w). DSB: the counts of each size in stage1_train (670 images). ISIC 2018 / 2019: ours, a rough mix of
# the releases' camera sizes (the papers give none; ISIC 2019 is about half 1024x1024 BCN images and 40 % 600x450 HAM).
DSB_SIZES = {(256, 256): 334, (256, 320): 112, (520, 696): 92, (360, 360): 91, (1024, 1344): 16, (512, 640): 13,
             (603, 1272): 6, (260, 347): 5, (1040, 1388): 1}
ISIC18_SIZES = {(767, 1022): 10, (1129, 1504): 5, (2000, 3008): 3, (2848, 4288): 2}
ISIC19_SIZES = {(1024, 1024): 10, (450, 600): 8, (768, 1024): 2}


def size_cycle(sizes, n, seed=0):
    "`n` sizes drawn without bias from the weighted mix `sizes` ({(h, w): count}), in a fixed shuffled order."
    pool = [s for s, k in sizes.items() for _ in range(k)]
    order = np.random.default_rng(seed).permutation(len(pool))
    return [pool[order[i % len(pool)]] for i in range(n)]


def _resize_files(files, sizes, masks=()):
    "Resize each image file (and its mask, nearest) to its size in place: the generators paint small, the real sets are big."
    import cv2
    for f, (h, w), m in zip(files, sizes, list(masks) or [None] * len(files)):
        im = cv2.imread(str(f)); cv2.imwrite(str(f), cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        if m is not None:
            mk = cv2.imread(str(m), cv2.IMREAD_GRAYSCALE); cv2.imwrite(str(m), cv2.resize(mk, (w, h), interpolation=cv2.INTER_NEAREST))


# ---------------------------------------------------------------- synthetic data at the real sizes
def write_rsna(dest, n, quick):
    "One synthetic study (512x512, 352 slices, uncompressed, with its segmentation) and n-1 hard-linked copies under new uids."
    from medrepro.rsna.sample import write_sample
    write_sample(dest, n=1, seed=0, size=128 if quick else 512, n_slices=24 if quick else RSNA_SLICES, compress=('none',), seg_every=(0,))
    lab = pd.read_csv(dest/'train.csv')
    uid = lab.StudyInstanceUID[0]
    for i in range(1, n):
        new = f'{uid}.{i}'
        shutil.copytree(dest/'train_images'/uid, dest/'train_images'/new, copy_function=os.link)
        os.link(dest/'segmentations'/f'{uid}.nii', dest/'segmentations'/f'{new}.nii')
    rows = pd.concat([lab.assign(StudyInstanceUID=lab.StudyInstanceUID[0] + (f'.{i}' if i else '')) for i in range(n)])
    rows.to_csv(dest/'train.csv', index=False)


def write_echonet(dest, n, quick):
    "make_sample's videos (112x112, the real size), each lengthened to the real mean length by repeating its frames."
    from medrepro.echonet.sample import make_sample
    from medrepro.echonet.data import read_video, write_video
    make_sample(dest, n=n, seed=0)
    fl = pd.read_csv(dest/'FileList.csv')
    T = 40 if quick else ECHO_FRAMES
    for i, name in enumerate(fl.FileName):
        p = dest/'Videos'/f'{name}.avi'
        v = read_video(p)
        if len(v) < T: write_video(p, np.resize(v, (T, *v.shape[1:])), 50.0); fl.loc[i, 'NumberOfFrames'] = T
    fl.to_csv(dest/'FileList.csv', index=False, float_format='%.8f')


def write_dsb(dest, n, quick):
    "The DSB generator at stage1_train's own image sizes (its size list patched for the run)."
    import medrepro.dsb.sample as s
    old = s.SAMPLE_SIZES
    s.SAMPLE_SIZES = [(64, 64)] if quick else size_cycle(DSB_SIZES, n)
    try: s.write_sample(dest, n, 0)
    finally: s.SAMPLE_SIZES = old


def write_isic2018(dest, n, quick):
    "The ISIC 2018 generator at 512x384, then each pair resized to a size of the mix (mask: nearest)."
    import medrepro.isic2018.sample as s
    from medrepro.isic2018.data import seg_items
    old = s.SAMPLE_SIZES
    s.SAMPLE_SIZES = [(128, 96)] if quick else [(512, 384)]
    try: s.make_isic2018(dest, n, 0)
    finally: s.SAMPLE_SIZES = old
    if not quick:
        items = seg_items(dest, 'train')
        _resize_files([it.image for it in items], size_cycle(ISIC18_SIZES, len(items)), [it.mask for it in items])


def write_isic2019(dest, n, quick):
    "The ISIC 2019 generator (CSVs, classes, lesion groups), then each JPEG resized to a size of the mix."
    from medrepro.isic2019.sample import write_isic2019
    write_isic2019(dest, n, 0)
    if not quick:
        files = sorted((dest).rglob('*.jpg'))
        _resize_files(files, size_cycle(ISIC19_SIZES, len(files)))


WRITERS = dict(rsna=write_rsna, echonet=write_echonet, dsb=write_dsb, isic2018=write_isic2018, isic2019=write_isic2019)


# ---------------------------------------------------------------- the paper profile's data preparation, per study
# Each adapter: (data folder, cache folder) -> dict(items=, arrays={name: array}, x=first inputs for the training batches).
# The studies' own `prepare(data_dir, cache_dir)` (issue 23) replace these where they exist (NEW below; --adapters).
def prep_rsna(data, cache):
    "Notebooks 13-16 under `paper`: the 3D CNN's volumes, the localiser's inputs, the per-vertebra sequences of both routes."
    from medrepro.rsna.dicom import preprocess_series
    from medrepro.rsna.preprocess import localiser_inputs, load_inputs
    p14, p15, p16 = (paper_params('rsna', nb) for nb in ('14_rsna.localise', '15_rsna.model', '16_rsna.train'))
    uids = [str(u) for u in pd.read_csv(data/'train.csv').StudyInstanceUID]
    vols = [preprocess_series(data/'train_images'/u, depth=p15['depth'], size=p15['img_size'], windows=tuple(p15['windows']), cache_dir=cache)
            for u in uids]
    for u in uids: localiser_inputs(data, u, depth=p14['depth'], size=p14['img_size'], cache_dir=cache)
    for route in p16['routes']:
        load_inputs(data, uids, cache_dir=cache, lazy=p16['lazy'], n_slices=p16['n_slices'], img_size=p16['img_size'],
                    crop_size=p16['crop_size'], windows=tuple(p16['windows']), route=route, slice_limits=p16['slice_limits'])
    return dict(items=len(uids), arrays={}, x=np.stack([np.asarray(v, np.float32) for v in vols[:2]]), model='rsna_cnn3d')


def prep_echonet(data, cache):
    "Notebook 20 under `paper`: every traced frame and its mask at 112x112 (centroid masks)."
    from medrepro.echonet.data import echo_index, traced_arrays
    p = paper_params('echonet', '22_echonet.train')
    d = echo_index(data, on_error='skip')
    arr = traced_arrays(d, p['img_size'], method=p['mask_method'], cache_dir=cache)
    return dict(items=d.frames.FileName.nunique(), arrays={}, x=np.asarray(arr['x'][:2], np.float32)[:, None] / 255, model='echonet')


def prep_dsb(data, cache):
    "Notebook 33 under `paper`: every image and its soft mask resized (bilinear) to 256x256, in memory (no cache today)."
    from medrepro.dsb.data import dsb_items, load_set
    p = paper_params('dsb', '33_dsb.train')
    ds = load_set(dsb_items(data), size=p['img_size'], interp=p['interp'], soft=p['soft_masks'])
    return dict(items=len(ds.items), arrays=dict(x=ds.x, y=ds.y), x=np.asarray(ds.x[:2], np.float32).transpose(0, 3, 1, 2) / 255, model='dsb')


def prep_isic2018(data, cache):
    "Notebooks 40-41 under `paper`: every training pair at 768x1024 through the cache."
    from medrepro.isic2018.data import seg_items, load_seg_set
    p = paper_params('isic2018', '41a_isic2018.train')
    ds = load_seg_set(seg_items(data, 'train'), size=(p['img_h'], p['img_w']), cache_dir=cache)
    return dict(items=len(ds.items), arrays={}, x=np.asarray(ds.x[:2], np.float32).transpose(0, 3, 1, 2) / 255, model='isic2018')


def prep_isic2019(data, cache):
    "Notebook 43 under `paper`: every image decoded at 256x256 through the cache."
    from medrepro.isic2019.data import isic2019_table, load_images
    p = paper_params('isic2019', '43_isic2019.data')
    df = isic2019_table(data)
    x = load_images(list(df.path), size=p['decode_size'], decode_size=p['decode_size'], cache_dir=cache)
    return dict(items=len(df), arrays={}, x=np.asarray(x[:2], np.float32).transpose(0, 3, 1, 2) / 255, model='isic2019_resnet101')


def via_prepare(module, model):
    "The study's own `prepare(data_dir, cache_dir)` in `medrepro.<module>` (issue 23; it reads the paper profile itself)."
    import importlib
    def run(data, cache):
        out = importlib.import_module(f'medrepro.{module}').prepare(data, cache)
        bad = out.get('bad') or []
        return dict(items=out['items'], arrays=out.get('arrays', {}), x=out.get('x'), model=model, bad=bad if isinstance(bad, int) else len(bad))
    run.module = module
    return run


TODAY = dict(rsna=prep_rsna, echonet=prep_echonet, dsb=prep_dsb, isic2018=prep_isic2018, isic2019=prep_isic2019)
NEW = dict(rsna=via_prepare('rsna.preprocess', 'rsna_cnn3d'), echonet=via_prepare('echonet.data', 'echonet'),
           dsb=via_prepare('dsb.data', 'dsb'), isic2018=via_prepare('isic2018.data', 'isic2018'),
           isic2019=via_prepare('isic2019.data', 'isic2019_resnet101'))


def has_prepare(study):
    "Whether `medrepro.<module>.prepare` exists in this checkout."
    import importlib
    try: return callable(getattr(importlib.import_module(f'medrepro.{NEW[study].module}'), 'prepare', None))
    except ImportError: return False


def adapter(study, which='auto'):
    "'today': the notebooks' functions as they were before issue 23; 'prepare': the study's `prepare`; 'auto': prepare where it exists."
    if which == 'auto': which = 'prepare' if has_prepare(study) else 'today'
    return which, (NEW if which == 'prepare' else TODAY)[study]


CPU_SHAPE = dict(isic2018=(3, 192, 256))     # ours: 768x1024 does not train on 2 CPU cores in minutes; bench_gpu.py runs it whole


# ---------------------------------------------------------------- one measurement (the child process)
def digest(cache, arrays):
    "{name: sha1} of every array in the cache folder (.npy, .npz members) and of `arrays`: equal digests, identical arrays."
    out = {}
    def h(a):
        a = np.ascontiguousarray(a); return hashlib.sha1(str((a.dtype, a.shape)).encode() + a.tobytes()).hexdigest()
    for f in sorted(Path(cache).rglob('*')):
        if f.suffix == '.npy': out[f.name] = h(np.load(f, mmap_mode='r'))
        elif f.suffix == '.npz':
            with np.load(f) as z: out.update({f'{f.name}:{k}': h(z[k]) for k in z.files})
    out.update({f'memory:{k}': h(v) for k, v in arrays.items()})
    return out


MODULES = dict(rsna=('rsna.dicom', 'rsna.preprocess'), echonet=('echonet.data',), dsb=('dsb.data',), isic2018=('isic2018.data',),
               isic2019=('isic2019.data',))


class CachePhase:
    "Wall time spent inside `data.memmap_cache` (its builder) or `data.imap_items`, outermost calls only: the cache-building phase."
    def __init__(self): self.s, self.cpu, self.depth = 0.0, 0.0, 0
    def __enter__(self):
        if self.depth == 0: self.t, self.c = time.perf_counter(), cpu_s()
        self.depth += 1
    def __exit__(self, *exc):
        self.depth -= 1
        if self.depth == 0: self.s, self.cpu = self.s + time.perf_counter() - self.t, self.cpu + cpu_s() - self.c   # the pool's workers are reaped inside

    def install(self):
        "Wrap the shared layer's cache builder and pool (before the study modules import `imap_items` by name)."
        import medrepro.data as D
        build, imap = D._memmap_build, D.imap_items
        def _build(*a, **k):
            with self: return build(*a, **k)
        def _imap(*a, **k):
            with self: yield from imap(*a, **k)
        D._memmap_build, D.imap_items = _build, _imap
        return self


def cpu_s():
    "CPU seconds of this process and of its (finished) children: user + system."
    import resource
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)))


def child(study, data, cache, train_batches, which='auto'):
    "Prepare `study`'s data (timed: the whole preparation and its cache building), then train/evaluate a few batches; print one JSON line."
    import importlib
    t0 = time.perf_counter()
    import torch
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    phase = CachePhase().install()
    import sklearn.model_selection                      # noqa: F401  (imported lazily by the split API: not preparation work)
    for m in MODULES[study]: importlib.import_module(f'medrepro.{m}')
    which, prep = adapter(study, which)
    t_import = time.perf_counter() - t0
    c0, t0 = cpu_s(), time.perf_counter()
    r = prep(Path(data), Path(cache))
    t_prep, t_prep_end, c_prep = time.perf_counter() - t0, time.time(), cpu_s() - c0
    res = dict(adapter=which, bad=r.get('bad', 0), items=r['items'], prep_s=t_prep, prep_end=t_prep_end, digest=digest(cache, r['arrays']),
               cache_s=phase.s if phase.s > 0 else float('nan'), import_s=t_import, cpu_s=c_prep, cache_cpu_s=phase.cpu, load=os.getloadavg()[0],
               cache_bytes=sum(f.stat().st_size for f in Path(cache).rglob('*') if f.is_file()))
    if train_batches:
        from bench_gpu import bench
        x = None if r.get('x') is None else torch.as_tensor(r['x'])    # `prepare` returns no arrays: synthetic inputs of the paper's shape
        if x is not None and study in CPU_SHAPE: x = torch.nn.functional.interpolate(x, size=CPU_SHAPE[study][1:], mode='bilinear')
        t = time.perf_counter()
        b = bench(r['model'], 'cpu', batches=train_batches, warmup=1, bs=2 if x is None else len(x), x=x,
                  shape=CPU_SHAPE.get(study) if x is None else tuple(x.shape[1:]))
        res.update(model=r['model'], train_input=b['input'], train_bs=b['bs'], train_img_s=b['train_img_s'],
                   eval_img_s=b['eval_img_s'], train_phase_s=time.perf_counter() - t)
    print('RESULT ' + json.dumps(res), flush=True)


# ---------------------------------------------------------------- the parent: run, sample RSS, tabulate
LIB = str(ROOT/'lib')        # the library measured (--lib)


def tree_pids(pid) -> list:
    "`pid` and its descendants, from Linux's per-thread `children` lists in /proc (cheap: psutil's `children(recursive=True)`, used elsewhere, reads every process on the machine)."
    if not Path(f'/proc/{pid}/task').is_dir():
        import psutil
        try: return [pid] + [q.pid for q in psutil.Process(pid).children(recursive=True)]
        except psutil.Error: return [pid]
    out = [pid]
    try: tasks = os.listdir(f'/proc/{pid}/task')
    except OSError: return out
    for t in tasks:
        try: kids = Path(f'/proc/{pid}/task/{t}/children').read_text().split()
        except OSError: continue
        for k in kids: out += tree_pids(int(k))
    return out


def measure(study, data, cache, workers, train_batches=0, which='auto', pss=True):
    """Run `child` in a fresh process with MEDREPRO_DECODE_WORKERS=`workers`; its result with the peak RSS of its process tree
    (and its peak PSS with `pss=True`). The sampler shares the machine with the run: RSS costs it little (a /proc read per
    process every 50 ms), PSS much more (the kernel walks every mapping for smaps), and a run with one worker per core pays
    for that CPU while a serial run does not. So timed runs sample RSS only; `sampler_cpu_s` says what the sampler took."""
    import psutil
    env = dict(os.environ, MEDREPRO_DECODE_WORKERS=str(workers), PYTHONPATH=LIB, MEDREPRO_BATCH='1')
    cmd = [sys.executable, __file__, '--child', study, str(data), str(cache), '--train-batches', str(train_batches), '--adapters', which]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples, pss_s, done, cpu, procs = [], [], threading.Event(), [0.0], {}
    def _pss(q):
        try: return q.memory_full_info().pss
        except psutil.Error: return 0
    def _proc(pid):
        if pid not in procs: procs[pid] = psutil.Process(pid)
        return procs[pid]
    def sample():
        next_pss = 0.0
        while not done.is_set():
            try:
                qs = [_proc(q) for q in tree_pids(proc.pid)]
                rss = sum(q.memory_info().rss for q in qs)
                samples.append((time.time(), rss))
                if pss and time.time() >= next_pss:     # PSS (a page shared by k processes counts 1/k in each) reads smaps: every 0.25 s
                    pss_s.append((time.time(), sum(map(_pss, qs)))); next_pss = time.time() + 0.25
            except psutil.Error: pass
            done.wait(0.05)
        cpu[0] = time.thread_time()
    th = threading.Thread(target=sample, daemon=True); th.start()
    out, err = proc.communicate(); done.set(); th.join()
    if proc.returncode: raise RuntimeError(f'{study} ({data}, {workers} workers) failed:\n{err[-3000:]}')
    res = json.loads([l for l in out.splitlines() if l.startswith('RESULT ')][-1][7:])
    res['workers'], res['sampler_cpu_s'] = workers, cpu[0]
    res['prep_peak_rss'] = max([r for t, r in samples if t <= res['prep_end']] or [0])
    res['peak_rss'] = max([r for t, r in samples] or [0])
    res['prep_peak_pss'] = max([r for t, r in pss_s if t <= res['prep_end']] or [0])
    return res


def amdahl16(s2):
    "The 16-worker speed-up implied by a measured 2-worker speed-up `s2` (Amdahl's law)."
    f = min(1.0, max(0.0, 2 / s2 - 1)) if s2 > 0 else 1.0
    return 1 / (f + (1 - f) / 16)


def best(runs):
    "One measurement from repeated ones: the shortest of each timing, the highest RSS, `digests` of them all."
    out = dict(min(runs, key=lambda r: r['prep_s']))
    for k in ('prep_s', 'cache_s', 'cpu_s', 'cache_cpu_s'): out[k] = min(r[k] for r in runs)
    for k in ('prep_peak_rss', 'peak_rss', 'load'): out[k] = max(r[k] for r in runs)
    out['digests'] = [r['digest'] for r in runs]
    return out


def run_study(study, n1, workdir, cores, train_batches, quick, which='auto', repeats=2):
    "Write the 1x and 4x data, measure the 1x run and `repeats` interleaved serial and parallel 4x runs, return one table row."
    t = time.perf_counter()
    d1, d4 = workdir/'x1'/'data', workdir/'x4'/'data'
    for d, n in ((d1, n1), (d4, 4 * n1)): d.mkdir(parents=True); WRITERS[study](d, n, quick)
    t_write = time.perf_counter() - t
    one = measure(study, d1, workdir/'x1'/'cache', cores, train_batches, which)
    mem = measure(study, d4, workdir/'x4'/'cache_mem', cores, 0, which)      # memory (RSS and PSS) at 4x; not timed
    shutil.rmtree(workdir/'x4'/'cache_mem', ignore_errors=True)
    pars, sers = [], []
    for i in range(max(1, repeats)):                   # interleaved: a burst of load from elsewhere hits both paths alike
        for runs, w, name in ((sers, 1, 'ser'), (pars, cores, 'par')):
            c = workdir/'x4'/f'cache_{name}{i}'
            runs.append(measure(study, d4, c, w, 0, which, pss=False)); shutil.rmtree(c, ignore_errors=True)
    par = best(pars)
    par.update(prep_peak_rss=max(par['prep_peak_rss'], mem['prep_peak_rss']), prep_peak_pss=mem['prep_peak_pss'],
               digests=par['digests'] + [mem['digest']], sampler_cpu_s=max(r['sampler_cpu_s'] for r in pars))
    row = study_row(study, one, par, best(sers))
    row.update(write_s=t_write, study_s=time.perf_counter() - t, repeats=max(1, repeats))
    return row


def cpu_estimates(par, ser, workers=2):
    """Speed-ups an idle machine would show, estimated from CPU seconds (a loaded machine stretches wall times, CPU seconds much less):
    serial = its CPU seconds; parallel = the CPU seconds outside the cache phase + the cache phase's (this process's and its
    workers') / `workers`, i.e. perfect balance between workers and none of this process's work overlapped. An estimate, labelled so."""
    nan = float('nan')
    pc, sc = par.get('cache_cpu_s', nan), ser.get('cache_cpu_s', nan)
    if not (pc > 0 and sc > 0): return dict(cpu_speedup_cache_2=nan, cpu_speedup_2=nan)
    return dict(cpu_speedup_cache_2=sc / (pc / workers), cpu_speedup_2=ser['cpu_s'] / (par['cpu_s'] - pc + pc / workers))


def study_row(study, one, par, ser):
    "One table row from the 1x, parallel 4x and serial 4x measurements (results of `measure`, or `best` of several)."
    ds = [d for r in (par, ser) for d in r.get('digests', [r['digest']])]
    same = len(ds[0]) > 0 and all(sorted(d.values()) == sorted(ds[0].values()) for d in ds)
    s2 = ser['prep_s'] / par['prep_s']
    N, i1, i4 = FULL[study], one['items'], par['items']
    slope = (par['prep_peak_rss'] - one['prep_peak_rss']) / max(1, i4 - i1)
    return dict(study=study, adapter=par['adapter'], unit=UNIT[study], items_1x=i1, prep_s_1x=one['prep_s'], items_s_1x=i1 / one['prep_s'],
               rss_MB_1x=one['prep_peak_rss'] / 1e6, pss_MB_1x=one.get('prep_peak_pss', 0) / 1e6, pss_MB_4x=par.get('prep_peak_pss', 0) / 1e6,
               pss_4x_vs_1x=par.get('prep_peak_pss', 0) / max(1, one.get('prep_peak_pss', 0)), cache_MB_1x=one['cache_bytes'] / 1e6,
               items_4x=i4, prep_s_4x=par['prep_s'], items_s_4x=i4 / par['prep_s'], rss_MB_4x=par['prep_peak_rss'] / 1e6,
               cache_MB_4x=par['cache_bytes'] / 1e6, rss_4x_vs_1x=par['prep_peak_rss'] / one['prep_peak_rss'],
               serial_s_4x=ser['prep_s'], speedup_2=s2, identical=same,
               cache_s_4x=par.get('cache_s', float('nan')), serial_cache_s_4x=ser.get('cache_s', float('nan')),
               speedup_cache_2=ser.get('cache_s', float('nan')) / par.get('cache_s', float('nan')),
               cpu_s_4x=par.get('cpu_s', float('nan')), serial_cpu_s_4x=ser.get('cpu_s', float('nan')),
               import_s=par.get('import_s', float('nan')), load=max(par.get('load', 0), ser.get('load', 0)),
               **cpu_estimates(par, ser),
               full_items=N, full_prep_h_16=ser['prep_s'] / i4 * N / amdahl16(s2) / 3600,
               full_cache_GB=par['cache_bytes'] / i4 * N / 1e9,
               # linear in items only when the 1x run had as many items in flight as workers (else the growth is the workers')
               full_rss_GB=(par['prep_peak_rss'] + slope * (N - i4)) / 1e9 if i1 >= par.get('workers', 1) else float('nan'),
               model=one.get('model', ''), train_input=one.get('train_input', ''), train_bs=one.get('train_bs', ''),
               train_img_s=one.get('train_img_s', float('nan')), eval_img_s=one.get('eval_img_s', float('nan')),
               peak_rss_MB_with_train=one['peak_rss'] / 1e6, bad_4x=par['bad'],
               sampler_cpu_s_4x=par.get('sampler_cpu_s', float('nan')), sampler_cpu_s_4x_serial=ser.get('sampler_cpu_s', float('nan')))


SHOW = dict(study='study', adapter='preparation', unit='item', items_1x='items 1x', prep_s_1x='s 1x', items_s_1x='items/s 1x', rss_MB_1x='RSS MB 1x',
            cache_MB_1x='cache MB 1x', items_4x='items 4x', prep_s_4x='s 4x', items_s_4x='items/s 4x', rss_MB_4x='RSS MB 4x',
            rss_4x_vs_1x='RSS 4x/1x', pss_MB_1x='PSS MB 1x', pss_MB_4x='PSS MB 4x', pss_4x_vs_1x='PSS 4x/1x', cache_MB_4x='cache MB 4x', serial_s_4x='serial s 4x', speedup_2='speed-up 2 workers',
            serial_cache_s_4x='cache s 4x serial', cache_s_4x='cache s 4x parallel', speedup_cache_2='cache speed-up',
            serial_cpu_s_4x='CPU s 4x serial', cpu_s_4x='CPU s 4x parallel', cpu_speedup_cache_2='cache speed-up from CPU s (est.)',
            cpu_speedup_2='speed-up from CPU s (est.)', load='load (max)',
            identical='identical', full_items='full items', full_prep_h_16='full prep h (16 cores, est.)',
            full_cache_GB='full cache GB (est.)', full_rss_GB='full RSS GB (if linear in items)', train_img_s='train img/s (CPU)',
            eval_img_s='eval img/s (CPU)')


README_START, README_END = '<!-- bench-scale:start -->', '<!-- bench-scale:end -->'
README_COLS = ['study', 'adapter', 'unit', 'items_1x', 'items_4x', 'prep_s_4x', 'items_s_4x', 'rss_MB_1x', 'rss_MB_4x', 'rss_4x_vs_1x',
               'pss_MB_1x', 'pss_MB_4x', 'pss_4x_vs_1x', 'cache_MB_4x', 'serial_s_4x', 'speedup_2', 'serial_cache_s_4x', 'cache_s_4x', 'speedup_cache_2', 'cpu_speedup_cache_2', 'load', 'identical', 'full_items', 'full_prep_h_16', 'full_cache_GB', 'full_rss_GB']


def readme_table(csvs, readme=ROOT/'README.md'):
    "Replace the table between the bench-scale markers of README.md with the rows of saved runs (`csvs`: comma-separated paths)."
    paths = [Path(c) for c in str(csvs).split(',')]
    df = pd.concat([pd.read_csv(c) for c in paths], ignore_index=True)
    notes = [f'`{c.name}`: ' + c.with_suffix('.txt').read_text().strip() for c in paths if c.with_suffix('.txt').exists()]
    block = '\n'.join([README_START, 'Measured by `scripts/bench_scale.py` (' + '; '.join(notes) + '):', '',
                       md_table(df[[c for c in README_COLS if c in df]].rename(columns=SHOW), fmt='{:.2f}'), README_END])
    text = readme.read_text()
    if README_START not in text or README_END not in text: sys.exit(f'{readme} has no {README_START} ... {README_END} block')
    head, rest = text.split(README_START, 1)
    readme.write_text(head + block + rest.split(README_END, 1)[1])
    print(f'{readme}: table of {csvs} written')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--only', default=None, help=f"comma-separated studies from {', '.join(FULL)}")
    ap.add_argument('--quick', action='store_true', help='tiny sizes and counts, no training batches (the smoke test)')
    ap.add_argument('--scale', type=float, default=1.0, help='multiply the default 1x item counts')
    ap.add_argument('--repeats', type=int, default=2, help='serial and parallel 4x runs each, interleaved; the best of each is reported')
    ap.add_argument('--train-batches', type=int, default=None, help='timed CPU training and evaluation batches (default 2; 0 in --quick)')
    ap.add_argument('--out', default=str(ROOT/'build'/'bench'/'scale.csv'))
    ap.add_argument('--tmp', default=None, help='where the synthetic data and caches go (default: the system temp folder)')
    ap.add_argument('--adapters', choices=('auto', 'today', 'prepare'), default='auto',
                    help="'today': the notebooks' functions before issue 23; 'prepare': each study's prepare(); auto: prepare where it exists")
    ap.add_argument('--lib', default=None, help="the library folder to measure (default: this checkout's lib/; e.g. another branch's, exported)")
    ap.add_argument('--readme', default=None, metavar='CSV', help="write a saved run's table into README.md and stop")
    ap.add_argument('--child', nargs=3, metavar=('STUDY', 'DATA', 'CACHE'), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    tb = a.train_batches if a.train_batches is not None else (0 if a.quick else 2)
    if a.child: return child(*a.child, tb, a.adapters)
    if a.readme: return readme_table(a.readme)
    global LIB
    if a.lib: LIB = str(Path(a.lib).resolve())
    studies = a.only.split(',') if a.only else list(FULL)
    bad = [s for s in studies if s not in FULL]
    if bad: sys.exit(f"unknown studies {bad}; choose from {', '.join(FULL)}")
    cores, t_all = len(os.sched_getaffinity(0)), time.perf_counter()
    load0 = os.getloadavg()[0]
    try: autogroup = Path('/proc/sys/kernel/sched_autogroup_enabled').read_text().strip() == '1'
    except OSError: autogroup = False
    print(f'# {cores} cores, load average {load0:.1f}{" (autogroup on: other sessions take their share)" if autogroup else ""}; library {LIB}; 1x items: '
          + ', '.join(f"{s} {max(1, round((QUICK if a.quick else ITEMS)[s] * a.scale))}" for s in studies), flush=True)
    rows = []
    for s in studies:
        n1 = max(1, round((QUICK if a.quick else ITEMS)[s] * a.scale))
        with tempfile.TemporaryDirectory(prefix=f'bench-{s}-', dir=a.tmp) as tmp:
            r = run_study(s, n1, Path(tmp), cores, tb, a.quick, a.adapters, a.repeats)
        rows.append(r)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True); pd.DataFrame(rows).to_csv(a.out, index=False)   # after each study
        print(f"{s} ({r['adapter']}): {r['items_1x']} -> {r['items_4x']} {r['unit']}, prep {r['prep_s_1x']:.1f} s -> {r['prep_s_4x']:.1f} s, RSS "
              f"{r['rss_MB_1x']:.0f} -> {r['rss_MB_4x']:.0f} MB, speed-up {r['speedup_2']:.2f} (cache {r['serial_cache_s_4x']:.1f} -> "
              f"{r['cache_s_4x']:.1f} s: {r['speedup_cache_2']:.2f}), identical {r['identical']}, load {r['load']:.1f} "
              f"({r['study_s']:.0f} s, of which {r['write_s']:.0f} s writing data)", flush=True)
    df = pd.DataFrame(rows)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(a.out, index=False)
    Path(a.out).with_suffix('.txt').write_text(
        f"{time.strftime('%Y-%m-%d', time.gmtime())}, {cores} cores, load average {load0:.1f} at the start and "
        f"{os.getloadavg()[0]:.1f} at the end, {(time.perf_counter() - t_all) / 60:.0f} minutes{', --quick' if a.quick else ''}")
    print('\n' + md_table(df[[c for c in SHOW if c in df]].rename(columns=SHOW), fmt='{:.2f}'))
    print(f'\nwritten {a.out}; full-scale figures are estimates (see --help for the model)')
    return df


if __name__ == '__main__':
    main()
