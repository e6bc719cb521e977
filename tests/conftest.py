"Shared pytest fixtures: where the real sample data beside the checkout lives."
import os, shutil
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get('MEDREPRO_SHARED_DATA', ROOT.parent/'shared'/'data'))


@pytest.fixture(scope='session')
def shared_data():
    "../shared/data beside the checkout (real public samples); tests using it skip when it is absent."
    if not SHARED.is_dir(): pytest.skip(f'real sample data not found at {SHARED} (set MEDREPRO_SHARED_DATA)')
    return SHARED


@pytest.fixture(autouse=True)
def _isolate_reports(tmp_path, monkeypatch):
    "Tests never write into the project's reports/ or data/ folders."
    monkeypatch.setenv('MEDREPRO_REPORTS', str(tmp_path/'reports'))
    monkeypatch.setenv('MPLBACKEND', 'Agg')


@pytest.fixture
def scratch_copy(tmp_path):
    "A function that copies a generated sample folder under this test's tmp_path, so a test may damage it freely."
    def copy(src):
        dst = tmp_path/'copy'
        shutil.copytree(src, dst)
        return dst
    return copy
