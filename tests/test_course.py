"""The course edition (course/, nbgrader): `make assignments` writes student copies without solutions, hidden tests or
outputs; `make grade` gives the reference solutions full marks, the blank student copies zero on every question (and
they run without error outside the student's own cells), and one planted wrong answer per assignment loses its points.
One grading run (three students x every assignment, two nbgrader processes) serves every check."""
import csv, json, re, subprocess, sys, time
from pathlib import Path
import nbformat, pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'course'))
import course  # noqa: E402

IDS = course.assignment_ids()
STUDIES = ('lib', 'rsna', 'echo', 'dsb', 'isic')

# One wrong answer per assignment: (text in the reference solution, the wrong text, the question that must lose its points)
PLANTED = {
    'lib1_mean_vs_pooled': ('return 1.0 if s == 0 else float(2 * (p & t).sum() / s)', 'return 0.0 if s == 0 else float(2 * (p & t).sum() / s)', 'lib1_dice'),
    'lib2_lr_scaling': ('k = bs_per_process * num_processes / base_bs', 'k = num_processes', 'lib2_scaled'),
    'rsna1_hounsfield': ('* np.float32(slope) + np.float32(intercept)', '* np.float32(slope)', 'rsna1_to_hu'),
    'rsna2_weighted_logloss': ('base = np.array([1.0] * 7 + [7.0])', 'base = np.array([1.0] * 8)', 'rsna2_weights'),
    'echo1_discs': ('np.sum(np.pi * (d / 2) ** 2)', 'np.sum(np.pi * d ** 2)', 'echo1_volume'),
    'echo2_video_split': ('inval = np.isin(videos, held)', 'inval = rng.random(len(videos)) < valid', 'echo2_split'),
    'dsb1_instance_ap': ('fp, fn = n_pred - tp, n_true - tp', 'fp, fn = 0, n_true - tp', 'dsb1_precision'),
    'dsb2_rle': ("np.asarray(mask, bool).flatten(order='F')", "np.asarray(mask, bool).flatten(order='C')", 'dsb2_encode'),
    'isic1_bma': ('/ (y_true == c).sum() for c in', '/ max((y_pred == c).sum(), 1) for c in', 'isic1_bma'),
    'isic2_lesion_split': ('te = np.isin(groups, held)', 'te = rng.random(len(groups)) < test', 'isic2_split'),
    'isic3_thresholded_jaccard': ('np.where(j >= threshold, j, 0.0).mean()', 'j[j >= threshold].mean()', 'isic3_threshold'),
}


def _grade_cells(nb):
    return [c for c in nb.cells if c.metadata.get('nbgrader', {}).get('grade')]


def test_at_least_ten_assignments_two_per_study_each_with_points_hidden_tests_and_a_free_text_question():
    assert len(IDS) >= 10 and set(PLANTED) == set(IDS)
    for s in STUDIES: assert sum(a.startswith(s) for a in IDS) >= (1 if s == 'lib' else 2), s
    for a in IDS:
        nb = nbformat.read(ROOT/'course'/'source'/a/f'{a}.ipynb', 4)
        tests = [c for c in _grade_cells(nb) if c.cell_type == 'code']
        assert len(tests) >= 2 and all(c.metadata.nbgrader['points'] > 0 for c in tests), a
        assert all('### BEGIN HIDDEN TESTS' in c.source for c in tests), f'{a}: a test cell without hidden tests'
        assert any(c.cell_type == 'markdown' for c in _grade_cells(nb)), f'{a}: no free-text question'
        assert 'import medrepro' in ' '.join(c.source for c in nb.cells) or 'from medrepro' in ' '.join(c.source for c in nb.cells), a


def _regions(src, begin, end):
    return re.findall(rf'{re.escape(begin)}\n(.*?){re.escape(end)}', src, re.S)


@pytest.fixture(scope='module')
def graded(tmp_path_factory):
    "Release every assignment, then grade three students: the reference solutions, the blank copies, the planted wrong answers."
    tmp = tmp_path_factory.mktemp('course')
    t0 = time.time()
    rel = course.assignments(tmp/'course')
    subs = tmp/'submissions'
    for a in IDS:
        src = (ROOT/'course'/'source'/a/f'{a}.ipynb').read_text()
        old, new, _ = PLANTED[a]
        assert src.count(json.dumps(old)[1:-1]) == 1, f'{a}: the planted text must occur once in the solution'
        for student, text in (('reference', src), ('blank', (rel/'release'/a/f'{a}.ipynb').read_text()),
                              ('wrong', src.replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1]))):
            (subs/student).mkdir(parents=True, exist_ok=True)
            (subs/student/f'{a}.ipynb').write_text(text)
    rows = course.grade(subs, tmp/'grades', tmp/'grading', jobs=2)
    print(f'course: released and graded {3 * len(IDS)} notebooks in {time.time() - t0:.0f} s')
    return dict(release=rel/'release', rows=rows, out=tmp/'grades', grading=tmp/'grading')


def test_student_copies_hold_no_solution_no_hidden_test_and_no_output(graded):
    for a in IDS:
        src = (ROOT/'course'/'source'/a/f'{a}.ipynb').read_text()
        srcnb = nbformat.reads(src, 4)
        nb = nbformat.read(graded['release']/a/f'{a}.ipynb', 4)
        text = '\n'.join(c.source for c in nb.cells)
        for marker in ('BEGIN SOLUTION', 'END SOLUTION', 'HIDDEN TESTS', 'Model answer'):
            assert marker not in text, f'{a}: {marker!r} in the student copy'
        code = '\n'.join(c.source for c in srcnb.cells)
        outside = re.sub(r'### BEGIN (SOLUTION|HIDDEN TESTS)\n.*?### END (SOLUTION|HIDDEN TESTS)', '', code, flags=re.S)
        secret = [l.strip() for r in _regions(code, '### BEGIN SOLUTION', '### END SOLUTION') + _regions(code, '### BEGIN HIDDEN TESTS', '### END HIDDEN TESTS')
                  for l in r.splitlines() if len(l.strip()) > 8 and l.strip() not in outside]
        assert secret, a
        leaked = [l for l in secret if l in text]
        assert not leaked, f'{a}: solution or hidden-test lines in the student copy: {leaked[:3]}'
        for c in nb.cells:
            if c.cell_type == 'code': assert not c.outputs and c.execution_count is None, f'{a}: outputs in the student copy'


def _by(rows, student):
    return {(r['assignment'], r['question']): r for r in rows if r['student'] == student}


def test_reference_solutions_score_full_marks(graded):
    ref = _by(graded['rows'], 'reference')
    assert {a for a, _ in ref} == set(IDS)
    low = {k: (r['score'], r['max_score']) for k, r in ref.items() if r['kind'] == 'auto' and r['score'] != r['max_score']}
    assert not low, f'reference solutions lose points: {low}'
    assert all(r['needs_manual_grade'] for r in ref.values() if r['kind'] == 'manual')   # a written answer waits for the teacher


def test_blank_copies_score_zero_and_run_without_error_outside_the_answers(graded):
    blank = _by(graded['rows'], 'blank')
    assert {a for a, _ in blank} == set(IDS)
    assert all(r['score'] == 0 for r in blank.values()), {k: r['score'] for k, r in blank.items() if r['score']}
    for a in IDS:
        nb = nbformat.read(next(graded['grading'].glob(f'part*/autograded/blank/{a}/{a}.ipynb')), 4)
        for c in nb.cells:
            m = c.metadata.get('nbgrader', {})
            errs = [o for o in c.get('outputs', []) if o.output_type == 'error']
            if errs and not (m.get('solution') or m.get('grade')):
                pytest.fail(f'{a}: a cell that is neither an answer nor a test fails in the blank copy: {errs[0].ename}\n{c.source[:300]}')


def test_each_planted_wrong_answer_loses_its_points(graded):
    ref, wrong = _by(graded['rows'], 'reference'), _by(graded['rows'], 'wrong')
    for a, (_, _, q) in PLANTED.items():
        assert wrong[(a, q)]['score'] < ref[(a, q)]['score'], f'{a}: the planted error in {q} keeps its points'


def test_grades_csv_totals_and_feedback_per_student(graded):
    out = graded['out']
    rows = list(csv.DictReader(open(out/'grades.csv')))
    assert set(rows[0]) == {'student', 'assignment', 'question', 'kind', 'score', 'max_score', 'needs_manual_grade'}
    assert {r['student'] for r in rows} == {'reference', 'blank', 'wrong'}
    totals = {r['student']: r for r in csv.DictReader(open(out/'totals.csv'))}
    assert float(totals['blank']['total']) == 0 < float(totals['wrong']['total']) < float(totals['reference']['total'])
    for s in ('reference', 'blank', 'wrong'):
        page = (out/'feedback'/s/'index.html').read_text()
        assert all(f'{a}.html' in page for a in IDS) and all((out/'feedback'/s/f'{a}.html').is_file() for a in IDS)


def test_make_targets_exist_and_are_listed():
    help_ = subprocess.run(['make', '-s', 'help'], cwd=ROOT, capture_output=True, text=True).stdout
    assert 'make assignments' in help_ and 'make grade' in help_
