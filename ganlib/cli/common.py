"""What the commands share: argument types, and one way to turn failures into exit codes (chapter 07)."""

from __future__ import annotations

import math


class CLIError(Exception):
    """A problem to report as one ``ganlib CMD: error: ...`` message (exit code 1)."""


def positive(kind):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse_error(f"expected a positive {'integer' if kind is int else 'number'}, got {text!r}")
        if not (v > 0 and math.isfinite(v)):
            raise argparse_error(f"expected a positive {'integer' if kind is int else 'number'}, got {text!r}")
        return v

    parse.__name__ = kind.__name__
    return parse


def device_name(text: str) -> str:
    kind, _, index = text.partition(":")
    if kind not in ("auto", "cpu", "cuda", "mps") or (index and not (kind == "cuda" and index.isdigit())):
        raise argparse_error(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def nonnegative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse_error(f"expected a non-negative integer, got {text!r}")
    return v


def argparse_error(msg: str):
    import argparse

    return argparse.ArgumentTypeError(msg)


def run_cli(name: str, parser, body, argv) -> int:
    """Parse, run, and turn every expected failure into one ``ganlib NAME: error: ...`` message.

    Warnings raised while the command runs (a CUDA-graph or compile fallback, say) are printed as
    one ``ganlib NAME: warning: ...`` line on stderr, without the source line Python's default adds.
    """
    import sys
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"ganlib {name}: warning: {message}", file=sys.stderr)

    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed by argparse
        return int(e.code or 0)
    try:
        with warnings.catch_warnings():  # restores the caller's warning display afterwards
            warnings.showwarning = show
            return body(args, parser)
    except SystemExit as e:  # parser.error() inside body
        return int(e.code or 0)
    except KeyboardInterrupt as e:
        print(f"ganlib {name}: {e or 'interrupted'}", file=sys.stderr)
        return 130
    except (CLIError, ValueError, TypeError, RuntimeError, OSError, FloatingPointError) as e:
        # the message of ganlib.data's missing-MNIST error lists the files and md5s on further lines
        print(f"ganlib {name}: error: {e}", file=sys.stderr)
        return 1
