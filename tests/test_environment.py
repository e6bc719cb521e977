"""One environment, two routes: pyproject.toml and environment.yml name the same packages with the same bounds and the
same Python; constraints.txt pins versions inside those bounds and both routes use it; the Makefile uses an existing
environment (conda) as it is; `make clean` keeps the caches; `make help` lists every target and variable."""
import os, re, subprocess, sys, tomllib
from pathlib import Path
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJ = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']
ENV = yaml.safe_load((ROOT/'environment.yml').read_text())
PIP = next(d['pip'] for d in ENV['dependencies'] if isinstance(d, dict) and 'pip' in d)


def _reqs(lines): return {canonicalize_name(r.name): r for r in map(Requirement, lines)}

WANT = _reqs(PROJ['dependencies'] + PROJ['optional-dependencies']['dev'])
HAVE = _reqs([l for l in PIP if not l.startswith('-')])


def _pins():
    pins = {}
    for l in (ROOT/'constraints.txt').read_text().splitlines():
        if l.strip() and not l.startswith('#'):
            n, v = l.split('==', 1); pins[canonicalize_name(n)] = v.split(';')[0].strip()
    return pins


def test_same_names_and_bounds():
    assert set(WANT) == set(HAVE), f'only in pyproject: {sorted(set(WANT) - set(HAVE))}; only in environment.yml: {sorted(set(HAVE) - set(WANT))}'
    differ = {n: (str(WANT[n].specifier), str(HAVE[n].specifier)) for n in WANT if WANT[n].specifier != HAVE[n].specifier}
    assert not differ, f'bounds differ (pyproject, environment.yml): {differ}'


def test_python_bound_consistent():
    "environment.yml's Python is the one CI runs and pyproject's lower bound: 3.11."
    py = next(str(d) for d in ENV['dependencies'] if str(d).startswith('python='))
    version = py.split('=', 1)[1]
    assert SpecifierSet(PROJ['requires-python']).contains(version + '.0'), (py, PROJ['requires-python'])
    assert PROJ['requires-python'] == f'>={version}'
    assert sys.version_info[:2] >= tuple(map(int, version.split('.')))


def test_constraints_pin_every_dependency_within_its_bounds_and_both_routes_use_them():
    pins = _pins()
    assert 'medrepro' not in pins and not any(l.startswith('-e') for l in (ROOT/'constraints.txt').read_text().splitlines())
    missing = [n for n in WANT if n not in pins]
    assert not missing, f'constraints.txt pins no version of {missing}: run scripts/freeze_constraints.py'
    outside = {n: (pins[n], str(r.specifier)) for n, r in WANT.items() if not r.specifier.contains(pins[n], prereleases=True)}
    assert not outside, f'constraints.txt pins versions outside pyproject bounds: {outside}'
    assert '-c constraints.txt' in PIP
    assert re.search(r'pip install .*-c constraints\.txt', (ROOT/'Makefile').read_text())


def test_no_rle_plugin_dependency():
    "pydicom decodes RLE itself; nothing imports pylibjpeg-rle (rle)."
    assert 'pylibjpeg-rle' not in WANT
    hits = subprocess.run(['grep', '-rlE', r'^\s*(import|from) rle\b|import_module\(.rle', 'lib', 'tests', 'scripts'], cwd=ROOT, capture_output=True, text=True).stdout
    assert not hits, hits


def _fake_env(tmp_path):
    "An existing environment (as conda makes): bin/python records what it is asked to do; PYTHON fails if asked to make a venv."
    env = tmp_path/'conda'; (env/'bin').mkdir(parents=True)
    log = tmp_path/'calls.txt'
    (env/'bin'/'python').write_text(f'#!/bin/sh\necho "$@" >> {log}\n'); (env/'bin'/'python').chmod(0o755)
    nopy = tmp_path/'nopython'; nopy.write_text('#!/bin/sh\necho "made a venv" >&2; exit 3\n'); nopy.chmod(0o755)
    return env, log, nopy


def test_make_setup_uses_an_existing_environment_as_it_is(tmp_path):
    env, log, nopy = _fake_env(tmp_path)
    r = subprocess.run(['make', '-s', 'setup', f'VENV={env}', f'PYTHON={nopy}'], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    calls = log.read_text().splitlines()
    assert calls == ["-m pip install --quiet -c constraints.txt -e .[dev]", 'scripts/install_kernel.py'], calls
    assert (env/'.installed').exists() and not (env/'pyvenv.cfg').exists()
    r = subprocess.run(['make', '-s', 'setup', f'VENV={env}', f'PYTHON={nopy}'], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and len(log.read_text().splitlines()) == 2                        # installed once


def test_make_setup_refuses_an_old_python(tmp_path):
    old = tmp_path/'python3.9'; old.write_text('#!/bin/sh\nexit 1\n'); old.chmod(0o755)      # `sys.version_info < (3, 11)`
    r = subprocess.run(['make', '-s', 'setup', f'VENV={tmp_path/"v"}', f'PYTHON={old}'], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and 'needs Python 3.11' in r.stdout + r.stderr


def test_clean_keeps_the_cache():
    dry = lambda t: subprocess.run(['make', '-n', t], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    assert 'data/cache' not in dry('clean') and 'rm -rf data/cache' in dry('clean-cache')


def test_make_help_lists_every_target_and_variable():
    mk = (ROOT/'Makefile').read_text()
    targets = re.search(r'^\.PHONY:(.*)$', mk, re.M).group(1).split()
    out = subprocess.run(['make', '-s', 'help'], cwd=ROOT, capture_output=True, text=True).stdout
    for t in targets: assert re.search(rf'make {re.escape(t)}\s', out), t
    for v in ('PROFILE=', 'NB=', 'JOBS=', 'VENV=', 'PYTHON='): assert v in out, v
    for p in (ROOT/'params').iterdir():
        if p.is_dir(): assert p.name in out, f'profile {p.name} not in make help'


def test_batch_backend_is_not_exported_to_every_target():
    mk = (ROOT/'Makefile').read_text()
    assert not re.search(r'^export MPLBACKEND', mk, re.M)
    for t in ('reports', 'report', 'notebooks', 'pytest', 'nbdev-test', 'test'):
        db = subprocess.run(['make', '-pn', t, 'VENV=/nonexistent-venv-for-dry-run'], cwd=ROOT, capture_output=True, text=True).stdout
        assert re.search(rf'^{re.escape(t)}: MPLBACKEND := Agg', db, re.M), t
