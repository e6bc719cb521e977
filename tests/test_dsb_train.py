"dsb.train through the shared data-parallel switch (issue #12): two CPU processes over gloo, the same code as one."
import os
from pathlib import Path
import pandas as pd, pytest, torch
from medrepro.core import ModelConfig, save_model, load_model
from medrepro.sample import generate
from medrepro.nets import MaskLoss, MaskScore
from medrepro.train import make_learner
from medrepro.dsb import data as D
from medrepro.dsb.train import train_model
from ranks import record_rank, run_two_ranks

ROOT = Path(__file__).resolve().parents[1]


def _dls(tmp_path, per_image=3):
    items = D.dsb_items(generate('dsb2018', tmp_path/'dsb', n=16, seed=0))
    split = {k: [items[i].id for i in v] for k, v in D.split_images(len(items), seed=42).items()}
    ds = D.load_crops([it for it in items if it.id not in set(split['test'])], 32, per_image=per_image, seed=42)
    return D.dsb_dataloaders(ds, split['train'], split['valid'], bs=4, seed=42, device='cpu')


@pytest.mark.slow
def test_two_gloo_processes_train_the_dsb_model_like_one(tmp_path):
    dls = _dls(tmp_path)
    assert len(dls.valid_ds) % 2 == 1                      # the distributed sampler pads the validation set: the metric must not count the pad
    out, ranks = tmp_path/'run', tmp_path/'ranks'; ranks.mkdir()
    cfg = ModelConfig('resunet', dict(filters=[4, 8, 16, 32, 64]))   # with BatchNorm: its running statistics must agree too

    def train():
        learn = train_model(dls, cfg, 'bce', epochs=3, lr=1e-2, out_dir=out, one_cycle=True)
        record_rank(ranks, dict(resunet=learn))
        save_model(out/'model', learn.model, cfg)

    w0 = run_two_ranks(train, ranks, ['resunet'])['weights']['resunet']   # both finish, same numbers, identical weights
    assert sorted(p.name for p in out.iterdir()) == ['history.csv', 'model']       # one history, one checkpoint
    assert sorted(p.name for p in (out/'model').iterdir()) == ['config.json', 'model.pth']
    hist = pd.read_csv(out/'history.csv')
    assert len(hist) == 3
    best = hist.loc[hist.valid_loss.idxmin()]              # BestCheckpoints reloaded this epoch's weights
    model, _ = load_model(out/'model')
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), w0.values()))
    one = make_learner(dls, model, MaskLoss('bce'), metrics=[MaskScore('dice'), MaskScore('jaccard')], out_dir=tmp_path/'eval', callbacks=False)
    with one.no_bar(), one.no_logging(): _, dice, jac = one.validate()
    assert (dice, jac) == pytest.approx((best['dice'], best['jaccard']), abs=1e-6)  # the gathered score is the whole set's


@pytest.mark.slow
def test_notebook_33_with_two_processes_under_papermill(tmp_path):
    "`papermill nbs/33_dsb.train.ipynb ... -p num_processes 2` runs headless and saves one model trained by two processes."
    import papermill as pm
    env = {'MEDREPRO_REPORTS': str(tmp_path/'reports'), 'MEDREPRO_ROOT': str(ROOT), 'MEDREPRO_BATCH': '1'}
    old = {k: os.environ.get(k) for k in env}; os.environ.update(env)
    try:
        pm.execute_notebook(str(ROOT/'nbs'/'33_dsb.train.ipynb'), str(tmp_path/'33.ipynb'), cwd=str(ROOT), kernel_name='python3',
                            parameters=dict(num_processes=2, epochs=2, baseline=False, n_max=10, crops_per_image=2), progress_bar=False)
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    runs = pd.read_csv(tmp_path/'reports'/'dsb'/'train'/'runs.csv')
    assert runs[['run', 'processes', 'epochs']].values.tolist() == [['resunet', 2, 2]]
    _, cfg = load_model(tmp_path/'reports'/'dsb'/'models'/'resunet')
    assert cfg.meta['num_processes'] == 2
    assert not list((tmp_path/'reports').rglob('*best*.pth'))
