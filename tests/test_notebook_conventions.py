"""Notebook conventions: nbval is steered by cell tags, never by comment markers the learner would read."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "course").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))
MARKERS = ("NBVAL_CHECK_OUTPUT", "NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP", "NBVAL_RAISES_EXCEPTION")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[f"{p.parent.name}/{p.stem}" for p in NOTEBOOKS])
def test_nbval_markers_are_tags_not_comments(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        src = "".join(cell["source"])
        assert not any(m in src for m in MARKERS), f"{path.name} cell {i}: use the cell tag, not a comment marker"
        tags = cell.get("metadata", {}).get("tags", [])
        assert not {"nbval-check-output", "nbval-ignore-output"} <= set(tags), f"{path.name} cell {i}: both tags"


def test_lessons_compare_some_outputs():
    for path in sorted((ROOT / "course").glob("0[1-9]_*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        assert any("nbval-check-output" in c.get("metadata", {}).get("tags", []) for c in nb["cells"]), path.name


def _nb(cells):
    return {"cells": [{"cell_type": "code", "execution_count": 1, "id": f"c{i}", "metadata": {"tags": tags},
                       "outputs": [{"name": "stdout", "output_type": "stream", "text": stored}], "source": src}
                      for i, (src, stored, tags) in enumerate(cells)],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def test_installed_nbval_honours_the_tags(tmp_path):
    pytest.importorskip("nbval")
    # lax mode: only the tagged cell is compared, so its wrong stored output must fail the run
    (tmp_path / "lax_checked.ipynb").write_text(json.dumps(_nb([
        ("print(1)", "2\n", []),                                   # untagged: not compared in lax mode
        ("print(3)", "4\n", ["nbval-check-output"]),               # tagged: compared -> fails
    ])))
    # strict mode: an ignore-tagged cell with a different stored output must pass
    (tmp_path / "strict_ignored.ipynb").write_text(json.dumps(_nb([
        ("print(5)", "5\n", []),
        ("print(6)", "budget-dependent\n", ["nbval-ignore-output"]),
    ])))
    run = lambda mode, name: subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", mode, "--nbval-current-env", str(tmp_path / name)],
        cwd=tmp_path, capture_output=True, text=True)
    lax = run("--nbval-lax", "lax_checked.ipynb")
    assert lax.returncode == 1 and "1 failed, 1 passed" in lax.stdout, lax.stdout
    strict = run("--nbval", "strict_ignored.ipynb")
    assert strict.returncode == 0 and "2 passed" in strict.stdout, strict.stdout
