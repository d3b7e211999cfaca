"""The trusted side of grading: plan a notebook, drive its worker, decide every verdict (chapter 00).

:func:`grade_notebook` reads the notebook into a plan (:mod:`ganlib.grading.notebook`), has a
worker process run it (:mod:`ganlib.grading.worker`), and runs the chapter's checks *here*, in
the grading process: each learner definition a question needs is a stand-in
(:mod:`ganlib.grading.remote`) whose calls the worker executes, answering with plain data
(:mod:`ganlib.grading.wire`). The checks compare those outputs with the reference; this process
decides every status and every point. A cell or question that hangs, crashes or exhausts a limit
is named in the report and costs only the questions that depend on it; the rest are graded in a
fresh worker. A worker that sends anything malformed is a "protocol violation"
(:attr:`NotebookReport.misbehaved`), and each notebook has a wall-clock limit
(``notebook_timeout``, :data:`NOTEBOOK_TIMEOUT` seconds by default).

What the grader runs (trust model)
----------------------------------
The grader gives learners feedback; it is not a proctoring tool, and it *runs the code of
the notebook it grades*. It runs every **answer cell** (a code cell that defines a name a
question needs, or that still holds an exercise stub), whole and in notebook order, plus,
from the other cells, only the statements those answer cells depend on (imports, helper
definitions, helper values: found by static analysis of the names the answers use).
Experiments, plots and check cells are not run. The worker process has a time limit per
cell and per question, and resource limits (memory, CPU time, file size, processes). It only
executes: replacing grader functions, writing to the result channel or walking the stack to the
worker's own functions cannot change a verdict, because no verdict is made there. Nothing the
worker sends is unpickled. (The checks of chapter 07's checkpoint question look at the random
number generators and files of the process that runs the learner's code; those facts are
measured in the worker, see :func:`ganlib.grading.remote.beside`.)

For work you do not trust (an instructor grading submissions), pass ``sandbox=True``
(``ganlib grade --sandbox``, or ``GANLIB_GRADE_SANDBOX=1``): the worker then runs under
bubblewrap with no network, a read-only file system except a fresh working directory,
an empty home directory and its own PID namespace.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ganlib.grading import remote
from ganlib.grading.notebook import LoadPlan, chapter_of, plan_notebook, read_notebook
from ganlib.grading.questions import (ERROR, MISSING, NOT_ATTEMPTED, TIMEOUT, GradingError, Question, QuestionSpec,
                                      Result, SandboxUnavailable, _names, _timeout_message, one_line, question_specs,
                                      questions_for)
from ganlib.grading.report import NotebookReport
from ganlib.grading.sandbox import INSTALL_HINT, sandbox_problem
from ganlib.grading.worker import _STEP_STATUSES, _WORKER_ENV, SANDBOX_ENV, Limits, _Worker, _WorkerFailed

_GRACE = 3.0  # seconds the parent waits beyond a limit before it kills the worker
NOTEBOOK_TIMEOUT = 300.0  # seconds of wall-clock time per notebook, everything included
_IMPORTS = threading.Lock()  # the chapter's checks and torch are imported by one grading thread at a time


def _load_checks(chapter: str) -> dict[str, Question]:
    """The chapter's checks, imported under a lock: ``ganlib grade --jobs N`` grades in N threads, and two
    threads importing torch at once see a half-initialised module."""
    with _IMPORTS:
        try:
            import torch  # noqa: F401  (the stand-ins use torch whenever it is installed)
        except ImportError:
            pass
        return {q.key: q for q in questions_for(chapter)}


def _sandbox_default() -> bool:
    return os.environ.get(SANDBOX_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def grade_notebook(path: str | Path, seed: int | None = None, load_timeout: float = 10.0,
                   chapter: str | None = None, timeout: float | None = None, sandbox: bool | None = None,
                   limits: Limits | None = None, notebook_timeout: float | None = None) -> NotebookReport:
    """Grade one notebook: its code runs in a worker process, its answers are judged here.

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
    notebook_timeout : float, optional
        Wall-clock seconds for the whole notebook (default ``NOTEBOOK_TIMEOUT``, 300): when they
        run out, the worker is stopped and the questions not graded yet are "timed out".

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
            raise SandboxUnavailable(f"--sandbox: {problem}.\n{INSTALL_HINT}")
    path = Path(path)
    nb = read_notebook(path)
    chapter = chapter or chapter_of(nb, path)
    specs = question_specs(chapter)
    try:
        checks = _load_checks(chapter)   # the checks run here, in the trusted process
    except GradingError as exc:
        raise GradingError(f"{path}: {exc}") from None
    seed = int(np.random.SeedSequence().entropy % 2**32) if seed is None else int(seed)
    plan = plan_notebook(nb, specs)
    limits = limits or Limits()
    budget = float(NOTEBOOK_TIMEOUT if notebook_timeout is None else notebook_timeout)
    deadline = time.monotonic() + budget
    report = NotebookReport(str(path), chapter, [], list(plan.problems), seed, sandbox)
    timeouts = {q.key: float(q.timeout if timeout is None else timeout) for q in specs}
    steps = [{"label": s.label, "source": s.source, "keep": s.keep, "stub": s.stub, "binds": sorted(s.binds)}
             for s in plan.steps]
    step_outcome: dict[int, tuple[str, str]] = {}
    results: dict[str, Result] = {}
    defined: set[str] | None = None
    excluded: set[int] = set()
    spec_by_key = {q.key: q for q in specs}
    needed = sorted({n for q in specs for n in q.needs})
    workdir = tempfile.mkdtemp(prefix="ganlib-grade-")
    try:
        for _attempt in range(len(steps) + len(specs) + 2):
            todo = [q.key for q in specs if q.key not in results]
            if not todo:
                break
            if time.monotonic() >= deadline:
                _out_of_time(report, todo, spec_by_key, results, budget)
                break
            job = {"chapter": chapter, "seed": seed, "steps": steps, "skip_steps": sorted(excluded),
                   "questions": todo, "load_timeout": float(load_timeout), "timeouts": timeouts,
                   "limits": asdict(limits), "needed": needed}
            worker = None
            try:
                try:
                    worker = _Worker(job, sandbox, workdir, startup_timeout=120.0)
                except OSError as exc:
                    raise _StartupFailed(str(exc)) from None
                try:
                    worker.wait_ready(min(120.0, max(deadline - time.monotonic(), 0.01)))
                except GradingError as exc:  # the worker cannot grade this chapter here (a package is missing)
                    raise GradingError(f"{path}: {exc}") from None
                defined = _load(worker, job, step_outcome, len(steps), deadline, set(needed))
                failed = {n: plan.steps[i].label for i, (st, _) in step_outcome.items() if st != "ok"
                          for n in steps[i]["binds"]}
                for key in todo:
                    if not all(n in defined for n in spec_by_key[key].needs):
                        continue
                    results[key] = _judge(worker, checks[key], spec_by_key[key], seed, timeouts[key], deadline,
                                          failed, limits.memory_mb)
                worker.end()
                break
            except _WorkerFailed as failure:
                kind, what = failure.activity
                why = "deadline" if time.monotonic() >= deadline - 0.05 and failure.why == "timeout" else failure.why
                if why == "protocol":
                    report.misbehaved.append(_protocol_text(kind, what, plan))
                if kind == "startup" and why != "deadline":
                    why_text = worker.startup_error() if worker else str(failure)
                    raise GradingError(f"{path}: the grader could not start its worker: {why_text}") from None
                if why == "deadline":
                    if kind == "step":
                        step_outcome[what] = ("deadline", "")
                    _out_of_time(report, [k for k in todo if k not in results], spec_by_key, results, budget)
                    break
                if kind == "step":
                    excluded.add(what)
                    step_outcome[what] = (why, "")
                elif kind == "question":
                    results[what] = spec_by_key[what].result(*_question_failure(why, timeouts[what], limits))
                else:  # between activities: protocol break or death while loading names
                    for key in todo:
                        results.setdefault(key, spec_by_key[key].result(ERROR, _limit_text(why, limits)
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
        text = _step_text(label, status, message, load_timeout, limits, budget)
        step_msgs[label] = text
        if not plan.steps[i].questions:  # an answer cell's failure is reported in its question's row
            report.problems.append(text)
    for q in specs:
        broken = [step_msgs[c] for c in plan.answer_cells.get(q.key, []) if c in step_msgs]
        if broken and not (q.key in results and results[q.key].status == TIMEOUT and _NOTEBOOK_LIMIT in
                           results[q.key].feedback):
            status = TIMEOUT if "did not finish" in broken[0] or "time limit" in broken[0] else ERROR
            report.results.append(q.result(status, broken[0] + "."))
        elif q.key in results:
            report.results.append(results[q.key])
        else:
            report.results.append(_absent_result(q, defined or set(), plan, step_msgs))
    return report


_NOTEBOOK_LIMIT = "the notebook's time limit"


def _out_of_time(report: NotebookReport, keys: list[str], specs: dict[str, QuestionSpec], results: dict[str, Result],
                 budget: float) -> None:
    text = f"not graded: {_NOTEBOOK_LIMIT} ({budget:g} s) ran out before this question"
    for key in keys:
        results.setdefault(key, specs[key].result(TIMEOUT, text + "."))
    note = (f"grading stopped after {budget:g} s ({_NOTEBOOK_LIMIT}); the questions graded before are "
            "reported, the rest are timed out")
    if note not in report.problems:
        report.problems.append(note)


def _protocol_text(kind: str, what: object, plan: LoadPlan) -> str:
    where = {"step": lambda: f"while running {plan.steps[what].label}", "question": lambda: f"while grading {str(what).upper()}",
             "load": lambda: "while the notebook was loading", "startup": lambda: "while the worker started"}
    return ("protocol violation: the submission's code wrote something the grader did not ask for to the grader's "
            f"result channel {where.get(kind, lambda: 'at the end')()}; the grader ignored it and graded the rest "
            "in a fresh worker")


class _StartupFailed(Exception):
    pass


def _load(worker: _Worker, job: dict, step_outcome: dict[int, tuple[str, str]], n_steps: int, deadline: float,
          needed: set[str]) -> set[str]:
    """Follow the worker through the load steps; record their outcomes. Returns the needed names it defined."""
    skip = set(job["skip_steps"])

    def left(limit: float) -> float:
        return max(min(limit, deadline - time.monotonic()), 0.01)

    for i in range(n_steps):
        if i in skip:
            continue
        event = worker.expect("step", ("step", i), left(30.0))
        if event["i"] != i:
            worker.kill()
            raise _WorkerFailed(("step", i), "protocol")
        event = worker.next_event(("step", i), left(job["load_timeout"] + _GRACE))
        if event["e"] != "step_done" or event["i"] != i or not isinstance(event["status"], str) \
                or event["status"] not in _STEP_STATUSES or not isinstance(event["message"], str):
            worker.kill()
            raise _WorkerFailed(("step", i), "protocol")
        step_outcome.setdefault(i, (event["status"], one_line(event["message"])))
    loaded = worker.expect("loaded", ("load", None), left(30.0))
    names = loaded["defined"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not set(names) <= needed:
        worker.kill()
        raise _WorkerFailed(("load", None), "protocol")
    return set(names)


def _judge(worker: _Worker, check: Question, spec: QuestionSpec, seed: int, limit: float, deadline: float,
           failed: dict[str, str], memory_mb: float | None = None) -> Result:
    """Run ``check`` here on stand-ins for the learner's definitions; the worker only executes their code."""
    activity = ("question", spec.key)
    end = time.monotonic() + limit

    def left() -> float:
        return min(end, deadline) - time.monotonic()

    def request(message: dict) -> dict:
        worker.next_id += 1
        message["id"] = worker.next_id
        worker.send(message, activity, max(left(), 0) + _GRACE)
        reply = worker.next_event(activity, max(left(), 0) + _GRACE)
        if reply["e"] != "reply" or reply["id"] != worker.next_id or type(reply["id"]) is not int:
            worker.kill()
            raise _WorkerFailed(activity, "protocol")
        return reply

    session = remote.Session(request, left, memory_mb)
    question = Question(check.key, check.title, check.points, check.needs, check.test, limit)
    rng = np.random.default_rng([seed, zlib.crc32(spec.key.encode())])
    try:
        answers = session.answers(list(spec.needs))
        result = question.evaluate(*answers, rng=rng)
        if worker.proc.poll() is None:   # the worker forgets this question's results and handles
            request({"op": "release", "target": None, "limit": 30.0, "payload": ""})
    except remote.ProtocolBroken:
        worker.kill()
        raise _WorkerFailed(activity, "protocol") from None
    feedback = result.feedback
    m = re.search(r"NameError: name '(\w+)' is not defined", feedback)
    if m and m.group(1) in failed:
        feedback = f"`{m.group(1)}` is not defined because {failed[m.group(1)]} failed to load; " + feedback
    # the parent scores: points come from the chapter's own table
    return spec.result(result.status, feedback)


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


def _step_text(label: str, status: str, message: str, load_timeout: float, limits: Limits,
               budget: float = NOTEBOOK_TIMEOUT) -> str:
    if status == "deadline":
        return f"{label} was still running when {_NOTEBOOK_LIMIT} ({budget:g} s) ran out"
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
