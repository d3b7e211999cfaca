"""``python -m ganlib COMMAND``: dispatches to the command's module in :mod:`ganlib.cli` (chapter 00).

The commands: ``ganlib grade``, ``ganlib exercises``, ``ganlib train``, ``ganlib sample`` and ``ganlib evaluate``.
"""

from __future__ import annotations

import sys

USAGE = """usage: python -m ganlib COMMAND [options]   (or: ganlib COMMAND ...)

commands:
  grade PATH...         grade exercise notebooks (files or folders); --json for machines,
                        --sandbox for untrusted submissions (it runs their code)
  exercises [--check]   regenerate exercises/ from solutions/ (--check: fail when out of date)
  train ...             train a GAN on images (MNIST, a folder, synthetic); --help for the options
  sample ...            draw samples or an image grid from a checkpoint; --help for the options
  evaluate ...          FID, precision/recall, classifier score of generated digits; --help for the options
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "grade":
        from ganlib.cli.grade import main as grade

        return grade(rest)
    if command == "exercises":
        from ganlib.cli.exercises import main as exercises

        return exercises(rest)
    if command == "train":
        from ganlib.cli.train import main as train

        return train(rest)
    if command == "sample":
        from ganlib.cli.sample import main as sample

        return sample(rest)
    if command == "evaluate":
        from ganlib.cli.evaluate import main as evaluate

        return evaluate(rest)
    print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
