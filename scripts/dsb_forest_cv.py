"""Issue 26 (DSB): the pixel forest and the classical baselines, cross-validated on every real image, as notebook 34 does it.

Notebook 34's section "A pixel forest and a stronger classical baseline" runs the same code on the folder it scores;
this script runs it alone on the real images (no network needed) and writes the same tables:

    PYTHONPATH=lib .venv/bin/python scripts/dsb_forest_cv.py [--data ../shared/data/dsb2018] [--folds 3] [--n-max N] [--trees 30 --samples 1500 --depth 14 --out-suffix _big] [--no-context] [--no-objects]

Writes reports/dsb/evaluate/forest_cv_scores.csv (every image x setting), forest_cv.csv (per fold, at the setting the
other folds chose), forest_cv_summary.csv and forest_by_type.csv, and prints the CPU time (resource.getrusage).
"""
import argparse, resource, warnings
import numpy as np, pandas as pd
from medrepro.core import reports_dir, save_table
from medrepro.data import dataset_path, kfold
from medrepro.dsb.data import dsb_items, load_item
from medrepro.dsb.eda import colour_stats, modalities
from medrepro.dsb.evaluate import forest_cv, cross_choose


def cpu(): r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--data', default='../shared/data/dsb2018')
    ap.add_argument('--folds', type=int, default=3)
    ap.add_argument('--n-max', type=int, default=None)
    ap.add_argument('--trees', type=int, default=30)
    ap.add_argument('--samples', type=int, default=1500, help='pixels sampled per training image (a third per class)')
    ap.add_argument('--depth', type=int, default=14)
    ap.add_argument('--no-context', action='store_true', help='skip the auto-context forest (about two thirds of the CPU time)')
    ap.add_argument('--no-objects', action='store_true', help='skip the object model that picks among candidate nuclei (method objects)')
    ap.add_argument('--out-suffix', default='', help='appended to the table names (a variant beside the default run)')
    a = ap.parse_args()
    c0 = cpu()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); items = dsb_items(dataset_path('dsb2018', a.data, source='raw'))
    items = items[:a.n_max] if a.n_max else items
    pairs = {it.id: load_item(it) for it in items}
    kind = dict(zip(pairs, modalities(pd.DataFrame([colour_stats(v[0]) for v in pairs.values()]), seed=0)))
    strata = pd.Series([kind[i] for i in pairs]); strata[strata.map(strata.value_counts()) < a.folds] = 'rare'
    if (strata == 'rare').sum() < a.folds: strata[strata == 'rare'] = strata.value_counts().index[0]
    fold = {i: k for k, f in enumerate(kfold(len(pairs), a.folds, 42, strata=strata)) for i in np.array(list(pairs))[f['test']]}
    rows = forest_cv(pairs, fold, context=not a.no_context, objects=not a.no_objects, n=a.samples, n_trees=a.trees, max_depth=a.depth).assign(modality=lambda d: d['id'].map(kind))
    tab = cross_choose(rows)
    used = cpu() - c0
    keys = ['method', 'fold', 'threshold', 'seeds', 'h', 'min_size']
    chosen = rows.merge(tab[keys], on=keys)
    summ = tab.groupby('method')[['jaccard', 'instance_ap']].agg(['mean', 'std'])
    summ.columns = [f'{x} {y}' for x, y in summ.columns]
    bt = chosen.pivot_table(index='modality', columns='method', values=['jaccard', 'instance_ap'], aggfunc='mean')
    bt.columns = [f'{m} {s}' for s, m in bt.columns]
    bt = bt.join(chosen.drop_duplicates('id').groupby('modality').size().rename('images'))
    out = reports_dir('dsb')/'evaluate'; out.mkdir(parents=True, exist_ok=True)
    save_table(rows, out/f'forest_cv_scores{a.out_suffix}.csv'); save_table(tab, out/f'forest_cv{a.out_suffix}.csv')
    save_table(summ.reset_index(), out/f'forest_cv_summary{a.out_suffix}.csv'); save_table(bt.reset_index(), out/f'forest_by_type{a.out_suffix}.csv')
    pd.set_option('display.width', 200)
    print(f'{len(pairs)} images, {a.folds} folds, {used / 60:.1f} CPU minutes'); print(tab.round(3)); print(summ.round(3)); print(bt.round(3))


if __name__ == '__main__':
    main()
