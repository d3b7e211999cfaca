"""The grader: full marks for solutions, zero for stubs, clear messages for broken notebooks."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXERCISES, ROOT, SOLUTIONS
from ganlib import grading

SOLUTION_FILES = sorted(p.name for p in SOLUTIONS.glob("*.ipynb"))


def by_key(report):
    return {r.key: r for r in report.results}


@pytest.mark.parametrize("name", SOLUTION_FILES)
def test_solutions_score_full_marks(name):
    for seed in (0, 12345):
        report = grading.grade_notebook(SOLUTIONS / name, seed=seed)
        assert report.total > 0
        assert report.score == report.total, grading.format_report(report)


@pytest.mark.parametrize("name", SOLUTION_FILES)
def test_untouched_exercises_score_zero_not_attempted(name):
    report = grading.grade_notebook(EXERCISES / name, seed=0)
    assert report.score == 0
    assert {r.status for r in report.results} == {grading.NOT_ATTEMPTED}, grading.format_report(report)


def test_cli_on_exercise_and_solution():
    ex = subprocess.run([sys.executable, "-m", "ganlib", "grade", "exercises/01_minimax_games.ipynb"],
                        cwd=ROOT, capture_output=True, text=True)
    assert ex.returncode != 0
    assert ex.stdout.count("not attempted") >= 6 and "total: 0/12" in ex.stdout
    sol = subprocess.run([sys.executable, "-m", "ganlib", "grade", "solutions/01_minimax_games.ipynb"],
                         cwd=ROOT, capture_output=True, text=True)
    assert sol.returncode == 0, sol.stdout
    assert "total: 12/12" in sol.stdout and "Traceback" not in sol.stdout + sol.stderr


def test_cli_json_and_folder_summary(tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    (folder / "alice_01.ipynb").write_text((SOLUTIONS / "01_minimax_games.ipynb").read_text())
    (folder / "bob_01.ipynb").write_text((EXERCISES / "01_minimax_games.ipynb").read_text())
    (folder / "carol_01.ipynb").write_text("this is not json")
    out = subprocess.run([sys.executable, "-m", "ganlib", "grade", str(folder)], capture_output=True, text=True)
    assert out.returncode == 1
    summary = out.stdout.split("\n\n")[-1]
    rows = [line for line in summary.splitlines() if "_01.ipynb" in line]
    assert len(rows) == 3
    assert rows[0].rstrip().endswith("12/12") and rows[1].rstrip().endswith("0/12")
    assert "not graded" in rows[2] and "Traceback" not in out.stdout + out.stderr
    js = subprocess.run([sys.executable, "-m", "ganlib", "grade", "--json", "--seed", "3", str(folder / "alice_01.ipynb")],
                        capture_output=True, text=True)
    data = json.loads(js.stdout)
    nb = data["notebooks"][0]
    assert nb["score"] == nb["total"] == 12 and nb["seed"] == 3 and len(nb["questions"]) == 6


def test_cli_usage_errors():
    missing = subprocess.run([sys.executable, "-m", "ganlib", "grade", "nope.ipynb"], capture_output=True, text=True)
    assert missing.returncode == 2 and "no such file" in missing.stdout
    unknown = subprocess.run([sys.executable, "-m", "ganlib", "frobnicate"], capture_output=True, text=True)
    assert unknown.returncode == 2


def test_syntax_error_is_named_not_dumped(make_notebook):
    path = make_notebook(["import numpy as np", "def simultaneous_step(grad, x, y, eta)\n    return x, y"], chapter="01")
    r = by_key(grading.grade_notebook(path, seed=0))["q1"]
    assert r.status == grading.ERROR and r.points == 0
    assert "cell 2 (Q1's answer) has a syntax error on line 1" in r.feedback and "Traceback" not in r.feedback


def test_missing_function_and_wrong_shape_and_nan(make_notebook):
    path = make_notebook([
        "import numpy as np",
        "def alternating_step(grad, x, y, eta):\n    return np.zeros(7), y",
        "def extragradient_step(grad, x, y, eta):\n    return x * np.nan, y",
        "def optimistic_step(grad, x, y, xp, yp, eta):\n    return x",
    ], chapter="01")
    res = by_key(grading.grade_notebook(path, seed=0))
    assert res["q1"].status == grading.MISSING and "simultaneous_step" in res["q1"].feedback
    assert res["q2"].status == grading.FAILED and "shape" in res["q2"].feedback
    assert res["q3"].status == grading.FAILED and "NaN" in res["q3"].feedback
    assert res["q4"].status == grading.FAILED and "pair" in res["q4"].feedback


def test_exception_points_at_learner_line(make_notebook):
    path = make_notebook(["def simultaneous_step(grad, x, y, eta):\n    gx, gy = grad(x, y)\n    return x - eta * gz, y"], chapter="01")
    r = by_key(grading.grade_notebook(path, seed=0))["q1"]
    assert r.status == grading.ERROR
    assert "NameError" in r.feedback and "in `simultaneous_step` (cell 1 (Q1's answer), line 3" in r.feedback


def test_endless_loop_times_out_and_later_questions_still_graded(make_notebook):
    cells = [
        "import numpy as np",
        "def simultaneous_step(grad, x, y, eta):\n    while True:\n        pass",
        "def alternating_step(grad, x, y, eta):\n    gx, _ = grad(x, y)\n    x = x - eta * gx\n    return x, y + eta * grad(x, y)[1]",
    ]
    report = grading.grade_notebook(make_notebook(cells, chapter="01"), seed=0, timeout=2)
    res = by_key(report)
    assert res["q1"].status == grading.TIMEOUT and "endless loop" in res["q1"].feedback
    assert res["q2"].status == grading.PASSED


def test_crashing_answer_costs_only_its_question(make_notebook):
    cells = [
        "import os",
        "def simultaneous_step(grad, x, y, eta):\n    os._exit(3)",
        "def alternating_step(grad, x, y, eta):\n    gx, _ = grad(x, y)\n    x = x - eta * gx\n    return x, y + eta * grad(x, y)[1]",
    ]
    res = by_key(grading.grade_notebook(make_notebook(cells, chapter="01"), seed=0))
    assert res["q1"].status == grading.ERROR and "stopped the Python process" in res["q1"].feedback
    assert res["q2"].status == grading.PASSED


def test_training_cells_are_not_executed(make_notebook, tmp_path):
    marker = tmp_path / "ran.txt"
    cells = [
        "import numpy as np",
        f"open({str(marker)!r}, 'w').write('trained')\nimport time\ntime.sleep(30)",
        "CONVERGE = {'extragradient', 'optimistic'}\nDIVERGE = {'simultaneous'}\nprint('not run')",
        f"G = open({str(marker)!r}, 'w')  # a model, not an answer",
    ]
    res = by_key(grading.grade_notebook(make_notebook(cells, chapter="01"), seed=0))
    assert not marker.exists()
    assert res["q6"].status == grading.PASSED


def test_chapter_from_file_name_when_metadata_missing(make_notebook):
    path = make_notebook(["X = 1"], name="01_minimax_games.ipynb")
    assert grading.grade_notebook(path, seed=0).chapter == "01"
    with pytest.raises(grading.GradingError, match="cannot tell which chapter"):
        grading.grade_notebook(make_notebook(["X = 1"], name="homework.ipynb"))


def test_check_cell_prints_verdicts(capsys):
    from ganlib.checks.ch01 import check_q1
    from ganlib.games import simultaneous_step

    def stub(grad, x, y, eta):
        raise NotImplementedError()

    assert check_q1(simultaneous_step) is None
    check_q1(stub)
    assert check_q1.evaluate(simultaneous_step).passed and not check_q1.evaluate(stub).passed
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("✓ Q1") and out[1].startswith("✗ Q1") and "not attempted" in out[1]


def test_check_cell_time_limit(capsys):
    from ganlib.grading import Question

    def slow(rng, fn):
        fn()

    q = Question("q9", "slow", 1, ("fn",), slow, timeout=0.5)

    def forever():
        while True:
            pass

    q(forever)
    assert "timed out" in capsys.readouterr().out


# --------------------------------------------------------------------------- what the grader runs (issue: correct answers rejected)

import contextlib

import numpy as np
import io
import os
import re

from conftest import notebook_dict, solution_code

CHAPTER_FILES = {"01": "01_minimax_games.ipynb", "02": "02_gan_objective.ipynb", "03": "03_numpy_gan.ipynb",
                 "04": "04_training_dynamics.ipynb", "05": "05_pytorch.ipynb"}


def run_top_to_bottom(cells, until_check):
    """Execute code cells in one namespace, as Jupyter's Run All does, up to the check cell of a question.

    Returns what the cells printed (the check cell's verdict line among it).
    """
    ns, out = {"__name__": "__main__"}, io.StringIO()
    with contextlib.redirect_stdout(out):
        for src in cells:
            src = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in src.splitlines())
            exec(compile(src, "<cell>", "exec"), ns)
            if f"check_{until_check}(" in src:
                break
    return out.getvalue()


FORMS = {  # name of the answer to replace, chapter, question, the correct answer written differently
    "tuple assignment": ("CONVERGE", "01", "q6", 'CONVERGE, DIVERGE = {"extragradient", "optimistic"}, {"simultaneous"}'),
    "helper variable": ("VANISHING_LOSS", "03", "q7", 'd = 0.01\nVANISHING_LOSS = "saturating"\nGRADIENT_RATIO = (1 - d) / d'),
    "augmented assignment": ("LOCALLY_CONVERGENT", "04", "q6",
                             'LOCALLY_CONVERGENT = {"instance_noise", "gradient_penalty"}\n'
                             'LOCALLY_CONVERGENT |= {"gradient_penalty_critical", "consensus"}'),
    "lowercase helper lambda": ("bce_with_logits", "02", "q4",
                                "softplus = lambda z: np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))\n"
                                "def bce_with_logits(logits, targets):\n"
                                "    a, t = np.asarray(logits, dtype=float), np.asarray(targets, dtype=float)\n"
                                "    return float(np.mean(t * softplus(-a) + (1 - t) * softplus(a)))"),
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_correct_answer_written_differently_passes_in_notebook_and_in_grader(form, make_notebook):
    name, chapter, key, source = FORMS[form]
    cells = solution_code(CHAPTER_FILES[chapter], {name: source})
    assert f"✓ {key.upper()}" in run_top_to_bottom(cells, key)      # the check cell accepts it ...
    report = grading.grade_notebook(make_notebook(cells, chapter=chapter), seed=0)
    assert report.score == report.total, grading.format_report(report)   # ... and so does the grader


def test_helpers_from_other_cells_are_run_and_experiments_are_not(make_notebook, tmp_path):
    marker = tmp_path / "experiment_ran.txt"
    cells = solution_code("03_numpy_gan.ipynb", {"VANISHING_LOSS": 'VANISHING_LOSS = "saturating"\nGRADIENT_RATIO = ratio'})
    at = next(i for i, c in enumerate(cells) if "GRADIENT_RATIO = ratio" in c)
    cells.insert(at, f"d = 0.01\nratio = (1 - d) / d\nopen({str(marker)!r}, 'w').write('ran')\nprint(ratio)")
    cells.insert(at, "def helper_not_needed():\n    return 1\nimport time\ntime.sleep(60)")
    report = grading.grade_notebook(make_notebook(cells, chapter="03"), seed=0)
    assert report.score == report.total, grading.format_report(report)
    assert not marker.exists()  # only `d = ...` and `ratio = ...` of that cell ran


def test_plan_names_cells_as_a_learner_finds_them():
    """Cells are counted as JupyterLab shows them, markdown included, and named by question or heading."""
    nb = notebook_dict([("markdown", "# Chapter 01 exercises\n\nSome text."), "import numpy as np",
                        ("markdown", "## Q1 · Simultaneous step\n\nWrite it."),
                        "def simultaneous_step(grad, x, y, eta):\n    x = np.asarray(x)\n    # YOUR CODE HERE\n"
                        "    raise NotImplementedError()",
                        "check_q1(simultaneous_step)", ("markdown", "## Q6 · Which rules converge?"),
                        "# YOUR CODE HERE\nraise NotImplementedError()", "check_q6(CONVERGE, DIVERGE)",
                        "x = np.linspace(0, 1)\nprint(x)"], chapter="01")
    plan = grading.plan_notebook(nb, grading.question_specs("01"))
    labels = [s.label for s in plan.steps]
    assert labels == ['cell 2 (under "Chapter 01 exercises")', "cell 4 (Q1's answer)", "cell 7 (Q6's answer)"]
    assert [s.cell for s in plan.steps] == [2, 4, 7]   # 1-based positions among all 9 cells
    assert plan.steps[0].keep == [0]  # only the import the answer uses; the plotting cell 9 is not run
    assert plan.stub_cells == {"q1": "cell 4 (Q1's answer)", "q6": "cell 7 (Q6's answer)"}


def test_feedback_names_cells_by_their_position_among_all_cells(make_notebook):
    """A broken helper cell is named by its position counting markdown cells, and the heading above it."""
    cells = [("markdown", "# Chapter 01 exercises"), ("markdown", "## Setup"), "import numpy as np\nSTEP = 1 / 0",
             ("markdown", "## Q1 · Simultaneous step"),
             "def simultaneous_step(grad, x, y, eta):\n    gx, gy = grad(x, y)\n    return x - STEP * gx, y + eta * gz"]
    res = by_key(grading.grade_notebook(make_notebook(cells, chapter="01"), seed=0))
    assert res["q1"].status == grading.ERROR
    assert "`STEP` is not defined because cell 3 (under \"Setup\") failed to load" in res["q1"].feedback, res["q1"]
    report = grading.grade_notebook(make_notebook(cells[:4] + [cells[4].replace("STEP", "eta")], chapter="01"), seed=0)
    q1 = by_key(report)["q1"]
    assert "in `simultaneous_step` (cell 5 (Q1's answer), line 3" in q1.feedback, q1


def test_specs_parsed_without_import_match_the_questions():
    for chapter in CHAPTER_FILES:
        specs = grading.question_specs(chapter)
        questions = grading.questions_for(chapter)
        assert [(s.key, s.title, s.points, s.needs, s.timeout) for s in specs] == \
               [(q.key, q.title, q.points, q.needs, q.timeout) for q in questions]


# --------------------------------------------------------------------------- feedback


VALUE_STUB = "CONVERGE = None  # YOUR ANSWER HERE\nDIVERGE = None  # YOUR ANSWER HERE"


def test_value_stub_is_not_attempted_in_check_cell_grader_and_cli(make_notebook, capsys):
    from ganlib.checks.ch01 import check_q6

    check_q6(None, None)
    assert "not attempted" in capsys.readouterr().out
    half = check_q6.evaluate({"extragradient", "optimistic"}, None)
    assert half.status == grading.FAILED and "`DIVERGE` is still None" in half.feedback
    path = make_notebook(solution_code("01_minimax_games.ipynb", {"CONVERGE": VALUE_STUB}), chapter="01")
    q6 = by_key(grading.grade_notebook(path, seed=0))["q6"]
    assert q6.status == grading.NOT_ATTEMPTED and "set `CONVERGE`, `DIVERGE`" in q6.feedback
    cli = subprocess.run([sys.executable, "-m", "ganlib", "grade", str(path)], capture_output=True, text=True)
    assert cli.returncode == 1 and re.search(r"Q6 .* 0/2 +not attempted", cli.stdout), cli.stdout


def test_answer_that_fails_to_load_says_what_happened(make_notebook):
    src = 'CONVERGE, DIVERGE = {"extragradient", "optimistic"}, simultaneous_set'
    report = grading.grade_notebook(make_notebook(solution_code("01_minimax_games.ipynb", {"CONVERGE": src}), chapter="01"), seed=0)
    q6 = by_key(report)["q6"]
    assert q6.status == grading.ERROR, q6
    assert "cell 13 (Q6's answer) raised NameError: name 'simultaneous_set' is not defined" in q6.feedback
    assert sum(r.passed for r in report.results) == 5


def test_calling_an_unwritten_function_is_named(make_notebook):
    stub = "def dirac_field(theta, psi, fprime):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    report = grading.grade_notebook(make_notebook(solution_code("04_training_dynamics.ipynb", {"dirac_field": stub}),
                                                  chapter="04"), seed=0)
    res = by_key(report)
    assert res["q1"].status == grading.NOT_ATTEMPTED
    assert res["q2"].status == grading.FAILED and "`r1_field` calls `dirac_field`, which is not written yet" in res["q2"].feedback


AUTOGRAD_HEAD = "import torch\nimport torch.nn.functional as F\n"


@pytest.mark.parametrize("forward, backward, expected", [
    # a bug in dense_forward (b detached) is reported as dense_forward's, before autograd fails elsewhere
    ("return F.leaky_relu(x @ W + b.detach(), slope)",
     "x, W, b = (t.clone().requires_grad_(True) for t in (x, W, b))\n    y = dense_forward(x, W, b, slope)\n"
     "    return torch.autograd.grad(y, [x, W, b], grad_out)",
     "dense_forward's output does not depend on b"),
    # an autograd error inside dense_backward_autograd names that function and explains the error
    ("return F.leaky_relu(x @ W + b, slope)",
     "y = dense_forward(x, W, b, slope)\n    return torch.autograd.grad(y, [x, W, b], grad_out)",
     "in `dense_backward_autograd` (cell 2 (Q1's answer), line 7"),
])
def test_autograd_errors_are_attributed_to_the_learners_function(forward, backward, expected, make_notebook):
    src = (AUTOGRAD_HEAD + f"def dense_forward(x, W, b, slope):\n    {forward}\n"
           f"def dense_backward_autograd(x, W, b, slope, grad_out):\n    {backward}")
    cells = solution_code("05_pytorch.ipynb", {"dense_forward": src})
    q1 = by_key(grading.grade_notebook(make_notebook(cells, chapter="05"), seed=0))["q1"]
    assert q1.status in (grading.FAILED, grading.ERROR) and expected in q1.feedback, q1
    if "autograd.grad(y, [x" in backward and "requires_grad_" not in backward:
        assert "Hint: torch autograd" in q1.feedback and "Traceback" not in q1.feedback


def test_feedback_is_one_short_line_without_arrays(make_notebook):
    cells = [
        "import numpy as np",
        "def simultaneous_step(grad, x, y, eta):\n    raise ValueError('\\x1b[2J' + '\\n'.join(str(np.arange(400.0).reshape(20, 20)) for _ in range(3)))",
        "def alternating_step(grad, x, y, eta):\n    return x + 1e-3 * np.arange(x.size), y",
        "def per_step_factor(rule, eta):\n    return np.ones((30, 30))",
    ]
    report = grading.grade_notebook(make_notebook(cells, chapter="01"), seed=0)
    for r in report.results:
        assert "\n" not in r.feedback and "\x1b" not in r.feedback and len(r.feedback) <= grading.FEEDBACK_LIMIT, r.feedback
        assert "[[" not in r.feedback and "..." not in r.feedback.replace("...", "", 1), r.feedback
    res = by_key(report)
    assert "x_new is wrong in" in res["q2"].feedback and "the largest error is at index" in res["q2"].feedback
    assert "should have shape ()" in res["q5"].feedback
    table = grading.format_report(report)
    assert max(len(line) for line in table.splitlines()) < 250


def test_summarize_and_mismatch_never_dump_arrays():
    big = np.arange(1000.0).reshape(10, 100)
    assert grading.summarize(big) == "an array of shape (10, 100) with values in [0, 999]"
    msg = grading.mismatch(big + (np.arange(1000) == 537).reshape(10, 100), big, "y")
    assert msg == "y is wrong in 1 of 1000 entries; the largest error is at index (5, 37): got 538, expected 537"


# --------------------------------------------------------------------------- the same grade whatever the seed

FLAT_ONLY = {
    "q4": (AUTOGRAD_HEAD + "def gradient_penalty(critic, real, fake, lam):\n    n = real.shape[0]\n"
           "    eps = torch.rand(n, *[1] * (real.dim() - 1), dtype=real.dtype)\n"
           "    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)\n"
           "    (g,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)\n"
           "    return lam * ((g.norm(dim=1) - 1) ** 2).mean()"),
    "q5": (AUTOGRAD_HEAD + "def r1_penalty(critic, real, gamma):\n    x = real.clone().requires_grad_(True)\n"
           "    (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)\n"
           "    return gamma / 2 * g.pow(2).sum(dim=1).mean()"),
}


@pytest.mark.parametrize("key", sorted(FLAT_ONLY))
def test_flat_only_penalty_fails_under_every_seed(key, make_notebook):
    from ganlib.checks import ch05

    ns = {}
    exec(FLAT_ONLY[key], ns)
    q = {"q4": ch05.check_q4, "q5": ch05.check_q5}[key]
    fn = ns[q.needs[0]]
    verdicts = {q.evaluate(fn, rng=np.random.default_rng(seed)).status for seed in range(20)}
    assert verdicts == {grading.FAILED}
    cells = solution_code("05_pytorch.ipynb", {q.needs[0]: FLAT_ONLY[key]})
    path = make_notebook(cells, chapter="05")
    grades = {tuple((r.key, r.points) for r in grading.grade_notebook(path, seed=seed).results) for seed in (1, 2)}
    assert len(grades) == 1 and dict(next(iter(grades)))[key] == 0


@pytest.mark.parametrize("chapter", ["01", "02", "03", "05"])
def test_solutions_pass_every_question_under_many_seeds(chapter):
    import importlib

    from conftest import solution_namespace

    ns = solution_namespace(CHAPTER_FILES[chapter])
    for q in importlib.import_module(f"ganlib.checks.ch{chapter}").QUESTIONS:
        for seed in range(15):
            r = q.evaluate(*[ns[n] for n in q.needs], rng=np.random.default_rng(seed))
            assert r.passed, (q.key, seed, r.feedback)


# --------------------------------------------------------------------------- a load-time endless loop

LOOP = 'CONVERGE = {"extragradient", "optimistic"}\nDIVERGE = set()\nwhile len(DIVERGE) < 1:\n    pass'
LOOP_IGNORING_ALARM = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n" + LOOP


@pytest.mark.parametrize("source, load_timeout", [(LOOP, None), (LOOP_IGNORING_ALARM, 3.0)])
def test_load_time_endless_loop_costs_only_its_question(source, load_timeout, make_notebook, monkeypatch):
    jobs = []  # what each worker the grader starts is asked to run
    real_init = grading._Worker.__init__

    def recording_init(self, job, sandbox, workdir, startup_timeout):
        jobs.append(job)
        real_init(self, job, sandbox, workdir, startup_timeout)

    monkeypatch.setattr(grading._Worker, "__init__", recording_init)
    cells = solution_code("01_minimax_games.ipynb", {"CONVERGE": source})
    kwargs = {} if load_timeout is None else {"load_timeout": load_timeout}
    report = grading.grade_notebook(make_notebook(cells, chapter="01"), seed=0, **kwargs)
    res = by_key(report)
    assert [r.key for r in report.results if r.passed] == ["q1", "q2", "q3", "q4", "q5"]
    text = grading.format_report(report)
    assert text.count("cell 13 (Q6's answer) did not finish within") == 1, text  # one note, named ...
    assert res["q6"].status == grading.TIMEOUT and "cell 13 (Q6's answer) did not finish" in res["q6"].feedback
    # one load under one limit, not one per question: the loop's cell runs in one worker only (the worker goes
    # on with the other cells, or, when it ignores the alarm, is killed and a second one loads them without it)
    loop = next(i for i, step in enumerate(jobs[0]["steps"]) if "while len(DIVERGE) < 1" in step["source"])
    assert len(jobs) == (1 if load_timeout is None else 2)
    assert [loop in job["skip_steps"] for job in jobs] == [False] + [True] * (len(jobs) - 1)


def test_question_depending_on_a_broken_cell_is_explained(make_notebook):
    broken = "while True:\n    pass\n\ndef dirac_field(theta, psi, fprime):\n    return -psi * fprime(psi * theta), theta * fprime(psi * theta)"
    cells = solution_code("04_training_dynamics.ipynb", {"dirac_field": broken})
    report = grading.grade_notebook(make_notebook(cells, chapter="04"), seed=0, load_timeout=2)
    res = by_key(report)
    assert res["q1"].status == grading.TIMEOUT and "cell 2 (Q1's answer) did not finish within 2 s" in res["q1"].feedback
    assert report.problems == []  # said once, in Q1's row
    assert res["q2"].status == grading.ERROR
    assert "`dirac_field` is not defined because cell 2 (Q1's answer) failed to load" in res["q2"].feedback
    assert all(res[k].passed for k in ("q3", "q4", "q5", "q6"))


# --------------------------------------------------------------------------- cost


def test_grading_one_notebook_starts_one_worker():
    """What keeps batch grading cheap: one worker per notebook (the learner's code is loaded once, there).

    The checks run in the grading process itself (it judges), so the chapters whose checks use torch
    import it there too, once per grading process. The seconds depend on the machine and its load;
    ``benchmarks/grade_batch.py`` measures them.
    """
    script = (
        "import subprocess, sys, json\n"
        "from ganlib import grading\n"
        "started = []\n"
        "class Counting(subprocess.Popen):\n"
        "    def __init__(self, args, *a, **k):\n"
        "        started.append(list(map(str, args)))\n"
        "        super().__init__(args, *a, **k)\n"
        "subprocess.Popen = Counting\n"
        "r = grading.grade_notebook(sys.argv[1], seed=0)\n"
        "print(json.dumps({'workers': len(started), 'full': r.score == r.total}))\n"
    )
    for name in SOLUTION_FILES:
        out = subprocess.run([sys.executable, "-c", script, str(SOLUTIONS / name)], capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert out.returncode == 0, (name, out.stderr[-2000:])
        data = json.loads(out.stdout)
        assert data == {"workers": 1, "full": True}, (name, data)


# --------------------------------------------------------------------------- untrusted notebooks: limits, sandbox, no unpickling

SANDBOX_PROBLEM = grading.sandbox_problem()
needs_sandbox = pytest.mark.skipif(bool(SANDBOX_PROBLEM), reason=f"sandbox tests need bubblewrap: {SANDBOX_PROBLEM}")
BOTH = [pytest.param(False, id="unsandboxed"), pytest.param(True, id="sandboxed", marks=needs_sandbox)]
GOOD_ALT = ("def alternating_step(grad, x, y, eta):\n    gx, _ = grad(x, y)\n    x = x - eta * gx\n"
            "    return x, y + eta * grad(x, y)[1]")
GOOD_EG = ("def extragradient_step(grad, x, y, eta):\n    gx, gy = grad(x, y)\n    gx, gy = grad(x - eta * gx, y + eta * gy)\n"
           "    return x - eta * gx, y + eta * gy")


def test_help_states_the_trust_model():
    out = subprocess.run([sys.executable, "-m", "ganlib", "grade", "--help"], capture_output=True, text=True).stdout
    assert "not a proctoring tool" in out and "runs the code of the notebooks it grades" in out
    assert "--sandbox" in out and "GANLIB_GRADE_SANDBOX=1" in out and "bubblewrap" in out
    assert "no capabilities" in out and "as root" in out and "copy code they can import" in out
    assert "3 a submission misbehaved" in " ".join(out.split())


@pytest.mark.parametrize("sandbox", BOTH)
def test_resource_hogs_are_stopped_and_charged_to_their_question(sandbox, make_notebook, tmp_path, monkeypatch):
    workdirs = []  # one per worker this test starts; every process a worker forks inherits MPLCONFIGDIR=workdir
    real_init = grading._Worker.__init__

    def recording_init(self, job, sandbox, workdir, startup_timeout):
        workdirs.append(workdir)
        real_init(self, job, sandbox, workdir, startup_timeout)

    monkeypatch.setattr(grading._Worker, "__init__", recording_init)
    cells = [
        "import os, numpy as np",
        # 8 GB (np.empty does not touch the pages, so a broken limit cannot hurt the machine)
        "def simultaneous_step(grad, x, y, eta):\n    big = np.empty(8 * 2**30 // 8)\n    return x, y",
        # a 1 GB file, 1 MB at a time, in the working directory
        "def alternating_step(grad, x, y, eta):\n    with open('big.bin', 'wb') as f:\n"
        "        for _ in range(1024):\n            f.write(b'\\0' * 2**20)\n    return x, y",
        # a bounded fork bomb: at most 50 sleeping children
        "def extragradient_step(grad, x, y, eta):\n    import time\n    for _ in range(50):\n"
        "        if os.fork() == 0:\n            time.sleep(30)\n            os._exit(0)\n    return x, y",
        # an 8 GB constant while loading
        "BIG = np.empty(8 * 2**30 // 8)\nCONVERGE, DIVERGE = {'extragradient', 'optimistic'}, {'simultaneous'}",
        GOOD_ALT.replace("alternating_step", "optimistic_unused"),
        "def per_step_factor(rule, eta):\n    return {'simultaneous': (1 + eta**2) ** 0.5, 'alternating': 1.0}.get(rule)",
    ]
    report = grading.grade_notebook(make_notebook(cells, chapter="01"), seed=0, sandbox=sandbox)
    res = by_key(report)
    assert res["q1"].status == grading.ERROR and "MemoryError" in res["q1"].feedback
    assert "more than the 3072 MB the grader allows" in res["q1"].feedback
    assert res["q2"].status == grading.ERROR and "File too large" in res["q2"].feedback
    assert "larger than the grader allows" in res["q2"].feedback
    assert res["q3"].status == grading.ERROR and "starting a process is not allowed" in res["q3"].feedback
    assert res["q6"].status == grading.ERROR
    assert "cell 5 (Q6's answer) used more than 3072 MB of memory while loading" in res["q6"].feedback
    assert res["q4"].status == grading.MISSING
    assert res["q5"].status == grading.FAILED  # graded as usual: its wrong answer has nothing to do with the hogs
    assert workdirs
    assert not processes_started_in(workdirs)  # the worker and anything it forked are gone


def processes_started_in(workdirs: list[str]) -> list[int]:
    """PIDs whose environment names one of ``workdirs`` (other tests' workers may run at the same time)."""
    marks = {f"MPLCONFIGDIR={w}".encode() for w in workdirs}
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marks & set((proc / "environ").read_bytes().split(b"\0")):
                found.append(int(proc.name))
        except OSError:  # the process ended while we looked, or is not ours to read
            pass
    return found


def test_cpu_limit_is_reported_and_the_next_questions_graded(make_notebook):
    cells = ["import signal",
             "def simultaneous_step(grad, x, y, eta):\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    while True:\n        pass",
             GOOD_ALT]
    report = grading.grade_notebook(make_notebook(cells, chapter="01"), seed=0, limits=grading.Limits(cpu_s=3))
    res = by_key(report)
    assert res["q1"].status == grading.ERROR and "used more than 3 s of CPU time" in res["q1"].feedback
    assert res["q2"].passed


@needs_sandbox
def test_sandbox_blocks_writes_outside_the_workdir_the_network_and_hides_home(make_notebook, tmp_path):
    import socket

    outside = [tmp_path / "written.txt", ROOT / "written_by_a_submission.txt"]
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    cells = [
        "import os, socket, json",
        "def simultaneous_step(grad, x, y, eta):\n"
        f"    for p in {[str(p) for p in outside]!r}:\n        open(p, 'w').write('x')\n    return x, y",
        f"def alternating_step(grad, x, y, eta):\n    socket.create_connection(('127.0.0.1', {port}), timeout=3).sendall(b'hi')\n"
        "    return x, y",
        "def extragradient_step(grad, x, y, eta):\n    raise RuntimeError(json.dumps({'pid': os.getpid(), 'home': os.listdir(os.path.expanduser('~')),\n"
        "        'secret': os.environ.get('GANLIB_TEST_SECRET'), 'tmp': os.listdir('/tmp')}))",
        GOOD_EG.replace("extragradient_step", "unused"),
        "CONVERGE, DIVERGE = {'extragradient', 'optimistic'}, {'simultaneous'}",
    ]
    try:
        os.environ["GANLIB_TEST_SECRET"] = "s3cret"
        report = grading.grade_notebook(make_notebook(cells, chapter="01"), seed=0, sandbox=True)
        with pytest.raises(socket.timeout):
            server.accept()
    finally:
        os.environ.pop("GANLIB_TEST_SECRET", None)
        server.close()
        leaked = [p for p in outside if p.exists()]
        for p in leaked:
            p.unlink()
    assert not leaked
    res = by_key(report)
    assert res["q1"].status == grading.ERROR and ("Read-only file system" in res["q1"].feedback
                                                  or "No such file" in res["q1"].feedback)
    assert res["q2"].status == grading.ERROR and "OSError" in res["q2"].feedback or "Error" in res["q2"].feedback
    info = json.loads(re.search(r"RuntimeError: (\{.*?\})", res["q3"].feedback).group(1))
    # the sandbox's /tmp holds its work folder and, at most, the top folders of read-only mounts that
    # happen to live under /tmp (a repository or an environment cloned there); nothing else of the host's
    mounted = {Path(p).parts[2] for p in (ROOT, sys.prefix, sys.base_prefix)
               if Path(p).parts[1:2] == ("tmp",) and len(Path(p).parts) > 2}
    assert "grading" in info["tmp"] and set(info["tmp"]) - mounted == {"grading"}, info
    assert info["home"] == [] and info["secret"] is None and info["pid"] < 10
    assert res["q6"].passed and report.sandboxed


def test_sandbox_never_falls_back_silently(monkeypatch, tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {**os.environ, "PATH": str(bare)}
    nb = str(SOLUTIONS / "01_minimax_games.ipynb")
    out = subprocess.run([sys.executable, "-m", "ganlib", "grade", "--sandbox", nb], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and out.stdout == ""
    assert "bubblewrap (`bwrap`) is not installed" in out.stderr and "apt-get install bubblewrap" in out.stderr
    assert "docker run --rm --network none --read-only" in out.stderr and "never runs a submission unsandboxed" in out.stderr
    by_env = subprocess.run([sys.executable, "-m", "ganlib", "grade", nb], capture_output=True, text=True,
                            env={**env, "GANLIB_GRADE_SANDBOX": "1"})
    assert by_env.returncode == 2 and "bubblewrap" in by_env.stderr
    opt_out = subprocess.run([sys.executable, "-m", "ganlib", "grade", "--no-sandbox", nb], capture_output=True, text=True,
                             env={**env, "GANLIB_GRADE_SANDBOX": "1"})
    assert opt_out.returncode == 0 and "total: 12/12" in opt_out.stdout
    monkeypatch.setenv("PATH", str(bare))
    with pytest.raises(grading.SandboxUnavailable, match="docker run"):
        grading.grade_notebook(nb, sandbox=True)


@needs_sandbox
def test_same_grade_with_and_without_sandbox(make_notebook):
    wrong = solution_code("01_minimax_games.ipynb", {"alternating_step": WRONG_ALT})
    for path in (SOLUTIONS / "05_pytorch.ipynb", make_notebook(wrong, chapter="01")):
        plain = grading.grade_notebook(path, seed=4, sandbox=False)
        boxed = grading.grade_notebook(path, seed=4, sandbox=True)
        assert boxed.sandboxed and not plain.sandboxed
        assert [asdict_ for asdict_ in map(vars, plain.results)] == [asdict_ for asdict_ in map(vars, boxed.results)]


WRONG_ALT = "def alternating_step(grad, x, y, eta):\n    gx, gy = grad(x, y)\n    return x - eta * gx, y + eta * gy"


def test_the_parent_never_unpickles(make_notebook, tmp_path, monkeypatch):
    import ast as ast_
    import pickle

    from ganlib.grading import remote

    # pickle goes one way only: the grader pickles arguments, the worker unpickles them (in remote.Server)
    for path in (ROOT / "ganlib" / "grading").glob("*.py"):
        tree = ast_.parse(path.read_text())
        imported = {a.name.split(".")[0] for n in ast_.walk(tree) if isinstance(n, (ast_.Import, ast_.ImportFrom))
                    for a in n.names} | {n.module.split(".")[0] for n in ast_.walk(tree) if isinstance(n, ast_.ImportFrom)}
        assert not imported & {"multiprocessing", "marshal", "shelve", "dill", "cloudpickle"}, path
        if path.name != "remote.py":
            assert "pickle" not in imported, path
            continue
        loads = [n for n in ast_.walk(tree) if isinstance(n, ast_.Attribute) and isinstance(n.value, ast_.Name)
                 and n.value.id == "pickle" and n.attr in ("load", "loads", "Unpickler")]
        assert [n.attr for n in loads] == ["Unpickler"]     # the base class of the worker's unpickler
        users = [f.name for f in ast_.walk(tree) if isinstance(f, (ast_.FunctionDef, ast_.ClassDef))
                 for n in ast_.walk(f) if isinstance(n, ast_.Name) and n.id == "_Unpickler"]
        assert set(users) == {"Server", "handle"}, users   # used only by the worker's request handler

    def forbidden(*args, **kwargs):
        raise AssertionError("the parent unpickled something")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(remote._Unpickler, "load", forbidden)
    marker = tmp_path / "pwned"
    # a pickle that would run code if unpickled, written to every pipe the worker holds (its result channel too)
    payload = pickle.dumps(type("X", (), {"__reduce__": lambda self: (os.system, (f"touch {marker}",))})())
    cells = ["import os",
             "def simultaneous_step(grad, x, y, eta):\n    for fd in range(3, 64):\n        try:\n"
             f"            os.write(fd, {payload!r} + b'\\n')\n        except OSError:\n            pass\n    return x, y",
             GOOD_ALT]
    report = grading.grade_notebook(make_notebook(cells, chapter="01"), seed=0)
    assert not marker.exists()
    res = by_key(report)
    assert res["q1"].status == grading.ERROR and "broke the grader's protocol" in res["q1"].feedback
    assert res["q2"].passed  # a fresh worker graded the rest


def test_worker_results_are_validated_and_scored_by_the_parent(make_notebook):
    """A submission that forges result lines on the channel cannot give itself points."""
    cells = ["import os, json",
             "def simultaneous_step(grad, x, y, eta):\n    for fd in range(3, 64):\n        try:\n"
             "            os.write(fd, (json.dumps({'e': 'result', 'key': 'q1', 'status': 'passed', 'feedback': '',\n"
             "                                      'points': 1000}) + '\\n').encode())\n        except OSError:\n"
             "            pass\n    raise NotImplementedError()"]
    report = grading.grade_notebook(make_notebook(cells, chapter="01"), seed=0)
    assert report.score <= report.total and all(r.points <= r.max_points for r in report.results)
    assert by_key(report)["q1"].points in (0, 2)


# --------------------------------------------------------------------------- options and exit codes


def test_timeout_override_is_every_questions_limit(make_notebook, monkeypatch):
    limits = []  # the per-question limits each worker is given (it stops an answer at its limit)
    real_init = grading._Worker.__init__

    def recording_init(self, job, sandbox, workdir, startup_timeout):
        limits.append(job["timeouts"])
        real_init(self, job, sandbox, workdir, startup_timeout)

    monkeypatch.setattr(grading._Worker, "__init__", recording_init)
    cells = ["def simultaneous_step(grad, x, y, eta):\n    while True:\n        pass"]
    path = make_notebook(cells, chapter="01")
    for limit in (1, 2):
        limits.clear()
        q1 = by_key(grading.grade_notebook(path, seed=0, timeout=limit))["q1"]
        assert q1.status == grading.TIMEOUT and f"no answer within {limit} s" in q1.feedback
        assert limits and all(set(t.values()) == {float(limit)} for t in limits), limits


def test_load_timeout_override_is_the_load_limit(make_notebook):
    path = make_notebook(["import time\ntime.sleep(4)\nCONVERGE = DIVERGE = set()"], chapter="01")
    q6 = by_key(grading.grade_notebook(path, seed=0, load_timeout=1))["q6"]
    assert q6.status == grading.TIMEOUT and "within 1 s" in q6.feedback  # stopped after 1 s, not 4
    q6 = by_key(grading.grade_notebook(path, seed=0, load_timeout=8))["q6"]
    assert q6.status == grading.FAILED  # loaded after 4 s; empty sets are wrong


@pytest.mark.parametrize("other, code", [("exercise", 1), ("solution", 0)])
def test_cli_exit_code_over_a_folder(other, code, tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    (folder / "a_01.ipynb").write_text((SOLUTIONS / "01_minimax_games.ipynb").read_text())
    (folder / "b_01.ipynb").write_text(((SOLUTIONS if other == "solution" else EXERCISES) / "01_minimax_games.ipynb").read_text())
    out = subprocess.run([sys.executable, "-m", "ganlib", "grade", str(folder)], capture_output=True, text=True)
    assert out.returncode == code, out.stdout


def test_jobs_grade_notebooks_at_the_same_time(tmp_path):
    folder, meet = tmp_path / "submissions", tmp_path / "meet"
    folder.mkdir()
    meet.mkdir()
    # each notebook's answer checks in at `meet`, then waits (8 s at most, under the 10 s load limit) for the
    # other: the right answer only if both were loading at the same time; one after the other, the first fails
    wait = (f"import time\nfrom pathlib import Path\nMEET = Path({str(meet)!r})\n(MEET / NAME).touch()\n"
            "end = time.monotonic() + 8\nwhile len(list(MEET.iterdir())) < 2 and time.monotonic() < end:\n"
            "    time.sleep(0.05)\nBOTH = len(list(MEET.iterdir())) == 2\n"
            "CONVERGE, DIVERGE = ({'extragradient', 'optimistic'}, {'simultaneous'}) if BOTH else (set(), set())")
    for name in ("a", "b"):
        (folder / f"{name}_01.ipynb").write_text(json.dumps(notebook_dict([f"NAME = {name!r}\n" + wait],
                                                                          chapter="01")))
    out = subprocess.run([sys.executable, "-m", "ganlib", "grade", "--no-sandbox", "--jobs", "2", str(folder)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and len(re.findall(r"Q6 +2/2 +passed +which rules converge on f = xy\?", out.stdout)) == 2


def test_grading_from_inside_the_grader_is_refused(make_notebook, tmp_path):
    inner = make_notebook(["X = 1"], chapter="01")
    cells = [f"from ganlib.grading import grade_notebook\nR = grade_notebook({str(inner)!r})\n"
             "CONVERGE, DIVERGE = {'extragradient', 'optimistic'}, {'simultaneous'}"]
    q6 = by_key(grading.grade_notebook(make_notebook(cells, chapter="01"), seed=0))["q6"]
    assert q6.status == grading.ERROR and "called from inside the grader" in q6.feedback


def test_a_decorated_stub_is_not_attempted():
    import functools

    def stub(x):
        raise NotImplementedError()

    @functools.wraps(stub)
    def wrapper(*args):
        return stub(*args)

    q = grading.Question("q1", "anything", 1, ("f",), lambda rng, f: f(1.0))
    assert q.evaluate(wrapper).status == grading.NOT_ATTEMPTED
    assert q.evaluate(lambda x: x).status == grading.PASSED


# --------------------------------------------------------------------------- a missing package, long numbers, the table's width


def test_a_missing_torch_is_named_with_how_to_install_it(tmp_path):
    """A Python without torch: the grader says torch is missing and how to install it, not "no graded questions"."""
    shim = tmp_path / "python_without_torch"
    shim.mkdir()   # first on the import path of the grader and its worker: `import torch` fails as if not installed
    (shim / "torch.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run([sys.executable, "-m", "ganlib", "grade", "exercises/08_dcgan.ipynb"], cwd=ROOT,
                         capture_output=True, text=True, env={**env, "PYTHONPATH": str(shim)})
    assert out.returncode == 2, out.stdout + out.stderr
    text = " ".join(out.stdout.split())
    assert "no graded questions" not in text and "Traceback" not in text + out.stderr
    assert "chapter 08's questions need PyTorch (the module `torch`)" in text, text
    assert f"{sys.executable} -m pip install torch" in text and "make setup" in text, text
    assert max(len(line) for line in out.stdout.splitlines()) <= 80
    # the same in a notebook's check cell: importing the questions names the module
    plain = subprocess.run([sys.executable, "-c", "from ganlib.grading import questions_for; questions_for('08')"],
                           capture_output=True, text=True, env={**env, "PYTHONPATH": str(shim)})
    assert "GradingError: chapter 08's questions need PyTorch" in plain.stderr
    # a chapter that really has no questions still says so
    with pytest.raises(grading.GradingError, match="chapter 99 has no graded questions"):
        grading.questions_for("99")


def test_a_missing_package_in_process(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)   # `import torch` now raises ModuleNotFoundError(name="torch")
    monkeypatch.delitem(sys.modules, "ganlib.checks.ch07", raising=False)
    with pytest.raises(grading.GradingError, match=r"need PyTorch \(the module `torch`\).*pip install torch"):
        grading.questions_for("07")


def test_shortened_feedback_keeps_whole_numbers():
    text = "your code raised RuntimeError: can't allocate memory: you tried to allocate 68719476736 bytes (64 GiB) " * 3
    numbers = set(re.findall(r"\d+", text))
    for limit in range(20, len(text) + 5):
        short = grading.one_line(text, limit)
        assert len(short) <= limit
        assert set(re.findall(r"\d+", short)) <= numbers, short    # no number cut in the middle
        assert short == text.strip() or short.endswith("...")


def test_out_of_memory_feedback_keeps_the_whole_number(make_notebook):
    cells = ["import torch",
             "def simultaneous_step(grad, x, y, eta):\n    big = torch.empty(2**36, dtype=torch.uint8)\n    return x, y"]
    q1 = by_key(grading.grade_notebook(make_notebook(cells, chapter="01"), seed=0))["q1"]
    assert q1.status == grading.ERROR, q1
    assert "you tried to allocate 68719476736 bytes (64 GiB)" in q1.feedback, q1.feedback
    assert "ran out of memory" in q1.feedback and "enforce fail" not in q1.feedback
    assert set(re.findall(r"\d+", q1.feedback)) <= {"68719476736", "64", "3072", "1", "2", "36", "8"}, q1.feedback


LONG = grading.Result("q3", "one training step: D on a real and a detached fake batch, then G on fresh noise", 0, 3,
                      grading.FAILED, "step 1: right after the D step (opt_D.step()) G's parameters hold gradients of "
                      "D's loss: no gradient may reach G in the D step. Detach the fake batch (fake = "
                      "G(z_d).detach()); a checkpoint_with_a_rather_long_file_name.pt is fine too. " * 2)


@pytest.mark.parametrize("width", [60, 80, 100])
def test_report_fits_its_width_and_breaks_lines_between_words(width):
    report = grading.NotebookReport("exercises/07_mnist_mlp_gan.ipynb", "07",
                                    [LONG, grading.Result("q1", "parse an IDX file", 3, 3, grading.PASSED, "")],
                                    problems=["cell 3 (under \"Setup\") raised NameError: name 'x' is not defined"])
    text = grading.format_report(report, width=width)
    assert max(len(line) for line in text.splitlines()) <= width, text
    source = " ".join([report.path, "(chapter 07)", "question points status task total: 3/6 note:", LONG.title,
                       grading.one_line(LONG.feedback), "Q1 Q3 0/3 3/3 failed passed parse an IDX file", report.problems[0]])
    assert set(text.split()) - {"-" * n for n in range(1, 200)} <= set(source.split()), text   # no word split
    assert grading.one_line(LONG.feedback) == " ".join(
        " ".join(line.split()) for line in text.splitlines() if line.startswith("      ") and not line.startswith("       "))


def test_report_width_follows_the_terminal_within_bounds(monkeypatch):
    from ganlib.grading.report import report_width

    for columns, want in (("100", 100), ("300", 110), ("20", 60)):
        monkeypatch.setenv("COLUMNS", columns)
        assert report_width() == want
    monkeypatch.delenv("COLUMNS")
    out = subprocess.run([sys.executable, "-m", "ganlib", "grade", "exercises/07_mnist_mlp_gan.ipynb"], cwd=ROOT,
                         capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "COLUMNS"})
    assert max(len(line) for line in out.stdout.splitlines()) <= 80, out.stdout   # not a terminal: 80, as in a notebook


def test_the_readme_names_a_cell_as_the_grader_does():
    """The README's example label is the one the grader gives chapter 01's Q6 answer cell."""
    nb = json.loads((EXERCISES / "01_minimax_games.ipynb").read_text(encoding="utf-8"))
    labels = [s.label for s in grading.extract_definitions(nb).steps]
    assert "cell 21 (Q6's answer)" in labels, labels
    assert '"cell 21 (Q6\'s answer)" in chapter 01' in " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    position = 1 + next(i for i, c in enumerate(nb["cells"]) if "CONVERGE = None" in "".join(c["source"]))
    assert position == 21
