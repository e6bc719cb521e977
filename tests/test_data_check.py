"""`medrepro-data check <data set> <folder>` (issue 28): every data set has a layout check; a sample folder passes, a
folder with a file missing fails in seconds with the file named and exit status 1."""
import shutil, subprocess, sys, time
from pathlib import Path
import pytest
from medrepro.data import check_dataset, dataset_path
from medrepro.sample import generators

CLI = str(Path(sys.executable).parent/'medrepro-data')


@pytest.mark.parametrize('name', sorted(generators()))
def test_every_sample_set_passes_its_check(name):
    assert check_dataset(name, dataset_path(name)) == []


def test_missing_isic2019_metadata_is_caught_in_seconds(tmp_path):
    bad = tmp_path/'isic2019'; shutil.copytree(dataset_path('isic2019'), bad)
    (bad/'ISIC_2019_Training_Metadata.csv').unlink()
    t = time.time()
    r = subprocess.run([CLI, 'check', 'isic2019', str(bad)], capture_output=True, text=True)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.startswith('ISIC_2019_Training_Metadata.csv: ') and 'not found' in r.stdout.splitlines()[0]
    assert f'{bad}: is not a isic2019 data set' in r.stdout
    assert time.time() - t < 60


def test_cli_passes_a_good_folder_and_names_unknown_sets(tmp_path):
    r = subprocess.run([CLI, 'check', 'dsb2018', str(dataset_path('dsb2018'))], capture_output=True, text=True)
    assert r.returncode == 0 and 'looks like a dsb2018 data set (0 problems' in r.stdout, r.stdout + r.stderr
    r = subprocess.run([CLI, 'check', 'nope', str(tmp_path)], capture_output=True, text=True)
    assert r.returncode != 0 and "unknown data set 'nope'" in r.stderr
