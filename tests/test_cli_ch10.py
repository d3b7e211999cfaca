"""Chapter 10's command-line options: each trains a few steps, lands in the checkpoint, and samples."""

import os

import numpy as np
import pytest

from ganlib.cli.sample import main as main_sample
from ganlib.cli.train import main as main_train
from ganlib.train import CHECKPOINT, load_checkpoint

FAST = ["--model", "dcgan", "--device", "cpu", "--batch-size", "16", "--width", "4", "--latent-dim", "8",
        "--steps", "2", "--checkpoint-every", "2", "--sample-every", "2"]


def train(tmp_path, name, *extra, data="synthetic"):
    out = tmp_path / name
    assert main_train(["--data", data, "--out", str(out), *FAST, *extra]) == 0
    return out, load_checkpoint(out / CHECKPOINT)


def test_wgan_gp_sets_the_papers_defaults(tmp_path):
    out, ck = train(tmp_path, "wgan", "--loss", "wgan-gp")
    c = ck["config"]
    assert (c["loss"], c["penalty"], c["n_critic"], c["lr_g"], c["lr_d"]) == ("wasserstein", "gp", 5, 1e-4, 1e-4)
    assert tuple(c["betas"]) == (0.0, 0.9) and ck["meta"]["norm"] == "layer"
    assert any(".weight" in k for k in ck["models"]["D"]) and not any("running_mean" in k for k in ck["models"]["D"])
    # explicit settings win over the defaults
    _, ck = train(tmp_path, "wgan2", "--loss", "wgan-gp", "--n-critic", "2", "--norm", "none", "--lr-d", "3e-4")
    assert (ck["config"]["n_critic"], ck["config"]["lr_d"], ck["meta"]["norm"]) == (2, 3e-4, "none")


def test_hinge_with_spectral_norm_and_ttur(tmp_path):
    _, ck = train(tmp_path, "sn", "--loss", "hinge", "--spectral-norm", "--lr-d", "4e-4", "--lr-g", "1e-4")
    assert ck["meta"]["spectral_norm"] is True and ck["config"]["loss"] == "hinge"
    assert (ck["config"]["lr_d"], ck["config"]["lr_g"]) == (4e-4, 1e-4)
    keys = ck["models"]["D"]
    assert any("parametrizations.weight.original" in k for k in keys) and not any("running_mean" in k for k in keys)


def test_ns_alias_and_conditional_with_ema_then_sample_by_label(tmp_path):
    out, ck = train(tmp_path, "cond", "--loss", "ns", "--conditional", "--ema", "0.9", "--spectral-norm")
    assert ck["config"]["loss"] == "nonsaturating" and ck["config"]["num_classes"] == 10
    assert ck["meta"]["num_classes"] == 10 and "head.embed.parametrizations.weight.original" in ck["models"]["D"]
    path = str(out / CHECKPOINT)
    for label in (3, 5):
        assert main_sample(["--checkpoint", path, "--n", "6", "--label", str(label), "--ema",
                            "--out", str(tmp_path / f"l{label}.npy")]) == 0
    a, b = np.load(tmp_path / "l3.npy"), np.load(tmp_path / "l5.npy")
    assert a.shape == (6, 1, 28, 28) and not np.array_equal(a, b)  # same noise, another class
    from PIL import Image

    assert main_sample(["--checkpoint", path, "--n", "20", "--out", str(tmp_path / "g.png")]) == 0
    assert Image.open(tmp_path / "g.png").size == (4 * (2 * 30 + 2), 4 * (10 * 30 + 2))  # one row per class, 4x
    # resuming keeps the run conditional without repeating the flags
    assert main_train(["--out", str(out), "--steps", "3", "--resume"]) == 0
    assert load_checkpoint(out / CHECKPOINT)["meta"]["num_classes"] == 10


def test_label_errors(tmp_path, capsys):
    out, _ = train(tmp_path, "plain")
    assert main_sample(["--checkpoint", str(out / CHECKPOINT), "--label", "3", "--out", str(tmp_path / "x.png")]) == 1
    assert "needs a conditional model" in capsys.readouterr().err
    out, _ = train(tmp_path, "cond", "--conditional")
    assert main_sample(["--checkpoint", str(out / CHECKPOINT), "--label", "10", "--out", str(tmp_path / "x.png")]) == 1
    assert "0..9" in capsys.readouterr().err
    assert main_sample(["--checkpoint", str(out / CHECKPOINT), "--label", "-1", "--out", str(tmp_path / "x.png")]) == 2


@pytest.mark.parametrize("args,msg", [
    (["--model", "mlp", "--data", "synthetic", "--conditional"], "options of --model dcgan"),
    (["--model", "mlp", "--data", "synthetic", "--spectral-norm"], "options of --model dcgan"),
    (["--model", "dcgan", "--data", "folder", "--path", ".", "--conditional"], "labelled images"),
    (["--model", "dcgan", "--data", "synthetic", "--loss", "wgan"], "invalid choice"),
    (["--model", "dcgan", "--data", "synthetic", "--norm", "group"], "invalid choice"),
])
def test_bad_combinations_are_usage_errors(args, msg, tmp_path, capsys):
    assert main_train([*args, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err


@pytest.mark.skipif(not os.environ.get("GANLIB_DATA"), reason="GANLIB_DATA is not set: no MNIST files to train on "
                    "(point it at the folder of the four MNIST .gz files)")
def test_conditional_projection_on_mnist(tmp_path):
    out, ck = train(tmp_path, "mnist", "--loss", "hinge", "--spectral-norm", "--conditional", "--ema", "0.999",
                    data="mnist")
    assert ck["meta"]["data"] == "mnist" and ck["config"]["num_classes"] == 10 and ck["step"] == 2
    assert main_sample(["--checkpoint", str(out / CHECKPOINT), "--n", "4", "--label", "7",
                        "--out", str(tmp_path / "s.npy")]) == 0
