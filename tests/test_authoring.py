"""The exercise generator: stubs, markers, determinism, and the sync check."""

import json
import subprocess
import sys

import pytest

from conftest import EXERCISES, ROOT, SOLUTIONS, notebook_dict
from ganlib import authoring


def test_code_region_becomes_indented_stub():
    src = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n\nz = 3"
    assert authoring.strip_solution(src, "code", "nb") == (
        "def f(x):\n    y = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\nz = 3")


def test_top_level_and_deeper_indentation():
    src = "### BEGIN SOLUTION\nprint(1)\n### END SOLUTION\nclass C:\n    def m(self):\n        ### BEGIN SOLUTION\n        return 2\n        ### END SOLUTION"
    out = authoring.strip_solution(src, "code", "nb").split("\n")
    assert out[:2] == ["# YOUR CODE HERE", "raise NotImplementedError()"]
    assert out[-2:] == ["        # YOUR CODE HERE", "        raise NotImplementedError()"]


@pytest.mark.parametrize("region,stub", [
    ("A = 1", ["A = None  # YOUR ANSWER HERE"]),
    ("A = {1, 2}\nB: float = 0.5", ["A = None  # YOUR ANSWER HERE", "B = None  # YOUR ANSWER HERE"]),
    ("A, (B, C) = 1, (2, 3)\nA = 4", [f"{n} = None  # YOUR ANSWER HERE" for n in "ABC"]),
])
def test_top_level_value_region_becomes_value_stubs(region, stub):
    # Run All must not stop at a value stub: one `NAME = None` per assigned name, in order
    src = f"x = 0\n### BEGIN SOLUTION\n{region}\n### END SOLUTION\ncheck(A)"
    assert authoring.strip_solution(src, "code", "nb").split("\n") == ["x = 0", *stub, "check(A)"]


@pytest.mark.parametrize("region", [
    "A = 1\nprint(A)",            # not only assignments
    "A[0] = 1",                   # not a plain name
    "A += 1",                     # augmented: needs a value first
    "for i in range(3):\n    A = i",
    "A = (",                      # not Python at all
])
def test_other_top_level_regions_keep_the_raising_stub(region):
    src = f"### BEGIN SOLUTION\n{region}\n### END SOLUTION"
    assert authoring.strip_solution(src, "code", "nb") == "# YOUR CODE HERE\nraise NotImplementedError()"


def test_indented_assignment_keeps_the_raising_stub():
    src = "def f():\n    ### BEGIN SOLUTION\n    y = 1\n    ### END SOLUTION\n    return y"
    assert "    raise NotImplementedError()" in authoring.strip_solution(src, "code", "nb").split("\n")


def test_markdown_region_becomes_answer_placeholder():
    src = "Why?\n\n### BEGIN SOLUTION\nBecause the field rotates.\n### END SOLUTION"
    assert authoring.strip_solution(src, "markdown", "nb") == "Why?\n\nYOUR ANSWER HERE"


@pytest.mark.parametrize("src,msg", [
    ("### BEGIN SOLUTION\nx = 1", "line 1 is never closed"),
    ("x = 1\n### END SOLUTION", "line 2 without a matching"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "nested"),
])
def test_bad_markers_name_notebook_and_cell(src, msg):
    nb = notebook_dict(["import numpy", src])
    with pytest.raises(authoring.MarkerError, match=msg) as info:
        authoring.make_exercise(nb, "solutions/99_x.ipynb")
    assert "solutions/99_x.ipynb, cell 2 (id c1)" in str(info.value)


def test_outputs_cleared_ids_tags_metadata_kept():
    nb = notebook_dict(["def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION", "f()"], chapter="01")
    nb["cells"][1]["outputs"] = [{"output_type": "execute_result", "data": {"text/plain": "1"}, "metadata": {}, "execution_count": 2}]
    nb["cells"][1]["execution_count"] = 2
    nb["cells"][1]["metadata"] = {"tags": ["check"], "execution": {"iopub.status.busy": "2026-01-01"}}
    ex = authoring.make_exercise(nb)
    assert [c["id"] for c in ex["cells"]] == ["c0", "c1"]
    assert ex["cells"][1]["outputs"] == [] and ex["cells"][1]["execution_count"] is None
    assert ex["cells"][1]["metadata"] == {"tags": ["check"]}
    assert ex["metadata"]["ganlib"] == {"chapter": "01", "role": "exercise"}
    assert nb["cells"][1]["execution_count"] == 2, "input must not be modified"


def test_generation_is_byte_deterministic_and_idempotent(tmp_path):
    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    sol.mkdir()
    for p in SOLUTIONS.glob("*.ipynb"):
        (sol / p.name).write_text(p.read_text())
    assert authoring.sync(sol, ex)  # first run writes everything
    first = {p.name: p.read_bytes() for p in ex.glob("*.ipynb")}
    assert authoring.sync(sol, ex) == []  # second run changes nothing
    assert first == {p.name: p.read_bytes() for p in ex.glob("*.ipynb")}


def test_check_detects_drift_and_orphans(tmp_path):
    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    sol.mkdir()
    (sol / "01_a.ipynb").write_text(json.dumps(notebook_dict(["### BEGIN SOLUTION\ndef a():\n    return 1\n### END SOLUTION"])))
    authoring.sync(sol, ex)
    assert authoring.sync(sol, ex, check=True) == []
    (ex / "01_a.ipynb").write_text((ex / "01_a.ipynb").read_text().replace("YOUR CODE HERE", "edited by hand"))
    (ex / "02_orphan.ipynb").write_text("{}")
    assert [p.name for p in authoring.sync(sol, ex, check=True)] == ["01_a.ipynb", "02_orphan.ipynb"]
    assert "edited by hand" in (ex / "01_a.ipynb").read_text(), "--check must not write"


def test_repository_exercises_are_in_sync():
    """CI fails when exercises/ drifts from solutions/ (run `make exercises` to fix)."""
    result = subprocess.run([sys.executable, "-m", "ganlib", "exercises", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_solution_has_markers_and_every_exercise_has_stubs():
    sols = sorted(SOLUTIONS.glob("*.ipynb"))
    assert sols
    for p in sols:
        assert "### BEGIN SOLUTION" in p.read_text(), p
        ex = EXERCISES / p.name
        text = ex.read_text()
        assert "### BEGIN SOLUTION" not in text and "raise NotImplementedError()" in text, ex
