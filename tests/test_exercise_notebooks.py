"""Run All on every untouched exercise notebook: it must run to the end, every question "not attempted".

This is what a learner sees before writing anything: each check cell prints a polite "not attempted"
(a value stub `NAME = None` included), no cell raises, and the last cell grades the saved file.
"""

import json
import os
import re

import pytest

from conftest import EXERCISES
from ganlib import grading

nbclient = pytest.importorskip("nbclient", reason="nbclient is needed to execute notebooks")
nbformat = pytest.importorskip("nbformat", reason="nbformat is needed to execute notebooks")

NOTEBOOKS = sorted(EXERCISES.glob("*.ipynb"))


def _text(cell) -> str:
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream" and o.get("name") == "stdout":
            out.append(o["text"] if isinstance(o["text"], str) else "".join(o["text"]))
        elif o.get("output_type") == "execute_result":
            out.append("".join(o.get("data", {}).get("text/plain", "")))
    return "".join(out)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_untouched_exercise_runs_to_the_end(path, monkeypatch):
    monkeypatch.setenv("GANLIB_SMOKE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()          # raises CellExecutionError at the first cell that fails

    errors = [c for c in nb.cells if c.cell_type == "code" and any(o.output_type == "error" for o in c.outputs)]
    assert not errors, f"{path.name}: cells raised: {[c.source[:60] for c in errors]}"

    check_cells = [c for c in nb.cells if c.cell_type == "code" and re.match(r"\s*check_q\d+\(", c.source)]
    n_questions = len({re.match(r"\s*(check_q\d+)", c.source).group(1) for c in check_cells})
    chapter = grading.chapter_of(json.loads(path.read_text(encoding="utf-8")), path)
    assert n_questions == len(grading.question_specs(chapter)), f"{path.name}: one check cell per question"
    for c in check_cells:
        out = _text(c)
        assert "not attempted" in out and "✗" in out, f"{path.name}: {c.source!r} printed {out!r}"

    last = nb.cells[-1]
    assert "-m ganlib grade" in last.source and path.name in last.source, "the last cell grades this notebook"
    report = _text(last)
    assert re.search(r"total: 0/\d+", report), report
    assert report.count("not attempted yet") == n_questions, report


def test_value_stubs_are_generated_for_value_questions():
    # the regions that only assign UPPER_CASE values become `NAME = None` stubs, not a top-level raise
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            src = "".join(cell["source"])
            if cell["cell_type"] == "code" and not src.startswith((" ", "\t")):
                assert not src.startswith("# YOUR CODE HERE\nraise NotImplementedError()"), \
                    f"{path.name}: a top-level raising stub stops Run All: {src[:80]!r}"
