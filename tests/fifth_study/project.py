"""The toy fifth study's project, shared by the tests that run it through the report runner (test_fifth_study.py,
test_resume.py): a folder with `nbs/`, `params/smoke/` and a pyproject, one notebook, and the environment that points
the runner at it."""
import json, os
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
KERNEL = {'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}}


def notebook(title: str, default_exp: str, parameters: str, code: list) -> dict:
    "A notebook: a title cell, `#| default_exp`, a papermill `parameters` cell, then one code cell per string of `code`."
    code_cell = lambda s, **md: dict(cell_type='code', metadata=md, execution_count=None, outputs=[], source=s)
    cells = [dict(cell_type='markdown', metadata={}, source=title), code_cell(f'#| default_exp {default_exp}'),
             code_cell(parameters, tags=['parameters']), *[code_cell(s) for s in code]]
    return dict(cells=cells, metadata=KERNEL, nbformat=4, nbformat_minor=5)


def toy_project(root: Path, name: str, nb: dict) -> tuple:
    "Write the toy project under `root` with notebook `name` (e.g. '90_fifth.eda.ipynb'); return (project folder, env)."
    proj = root/'proj'
    (proj/'nbs').mkdir(parents=True); (proj/'params'/'smoke').mkdir(parents=True)
    (proj/'pyproject.toml').write_text('[project]\nname = "toy"\n')
    (proj/'nbs'/name).write_text(json.dumps(nb))
    env = {**os.environ, 'MEDREPRO_ROOT': str(proj), 'MEDREPRO_DATA': str(proj/'data'), 'MEDREPRO_STUDIES': 'fifth_study.sample',
           'PYTHONPATH': os.pathsep.join([str(TESTS), os.environ.get('PYTHONPATH', '')])}
    env.pop('MEDREPRO_REPORTS', None)
    return proj, env
