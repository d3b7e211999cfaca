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


def test_budget_rejects_smoke_above_full(monkeypatch):
    with pytest.raises(ValueError, match="smoke budget"):
        utils.budget(full=10, smoke=20)
    for on in ("0", "1"):  # equal budgets are allowed (a step count too small to shrink)
        monkeypatch.setenv("GANLIB_SMOKE", on)
        assert utils.budget(full=10, smoke=10) == 10


def test_seed_everything_repeats_python_numpy_and_torch():
    import torch

    def draw():
        rng = utils.seed_everything(123)
        return random.random(), np.random.rand(), rng.normal(), torch.rand(1).item()

    assert draw() == draw()
    utils.seed_everything(124)
    assert torch.rand(1).item() != draw()[3]


def test_seed_everything_torch_switch():
    import torch

    for seed in (123, 2**31 + 5):               # below 2**32 NumPy's global state is np.random.seed(seed)'s
        utils.seed_everything(seed)
        assert np.random.rand() == np.random.RandomState(seed).rand()
    rng = utils.seed_everything(2**40 + 7)  # above NumPy's legacy 2**32 limit: still accepted
    assert rng.normal() == np.random.default_rng(2**40 + 7).normal()
    assert np.random.rand() == np.random.RandomState((2**40 + 7) % 2**32).rand()
    torch.manual_seed(1)
    expected_untouched = torch.rand(1).item()
    torch.manual_seed(1)
    utils.seed_everything(99, torch=False)   # leaves torch's generator alone
    assert torch.rand(1).item() == expected_untouched
    torch.manual_seed(99)
    want = torch.rand(1).item()
    for flag in (True, None):                # None: seeds torch because it is already imported
        torch.manual_seed(1)
        utils.seed_everything(99, torch=flag)
        assert torch.rand(1).item() == want, flag


def test_seed_everything_does_not_import_torch():
    code = "import sys, ganlib.utils as u; u.seed_everything(3); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]


def test_seed_everything_validates():
    with pytest.raises(ValueError):
        utils.seed_everything(-1)
    with pytest.raises(ValueError):
        utils.seed_everything(1.5)


@pytest.mark.parametrize("cuda,mps,want", [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"),
                                          (False, False, "cpu"), (False, None, "cpu")])
def test_default_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, want):
    """The branch logic with mocked availability (``mps=None``: a torch build without ``torch.backends.mps``)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    if mps is None:
        monkeypatch.delattr(torch.backends, "mps")
    else:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    dev = utils.default_device()
    assert isinstance(dev, torch.device) and dev == torch.device(want)


def test_default_device_on_this_machine_is_usable():
    import torch

    dev = utils.default_device()
    want = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert dev.type == want
    assert torch.ones(2, device=dev).sum().item() == 2.0


def test_progress_is_quiet_in_smoke_mode_and_on_ci(monkeypatch, capsys):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("GANLIB_SMOKE", "1")
    assert list(utils.progress(range(5), desc="x")) == list(range(5))
    assert capsys.readouterr() == ("", "")
    monkeypatch.delenv("GANLIB_SMOKE")
    for on in ("true", "1"):
        monkeypatch.setenv("CI", on)
        assert list(utils.progress(range(5), desc="x")) == list(range(5))
        assert capsys.readouterr() == ("", "")


def test_progress_draws_a_bar_otherwise(monkeypatch, capsys):
    monkeypatch.delenv("GANLIB_SMOKE", raising=False)
    monkeypatch.setenv("CI", "false")
    assert list(utils.progress(range(5), desc="train")) == list(range(5))
    err = capsys.readouterr().err
    assert "train" in err and "5/5" in err
    # an explicit disable= wins over the environment, both ways
    list(utils.progress(range(5), desc="quiet", disable=True))
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("GANLIB_SMOKE", "1")
    list(utils.progress(range(3), desc="forced", disable=False))
    assert "3/3" in capsys.readouterr().err


def test_import_ganlib_is_light():
    code = "import sys, ganlib, ganlib.games, ganlib.grading; print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_a_silent_progress_bar_imports_no_tqdm():
    """Bars off (smoke mode, CI, or disable=True): the items pass through and tqdm is not even imported."""
    code = ("import os, sys, ganlib.utils as u\n"
            "os.environ['GANLIB_SMOKE'] = '1'; a = list(u.progress(range(3)))\n"
            "os.environ['GANLIB_SMOKE'] = '0'; os.environ['CI'] = 'true'; b = list(u.progress(range(3)))\n"
            "os.environ['CI'] = '0'; c = list(u.progress(range(3), disable=True))\n"
            "print(a == b == c == [0, 1, 2], any(m.startswith('tqdm') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"] and out.stderr == ""


def test_outside_a_kernel_the_bar_is_tqdms_text_bar():
    from tqdm.std import tqdm

    assert utils._bar_class() is tqdm and not utils._in_jupyter_kernel()


def _run_in_kernel(sources: list[str]) -> list[dict]:
    """Execute code cells in a real IPython kernel (this Python), with bars switched on; the cells' outputs."""
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    nb = nbformat.v4.new_notebook()
    setup = "import os\nos.environ.pop('GANLIB_SMOKE', None)\nos.environ.pop('CI', None)"
    nb.cells = [nbformat.v4.new_code_cell(s) for s in (setup, *sources)]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    return [out for cell in nb.cells[1:] for out in cell.outputs]


def test_in_a_kernel_without_ipywidgets_the_bar_is_plain_text_and_nothing_warns():
    block = "import sys\nsys.modules['ipywidgets'] = None  # as if ipywidgets were not installed"
    # first the reviewer's symptom, to show that this set-up reproduces it: tqdm.auto warns
    outs = _run_in_kernel([block, "from tqdm.auto import tqdm\nfor _ in tqdm(range(3)): pass"])
    assert "IProgress not found" in "".join(o.get("text", "") for o in outs)
    # ganlib's bar: the text bar on stderr, no warning, no widget
    outs = _run_in_kernel([block, "from ganlib.utils import progress\nprint(sum(progress(range(3), desc='steps')))"])
    text = "".join(o.get("text", "") for o in outs)
    assert "TqdmWarning" not in text and "IProgress" not in text and "Error" not in text, text
    assert "steps: 100%" in text and "3/3" in text and "3\n" in text
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outs)


def test_in_a_kernel_with_ipywidgets_the_bar_is_a_widget():
    pytest.importorskip("ipywidgets")
    outs = _run_in_kernel(["from ganlib.utils import progress\nprint(sum(progress(range(3), desc='steps')))"])
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outs), outs
    assert not [o for o in outs if o.get("name") == "stderr"], outs  # no text bar, no warning
