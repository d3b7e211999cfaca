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
