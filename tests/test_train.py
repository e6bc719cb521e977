import json, os, subprocess, sys
from pathlib import Path
import nbformat
import pandas as pd, pytest, torch
from fastai.callback.tracker import ReduceLROnPlateau, EarlyStoppingCallback
from fastai.callback.progress import CSVLogger
from fastai.data.core import DataLoaders
from torch.utils.data import TensorDataset
from medrepro.core import seed_everything
from medrepro.core import ModelConfig, register_model, load_model
from medrepro.train import keras_callbacks, make_learner, BestCheckpoints, fit


def _dls():
    seed_everything(0)
    x = torch.randn(40, 3); y = x @ torch.tensor([[1.], [-1.], [2.]])
    return DataLoaders.from_dsets(TensorDataset(x[:32], y[:32]), TensorDataset(x[32:], y[32:]), bs=8, device='cpu')


def test_keras_mapping():
    cbs = keras_callbacks(monitor='dice', comp=None, lr_factor=0.1, lr_patience=5, min_lr=1e-7, es_patience=20)
    kinds = {type(c): c for c in cbs}
    assert set(kinds) == {BestCheckpoints, ReduceLROnPlateau, CSVLogger, EarlyStoppingCallback}
    assert kinds[BestCheckpoints].monitors['best'][0] == 'dice'
    r = kinds[ReduceLROnPlateau]
    assert r.factor == pytest.approx(10) and r.patience == 5 and r.min_lr == 1e-7 and r.monitor == 'dice'
    assert kinds[EarlyStoppingCallback].patience == 20


def test_learner_trains_logs_and_keeps_no_checkpoint_file(tmp_path):
    learn = make_learner(_dls(), torch.nn.Linear(3, 1), torch.nn.MSELoss(), lr=0.1, out_dir=tmp_path)
    with learn.no_bar(), learn.no_logging(): learn.fit(3)
    h = pd.read_csv(tmp_path/'history.csv')
    assert len(h) == 3 and h.valid_loss.iloc[-1] < h.valid_loss.iloc[0]
    assert sorted(f.name for f in tmp_path.iterdir()) == ['history.csv']      # the best epoch is kept in memory: the report keeps models once


@register_model('test_linear3')
def _lin3(): return torch.nn.Linear(3, 1)


def test_best_checkpoints_reload_and_save_the_best_epoch(tmp_path):
    learn = make_learner(_dls(), _lin3(), torch.nn.MSELoss(), lr=0.9, out_dir=tmp_path, lr_patience=None, es_patience=None,
                         checkpoints={'loss': ('valid_loss', None), 'train': ('train_loss', None)}, folder=tmp_path, config=ModelConfig('test_linear3'))
    with learn.no_bar(), learn.no_logging(): learn.fit(4)
    h = pd.read_csv(tmp_path/'history.csv')
    best = int(h.valid_loss.idxmin())
    m, cfg = load_model(tmp_path/'best_loss')
    assert cfg.meta['epoch'] == best and cfg.meta['checkpoint'] == 'loss'
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), learn.model.state_dict().values()))   # reloaded: the best epoch
    assert load_model(tmp_path/'best_train')[1].meta['epoch'] == int(h.train_loss.idxmin())
    x, y = learn.dls.valid_ds.tensors
    assert torch.nn.functional.mse_loss(learn.model(x), y).item() == pytest.approx(h.valid_loss.min(), rel=1e-4)


def test_best_checkpoints_reload_none_keeps_the_last_epoch(tmp_path):
    learn = make_learner(_dls(), _lin3(), torch.nn.MSELoss(), lr=0.9, out_dir=tmp_path, lr_patience=None, es_patience=None, reload=None)
    with learn.no_bar(), learn.no_logging(): learn.fit(3)
    x, y = learn.dls.valid_ds.tensors
    assert torch.nn.functional.mse_loss(learn.model(x), y).item() == pytest.approx(pd.read_csv(tmp_path/'history.csv').valid_loss.iloc[-1], rel=1e-4)


def test_best_checkpoints_names_a_missing_metric(tmp_path):
    learn = make_learner(_dls(), _lin3(), torch.nn.MSELoss(), lr=0.1, out_dir=tmp_path, monitor='dice')
    with pytest.raises(Exception, match="monitors \\['dice'\\]"), learn.no_bar(), learn.no_logging(): learn.fit(1)


TRAIN_NB = [
    "num_processes = 1\nepochs = 2",
    "import json, os, torch\nfrom pathlib import Path\nfrom fastai.data.core import DataLoaders\nfrom fastai.metrics import AccumMetric\n"
    "from fastai.torch_core import rank_distrib, num_distrib\nfrom torch.utils.data import TensorDataset\n"
    "from medrepro.train import make_learner, launch, data_parallel\nout = Path(os.environ['OUT'])",
    "def train():\n    g = torch.Generator().manual_seed(0); x = torch.randn(60, 3, generator=g); y = x @ torch.tensor([[1.], [-2.], [.5]])\n"
    "    dls = DataLoaders.from_dsets(TensorDataset(x[:40], y[:40]), TensorDataset(x[40:], y[40:]), bs=8, device='cpu')\n"
    "    learn = make_learner(dls, torch.nn.Linear(3, 1), torch.nn.MSELoss(), lr=5e-2, out_dir=out, save_best=False, es_patience=None, lr_patience=None)\n"
    "    with data_parallel(learn), learn.no_bar(): learn.fit(epochs)\n"
    "    (out/f'rank{rank_distrib()}.json').write_text(json.dumps(dict(world=num_distrib(), w=learn.model.weight.tolist())))\n"
    "launch(train, num_processes)",
]


def _train_nb(tmp_path):
    proj = tmp_path/'proj'; (proj/'nbs').mkdir(parents=True); (proj/'params'/'smoke').mkdir(parents=True)
    (proj/'pyproject.toml').write_text('')
    cells = [nbformat.v4.new_code_cell(TRAIN_NB[0], metadata={'tags': ['parameters']})] + [nbformat.v4.new_code_cell(s) for s in TRAIN_NB[1:]]
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={'kernelspec': {'name': 'python3', 'display_name': 'python3', 'language': 'python'}}), proj/'nbs'/'33_t.ipynb')
    (tmp_path/'out').mkdir()
    return proj


@pytest.mark.slow
def test_script_route_under_torchrun_two_cpu_processes(tmp_path):
    "`torchrun ... medrepro-train <nb>`: the notebook's code runs without Jupyter in 2 gloo processes with identical weights."
    proj = _train_nb(tmp_path)
    env = {**os.environ, 'OUT': str(tmp_path/'out'), 'MEDREPRO_ROOT': str(proj)}
    bin_ = Path(sys.executable).parent
    r = subprocess.run([str(bin_/'torchrun'), '--nproc-per-node', '2', '--master-port', str(_port()), str(bin_/'medrepro-train'),
                        str(proj/'nbs'/'33_t.ipynb'), '-p', 'epochs', '3'], capture_output=True, text=True, env=env, timeout=300, cwd=proj)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path/'out'/f'rank{i}.json').read_text()) for i in (0, 1)]
    assert ranks[0]['world'] == ranks[1]['world'] == 2 and ranks[0]['w'] == ranks[1]['w']
    assert len(pd.read_csv(tmp_path/'out'/'history.csv')) == 3                    # -p epochs 3 reached the code; one history
    assert r.stdout.count('epoch 3/3') == 1                                          # one log line per epoch, from rank 0


def test_script_route_one_process_and_bad_parameter(tmp_path):
    proj = _train_nb(tmp_path)
    env = {**os.environ, 'OUT': str(tmp_path/'out'), 'MEDREPRO_ROOT': str(proj)}
    exe = str(Path(sys.executable).parent/'medrepro-train')
    r = subprocess.run([exe, str(proj/'nbs'/'33_t.ipynb')], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((tmp_path/'out'/'rank0.json').read_text())['world'] == 0 and not (tmp_path/'out'/'rank1.json').exists()
    r = subprocess.run([exe, str(proj/'nbs'/'33_t.ipynb'), '-p', 'epochz', '3'], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0 and "declares no parameter 'epochz'" in r.stderr


def _port():
    import socket
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


FORK_AFTER_THREADS = '''
import json, sys, torch
from pathlib import Path
from fastai.data.core import DataLoaders
from fastai.torch_core import rank_distrib, num_distrib
from torch.utils.data import TensorDataset
from medrepro.train import make_learner, launch, data_parallel
torch.set_num_threads(2)
torch.randn(4_000_000).exp().sum()                      # the kernel has run a multi-threaded (OpenMP) op before launching
x = torch.randn(48, 3); y = x.sum(1, keepdim=True)
dls = DataLoaders.from_dsets(TensorDataset(x[:40], y[:40]), TensorDataset(x[40:], y[40:]), bs=8, device='cpu')
out = Path(sys.argv[1])
def train():
    torch.randn(4_000_000).exp().sum()                  # and so does each process: a parallel region after fork
    learn = make_learner(dls, torch.nn.Linear(3, 1), torch.nn.MSELoss(), lr=1e-2, out_dir=out)
    with data_parallel(learn), learn.no_bar(), learn.no_logging(): learn.fit(2)
    (out/f'rank{rank_distrib()}.json').write_text(json.dumps(dict(world=num_distrib(), threads=torch.get_num_threads())))
launch(train, 2)
print('threads after', torch.get_num_threads())
'''


def test_launch_on_cpu_after_multithreaded_work(tmp_path):
    "OpenMP does not survive fork: launch must not hang when the parent already ran threaded ops; the parent's threads come back."
    (tmp_path/'s.py').write_text(FORK_AFTER_THREADS)
    p = subprocess.Popen([sys.executable, str(tmp_path/'s.py'), str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try: out, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9); p.communicate()
        pytest.fail('launch hung: the forked processes deadlocked in OpenMP')
    r = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path/f'rank{i}.json').read_text()) for i in (0, 1)]
    assert [d['world'] for d in ranks] == [2, 2] and [d['threads'] for d in ranks] == [1, 1]
    assert 'threads after 2' in r.stdout
