"""Shared fixtures: paths of the repository and a factory for learner notebooks."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"


def notebook_dict(cells, chapter=None):
    """A minimal nbformat-4 notebook; ``cells`` are code sources, or ("markdown", text) pairs."""
    out = []
    for i, c in enumerate(cells):
        kind, src = ("code", c) if isinstance(c, str) else c
        cell = {"cell_type": kind, "id": f"c{i}", "metadata": {}, "source": src}
        if kind == "code":
            cell.update(outputs=[], execution_count=None)
        out.append(cell)
    meta = {"ganlib": {"chapter": chapter}} if chapter else {}
    return {"cells": out, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture
def make_notebook(tmp_path):
    """Write a learner notebook and return its path: ``make_notebook(["def f(): ..."], chapter="01")``."""
    counter = iter(range(10_000))

    def make(cells, chapter=None, name=None):
        path = tmp_path / (name or f"submission_{next(counter)}.ipynb")
        path.write_text(json.dumps(notebook_dict(cells, chapter)))
        return path

    return make


def solution_code(chapter_file: str, replace: dict[str, str] | None = None) -> list[str]:
    """The code cells of a solution notebook, with whole cells swapped out by function/constant name.

    ``replace={"alternating_step": "def alternating_step(...): ..."}`` substitutes the cell that
    defines ``alternating_step``, so a test can plant one plausible mistake in an otherwise correct notebook.
    """
    nb = json.loads((SOLUTIONS / chapter_file).read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    for name, src in (replace or {}).items():
        hits = [i for i, c in enumerate(cells) if f"def {name}(" in c or c.lstrip().startswith(f"{name} =")
                or f"\n{name} =" in c or f"### BEGIN SOLUTION\n{name} =" in c]
        assert hits, f"no cell defines {name}"
        cells[hits[0]] = src
    return cells


def assert_rejected(make_notebook, notebook: str, chapter: str, name: str, source: str, key: str, hint: str,
                    seed: int = 5, may_also_fail: tuple[str, ...] = ()):
    """Plant one wrong answer in the solution notebook and check that the grader catches it.

    Question ``key`` must fail with feedback containing ``hint``; every other question must
    still pass, except those in ``may_also_fail`` (answers that call the planted one).
    """
    from ganlib import grading

    path = make_notebook(solution_code(notebook, {name: source}), chapter=chapter)
    report = grading.grade_notebook(path, seed=seed)
    results = {r.key: r for r in report.results}
    assert results[key].status == grading.FAILED, grading.format_report(report)
    assert hint in results[key].feedback, grading.format_report(report)
    others = [r for r in report.results if r.key != key and r.key not in may_also_fail]
    assert all(r.passed for r in others), grading.format_report(report)


def solution_namespace(chapter_file: str) -> dict:
    """The definitions of a solution notebook, loaded exactly as the grader loads a submission."""
    from ganlib import grading

    nb = json.loads((SOLUTIONS / chapter_file).read_text())
    namespace, errors = grading.load_definitions(grading.extract_definitions(nb).cells)
    assert not errors, errors
    return namespace


def assert_questions_fast(chapter_file: str, questions, seeds=(0,), limit: float = 1.0):
    """Every question passes on the solution's answers within ``limit`` seconds of CPU time, for each seed.

    CPU time of this process, not wall-clock time: what a question costs, whatever else the machine runs.
    """
    import time

    import numpy as np

    ns = solution_namespace(chapter_file)
    times = {}
    for seed in seeds:
        for q in questions:
            start = time.process_time()
            result = q.evaluate(*[ns[n] for n in q.needs], rng=np.random.default_rng(seed))
            assert result.passed, (q.key, result.feedback)
            times[q.key] = max(times.get(q.key, 0.0), time.process_time() - start)
    assert max(times.values()) < limit, times
