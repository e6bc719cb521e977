"""Data-parallel scores (issue 26, item 4): each study's smoke training (its notebook's defaults, on the sample data)
in 1 process and in 2 CPU processes over gloo (`train.launch`), with the learning-rate rule of notebook 04 switched
off (`lr_scaling='none'`) and on (`'auto'`: square root of N for Adam, N for SGD), and its score on the validation
split at the checkpoint `fit` reloads.

    .venv/bin/python scripts/bench_lr_scaling.py [--studies dsb isic2018 echonet rsna] [--seeds 42] [--rules none auto split_batch] [--out FILE.csv]
    .venv/bin/python scripts/bench_lr_scaling.py --table FILE.csv [FILE2.csv ...]     # the table of saved runs

Scores: DSB validation Jaccard and ISIC 2018 U-Net validation Jaccard (higher is better), EchoNet validation
foreground Dice (higher), RSNA (notebook 16's crop model; `rsna_cnn3d`: notebook 15's 3D CNN) validation weighted
log loss (lower). Goals: 2 processes within
0.02 of 1 process (Jaccard, Dice) or 0.03 (log loss). Each run uses one thread per process (a forked process can
only use one, notebook 04), so 1 process is timed on one thread too.
"""
import argparse, contextlib, io, json, os, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd, torch
from fastai.torch_core import rank_distrib
from medrepro.core import seed_everything
from medrepro.train import launch

GOAL = {'jaccard': 0.02, 'dice_fg': 0.02, 'wll': 0.03}
HIGHER = {'jaccard': True, 'dice_fg': True, 'wll': False}


def checkpoint_score(learn, metric):
    "The logged value of `metric` at the epoch whose weights `fit` reloaded (the first checkpoint's best epoch)."
    bc = learn.best_checkpoints
    names = list(learn.recorder.metric_names[1:])
    return float(learn.recorder.values[bc.epochs[bc.reload]][names.index(metric)])


def dsb(work, seed):
    "Notebook 33's smoke run: ResUNet 8..128, 8 crops of 64 px per image, batch 8, 8 epochs, one-cycle at 1e-2, our Adam."
    from medrepro.core import ModelConfig
    from medrepro.data import dataset_path
    from medrepro.dsb import data as D
    from medrepro.dsb.train import train_model, keras_adam
    items = D.dsb_items(dataset_path('dsb2018'))
    split = D.split_images(len(items), 0.2, 0.2, seed)
    ids = {k: [items[i].id for i in v] for k, v in split.items()}
    ds = D.load_crops([it for it in items if it.id not in set(ids['test'])], 64, per_image=8, seed=seed)
    dls = D.dsb_dataloaders(ds, ids['train'], ids['valid'], bs=8, seed=seed, reshuffle=True, device='cpu')
    cfg = ModelConfig('resunet', dict(filters=[8, 16, 32, 64, 128]))
    return 'jaccard', lambda: train_model(dls, cfg, 'bce', epochs=8, lr=1e-2, out_dir=work, one_cycle=True, opt_func=keras_adam(0.99, 1e-5, 0.01))


def isic2018(work, seed):
    "Notebook 41a's smoke run: U-Net 8..128 at 48x64, batch 4, 30 epochs, one-cycle at 3e-3, Dice+BCE, augmented; best-Jaccard epoch."
    from medrepro.core import cache_dir
    from medrepro.data import dataset_path, split_labels, split_from_labels
    from medrepro.isic2018.data import seg_items, seg_split, load_seg_set, seg_dataloaders
    from medrepro.isic2018.model import isic_unet
    from medrepro.isic2018.train import fit_unet
    items = seg_items(dataset_path('isic2018'))
    split = seg_split(items, valid=0.15, test=0.3, seed=seed)
    rows = np.sort(np.r_[split['train'], split['valid']])
    ds = load_seg_set([items[i] for i in rows], (48, 64), cache_dir('isic2018'))
    dls = seg_dataloaders(ds, split_from_labels(split_labels(split, len(items))[rows]), bs=4, augment=True, seed=seed, device='cpu')
    unet = isic_unet([8, 16, 32, 64, 128])
    return 'jaccard', lambda: fit_unet(dls, unet, 30, 3e-3, loss='dice_bce', out_dir=work, quiet=True)


def echonet(work, seed):
    "Notebook 22's smoke run as it was when the README's table was made: U-Net 8..128 at 64 px, video split, batch 4, 10 epochs (22 now trains 20), one-cycle at 1e-2, Adam, class-weighted BCE; best foreground-Dice epoch."
    from medrepro.data import dataset_path, dataloaders
    from medrepro.nets import MaskLoss
    from medrepro.train import fit
    from medrepro.echonet.data import echo_index, traced_arrays, split_frames, frame_sets
    from medrepro.echonet.model import echonet_unet
    from medrepro.echonet.train import mask_metrics, optimiser
    data = echo_index(dataset_path('echonet'), on_error='skip')
    arr = traced_arrays(data, 64, 'reference', cache_dir='default', on_error='skip')
    frames = data.frames[arr['ok']].reset_index(drop=True)
    X, Y = arr['x'][arr['ok']], arr['y'][arr['ok']]
    sp = split_frames(frames, 'video', 0.2, None, seed, True)
    dls = dataloaders(*frame_sets(X, Y, sp), bs=4, valid_bs=8, device='cpu')
    pos = float(Y[sp['train']].mean())
    def train():
        return fit(dls, echonet_unet(n_in=1, n_out=1, widths=[8, 16, 32, 64, 128]), MaskLoss('bce', (1 - pos) / pos), 10, 1e-2,
                   metrics=mask_metrics(), out_dir=work, quiet=True, monitor='dice_fg', lr_patience=None, es_patience=None, opt_func=optimiser('adam'))
    return 'dice_fg', train


def rsna_cnn3d(work, seed):
    "Notebook 15's smoke run: the 3D CNN stand-in 8..32 on 32x64x64 volumes (36 sample studies), batch 4, 3 epochs, one-cycle at 3e-3; best validation-loss epoch."
    from medrepro.core import cache_dir
    from medrepro.data import dataloaders
    from medrepro.train import fit
    from medrepro.rsna.data import read_labels, rsna_root, split_studies, study_labels
    from medrepro.rsna.metrics import rsna_loss, rsna_metrics
    from medrepro.rsna.preprocess import float_sets, load_volumes
    from medrepro.rsna.model import Cnn3dStandIn
    root = rsna_root(None, 'sample', 36)
    split = split_studies(read_labels(root), 0.25, 0.25, None, seed)
    x_tr, x_va = (load_volumes(root, split[k], 32, 64, ('bone', 'soft'), cache_dir('rsna')) for k in ('train', 'valid'))
    y_tr, y_va = study_labels(root, split['train']), study_labels(root, split['valid'])
    def train():
        dls = dataloaders(*float_sets(x_tr, y_tr, x_va, y_va), bs=4, device='cpu', drop_last=False, tfmd=True)
        return fit(dls, Cnn3dStandIn(in_ch=2, widths=(8, 16, 32, 32), hidden=64, padding=1), rsna_loss(), 3, 3e-3, metrics=rsna_metrics(),
                   out_dir=work, quiet=True, lr_patience=None)
    return 'wll', train


def rsna(work, seed):
    "Notebook 16's route (b) smoke run: the 2.5D crop model (small encoder 16..64, GRU 32) on 24-px bone-window crops of the 36 sample studies, vertebrae from the bone-range estimate (no localiser), batch 4, 16 epochs, one-cycle at 3e-3; best validation weighted log loss."
    from medrepro.core import cache_dir
    from medrepro.rsna.data import read_labels, rsna_root, split_studies, study_labels
    from medrepro.rsna.preprocess import load_inputs
    from medrepro.rsna.train import fit_crop_model
    root = rsna_root(None, 'sample', 36)
    split = split_studies(read_labels(root), 0.25, 0.25, None, seed)
    kw = dict(n_slices=6, img_size=32, crop_size=24, windows=('bone', 'soft', 'brain'), crop_window='bone', context=1, slice_limits=None)
    (_, crop_tr, _), (_, crop_va, _) = (load_inputs(root, split[k], cache_dir('rsna'), lazy=False, localiser=None, route='hu', **kw) for k in ('train', 'valid'))
    y_tr, y_va = study_labels(root, split['train']), study_labels(root, split['valid'])
    return 'wll', lambda: fit_crop_model(crop_tr, y_tr, crop_va, y_va, work, epochs=16, lr=3e-3, bs=4, aux=1.0, device='cpu', seed=seed,
                                         in_ch=3, encoder='small', widths=(16, 32, 64), hidden=32, quiet=True)


STUDIES = dict(dsb=dsb, isic2018=isic2018, echonet=echonet, rsna=rsna, rsna_cnn3d=rsna_cnn3d)


def run(study, n, rule, seed, tmp):
    "Train `study` in `n` processes with `rule`; rank 0's score, the rule and factor it used, and the wall time."
    work = Path(tempfile.mkdtemp(dir=tmp))
    seed_everything(seed)                                  # the DataLoaders draw their shuffling seed from the global state when built
    metric, train_fn = STUDIES[study](work/'train', seed)
    res = work/'res.json'
    def train():
        with contextlib.redirect_stdout(io.StringIO()): learn = train_fn()
        if not rank_distrib(): res.write_text(json.dumps(dict(score=checkpoint_score(learn, metric), **learn.lr_scaling)))
    t, threads = time.perf_counter(), torch.get_num_threads()
    torch.set_num_threads(1)
    try: launch(train, num_processes=n, seed=seed, lr_scaling=rule)
    finally: torch.set_num_threads(threads)
    return dict(study=study, metric=metric, seed=seed, lr_scaling=rule, **json.loads(res.read_text()), seconds=round(time.perf_counter() - t, 1))


def table(df):
    "One row per study: the 1-process score, 2 processes under each rule, and how far the default ('auto') and 'split_batch' fall short of 1 process."
    rows, order = [], list(STUDIES)
    df = df.iloc[np.argsort([order.index(s) for s in df.study], kind='stable')]           # DSB, ISIC 2018, EchoNet, RSNA
    for (study, metric), g in df.groupby(['study', 'metric'], sort=False):
        m = g.groupby(['processes', 'lr_scaling']).score.mean()
        one = m.get((1, 'auto'))
        short = lambda v: None if v is None or one is None else round(one - v if HIGHER[metric] else v - one, 3)   # > 0: 2 processes worse
        auto = g[(g.processes == 2) & (g.lr_scaling == 'auto')]
        counts = g.groupby(['processes', 'lr_scaling']).seed.nunique()
        seeds = f"{counts.max()}" + ''.join(f" ({r}: {c})" for (n, r), c in counts.items() if c != counts.max())   # runs per setting, averaged
        row = {'study': study, 'score': f"{metric} ({'higher' if HIGHER[metric] else 'lower'} is better)", 'seeds': seeds, '1 process': one}
        for r in ('none', 'auto', 'split_batch'):
            if (2, r) in m: row[f"2 processes, {r}" + (f" ({auto['rule'].iloc[0]} x{auto['factor'].iloc[0]:.3g})" if r == 'auto' and len(auto) else '')] = m[(2, r)]
        row.update({'shortfall auto': short(m.get((2, 'auto'))), 'shortfall split_batch': short(m.get((2, 'split_batch'))), 'goal': GOAL[metric]})
        rows.append(row)
    return pd.DataFrame(rows)


def per_seed(df):
    "Every run's score: a row per study and seed, a column per setting (the spread behind the means)."
    order = list(STUDIES)
    t = df.pivot_table(index=['study', 'seed'], columns=['processes', 'lr_scaling'], values='score')
    t = t.iloc[np.argsort([order.index(s) * 1000 + seed for s, seed in t.index], kind='stable')]
    t.columns = [f'{n} process{"es" if n > 1 else ""}' + (f', {r}' if n > 1 else '') for n, r in t.columns]
    return t.reset_index()


def markdown(df) -> str:
    "`df` as a Markdown table (no tabulate needed)."
    fmt = lambda v: ('' if np.isnan(v) else f'{v:.3f}') if isinstance(v, float) else str(v)
    return '\n'.join(['| ' + ' | '.join(df.columns) + ' |', '|' + '---|' * len(df.columns)] +
                     ['| ' + ' | '.join(fmt(v) for v in r) + ' |' for r in df.itertuples(index=False)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--studies', nargs='+', default=['dsb', 'isic2018', 'echonet', 'rsna'], choices=list(STUDIES))
    ap.add_argument('--seeds', type=int, nargs='+', default=[42])
    ap.add_argument('--rules', nargs='+', default=['none', 'auto', 'split_batch'], help='lr_scaling rules to compare for 2 processes')
    ap.add_argument('--out', default=None, help='CSV of every run (default: print only)')
    ap.add_argument('--table', nargs='+', default=None, help="only print the table of these CSVs (written by --out)")
    a = ap.parse_args()
    if a.table:
        df = pd.concat([pd.read_csv(f) for f in a.table], ignore_index=True)
        print(markdown(table(df)) + '\n\nEvery run:\n\n' + markdown(per_seed(df))); return
    os.environ['MEDREPRO_BATCH'] = '1'
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in a.seeds:
            for study in a.studies:
                for n, rule in [(1, 'auto')] + [(2, r) for r in a.rules]:
                    rows.append(run(study, n, rule, seed, tmp))
                    print(' '.join(f'{k}={v}' for k, v in rows[-1].items()), flush=True)
                    if a.out: Path(a.out).parent.mkdir(parents=True, exist_ok=True); pd.DataFrame(rows).to_csv(a.out, index=False)   # after every run
    print(markdown(table(pd.DataFrame(rows))) + '\n\nEvery run:\n\n' + markdown(per_seed(pd.DataFrame(rows))))


if __name__ == '__main__':
    main()
