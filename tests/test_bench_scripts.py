"The scale benchmark and the GPU throughput script (issue 23, item 6) still run: tiny settings on the CPU, no timing asserted."
import importlib.util, os, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    sys.path.insert(0, str(ROOT/'scripts'))
    spec = importlib.util.spec_from_file_location(name, ROOT/'scripts'/f'{name}.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def gpu(): return _load('bench_gpu')


@pytest.fixture(scope='module')
def scale(): return _load('bench_scale')


def test_specs_follow_the_paper_profile(gpu):
    model, shape, bs, fp16, kind, lr = gpu.SPECS['dsb']()
    assert (shape, bs, fp16, lr) == ((3, 256, 256), 8, False, 1e-4)          # params/paper/dsb.yaml: 256x256, batch 8, float32
    assert gpu.paper_params('isic2018', '41a_isic2018.train')['img_h'] == 768
    assert gpu.tiny_shape((100, 3, 224, 224)) == (4, 3, 64, 64) and gpu.tiny_shape((3, 768, 1024)) == (3, 64, 85)


def test_bench_gpu_on_cpu(gpu):
    df = gpu.main(['--device', 'cpu', '--batches', '1', '--warmup', '0', '--tiny', '--only', 'isic2019_isic_resnet,rsna_cnn3d'])
    assert list(df.study) == ['isic2019_isic_resnet', 'rsna_cnn3d']
    assert (df.train_img_s > 0).all() and (df.eval_img_s > 0).all() and (df.bs == 2).all()
    assert list(df.out_shape) == ['2x8', '2x8'] and not df.fp16.any()      # no autocast on the CPU


def test_amdahl_extrapolation(scale):
    assert scale.amdahl16(2.0) == pytest.approx(16)                          # perfectly parallel
    assert scale.amdahl16(1.0) == pytest.approx(1) and scale.amdahl16(0.8) == pytest.approx(1)   # no gain (or a loss): serial
    assert scale.amdahl16(1.5) == pytest.approx(1 / (1 / 3 + 2 / 3 / 16))


def test_size_cycle_keeps_the_mix(scale):
    s = scale.size_cycle({(1, 1): 3, (2, 2): 1}, 8)
    assert len(s) == 8 and s.count((1, 1)) == 6 and s.count((2, 2)) == 2


def test_digest_sees_a_changed_cache(scale, tmp_path):
    np.save(tmp_path/'a.npy', np.arange(6, dtype=np.uint8))
    d1 = scale.digest(tmp_path, {'x': np.zeros(3)})
    np.save(tmp_path/'a.npy', np.arange(6, dtype=np.uint8)[::-1])
    d2 = scale.digest(tmp_path, {'x': np.zeros(3)})
    assert set(d1) == {'a.npy', 'memory:x'} and d1['a.npy'] != d2['a.npy'] and d1['memory:x'] == d2['memory:x']


def test_bench_scale_quick_prints_its_table(tmp_path):
    out = tmp_path/'scale.csv'
    env = dict(os.environ, PYTHONPATH=str(ROOT/'lib'))
    r = subprocess.run([sys.executable, str(ROOT/'scripts'/'bench_scale.py'), '--quick', '--only', 'isic2019', '--out', str(out),
                        '--tmp', str(tmp_path)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert '| study | preparation | item | items 1x |' in r.stdout
    assert '| isic2019 | today | images |' in r.stdout or '| isic2019 | prepare | images |' in r.stdout
    df = pd.read_csv(out)
    row = df.iloc[0]
    assert row.items_4x == 4 * row.items_1x and bool(row.identical)
    assert row.rss_MB_1x > 50 and row.cache_MB_4x > row.cache_MB_1x > 0
    assert not any(tmp_path.glob('bench-*')), 'the synthetic data and caches are removed'


def test_readme_table_replaces_only_its_block(scale, tmp_path):
    csv, readme = tmp_path/'scale.csv', tmp_path/'README.md'
    row = {c: 1.0 for c in scale.README_COLS}
    pd.DataFrame([dict(row, study='dsb', adapter='today', unit='images', identical=True)]).to_csv(csv, index=False)
    readme.write_text(f'# t\nbefore\n{scale.README_START}\nold table\n{scale.README_END}\nafter\n')
    scale.readme_table(csv, readme)
    text = readme.read_text()
    assert 'old table' not in text and '| dsb | today | images |' in text and text.startswith('# t\nbefore\n') and text.endswith('after\n')


def test_cache_phase_times_outermost_calls_only(scale, monkeypatch, tmp_path):
    import time
    import medrepro.data as D
    monkeypatch.setattr(D, '_memmap_build', D._memmap_build); monkeypatch.setattr(D, 'imap_items', D.imap_items)   # restored after
    phase = scale.CachePhase().install()
    def slow(i): time.sleep(0.05); return np.full(3, i, np.uint8)
    t = time.perf_counter()
    x = D.memmap_cache(tmp_path, 't', range(6), (3,), np.uint8, slow, workers=1, progress=False)   # its imap_items is nested
    wall = time.perf_counter() - t
    assert x[5].tolist() == [5, 5, 5] and 0.3 <= phase.s <= wall                # six decodes inside, counted once
    s = phase.s; list(D.imap_items(slow, range(2), workers=1, progress=False))
    assert phase.s - s >= 0.1 and phase.depth == 0


def test_identical_needs_every_repeat(scale):
    run = lambda d, s: dict(items=4, prep_s=s, cache_s=s / 2, cpu_s=s, cache_cpu_s=s / 2, prep_peak_rss=1e8, peak_rss=1e8, load=1.0, bad=0, adapter='prepare',
                            cache_bytes=1e6, digest=d)
    one = run({'a': '1'}, 1.0)
    ser, par = scale.best([run({'a': '1'}, 2.0), run({'a': '1'}, 3.0)]), scale.best([run({'a': '1'}, 1.5), run({'a': '1'}, 1.0)])
    row = scale.study_row('dsb', dict(one, items=1), par, ser)
    assert row['identical'] and row['speedup_2'] == pytest.approx(2.0) and row['speedup_cache_2'] == pytest.approx(2.0)   # best of each
    par2 = scale.best([run({'a': '1'}, 1.0), run({'a': '2'}, 1.0)])            # one parallel repeat wrote other arrays
    assert not scale.study_row('dsb', dict(one, items=1), par2, ser)['identical']


def test_cpu_estimates(scale):
    ser, par = dict(cpu_s=10.0, cache_cpu_s=8.0), dict(cpu_s=10.5, cache_cpu_s=8.5)   # 2 s outside the cache, 0.5 s of pool overhead
    est = scale.cpu_estimates(par, ser)
    assert est['cpu_speedup_cache_2'] == pytest.approx(8 / 4.25) and est['cpu_speedup_2'] == pytest.approx(10 / (2 + 4.25))
    assert np.isnan(scale.cpu_estimates(dict(cpu_s=1.0, cache_cpu_s=0.0), ser)['cpu_speedup_2'])   # no cache phase: no estimate
