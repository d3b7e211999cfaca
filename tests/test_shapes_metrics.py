"""FID and precision/recall on the coloured shapes: the shapes classifier (trained once into a private
cache), the estimates beside the exact counts on real shapes and on a planted subset, and
``ganlib evaluate`` on shapes."""

import json
import math

import numpy as np
import pytest
import torch

from ganlib import classifier, shapes
from ganlib.images import scale_images
from ganlib.metrics import reverse_kl_uniform


@pytest.fixture(scope="module", autouse=True)
def trained(tmp_path_factory):
    """The real shapes-classifier configuration, trained once into a private cache every test here reads."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANLIB_CACHE", str(cache))
        net = shapes.shapes_classifier(device="cpu", verbose=False)
        yield net, cache


# ----------------------------------------------------------------------------- the classifier

def test_the_shapes_classifier_is_accurate_and_cached(trained):
    net, cache = trained
    cfg = shapes.SHAPES_CLASSIFIER_CONFIG
    assert net.info["config"] == cfg and not net.info["cached"]
    assert net.info["test_accuracy"] >= 0.99
    # measured again on shapes it never saw, by a path independent of the training loop's
    x, y = shapes.make_shapes(1200, seed=77)
    logits = net(torch.nn.functional.interpolate(scale_images(x), size=28, mode="bilinear", antialias=True))
    assert float((logits.argmax(1) == y).float().mean()) >= 0.99
    assert classifier.classifier_accuracy(net, scale_images(x), y) >= 0.99
    path = cache / "classifiers" / f"shapes-lenet-{classifier.config_hash(cfg)}.pt"
    assert path.is_file() and net.info["path"] == str(path)
    again = shapes.shapes_classifier(device="cpu")
    assert again.info["cached"] and again.info["test_accuracy"] == net.info["test_accuracy"]
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))
    # the MNIST classifier's configuration (and so its cached file) is untouched by the shapes one
    assert "channels" not in classifier.CLASSIFIER_CONFIG and classifier._in_channels(net) == 3
    with pytest.raises(ValueError, match="unknown classifier config"):
        shapes.shapes_classifier(config={"colour": 3})


def test_features_need_three_channels(trained):
    net, _ = trained
    assert classifier.extract_features(scale_images(shapes.make_shapes(5)[0]), net).shape == (5, 128)
    with pytest.raises(ValueError, match=r"should have shape \(N, 3, H, W\).*got shape \(5, 1, 32, 32\)"):
        classifier.extract_features(torch.zeros(5, 1, 32, 32) - 1, net)


# ----------------------------------------------------------------------------- the metrics

def frechet_by_eigenvalues(a, b):
    """FID from features, written independently: tr sqrt(S1 S2) as the sum of sqrt of the eigenvalues of S1 S2."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ev = np.linalg.eigvals(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(ev.real, 0, None))))


def test_real_shapes_against_real_shapes_and_a_planted_subset(trained):
    net, _ = trained
    n = 480
    real = shapes.shape_metrics(shapes.make_shapes(n, seed=1)[0], seed=0)
    planted = shapes.shape_metrics(shapes.make_shapes(n, seed=2, modes=[0, 5, 9, 13, 20])[0], seed=0)
    # exact: all 24 modes, then exactly the 5 planted ones, evenly (96 each), every image decoded
    assert (real["modes"], real["high_quality"], real["num_modes"]) == (24, 1.0, 24)
    assert real["counts"] == [20] * 24 and real["reverse_kl"] == pytest.approx(0.0, abs=1e-12)
    assert planted["modes"] == 5 and planted["high_quality"] == 1.0
    assert [c for c in planted["counts"] if c] == [96] * 5
    assert planted["reverse_kl"] == pytest.approx(math.log(24 / 5), rel=1e-12)
    # estimated: real vs real is near 0 (a finite-n bias only), the planted subset far from it
    assert real["fid"] < 0.05 * planted["fid"]
    assert real["precision"] > 0.9 and real["recall"] > 0.9
    # a subset is as sharp as the data but covers about 5/24 of it: precision stays, recall falls
    assert planted["precision"] > 0.9 and abs(planted["recall"] - 5 / 24) < 0.1
    # FID as an independent computation from the classifier's features gives
    ref = classifier.extract_features(scale_images(shapes.make_shapes(n, seed=0)[0]), net)
    fake = classifier.extract_features(scale_images(shapes.make_shapes(n, seed=2, modes=[0, 5, 9, 13, 20])[0]), net)
    assert planted["fid"] == pytest.approx(frechet_by_eigenvalues(ref, fake), rel=1e-6)


def test_bytes_and_floats_give_the_same_metrics_and_bad_input_is_refused(trained):
    x, _ = shapes.make_shapes(60, seed=3)
    a, b = shapes.shape_metrics(x, k=2), shapes.shape_metrics(scale_images(x).numpy(), k=2)
    assert a == b and a["k"] == 2
    with pytest.raises(ValueError, match="n >= 2 images and 1 <= k < n"):
        shapes.shape_metrics(x[:3], k=3)
    with pytest.raises(ValueError, match=r"expected colour images \(N, 3, H, H\)"):
        shapes.shape_metrics(torch.zeros(4, 1, 32, 32))


# ----------------------------------------------------------------------------- the command line

def test_train_on_shapes_then_evaluate_counts_the_modes_exactly(tmp_path, capsys):
    from ganlib.cli.evaluate import main as main_evaluate
    from ganlib.cli.train import SHAPES_IMAGES, main as main_train
    from ganlib.train import load_checkpoint

    out = tmp_path / "run"
    args = ["--model", "dcgan", "--data", "shapes", "--out", str(out), "--device", "cpu", "--batch-size", "16",
            "--width", "8", "--latent-dim", "8", "--steps", "2"]
    assert main_train(args) == 0
    assert f"dcgan on shapes ({SHAPES_IMAGES} images of (3, 32, 32))" in capsys.readouterr().out
    meta = load_checkpoint(out / "checkpoint.pt")["meta"]
    assert (meta["data"], meta["channels"], meta["image_size"]) == ("shapes", 3, 32)      # the colour defaults
    assert main_train([*args, "--steps", "3", "--resume"]) == 0                            # same data from the seed
    capsys.readouterr()
    # the checkpoint says it learned the shapes: evaluate decodes its samples and estimates FID on them
    assert main_evaluate(["--checkpoint", str(out / "checkpoint.pt"), "--n", "48", "--json", "--device", "cpu"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["dataset"] == "shapes" and r["n"] == 48 and r["num_modes"] == 24
    assert sum(r["counts"].values()) == round(48 * r["high_quality"]) and r["data"]["high_quality"] == 1.0
    assert r["fid"] > r["data"]["fid"] >= 0 and 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1
    assert main_evaluate(["--checkpoint", str(out / "checkpoint.pt"), "--n", "48", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "modes captured" in text and "FID" in text and "real shapes:" in text
    assert main_train([*args[:-2], "--channels", "1", "--out", str(tmp_path / "grey"), "--steps", "1"]) == 1
    assert "the shapes are in colour: use --channels 3" in capsys.readouterr().err


def test_evaluate_samples_of_a_planted_subset(tmp_path, capsys):
    from ganlib.cli.evaluate import main as main_evaluate

    x, y = shapes.make_shapes(230, seed=2, modes=[1, 8, 17])
    noise = np.random.default_rng(0).uniform(-1, 1, (20, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "s.npy", np.concatenate([scale_images(x).numpy(), noise]))
    assert main_evaluate(["--samples", str(tmp_path / "s.npy"), "--dataset", "shapes", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["n"] == 250 and r["modes"] == 3 and r["high_quality"] == 230 / 250
    assert {k: v for k, v in r["counts"].items() if v} == {"red circle": 77, "black square": 77, "red triangle": 76}
    assert math.isclose(r["reverse_kl"], reverse_kl_uniform([77, 77, 76] + [0] * 21))
    assert r["rejected"] == {"size": 20 / 250}
    # the same samples' estimates: 3 of 24 modes plus noise is far from the data, which is near 0
    assert r["data"]["modes"] == 24 and r["fid"] > 20 * r["data"]["fid"] and r["recall"] < 0.3
    assert main_evaluate(["--samples", str(tmp_path / "s.npy"), "--dataset", "shapes", "--json", "--no-floor"]) == 0
    assert "data" not in json.loads(capsys.readouterr().out)
    assert main_evaluate(["--samples", str(tmp_path / "s.npy"), "--dataset", "shapes", "--n", "10"]) == 0
    assert capsys.readouterr().out.startswith("10 of the 250 samples")
    np.save(tmp_path / "grey.npy", np.zeros((4, 1, 32, 32), np.float32))
    assert main_evaluate(["--samples", str(tmp_path / "grey.npy"), "--dataset", "shapes"]) == 1
    assert r"expected colour images (N, 3, H, H)" in capsys.readouterr().err
    np.save(tmp_path / "three.npy", scale_images(x[:3]).numpy())
    assert main_evaluate(["--samples", str(tmp_path / "three.npy"), "--dataset", "shapes", "--k", "3"]) == 1
    assert "--k below their number" in capsys.readouterr().err
