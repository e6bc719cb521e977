"""Install the Jupyter kernelspec `medrepro` into this Python's environment (its sys.prefix: a venv or a conda env),
where the environment's own `jupyter lab` finds it first, as root or not (`jupyter --paths`: the env's data folder
comes before ~/.local when running from a venv or conda env). `make setup` runs it.

The kernelspec pins the kernel to this interpreter and gives it two variables of its own:
* MPLBACKEND: the inline backend, so a figure shows under the cell even when the shell that started JupyterLab
  exported a batch backend such as Agg (ipykernel only switches to inline when the variable is unset);
* PYTHONWARNINGS: the third-party deprecation warnings that tell a reader nothing (torch.jit.script, pandas options used
  by fastai, numpy.core), the same list as pytest's `filterwarnings` in pyproject.toml, read from there. An environment
  variable rather than a filter in the library: it is set before any import (the torch warning is raised while fastai
  is imported, before a notebook's first medrepro import could act), reaches processes the kernel starts (data-parallel
  workers, `accelerate launch`), and leaves a user's own `import torch` in another kernel untouched.
"""
import builtins, json, sys, tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME, DISPLAY = 'medrepro', 'Python (medrepro)'
INLINE = 'module://matplotlib_inline.backend_inline'


def warning_filters(pyproject=ROOT/'pyproject.toml') -> str:
    "pytest's `ignore:` filterwarnings from pyproject.toml as a PYTHONWARNINGS value (same action:message:category syntax)."
    fws = tomllib.loads(Path(pyproject).read_text())['tool']['pytest']['ini_options'].get('filterwarnings', [])
    out = []
    for f in fws:
        if not f.startswith('ignore:') or ',' in f: continue                # PYTHONWARNINGS separates filters by commas
        action, msg, *rest = f.split(':')
        cat = rest[0] if rest else ''
        if cat and not hasattr(builtins, cat): cat = 'Warning'               # a category Python cannot name at start-up
        out.append(f'{action}:{msg}:{cat}' if cat else f'{action}:{msg}')
    return ','.join(out)


def kernel_env() -> dict:
    return {'MPLBACKEND': INLINE, 'PYTHONWARNINGS': warning_filters()}


def main():
    from ipykernel.kernelspec import install
    dest = install(kernel_name=NAME, display_name=DISPLAY, prefix=sys.prefix, env=kernel_env())
    spec = json.loads((Path(dest)/'kernel.json').read_text())
    print(f'kernelspec {NAME!r} -> {dest} (python {spec["argv"][0]})')


if __name__ == '__main__': main()
