import random
import subprocess
import sys

import numpy as np
import pytest

from ganlib import utils


def test_budget_follows_smoke_switch(monkeypatch):
    monkeypatch.delenv("GANLIB_SMOKE", raising=False)
    assert utils.budget(full=5000, smoke=200) == 5000
    for on in ("1", "true", "YES", " on "):
        monkeypatch.setenv("GANLIB_SMOKE", on)
        assert utils.budget(full=5000, smoke=200) == 200
    monkeypatch.setenv("GANLIB_SMOKE", "0")
    assert utils.budget(full=5000, smoke=200) == 5000


def test_budget_rejects_smoke_above_full():
    with pytest.raises(ValueError, match="smoke budget"):
        utils.budget(full=10, smoke=20)


def test_seed_everything_repeats_python_numpy_and_torch():
    import torch

    def draw():
        rng = utils.seed_everything(123)
        return random.random(), np.random.rand(), rng.normal(), torch.rand(1).item()

    assert draw() == draw()
    utils.seed_everything(124)
    assert torch.rand(1).item() != draw()[3]


def test_seed_everything_validates():
    with pytest.raises(ValueError):
        utils.seed_everything(-1)
    with pytest.raises(ValueError):
        utils.seed_everything(1.5)


def test_default_device_is_usable():
    import torch

    dev = utils.default_device()
    assert dev.type in {"cuda", "mps", "cpu"}
    assert dev.type == ("cuda" if torch.cuda.is_available() else dev.type)
    torch.ones(2, device=dev).sum().item()


def test_progress_is_quiet_in_smoke_mode(monkeypatch, capsys):
    monkeypatch.setenv("GANLIB_SMOKE", "1")
    assert list(utils.progress(range(5), desc="x")) == list(range(5))
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_import_ganlib_is_light():
    code = "import sys, ganlib, ganlib.games, ganlib.grading; print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
