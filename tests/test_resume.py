"""Issue 23 (4): a notebook that fails keeps the models it finished, the index says it is incomplete, and a rerun
resumes from them instead of training again (the toy fifth study's `train_models`, through `train.trained`)."""
import json, subprocess, sys
import pandas as pd, pytest
from fifth_study.project import notebook, toy_project

CODE = ["from medrepro.data import dataset_path, read_csv\nfrom medrepro.core import reports_dir, save_table\nimport pandas as pd, torch\n"
        "from fifth_study.train import train_models",
        "df = read_csv(dataset_path('fifth')/'measurements.csv', ['id', 'value'])\n"
        "models = train_models(df.value, reports_dir('fifth')/'models', n_models=2, fail_after=fail_after)\n"
        "with torch.no_grad(): w = [m.weight.item() for m in models]\n"
        "save_table(pd.DataFrame(dict(model=range(len(w)), weight=w)), reports_dir('fifth')/'evaluate'/'fifth_headline.csv')"]


@pytest.mark.slow
def test_a_failed_run_keeps_its_finished_model_and_the_rerun_resumes(tmp_path):
    proj, env = toy_project(tmp_path, '91_fifth.train.ipynb', notebook('# A fifth study: training', 'train', 'fail_after = None  # papermill parameter', CODE))
    run = lambda *a: subprocess.run([sys.executable, '-c', 'from medrepro.report import main; main()', '--no-html', '-j', '1', *a],
                                    cwd=proj, env=env, capture_output=True, text=True, timeout=400)
    out, models = proj/'reports', proj/'reports'/'fifth'/'models'

    r = run('-p', 'fail_after', '1')                                   # crashes after the first model
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    assert '[91_fifth.train] training m0' in r.stdout and '[91_fifth.train] m0 step 50 loss' in r.stdout   # live, with the notebook's name
    assert sorted(p.name for p in (models/'m0').iterdir()) == ['config.json', 'finished.json', 'model.pth']
    assert not (models/'m1').exists() and not (out/'fifth'/'evaluate').exists()     # nothing else of the failed run is published
    assert 'simulated crash after 1 model(s)' in (out/'notebooks'/'91_fifth.train.log').read_text()
    t = pd.read_csv(out/'timings.csv').iloc[0]
    assert (t.status, t.kept) == ('failed', 'fifth/models/m0') and 'simulated crash' in t.error
    page = (out/'index.html').read_text()
    assert '91_fifth.train.ipynb (failed, incomplete: 1 finished model kept)' in page
    assert 'kept 1 finished model, which a rerun loads instead of training again: <code>fifth/models/m0</code>' in page
    assert 'RuntimeError: simulated crash after 1 model(s)' in page
    assert json.loads((out/'manifest.json').read_text())['91_fifth.train.ipynb'] == [
        'fifth/models/m0/config.json', 'fifth/models/m0/finished.json', 'fifth/models/m0/model.pth']
    m0 = (models/'m0'/'model.pth').stat()

    r = run()                                                          # the rerun: resumes from m0, trains m1
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    log = (out/'notebooks'/'91_fifth.train.log').read_text()
    assert 'training m0' not in log and 'training m1' in log and 'm0: finished in an earlier run' in log
    assert (models/'m0'/'model.pth').stat().st_mtime_ns == m0.st_mtime_ns                    # not rewritten
    w = pd.read_csv(out/'fifth'/'evaluate'/'fifth_headline.csv').weight
    assert w[0] == pytest.approx(1, abs=0.05) and w[1] == pytest.approx(2, abs=0.05)         # each model learnt its own slope
    page = (out/'index.html').read_text()
    assert 'incomplete' not in page and 'Not up to date' not in page
    man = json.loads((out/'manifest.json').read_text())['91_fifth.train.ipynb']
    assert 'fifth/models/m0/model.pth' in man and 'fifth/models/m1/model.pth' in man
    assert not list(models.rglob('finished.json'))                    # after a success no marker stays: the next run trains afresh
