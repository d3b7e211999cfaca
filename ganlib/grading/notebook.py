"""Reading an exercise notebook into a plan: which cells the grader runs, and why (chapter 00).

:func:`read_notebook` and :func:`chapter_of` open a notebook and tell its chapter;
:func:`plan_notebook` finds the *answer cells* (every code cell that defines a name a question
needs, or that still holds a stub) and, from the other cells, only the statements those cells
depend on (imports, helper definitions and values: static analysis of the names they use).
The result, a :class:`LoadPlan`, is plain data the worker executes. Nothing here runs learner code,
except :func:`load_definitions`, which runs a plan in this process for tests and debugging.
"""

from __future__ import annotations

import ast
import json
import linecache
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from ganlib.grading.questions import CHAPTER_ID, GradingError, QuestionSpec, describe_exception, question_specs

# --------------------------------------------------------------------------- reading a notebook


def read_notebook(path: Path) -> dict:
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GradingError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise GradingError(f"{path}: a folder, not a notebook") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GradingError(f"{path}: not a readable notebook ({exc}); re-download it or restore it from a checkpoint") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise GradingError(f"{path}: not a Jupyter notebook (no list of cells)")
    return nb


def chapter_of(nb: dict, path: Path) -> str:
    """The chapter a notebook belongs to: ``metadata.ganlib.chapter``, else the ``NN_`` (or appendix ``A_``)
    that starts its file name."""
    meta = nb.get("metadata", {})
    chapter = meta.get("ganlib", {}).get("chapter") if isinstance(meta, dict) and isinstance(meta.get("ganlib"), dict) else None
    if chapter and CHAPTER_ID.fullmatch(str(chapter)):
        return str(chapter)
    match = re.search(r"(\d\d)_", Path(path).name) or re.match(r"([A-Z])_", Path(path).name)
    if match:
        return match.group(1)
    raise GradingError(f"{path}: cannot tell which chapter this is (no metadata.ganlib.chapter, no NN_ in the file name)")


# --------------------------------------------------------------------------- which cells the grader runs

_STUB_MARKERS = ("YOUR CODE HERE", "YOUR ANSWER HERE", "raise NotImplementedError")
_CHECK_CALL = re.compile(r"\bcheck_(q\d+)\s*\(")


def _strip_magics(source: str) -> str:
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        lines.append("" if stripped.startswith(("%", "!")) else line)
    return "\n".join(lines)


def _target_names(target: ast.AST) -> set[str]:
    """Names bound (or modified, for ``x[i] = ...`` / ``x.a = ...``) by an assignment target."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Tuple, ast.List)):
        return set().union(*[_target_names(e) for e in target.elts]) if target.elts else set()
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    if isinstance(target, (ast.Attribute, ast.Subscript)):
        return _target_names(target.value)
    return set()


def binds(stmt: ast.stmt) -> set[str]:
    """Global names a top-level statement binds or modifies (not looking into function bodies).

    Examples
    --------
    >>> sorted(binds(ast.parse("A, (b, *c) = 1, (2, 3)").body[0]))
    ['A', 'b', 'c']
    >>> sorted(binds(ast.parse("import torch.nn.functional as F, numpy").body[0]))
    ['F', 'numpy']
    """
    out: set[str] = set()
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, ast.Import):
        return {a.asname or a.name.split(".")[0] for a in stmt.names}
    if isinstance(stmt, ast.ImportFrom):
        return {a.asname or a.name for a in stmt.names}
    if isinstance(stmt, ast.Assign):
        for t in stmt.targets:
            out |= _target_names(t)
    elif isinstance(stmt, (ast.AugAssign, ast.AnnAssign)):
        out |= _target_names(stmt.target)
    elif isinstance(stmt, (ast.For, ast.AsyncFor)):
        out |= _target_names(stmt.target)
    elif isinstance(stmt, (ast.With, ast.AsyncWith)):
        for item in stmt.items:
            if item.optional_vars is not None:
                out |= _target_names(item.optional_vars)
    elif isinstance(stmt, ast.Try):
        for h in stmt.handlers:
            if h.name:
                out.add(h.name)
    for child in ast.iter_child_nodes(stmt):
        if isinstance(child, ast.stmt):
            out |= binds(child)
        elif not isinstance(child, (ast.Lambda,)):
            for node in ast.walk(child):
                if isinstance(node, ast.NamedExpr):
                    out |= _target_names(node.target)
    return out


def uses(stmt: ast.stmt) -> set[str]:
    """Global names a statement reads, including inside the functions it defines (by ``symtable``).

    Examples
    --------
    >>> sorted(uses(ast.parse("def f(x):\\n    y = np.exp(x)\\n    return helper(y) + d").body[0]))
    ['d', 'helper', 'np']
    """
    import builtins
    import symtable

    try:
        table = symtable.symtable(ast.unparse(stmt), "<statement>", "exec")
    except (SyntaxError, ValueError):
        return set()
    out: set[str] = set()

    def visit(t, top: bool) -> None:
        for sym in t.get_symbols():
            if not sym.is_referenced():
                continue
            if top or sym.is_global() or (t.get_type() == "class" and not sym.is_assigned()):
                out.add(sym.get_name())
        for child in t.get_children():
            visit(child, False)

    visit(table, True)
    return {n for n in out if not hasattr(builtins, n)}


@dataclass
class Step:
    """One load step: a code cell the grader runs, whole (an answer cell) or in part (its needed statements)."""

    cell: int                    # position among all the notebook's cells (markdown too), from 1
    label: str                   # "cell 25 (Q6's answer)"
    source: str                  # the cell's source, magics blanked
    keep: list[int] | None       # indices of top-level statements to run; None: all
    answer: bool
    stub: bool                   # still holds an exercise stub marker
    binds: set[str] = field(default_factory=set)
    questions: list[str] = field(default_factory=list)

    @property
    def filename(self) -> str:
        return f"<{self.label}>"

    def code(self) -> str:
        """The source this step runs (for display and for :func:`load_definitions`)."""
        if self.keep is None:
            return self.source
        body = ast.parse(self.source).body
        return "\n".join(ast.unparse(body[i]) for i in self.keep)


@dataclass
class LoadPlan:
    """What the grader runs of a notebook, and what it knows about the cells it does not run."""

    steps: list[Step] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    syntax_errors: dict[str, str] = field(default_factory=dict)   # name defined in a broken cell -> message
    answer_cells: dict[str, list[str]] = field(default_factory=dict)  # question key -> labels of its answer cells
    stub_cells: dict[str, str] = field(default_factory=dict)  # question key -> label of an untouched stub cell

    @property
    def cells(self) -> list[tuple[str, str]]:
        """``(label, code)`` per step, as :func:`load_definitions` takes them."""
        return [(s.label, s.code()) for s in self.steps]


def plan_notebook(nb: dict, specs: Sequence[QuestionSpec]) -> LoadPlan:
    """Decide which cells and statements the grader runs (see the module docstring).

    A code cell is an *answer cell* when it binds, at top level, a name a question needs
    (``def f``, ``A = ...``, ``A, B = ...``, ``A |= ...``, ``import ... as A``), or when it still
    holds a stub marker (``# YOUR CODE HERE``, ``raise NotImplementedError``, ``# YOUR ANSWER HERE``)
    and is not a check cell. Answer cells run whole, in order. From the other cells, the grader
    runs only the top-level statements that bind a name some answer cell reads (imports, helper
    functions, helper values), and, transitively, what those read. Cells are named so that a
    learner can find them: by their position counting every cell, markdown included, as in
    JupyterLab's notebook from the top ("cell 25"), and by the question they answer
    ("cell 25 (Q6's answer)") or, for another cell, the heading above it.
    """
    needed = {n for q in specs for n in q.needs}
    owner = {}
    for q in specs:
        for n in q.needs:
            owner.setdefault(n, []).append(q.key)
    plan = LoadPlan()
    cells = []  # (index, source, tree or None, checks)
    headings: dict[int, str] = {}  # code cell position -> the heading above it
    heading = ""
    for index, cell in enumerate(nb.get("cells", []), start=1):
        if not isinstance(cell, dict):
            continue
        src = cell.get("source", "")
        text = "".join(src) if isinstance(src, list) else str(src)
        if cell.get("cell_type") == "markdown":
            heading = _last_heading(text) or heading
            continue
        if cell.get("cell_type") != "code":
            continue
        headings[index] = heading
        source = _strip_magics(text)
        checks = _CHECK_CALL.findall(source)
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            tree = None
            names = {a or b for a, b in re.findall(r"^(?:def|class)\s+(\w+)|^([A-Za-z_]\w*)\s*[,=]", source, flags=re.M)}
            qs = sorted({k for n in names if n in needed for k in owner[n]})
            label = _label(index, qs, headings[index])
            msg = f"{label} has a syntax error on line {exc.lineno}: {exc.msg}"
            plan.problems.append(msg)
            for name in names:
                plan.syntax_errors[name] = msg
            for k in qs:
                plan.answer_cells.setdefault(k, []).append(label)
        cells.append((index, source, tree, checks))

    # answer cells
    answer: dict[int, list[str]] = {}
    stubs: set[int] = set()
    for index, source, tree, checks in cells:
        if tree is None:
            continue
        bound = set().union(*[binds(s) for s in tree.body]) if tree.body else set()
        qs = sorted({k for n in bound & needed for k in owner[n]}, key=_qkey)
        has_stub = any(m in source for m in _STUB_MARKERS)
        if qs or (has_stub and not checks):
            answer[index] = qs
            if has_stub:
                stubs.add(index)
    # a stub cell that binds no needed name (a top-level `raise NotImplementedError()`) answers the next check cell
    for index in sorted(i for i in stubs if not answer[i]):
        later = [(i, c) for i, _, _, c in cells if i > index and c]
        if later:
            answer[index] = sorted(set(later[0][1]), key=_qkey)
    labels = {i: _label(i, answer.get(i, []), headings[i]) for i, *_ in cells}
    for i, qs in answer.items():
        for k in qs:
            plan.answer_cells.setdefault(k, []).append(labels[i])
            if i in stubs:
                plan.stub_cells[k] = labels[i]

    # statements of the other cells that the answer cells need, transitively
    wanted: set[str] = set()
    answer_binds: set[str] = set()
    stmts: list[tuple[int, int, ast.stmt, set[str]]] = []
    for index, source, tree, checks in cells:
        if tree is None:
            continue
        if index in answer:
            for s in tree.body:
                wanted |= uses(s)
                answer_binds |= binds(s)
        else:
            for j, s in enumerate(tree.body):
                b = binds(s) if not (isinstance(s, ast.ImportFrom) and any(a.name == "*" for a in s.names)) else {"*"}
                if b:
                    stmts.append((index, j, s, b))
    wanted -= answer_binds
    chosen: set[tuple[int, int]] = set()
    changed = True
    while changed:
        changed = False
        for index, j, s, b in stmts:
            if (index, j) not in chosen and (b & wanted or "*" in b):
                chosen.add((index, j))
                wanted |= uses(s) - b
                changed = True

    for index, source, tree, checks in cells:
        if tree is None:
            continue
        if index in answer:
            plan.steps.append(Step(index, labels[index], source, None, True, index in stubs,
                                   set().union(*[binds(s) for s in tree.body]) if tree.body else set(), answer[index]))
        else:
            keep = sorted(j for i, j in chosen if i == index)
            if keep:
                plan.steps.append(Step(index, labels[index], source, keep, False, False,
                                       set().union(*[binds(tree.body[j]) for j in keep])))
    return plan


def _qkey(key: str) -> tuple[int, str]:
    m = re.match(r"q(\d+)", key)
    return (int(m.group(1)) if m else 0, key)


_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _last_heading(markdown: str) -> str:
    """The last heading of a markdown cell, shortened by words to about 40 characters ("" if none).

    Examples
    --------
    >>> _last_heading("# Chapter 07 exercises\\n\\ntext\\n\\n## Q1 · Parse an IDX file (3 points)")
    'Q1 · Parse an IDX file (3 points)'
    """
    found = _HEADING.findall(markdown)
    if not found:
        return ""
    text = " ".join(found[-1].replace("*", "").replace("`", "").split())
    if len(text) <= 40:
        return text
    cut = text[:40]
    return (cut[: cut.rfind(" ")] if " " in cut else cut).rstrip(" ,;:·-") + "..."


def _label(index: int, questions: Sequence[str], heading: str = "") -> str:
    """How feedback names a cell: its position among all cells, and its question or the heading above it.

    Examples
    --------
    >>> _label(25, ["q6"]), _label(3, [], "Setup"), _label(1, [])
    ("cell 25 (Q6's answer)", 'cell 3 (under "Setup")', 'cell 1')
    """
    qs = [k.upper() for k in questions]
    if len(qs) == 1:
        return f"cell {index} ({qs[0]}'s answer)"
    if qs:
        return f"cell {index} (answer to {' and '.join(qs)})"
    return f'cell {index} (under "{heading}")' if heading else f"cell {index}"


def extract_definitions(nb: dict, chapter: str | None = None) -> LoadPlan:
    """The :class:`LoadPlan` of a notebook for its chapter (from metadata unless given)."""
    chapter = chapter or chapter_of(nb, Path("notebook.ipynb"))
    return plan_notebook(nb, question_specs(chapter))


def load_definitions(cells: Sequence[tuple[str, str]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Execute ``(label, code)`` pairs from :attr:`LoadPlan.cells` in one namespace, in this process.

    Returns the namespace and, per cell that failed, a one-line message; a failing cell does
    not stop the others. (The grader itself does this in its worker process, with time limits.)
    """
    namespace: dict[str, Any] = {"__name__": "__main__"}
    load_errors: dict[str, str] = {}
    for label, source in cells:
        filename = f"<{label}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            exec(compile(source, filename, "exec"), namespace)
        except BaseException as exc:  # a failing import or constant must not stop the rest
            load_errors[label] = describe_exception(exc).replace("your code raised", f"{label} raised")
    return namespace, load_errors
