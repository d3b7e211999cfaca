"""The trusted side of grading: plan a notebook, drive its worker, decide every verdict (chapter 00).

:func:`grade_notebook` reads the notebook into a plan (:mod:`ganlib.grading.notebook`), runs it
in a worker process (:mod:`ganlib.grading.worker`), validates what the worker reports and
scores it: points come from the chapter's own table of questions, never from the worker. A
cell or question that hangs, crashes or exhausts a limit is named in the report and costs only
the questions that depend on it; the rest are graded in a fresh worker.

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

import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ganlib.grading.notebook import LoadPlan, chapter_of, plan_notebook, read_notebook
from ganlib.grading.questions import (ERROR, MISSING, NOT_ATTEMPTED, STATUSES, TIMEOUT, GradingError, QuestionSpec,
                                      Result, SandboxUnavailable, _names, _timeout_message, one_line, question_specs)
from ganlib.grading.report import NotebookReport
from ganlib.grading.worker import (_INSTALL_HINT, _STEP_STATUSES, _WORKER_ENV, SANDBOX_ENV, Limits, _Worker,
                                   _WorkerFailed, sandbox_problem)

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
                try:
                    worker.wait_ready()
                except GradingError as exc:  # the worker cannot grade this chapter here (a package is missing)
                    raise GradingError(f"{path}: {exc}") from None
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
