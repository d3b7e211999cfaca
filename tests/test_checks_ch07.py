"""Chapter 07 questions reject plausible wrong answers with the right feedback."""

import numpy as np
import pytest

from conftest import assert_questions_fast, assert_rejected
from ganlib import grading

NB = "07_mnist_mlp_gan.ipynb"

IDX_HEAD = "import struct\nimport numpy as np\ndef parse_idx(raw):\n"
IDX_OK = ("    (magic,) = struct.unpack('>i', raw[:4])\n"
          "    if magic not in (2051, 2049):\n        raise ValueError('magic')\n"
          "    ndim = 3 if magic == 2051 else 1\n    h = 4 + 4 * ndim\n"
          "    if len(raw) < h:\n        raise ValueError('short')\n"
          "    dims = struct.unpack('>' + 'i' * ndim, raw[4:h])\n")
SCALE = "import torch\ndef scale(x):\n    return x.unsqueeze(1).float() / 127.5 - 1\n"
UNSCALE = "def unscale(x):\n    return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)\n"
STEP = "import torch\nimport torch.nn.functional as F\ndef train_step(G, D, opt_G, opt_D, real, z_d, z_g):\n"
D_STEP = ("    fake = G(z_d).detach()\n    loss_d = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()\n"
          "    opt_D.zero_grad()\n    loss_d.backward()\n    opt_D.step()\n")
G_STEP = ("    loss_g = F.softplus(-D(G(z_g))).mean()\n    opt_G.zero_grad()\n    loss_g.backward()\n    opt_G.step()\n")
RET = "    return loss_d.item(), loss_g.item()\n"
SAVE_HEAD = "import os, random\nimport numpy as np\nimport torch\n"
SAVE = ("def save_state(path, G, D, opt_G, opt_D, step):\n"
        "    k, key, pos, hg, c = np.random.get_state()\n"
        "    torch.save({'step': step, 'G': G.state_dict(), 'D': D.state_dict(), 'oG': opt_G.state_dict(),\n"
        "                'oD': opt_D.state_dict(), 'py': random.getstate(), 'np': (k, torch.from_numpy(key.astype(np.int64)), pos, hg, c),\n"
        "                't': torch.get_rng_state()}, path)\n")
RESTORE = ("def restore_state(path, G, D, opt_G, opt_D):\n    s = torch.load(path)\n"
           "    G.load_state_dict(s['G']); D.load_state_dict(s['D'])\n")
RESTORE_OPT = "    opt_G.load_state_dict(s['oG']); opt_D.load_state_dict(s['oD'])\n"
RESTORE_PY = "    random.setstate(s['py'])\n"
RESTORE_NP = "    k, key, pos, hg, c = s['np']\n    np.random.set_state((k, key.numpy().astype(np.uint32), pos, hg, c))\n"
RESTORE_T = "    torch.set_rng_state(s['t'])\n"

WRONG = {
    "q1": ("parse_idx", IDX_HEAD + IDX_OK.replace("'>i'", "'<i'").replace("'>' +", "'<' +")
           + "    return np.frombuffer(raw, np.uint8, offset=h).reshape(dims)", "big-endian"),
    "q1b": ("parse_idx", IDX_HEAD + IDX_OK + "    return np.frombuffer(raw, np.uint8, offset=h).reshape(-1, *dims[1:])",
            "one image fewer"),
    "q1c": ("parse_idx", IDX_HEAD + "    magic, n = struct.unpack('>ii', raw[:8])\n"
            "    if magic not in (2051, 2049):\n        raise ValueError('magic')\n"
            "    if magic == 2049:\n        return np.frombuffer(raw, np.uint8, offset=8).reshape(n)\n"
            "    r, c = struct.unpack('>ii', raw[8:16])\n    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, r, c)",
            "cut inside its header"),
    "q1d": ("parse_idx", IDX_HEAD + "    ndim = raw[3]\n    h = 4 + 4 * ndim\n"
            "    dims = struct.unpack('>' + 'i' * ndim, raw[4:h])\n"
            "    return np.frombuffer(raw, np.uint8, offset=h).reshape(dims)", "check the magic number"),
    "q1e": ("parse_idx", IDX_HEAD + IDX_OK + "    return np.frombuffer(raw, np.uint8, offset=h).reshape(dims[0], *dims[1:][::-1])",
            "swapped"),
    "q1f": ("parse_idx", IDX_HEAD + "    (magic,) = struct.unpack('>i', raw[:4])\n"
            "    if magic not in (2051, 2049):\n        raise ValueError('magic')\n"
            "    dims = struct.unpack('>iii', raw[4:16])\n    return np.frombuffer(raw, np.uint8, offset=16).reshape(dims)",
            "ONE size"),
    "q1g": ("parse_idx", IDX_HEAD + IDX_OK + "    return np.frombuffer(raw, np.uint8, offset=h).reshape(dims).astype(np.int64)",
            "uint8"),
    # checks truncation only: reads the first N * rows * cols bytes and ignores what follows
    "q1h": ("parse_idx", IDX_HEAD + IDX_OK + "    n = int(np.prod(dims))\n    if len(raw) - h < n:\n"
            "        raise ValueError('short')\n    return np.frombuffer(raw, np.uint8, count=n, offset=h).reshape(dims)",
            "trailing bytes"),
    "q2": ("scale", "import torch\ndef scale(x):\n    return x.unsqueeze(1).float() / 255\n" + UNSCALE, "[0, 1]"),
    "q2b": ("scale", "import torch\ndef scale(x):\n    return x.unsqueeze(1).float() / 128 - 1\n" + UNSCALE, "127.5"),
    "q2c": ("scale", "import torch\ndef scale(x):\n    return x.float() / 127.5 - 1\n" + UNSCALE, "channel axis"),
    "q2d": ("scale", SCALE + "def unscale(x):\n    return ((x + 1) * 127.5).clamp(0, 255).to(torch.uint8)\n", "ROUND"),
    "q2e": ("scale", SCALE + "def unscale(x):\n    return ((x + 1) * 127.5).round().to(torch.uint8)\n", "clamp"),
    "q2f": ("scale", SCALE + "def unscale(x):\n    return ((x + 1) * 127.5).round().clamp(0, 255)\n", "uint8"),
    "q3": ("train_step", STEP + "    fake = G(z_d)\n    loss_d = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()\n"
           "    opt_D.zero_grad()\n    loss_d.backward()\n    opt_D.step()\n"
           "    loss_g = F.softplus(-D(G(z_g))).mean()\n    loss_g.backward()\n    opt_G.step()\n" + RET, "detach"),
    "q3b": ("train_step", STEP + D_STEP + G_STEP.replace("z_g", "z_d") + RET, "fresh noise z_g"),
    "q3c": ("train_step", STEP + G_STEP + D_STEP + RET, "D first"),
    "q3d": ("train_step", STEP + D_STEP + "    loss_g = -F.softplus(D(G(z_g))).mean()\n    opt_G.zero_grad()\n"
            "    loss_g.backward()\n    opt_G.step()\n" + RET, "saturating"),
    "q3e": ("train_step", STEP + D_STEP.replace("    opt_D.zero_grad()\n", "") + G_STEP + RET, "zero_grad"),
    "q3f": ("train_step", STEP + D_STEP + G_STEP.replace("opt_G.step()", "opt_G.step(); opt_D.step()") + RET,
            "differ from the trainer's"),
    # no detach in the D step, but G's gradients zeroed before its own backward pass: the parameters come
    # out right, the mistake shows only in G's gradients right after the D step
    "q3g": ("train_step", STEP + D_STEP.replace("G(z_d).detach()", "G(z_d)") + G_STEP + RET,
            "no gradient may reach G"),
    "q4": ("save_state", SAVE_HEAD + SAVE + RESTORE + RESTORE_PY + RESTORE_NP + RESTORE_T + "    return s['step']",
           "Adam's moment estimates"),
    "q4b": ("save_state", SAVE_HEAD + SAVE + RESTORE + RESTORE_OPT + RESTORE_NP + RESTORE_T + "    return s['step']",
            "Python's random"),
    "q4c": ("save_state", SAVE_HEAD + SAVE + RESTORE + RESTORE_OPT + RESTORE_PY + RESTORE_T + "    return s['step']",
            "NumPy's global generator"),
    "q4d": ("save_state", SAVE_HEAD + SAVE + RESTORE + RESTORE_OPT + RESTORE_PY + RESTORE_NP + "    return s['step']",
            "torch's generator"),
    "q4e": ("save_state", SAVE_HEAD + SAVE.replace("torch.from_numpy(key.astype(np.int64))", "key")
            + RESTORE.replace("s = torch.load(path)", "s = torch.load(path, weights_only=True)")
            + RESTORE_OPT + RESTORE_PY + RESTORE_NP.replace("key.numpy()", "key") + RESTORE_T + "    return s['step']",
            "weights_only"),
    "q4f": ("save_state", SAVE_HEAD + SAVE + RESTORE + RESTORE_OPT + RESTORE_PY + RESTORE_NP + RESTORE_T,
            "return the step"),
    # everything right, but torch.save writes straight into `path`: a crash leaves half a checkpoint
    "q4h": ("save_state", SAVE_HEAD + SAVE + RESTORE + RESTORE_OPT + RESTORE_PY + RESTORE_NP + RESTORE_T
            + "    return s['step']", "destroyed the previous checkpoint"),
    # serialised in memory first, then written over `path` in place
    "q4i": ("save_state", SAVE_HEAD + "import io\n" + SAVE.replace("torch.save(", "buf = io.BytesIO()\n    torch.save(")
            .replace("}, path)\n", "}, buf)\n    open(path, 'wb').write(buf.getvalue())\n") + RESTORE + RESTORE_OPT
            + RESTORE_PY + RESTORE_NP + RESTORE_T + "    return s['step']", "rewrote the checkpoint in place"),
    "q4g": ("save_state", SAVE_HEAD + SAVE.replace("path)\n", "str(path) + '.tmp')\n") + RESTORE.replace(
            "torch.load(path)", "torch.load(str(path) + '.tmp')") + RESTORE_OPT + RESTORE_PY + RESTORE_NP + RESTORE_T
            + "    return s['step']", "wrote no file"),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_plausible_wrong_answer_is_rejected_with_hint(case, make_notebook):
    name, source, hint = WRONG[case]
    assert_rejected(make_notebook, NB, "07", name, source, case[:2], hint, seed=3)


@pytest.mark.parametrize("seed", range(4))
def test_wrong_training_steps_are_caught_for_every_draw(seed):
    """The step check does not depend on lucky sizes: each mistake fails for several random draws."""
    from ganlib.checks import ch07

    for case in ("q3", "q3b", "q3c", "q3d", "q3e"):
        ns = {}
        exec(WRONG[case][1], ns)
        result = ch07.check_q3.evaluate(ns["train_step"], rng=np.random.default_rng(seed))
        assert result.status == grading.FAILED and WRONG[case][2] in result.feedback, (case, result.feedback)


def test_questions_are_fast():
    from ganlib.checks import ch07

    assert_questions_fast(NB, ch07.QUESTIONS, seeds=range(3))


ATOMIC_RESTORE = RESTORE + RESTORE_OPT + RESTORE_PY + RESTORE_NP + RESTORE_T + "    return s['step']\n"
RIGHT_SAVES = {  # atomic saves written differently: a named temporary file, an open file object
    "tempfile": SAVE_HEAD + "import tempfile\n" + SAVE.replace(
        "    torch.save(", "    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)))\n    os.close(fd)\n"
        "    torch.save(").replace("}, path)\n", "}, tmp)\n    os.replace(tmp, path)\n") + ATOMIC_RESTORE,
    "file object": SAVE_HEAD + SAVE.replace("    torch.save(", "    f = open(str(path) + '.part', 'wb')\n    torch.save(")
    .replace("}, path)\n", "}, f)\n    f.close()\n    os.replace(str(path) + '.part', path)\n") + ATOMIC_RESTORE,
}


@pytest.mark.parametrize("form", sorted(RIGHT_SAVES))
@pytest.mark.parametrize("seed", [0, 1])
def test_atomic_saves_written_differently_pass(form, seed):
    from ganlib.checks import ch07

    ns = {}
    exec(RIGHT_SAVES[form], ns)
    result = ch07.check_q4.evaluate(ns["save_state"], ns["restore_state"], rng=np.random.default_rng(seed))
    assert result.status == grading.PASSED, result.feedback


def test_the_interrupted_save_leaves_torch_save_as_it_was():
    import torch

    from ganlib.checks import ch07

    real = torch.save
    ns = {}
    exec(WRONG["q4h"][1], ns)
    assert ch07.check_q4.evaluate(ns["save_state"], ns["restore_state"], rng=np.random.default_rng(0)).status == grading.FAILED
    assert torch.save is real and torch.serialization.save is real


@pytest.mark.parametrize("seed", range(4))
def test_the_missing_detach_is_caught_for_every_draw(seed):
    from ganlib.checks import ch07

    ns = {}
    exec(WRONG["q3g"][1], ns)
    result = ch07.check_q3.evaluate(ns["train_step"], rng=np.random.default_rng(seed))
    assert result.status == grading.FAILED and "no gradient may reach G" in result.feedback, result.feedback


RIGHT_STEPS = {  # correct steps written differently: fakes made without a graph, every gradient zeroed first
    "no_grad fakes": STEP + D_STEP.replace("    fake = G(z_d).detach()\n", "    with torch.no_grad():\n        fake = G(z_d)\n")
    + G_STEP + RET,
    "zero both first": STEP + "    opt_G.zero_grad()\n    opt_D.zero_grad()\n" + D_STEP.replace("    opt_D.zero_grad()\n", "")
    + G_STEP.replace("    opt_G.zero_grad()\n", "") + RET,
}


@pytest.mark.parametrize("form", sorted(RIGHT_STEPS))
@pytest.mark.parametrize("seed", [0, 1])
def test_training_steps_written_differently_pass(form, seed):
    from ganlib.checks import ch07

    ns = {}
    exec(RIGHT_STEPS[form], ns)
    result = ch07.check_q3.evaluate(ns["train_step"], rng=np.random.default_rng(seed))
    assert result.status == grading.PASSED, result.feedback
