"""The offline grader: check cells inside exercise notebooks, and ``python -m ganlib grade``.

A chapter's questions live in ``ganlib.checks.chNN`` as :class:`Question` objects.
Each question names the learner definitions it needs (functions, classes, UPPER_CASE
constants) and a test that compares them with closed forms, finite differences or
ganlib's reference implementation on fresh random inputs, raising :class:`CheckFailed`
with a specific hint when an answer is wrong.

Two ways in:

- In a notebook, a check cell calls the question directly: ``check_q1(simultaneous_step)``
  prints a one-line verdict.
- ``grade_notebook(path)`` loads a notebook's definitions *without* running its other
  cells (no training, no plots), in a separate process with a time limit per question,
  and returns one :class:`Result` per question. A syntax error, a missing function, a
  wrong shape, a NaN or an endless loop becomes a message naming the question.
"""

from __future__ import annotations

import ast
import importlib
import json
import linecache
import math
import multiprocessing as mp
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PASSED, FAILED, NOT_ATTEMPTED, ERROR, TIMEOUT, MISSING = (
    "passed",
    "failed",
    "not attempted",
    "error",
    "timed out",
    "missing",
)


class CheckFailed(AssertionError):
    """Raised by a question's test when the answer is wrong; the message is the learner's feedback."""


class GradingError(Exception):
    """A notebook could not be graded at all (not a notebook, unknown chapter...)."""


@dataclass
class Result:
    """The verdict on one question."""

    key: str
    title: str
    points: float
    max_points: float
    status: str
    feedback: str = ""

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def line(self) -> str:
        mark = "✓" if self.passed else "✗"
        text = f"{mark} {self.key.upper()} {self.title}: {self.status} ({self.points:g}/{self.max_points:g} points)"
        return text + (f"\n  {self.feedback}" if self.feedback else "")


@dataclass
class Question:
    """One graded question.

    Attributes
    ----------
    key : str
        Short id such as ``"q1"``.
    title : str
        What is asked, in a few words.
    points : float
    needs : tuple of str
        Names the learner defines, passed to ``test`` in this order.
    test : callable
        ``test(rng, *answers)``; returns nothing, raises ``CheckFailed`` with feedback.
    timeout : float
        Seconds allowed before the answer is declared to loop forever.
    """

    key: str
    title: str
    points: float
    needs: tuple[str, ...]
    test: Callable[..., None]
    timeout: float = 20.0

    def evaluate(self, *answers: Any, rng: np.random.Generator | None = None) -> Result:
        """Run the test in this process and return a :class:`Result` (never raises for learner errors)."""
        rng = np.random.default_rng() if rng is None else rng
        if any(a is None for a in answers):  # a value stub `NAME = None  # YOUR ANSWER HERE`, untouched
            return self._result(NOT_ATTEMPTED, "not attempted yet: replace `None` with your answer.")
        try:
            with np.errstate(all="ignore"):
                self.test(rng, *answers)
        except NotImplementedError:
            return self._result(NOT_ATTEMPTED, "not attempted yet: replace `raise NotImplementedError()` with your code.")
        except CheckFailed as exc:
            return self._result(FAILED, str(exc))
        except _Timeout:
            return self._result(TIMEOUT, _timeout_message(self.timeout))
        except Exception as exc:  # the learner's code raised
            return self._result(ERROR, describe_exception(exc))
        return self._result(PASSED, "")

    def __call__(self, *answers: Any) -> None:
        """Check cell entry point: print the verdict (use :meth:`evaluate` to get it as a value)."""
        with _alarm(self.timeout):
            result = self.evaluate(*answers)
        print(result.line())

    def _result(self, status: str, feedback: str) -> Result:
        pts = self.points if status == PASSED else 0.0
        return Result(self.key, self.title, pts, self.points, status, feedback)


def question(key: str, title: str, points: float, needs: Sequence[str], timeout: float = 20.0):
    """Decorator turning ``test(rng, *answers)`` into a :class:`Question`.

    Examples
    --------
    >>> @question("q1", "double a number", 1, needs=["double"])
    ... def check_q1(rng, double):
    ...     x = rng.normal()
    ...     expect_close(double(x), 2 * x, "double(x)")
    """

    def wrap(test: Callable[..., None]) -> Question:
        return Question(key, title, points, tuple(needs), test, timeout)

    return wrap


# --------------------------------------------------------------------------- helpers for tests


def to_numpy(value: Any) -> np.ndarray:
    """An answer as a float64 NumPy array; torch tensors are detached and moved to the CPU first."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=float)


def as_float_array(value: Any, what: str, shape: tuple[int, ...] | None = None,
                   nonfinite_hint: str | None = None) -> np.ndarray:
    """Convert an answer (array, number or torch tensor) to a float array, checking shape and finiteness.

    ``nonfinite_hint`` replaces the printed values in the message when the answer holds NaN or inf.
    """
    if value is None:
        raise CheckFailed(f"{what} returned None: did you forget a `return` statement?")
    try:
        arr = to_numpy(value)
    except (TypeError, ValueError):
        raise CheckFailed(f"{what} should be numeric, got {type(value).__name__}: {_short(value)}") from None
    if shape is not None and arr.shape != tuple(shape):
        raise CheckFailed(f"{what} should have shape {tuple(shape)}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise CheckFailed(f"{what} contains NaN or inf: {nonfinite_hint or _short(arr)}")
    return arr


def expect_close(got: Any, want: Any, what: str, rtol: float = 1e-7, atol: float = 1e-9,
                 wrong: dict[str, Any] | None = None) -> None:
    """Raise :class:`CheckFailed` unless ``got`` matches ``want``.

    ``wrong`` maps a hint to the value a typical mistake would produce; when ``got``
    matches one of them, that hint is the feedback.
    """
    want = np.asarray(want, dtype=float)
    got = as_float_array(got, what, want.shape)
    if np.allclose(got, want, rtol=rtol, atol=atol):
        return
    for hint, value in (wrong or {}).items():
        value = np.asarray(value, dtype=float)
        if value.shape == got.shape and np.allclose(got, value, rtol=rtol, atol=atol):
            raise CheckFailed(f"{what} is wrong: {hint}")
    raise CheckFailed(f"{what} = {_short(got)}, expected {_short(want)}")


def expect_tuple(value: Any, what: str, names: Sequence[str]) -> tuple:
    """Check that an answer is a tuple with one entry per name in ``names`` and return it.

    Examples
    --------
    >>> expect_tuple((1, 2), "step", ("x_new", "y_new"))
    (1, 2)
    """
    if not isinstance(value, (tuple, list)) or len(value) != len(names):
        kind = "a pair" if len(names) == 2 else f"a tuple of {len(names)}"
        raise CheckFailed(f"{what} should return {kind} ({', '.join(names)}), got {_short(value)}")
    return tuple(value)


def random_sizes(rng: np.random.Generator, k: int = 3, low: int = 2, high: int = 8) -> list[int]:
    """``k`` distinct sizes in ``[low, high]``, so that a swapped axis shows up as a shape error.

    Examples
    --------
    >>> len(set(random_sizes(np.random.default_rng(0), 3)))
    3
    """
    return [int(v) for v in rng.choice(np.arange(low, high + 1), size=k, replace=False)]


def _short(value: Any, limit: int = 120) -> str:
    if isinstance(value, np.ndarray):
        text = np.array2string(value, precision=6, threshold=8)
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_exception(exc: BaseException) -> str:
    """One line naming the exception and where in the learner's notebook it happened."""
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.startswith("<cell"):
            where = f" ({frame.filename.strip('<>')}, line {frame.lineno}: {(frame.line or '').strip()})"
            break
    return f"your code raised {type(exc).__name__}: {exc}{where}"


def _timeout_message(seconds: float) -> str:
    return f"no answer within {seconds:g} s: look for an endless loop or a far too large computation."


class _Timeout(BaseException):
    pass


class _alarm:
    """Best-effort time limit for check cells (Unix main thread only)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.active = (
            hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
        )

    def __enter__(self):
        if self.active:
            def handler(signum, frame):
                raise _Timeout()

            self.old = signal.signal(signal.SIGALRM, handler)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        if self.active:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old)
        return False


# --------------------------------------------------------------------------- loading a notebook

# Answers are UPPER_CASE constants of two or more characters; one-letter names such as G and D are
# models in GAN notebooks, not answers, and building them could be expensive.
_UPPER = re.compile(r"^[A-Z][A-Z0-9_]+$")
_KEEP = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass
class Definitions:
    """What the grader keeps of a notebook: per code cell, the filtered source."""

    cells: list[tuple[str, str]] = field(default_factory=list)  # (label, source)
    syntax_errors: dict[str, str] = field(default_factory=dict)  # name defined in a broken cell -> message
    problems: list[str] = field(default_factory=list)


def _strip_magics(source: str) -> str:
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        lines.append("" if stripped.startswith(("%", "!")) else line)
    return "\n".join(lines)


def _is_constant(node: ast.AST) -> bool:
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        targets = [node.target]
    else:
        return False
    return all(isinstance(t, ast.Name) and _UPPER.match(t.id) for t in targets)


def extract_definitions(nb: dict) -> Definitions:
    """Keep imports, ``def``, ``class`` and UPPER_CASE constants (2+ characters) of every code cell; drop the rest.

    Cells are labelled ``cell N`` (1-based position in the notebook) so that errors can point at them.
    """
    defs = Definitions()
    for index, cell in enumerate(nb.get("cells", []), start=1):
        if cell.get("cell_type") != "code":
            continue
        label = f"cell {index}"
        source = _strip_magics("".join(cell.get("source", "")))
        try:
            tree = ast.parse(source, filename=f"<{label}>")
        except SyntaxError as exc:
            msg = f"{label} has a syntax error on line {exc.lineno}: {exc.msg}"
            defs.problems.append(msg)
            for name in re.findall(r"^(?:def|class)\s+(\w+)|^([A-Z][A-Z0-9_]*)\s*=", source, flags=re.M):
                defs.syntax_errors[name[0] or name[1]] = msg
            continue
        if _definitions_only(tree).body:
            defs.cells.append((label, source))
    return defs


def _definitions_only(tree: ast.Module) -> ast.Module:
    """The statements the grader runs; nodes keep their line numbers, so feedback points at real lines."""
    kept = [node for node in tree.body if isinstance(node, _KEEP) or _is_constant(node)]
    return ast.Module(body=kept, type_ignores=[])


def load_definitions(cells: list[tuple[str, str]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Execute the kept statements of each cell from :func:`extract_definitions` in one namespace.

    Returns the namespace and, per cell that failed (an import error, say), a one-line message;
    a failing cell does not stop the others.
    """
    namespace: dict[str, Any] = {"__name__": "__learner__"}
    load_errors: dict[str, str] = {}
    for label, source in cells:
        filename = f"<{label}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        try:
            tree = _definitions_only(ast.parse(source, filename=filename))
            exec(compile(tree, filename, "exec"), namespace)
        except BaseException as exc:  # a failing import or constant must not stop the rest
            load_errors[label] = describe_exception(exc).replace("your code raised", f"{label} raised")
    return namespace, load_errors


def chapter_of(nb: dict, path: Path) -> str:
    """The chapter a notebook belongs to: ``metadata.ganlib.chapter``, else the ``NN_`` in its file name."""
    chapter = nb.get("metadata", {}).get("ganlib", {}).get("chapter")
    if chapter:
        return str(chapter)
    match = re.search(r"(\d\d)_", path.name)
    if match:
        return match.group(1)
    raise GradingError(f"{path}: cannot tell which chapter this is (no metadata.ganlib.chapter, no NN_ in the file name)")


def questions_for(chapter: str) -> list[Question]:
    """The questions of a chapter, from ``ganlib.checks.ch<chapter>``."""
    try:
        module = importlib.import_module(f"ganlib.checks.ch{chapter}")
    except ModuleNotFoundError:
        raise GradingError(f"chapter {chapter} has no graded questions") from None
    return list(module.QUESTIONS)


def read_notebook(path: Path) -> dict:
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GradingError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GradingError(f"{path}: not a readable notebook ({exc}); re-download it or restore it from a checkpoint") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise GradingError(f"{path}: not a Jupyter notebook (no list of cells)")
    return nb


# --------------------------------------------------------------------------- the worker process


def _worker(conn, chapter: str, cells: list[tuple[str, str]], seed: int) -> None:
    """Child process: exec the learner's definitions, then answer question keys sent over ``conn``."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.environ.setdefault("MPLBACKEND", "Agg")
    namespace, load_errors = load_definitions(cells)
    conn.send(("loaded", sorted(k for k in namespace if not k.startswith("__")), load_errors))
    questions = {q.key: q for q in questions_for(chapter)}
    rng = np.random.default_rng(seed)
    while True:
        key = conn.recv()
        if key is None:
            return
        q = questions[key]
        answers = [namespace[name] for name in q.needs]
        result = q.evaluate(*answers, rng=np.random.default_rng(rng.integers(2**63)))
        conn.send(("result", asdict(result)))


class _Worker:
    def __init__(self, chapter: str, cells: list[tuple[str, str]], seed: int, load_timeout: float):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, chapter, cells, seed), daemon=True)
        self.proc.start()
        child.close()
        if not self.conn.poll(load_timeout):
            self.stop()
            raise TimeoutError
        _, self.names, self.load_errors = self.conn.recv()

    def ask(self, key: str, timeout: float) -> dict | str:
        """The result of one question, or "timeout" / "crashed"."""
        try:
            self.conn.send(key)
            if not self.conn.poll(timeout):
                return "timeout"
            return self.conn.recv()[1]
        except (EOFError, OSError):
            return "crashed"

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)


@dataclass
class NotebookReport:
    """All results for one notebook."""

    path: str
    chapter: str
    results: list[Result]
    problems: list[str] = field(default_factory=list)
    seed: int = 0

    @property
    def score(self) -> float:
        return sum(r.points for r in self.results)

    @property
    def total(self) -> float:
        return sum(r.max_points for r in self.results)

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "chapter": self.chapter,
            "score": self.score,
            "total": self.total,
            "seed": self.seed,
            "problems": self.problems,
            "questions": [asdict(r) for r in self.results],
        }


def grade_notebook(path: str | Path, seed: int | None = None, load_timeout: float = 60.0,
                   chapter: str | None = None, timeout: float | None = None) -> NotebookReport:
    """Grade one notebook.

    Parameters
    ----------
    path : path to an ``.ipynb`` file
    seed : int, optional
        Seed for the random test inputs (fresh each run when omitted; reported back).
    load_timeout : float
        Seconds allowed for importing the learner's definitions.
    chapter : str, optional
        Override the chapter detected from metadata or file name.
    timeout : float, optional
        Override every question's own time limit (seconds).

    Returns
    -------
    NotebookReport

    Examples
    --------
    >>> report = grade_notebook("solutions/01_minimax_games.ipynb")  # doctest: +SKIP
    >>> report.score == report.total  # doctest: +SKIP
    True
    """
    path = Path(path)
    nb = read_notebook(path)
    chapter = chapter or chapter_of(nb, path)
    questions = questions_for(chapter)
    seed = int(np.random.SeedSequence().entropy % 2**32) if seed is None else seed
    defs = extract_definitions(nb)
    report = NotebookReport(str(path), chapter, [], list(defs.problems), seed)
    worker: _Worker | None = None

    def start() -> _Worker | None:
        try:
            w = _Worker(chapter, defs.cells, seed, load_timeout)
        except TimeoutError:
            report.problems.append(
                f"loading your definitions took more than {load_timeout:g} s: "
                "an import or an UPPER_CASE constant runs too long")
            return None
        for label, msg in w.load_errors.items():
            if msg not in report.problems:
                report.problems.append(msg)
        return w

    try:
        worker = start()
        for q in questions:
            if worker is None or not worker.proc.is_alive():
                if worker is not None:
                    worker.stop()
                worker = start()
            if worker is None:
                report.results.append(q._result(ERROR, "could not load your notebook: " + "; ".join(report.problems[-1:])))
                continue
            absent = [name for name in q.needs if name not in worker.names]
            if absent:
                report.results.append(_absent_result(q, absent, defs, worker.load_errors))
                continue
            limit = q.timeout if timeout is None else timeout
            reply = worker.ask(q.key, limit)
            if isinstance(reply, str):
                worker.stop()
                worker = None
                if reply == "timeout":
                    report.results.append(q._result(TIMEOUT, _timeout_message(limit)))
                else:
                    report.results.append(q._result(ERROR, "your code stopped the Python process (os._exit, a crash "
                                                           "in a C extension, or running out of memory)."))
            else:
                report.results.append(Result(**reply))
    finally:
        if worker is not None:
            try:
                worker.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            worker.stop()
    return report


def _absent_result(q: Question, absent: list[str], defs: Definitions, load_errors: dict[str, str]) -> Result:
    name = absent[0]
    if name in defs.syntax_errors:
        return q._result(ERROR, f"`{name}` could not be read: {defs.syntax_errors[name]}. Fix it and grade again.")
    if _UPPER.match(name):
        return q._result(NOT_ATTEMPTED, f"not attempted yet: set `{name}` in the answer cell.")
    if load_errors:
        first = next(iter(load_errors.values()))
        return q._result(MISSING, f"`{name}` is not defined; loading stopped with: {first}")
    return q._result(MISSING, f"`{name}` is not defined: did you rename or delete the cell that defines it?")


# --------------------------------------------------------------------------- reporting


def format_report(report: NotebookReport) -> str:
    """A per-question table for one notebook."""
    rows = [(r.key.upper(), r.title, f"{r.points:g}/{r.max_points:g}", r.status, r.feedback) for r in report.results]
    head = ("question", "task", "points", "status", "feedback")
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    widths[-1] = min(widths[-1], 100)
    out = [f"{report.path}  (chapter {report.chapter})"]
    out += [f"  note: {p}" for p in report.problems]
    fmt = "  " + "  ".join(f"{{:<{w}}}" for w in widths)
    out.append(fmt.format(*head).rstrip())
    out.append("  " + "  ".join("-" * w for w in widths))
    for row in rows:
        out.append(fmt.format(*row).rstrip())
    out.append(f"  total: {report.score:g}/{report.total:g}")
    return "\n".join(out)


def format_summary(reports: list[NotebookReport], failures: dict[str, str]) -> str:
    """One row per notebook (for instructors grading a folder of submissions)."""
    keys = []
    for r in reports:
        for res in r.results:
            if res.key not in keys:
                keys.append(res.key)
    head = ["file", "chapter", *[k.upper() for k in keys], "score"]
    rows = []
    for r in reports:
        pts = {res.key: f"{res.points:g}" for res in r.results}
        rows.append([r.path, r.chapter, *[pts.get(k, "-") for k in keys], f"{r.score:g}/{r.total:g}"])
    for path, msg in failures.items():
        rows.append([path, "?", *["-" for _ in keys], f"not graded: {msg}"])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head).rstrip(), "  ".join("-" * w for w in widths)] + [fmt.format(*row).rstrip() for row in rows])


def collect_notebooks(paths: Sequence[str | Path]) -> list[Path]:
    """Expand folders into the notebooks they contain (sorted, checkpoints skipped)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
        else:
            out.append(p)
    return out


def main(argv: Sequence[str]) -> int:
    """``python -m ganlib grade``: exit 0 when every notebook has full marks, 1 otherwise, 2 on unusable input."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ganlib grade", description="Grade exercise notebooks offline.")
    parser.add_argument("paths", nargs="+", help="notebooks or folders of notebooks")
    parser.add_argument("--json", action="store_true", help="print machine-readable results")
    parser.add_argument("--seed", type=int, default=None, help="seed for the random test inputs")
    parser.add_argument("--chapter", default=None, help="grade as this chapter (e.g. 01) whatever the metadata says")
    args = parser.parse_args(argv)

    notebooks = collect_notebooks(args.paths)
    if not notebooks:
        print("no notebooks found in " + ", ".join(args.paths), file=sys.stderr)
        return 2
    reports, failures = [], {}
    for nb in notebooks:
        try:
            reports.append(grade_notebook(nb, seed=args.seed, chapter=args.chapter))
        except GradingError as exc:
            failures[str(nb)] = str(exc)
    if args.json:
        print(json.dumps({"notebooks": [r.to_dict() for r in reports],
                          "not_graded": failures}, indent=2))
    else:
        for r in reports:
            print(format_report(r))
            print()
        for path, msg in failures.items():
            print(f"{path}: not graded: {msg}\n")
        if len(notebooks) > 1:
            print(format_summary(reports, failures))
    if failures and not reports:
        return 2
    full = all(math.isclose(r.score, r.total) and r.total > 0 for r in reports)
    return 0 if full and not failures else 1
