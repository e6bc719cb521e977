"""Runs you can trace: manifest.json's run record (commit, versions, device, profile and parameters, data fingerprints), the
index's Run box, and one version number."""
import json, os, subprocess, sys, tomllib
from pathlib import Path
import pytest
import nbformat
from nbformat.v4 import new_notebook, new_code_cell
import medrepro
from medrepro import report

ROOT = Path(__file__).resolve().parents[1]


def test_one_version_from_one_place():
    "pyproject.toml reads the version from lib/medrepro/__init__.py (nbdev's put_version_in_init and bump-version own it)."
    proj = tomllib.loads((ROOT/'pyproject.toml').read_text())
    assert 'version' not in proj['project'] and 'version' in proj['project']['dynamic']
    assert proj['tool']['setuptools']['dynamic']['version'] == {'attr': 'medrepro.__version__'}
    assert proj['tool']['nbdev']['put_version_in_init'] is True
    from setuptools.config.pyprojecttoml import read_configuration
    assert read_configuration(ROOT/'pyproject.toml')['project']['version'] == medrepro.__version__
    from nbdev.config import get_config
    assert get_config(ROOT).version == medrepro.__version__


def test_folder_fingerprint_sees_added_changed_and_renamed_files(tmp_path):
    (tmp_path/'a').mkdir(); (tmp_path/'a'/'1.dcm').write_bytes(b'x' * 10); (tmp_path/'b.csv').write_text('id\n')
    fp = report.folder_fingerprint(tmp_path)
    assert (fp['files'], fp['bytes']) == (2, 13) and len(fp['sha1']) == 40
    assert report.folder_fingerprint(tmp_path) == fp                              # deterministic
    (tmp_path/'b.csv').rename(tmp_path/'c.csv'); fp2 = report.folder_fingerprint(tmp_path)
    assert fp2['sha1'] != fp['sha1'] and fp2['bytes'] == fp['bytes']
    (tmp_path/'d.txt').write_text(''); assert report.folder_fingerprint(tmp_path)['files'] == 3


def test_run_record_fields():
    r = report.run_record('smoke', {'lr': 1e-3})
    for k in ('python', 'torch', 'torchvision', 'fastai', 'numpy', 'pandas', 'pydicom', 'papermill', 'medrepro'): assert k in r['versions'], k
    assert r['versions']['medrepro'] == medrepro.__version__
    assert r['device']['cpu'] and isinstance(r['device']['gpus'], list)
    assert r['profile'] == 'smoke' and r['parameters'] == {'lr': 0.001}
    json.dumps(r)                                                                  # JSON as it is


def _git(cwd, *args): subprocess.run(['git', '-c', 'user.name=t', '-c', 'user.email=t@t', *args], cwd=cwd, check=True, capture_output=True)


def test_cli_writes_the_run_record_and_the_index_shows_it(tmp_path):
    proj = tmp_path/'proj'; (proj/'nbs').mkdir(parents=True); (proj/'pyproject.toml').write_text('')
    (proj/'params'/'smoke').mkdir(parents=True)
    cells = [new_code_cell('lr = 0.1', metadata={'tags': ['parameters']}),
             new_code_cell('from medrepro.core import reports_dir\n(reports_dir("dsb")/"a.csv").write_text(f"lr\\n{lr}\\n")')]
    nbformat.write(new_notebook(cells=cells, metadata={'kernelspec': {'name': 'python3', 'display_name': 'python3', 'language': 'python'}}),
                   proj/'nbs'/'30_beta.ok.ipynb')
    (proj/'data'/'sample'/'dsb2018').mkdir(parents=True); (proj/'data'/'sample'/'dsb2018'/'x.png').write_bytes(b'png')
    elsewhere = tmp_path/'store'; (elsewhere/'raw'/'isic2019').mkdir(parents=True); (elsewhere/'raw'/'isic2019'/'m.csv').write_text('a,b\n')
    (proj/'.gitignore').write_text('reports/\ndata/\n')
    _git(proj, 'init', '-q'); _git(proj, 'add', '.'); _git(proj, 'commit', '-qm', 'x')
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=proj, capture_output=True, text=True).stdout.strip()
    (proj/'nbs'/'notes.md').write_text('uncommitted')                             # the tree is dirty
    env = {**os.environ, 'MEDREPRO_ROOT': str(proj), 'MEDREPRO_DATA': str(elsewhere)}
    r = subprocess.run([sys.executable, '-c', 'from medrepro.report import main; main()', '--no-html', '-p', 'lr', '1e-3'],
                       cwd=proj, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    man = json.loads((proj/'reports'/'manifest.json').read_text())
    assert man['30_beta.ok.ipynb'] == ['dsb/a.csv']                               # the notebook entries as before
    assert report._manifest(proj/'reports')['30_beta.ok.ipynb'] == ['dsb/a.csv']
    run = man[report.RUN_KEY]
    assert run['git']['commit'] == head and run['git']['dirty'] is True and 'nbs/notes.md' in run['git']['changed']
    assert run['profile'] == 'smoke' and run['parameters'] == {'lr': 0.001} and run['notebooks'] == {'30_beta.ok.ipynb': 'ok'}
    assert run['kernel'] == report.default_kernel()
    data = {Path(d['path']).name: d for d in run['data']}
    assert data['dsb2018']['files'] == 1 and data['dsb2018']['bytes'] == 3 and data['isic2019']['files'] == 1
    page = (proj/'reports'/'index.html').read_text()
    for t in ('<b>Run</b>', head[:12], 'uncommitted changes', 'lr=0.001', 'torch', 'dsb2018', data['dsb2018']['sha1'][:12]): assert t in page, t
    assert report.RUN_KEY not in page.split('<nav>')[1]                          # not listed as a notebook or a study
