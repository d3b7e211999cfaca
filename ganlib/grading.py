"""The offline grader: check cells inside exercise notebooks, and ``python -m ganlib grade``.

A chapter's questions live in ``ganlib.checks.chNN`` as :class:`Question` objects.
Each question names the learner definitions it needs (functions, classes, UPPER_CASE
constants) and a test that compares them with closed forms, finite differences or
ganlib's reference implementation on random inputs, raising :class:`CheckFailed`
with a specific hint when an answer is wrong.

Two ways in:

- In a notebook, a check cell calls the question directly: ``check_q1(simultaneous_step)``
  prints a one-line verdict.
- ``grade_notebook(path)`` grades a saved notebook in a separate worker process.

What the grader runs (trust model)
----------------------------------
The grader gives learners feedback; it is not a proctoring tool, and it *runs the code of
the notebook it grades*. It runs every **answer cell** (a code cell that defines a name a
question needs, or that still holds an exercise stub), whole and in notebook order, plus,
from the other cells, only the statements those answer cells depend on (imports, helper
definitions, helper values: found by static analysis of the names the answers use).
Experiments, plots and check cells are not run. The worker process has a time limit per
cell and per question, and resource limits (memory, CPU time, file size, processes); it
sends its results back as JSON lines, which the parent validates and scores itself.
Nothing the worker sends is unpickled.

For work you do not trust (an instructor grading submissions), pass ``sandbox=True``
(``ganlib grade --sandbox``, or ``GANLIB_GRADE_SANDBOX=1``): the worker then runs under
bubblewrap with no network, a read-only file system except a fresh working directory,
an empty home directory and its own PID namespace.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import linecache
import math
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zlib
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
STATUSES = (PASSED, FAILED, NOT_ATTEMPTED, ERROR, TIMEOUT, MISSING)
FEEDBACK_LIMIT = 400  # characters of feedback per question: one line of the report table

SANDBOX_ENV = "GANLIB_GRADE_SANDBOX"
_WORKER_ENV = "GANLIB_GRADING_WORKER"


class CheckFailed(AssertionError):
    """Raised by a question's test when the answer is wrong; the message is the learner's feedback."""


class GradingError(Exception):
    """A notebook could not be graded at all (not a notebook, unknown chapter...)."""


class SandboxUnavailable(GradingError):
    """``sandbox=True`` was asked for, but bubblewrap is missing or does not work here."""


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
        """Run the test in this process and return a :class:`Result` (never raises for learner errors).

        An answer that is still an exercise stub (a function whose body only raises
        ``NotImplementedError``, or a value left at ``None``) is "not attempted" when every
        answer of the question is a stub.
        """
        rng = np.random.default_rng() if rng is None else rng
        names = list(self.needs) + [f"answer {i + 1}" for i in range(len(self.needs), len(answers))]
        stubs = [name for name, value in zip(names, answers) if _is_stub(value)]
        if answers and len(stubs) == len(answers):
            return self._result(NOT_ATTEMPTED, _not_attempted_message(dict(zip(names, answers))))
        unset = [name for name, value in zip(names, answers) if value is None]
        if unset:
            return self._result(FAILED, f"{_names(unset)} {'is' if len(unset) == 1 else 'are'} still None: "
                                        "set every value of the answer cell.")
        try:
            with np.errstate(all="ignore"):
                self.test(rng, *answers)
        except NotImplementedError as exc:
            return self._result(*_stub_called(exc, stubs))
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
        return Result(self.key, self.title, pts, self.points, status, one_line(feedback))


def question(key: str, title: str, points: float, needs: Sequence[str], timeout: float = 20.0):
    """Decorator turning ``test(rng, *answers)`` into a :class:`Question`.

    Examples
    --------
    >>> @question("q1", "double a number", 1, needs=["double"])
    ... def check_q1(rng, double):
    ...     x = rng.normal()
    ...     expect_close(double(x), 2 * x, "double(x)")
    >>> check_q1.evaluate(lambda x: 2 * x).status
    'passed'
    >>> check_q1.evaluate(lambda x: x + 1).status
    'failed'
    """

    def wrap(test: Callable[..., None]) -> Question:
        return Question(key, title, points, tuple(needs), test, timeout)

    return wrap


# --------------------------------------------------------------------------- stubs and "not attempted"


def _is_stub(value: Any) -> bool:
    """``None`` (a value stub) or a function whose only global name is ``NotImplementedError``.

    Decorated functions (``@torch.no_grad()``, ``functools.wraps``) are judged by the function they wrap.
    """
    if value is None:
        return True
    try:
        value = inspect.unwrap(value)
    except ValueError:  # a cycle of __wrapped__ attributes
        pass
    code = getattr(value, "__code__", None)
    if code is None:
        return False
    names = set(code.co_names)
    return "NotImplementedError" in names and names <= {"NotImplementedError"}


def _names(names: Sequence[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _not_attempted_message(answers: dict[str, Any]) -> str:
    values = [n for n, v in answers.items() if v is None]
    funcs = [n for n in answers if n not in values]
    parts = []
    if funcs:
        parts.append(f"replace `raise NotImplementedError()` in {_names(funcs)} with your code")
    if values:
        parts.append(f"set {_names(values)} in the answer cell")
    return "not attempted yet: " + " and ".join(parts) + "."


def _stub_called(exc: BaseException, stubs: list[str]) -> tuple[str, str]:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_learner_file(f.filename)]
    if not frames:
        return ERROR, describe_exception(exc)
    inner, outer = frames[-1], frames[0]
    if inner.name in stubs:
        if outer.name != inner.name and outer.name != "<module>":
            return FAILED, f"`{outer.name}` calls `{inner.name}`, which is not written yet (it still raises NotImplementedError)."
        return FAILED, f"`{inner.name}` is not written yet: replace its `raise NotImplementedError()` with your code."
    if outer.name != inner.name and inner.name != "<module>" and outer.name != "<module>":
        tb, code = exc.__traceback__, None
        while tb is not None:
            code = tb.tb_frame.f_code
            tb = tb.tb_next
        if code is not None and set(code.co_names) <= {"NotImplementedError"}:
            return FAILED, f"`{outer.name}` calls `{inner.name}`, which is not written yet (it still raises NotImplementedError)."
        return FAILED, (f"`{outer.name}` calls `{inner.name}`, which raises NotImplementedError "
                        f"({_where(inner)}): write that function first.")
    return FAILED, f"your code raises NotImplementedError ({_where(inner)}): finish the answer."


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

    Examples
    --------
    >>> as_float_array([1, 2], "x")
    array([1., 2.])
    >>> as_float_array([1, float("nan")], "x")
    Traceback (most recent call last):
    ...
    ganlib.grading.CheckFailed: x contains NaN or inf: [1, nan]
    """
    if value is None:
        raise CheckFailed(f"{what} returned None: did you forget a `return` statement?")
    try:
        arr = to_numpy(value)
    except (TypeError, ValueError):
        raise CheckFailed(f"{what} should be numeric, got {type(value).__name__}: {summarize(value)}") from None
    if shape is not None and arr.shape != tuple(shape):
        raise CheckFailed(f"{what} should have shape {tuple(shape)}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise CheckFailed(f"{what} contains NaN or inf: {nonfinite_hint or summarize(arr)}")
    return arr


def expect_close(got: Any, want: Any, what: str, rtol: float = 1e-7, atol: float = 1e-9,
                 wrong: dict[str, Any] | None = None) -> None:
    """Raise :class:`CheckFailed` unless ``got`` matches ``want``.

    ``wrong`` maps a hint to the value a typical mistake would produce; when ``got``
    matches one of them, that hint is the feedback. Otherwise the message names the
    worst entry, never the whole array.

    Examples
    --------
    >>> expect_close(np.arange(6.0) + [0, 0, 0, 0.5, 0, 0], np.arange(6.0), "y")
    Traceback (most recent call last):
    ...
    ganlib.grading.CheckFailed: y is wrong in 1 of 6 entries; the largest error is at index (3,): got 3.5, expected 3
    """
    want = np.asarray(want, dtype=float)
    got = as_float_array(got, what, want.shape)
    if np.allclose(got, want, rtol=rtol, atol=atol):
        return
    for hint, value in (wrong or {}).items():
        value = np.asarray(value, dtype=float)
        if value.shape == got.shape and np.allclose(got, value, rtol=rtol, atol=atol):
            raise CheckFailed(f"{what} is wrong: {hint}")
    raise CheckFailed(mismatch(got, want, what, rtol, atol))


def mismatch(got: np.ndarray, want: np.ndarray, what: str, rtol: float = 1e-7, atol: float = 1e-9) -> str:
    """A one-line description of where two arrays differ (no array dump).

    Examples
    --------
    >>> mismatch(np.array(66.67), np.array(316.67), "loss")
    'loss = 66.67, expected 316.67'
    """
    if got.size == 1:
        return f"{what} = {float(got.ravel()[0]):.6g}, expected {float(want.ravel()[0]):.6g}"
    bad = ~np.isclose(got, want, rtol=rtol, atol=atol)
    idx = np.unravel_index(int(np.argmax(np.abs(got - want))), got.shape)
    return (f"{what} is wrong in {int(bad.sum())} of {got.size} entries; the largest error is at index "
            f"{tuple(int(i) for i in idx)}: got {got[idx]:.6g}, expected {want[idx]:.6g}")


def expect_tuple(value: Any, what: str, names: Sequence[str]) -> tuple:
    """Check that an answer is a tuple with one entry per name in ``names`` and return it.

    Examples
    --------
    >>> expect_tuple((1, 2), "step", ("x_new", "y_new"))
    (1, 2)
    """
    if not isinstance(value, (tuple, list)) or len(value) != len(names):
        kind = "a pair" if len(names) == 2 else f"a tuple of {len(names)}"
        raise CheckFailed(f"{what} should return {kind} ({', '.join(names)}), got {summarize(value)}")
    return tuple(value)


def random_sizes(rng: np.random.Generator, k: int = 3, low: int = 2, high: int = 8) -> list[int]:
    """``k`` distinct sizes in ``[low, high]``, so that a swapped axis shows up as a shape error.

    Examples
    --------
    >>> len(set(random_sizes(np.random.default_rng(0), 3)))
    3
    """
    return [int(v) for v in rng.choice(np.arange(low, high + 1), size=k, replace=False)]


def summarize(value: Any, limit: int = 80) -> str:
    """A short one-line description of a value: small arrays in full, larger ones by shape and range.

    Examples
    --------
    >>> summarize(np.array([1.0, 2.5]))
    '[1, 2.5]'
    >>> summarize(np.zeros((30, 4)))
    'an array of shape (30, 4) with values in [0, 0]'
    """
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        try:
            value = value.detach().cpu().numpy()
        except Exception:  # pragma: no cover - exotic tensors
            pass
    if isinstance(value, np.ndarray):
        if value.size <= 6 and value.ndim <= 1:
            return "[" + ", ".join(_num(v) for v in value.ravel()) + "]" if value.ndim else _num(value[()])
        if np.issubdtype(value.dtype, np.number) and value.size:
            finite = value[np.isfinite(value)] if np.issubdtype(value.dtype, np.floating) else value
            rng = f" with values in [{_num(finite.min())}, {_num(finite.max())}]" if finite.size else ""
            nonfinite = value.size - finite.size
            return f"an array of shape {value.shape}{rng}" + (f", {nonfinite} NaN or inf" if nonfinite else "")
        return f"an array of shape {value.shape}"
    return one_line(repr(value), limit)


def _num(v: Any) -> str:
    try:
        return f"{float(v):.6g}" if not float(v).is_integer() or abs(float(v)) >= 1e6 else f"{float(v):g}"
    except (TypeError, ValueError):
        return repr(v)


def one_line(text: str, limit: int = FEEDBACK_LIMIT) -> str:
    """Collapse whitespace and cut ``text`` to ``limit`` characters (feedback is one table row).

    Examples
    --------
    >>> one_line("a\\n   b", 10)
    'a b'
    >>> one_line("x" * 20, 10)
    'xxxxxxx...'
    """
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in str(text)).split())  # no terminal escapes
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- describing learner errors


_LIBRARY_PREFIXES = tuple({os.path.realpath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                                                   os.path.dirname(os.path.abspath(__file__)))})
memory_limit_mb: float | None = None  # set by the worker, so messages can name the limit


_ARRAY_TEXT = re.compile(r"\[[\[\]\s\d.eE+\-,naif]{30,}(?:\]|\.\.\.|$)")  # a printed array inside a message


def _is_learner_file(filename: str) -> bool:
    if filename.startswith("<code cell") or filename.startswith("<cell"):
        return True
    if filename.startswith("<"):
        return False
    real = os.path.realpath(filename)
    return "site-packages" not in real and not real.startswith(_LIBRARY_PREFIXES)


def _where(frame: traceback.FrameSummary) -> str:
    if frame.filename.startswith("<"):
        cell = frame.filename.strip("<>")
    else:
        cell = "your cell"
    return f"{cell}, line {frame.lineno}: {one_line((frame.line or '').strip(), 70)}"


_AUTOGRAD_HINTS = (
    ("does not require grad", "the output is not connected to the inputs (a .detach(), .data, .item(), .numpy() or "
                              "torch.tensor(...) on the way, or inputs without requires_grad_(True))"),
    ("appears to not have been used in the graph", "an input was not used to compute the output (a .detach(), .data "
                                                   "or copy in the function that computes it?)"),
    ("modified by an inplace operation", "a tensor needed for the gradient was changed in place (+=, .add_()): "
                                         "use out-of-place operations"),
    ("backward through the graph a second time", "the graph was used twice: redo the forward pass or pass "
                                                 "retain_graph=True"),
    ("leaf Variable that requires grad", "a leaf tensor with requires_grad=True was changed in place; work on a copy"),
)


def describe_exception(exc: BaseException) -> str:
    """One line naming the exception, the learner's function and line where it happened, and a hint when known.

    Examples
    --------
    >>> try:
    ...     exec(compile("def f():\\n    return 1 / 0\\nf()", "<code cell 3>", "exec"), {})
    ... except ZeroDivisionError as exc:
    ...     print(describe_exception(exc))
    your code raised ZeroDivisionError: division by zero in `f` (code cell 3, line 2)
    """
    frames = traceback.extract_tb(exc.__traceback__)
    learner = [f for f in frames if _is_learner_file(f.filename)]
    message = one_line(_ARRAY_TEXT.sub("[an array]", str(exc)), 120)
    text = f"your code raised {type(exc).__name__}" + (f": {message}" if message else "")
    if learner:
        inner = learner[-1]
        where = _where(inner)
        if inner.name != "<module>":
            text += f" in `{inner.name}`"
        text += f" ({where})" if inner.line else f" ({where.split(':')[0]})"
        if frames and frames[-1] is not inner:
            module = _library_name(frames[-1].filename)
            if module:
                text += f", inside {module}"
    hint = _hint_for(exc)
    return text + (f". Hint: {hint}." if hint else "")


def _library_name(filename: str) -> str:
    parts = Path(filename).parts
    for anchor in ("site-packages", "dist-packages"):
        if anchor in parts:
            rest = parts[parts.index(anchor) + 1:]
            return rest[0] if rest else ""
    return ""


def _hint_for(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, MemoryError) or "can't allocate memory" in text or "Unable to allocate" in text:
        limit = f" more than the {memory_limit_mb:g} MB the grader allows" if memory_limit_mb else ""
        return f"it ran out of memory: your code tried to use{limit or ' too much memory'}; use smaller arrays"
    if isinstance(exc, OSError) and exc.errno == 27:  # EFBIG
        return "it tried to write a file larger than the grader allows"
    if isinstance(exc, OSError) and exc.errno == 30:  # EROFS
        return "in the grader's sandbox your code may write only in its working directory"
    if isinstance(exc, PermissionError) and "grader" in text:
        return ""
    if isinstance(exc, RuntimeError):
        for needle, hint in _AUTOGRAD_HINTS:
            if needle in text:
                return "torch autograd: " + hint
    return ""


def _timeout_message(seconds: float) -> str:
    return f"no answer within {seconds:g} s: look for an endless loop or a far too large computation."


class _Timeout(BaseException):
    pass


class _alarm:
    """Best-effort time limit (Unix main thread only); nests inside an outer limit and restores it."""

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
            self.start = time.monotonic()
            outer, _ = signal.setitimer(signal.ITIMER_REAL, self.seconds)
            self.outer = outer
            if outer and outer < self.seconds:
                signal.setitimer(signal.ITIMER_REAL, outer)
        return self

    def __exit__(self, *exc):
        if self.active:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old)
            if self.outer:
                left = self.outer - (time.monotonic() - self.start)
                signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3))
        return False


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


CHAPTER_ID = re.compile(r"\d\d|[A-Z]")
"""A chapter's id: two digits (``"06"``), or one capital letter for an appendix (``"A"``)."""


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


def questions_for(chapter: str) -> list[Question]:
    """The questions of a chapter, from ``ganlib.checks.ch<chapter>`` (imports the module)."""
    if not CHAPTER_ID.fullmatch(str(chapter)):
        raise GradingError(f"chapter {chapter!r} is not a two-digit chapter number or an appendix letter")
    try:
        module = importlib.import_module(f"ganlib.checks.ch{chapter}")
    except ModuleNotFoundError:
        raise GradingError(f"chapter {chapter} has no graded questions") from None
    return list(module.QUESTIONS)


@dataclass(frozen=True)
class QuestionSpec:
    """What the parent process knows of a question, read from the check module's source (no import)."""

    key: str
    title: str
    points: float
    needs: tuple[str, ...]
    timeout: float = 20.0

    def result(self, status: str, feedback: str = "") -> Result:
        return Result(self.key, self.title, self.points if status == PASSED else 0.0, self.points, status,
                      one_line(feedback))


def question_specs(chapter: str) -> list[QuestionSpec]:
    """The questions of a chapter as :class:`QuestionSpec`, parsed from ``ganlib/checks/chNN.py``.

    The grading process reads them without importing the module, so that torch is imported
    only once, by the worker. Falls back to importing when the decorators are not literals.

    Examples
    --------
    >>> [q.key for q in question_specs("01")]
    ['q1', 'q2', 'q3', 'q4', 'q5', 'q6']
    """
    if not CHAPTER_ID.fullmatch(str(chapter)):
        raise GradingError(f"chapter {chapter!r} is not a two-digit chapter number or an appendix letter")
    path = Path(__file__).parent / "checks" / f"ch{chapter}.py"
    if not path.exists():
        raise GradingError(f"chapter {chapter} has no graded questions")
    try:
        return _parse_specs(ast.parse(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError):
        return [QuestionSpec(q.key, q.title, float(q.points), tuple(q.needs), float(q.timeout))
                for q in questions_for(chapter)]


def _parse_specs(tree: ast.Module) -> list[QuestionSpec]:
    by_name: dict[str, QuestionSpec] = {}
    order: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and getattr(dec.func, "id", None) == "question":
                    args = [ast.literal_eval(a) for a in dec.args]
                    kw = {k.arg: ast.literal_eval(k.value) for k in dec.keywords}
                    names = ["key", "title", "points", "needs", "timeout"]
                    values = dict(zip(names, args)) | kw
                    by_name[node.name] = QuestionSpec(str(values["key"]), str(values["title"]), float(values["points"]),
                                                      tuple(values["needs"]), float(values.get("timeout", 20.0)))
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "QUESTIONS" for t in node.targets):
            if not isinstance(node.value, (ast.List, ast.Tuple)):
                raise ValueError("QUESTIONS is not a literal list")
            order = [elt.id for elt in node.value.elts]
    if not order:
        raise ValueError("no QUESTIONS list")
    return [by_name[name] for name in order]


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

    cell: int                    # position among the notebook's code cells, from 1
    label: str                   # "code cell 13 (Q6's answer)"
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
    functions, helper values), and, transitively, what those read. Cells are named by their
    position among code cells (Jupyter does not number markdown cells) and by the question
    they answer.
    """
    needed = {n for q in specs for n in q.needs}
    owner = {}
    for q in specs:
        for n in q.needs:
            owner.setdefault(n, []).append(q.key)
    plan = LoadPlan()
    cells = []  # (index, source, tree or None, checks)
    code_cells = [c for c in nb.get("cells", []) if isinstance(c, dict) and c.get("cell_type") == "code"]
    for index, cell in enumerate(code_cells, start=1):
        src = cell.get("source", "")
        source = _strip_magics("".join(src) if isinstance(src, list) else str(src))
        checks = _CHECK_CALL.findall(source)
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            tree = None
            names = {a or b for a, b in re.findall(r"^(?:def|class)\s+(\w+)|^([A-Za-z_]\w*)\s*[,=]", source, flags=re.M)}
            qs = sorted({k for n in names if n in needed for k in owner[n]})
            label = _label(index, qs)
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
    labels = {i: _label(i, answer.get(i, [])) for i, *_ in cells}
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


def _label(index: int, questions: Sequence[str]) -> str:
    if not questions:
        return f"code cell {index}"
    qs = [k.upper() for k in questions]
    return f"code cell {index} ({qs[0]}'s answer)" if len(qs) == 1 else f"code cell {index} (answer to {' and '.join(qs)})"


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


# --------------------------------------------------------------------------- limits and the worker process


@dataclass(frozen=True)
class Limits:
    """Resource limits of every grading worker (POSIX; not enforced on Windows).

    Attributes
    ----------
    memory_mb : address space (RLIMIT_AS), in MB
    cpu_s : CPU seconds for the whole worker (RLIMIT_CPU)
    file_mb : largest file the worker may write (RLIMIT_FSIZE), in MB
    processes : the worker may not start processes; for a non-root user RLIMIT_NPROC also
        caps the user's tasks at the count when the answers start running plus this number
    """

    memory_mb: float = 3072
    cpu_s: float = 300
    file_mb: float = 64
    processes: int = 16


def _worker_main() -> None:  # pragma: no cover - runs in the worker process (covered through grade_notebook)
    """The worker: read a job (JSON) on stdin, run the plan, answer the questions, write JSON lines on stdout."""
    global memory_limit_mb
    sys.path[:] = [p for p in sys.path if p not in ("", ".", os.getcwd())]
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    devnull = os.open(os.devnull, os.O_RDWR)

    def send(**event):
        proto.write(json.dumps(event) + "\n")
        proto.flush()

    job = json.loads(sys.stdin.read())
    os.dup2(devnull, 0)
    os.environ.setdefault("MPLBACKEND", "Agg")
    questions = {q.key: q for q in questions_for(job["chapter"])}
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    limits = Limits(**job["limits"])
    memory_limit_mb = limits.memory_mb
    _apply_limits(limits)
    send(e="ready")
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)

    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    failed: dict[str, str] = {}
    skip = set(job["skip_steps"])
    for i, step in enumerate(job["steps"]):
        if i in skip:
            continue
        send(e="step", i=i)
        status, message = _run_step(step, namespace, job["load_timeout"])
        if status != "ok":
            for name in step["binds"]:
                failed.setdefault(name, step["label"])
        send(e="step_done", i=i, status=status, message=message)
    needed = {n for q in questions.values() for n in q.needs}
    defined = sorted(n for n in needed if n in namespace)
    send(e="loaded", defined=defined)
    for key in job["questions"]:
        q = questions[key]
        if not all(n in namespace for n in q.needs):
            continue
        send(e="q", key=key)
        rng = np.random.default_rng([job["seed"], zlib.crc32(key.encode())])
        limit = job["timeouts"][key]
        q = Question(q.key, q.title, q.points, q.needs, q.test, limit)
        with _alarm(limit):
            result = q.evaluate(*[namespace[n] for n in q.needs], rng=rng)
        feedback = result.feedback
        m = re.search(r"NameError: name '(\w+)' is not defined", feedback)
        if m and m.group(1) in failed:
            feedback = f"`{m.group(1)}` is not defined because {failed[m.group(1)]} failed to load; " + feedback
        send(e="result", key=key, status=result.status, feedback=one_line(feedback))
    send(e="end")
    proto.flush()
    os._exit(0)


def _run_step(step: dict, namespace: dict, limit: float) -> tuple[str, str]:  # pragma: no cover - worker side
    filename = f"<{step['label']}>"
    source = step["source"]
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    tree = ast.parse(source, filename=filename)
    if step["keep"] is not None:
        tree = ast.Module(body=[tree.body[j] for j in step["keep"]], type_ignores=[])
    try:
        with _alarm(limit):
            exec(compile(tree, filename, "exec"), namespace)
    except _Timeout:
        return "timeout", ""
    except NotImplementedError as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_learner_file(f.filename)]
        if step["stub"] and frames and frames[-1].name == "<module>":
            return "stub", ""
        return "error", describe_exception(exc)
    except MemoryError as exc:
        return "memory", describe_exception(exc)
    except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt... from learner code
        return "error", describe_exception(exc)
    return "ok", ""


def _apply_limits(limits: Limits) -> None:  # pragma: no cover - worker side
    try:
        import resource
    except ImportError:  # Windows
        return
    mb = 1024 * 1024

    def cap(which, value):
        try:
            resource.setrlimit(which, (int(value), int(value)))
        except (ValueError, OSError):
            pass

    cap(resource.RLIMIT_AS, limits.memory_mb * mb)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (int(limits.cpu_s), int(limits.cpu_s) + 5))
    except (ValueError, OSError):
        pass
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too large write fails with EFBIG instead of killing
    cap(resource.RLIMIT_FSIZE, limits.file_mb * mb)
    tasks = _user_tasks()
    if hasattr(resource, "RLIMIT_NPROC") and os.geteuid() != 0 and tasks:
        cap(resource.RLIMIT_NPROC, tasks + limits.processes)
    _block_processes()


def _user_tasks() -> int:  # pragma: no cover - worker side
    """Tasks (processes and threads) of this user now, from /proc; 0 where there is no /proc."""
    uid, count = os.getuid(), 0
    if not os.path.isdir("/proc/self/task"):
        return 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                continue
    return max(count, 1)


def _block_processes() -> None:  # pragma: no cover - worker side
    def refuse(*args, **kwargs):
        raise PermissionError("starting a process is not allowed while grading")

    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "popen", "execv", "execve",
                 "execvp", "execvpe", "execl", "execle", "execlp", "execlpe", "spawnv", "spawnve"):
        if hasattr(os, name):
            setattr(os, name, refuse)
    try:
        import _posixsubprocess

        _posixsubprocess.fork_exec = refuse
    except ImportError:
        pass


# --------------------------------------------------------------------------- the sandbox

_INSTALL_HINT = """\
Install bubblewrap: `sudo apt-get install bubblewrap` (Debian, Ubuntu), `sudo dnf install bubblewrap` (Fedora),
`sudo pacman -S bubblewrap` (Arch). It needs unprivileged user namespaces (on Ubuntu 24.04 and later, an
AppArmor profile that allows bwrap; elsewhere `sysctl kernel.unprivileged_userns_clone=1`). bubblewrap does
not exist on macOS or Windows: there, grade in a container without network and with a read-only file system.
Build the image once (from the course folder):
  docker build -t ganlib-grader -f - . <<'EOF'
  FROM python:3.11-slim
  COPY pyproject.toml README.md LICENSE /src/
  COPY ganlib /src/ganlib
  RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch>=2.1,<3" && pip install --no-cache-dir /src
  EOF
then grade a folder of submissions with:
  docker run --rm --network none --read-only --tmpfs /tmp --memory 4g --pids-limit 256 --user 65534:65534 -e HOME=/tmp -e MPLCONFIGDIR=/tmp -v "$PWD/submissions":/submissions:ro ganlib-grader python -m ganlib grade --json /submissions > grades.json
Nothing was graded: with --sandbox the grader never runs a submission unsandboxed."""

_sandbox_checked: dict[str, str] = {}


def sandbox_problem() -> str:
    """Why the sandbox cannot be used here ("" when bubblewrap works). Probed once per process."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return "bubblewrap (`bwrap`) is not installed or not on PATH"
    if bwrap not in _sandbox_checked:
        try:
            probe = subprocess.run([bwrap, *_bwrap_base(), "--", "true"], capture_output=True, text=True, timeout=30)
            _sandbox_checked[bwrap] = "" if probe.returncode == 0 else (
                f"`bwrap` is installed but does not work here: {one_line(probe.stderr or probe.stdout, 200)}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            _sandbox_checked[bwrap] = f"`bwrap` is installed but does not work here: {exc}"
    return _sandbox_checked[bwrap]


def _bwrap_base() -> list[str]:
    return ["--unshare-all", "--die-with-parent", "--new-session", "--ro-bind", "/", "/",
            "--dev", "/dev", "--proc", "/proc"]


def _sandbox_command(workdir: str, inner: list[str], env: dict[str, str]) -> list[str]:
    """bubblewrap around ``inner``: no network, read-only root, empty home, fresh workdir, own PID namespace."""
    home = os.path.realpath(os.path.expanduser("~"))
    hidden = [p for p in ("/tmp", "/var/tmp", "/run", "/dev/shm", home) if p not in ("/",) and os.path.isdir(p)]
    args = [shutil.which("bwrap") or "bwrap", *_bwrap_base()]
    for p in hidden:
        args += ["--tmpfs", p]
    # the Python installation and its import path stay visible even when they live under a hidden folder
    keep = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                          os.path.dirname(os.path.realpath(sys.executable)),
                                          os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                          *[p for p in sys.path if p])}
    for p in sorted(keep):
        if os.path.exists(p) and any(p.startswith(h + os.sep) for h in hidden):
            args += ["--ro-bind", p, p]
    inside = "/tmp/grading"
    args += ["--bind", workdir, inside]
    for p in hidden:
        args += ["--remount-ro", p]
    args += ["--chdir", inside, "--clearenv"]
    for k, v in {**env, "HOME": inside, "TMPDIR": inside}.items():
        args += ["--setenv", k, v]
    return args + ["--", *inner]


# --------------------------------------------------------------------------- the parent side


class _WorkerFailed(Exception):
    """The worker stopped (killed, crashed, timed out, or broke the protocol) during ``activity``."""

    def __init__(self, activity: tuple[str, Any], why: str):
        super().__init__(why)
        self.activity, self.why = activity, why


_EVENT_KEYS = {
    "ready": set(), "step": {"i"}, "step_done": {"i", "status", "message"}, "loaded": {"defined"},
    "q": {"key"}, "result": {"key", "status", "feedback"}, "end": set(),
}
_STEP_STATUSES = ("ok", "error", "stub", "timeout", "memory")
_MAX_LINE, _MAX_OUTPUT = 64 * 1024, 4 * 1024 * 1024


class _Worker:
    """One worker process and its JSON-lines channel; never unpickles anything."""

    def __init__(self, job: dict, sandbox: bool, workdir: str, startup_timeout: float):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and os.path.isdir(p)),
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONSAFEPATH": "1", "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            _WORKER_ENV: "1", "LANG": "C.UTF-8", "MPLCONFIGDIR": workdir, "HOME": workdir,
        }
        if "GANLIB_SMOKE" in os.environ:
            env["GANLIB_SMOKE"] = os.environ["GANLIB_SMOKE"]
        inner = [sys.executable, "-c", "from ganlib.grading import _worker_main; _worker_main()"]
        cmd = _sandbox_command(workdir, inner, env) if sandbox else inner
        self.stderr = tempfile.TemporaryFile()
        kwargs: dict[str, Any] = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     cwd=workdir, env=env, **kwargs)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._send_job, args=(json.dumps(job).encode(),), daemon=True).start()
        self.startup_timeout = startup_timeout

    def _send_job(self, data: bytes) -> None:
        # in a thread: a worker that never reads its job must not block the grader (pipes hold only 64 KB)
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.close()
        except OSError:
            pass

    def wait_ready(self) -> None:
        self.expect("ready", ("startup", None), self.startup_timeout)

    def _read(self) -> None:
        total = 0
        while True:
            line = self.proc.stdout.readline(_MAX_LINE + 1)
            total += len(line)
            if not line:
                self.lines.put(None)
                return
            if len(line) > _MAX_LINE or total > _MAX_OUTPUT:
                self.lines.put("flood")
                return
            self.lines.put(line)

    def next_event(self, activity: tuple[str, Any], timeout: float) -> dict:
        try:
            line = self.lines.get(timeout=max(timeout, 0.01))
        except queue.Empty:
            self.kill()
            raise _WorkerFailed(activity, "timeout") from None
        if line is None:
            raise _WorkerFailed(activity, self._death())
        if line == "flood":
            self.kill()
            raise _WorkerFailed(activity, "protocol")
        try:
            event = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            self.kill()
            raise _WorkerFailed(activity, "protocol") from None
        if (not isinstance(event, dict) or event.get("e") not in _EVENT_KEYS
                or set(event) != _EVENT_KEYS[event["e"]] | {"e"}):
            self.kill()
            raise _WorkerFailed(activity, "protocol")
        return event

    def expect(self, kind: str, activity: tuple[str, Any], timeout: float) -> dict:
        event = self.next_event(activity, timeout)
        if event["e"] != kind:
            self.kill()
            raise _WorkerFailed(activity, "protocol")
        return event

    def _death(self) -> str:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            return "crash"
        if os.name == "posix" and code in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            return "cpu"
        if os.name == "posix" and code in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
            return "file"
        return "crash"

    def startup_error(self) -> str:
        try:
            self.stderr.seek(0)
            text = self.stderr.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            text = []
        return one_line(text[-1], 300) if text else "no error message"

    def kill(self) -> None:
        if self.proc.poll() is None or os.name == "posix":
            try:
                if os.name == "posix":
                    os.killpg(self.proc.pid, signal.SIGKILL)
                else:  # pragma: no cover - Windows
                    self.proc.kill()
            except (ProcessLookupError, PermissionError, OSError):
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        for stream in (self.proc.stdout, self.stderr):
            try:
                stream.close()
            except OSError:
                pass


@dataclass
class NotebookReport:
    """All results for one notebook."""

    path: str
    chapter: str
    results: list[Result]
    problems: list[str] = field(default_factory=list)
    seed: int = 0
    sandboxed: bool = False

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
            "sandboxed": self.sandboxed,
            "problems": self.problems,
            "questions": [asdict(r) for r in self.results],
        }


_GRACE = 3.0  # seconds the parent waits beyond a limit before it kills the worker


def _sandbox_default() -> bool:
    return os.environ.get(SANDBOX_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def grade_notebook(path: str | Path, seed: int | None = None, load_timeout: float = 10.0,
                   chapter: str | None = None, timeout: float | None = None, sandbox: bool | None = None,
                   limits: Limits | None = None) -> NotebookReport:
    """Grade one notebook in a worker process.

    Parameters
    ----------
    path : path to an ``.ipynb`` file
    seed : int, optional
        Seed for the random test inputs (fresh each run when omitted; reported back).
        The grade does not depend on it: every question tests every kind of input each time.
    load_timeout : float
        Seconds allowed for each cell the grader runs while loading the notebook. A cell that
        runs longer is stopped and named; questions that do not depend on it are still graded.
    chapter : str, optional
        Override the chapter detected from metadata or file name.
    timeout : float, optional
        Override every question's own time limit (seconds).
    sandbox : bool, optional
        Run the worker under bubblewrap (see the module docstring); default: the
        ``GANLIB_GRADE_SANDBOX`` environment variable. Raises :class:`SandboxUnavailable`
        (and grades nothing) when bubblewrap is missing or does not work.
    limits : Limits, optional
        Resource limits of the worker.

    Returns
    -------
    NotebookReport

    Examples
    --------
    >>> report = grade_notebook("solutions/01_minimax_games.ipynb")  # doctest: +SKIP
    >>> report.score == report.total  # doctest: +SKIP
    True
    """
    if os.environ.get(_WORKER_ENV):
        raise GradingError("grade_notebook was called from inside the grader (an answer cell grades a notebook?)")
    sandbox = _sandbox_default() if sandbox is None else bool(sandbox)
    if sandbox:
        problem = sandbox_problem()
        if problem:
            raise SandboxUnavailable(f"--sandbox: {problem}.\n{_INSTALL_HINT}")
    path = Path(path)
    nb = read_notebook(path)
    chapter = chapter or chapter_of(nb, path)
    specs = question_specs(chapter)
    seed = int(np.random.SeedSequence().entropy % 2**32) if seed is None else int(seed)
    plan = plan_notebook(nb, specs)
    limits = limits or Limits()
    report = NotebookReport(str(path), chapter, [], list(plan.problems), seed, sandbox)
    timeouts = {q.key: float(q.timeout if timeout is None else timeout) for q in specs}
    steps = [{"label": s.label, "source": s.source, "keep": s.keep, "stub": s.stub, "binds": sorted(s.binds)}
             for s in plan.steps]
    step_outcome: dict[int, tuple[str, str]] = {}
    results: dict[str, Result] = {}
    defined: set[str] | None = None
    excluded: set[int] = set()
    spec_by_key = {q.key: q for q in specs}
    workdir = tempfile.mkdtemp(prefix="ganlib-grade-")
    try:
        for _attempt in range(len(steps) + len(specs) + 2):
            todo = [q.key for q in specs if q.key not in results]
            if not todo:
                break
            job = {"chapter": chapter, "seed": seed, "steps": steps, "skip_steps": sorted(excluded),
                   "questions": todo, "load_timeout": float(load_timeout), "timeouts": timeouts,
                   "limits": asdict(limits)}
            worker = None
            try:
                try:
                    worker = _Worker(job, sandbox, workdir, startup_timeout=120.0)
                except OSError as exc:
                    raise _StartupFailed(str(exc)) from None
                worker.wait_ready()
                defined = _drive(worker, job, spec_by_key, step_outcome, results, len(steps))
                break
            except _WorkerFailed as failure:
                kind, what = failure.activity
                if kind == "startup":
                    why = worker.startup_error() if worker else str(failure)
                    raise GradingError(f"{path}: the grader could not start its worker: {why}") from None
                if kind == "step":
                    excluded.add(what)
                    step_outcome[what] = (failure.why, "")
                elif kind == "question":
                    results[what] = spec_by_key[what].result(*_question_failure(failure.why, timeouts[what], limits))
                else:  # between activities: protocol break or death while loading names
                    for key in todo:
                        results.setdefault(key, spec_by_key[key].result(ERROR, _limit_text(failure.why, limits)
                                                                          + " while the grader was reading the results"))
                    break
            except _StartupFailed as exc:
                raise GradingError(f"{path}: the grader could not start its worker: {exc}") from None
            finally:
                if worker is not None:
                    worker.kill()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    # load-step notes, named by cell
    step_msgs: dict[str, str] = {}
    for i, (status, message) in sorted(step_outcome.items()):
        if status in ("ok", "stub"):
            continue
        label = plan.steps[i].label
        text = _step_text(label, status, message, load_timeout, limits)
        step_msgs[label] = text
        if not plan.steps[i].questions:  # an answer cell's failure is reported in its question's row
            report.problems.append(text)
    for q in specs:
        broken = [step_msgs[c] for c in plan.answer_cells.get(q.key, []) if c in step_msgs]
        if broken:  # as in Run All, an answer cell that did not run to its end does not count
            status = TIMEOUT if "did not finish" in broken[0] else ERROR
            report.results.append(q.result(status, broken[0] + "."))
        elif q.key in results:
            report.results.append(results[q.key])
        else:
            report.results.append(_absent_result(q, defined or set(), plan, step_msgs))
    return report


class _StartupFailed(Exception):
    pass


def _drive(worker: _Worker, job: dict, specs: dict[str, QuestionSpec], step_outcome: dict[int, tuple[str, str]],
           results: dict[str, Result], n_steps: int) -> set[str]:
    """Follow one worker's events; record step outcomes and results. Returns the needed names it defined."""
    skip = set(job["skip_steps"])
    for i in range(n_steps):
        if i in skip:
            continue
        worker.expect("step", ("step", i), 30.0)
        event = worker.next_event(("step", i), job["load_timeout"] + _GRACE)
        if event["e"] != "step_done" or event["i"] != i or event["status"] not in _STEP_STATUSES \
                or not isinstance(event["message"], str):
            worker.kill()
            raise _WorkerFailed(("step", i), "protocol")
        step_outcome.setdefault(i, (event["status"], one_line(event["message"])))
    loaded = worker.expect("loaded", ("load", None), 30.0)
    needed = {n for q in specs.values() for n in q.needs}
    if not isinstance(loaded["defined"], list) or not set(map(str, loaded["defined"])) <= needed:
        worker.kill()
        raise _WorkerFailed(("load", None), "protocol")
    defined = set(loaded["defined"])
    for key in job["questions"]:
        if not all(n in defined for n in specs[key].needs):
            continue
        event = worker.expect("q", ("question", key), 30.0)
        if event["key"] != key:
            worker.kill()
            raise _WorkerFailed(("question", key), "protocol")
        event = worker.next_event(("question", key), job["timeouts"][key] + _GRACE)
        if (event["e"] != "result" or event["key"] != key or event["status"] not in STATUSES
                or not isinstance(event["feedback"], str)):
            worker.kill()
            raise _WorkerFailed(("question", key), "protocol")
        # the parent scores: points come from the chapter's own table, never from the worker
        results[key] = specs[key].result(event["status"], event["feedback"])
    worker.expect("end", ("end", None), 30.0)
    return defined


def _limit_text(why: str, limits: Limits) -> str:
    return {
        "timeout": "did not finish in time",
        "cpu": f"used more than {limits.cpu_s:g} s of CPU time",
        "file": f"wrote a file larger than {limits.file_mb:g} MB",
        "memory": f"used more than {limits.memory_mb:g} MB of memory",
        "protocol": "broke the grader's protocol (wrote to its result channel?)",
        "crash": "stopped the Python process (os._exit, a crash in a C extension, or running out of memory)",
    }.get(why, why)


def _question_failure(why: str, limit: float, limits: Limits) -> tuple[str, str]:
    if why == "timeout":
        return TIMEOUT, _timeout_message(limit)
    return ERROR, "your code " + _limit_text(why, limits) + "."


def _step_text(label: str, status: str, message: str, load_timeout: float, limits: Limits) -> str:
    if status == "timeout":
        return (f"{label} did not finish within {load_timeout:g} s while loading (an endless loop or a far too "
                "large computation); the grader skipped it")
    if status == "error":
        return message.replace("your code raised", f"{label} raised", 1)
    if status == "memory":
        return f"{label} used more than {limits.memory_mb:g} MB of memory while loading; the grader skipped it"
    return f"{label} {_limit_text(status, limits)} while loading; the grader skipped it"


def _absent_result(q: QuestionSpec, defined: set[str], plan: LoadPlan, step_msgs: dict[str, str]) -> Result:
    absent = [n for n in q.needs if n not in defined]
    name = absent[0] if absent else q.needs[0]
    cells = plan.answer_cells.get(q.key, [])
    broken = [step_msgs[c] for c in cells if c in step_msgs]
    if broken:
        status = TIMEOUT if "did not finish" in broken[0] else ERROR
        return q.result(status, f"`{name}` is not defined: {broken[0]}")
    if name in plan.syntax_errors:
        return q.result(ERROR, f"`{name}` could not be read: {plan.syntax_errors[name]}. Fix it and grade again.")
    if q.key in plan.stub_cells:
        return q.result(NOT_ATTEMPTED, f"not attempted yet: write {_names(absent)} in {plan.stub_cells[q.key]}.")
    return q.result(MISSING, f"`{name}` is not defined: did you rename or delete the cell that defines it?")


# --------------------------------------------------------------------------- reporting


def format_report(report: NotebookReport) -> str:
    """A per-question table for one notebook."""
    rows = [(r.key.upper(), r.title, f"{r.points:g}/{r.max_points:g}", r.status, one_line(r.feedback))
            for r in report.results]
    head = ("question", "task", "points", "status", "feedback")
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    widths[-1] = min(widths[-1], 100)
    out = [f"{report.path}  (chapter {report.chapter}{', sandboxed' if report.sandboxed else ''})"]
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
        rows.append([path, "?", *["-" for _ in keys], f"not graded: {one_line(msg, 100)}"])
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


HELP = """\
Grade exercise notebooks offline: one table per notebook (question, points, status, feedback) and,
for several notebooks, one summary row per file. Exit code: 0 when every notebook has full marks,
1 otherwise, 2 when nothing could be graded (unreadable input, or --sandbox unavailable).

Trust model: the grader gives learners feedback; it is not a proctoring tool. It RUNS the code of
the notebook it grades: every answer cell, and the imports and helpers those cells use (not
experiments, plots or check cells), in a worker process with time and resource limits (memory,
CPU time, file size, no new processes) whose results come back as plain JSON. That protects you
from mistakes, not from malice. To grade work you do not trust, use --sandbox (or set
GANLIB_GRADE_SANDBOX=1): each worker then runs under bubblewrap (bwrap) with no network, a
read-only file system except a fresh working directory, an empty home directory and its own
process namespace. Without bwrap, --sandbox stops with instructions (install it, or the exact
docker command to grade in a container); it never grades unsandboxed."""


def main(argv: Sequence[str]) -> int:
    """``python -m ganlib grade``: exit 0 when every notebook has full marks, 1 otherwise, 2 on unusable input."""
    import argparse
    from concurrent.futures import ThreadPoolExecutor

    parser = argparse.ArgumentParser(prog="python -m ganlib grade", description=HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="notebooks or folders of notebooks")
    parser.add_argument("--json", action="store_true", help="print machine-readable results")
    parser.add_argument("--seed", type=int, default=None, help="seed for the random test inputs")
    parser.add_argument("--chapter", default=None, help="grade as this chapter (e.g. 01) whatever the metadata says")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--sandbox", dest="sandbox", action="store_true", default=None,
                       help="run each notebook's code under bubblewrap (default when GANLIB_GRADE_SANDBOX=1)")
    group.add_argument("--no-sandbox", dest="sandbox", action="store_false",
                       help="do not sandbox, even when GANLIB_GRADE_SANDBOX=1")
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                        help="notebooks graded at the same time (default: min(4, CPUs))")
    args = parser.parse_args(argv)

    sandbox = _sandbox_default() if args.sandbox is None else args.sandbox
    if sandbox:
        problem = sandbox_problem()
        if problem:
            print(f"--sandbox: {problem}.\n{_INSTALL_HINT}", file=sys.stderr)
            return 2
    notebooks = collect_notebooks(args.paths)
    if not notebooks:
        print("no notebooks found in " + ", ".join(args.paths), file=sys.stderr)
        return 2

    def grade_one(nb: Path):
        try:
            return grade_notebook(nb, seed=args.seed, chapter=args.chapter, sandbox=sandbox)
        except GradingError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = list(pool.map(grade_one, notebooks))
    reports = [o for o in outcomes if isinstance(o, NotebookReport)]
    failures = {str(nb): o for nb, o in zip(notebooks, outcomes) if isinstance(o, str)}
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
