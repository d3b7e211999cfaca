"""What a graded question is, and the helpers the chapters' checks are written with (chapter 00).

A chapter's questions live in ``ganlib.checks.chNN`` as :class:`Question` objects, made with
the :func:`question` decorator. Each names the learner definitions it needs (functions,
classes, UPPER_CASE constants) and a test that compares them with closed forms, finite
differences or ganlib's reference implementation on random inputs, raising
:class:`CheckFailed` with a specific hint when an answer is wrong. This module also holds the
verdicts (``PASSED``, ``FAILED``, ...), :class:`Result`, the helpers tests use
(:func:`expect_close`, :func:`as_float_array`, ...), how a learner's exception is described,
and :func:`question_specs`, which reads a chapter's questions without importing it.

A new graded question goes into its chapter's ``ganlib/checks/chNN.py``, written with these helpers.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
    claim = getattr(type(value), "_ganlib_stub", None)   # a stand-in for a learner's function (the worker's claim)
    if claim is not None:
        return getattr(value, "_ganlib_stub", False) is True
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


def _frames(exc: BaseException) -> list[traceback.FrameSummary]:
    """The traceback of ``exc``: where it was raised in the worker, for an exception that came from there."""
    remote = getattr(exc, "_ganlib_frames", None)
    return list(remote) if remote is not None else traceback.extract_tb(exc.__traceback__)


def _innermost_names(exc: BaseException) -> set[str]:
    remote = getattr(exc, "_ganlib_names", None)
    if remote is not None:
        return set(remote)
    tb, code = exc.__traceback__, None
    while tb is not None:
        code = tb.tb_frame.f_code
        tb = tb.tb_next
    return set(code.co_names) if code is not None else {"?"}


def _stub_called(exc: BaseException, stubs: list[str]) -> tuple[str, str]:
    frames = [f for f in _frames(exc) if _is_learner_file(f.filename)]
    if not frames:
        return ERROR, describe_exception(exc)
    inner, outer = frames[-1], frames[0]
    if inner.name in stubs:
        if outer.name != inner.name and outer.name != "<module>":
            return FAILED, f"`{outer.name}` calls `{inner.name}`, which is not written yet (it still raises NotImplementedError)."
        return FAILED, f"`{inner.name}` is not written yet: replace its `raise NotImplementedError()` with your code."
    if outer.name != inner.name and inner.name != "<module>" and outer.name != "<module>":
        if _innermost_names(exc) <= {"NotImplementedError"}:
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
    ganlib.grading.questions.CheckFailed: x contains NaN or inf: [1, nan]
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
    ganlib.grading.questions.CheckFailed: y is wrong in 1 of 6 entries; the largest error is at index (3,): got 3.5, expected 3
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
    """Collapse whitespace and shorten ``text`` to at most ``limit`` characters (feedback is one table row).

    A long text is shortened by whole words, so a number is never cut in the middle; only a
    single word longer than half the limit is cut inside.

    Examples
    --------
    >>> one_line("a\\n   b", 10)
    'a b'
    >>> one_line("you tried to allocate 68719476736 bytes", 30)
    'you tried to allocate...'
    >>> one_line("x" * 20, 10)
    'xxxxxxx...'
    """
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in str(text)).split())  # no terminal escapes
    if len(text) <= limit:
        return text
    cut = text[: limit - 3]
    if text[limit - 3] != " " and cut.rfind(" ") >= (limit - 3) // 2:  # the cut falls inside a word: drop it
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:") + "..."


# --------------------------------------------------------------------------- describing learner errors


_GANLIB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # ganlib/: library code, not the learner's
_LIBRARY_PREFIXES = tuple({os.path.realpath(p) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                                                   _GANLIB_DIR)})
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
    ...     exec(compile("def f():\\n    return 1 / 0\\nf()", "<cell 3>", "exec"), {})
    ... except ZeroDivisionError as exc:
    ...     print(describe_exception(exc))
    your code raised ZeroDivisionError: division by zero in `f` (cell 3, line 2)
    """
    frames = _frames(exc)
    learner = [f for f in frames if _is_learner_file(f.filename)]
    message = one_line(_memory_text(_ARRAY_TEXT.sub("[an array]", str(exc))), 120)
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


_ENFORCE = re.compile(r"^\[enforce fail at [^\]]*\]\s*[^.]*\.\s*(?:\w+Allocator:\s*)?")  # torch's C++ prefix
_BYTES = re.compile(r"\ballocate (\d{4,}) bytes\b")


def _memory_text(message: str) -> str:
    """An allocation failure in words: torch's C++ prefix dropped, the byte count also in GiB or MiB.

    Examples
    --------
    >>> _memory_text("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
    ...              "you tried to allocate 68719476736 bytes. Error code 12 (Cannot allocate memory)")
    "can't allocate memory: you tried to allocate 68719476736 bytes (64 GiB)"
    """
    message = _ENFORCE.sub("", message)
    match = _BYTES.search(message)
    if not match:
        return message
    n = int(match.group(1))
    size = f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.3g} MiB"
    return message[: match.end()] + f" ({size})"


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
        mb = getattr(exc, "_ganlib_memory_mb", None) or memory_limit_mb   # the worker's limit, when it came from there
        limit = f" more than the {mb:g} MB the grader allows" if mb else ""
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


CHAPTER_ID = re.compile(r"\d\d|[A-Z]")
"""A chapter's id: two digits (``"06"``), or one capital letter for an appendix (``"A"``)."""


def questions_for(chapter: str) -> list[Question]:
    """The questions of a chapter, from ``ganlib.checks.ch<chapter>`` (imports the module).

    Raises :class:`GradingError` when the chapter has no questions, or when a package its
    questions need (PyTorch, for chapters 05 on) is not installed in this Python: the message
    names the package and how to install it.
    """
    if not CHAPTER_ID.fullmatch(str(chapter)):
        raise GradingError(f"chapter {chapter!r} is not a two-digit chapter number or an appendix letter")
    name = f"ganlib.checks.ch{chapter}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name in (name, "ganlib.checks", "ganlib"):
            raise GradingError(f"chapter {chapter} has no graded questions") from None
        raise GradingError(missing_package_message(chapter, exc.name or str(exc))) from None
    return list(module.QUESTIONS)


_PIP_NAMES = {"torch": ("PyTorch", "torch"), "matplotlib": ("Matplotlib", "matplotlib"), "scipy": ("SciPy", "scipy"),
              "tqdm": ("tqdm", "tqdm"), "numpy": ("NumPy", "numpy")}


def missing_package_message(chapter: str, module: str) -> str:
    """What to tell a learner whose Python lacks a package that chapter ``chapter``'s questions import.

    Examples
    --------
    >>> print(missing_package_message("08", "torch").split(". ")[0])  # doctest: +ELLIPSIS
    chapter 08's questions need PyTorch (the module `torch`), which the Python running the grader (...) cannot import
    """
    top = module.split(".")[0]
    title, pip_name = _PIP_NAMES.get(top, (f"the package `{top}`", top))
    extra = " --index-url https://download.pytorch.org/whl/cpu" if top == "torch" else ""
    return (f"chapter {chapter}'s questions need {title} (the module `{top}`), which the Python running the grader "
            f"({sys.executable}) cannot import. Either grade with the course's environment, which has it: from the "
            f"repository root, `make setup` once, then `.venv/bin/python -m ganlib grade exercises/...`; or install it "
            f"into this Python: `{sys.executable} -m pip install {pip_name}`"
            + (f" (on a machine without an NVIDIA GPU, add `{extra.strip()}` for the smaller CPU build)" if extra else "")
            + ".")


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
    path = Path(__file__).parent.parent / "checks" / f"ch{chapter}.py"
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
