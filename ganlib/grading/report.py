"""Grading results as text or JSON: one table per notebook, one row per notebook for a folder (chapter 00)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


from ganlib.grading.questions import Result, one_line

@dataclass
class NotebookReport:
    """All results for one notebook."""

    path: str
    chapter: str
    results: list[Result]
    problems: list[str] = field(default_factory=list)
    seed: int = 0
    sandboxed: bool = False
    misbehaved: list[str] = field(default_factory=list)  # protocol violations: the submission wrote to the grader's channel

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
            "misbehaved": self.misbehaved,
            "questions": [asdict(r) for r in self.results],
        }


# --------------------------------------------------------------------------- reporting

DEFAULT_WIDTH = 80   # characters per line when the output is not a terminal (a notebook, a file)
_MIN_WIDTH, _MAX_WIDTH = 60, 110


def report_width() -> int:
    """Line width for reports: ``$COLUMNS`` or the terminal's width, else 80, kept within [60, 110].

    Inside a notebook (``!python -m ganlib grade ...`` or a captured subprocess) this is 80, which
    fits JupyterLab's output area, so no line wraps there.
    """
    import shutil

    columns = shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    return max(_MIN_WIDTH, min(_MAX_WIDTH, columns or DEFAULT_WIDTH))


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken between words only."""
    import textwrap

    return textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest, break_long_words=False,
                         break_on_hyphens=False) or [first.rstrip()]


def format_report(report: NotebookReport, width: int | None = None) -> str:
    """A per-question table for one notebook, at most ``width`` characters per line.

    One row per question (question, points, status, task); the feedback follows on its own
    lines, indented. Long texts are wrapped between words, so the table keeps its shape in a
    terminal or a notebook instead of wrapping mid-word.

    Examples
    --------
    >>> from ganlib.grading.questions import Result
    >>> r = NotebookReport("ex.ipynb", "01", [Result("q1", "a step", 0, 2, "failed", "x_new = 1, expected 2")])
    >>> print(format_report(r, width=60))
    ex.ipynb  (chapter 01)
      question  points  status  task
      --------  ------  ------  ------
      Q1        0/2     failed  a step
          x_new = 1, expected 2
      total: 0/2
    """
    width = report_width() if width is None else max(40, int(width))
    rows = [(r.key.upper(), f"{r.points:g}/{r.max_points:g}", r.status, r.title, one_line(r.feedback))
            for r in report.results]
    head = ("question", "points", "status", "task")
    widths = [max(len(str(x)) for x in col) for col in zip(head, *[row[:3] for row in rows])]
    indent = 2 + sum(w + 2 for w in widths)
    task_width = max(20, width - indent)
    widths.append(min(task_width, max([len(head[3])] + [len(row[3]) for row in rows])))
    out = _wrap(f"{report.path}  (chapter {report.chapter}{', sandboxed' if report.sandboxed else ''})",
                width, "", "    ")
    for problem in report.misbehaved:
        out += _wrap(problem, width, "  WARNING: ", "           ")
    for problem in report.problems:
        out += _wrap(problem, width, "  note: ", "        ")
    fmt = "  " + "  ".join(f"{{:<{w}}}" for w in widths[:3]) + "  "
    out.append((fmt.format(*head[:3]) + head[3]).rstrip())
    out.append("  " + "  ".join("-" * w for w in widths))
    for key, points, status, title, feedback in rows:
        task = _wrap(title, task_width, "", "")
        out.append((fmt.format(key, points, status) + task[0]).rstrip())
        out += [" " * indent + line for line in task[1:]]
        if feedback:
            out += _wrap(feedback, width, "      ", "      ")
    out += _wrap(f"total: {report.score:g}/{report.total:g}", width, "  ", "  ")
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
        rows.append([r.path, r.chapter, *[pts.get(k, "-") for k in keys],
                     f"{r.score:g}/{r.total:g}" + (" (protocol violation)" if r.misbehaved else "")])
    for path, msg in failures.items():
        rows.append([path, "?", *["-" for _ in keys], f"not graded: {one_line(msg, 100)}"])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head).rstrip(), "  ".join("-" * w for w in widths)] + [fmt.format(*row).rstrip() for row in rows])
