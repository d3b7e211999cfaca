"""The offline grader: check cells inside exercise notebooks, and ``python -m ganlib grade`` (chapter 00).

Two ways in:

- In a notebook, a check cell calls a question directly: ``check_q1(simultaneous_step)``
  prints a one-line verdict.
- :func:`grade_notebook` grades a saved notebook in a separate worker process.

The parts follow the data, from a notebook file to a report:

==============  ===============================================================================
``questions``   what a graded question is (:class:`Question`, :func:`question`), the verdicts,
                :class:`CheckFailed` and the helpers the chapters' checks (``ganlib.checks``) use
``notebook``    a notebook read into a :class:`LoadPlan`: the answer cells and what they depend on
``worker``      the process that runs the learner's code, its :class:`Limits` and its sandbox
``wire``        the plain-data format of everything the worker sends back (validated, size-capped)
``remote``      stand-ins for the learner's definitions: calls into the worker, results as data
``judge``       the trusted side: :func:`grade_notebook` runs the checks and decides every verdict
``report``      :class:`NotebookReport`, and its text tables (:func:`format_report`)
==============  ===============================================================================

Every name below is importable from ``ganlib.grading`` itself, as the checks and notebooks do.
What the grader runs, and what it protects you from, is explained in :mod:`ganlib.grading.judge`.
"""

from ganlib.grading.questions import (CHAPTER_ID, ERROR, FAILED, FEEDBACK_LIMIT, MISSING, NOT_ATTEMPTED, PASSED,
                                      STATUSES, TIMEOUT, CheckFailed, GradingError, Question, QuestionSpec, Result,
                                      SandboxUnavailable, as_float_array, describe_exception, expect_close,
                                      expect_tuple, mismatch, one_line, question, question_specs, questions_for,
                                      random_sizes, summarize, to_numpy)
from ganlib.grading.notebook import (LoadPlan, Step, binds, chapter_of, extract_definitions, load_definitions,
                                     plan_notebook, read_notebook, uses)
from ganlib.grading.sandbox import TRUST_MODEL, sandbox_problem
from ganlib.grading.worker import SANDBOX_ENV, Limits
from ganlib.grading.worker import _Worker, _worker_main  # noqa: F401  (the worker's entry point; tests wrap _Worker)
from ganlib.grading.report import NotebookReport, format_report, format_summary
from ganlib.grading.remote import beside
from ganlib.grading.judge import NOTEBOOK_TIMEOUT, grade_notebook

__all__ = [
    # questions and verdicts (what ganlib.checks is written with)
    "Question", "question", "QuestionSpec", "Result", "CheckFailed", "GradingError", "SandboxUnavailable",
    "PASSED", "FAILED", "NOT_ATTEMPTED", "ERROR", "TIMEOUT", "MISSING", "STATUSES", "FEEDBACK_LIMIT", "CHAPTER_ID",
    "to_numpy", "as_float_array", "expect_close", "mismatch", "expect_tuple", "random_sizes", "summarize",
    "one_line", "describe_exception", "questions_for", "question_specs", "beside",
    # a notebook read into a plan
    "read_notebook", "chapter_of", "binds", "uses", "Step", "LoadPlan", "plan_notebook", "extract_definitions",
    "load_definitions",
    # the worker and its sandbox
    "Limits", "SANDBOX_ENV", "sandbox_problem", "TRUST_MODEL",
    # judging and reporting
    "grade_notebook", "NOTEBOOK_TIMEOUT", "NotebookReport", "format_report", "format_summary",
]
