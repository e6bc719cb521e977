import json, os, subprocess, sys, time
import pandas as pd
from pathlib import Path
import nbformat, pytest
from nbformat.v4 import new_notebook, new_code_cell
from medrepro import report
from medrepro.core import project_root

ROOT = project_root()
KS = {'kernelspec': {'name': 'python3', 'display_name': 'python3', 'language': 'python'}}


def _nb(path, *sources, params='x = 1'):
    cells = [new_code_cell(params, metadata={'tags': ['parameters']})] + [new_code_cell(s) for s in sources]
    nbformat.write(new_notebook(cells=cells, metadata=KS), path)
    return path


def test_numbered_notebooks_and_studies():
    nbs = report.numbered_notebooks()
    assert nbs and nbs == sorted(nbs)
    assert all(p.name[:2].isdigit() for p in nbs)
    assert report.study_of('31_dsb.eda.ipynb') == 'dsb' and report.study_of('40a_isic2018.sample.ipynb') == 'isic2018'
    assert report.study_of('05_report.ipynb') == 'core'
    assert [p.name for p in report.numbered_notebooks(only='00_*')] == ['00_core.ipynb']


def test_every_numbered_notebook_has_one_parameters_cell():
    for nb in report.numbered_notebooks():
        cells = json.loads(nb.read_text())['cells']
        tagged = [c for c in cells if 'parameters' in c.get('metadata', {}).get('tags', [])]
        assert len(tagged) == 1, f'{nb.name}: {len(tagged)} parameters cells'


def test_profiles(tmp_path):
    d = tmp_path/'params'/'p'; d.mkdir(parents=True)
    (d/'a.yaml').write_text("'3*': {epochs: 2, img_size: 64}\n'31_*': {epochs: 5}\n")
    assert report.profile_params('p', '31_dsb_train', params_dir=tmp_path/'params') == {'epochs': 5, 'img_size': 64}
    assert report.profile_params('p', '10_rsna', params_dir=tmp_path/'params') == {}
    with pytest.raises(FileNotFoundError, match='no such profile'):
        report.profile_params('nope', '31_x', params_dir=tmp_path/'params')
    (d/'b.yaml').write_text('- not a mapping\n')
    with pytest.raises(ValueError, match='b.yaml'):
        report.profile_params('p', '31_x', params_dir=tmp_path/'params')


def test_run_injects_params_and_writes_html(tmp_path):
    nb = _nb(tmp_path/'98_ok.ipynb', 'from medrepro.core import reports_dir\n(reports_dir("core")/"x.txt").write_text(str(x))')
    r = report.run_notebook(nb, tmp_path/'out', params={'x': 41, 'undeclared': 1})
    assert r['params'] == {'x': 41}
    assert (tmp_path/'out'/'notebooks'/'98_ok.ipynb').exists() and (tmp_path/'out'/'notebooks'/'98_ok.html').exists()
    assert (tmp_path/'out'/'core'/'x.txt').read_text() == '41'       # MEDREPRO_REPORTS reached the kernel
    idx = report.build_index(tmp_path/'out', 'smoke')
    assert '98_ok' in idx.read_text()


def test_failure_names_notebook_and_cell(tmp_path):
    nb = _nb(tmp_path/'97_bad.ipynb', 'y = 2', 'raise ValueError("broken on purpose")')
    with pytest.raises(report.NotebookFailed, match=r'97_bad.ipynb: cell 2 .*ValueError: broken on purpose'):
        report.run_notebook(nb, tmp_path/'out', html=False)
    assert not (tmp_path/'out'/'notebooks'/'97_bad.ipynb').exists()     # nothing half-written
    assert (tmp_path/'out'/'notebooks'/'97_bad.failed.ipynb').exists()


def _project(tmp_path, *nbs):
    "A throw-away project: pyproject.toml, nbs/ with the given (name, sources...) notebooks, params/smoke."
    proj = tmp_path/'proj'; (proj/'nbs').mkdir(parents=True); (proj/'pyproject.toml').write_text('')
    (proj/'params'/'smoke').mkdir(parents=True); (proj/'params'/'other').mkdir()
    for name, *src in nbs: _nb(proj/'nbs'/name, *src)
    return proj


def _cli(proj, *args, timeout=240):
    "Run medrepro-reports inside `proj` (the working directory decides the project root)."
    return subprocess.run([sys.executable, '-c', 'from medrepro.report import main; main()', *args], capture_output=True,
                          text=True, cwd=proj, timeout=timeout, env={**os.environ, 'MEDREPRO_ROOT': str(proj)})


def test_cli_runs_studies_in_parallel_and_reports_failures(tmp_path):
    proj = _project(tmp_path, ('10_alpha.bad.ipynb', 'raise RuntimeError("kaput")'), ('11_alpha.after.ipynb', 'y = 1'),
                    ('30_beta.ok.ipynb', 'from medrepro.core import reports_dir\n(reports_dir("dsb")/"a.csv").write_text("a\\n1\\n")'))
    res = _cli(proj, '--no-html', '-j', '2')
    assert res.returncode == 1
    out = res.stdout + res.stderr
    assert '[alpha] 10_alpha.bad.ipynb FAILED' in out and 'RuntimeError: kaput' in out and '[beta] 30_beta.ok.ipynb ok' in out
    assert 'Kernel is running over TCP' not in out and 'KeyboardInterrupt' not in out      # kernel noise filtered
    runs = pd.read_csv(proj/'reports'/'timings.csv').set_index('notebook').status.to_dict()
    assert runs == {'10_alpha.bad.ipynb': 'failed', '11_alpha.after.ipynb': 'not run', '30_beta.ok.ipynb': 'ok'}
    man = json.loads((proj/'reports'/'manifest.json').read_text())
    assert {k: v for k, v in man.items() if k != report.RUN_KEY} == {'30_beta.ok.ipynb': ['dsb/a.csv']}
    assert man[report.RUN_KEY]['notebooks'] == runs                                    # the run record, under its reserved key
    page = (proj/'reports'/'index.html').read_text()
    assert 'Not up to date' in page and '10_alpha.bad.ipynb (failed)' in page


def test_failed_notebook_keeps_previous_outputs(tmp_path):
    "A notebook's outputs appear together or not at all: a failing rerun leaves the last good figure and notebook."
    proj = _project(tmp_path, ('30_two.ipynb', 'from medrepro.core import reports_dir\n(reports_dir("dsb")/"t.csv").write_text(f"x\\n{x}\\n")',
                                'assert x < 5'))
    assert _cli(proj, '--no-html').returncode == 0
    assert _cli(proj, '--no-html', '-p', 'x', '9').returncode == 1
    assert (proj/'reports'/'dsb'/'t.csv').read_text() == 'x\n1\n'                        # not the failed run's 9
    assert 'x = 9' not in (proj/'reports'/'notebooks'/'30_two.ipynb').read_text()
    assert not list((proj/'reports').rglob('.tmp.*')) and not any((proj/'reports'/'.staging').iterdir())


def test_sigterm_leaves_no_partial_outputs(tmp_path):
    proj = _project(tmp_path, ('30_slow.ipynb', 'from medrepro.core import reports_dir\n(reports_dir("dsb")/"half.csv").write_text("x")',
                                'import time; time.sleep(60)'))
    p = subprocess.Popen([sys.executable, '-c', 'from medrepro.report import main; main()', '--no-html'], cwd=proj,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, 'MEDREPRO_ROOT': str(proj)})
    staging = proj/'reports'/'.staging'/'30_slow'/'dsb'/'half.csv'
    for _ in range(600):
        if staging.exists(): break
        time.sleep(0.1)
    assert staging.exists(), 'the notebook never started'
    p.terminate(); p.wait(timeout=60)
    assert p.returncode != 0
    assert not (proj/'reports'/'dsb'/'half.csv').exists()
    assert not [f for f in (proj/'reports').rglob('*') if f.is_file() and f.parent.name != '.locks']   # nothing half-written anywhere (the runner's lock files stay)


def test_cli_profile_errors_and_warnings(tmp_path):
    proj = _project(tmp_path, ('30_p.ipynb', 'print(x)'))
    res = _cli(proj, '--profile', 'nope')
    assert res.returncode != 0 and res.stderr.strip() == "unknown profile 'nope'; profiles: other, smoke"   # one line, no traceback
    (proj/'params'/'other'/'d.yaml').write_text("'3*': {img_sise: 64}\n")
    res = _cli(proj, '--profile', 'other', '--no-html', '-p', 'epochz', '2')
    assert res.returncode == 0, res.stdout + res.stderr
    assert "'3*' sets 'img_sise', which none of 30_p declares (misspelt?)" in res.stdout
    assert 'warning: -p epochz: no selected notebook declares it' in res.stdout


def test_second_clone_writes_into_its_own_reports(tmp_path):
    "Regression: with one install and two clones, a notebook run from the second clone writes into the second clone."
    proj = _project(tmp_path, ('00_where.ipynb', 'from medrepro.core import reports_dir, project_root\n(reports_dir("core")/"root.txt").write_text(str(project_root()))'))
    nb = proj/'nbs'/'00_where.ipynb'
    r = subprocess.run([str(Path(sys.executable).parent/'papermill'), str(nb), str(tmp_path/'o.ipynb'), '--cwd', str(proj/'nbs')],
                       capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k not in ('MEDREPRO_ROOT', 'MEDREPRO_REPORTS')})
    assert r.returncode == 0, r.stderr[-2000:]
    assert (proj/'reports'/'core'/'root.txt').read_text() == str(proj)                    # not the installed clone


def test_papermill_cli_with_parameter(tmp_path):
    "`papermill nbs/<notebook> out.ipynb -p ...` works: the parameters tag survived nbdev-clean."
    out = tmp_path/'out.ipynb'
    r = subprocess.run([str(Path(sys.executable).parent/'papermill'), str(ROOT/'nbs'/'00_core.ipynb'), str(out), '-p', 'seed', '5',
                        '--cwd', str(ROOT/'nbs'), '--no-progress-bar'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    cells = json.loads(out.read_text())['cells']
    injected = [c for c in cells if 'injected-parameters' in c['metadata'].get('tags', [])]
    assert injected and 'seed = 5' in ''.join(injected[0]['source'])


SLOW_NB = ('30_beta.slow.ipynb', 'import os, time\nfrom pathlib import Path\nPath(os.environ["STARTED"]).write_text(str(os.getpid()))\ntime.sleep(float(os.environ.get("NAP", "8")))',
           'from medrepro.core import reports_dir\n(reports_dir("beta")/"late.csv").write_text("x\\n1\\n")')


def _alive(pid) -> bool:
    try: os.kill(pid, 0)
    except ProcessLookupError: return False
    st = Path(f'/proc/{pid}/stat')
    return not (st.exists() and st.read_text().split(') ')[-1].startswith('Z'))      # a zombie is gone


@pytest.mark.skipif(sys.platform != 'linux', reason='parent-death signal: Linux')
def test_kill_9_of_the_runner_publishes_nothing_and_stops_its_children(tmp_path):
    "Issue 24 (7): the OOM killer's kill -9 of the runner: the child and the kernel stop, and nothing is published after."
    proj = _project(tmp_path, SLOW_NB)
    started = tmp_path/'started'
    p = subprocess.Popen([sys.executable, '-c', 'from medrepro.report import main; main()', '--no-html'], cwd=proj, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env={**os.environ, 'MEDREPRO_ROOT': str(proj), 'STARTED': str(started), 'NAP': '6'})
    for _ in range(1200):
        if started.exists() and started.read_text(): break
        time.sleep(0.1)
    assert started.exists(), 'the notebook never started'
    kernel = int(started.read_text())
    p.kill(); p.wait()
    for _ in range(300):                                              # the kernel would finish its nap after 6 s
        if not _alive(kernel): break
        time.sleep(0.1)
    time.sleep(8)
    assert not _alive(kernel), 'the kernel outlived the runner'
    assert not (proj/'reports'/'beta'/'late.csv').exists() and not (proj/'reports'/'notebooks'/'30_beta.slow.ipynb').exists()


def test_second_run_of_a_study_is_refused_with_the_other_pid(tmp_path):
    "Issue 24 (8): two runs of one study into one folder: the second stops at once, naming the first's pid."
    proj = _project(tmp_path, SLOW_NB)
    started = tmp_path/'started'
    env = {**os.environ, 'MEDREPRO_ROOT': str(proj), 'STARTED': str(started), 'NAP': '40'}   # long enough for a slow machine to start the second
    first = subprocess.Popen([sys.executable, '-c', 'from medrepro.report import main; main()', '--no-html'], cwd=proj,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for _ in range(1200):
        if started.exists(): break
        time.sleep(0.1)
    second = subprocess.run([sys.executable, '-c', 'from medrepro.report import main; main()', '--no-html'], cwd=proj,
                            capture_output=True, text=True, env=env, timeout=120)
    out = first.communicate(timeout=240)[0]
    assert first.returncode == 0, out[-2000:]
    assert second.returncode != 0
    assert second.stderr.strip() == f'study beta is already being run into {proj/"reports"} by process {first.pid}: wait for it, or use another --out'
    assert (proj/'reports'/'beta'/'late.csv').exists()                # the first run was not disturbed


def test_cli_errors_are_one_line(tmp_path):
    "Issue 24 (9): a profile that is not YAML, --out naming a file: one line naming the path, no traceback."
    proj = _project(tmp_path, ('30_beta.p.ipynb', 'print(x)'))
    (proj/'params'/'other'/'bad.yaml').write_text("'3*': {epochs: [1, 2}\n")
    res = _cli(proj, '--profile', 'other')
    assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert res.stderr.startswith(f"{proj/'params'/'other'/'bad.yaml'}: not valid YAML")
    (tmp_path/'afile').write_text('x')
    res = _cli(proj, '--out', str(tmp_path/'afile'))
    assert res.returncode != 0 and res.stderr.strip() == f"{tmp_path/'afile'}: --out must be a folder, and this is a file"


def test_p_values_parse_as_papermill_does(tmp_path):
    "Issue 28: `-p lr 1e-3` is a float through the runner, as through papermill."
    proj = _project(tmp_path, ('30_beta.lr.ipynb', 'from medrepro.core import reports_dir\n(reports_dir("beta")/"lr.txt").write_text(type(x).__name__ + " " + repr(x))'))
    res = _cli(proj, '--no-html', '-p', 'x', '1e-3')
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert (proj/'reports'/'beta'/'lr.txt').read_text() == 'float 0.001'
