"""Check speed: the CPU seconds each graded question takes on the worked solution's answers.

Loads every solution notebook's answers as the grader does, then evaluates each question of the
chapter for several seeds in this process and prints, per question, the CPU seconds of its first
evaluation (which pays one-off costs: torch's lazy imports, its first autograd call) and the
largest over the later ones. CPU time of this process, so another job on the machine changes
the figures less than wall-clock time would; still, run it on an idle machine.

    python benchmarks/check_questions.py                  # every chapter with questions, 3 seeds
    python benchmarks/check_questions.py 09 10 --seeds 5

Target (issue: tests never assert timings): after the first evaluation, every question under 1 s
of CPU (chapters 07 and 10: 2 s), so that the check cells answer at once and a notebook grades in
seconds. The unit tests pin what keeps them there (calls per answer and numbers per call,
``tests/conftest.py::assert_questions_fast``), not the seconds.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = {"07": 2.0, "10": 2.0}  # other chapters: 1 s


def solution_answers(chapter: str) -> dict:
    """The definitions of chapter ``chapter``'s solution notebook, loaded as the grader loads a submission."""
    from ganlib import grading

    path = next((ROOT / "solutions").glob(f"{chapter}_*.ipynb"))
    namespace, errors = grading.load_definitions(grading.extract_definitions(json.loads(path.read_text())).cells)
    if errors:
        sys.exit(f"{path.name} does not load: {errors}")
    return namespace


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="chapters to time, e.g. 03 09 (default: all with questions)")
    parser.add_argument("--seeds", type=int, default=3, help="evaluations per question (default 3)")
    args = parser.parse_args()
    chapters = args.chapters or sorted(p.stem[2:] for p in (ROOT / "ganlib" / "checks").glob("ch*.py"))

    print(f"{'chapter':8}{'question':10}{'first (s)':>11}{'later, max (s)':>16}{'target (s)':>12}")
    slow = []
    for chapter in chapters:
        answers = solution_answers(chapter)
        for q in importlib.import_module(f"ganlib.checks.ch{chapter}").QUESTIONS:
            seconds = []
            for seed in range(args.seeds):
                start = time.process_time()
                result = q.evaluate(*[answers[n] for n in q.needs], rng=np.random.default_rng(seed))
                seconds.append(time.process_time() - start)
                if not result.passed:
                    sys.exit(f"chapter {chapter} {q.key}, seed {seed}: the solution fails: {result.feedback}")
            later = max(seconds[1:], default=seconds[0])
            target = TARGET_S.get(chapter, 1.0)
            slow += [f"{chapter} {q.key}"] if later > target else []
            print(f"{chapter:8}{q.key:10}{seconds[0]:11.2f}{later:16.2f}{target:12.0f}")
    print("over target: " + (", ".join(slow) if slow else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
