"""Issue 23 (3, 5): with CUDA the runner never lets two studies train on one GPU at once (fake device counts), runs
them in parallel when there are GPUs for both, and shows each notebook's printed lines live, prefixed with its name."""
import json, os, signal, time
from pathlib import Path
from unittest import mock
import nbformat, pytest
from nbformat.v4 import new_notebook, new_code_cell
from medrepro import report

KS = {'kernelspec': {'name': 'python3', 'display_name': 'python3', 'language': 'python'}}

# each notebook marks its start (with the GPU it was given), waits up to WAIT s for the other study's to start, marks its end
MARK = '''import os, json, time
from pathlib import Path
d, me, other = Path(os.environ['MARKS']), '{me}', '{other}'
(d/f'{{me}}.start').write_text(json.dumps(dict(t=time.time(), gpu=os.environ.get('CUDA_VISIBLE_DEVICES'))))
print(f'epoch 1 of {{me}}', flush=True)
for _ in range(int(float(os.environ['WAIT']) * 10)):
    if (d/f'{{other}}.start').exists(): break
    time.sleep(0.1)
print(f'epoch 2 of {{me}}', flush=True)
(d/f'{{me}}.end').write_text(json.dumps(dict(t=time.time())))'''


def _project(tmp_path):
    proj = tmp_path/'proj'; (proj/'nbs').mkdir(parents=True); (proj/'pyproject.toml').write_text(''); (proj/'params'/'smoke').mkdir(parents=True)
    for name, me, other in (('10_alpha.train.ipynb', 'alpha', 'beta'), ('30_beta.train.ipynb', 'beta', 'alpha')):
        cells = [new_code_cell('x = 1', metadata={'tags': ['parameters']}), new_code_cell(MARK.format(me=me, other=other))]
        nbformat.write(new_notebook(cells=cells, metadata=KS), proj/'nbs'/name)
    return proj


def _run(tmp_path, monkeypatch, capsys, n_gpus, wait):
    "The runner, in this process, with torch reporting `n_gpus` CUDA devices; the two notebooks' marks and the output."
    proj, marks = _project(tmp_path), tmp_path/'marks'
    marks.mkdir()
    monkeypatch.chdir(proj)
    for k, v in dict(MEDREPRO_ROOT=str(proj), MARKS=str(marks), WAIT=str(wait)).items(): monkeypatch.setenv(k, v)
    monkeypatch.delenv('CUDA_VISIBLE_DEVICES', raising=False)
    old = signal.getsignal(signal.SIGTERM)
    try:
        with mock.patch('torch.cuda.is_available', return_value=n_gpus > 0), mock.patch('torch.cuda.device_count', return_value=n_gpus):
            report.main(['--no-html', '-j', '4', '--out', str(proj/'reports')])
    finally: signal.signal(signal.SIGTERM, old)
    read = lambda n: json.loads((marks/n).read_text())
    return {s: dict(**read(f'{s}.start'), end=read(f'{s}.end')['t']) for s in ('alpha', 'beta')}, capsys.readouterr().out, proj


@pytest.mark.slow
def test_one_gpu_two_studies_never_share_it(tmp_path, monkeypatch, capsys):
    m, out, proj = _run(tmp_path, monkeypatch, capsys, n_gpus=1, wait=4)
    assert 'up to 1 at once' in out and 'one study per GPU at a time, never two on one GPU' in out
    first, second = sorted(m.values(), key=lambda r: r['t'])
    assert second['t'] >= first['end'], m                                       # the second started after the first ended
    assert first['gpu'] == second['gpu'] == '0'
    assert '[alpha] on GPU 0 (CUDA_VISIBLE_DEVICES=0)' in out and '[beta] on GPU 0 (CUDA_VISIBLE_DEVICES=0)' in out


@pytest.mark.slow
def test_two_gpus_run_two_studies_at_once_and_show_their_lines_live(tmp_path, monkeypatch, capsys):
    m, out, proj = _run(tmp_path, monkeypatch, capsys, n_gpus=2, wait=150)
    assert m['alpha']['t'] < m['beta']['end'] and m['beta']['t'] < m['alpha']['end'], m     # they overlapped
    assert {m['alpha']['gpu'], m['beta']['gpu']} == {'0', '1'}                              # each on its own GPU
    assert 'up to 2 at once' in out
    for s, nb in (('alpha', '10_alpha.train'), ('beta', '30_beta.train')):
        assert f'[{nb}] epoch 1 of {s}' in out and f'[{nb}] epoch 2 of {s}' in out       # live, prefixed with the notebook
        log = (proj/'reports'/'notebooks'/f'{nb}.log').read_text()
        assert log.splitlines()[:2] == [f'epoch 1 of {s}', f'epoch 2 of {s}']          # the log beside the executed notebook
        assert (proj/'reports'/'notebooks'/f'{nb}.ipynb').exists()


def test_without_cuda_there_are_no_gpu_slots(monkeypatch):
    with mock.patch('torch.cuda.is_available', return_value=False): assert report.gpu_slots() == []
    with mock.patch('torch.cuda.is_available', return_value=True), mock.patch('torch.cuda.device_count', return_value=2):
        monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '3,5')
        assert report.gpu_slots() == ['3', '5'] and report.gpu_slots(2) == ['3,5']
        with pytest.raises(ValueError, match='only 2 GPUs'): report.gpu_slots(3)
