"""Batch grading speed: a folder of chapter-05 submissions, graded as an instructor would.

Copies the chapter 05 solution notebook ``--copies`` times (default 30) into a temporary
folder and runs ``python -m ganlib grade --json --jobs N`` on it, sandboxed (bubblewrap)
and not, checking that every copy gets full marks. Prints the wall-clock seconds of each
run and, unsandboxed, the CPU seconds of the grading processes (on a busy machine the CPU
seconds divided by the number of cores estimate the wall time on an idle one).

    python benchmarks/grade_batch.py                 # both modes, 30 copies
    python benchmarks/grade_batch.py --mode sandbox --copies 10 --jobs 2

Target: 30 submissions in under 60 s on 2 cores, sandboxed (the sandbox of ganlib/grading/sandbox.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "05_pytorch.ipynb"


def run(folder: Path, sandbox: bool, jobs: int) -> tuple[float, float, dict]:
    """Grade ``folder``; return wall seconds, CPU seconds of the children, and the parsed JSON."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "ganlib", "grade", "--json", "--seed", "0", "--jobs", str(jobs),
                          "--sandbox" if sandbox else "--no-sandbox", str(folder)],
                         capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode not in (0, 1):
        sys.exit(f"grading failed (exit {out.returncode}):\n{out.stderr}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu, json.loads(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=30, help="number of submissions (default 30)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="notebooks graded at once (default: CPUs)")
    parser.add_argument("--mode", choices=("both", "sandbox", "plain"), default="both")
    args = parser.parse_args()

    from ganlib import grading

    modes = {"both": [False, True], "sandbox": [True], "plain": [False]}[args.mode]
    if True in modes and grading.sandbox_problem():
        print(f"sandboxed run skipped: {grading.sandbox_problem()}")
        modes = [m for m in modes if not m]
    folder = Path(tempfile.mkdtemp(prefix="grade-batch-"))
    try:
        for i in range(args.copies):
            shutil.copy(SOLUTION, folder / f"student_{i:03d}_05_pytorch.ipynb")
        print(f"{args.copies} copies of {SOLUTION.name}, --jobs {args.jobs}, {os.cpu_count()} CPUs")
        for sandbox in modes:
            wall, cpu, data = run(folder, sandbox, args.jobs)
            full = sum(nb["score"] == nb["total"] for nb in data["notebooks"])
            assert full == args.copies and not data["not_graded"], data["not_graded"]
            label = "sandboxed  " if sandbox else "unsandboxed"
            # a sandboxed worker is reaped inside bubblewrap's PID namespace, so its CPU time does not reach us
            cpu_text = "CPU n/a" if sandbox else f"{cpu:6.1f} s CPU"
            print(f"{label}: {wall:6.1f} s wall, {cpu_text}, {wall / args.copies:.2f} s per notebook, "
                  f"{full}/{args.copies} full marks")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
