"""The grader: full marks for solutions, zero for stubs, clear messages for broken notebooks."""

import json
import subprocess
import sys

import pytest

from conftest import EXERCISES, ROOT, SOLUTIONS
from ganlib import grading

SOLUTION_FILES = sorted(p.name for p in SOLUTIONS.glob("*.ipynb"))


def by_key(report):
    return {r.key: r for r in report.results}


@pytest.mark.parametrize("name", SOLUTION_FILES)
def test_solutions_score_full_marks(name):
    for seed in (0, 1):
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
    assert "cell 2 has a syntax error on line 1" in r.feedback and "Traceback" not in r.feedback


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
    assert "NameError" in r.feedback and "cell 1, line 3" in r.feedback


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
