"""`make lab` as a user meets it: no batch setting reaches the kernels, the kernel `medrepro` is this environment's Python,
is the one JupyterLab selects, and shows a figure inline."""
import json, os, subprocess, sys, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNEL = 'medrepro'


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    "The environment and arguments `make lab` gives JupyterLab, recorded by a stand-in VENV whose bin/jupyter writes them down."
    tmp = tmp_path_factory.mktemp('lab')
    venv, rec = tmp/'venv', tmp/'lab.json'
    (venv/'bin').mkdir(parents=True)
    (venv/'bin'/'python').symlink_to(sys.executable)
    jup = venv/'bin'/'jupyter'
    jup.write_text(f'#!{sys.executable}\nimport json, os, sys\n'
                   f'json.dump(dict(env=dict(os.environ), argv=sys.argv[1:]), open({str(rec)!r}, "w"))\n')
    jup.chmod(0o755)
    (venv/'.installed').touch()                     # newer than pyproject.toml and constraints.txt: set up already
    env = {**os.environ, 'MPLBACKEND': 'Agg', 'MEDREPRO_BATCH': '1'}   # even from a shell that exported the batch settings
    r = subprocess.run(['make', '-s', 'lab', f'VENV={venv}'], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(rec.read_text())


def test_make_lab_passes_no_batch_setting_and_selects_the_project_kernel(lab):
    assert 'MPLBACKEND' not in lab['env'] and 'MEDREPRO_BATCH' not in lab['env']
    assert lab['argv'][:2] == ['lab', 'nbs/']
    assert f'--MultiKernelManager.default_kernel_name={KERNEL}' in lab['argv']      # new notebooks get it too


def test_kernelspec_runs_this_environments_python():
    "Found where this environment's JupyterLab looks first (its own data folder), running its own interpreter."
    from jupyter_client.kernelspec import KernelSpecManager
    specs = KernelSpecManager().find_kernel_specs()
    assert KERNEL in specs, f'no kernelspec {KERNEL!r}: run make setup (scripts/install_kernel.py)'
    assert Path(specs[KERNEL]).resolve().is_relative_to(Path(sys.prefix).resolve()/'share'/'jupyter'), specs[KERNEL]
    spec = KernelSpecManager().get_kernel_spec(KERNEL)
    assert Path(spec.argv[0]).parent.parent.resolve() == Path(sys.prefix).resolve(), spec.argv
    assert spec.env['MPLBACKEND'] == 'module://matplotlib_inline.backend_inline'
    assert '`torch.jit.script` is deprecated' in spec.env['PYTHONWARNINGS']


def _run(kc, code, timeout=180):
    "Execute `code`; the iopub messages it caused, until the kernel is idle again."
    mid, msgs, t0 = kc.execute(code), [], time.time()
    while time.time() - t0 < timeout:
        m = kc.get_iopub_msg(timeout=timeout)
        if m['parent_header'].get('msg_id') != mid: continue
        msgs.append(m)
        if m['msg_type'] == 'status' and m['content']['execution_state'] == 'idle': return msgs
    raise TimeoutError(code)


def test_kernel_started_as_make_lab_does_shows_figures_inline_and_no_library_noise(lab):
    from jupyter_client import KernelManager
    km = KernelManager(kernel_name=KERNEL)
    km.start_kernel(env=lab['env'])
    try:
        kc = km.client(); kc.start_channels(); kc.wait_for_ready(timeout=120)
        msgs = _run(kc, 'import matplotlib.pyplot as plt; plt.plot([1, 2]); plt.show()')
        assert any(m['msg_type'] == 'display_data' and 'image/png' in m['content']['data'] for m in msgs), \
            [m['msg_type'] for m in msgs]
        out = _run(kc, 'import sys; print(sys.prefix)')
        prefix = ''.join(m['content']['text'] for m in out if m['msg_type'] == 'stream').strip()
        assert Path(prefix).resolve() == Path(sys.prefix).resolve()
        noise = _run(kc, 'import fastai.vision.all\nfrom tqdm.auto import tqdm\nfor _ in tqdm(range(2)): pass')
        err = ''.join(m['content'].get('text', '') for m in noise if m['msg_type'] == 'stream' and m['content']['name'] == 'stderr')
        assert 'torch.jit.script' not in err and 'IProgress not found' not in err and 'Warning' not in err, err
        assert not [m for m in noise if m['msg_type'] == 'error'], noise
    finally:
        km.shutdown_kernel(now=True)
