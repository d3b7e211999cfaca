"""Exercise notebooks are generated from solution notebooks; this module does it (chapter 00 explains them).

In a solution notebook, answers sit between nbgrader-style markers::

    def simultaneous_step(grad, x, y, eta):
        ### BEGIN SOLUTION
        gx, gy = grad(x, y)
        return x - eta * gx, y + eta * gy
        ### END SOLUTION

In the exercise notebook that region becomes, at the marker's indentation::

        # YOUR CODE HERE
        raise NotImplementedError()

A region at the top level of a cell that only assigns values (``CONVERGE = {...}``) becomes
one value stub per assigned name instead, so that "Run All" on an untouched exercise does
not stop there; the check cell and the grader report ``None`` as "not attempted"::

    CONVERGE = None  # YOUR ANSWER HERE

In markdown cells the region becomes ``YOUR ANSWER HERE``. Outputs and execution
counts are cleared; cell ids, tags and metadata are kept; the output is byte-deterministic.
The syntax is nbgrader's, so an instructor can move to nbgrader without rewriting notebooks.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from pathlib import Path

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
MARKDOWN_STUB = "YOUR ANSWER HERE"
VALUE_STUB = "{name} = None  # YOUR ANSWER HERE"
_MARKER = re.compile(r"^(\s*)(### (?:BEGIN|END) SOLUTION)\s*$")


class MarkerError(ValueError):
    """Unbalanced or nested solution markers."""


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _assigned_names(region: str) -> list[str] | None:
    """The names a top-level region assigns, in order, if it does nothing but assign values; else None."""
    try:
        tree = ast.parse(region)
    except SyntaxError:
        return None
    names: list[str] = []

    def collect(target: ast.expr) -> bool:
        if isinstance(target, ast.Name):
            if target.id not in names:
                names.append(target.id)
            return True
        if isinstance(target, (ast.Tuple, ast.List)):
            return all(collect(t) for t in target.elts)
        return False

    for node in tree.body:
        if isinstance(node, ast.Assign):
            if not all(collect(t) for t in node.targets):
                return None
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            if not collect(node.target):
                return None
        else:
            return None
    return names or None


def strip_solution(source: str, cell_type: str, where: str) -> str:
    """Replace every marked region of one cell's source by a stub.

    Parameters
    ----------
    source : str
        The cell's source.
    cell_type : {"code", "markdown"}
    where : str
        Used in error messages, e.g. ``"solutions/01.ipynb, cell 7"``.

    Examples
    --------
    >>> print(strip_solution("def f():\\n    ### BEGIN SOLUTION\\n    return 1\\n    ### END SOLUTION", "code", "x"))
    def f():
        # YOUR CODE HERE
        raise NotImplementedError()
    >>> print(strip_solution("### BEGIN SOLUTION\\nA = 1\\nB, C = 2, 3\\n### END SOLUTION", "code", "x"))
    A = None  # YOUR ANSWER HERE
    B = None  # YOUR ANSWER HERE
    C = None  # YOUR ANSWER HERE
    """
    out: list[str] = []
    inside_since: int | None = None
    region: list[str] = []
    indent = ""
    for lineno, line in enumerate(source.split("\n"), start=1):
        m = _MARKER.match(line)
        if not m:
            if inside_since is None:
                out.append(line)
            else:
                region.append(line)
            continue
        indent, marker = m.groups()
        if marker == BEGIN:
            if inside_since is not None:
                raise MarkerError(f"{where}: nested '{BEGIN}' on line {lineno} (the region opened on line {inside_since} is not closed)")
            inside_since, region = lineno, []
        else:
            if inside_since is None:
                raise MarkerError(f"{where}: '{END}' on line {lineno} without a matching '{BEGIN}'")
            out += _stub(region, indent, cell_type)
            inside_since = None
    if inside_since is not None:
        raise MarkerError(f"{where}: '{BEGIN}' on line {inside_since} is never closed by '{END}'")
    return "\n".join(out)


def _stub(region: list[str], indent: str, cell_type: str) -> list[str]:
    """The lines that replace one solution region (``indent`` is the BEGIN marker's)."""
    if cell_type != "code":
        return [indent + MARKDOWN_STUB]
    names = _assigned_names("\n".join(region)) if indent == "" else None
    if names:
        return [VALUE_STUB.format(name=n) for n in names]
    return [indent + s for s in CODE_STUB]


def make_exercise(nb: dict, name: str = "notebook") -> dict:
    """Return the exercise version of a solution notebook (the input is not modified)."""
    ex = copy.deepcopy(nb)
    for index, cell in enumerate(ex.get("cells", []), start=1):
        where = f"{name}, cell {index}" + (f" (id {cell['id']})" if "id" in cell else "")
        if cell.get("cell_type") in ("code", "markdown"):
            cell["source"] = strip_solution(_source(cell), cell["cell_type"], where)
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
            cell.get("metadata", {}).pop("execution", None)
    ex.setdefault("metadata", {}).setdefault("ganlib", {})["role"] = "exercise"
    return ex


def dumps(nb: dict) -> str:
    """Serialise like nbformat does (sorted keys, one-space indent), always the same bytes."""
    cells = []
    for cell in nb.get("cells", []):
        cell = dict(cell)
        src = _source(cell)
        cell["source"] = src.splitlines(keepends=True)
        cells.append(cell)
    return json.dumps({**nb, "cells": cells}, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def sync(solutions: str | Path = "solutions", exercises: str | Path = "exercises", check: bool = False) -> list[Path]:
    """Regenerate ``exercises/`` from ``solutions/``.

    Parameters
    ----------
    solutions, exercises : folder paths
    check : bool
        Write nothing; only report which exercise notebooks are missing or out of date.

    Returns
    -------
    list of Path
        Exercise notebooks that differ(ed) from their solution's generated version,
        plus exercise notebooks without a solution.
    """
    solutions, exercises = Path(solutions), Path(exercises)
    if not solutions.is_dir():
        raise FileNotFoundError(f"no solutions folder at {solutions}")
    stale: list[Path] = []
    for src in sorted(solutions.glob("*.ipynb")):
        nb = json.loads(src.read_text(encoding="utf-8"))
        text = dumps(make_exercise(nb, str(src)))
        dst = exercises / src.name
        if not dst.exists() or dst.read_text(encoding="utf-8") != text:
            stale.append(dst)
            if not check:
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_text(text, encoding="utf-8")
    wanted = {p.name for p in solutions.glob("*.ipynb")}
    if exercises.is_dir():
        stale += [p for p in sorted(exercises.glob("*.ipynb")) if p.name not in wanted]
    return stale
