"""``ganlib exercises``: regenerate ``exercises/`` from ``solutions/``, or check that they agree (chapter 00)."""

from __future__ import annotations

import json

from ganlib.authoring import MarkerError, sync


def main(argv: list[str]) -> int:
    """``python -m ganlib exercises [--check]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ganlib exercises",
                                     description="Generate exercise notebooks from solution notebooks.")
    parser.add_argument("--check", action="store_true", help="fail if exercises/ is out of date; write nothing")
    parser.add_argument("--solutions", default="solutions")
    parser.add_argument("--exercises", default="exercises")
    args = parser.parse_args(argv)
    try:
        stale = sync(args.solutions, args.exercises, check=args.check)
    except (MarkerError, FileNotFoundError, json.JSONDecodeError) as exc:
        print(f"error: {exc}")
        return 2
    if args.check:
        if stale:
            for p in stale:
                print(f"out of date: {p}")
            print("Run `python -m ganlib exercises` (or `make exercises`) and commit the result.")
            return 1
        print(f"exercises/ is in sync with {args.solutions}/")
        return 0
    for p in stale:
        print(f"wrote {p}")
    print(f"{len(stale)} exercise notebook(s) updated" if stale else "exercises/ already up to date")
    return 0
