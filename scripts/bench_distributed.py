"""Data-parallel training speed (issue #12): images/s of the DSB ResUNet trained by the notebooks' own code path
(`dsb.train.train_model` under `train.launch`) in 1 process and in N processes, on the same data and model.

On a CPU the processes talk over gloo and share the machine's cores. A forked process can only use one thread
(OpenMP does not survive fork, see notebook 04), so N CPU processes use N threads in all; the one-process baseline is
run both with all cores and with one thread. On a GPU machine each process gets one GPU (N at most the GPU count). Throughput counts every process's images: the training set once
per epoch, whatever N is. The first epoch (start-up, process launch) is timed separately and left out of images/s.

    .venv/bin/python scripts/bench_distributed.py [--processes 1 2] [--epochs 4] [--img-size 64] [--bs 8] [--out FILE]
"""
import argparse, contextlib, io, json, os, resource, tempfile, time
from pathlib import Path
import pandas as pd, torch
from fastai.callback.core import Callback
from fastai.torch_core import rank_distrib, num_distrib
from medrepro.core import ModelConfig, get_device
from medrepro.data import dataset_path
from medrepro.train import launch
from medrepro.dsb import data as D
from medrepro.dsb.train import train_model


class EpochClock(Callback):
    "Wall-clock seconds of each epoch's training phase."
    order = 99
    def before_fit(self): self.secs = []
    def before_train(self): self.t0 = time.perf_counter()
    def after_train(self): self.secs.append(time.perf_counter() - self.t0)


def run(n, dls, cfg, epochs, work, threads):
    "Train once with `n` processes; returns rank 0's measurements."
    res = work/f'n{n}.json'
    def train():
        if n == 1: torch.set_num_threads(threads)                                           # forked processes stay at one thread
        clock = EpochClock()
        with contextlib.redirect_stdout(io.StringIO()):                                      # no epoch log: the table says it
            train_model(dls, cfg, 'bce', epochs=epochs, lr=1e-2, out_dir=work/f'run{n}', one_cycle=True, cbs=[clock])
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024                     # MB, this process
        if not rank_distrib():
            res.write_text(json.dumps(dict(secs=clock.secs, world=max(num_distrib(), 1), peak_mb=peak)))
    t, before = time.perf_counter(), torch.get_num_threads()
    try: launch(train, num_processes=n, seed=0)
    finally: torch.set_num_threads(before)
    wall = time.perf_counter() - t
    return {**json.loads(res.read_text()), 'wall': wall}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--processes', type=int, nargs='+', default=None, help='process counts to compare (default: 1 and 2, or 1 and every GPU)')
    ap.add_argument('--epochs', type=int, default=4); ap.add_argument('--img-size', type=int, default=64)
    ap.add_argument('--bs', type=int, default=8, help='batch size per process'); ap.add_argument('--crops', type=int, default=16)
    ap.add_argument('--filters', default='8,16,32,64,128'); ap.add_argument('--data-dir', default=None)
    ap.add_argument('--out', default=None, help='CSV of the results (default: print only)')
    a = ap.parse_args()
    os.environ['MEDREPRO_BATCH'] = '1'                                                        # no progress bars
    cuda = torch.cuda.is_available()
    procs = a.processes or ([1, torch.cuda.device_count()] if cuda and torch.cuda.device_count() > 1 else [1, 2])
    cores = os.cpu_count() or 1
    path = Path(a.data_dir) if a.data_dir else dataset_path('dsb2018')
    items = D.dsb_items(path)
    ids = [it.id for it in items]
    split = {k: [ids[i] for i in v] for k, v in D.split_images(len(ids), seed=42).items()}
    ds = D.load_crops([it for it in items if it.id not in set(split['test'])], a.img_size, per_image=a.crops, seed=42)
    dls = D.dsb_dataloaders(ds, split['train'], split['valid'], bs=a.bs, seed=42, device=get_device(None) if not cuda else 'cuda')
    cfg = ModelConfig('resunet', dict(filters=[int(f) for f in a.filters.split(',')]))
    n_train = len(dls.train) * a.bs                                                       # drop_last: whole batches
    print(f'{"GPU" if cuda else "CPU"}: {cores} cores{f", {torch.cuda.device_count()} GPU(s)" if cuda else ""}; '
          f'{len(dls.train_ds)} training crops of {a.img_size}px, batch {a.bs} per process, {a.epochs} epochs, ResUNet {a.filters}', flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [(1, cores), (1, 1)] if not cuda and cores > 1 else [(1, cores if not cuda else 1)]
        runs += [(n, 1) for n in procs if n > 1]
        for n, threads in runs:
            r = run(n, dls, cfg, a.epochs, Path(tmp), threads)
            steady = r['secs'][1:] or r['secs']
            imgs = (len(dls.train) // n) * n * a.bs                                           # per epoch, all processes together
            rows.append(dict(processes=n, device='cuda' if cuda else 'cpu', threads_per_process=threads, batch_per_process=a.bs,
                             images_per_epoch=imgs, first_epoch_s=round(r['secs'][0], 2), epoch_s=round(sum(steady) / len(steady), 3),
                             images_per_s=round(imgs / (sum(steady) / len(steady)), 1), wall_s=round(r['wall'], 1),
                             peak_mb_rank0=round(r['peak_mb'])))
            print(f'  {n} process(es) x {threads} thread(s): {rows[-1]["images_per_s"]} images/s', flush=True)
    df = pd.DataFrame(rows)
    df['speedup_vs_first'] = (df.images_per_s / df.images_per_s.iloc[0]).round(2)
    print(df.to_string(index=False))
    if a.out: Path(a.out).parent.mkdir(parents=True, exist_ok=True); df.to_csv(a.out, index=False); print('saved', a.out)


if __name__ == '__main__':
    main()
