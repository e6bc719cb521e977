"""Why the DSB report's recipe collapses on the 208 real images (issue 26 item 5): one report setting changed at a time.

Each variant trains the report's ResUNet with the report's recipe (profile `real-paper`: its split, 256x256, soft masks,
BCE, Adam 1e-4, batch 8, 10 epochs, Keras BatchNorm / initialisation / Adam constants) except for the one setting named,
then scores the report's way (256x256, threshold 0.5, undefined = 0) on the report split's held-out test images. Each
trained model is also scored after re-estimating its BatchNorm statistics on the training images (`reestimate_bn`), which
separates "the weights are bad" from "the running statistics have not caught up with the weights".

    PYTHONPATH=lib .venv/bin/python scripts/dsb_recipe_ablation.py [--data ../shared/data/dsb2018] [--only 0,1] [--out CSV]

CPU, one thread: about 25 CPU minutes per 10-epoch variant at 256x256 (the 32-epoch one about three times that); `--img-size 128`
keeps the steps, the batch and BatchNorm and costs about a quarter.
The table is written row by row to reports/dsb/evaluate/recipe_ablation.csv; notebook 34 shows it.
"""
import argparse, time, tempfile, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch
from medrepro.core import ModelConfig, seed_everything, reports_dir
from medrepro.data import dataset_path
from medrepro.dsb.data import dsb_items, load_item, resize_pair, DsbSet, paper_split, paper_train_order, dsb_dataloaders
from medrepro.dsb.train import train_model, keras_adam, reestimate_bn, RECIPE_VARIANTS, REPORT_RECIPE
from medrepro.dsb.evaluate import paper_scores
from medrepro.train import predict


def test_jaccard(model, x, truth):
    "Mean per-image Jaccard, the report's way (probability > 0.5 against the 256x256 truth, undefined = 0)."
    p = predict(model, x, bs=8, device='cpu', prep=lambda b, d: torch.from_numpy(np.array(b)).permute(0, 3, 1, 2).float().div(255))[:, 0] > 0.5
    return float(np.mean([paper_scores(pi, ti, 0.0)['jaccard'] for pi, ti in zip(p, truth)])), float(p.mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--data', default='../shared/data/dsb2018')
    ap.add_argument('--only', default=None, help='comma-separated variant numbers (default: all)')
    ap.add_argument('--out', default=None)
    ap.add_argument('--img-size', type=int, default=256, help="the report's 256; 128 costs a quarter (same steps, same BatchNorm)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(a.out) if a.out else reports_dir('dsb')/'evaluate'/'recipe_ablation.csv'
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); items = dsb_items(dataset_path('dsb2018', a.data, source='raw'))
    split = paper_split(len(items)); order = paper_train_order(len(items))
    ids = {k: [items[i].id for i in v] for k, v in dict(split, train=order).items()}
    fit_items = [it for it in items if it.id not in set(ids['test'])]
    test_items = [it for it in items if it.id in set(ids['test'])]
    S = a.img_size
    pairs = {it.id: load_item(it) for it in fit_items + test_items}          # each image read once
    def dsb_set(its, soft):
        xy = [resize_pair(pairs[it.id][0], pairs[it.id][1] > 0, S, 'linear', soft) for it in its]
        return DsbSet(list(its), np.stack([x for x, _ in xy]), np.stack([y for _, y in xy]), S, soft)
    sets = {s: dsb_set(fit_items, s) for s in (True, False)}
    test = dsb_set(test_items, True)
    truth = test.y.astype(np.float32) / 255 > 0.5                        # the report's paper_mask
    del pairs
    train_x = sets[True].x[[i for k in ids['train'] for i, it in enumerate(fit_items) if it.id == k]]
    todo = range(len(RECIPE_VARIANTS)) if a.only is None else [int(v) for v in a.only.split(',')]
    for v in todo:
        name, change = RECIPE_VARIANTS[v]
        r = dict(REPORT_RECIPE, **change)
        seed_everything(42)
        dls = dsb_dataloaders(sets[r['soft_masks']], ids['train'], ids['valid'], bs=8, seed=42, reshuffle=False, device='cpu')
        cfg = ModelConfig('resunet', dict(filters=[16, 32, 64, 128, 256], bn_momentum=r['bn_momentum'], bn_eps=r['bn_eps'], init=r['init']))
        t = time.time()
        learn = train_model(dls, cfg, 'bce', epochs=r['epochs'], lr=1e-4, out_dir=Path(tempfile.mkdtemp()), one_cycle=False,
                            opt_func=keras_adam(0.999, r['adam_eps'], 0.0), fp16=False)
        secs = time.time() - t
        h = pd.DataFrame(learn.recorder.values, columns=['train_loss', 'valid_loss', 'dice', 'jaccard'])
        j, fg = test_jaccard(learn.model, test.x, truth)
        j_bn, fg_bn = test_jaccard(reestimate_bn(learn.model, train_x), test.x, truth)
        row = dict(variant=v, name=name, change=', '.join(f'{k}={c}' for k, c in change.items()) or '(none)',
                   steps=len(dls.train) * r['epochs'], train_loss_last=h.train_loss.iloc[-1], valid_loss_best=h.valid_loss.min(),
                   best_epoch=int(h.valid_loss.to_numpy().argmin()) + 1, valid_loss_last=h.valid_loss.iloc[-1],
                   test_jaccard=j, test_fg_fraction=fg, test_jaccard_bn_reestimated=j_bn, test_fg_fraction_bn_reestimated=fg_bn,
                   truth_fg_fraction=float(truth.mean()), img_size=S, train_seconds=round(secs, 1), n_train=len(ids['train']), n_test=len(test_items))
        print(row, flush=True)
        prev = pd.read_csv(out) if out.exists() else pd.DataFrame()
        if len(prev): prev = prev[(prev['variant'] != v) | (prev.get('img_size', S) != S)]
        pd.concat([prev, pd.DataFrame([row])], ignore_index=True).sort_values(['img_size', 'variant']).to_csv(out, index=False)


if __name__ == '__main__':
    main()
