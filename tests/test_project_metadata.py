"""Set-up facts stated in several places agree: supported Python versions, the CPU-only torch command."""

import re
import sys

import pytest

from conftest import ROOT


def _versions(lo: str, hi: str) -> list[str]:
    (a, b), (c, d) = (map(int, v.split(".")) for v in (lo, hi))
    assert a == c == 3
    return [f"3.{m}" for m in range(b, d)]


def test_python_versions_agree():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lo, hi = re.fullmatch(r">=(3\.\d+),<(3\.\d+)", project["requires-python"]).groups()
    supported = _versions(lo, hi)
    classifiers = [c.rsplit(" :: ", 1)[1] for c in project["classifiers"] if c.startswith("Programming Language :: Python :: 3.")]
    assert classifiers == supported

    env = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s*- python>=(3\.\d+),<(3\.\d+)", env, re.M).groups() == (lo, hi)

    readme = (ROOT / "README.md").read_text()
    stated = re.search(r"with Python ((?:3\.\d+, )*3\.\d+ or 3\.\d+) and `make`", readme).group(1)
    assert re.findall(r"3\.\d+", stated) == supported


def test_cpu_torch_command_and_check_are_exact():
    readme = (ROOT / "README.md").read_text()
    assert 'TORCH_ARGS="--index-url https://download.pytorch.org/whl/cpu"' in readme
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in readme
    assert '''python -c "import torch; print(torch.__version__, torch.cuda.is_available())"''' in readme
    assert "make setup" in readme and re.search(r"^setup:", (ROOT / "Makefile").read_text(), re.M)
