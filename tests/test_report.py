import json, subprocess, sys
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
    assert report.study_of('31_dsb_train.ipynb') == 'dsb' and report.study_of('12_x.ipynb') == 'rsna'
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


def test_cli_exits_nonzero_on_failure(tmp_path, monkeypatch):
    nbs = tmp_path/'proj'/'nbs'; nbs.mkdir(parents=True)
    (tmp_path/'proj'/'pyproject.toml').write_text('')
    (tmp_path/'proj'/'params'/'smoke').mkdir(parents=True)
    _nb(nbs/'10_bad.ipynb', 'raise RuntimeError("kaput")')
    code = ('import sys; from pathlib import Path; import medrepro.report as r, medrepro.core as c;'
            f'c.project_root = lambda: Path({str(tmp_path/"proj")!r}); r.project_root = c.project_root;'
            'r.main(no_html=True)')
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 1
    assert '10_bad.ipynb: cell 1' in res.stderr and 'RuntimeError: kaput' in res.stderr


def test_papermill_cli_with_parameter(tmp_path):
    "`papermill nbs/<notebook> out.ipynb -p ...` works: the parameters tag survived nbdev-clean."
    out = tmp_path/'out.ipynb'
    r = subprocess.run([str(Path(sys.executable).parent/'papermill'), str(ROOT/'nbs'/'00_core.ipynb'), str(out), '-p', 'seed', '5',
                        '--cwd', str(ROOT/'nbs'), '--no-progress-bar'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    cells = json.loads(out.read_text())['cells']
    injected = [c for c in cells if 'injected-parameters' in c['metadata'].get('tags', [])]
    assert injected and 'seed = 5' in ''.join(injected[0]['source'])
