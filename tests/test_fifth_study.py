"""A fifth study plugs in with no edit to shared code: its `sample` module declares it and registers its generator, its
notebook is named `NN_<study>.<module>`, and the runner generates its data, runs it and gives it a section in the index."""
import subprocess, sys
from pathlib import Path
import pytest
from fifth_study.project import notebook, toy_project

ROOT = Path(__file__).resolve().parents[1]


CODE = ['from medrepro.data import dataset_path, read_csv\nfrom medrepro.core import reports_dir, save_table, save_fig\n'
        'import matplotlib.pyplot as plt, pandas as pd',
        "df = read_csv(dataset_path('fifth')/'measurements.csv', ['id', 'value'])\n"
        "out = reports_dir('fifth')\n"
        "save_table(pd.DataFrame(dict(n=[len(df)], mean=[df.value.mean()])), out/'evaluate'/'fifth_headline.csv')\n"
        "fig, ax = plt.subplots(); ax.hist(df.value); ax.set_xlabel('value'); ax.set_ylabel('count')\n"
        "save_fig(fig, out/'eda'/'values.png')"]


@pytest.mark.slow
def test_a_fifth_study_generates_runs_and_is_indexed(tmp_path):
    proj, env = toy_project(tmp_path, '90_fifth.eda.ipynb', notebook('# A fifth study\n\nA toy study that only tests the plumbing.', 'eda', 'seed = 0  # papermill parameter', CODE))
    r = subprocess.run([str(Path(sys.executable).parent/'medrepro-reports'), '--out', str(proj/'reports'), '--no-html', '-j', '1'],
                       cwd=proj, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (proj/'data'/'sample'/'fifth'/'measurements.csv').exists()                     # its generator was found and ran
    assert (proj/'reports'/'fifth'/'evaluate'/'fifth_headline.csv').exists()
    index = (proj/'reports'/'index.html').read_text()
    assert 'A fifth study (toy, from tests/)' in index                                   # its own section, its own title
    assert 'Headline: <a href="fifth/evaluate/fifth_headline.csv"' in index               # the headline it declared
    assert 'fifth/eda/values.png' in index


def test_the_runner_holds_no_list_of_studies():
    "Shared code names no study: the study packages' names appear nowhere in the shared modules."
    lib = ROOT/'lib'/'medrepro'
    studies = [d.name for d in lib.iterdir() if (d/'__init__.py').exists()]
    for f in ['report.py', 'core.py', 'sample.py', 'data.py', 'train.py']:
        text = (lib/f).read_text()
        named = [s for s in studies if f"'{s}'" in text or f'"{s}"' in text]
        assert not named, f'{f} names studies {named}'
