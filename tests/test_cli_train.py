"""The ``ganlib train`` and ``ganlib sample`` commands: train, resume, sample, and bad input as one-line errors."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ganlib.cli.sample import main as main_sample
from ganlib.cli.train import main as main_train
from ganlib.train import CHECKPOINT, HISTORY, History, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--device", "cpu", "--batch-size", "16", "--width", "8"]


def run(args, env=None, timeout=120, **kw):
    """``python -m ganlib ARGS`` in a fresh process (the installed entry point's code path)."""
    e = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "ganlib", *args], capture_output=True, text=True, env=e,
                          timeout=timeout, cwd=ROOT, **kw)


def one_error_line(err: str, command: str) -> str:
    """The message of a failed command: no traceback, one ``ganlib CMD: error:`` line."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith(f"ganlib {command}: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.skipif(not os.environ.get("GANLIB_DATA"), reason="GANLIB_DATA is not set: no MNIST files to train on "
                    "(point it at the folder of the four MNIST .gz files)")
def test_mnist_mlp_trains_resumes_and_samples_png_and_npy(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["--model", "mlp", "--data", "mnist", "--out", str(out), *FAST, "--checkpoint-every", "2",
            "--sample-every", "2"]
    assert main_train([*base, "--steps", "3"]) == 0
    assert load_checkpoint(out / CHECKPOINT)["step"] == 3
    assert main_train(["--out", str(out), "--steps", "5", "--resume"]) == 0  # the rest from the checkpoint
    ck = load_checkpoint(out / CHECKPOINT)
    assert ck["step"] == 5 and ck["meta"]["model"] == "mlp" and ck["config"]["batch_size"] == 16
    assert History.from_jsonl(out / HISTORY)["step"].tolist() == [1, 2, 3, 4, 5]
    assert sorted(p.name for p in (out / "samples").iterdir()) == [f"step_00000{i}.png" for i in (2, 3, 4, 5)]
    assert main_sample(["--checkpoint", str(out / CHECKPOINT), "--n", "10", "--out", str(tmp_path / "s.npy")]) == 0
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (10, 1, 28, 28) and x.dtype == np.float32 and x.min() >= -1 and x.max() <= 1
    assert main_sample(["--checkpoint", str(out / CHECKPOINT), "--n", "12", "--nrow", "4",
                        "--out", str(tmp_path / "g.png")]) == 0
    from PIL import Image

    assert Image.open(tmp_path / "g.png").size == (4 * (4 * 30 + 2), 4 * (3 * 30 + 2))  # 28 px digits shown 4x
    # the same seed gives the same samples; the grid shows the array's first images
    assert main_sample(["--checkpoint", str(out / CHECKPOINT), "--n", "10", "--out", str(tmp_path / "t.npy")]) == 0
    assert np.array_equal(x, np.load(tmp_path / "t.npy"))
    assert "resuming at step 3" in capsys.readouterr().out


def png_folder(folder: Path, n=24, size=20):
    from PIL import Image

    from ganlib.data import synthetic_images, unscale_images

    folder.mkdir()
    x = unscale_images(synthetic_images(n, size=size, channels=3, seed=1)[0]).permute(0, 2, 3, 1).numpy()
    for i, img in enumerate(x):
        Image.fromarray(img).save(folder / f"img_{i:03d}.png")
    return folder


def test_dcgan_on_a_folder_of_pngs_trains_resumes_and_samples(tmp_path):
    folder = png_folder(tmp_path / "pics")
    out = tmp_path / "run"
    base = ["--model", "dcgan", "--data", "folder", "--path", str(folder), "--image-size", "32", "--out", str(out),
            *FAST, "--batch-size", "8"]
    assert main_train([*base, "--steps", "2"]) == 0
    assert main_train([*base, "--steps", "4", "--resume"]) == 0
    ck = load_checkpoint(out / CHECKPOINT)
    assert ck["step"] == 4 and ck["meta"]["channels"] == 3 and ck["meta"]["image_size"] == 32
    assert main_sample(["--checkpoint", str(out / CHECKPOINT), "--n", "5", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (5, 3, 32, 32)
    assert main_sample(["--checkpoint", str(out / CHECKPOINT), "--out", str(tmp_path / "g.png")]) == 0


def test_epochs_and_minutes_budgets(tmp_path):
    out = tmp_path / "run"
    # 2048 synthetic images in batches of 16: half an epoch is 64 steps
    assert main_train(["--model", "mlp", "--data", "synthetic", "--out", str(out), *FAST, "--epochs", "0.5"]) == 0
    assert load_checkpoint(out / CHECKPOINT)["step"] == 64
    assert main_train(["--model", "mlp", "--data", "synthetic", "--out", str(tmp_path / "m"), *FAST,
                       "--minutes", "0.001"]) == 0
    assert 1 <= load_checkpoint(tmp_path / "m" / CHECKPOINT)["step"] < 64


def test_a_second_fresh_run_needs_resume_or_overwrite(tmp_path, capsys):
    """Every refusal comes before the command announces "new run" or "resuming": validate first, then announce."""
    args = ["--model", "mlp", "--data", "synthetic", "--out", str(tmp_path), *FAST, "--steps", "1"]
    assert main_train(args) == 0
    assert "new run" in capsys.readouterr().out
    assert main_train(args) == 1
    out, err = capsys.readouterr()
    assert "already holds a checkpoint" in one_error_line(err, "train") and "--resume" in err
    assert out == "" and "new run" not in err
    assert main_train([*args, "--overwrite"]) == 0
    assert "new run" in capsys.readouterr().out
    assert main_train(["--out", str(tmp_path), "--steps", "2", "--resume", "--loss", "hinge"]) == 1
    out, err = capsys.readouterr()
    assert "config loss: checkpoint 'nonsaturating', now 'hinge'" in err and out == "" and "resuming" not in err
    assert main_train(["--out", str(tmp_path), "--steps", "2", "--resume", "--width", "16"]) == 1
    out, err = capsys.readouterr()
    assert "has shape" in err and out == "" and "resuming" not in err
    assert load_checkpoint(tmp_path / CHECKPOINT)["step"] == 1  # nothing was trained or written
    assert main_train(["--out", str(tmp_path), "--steps", "2", "--resume"]) == 0
    assert "resuming at step 1" in capsys.readouterr().out


def test_resuming_on_other_data_is_refused_before_it_is_announced(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["--model", "dcgan", "--data", "folder", "--image-size", "32", "--out", str(out), *FAST, "--batch-size", "8"]
    assert main_train([*base, "--path", str(png_folder(tmp_path / "a", n=24)), "--steps", "1"]) == 0
    capsys.readouterr()
    assert main_train([*base, "--path", str(png_folder(tmp_path / "b", n=30)), "--steps", "2", "--resume"]) == 1
    text, err = capsys.readouterr()
    assert "num_samples=24, this one has 30" in one_error_line(err, "train")
    assert "resuming at step" not in text + err  # the announcement (the tmp path holds the test name)


def test_status_lines_go_to_stdout_and_errors_to_stderr(tmp_path):
    """A notebook shows stdout as ordinary output; stderr (errors only) in red."""
    out = tmp_path / "run"
    r = run(["train", "--model", "mlp", "--data", "synthetic", "--out", str(out), *FAST, "--steps", "2"],
            env={"GANLIB_SMOKE": "1"})
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert [ln.split(":")[0] for ln in r.stdout.splitlines()] == ["ganlib train"] * 2
    assert "new run" in r.stdout and "done at step 2" in r.stdout
    r = run(["sample", "--checkpoint", str(out / CHECKPOINT), "--out", str(tmp_path / "g.png")])
    assert r.returncode == 0 and r.stderr == "" and "-> " in r.stdout and "(968 x 968 px" in r.stdout
    r = run(["train", "--model", "mlp", "--data", "synthetic", "--out", str(out), *FAST, "--steps", "2"])
    assert r.returncode == 1 and r.stdout == "" and "already holds a checkpoint" in r.stderr


def test_sample_grid_is_enlarged_nearest_neighbour(tmp_path, capsys):
    """The default grid shows 28 px digits 4x, each pixel a 4 x 4 block of the 1x grid of the same samples."""
    from PIL import Image

    from ganlib.plot import image_grid

    out = tmp_path / "run"
    assert main_train(["--model", "mlp", "--data", "synthetic", "--out", str(out), *FAST, "--steps", "1"]) == 0
    ck = str(out / CHECKPOINT)
    assert main_sample(["--checkpoint", ck, "--n", "6", "--out", str(tmp_path / "s.npy")]) == 0
    assert main_sample(["--checkpoint", ck, "--n", "6", "--out", str(tmp_path / "big.png")]) == 0
    assert main_sample(["--checkpoint", ck, "--n", "6", "--out", str(tmp_path / "one.png"), "--scale", "1"]) == 0
    small = np.asarray(Image.open(tmp_path / "one.png"))
    big = np.asarray(Image.open(tmp_path / "big.png"))
    assert np.array_equal(small, image_grid(np.load(tmp_path / "s.npy")))  # 3 x 2 tiles of 28 px, 2 px padding
    assert small.shape == (2 * 30 + 2, 3 * 30 + 2) and big.shape == (4 * small.shape[0], 4 * small.shape[1])
    assert np.array_equal(big, small.repeat(4, axis=0).repeat(4, axis=1))  # no blur, no new grey levels
    assert "(368 x 248 px, each pixel shown as 4 x 4)" in capsys.readouterr().out
    assert main_sample(["--checkpoint", ck, "--out", str(tmp_path / "s.npy"), "--scale", "2"]) == 2
    assert "--scale enlarges a .png grid" in one_error_line(capsys.readouterr().err, "sample")


@pytest.mark.parametrize("command", ["sample", "train --resume"])
def test_damaged_checkpoints_say_what_they_are_and_what_to_do(command, tmp_path, capsys):
    """A garbage file is "not a ganlib checkpoint", a cut one "truncated"; never torch's weights_only advice."""
    out = tmp_path / "run"
    assert main_train(["--model", "mlp", "--data", "synthetic", "--out", str(out), *FAST, "--steps", "1"]) == 0
    good = (out / CHECKPOINT).read_bytes()

    def attempt(data: bytes) -> str:
        (out / CHECKPOINT).write_bytes(data)
        capsys.readouterr()
        if command == "sample":
            assert main_sample(["--checkpoint", str(out / CHECKPOINT), "--out", str(tmp_path / "g.png")]) == 1
        else:
            assert main_train(["--out", str(out), "--steps", "2", "--resume"]) == 1
        text, err = capsys.readouterr()
        line = one_error_line(err, command.split()[0])
        assert text == "" and "weights_only" not in err and "arbitrary code" not in err and "Errno" not in err
        return line

    rng = np.random.default_rng(0)
    for junk in (rng.bytes(5000), b"hello\n" * 10, __import__("pickle").dumps({"step": 1})):
        line = attempt(junk)
        assert "is not a ganlib checkpoint" in line and "Pass the checkpoint.pt of a run folder" in line
    for cut in (len(good) // 2, len(good) - 22, 200, 10):  # cuts that made torch say "negative seek" or "Errno 22"
        line = attempt(good[:cut])
        assert f"is truncated ({cut:,} bytes" in line and "opy it again" in line and "--overwrite" in line
    assert "is empty (0 bytes)" in attempt(b"")


@pytest.mark.parametrize("args, msg", [
    (["--model", "gan", "--data", "mnist", "--out", "x"], "invalid choice: 'gan'"),
    (["--model", "mlp", "--data", "mnist", "--out", "x", "--steps", "3", "--minutes", "1"], "not allowed with"),
    (["--model", "mlp", "--data", "mnist", "--out", "x", "--steps", "0"], "expected a positive integer, got '0'"),
    (["--model", "mlp", "--data", "mnist", "--out", "x", "--minutes", "abc"], "expected a positive number"),
    (["--model", "mlp", "--data", "folder", "--out", "x"], "--data folder needs --path"),
    (["--model", "mlp", "--out", "x"], "--model (or --recipe) and --data are required"),
    (["--recipe", "dcgan", "--data", "mnist", "--out", "x"],
     "unknown recipe 'dcgan': choose one of dcgan-guidelines, mlp-gan, sn-hinge"),
    (["--recipe", "mlp-gan", "--model", "dcgan", "--data", "mnist", "--out", "x"], "trains --model mlp, not"),
    (["--model", "mlp", "--data", "mnist", "--out", "x", "--betas", "1", "0.9"], "a beta is a number in [0, 1)"),
    (["--model", "mlp", "--data", "mnist", "--out", "x", "--betas", "0.5"], "expected 2 arguments"),
    (["--model", "dcgan", "--data", "synthetic", "--out", "x", "--image-size", "30"], "invalid choice: 30"),
    (["--model", "mlp", "--data", "mnist"], "the following arguments are required: --out"),
    (["--model", "mlp", "--data", "mnist", "--out", "x", "--device", "gpu"], "expected auto, cpu, cuda, cuda:N or mps"),
])
def test_bad_arguments_give_a_usage_line_and_one_error_line(args, msg, capsys):
    assert main_train(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ganlib train") and len(err.strip().splitlines()) == 2, err
    assert msg in one_error_line(err, "train")


@pytest.mark.parametrize("args, code, msg", [
    (["--model", "mlp", "--data", "mnist", "--out", "{tmp}/r", "--channels", "3", "--device", "cpu"], 1,
     "MNIST digits are grey"),
    (["--out", "{tmp}/none", "--resume"], 1, "there is no checkpoint in"),
    (["--model", "mlp", "--data", "folder", "--path", "{tmp}/missing", "--out", "{tmp}/r", "--device", "cpu"], 1,
     "does not exist"),
])
def test_runtime_problems_are_one_line_errors(args, code, msg, tmp_path, capsys):
    assert main_train([a.replace("{tmp}", str(tmp_path)) for a in args]) == code
    assert msg in one_error_line(capsys.readouterr().err, "train")


def test_an_empty_folder_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main_train(["--model", "dcgan", "--data", "folder", "--path", str(tmp_path / "empty"), "--out",
                       str(tmp_path / "r"), "--device", "cpu"]) == 1
    assert "no images" in one_error_line(capsys.readouterr().err, "train")


def test_a_corrupt_image_is_named(tmp_path, capsys):
    folder = png_folder(tmp_path / "pics", n=3)
    (folder / "img_001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert main_train(["--model", "dcgan", "--data", "folder", "--path", str(folder), "--image-size", "32",
                       "--out", str(tmp_path / "r"), *FAST]) == 1
    assert "img_001.png" in one_error_line(capsys.readouterr().err, "train")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda(tmp_path, capsys):
    assert main_train(["--model", "mlp", "--data", "synthetic", "--out", str(tmp_path), "--device", "cuda"]) == 1
    assert "no CUDA GPU" in one_error_line(capsys.readouterr().err, "train")
    assert not (tmp_path / CHECKPOINT).exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_fallback_warning_is_one_line_naming_the_command(tmp_path, capsys):
    import warnings

    shown_before = warnings.showwarning
    args = ["--model", "mlp", "--data", "synthetic", "--out", str(tmp_path), "--steps", "2", "--cuda-graphs"]
    assert main_train(args) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line.lower()]
    assert err == ["ganlib train: warning: cuda_graphs: CUDA graphs need a CUDA device and this run is on cpu; "
                   "training without CUDA graphs"], err
    assert warnings.showwarning is shown_before  # the caller's warning display is back


def test_sample_bad_input(tmp_path, capsys):
    assert main_sample(["--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "g.png")]) == 1
    assert "no checkpoint at" in one_error_line(capsys.readouterr().err, "sample")
    assert main_sample(["--checkpoint", "c.pt", "--out", "g.jpg"]) == 2
    assert "must end in .png" in one_error_line(capsys.readouterr().err, "sample")
    assert main_sample(["--checkpoint", "c.pt", "--out", "g.png", "--n", "-3"]) == 2
    capsys.readouterr()
    assert main_train(["--model", "mlp", "--data", "synthetic", "--out", str(tmp_path / "r"), *FAST,
                       "--steps", "1"]) == 0
    assert main_sample(["--checkpoint", str(tmp_path / "r" / CHECKPOINT), "--out", str(tmp_path / "g.png"),
                        "--ema"]) == 1
    assert "trained without --ema" in one_error_line(capsys.readouterr().err, "sample")
    from ganlib.models import discriminator, generator
    from ganlib.train import TrainConfig, train_gan

    train_gan(generator(2, 2), discriminator(2), lambda n: torch.randn(n, 2),
              TrainConfig(steps=1, device="cpu", out=tmp_path / "py"))
    assert main_sample(["--checkpoint", str(tmp_path / "py" / CHECKPOINT), "--out", str(tmp_path / "h.png")]) == 1
    assert "your own models" in one_error_line(capsys.readouterr().err, "sample")


# --------------------------------------------------------------------------- through the real entry point


def test_help_shows_examples_through_python_m_ganlib():
    r = run(["train", "--help"])
    assert r.returncode == 0 and "examples:" in r.stdout and "ganlib train --model mlp --data mnist" in r.stdout


def test_sample_help(capsys):
    assert main_sample(["--help"]) == 0
    assert "samples.npy" in capsys.readouterr().out


def test_offline_without_mnist_files_fails_fast_with_the_data_message(tmp_path):
    env = {"GANLIB_DATA": str(tmp_path / "nothing"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "GANLIB_MNIST_MIRRORS": "http://127.0.0.1:9/"}  # the discard port: nothing listens, nothing downloads
    r = run(["train", "--model", "mlp", "--data", "mnist", "--out", str(tmp_path / "r"), "--device", "cpu"], env=env)
    assert r.returncode == 1
    line = one_error_line(r.stderr, "train")
    assert "MNIST is not available" in line
    assert "train-images-idx3-ubyte.gz" in r.stderr and "f68b3c2dcbeaaa9fbdd348bbdeb94873" in r.stderr
    # fast because it gives up at once: three refused connections for the first file, no other file tried
    attempts = [line.split(": ")[0].strip() for line in r.stderr.splitlines() if "(attempt" in line]
    assert attempts == ["http://127.0.0.1:9/train-images-idx3-ubyte.gz"] * 3, r.stderr
    assert not (tmp_path / "r" / CHECKPOINT).exists()


def test_ctrl_c_saves_a_checkpoint_that_resumes(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--model", "mlp", "--data", "synthetic", "--out", str(out), *FAST, "--steps", "100000",
            "--checkpoint-every", "1000"]
    proc = subprocess.Popen([sys.executable, "-m", "ganlib", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", "GANLIB_SMOKE": "1"})
    try:
        deadline = time.time() + 90
        while not (out / HISTORY).exists() and time.time() < deadline:  # the run has started training
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "checkpoint saved" in err
    ck = load_checkpoint(out / CHECKPOINT)
    assert 1 <= ck["step"] < 100000
    assert len(History.from_jsonl(out / HISTORY)) == ck["step"]
    assert main_train(["--out", str(out), "--steps", str(ck["step"] + 2), "--resume"]) == 0
    assert load_checkpoint(out / CHECKPOINT)["step"] == ck["step"] + 2


def test_speed_options_and_ema_through_the_command_line(tmp_path):
    out = tmp_path / "run"
    assert main_train(["--model", "dcgan", "--data", "synthetic", "--image-size", "32", "--out", str(out), *FAST,
                       "--steps", "2", "--amp", "--channels-last", "--ema", "0.9"]) == 0
    ck = load_checkpoint(out / CHECKPOINT)
    assert ck["config"]["amp"] == "bf16" and ck["config"]["channels_last"] and ck["config"]["ema"] == 0.9
    assert ck["models"]["G_ema"] is not None
    for ema in ([], ["--ema"]):
        assert main_sample(["--checkpoint", str(out / CHECKPOINT), "--n", "4", "--out",
                            str(tmp_path / f"s{len(ema)}.npy"), *ema]) == 0
    a, b = np.load(tmp_path / "s0.npy"), np.load(tmp_path / "s1.npy")
    assert a.shape == b.shape == (4, 1, 32, 32) and not np.array_equal(a, b)  # the EMA generator differs
    # resuming may switch the speed options off: they do not change what is trained
    assert main_train(["--out", str(out), "--steps", "3", "--resume"]) == 0
    assert load_checkpoint(out / CHECKPOINT)["step"] == 3


# ---------------------------------------------------------------------------------- defaults and recipes

SMALL = ["--device", "cpu", "--data", "synthetic", "--checkpoint-every", "1", "--sample-every", "1"]


def test_dcgan_defaults_are_the_sn_hinge_recipe_and_mlp_defaults_are_unchanged(tmp_path):
    from ganlib import recipes

    assert main_train(["--model", "dcgan", "--out", str(tmp_path / "d"), *SMALL, "--steps", "1"]) == 0
    ck = load_checkpoint(tmp_path / "d" / CHECKPOINT)
    c, m, r = ck["config"], ck["meta"], recipes.get("sn-hinge")
    assert (c["loss"], c["lr_g"], c["lr_d"], tuple(c["betas"]), c["batch_size"]) == ("hinge", 1e-3, 1e-3, (0.0, 0.9), 64)
    assert (m["width"], m["latent_dim"], m["spectral_norm"], m["recipe"]) == (16, 64, True, "sn-hinge")
    assert (r.width, r.latent_dim, r.batch_size, r.lr_d, r.betas) == (16, 64, 64, 1e-3, (0.0, 0.9))
    keys = ck["models"]["D"]
    assert any("parametrizations" in k for k in keys) and not any("running_mean" in k for k in keys)
    assert main_train(["--model", "mlp", "--out", str(tmp_path / "m"), *SMALL, "--steps", "1"]) == 0
    ck = load_checkpoint(tmp_path / "m" / CHECKPOINT)
    c, m = ck["config"], ck["meta"]
    assert (c["loss"], c["lr_g"], tuple(c["betas"]), c["batch_size"]) == ("nonsaturating", 2e-4, (0.5, 0.999), 128)
    assert (m["width"], m["latent_dim"], m["recipe"]) == (256, 64, None)


def test_betas_reach_adam_and_resume_keeps_them(tmp_path):
    out = tmp_path / "b"
    assert main_train(["--model", "mlp", "--out", str(out), *SMALL, *FAST, "--steps", "1", "--betas", "0.25", "0.75"]) == 0
    ck = load_checkpoint(out / CHECKPOINT)
    assert tuple(ck["config"]["betas"]) == (0.25, 0.75)
    assert [g["betas"] for g in ck["optimizers"]["G"]["param_groups"]] == [(0.25, 0.75)]
    assert main_train(["--out", str(out), "--steps", "2", "--resume"]) == 0
    assert tuple(load_checkpoint(out / CHECKPOINT)["config"]["betas"]) == (0.25, 0.75)


def test_a_recipe_fills_defaults_explicit_flags_win_and_resume_keeps_it(tmp_path, capsys):
    from ganlib import recipes

    r = recipes.get("dcgan-guidelines")
    out = tmp_path / "g"
    argv = ["--recipe", "dcgan-guidelines", "--out", str(out), *SMALL, "--steps", "1", "--batch-size", "16",
            "--lr-g", "5e-4", "--betas", "0.5", "0.9"]
    assert main_train(argv) == 0
    ck = load_checkpoint(out / CHECKPOINT)
    c, m = ck["config"], ck["meta"]
    assert (c["batch_size"], c["lr_g"], tuple(c["betas"])) == (16, 5e-4, (0.5, 0.9))          # the flags
    assert (c["lr_d"], c["loss"], m["width"], m["latent_dim"]) == (r.lr_d, r.loss, r.width, r.latent_dim)  # the recipe
    assert (m["model"], m["spectral_norm"], m["recipe"]) == ("dcgan", False, "dcgan-guidelines")
    assert any("running_mean" in k for k in ck["models"]["D"])                                # a BatchNorm D
    assert main_train(["--out", str(out), "--steps", "2", "--resume"]) == 0
    ck2 = load_checkpoint(out / CHECKPOINT)
    assert ck2["step"] == 2 and ck2["meta"] == m and ck2["config"]["lr_g"] == 5e-4
    capsys.readouterr()
    assert main_train(["--out", str(out), "--steps", "3", "--resume", "--recipe", "sn-hinge"]) == 1
    assert "trained with recipe 'dcgan-guidelines', not 'sn-hinge'" in one_error_line(capsys.readouterr().err, "train")


def test_a_recipe_without_a_budget_trains_its_chapters_budget(tmp_path, monkeypatch):
    import ganlib.cli.train as cli_train
    from ganlib import recipes

    seen = []
    monkeypatch.setattr(cli_train, "train_gan", lambda G, D, batches, config, **kw: seen.append(config) or History())
    for name in recipes.names():
        r = recipes.get(name)
        assert main_train(["--recipe", name, "--out", str(tmp_path / name), *SMALL]) == 0
        assert (seen[-1].steps, seen[-1].minutes, seen[-1].epochs) == (r.steps, r.minutes, None)
    assert main_train(["--model", "dcgan", "--out", str(tmp_path / "plain"), *SMALL]) == 0  # no --recipe: 1000 steps
    assert (seen[-1].steps, seen[-1].minutes) == (1000, None)
