"""``ganlib grade``: grade exercise notebooks from the command line (chapter 00).

Exit codes: 0 every notebook has full marks; 1 some notebook has not; 2 nothing could be graded
(unreadable input, or --sandbox unavailable); 3 a submission misbehaved (it broke the grader's
protocol: its report says where), whatever the marks.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path


from ganlib.grading.judge import NOTEBOOK_TIMEOUT, _sandbox_default, grade_notebook
from ganlib.grading.questions import GradingError
from ganlib.grading.report import NotebookReport, _wrap, format_report, format_summary, report_width
from ganlib.grading.sandbox import INSTALL_HINT, TRUST_MODEL, sandbox_problem


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
1 otherwise, 2 when nothing could be graded (unreadable input, or --sandbox unavailable), 3 when a
submission misbehaved (wrote to the grader's result channel: a protocol violation, named in its
report; the other notebooks are graded as usual).

Each notebook has a wall-clock limit (--timeout, default 300 s); when it runs out, the notebook is
reported with the questions graded so far and the rest "timed out".
"""
HELP += "\n" + TRUST_MODEL


def main(argv: Sequence[str]) -> int:
    """``python -m ganlib grade``: exit 0 when every notebook has full marks, 1 otherwise, 2 on unusable input,
    3 when a submission misbehaved."""
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
    parser.add_argument("--timeout", type=float, default=NOTEBOOK_TIMEOUT, metavar="S",
                        help=f"wall-clock seconds per notebook (default {NOTEBOOK_TIMEOUT:g})")
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1),
                        help="notebooks graded at the same time (default: min(4, CPUs))")
    args = parser.parse_args(argv)

    sandbox = _sandbox_default() if args.sandbox is None else args.sandbox
    if sandbox:
        problem = sandbox_problem()
        if problem:
            print(f"--sandbox: {problem}.\n{INSTALL_HINT}", file=sys.stderr)
            return 2
    notebooks = collect_notebooks(args.paths)
    if not notebooks:
        print("no notebooks found in " + ", ".join(args.paths), file=sys.stderr)
        return 2

    def grade_one(nb: Path):
        try:
            return grade_notebook(nb, seed=args.seed, chapter=args.chapter, sandbox=sandbox,
                                  notebook_timeout=args.timeout)
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
            msg = msg[len(path) + 2:] if msg.startswith(f"{path}: ") else msg
            print("\n".join(_wrap(f"{path}: not graded: {msg}", report_width(), "", "    ")) + "\n")
        if len(notebooks) > 1:
            print(format_summary(reports, failures))
    if failures and not reports:
        return 2
    if any(r.misbehaved for r in reports):
        return 3
    full = all(math.isclose(r.score, r.total) and r.total > 0 for r in reports)
    return 0 if full and not failures else 1
