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


def _numbers(x, depth: int = 0) -> int:
    """How many numbers ``x`` holds: arrays, tensors, a module's parameters and buffers, in lists, tuples and dicts."""
    import sys

    import numpy as np

    if isinstance(x, np.ndarray):
        return x.size
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return x.numel()
    if torch is not None and isinstance(x, torch.nn.Module):
        return sum(t.numel() for t in (*x.parameters(), *x.buffers()))
    if depth < 3 and isinstance(x, (list, tuple)):
        return sum(_numbers(v, depth + 1) for v in x)
    if depth < 3 and isinstance(x, dict):
        return sum(_numbers(v, depth + 1) for v in x.values())
    return 0


def assert_questions_fast(chapter_file: str, questions, seeds=(0,), max_calls: int = 50,
                          max_numbers: int = 20_000):
    """Every question passes on the solution's answers for each seed, and what it computes stays small.

    A question is fast because of what it asks of the answers, whatever the machine: each answer
    is called at most ``max_calls`` times per question, and no call takes or returns more than
    ``max_numbers`` numbers (arrays, tensors, a module's parameters). A check that loops over many
    draws, or hands the answers a dataset instead of a sample, fails here on any machine. The seconds
    themselves are measured by ``benchmarks/check_questions.py``, not asserted.
    """
    import functools
    import inspect

    import numpy as np

    ns = solution_namespace(chapter_file)
    for seed in seeds:
        for q in questions:
            calls, largest = {}, {}

            def counted(name, answer):
                if not inspect.isfunction(answer):  # a constant, or a class the check instantiates itself
                    return answer

                @functools.wraps(answer)
                def call(*args, **kwargs):
                    out = answer(*args, **kwargs)
                    calls[name] = calls.get(name, 0) + 1
                    largest[name] = max(largest.get(name, 0), _numbers(args) + _numbers(kwargs), _numbers(out))
                    return out

                return call

            result = q.evaluate(*[counted(n, ns[n]) for n in q.needs], rng=np.random.default_rng(seed))
            assert result.passed, (q.key, seed, result.feedback)
            assert max(calls.values(), default=0) <= max_calls, (q.key, seed, calls)
            assert max(largest.values(), default=0) <= max_numbers, (q.key, seed, largest)
