"""The course edition's two teacher commands, on nbgrader (run by `make assignments` and `make grade`).

    python course/course.py assignments [--out build/course]
        the student copies (release/<id>/<id>.ipynb: no solutions, no hidden tests, outputs cleared) and the grading
        material (source/, gradebook.db) as one nbgrader course folder, ready for `nbgrader formgrader` or a JupyterHub
    python course/course.py grade SUBMISSIONS [--out build/grades] [-j 2]
        autogrades SUBMISSIONS/<student>/<id>.ipynb (or SUBMISSIONS/<student>/<id>/<id>.ipynb, nbgrader's own layout) and
        writes grades.csv (one row per student, assignment and question), totals.csv (students x assignments) and
        feedback/<student>/index.html (scores and each assignment's feedback page)

Everything runs offline: nbgrader executes the notebooks in local kernels and keeps its gradebook in SQLite. With
`-j N` the assignments are shared out over N nbgrader course folders (build/course/grading/part<i>), graded at once,
so that no two processes write one database.
"""
from __future__ import annotations
import argparse, csv, html, json, os, shutil, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOURCE = HERE/'source'
COURSE_ID = 'medrepro'
TIMEOUT = 600    # seconds per notebook cell at grading time

CONFIG = '''c = get_config()
c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.root = {root!r}
c.CourseDirectory.db_url = 'sqlite:///' + {root!r} + '/gradebook.db'
c.Execute.timeout = {timeout}
c.Execute.allow_errors = True
c.ClearSolutions.code_stub = dict(python='# YOUR CODE HERE\\nraise NotImplementedError()')
c.ClearSolutions.text_stub = 'YOUR ANSWER HERE'
'''


def assignment_ids(source=SOURCE) -> list:
    "The assignments: every source/<id>/<id>.ipynb."
    return sorted(p.name for p in Path(source).iterdir() if (p/f'{p.name}.ipynb').is_file())


def _env() -> dict:
    env = dict(os.environ, MPLBACKEND='Agg', PYTHONUNBUFFERED='1')
    env['PATH'] = str(Path(sys.executable).parent) + os.pathsep + env.get('PATH', '')   # nbgrader runs `alembic` from PATH
    env.setdefault('MEDREPRO_ROOT', str(ROOT))   # the kernels find the sample data from any folder
    lib = str(ROOT/'lib')
    env['PYTHONPATH'] = lib + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    return env


def nbgrader(course: Path, *args, quiet=True):
    "Run one nbgrader command in the course folder `course`; raise with its log when it fails."
    exe = Path(sys.executable).parent/'nbgrader'
    cmd = [str(exe) if exe.exists() else 'nbgrader', *args]
    r = subprocess.run(cmd, cwd=course, env=_env(), capture_output=True, text=True)
    if r.returncode != 0: raise RuntimeError(f'{" ".join(cmd)} failed in {course}:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}')
    if not quiet: print(r.stdout + r.stderr)
    return r


def make_course(course: Path, ids=None, source=SOURCE) -> Path:
    "A fresh nbgrader course folder with the source of `ids` (default all), its config, and the released student copies."
    course = Path(course).resolve()
    if course.exists(): shutil.rmtree(course)
    (course/'source').mkdir(parents=True)
    ids = ids or assignment_ids(source)
    for a in ids: shutil.copytree(Path(source)/a, course/'source'/a, ignore=shutil.ignore_patterns('.ipynb_checkpoints'))
    (course/'nbgrader_config.py').write_text(CONFIG.format(course_id=COURSE_ID, root=str(course), timeout=TIMEOUT))
    nbgrader(course, 'generate_assignment', '*', '--force')   # one process for all: nbgrader's start-up costs seconds
    return course


def assignments(out: Path) -> Path:
    "`make assignments`: one course folder with every assignment, its student copies in release/."
    t = time.time()
    course = make_course(out)
    for a in assignment_ids():
        nb = course/'release'/a/f'{a}.ipynb'
        if not nb.is_file(): raise RuntimeError(f'nbgrader wrote no student copy {nb}')
    print(f'{len(assignment_ids())} assignments in {time.time() - t:.0f} s: student copies in {course}/release/<id>/<id>.ipynb, '
          f'grading material (source/, gradebook.db) in {course}')
    return course


def collect(submissions: Path, ids) -> dict:
    "{assignment: {student: notebook}} of a submissions folder: <student>/<id>.ipynb or <student>/<id>/<any>.ipynb."
    found = {}
    for sdir in sorted(p for p in Path(submissions).iterdir() if p.is_dir() and not p.name.startswith('.')):
        for nb in sorted(sdir.rglob('*.ipynb')):
            if '.ipynb_checkpoints' in nb.parts: continue
            a = nb.stem if nb.stem in ids else nb.parent.name if nb.parent.name in ids else None
            if a is None: print(f'skipped {nb}: not named after an assignment ({", ".join(ids)})', file=sys.stderr); continue
            found.setdefault(a, {})[sdir.name] = nb
    return found


def _grade_part(course: Path, found: dict) -> Path:
    "Autograde the submissions `found` ({assignment: {student: notebook}}) and write their feedback, in one course folder."
    course = make_course(course, sorted(found))
    for a, subs in found.items():
        for student, nb in subs.items():
            d = course/'submitted'/student/a; d.mkdir(parents=True, exist_ok=True)
            shutil.copy(nb, d/f'{a}.ipynb')
    nbgrader(course, 'autograde', '*', '--create', '--force')
    nbgrader(course, 'generate_feedback', '*', '--force')
    return course


def _rows(course: Path, a: str) -> list:
    from nbgrader.api import Gradebook
    rows = []
    with Gradebook(f'sqlite:///{course}/gradebook.db') as gb:
        for sub in gb.assignment_submissions(a):
            for nb in sub.notebooks:
                for g in sorted(nb.grades, key=lambda g: g.name):
                    rows.append(dict(student=sub.student.id, assignment=a, question=g.name,
                                     kind='manual' if g.cell.cell_type == 'markdown' else 'auto',
                                     score=float(g.score), max_score=float(g.max_score),
                                     needs_manual_grade=bool(g.needs_manual_grade)))
    return rows


def _student_page(student, rows, links) -> str:
    tot, mx = sum(r['score'] for r in rows), sum(r['max_score'] for r in rows)
    trs = ''.join(f"<tr><td>{html.escape(r['assignment'])}</td><td>{html.escape(r['question'])}</td><td>{r['kind']}</td>"
                  f"<td>{r['score']:g} / {r['max_score']:g}</td><td>{'to be graded by hand' if r['needs_manual_grade'] else ''}</td></tr>"
                  for r in rows)
    lis = ''.join(f'<li><a href="{html.escape(f)}">{html.escape(a)}</a></li>' for a, f in links)
    return (f'<!doctype html><meta charset="utf-8"><title>Feedback: {html.escape(student)}</title>'
            f'<h1>Feedback for {html.escape(student)}</h1><p>Total so far: {tot:g} of {mx:g} points.</p>'
            f'<table border="1" cellpadding="4"><tr><th>assignment</th><th>question</th><th>kind</th><th>score</th><th></th></tr>{trs}</table>'
            f'<h2>Your graded notebooks, with comments and the failing tests</h2><ul>{lis}</ul>')


def grade(submissions: Path, out: Path, course_root: Path, jobs=1) -> list:
    "`make grade`: autograde every notebook under `submissions`; grades.csv, totals.csv and feedback/ into `out`."
    t = time.time()
    ids = assignment_ids()
    found = collect(submissions, ids)
    if not found: raise SystemExit(f'no submitted notebooks under {submissions} (expected <student>/<assignment id>.ipynb)')
    course_root = Path(course_root).resolve()
    shutil.rmtree(course_root, ignore_errors=True)
    parts = [dict(sorted(found.items())[i::max(1, jobs)]) for i in range(min(max(1, jobs), len(found)))]   # jobs course folders, one process each
    with ThreadPoolExecutor(len(parts)) as ex:
        done = list(ex.map(lambda ip: _grade_part(course_root/f'part{ip[0]}', ip[1]), enumerate(parts)))
    courses = {a: c for c, part in zip(done, parts) for a in part}
    out = Path(out); shutil.rmtree(out, ignore_errors=True); (out/'feedback').mkdir(parents=True)
    rows = [r for a, c in courses.items() for r in _rows(c, a)]
    cols = ['student', 'assignment', 'question', 'kind', 'score', 'max_score', 'needs_manual_grade']
    with open(out/'grades.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, cols); w.writeheader(); w.writerows(rows)
    students = sorted({r['student'] for r in rows})
    with open(out/'totals.csv', 'w', newline='') as f:
        w = csv.writer(f); w.writerow(['student'] + sorted(found) + ['total', 'max'])
        for s in students:
            mine = [r for r in rows if r['student'] == s]
            w.writerow([s] + [sum(r['score'] for r in mine if r['assignment'] == a) for a in sorted(found)]
                       + [sum(r['score'] for r in mine), sum(r['max_score'] for r in mine)])
    for s in students:
        d = out/'feedback'/s; d.mkdir(parents=True, exist_ok=True)
        links = []
        for a, c in sorted(courses.items()):
            for h in sorted((c/'feedback'/s/a).glob('*.html')):
                shutil.copy(h, d/f'{a}.html'); links.append((a, f'{a}.html'))
        (d/'index.html').write_text(_student_page(s, [r for r in rows if r['student'] == s], links))
    print(f'graded {sum(len(v) for v in found.values())} notebooks of {len(students)} students in {time.time() - t:.0f} s: '
          f'{out}/grades.csv, {out}/totals.csv, {out}/feedback/<student>/index.html')
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = p.add_subparsers(dest='cmd', required=True)
    a = sub.add_parser('assignments', help='write the student copies and the grading material')
    a.add_argument('--out', default=str(ROOT/'build'/'course'))
    g = sub.add_parser('grade', help='autograde a folder of submissions')
    g.add_argument('submissions')
    g.add_argument('--out', default=str(ROOT/'build'/'grades'))
    g.add_argument('--course', default=str(ROOT/'build'/'course'/'grading'), help='where the grading course folders go')
    g.add_argument('-j', '--jobs', type=int, default=1, help='nbgrader processes at once (each grades a share of the assignments)')
    args = p.parse_args(argv)
    if args.cmd == 'assignments': assignments(Path(args.out))
    else: grade(Path(args.submissions), Path(args.out), Path(args.course), args.jobs)


if __name__ == '__main__': main()
