"""Precision/recall, nearest neighbours, classifier score, class coverage and the image checks,
against brute-force references and closed forms."""

import json
import math
import os
import warnings

import numpy as np
import pytest
import torch

from ganlib import classifier, metrics


# --------------------------------------------------------------------------- brute-force references


def brute_distances(a, b):
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def brute_precision_recall(real, fake, k):
    """Kynkaanniemi et al. (2019), Eq. (1)-(2), written out with the full distance matrices."""
    d_rr, d_ff, d_fr = brute_distances(real, real), brute_distances(fake, fake), brute_distances(fake, real)
    r_real = np.sort(d_rr, axis=1)[:, k]  # column 0 is the point itself
    r_fake = np.sort(d_ff, axis=1)[:, k]
    precision = np.mean([(d_fr[j] <= r_real).any() for j in range(len(fake))])
    recall = np.mean([(d_fr[:, i] <= r_fake).any() for i in range(len(real))])
    return precision, recall


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("seed", range(3))
def test_precision_recall_matches_brute_force(k, seed):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(150, 5))
    fake = rng.normal(0.4, 1.3, size=(120, 5))
    want = brute_precision_recall(real, fake, k)
    got = metrics.precision_recall(real, fake, k=k)
    assert got == pytest.approx(want, abs=1e-12)
    # chunking (a few rows at a time) does not change the answer
    assert metrics.precision_recall(real, fake, k=k, max_elements=500) == got


def test_precision_recall_accepts_torch_and_identical_sets():
    x = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
    assert metrics.precision_recall(x, x) == (1.0, 1.0)


def test_shifted_and_shrunk_gaussians_show_the_trade_off():
    """Shift lowers both; a shrunk fake distribution keeps precision but loses recall; a wide one the reverse."""
    rng = np.random.default_rng(0)
    d, n = 8, 2000
    real = rng.normal(size=(n, d))
    same = metrics.precision_recall(real, rng.normal(size=(n, d)))
    assert same.precision > 0.85 and same.recall > 0.85  # k-NN balls miss a little of the tails, even here
    shifts = [metrics.precision_recall(real, rng.normal(size=(n, d)) + s / np.sqrt(d)) for s in (1.0, 2.0, 4.0)]
    assert all(a.precision > b.precision and a.recall > b.recall for a, b in zip(shifts, shifts[1:]))
    assert shifts[-1].precision < 0.3 and shifts[-1].recall < 0.4
    shrunk = metrics.precision_recall(real, 0.5 * rng.normal(size=(n, d)))
    assert shrunk.precision > 0.99 and shrunk.recall < 0.5
    wide = metrics.precision_recall(real, 2.0 * rng.normal(size=(n, d)))
    assert wide.precision < 0.5 and wide.recall > 0.99


def test_nearest_neighbours_match_brute_force_in_chunks():
    rng = np.random.default_rng(1)
    q, r = rng.normal(size=(37, 4)), rng.normal(size=(53, 4))
    d_bf = brute_distances(q, r)
    want_i = np.argsort(d_bf, axis=1)[:, :3]
    for max_elements in (2**22, 100, 1):  # 1: one query row at a time
        d, i = metrics.nearest_neighbours(q, r, k=3, max_elements=max_elements)
        assert np.array_equal(i, want_i)
        assert np.allclose(d, np.take_along_axis(d_bf, want_i, 1), atol=1e-10)


def test_exclude_self_skips_the_point_itself():
    x = np.random.default_rng(2).normal(size=(40, 3))
    d, i = metrics.nearest_neighbours(x, None, k=2, exclude_self=True, max_elements=64)
    assert not np.any(i == np.arange(40)[:, None])
    full = np.sort(brute_distances(x, x), axis=1)
    assert np.allclose(d, full[:, 1:3], atol=1e-10)
    assert np.allclose(metrics.knn_radii(x, k=2), full[:, 2], atol=1e-10)
    d0, i0 = metrics.nearest_neighbours(x, x, k=1)
    assert np.array_equal(i0[:, 0], np.arange(40)) and np.allclose(d0, 0, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(queries=np.zeros((3, 2)), references=np.zeros((4, 3)), k=1), "features"),
    (dict(queries=np.zeros((3, 2)), references=np.zeros((4, 2)), k=5), "k must be between 1 and 4"),
    (dict(queries=np.zeros((3, 2)), references=np.zeros((3, 2)), k=3, exclude_self=True), "between 1 and 2"),
    (dict(queries=np.zeros((3, 2)), references=None, k=1), "references is None"),
    (dict(queries=np.zeros(3), references=np.zeros((4, 2)), k=1), "2-D"),
    (dict(queries=np.full((3, 2), np.nan), references=np.zeros((4, 2)), k=1), "NaN"),
])
def test_nearest_neighbours_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        metrics.nearest_neighbours(**kwargs)


# --------------------------------------------------------------------------- classifier score


def test_classifier_score_bounds_and_closed_forms():
    C = 10
    assert metrics.classifier_score(np.eye(C)) == pytest.approx(C, rel=1e-12)
    assert metrics.classifier_score(np.tile(np.eye(C), (3, 1))) == pytest.approx(C, rel=1e-12)
    assert metrics.classifier_score(np.full((7, C), 1 / C)) == pytest.approx(1.0, rel=1e-12)
    # confident predictions spread equally over m of the C classes: exactly m
    for m in (1, 2, 5):
        assert metrics.classifier_score(np.eye(C)[np.arange(40) % m]) == pytest.approx(m, rel=1e-12)
    # label smoothing: rows (1 - e) onehot + e / C, balanced classes, p(y) uniform:
    # KL = (1 - e + e/C) log(C (1 - e + e/C)) + (C - 1) (e/C) log(e)
    for e in (0.05, 0.3, 0.9):
        probs = (1 - e) * np.eye(C) + e / C
        top = 1 - e + e / C
        want = math.exp(top * math.log(C * top) + (C - 1) * (e / C) * math.log(e))
        assert metrics.classifier_score(probs) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_classifier_score_matches_direct_formula_and_bounds(seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, size=(300, 10))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    py = p.mean(0)
    want = np.exp(np.mean(np.sum(p * (np.log(p) - np.log(py)), axis=1)))
    got = metrics.classifier_score(p)
    assert got == pytest.approx(want, rel=1e-12)
    assert 1.0 <= got <= 10.0


def test_classifier_score_rejects_logits():
    with pytest.raises(ValueError, match="softmax"):
        metrics.classifier_score(np.random.default_rng(0).normal(size=(5, 10)))


# --------------------------------------------------------------------------- class coverage


def test_class_coverage_histogram_and_thresholds():
    labels = np.array([0] * 500 + [1] * 480 + [2] * 15 + [3] * 5)
    cov = metrics.class_coverage(labels)
    assert cov.counts.tolist() == [500, 480, 15, 5, 0, 0, 0, 0, 0, 0]
    assert np.allclose(cov.fractions, cov.counts / 1000)
    assert cov.covered == 3  # class 3 has 0.5% < 1%
    assert metrics.class_coverage(labels, min_fraction=0.005).covered == 4
    assert metrics.class_coverage(labels, min_fraction=0.1).covered == 2
    f = cov.fractions[cov.fractions > 0]
    assert cov.effective == pytest.approx(np.exp(-(f * np.log(f)).sum()), rel=1e-12)
    assert metrics.class_coverage(np.arange(1000) % 10).effective == pytest.approx(10.0, rel=1e-12)
    assert metrics.class_coverage(np.full(50, 7)) .effective == pytest.approx(1.0)
    assert metrics.class_coverage(np.full(50, 7)).covered == 1


def test_class_coverage_from_probabilities_and_other_class_counts():
    probs = np.eye(4)[[0, 0, 3, 1]] * 0.7 + 0.075
    cov = metrics.class_coverage(probs, num_classes=4)
    assert cov.counts.tolist() == [2, 1, 0, 1]
    assert metrics.class_coverage(torch.tensor([1, 1, 2]), num_classes=3).counts.tolist() == [0, 2, 1]


@pytest.mark.parametrize("arg, kwargs, message", [
    (np.array([0, 10]), {}, "0..9"),
    (np.array([-1, 2]), {}, "0..9"),
    (np.array([0.5, 1.0]), {}, "integers"),
    (np.zeros((3, 4)), {}, "10 columns"),
    (np.zeros((2, 2, 2)), {}, "shape"),
    (np.zeros(0, dtype=int), {}, "no samples"),
])
def test_class_coverage_bad_input(arg, kwargs, message):
    with pytest.raises(ValueError, match=message):
        metrics.class_coverage(arg, **kwargs)


# --------------------------------------------------------------------------- images, features, generators


def digits(n=4, size=28, seed=0):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("x, message", [
    (np.zeros((4, 3, 28, 28)), r"\(N, 1, H, W\)"),
    (np.zeros((4, 784)), "got shape \\(4, 784\\)"),
    (np.zeros((0, 1, 28, 28)), "N >= 1"),
    (np.where(np.arange(2 * 784).reshape(2, 1, 28, 28) == 5, np.nan, -1.0), "1 NaN or inf values \\(in 1 of 2 images\\)"),
    (np.random.default_rng(0).integers(0, 256, size=(3, 28, 28)).astype(np.uint8), r"\[0, 255\]: scale them with x / 127.5 - 1"),
    (np.random.default_rng(0).uniform(0, 1, size=(3, 28, 28)), r"look like images in \[0, 1\].*2 \* x - 1"),
    (np.random.default_rng(0).uniform(-3, 3, size=(3, 28, 28)), r"outside \[-1, 1\]$"),
    (np.array([["a"]]), "numeric"),
])
def test_check_images_explains_bad_input(x, message):
    with pytest.raises(ValueError, match=message):
        metrics.check_images(x)


def test_check_images_accepts_good_input():
    x = digits()
    assert torch.equal(metrics.check_images(x), x)
    assert metrics.check_images(x[:, 0].numpy()).shape == (4, 1, 28, 28)
    assert float(metrics.check_images(x * 1.0005).max()) <= 1.0  # tanh rounding is clamped


def test_extraction_is_batch_independent_and_resizes():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten())
    x = digits(10)
    a = metrics.extract_features(x, net, batch_size=3)
    b = metrics.extract_features(x, net, batch_size=500)
    assert a.shape == (10, 2 * 26 * 26) and a.dtype == np.float64
    assert np.allclose(a, b, atol=1e-6)
    big = digits(10, size=40)
    small = torch.nn.functional.interpolate(big, size=(28, 28), mode="bilinear", antialias=True)
    assert np.allclose(metrics.extract_features(big, net), metrics.extract_features(small, net), atol=1e-6)
    flat = torch.full((2, 1, 64, 64), -0.25)  # a constant image stays constant
    assert np.allclose(metrics.extract_features(flat, torch.nn.Flatten()), -0.25)
    net.train()
    metrics.extract_features(x, net)
    assert net.training  # mode restored


def test_generate_is_seeded_batched_and_restores_mode():
    torch.manual_seed(0)
    G = torch.nn.Sequential(torch.nn.Linear(6, 784), torch.nn.Tanh(), torch.nn.Unflatten(1, (1, 28, 28)))
    state = torch.random.get_rng_state()
    a = metrics.generate(G, 25, batch_size=7, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    assert a.shape == (25, 1, 28, 28) and G.training
    # the same noise whatever the batching; a matrix product's last bits may depend on the batch size
    assert torch.allclose(metrics.generate(G, 25, batch_size=25, seed=3), a, rtol=0, atol=1e-6)
    assert not torch.allclose(metrics.generate(G, 25, seed=4), a, rtol=0, atol=1e-3)
    assert metrics.generate(lambda n: torch.zeros(n, 1, 28, 28), 3).shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="latent_dim"):
        metrics.generate(torch.nn.Tanh(), 3)
    assert metrics.generate(torch.nn.Tanh(), 3, latent_dim=4).shape == (3, 4)


# --------------------------------------------------------------------------- the MNIST classifier

needs_mnist = pytest.mark.skipif(not os.environ.get("GANLIB_DATA"),
                                 reason="set GANLIB_DATA to a folder with the four MNIST files")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The real classifier configuration, trained once into a private cache (about a minute on 2 cores)."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANLIB_CACHE", str(cache))
        net = metrics.mnist_classifier(device="cpu")
    return net, cache


@needs_mnist
def test_classifier_reaches_99_percent_and_is_cached(trained):
    """The full configuration (all 60,000 training digits, 2 epochs), also in smoke mode."""
    from ganlib.data import load_mnist, scale_images

    net, cache = trained
    assert net.info["config"] == metrics.CLASSIFIER_CONFIG and not net.info["cached"]
    x, y = load_mnist("test")
    acc = metrics.classifier_accuracy(net, scale_images(x), y)
    assert acc >= 0.99, acc
    assert net.info["test_accuracy"] == pytest.approx(acc)
    path = cache / "classifiers" / f"mnist-lenet-{metrics.config_hash(metrics.CLASSIFIER_CONFIG)}.pt"
    assert path.is_file() and list(path.parent.iterdir()) == [path]  # no temporary files left behind


@needs_mnist
def test_classifier_cache_is_read_keyed_and_repaired(trained, monkeypatch, tmp_path):
    import shutil

    from ganlib.data import load_mnist, scale_images

    net, cache = trained
    monkeypatch.setenv("GANLIB_CACHE", str(tmp_path))
    shutil.copytree(cache / "classifiers", tmp_path / "classifiers")
    x = scale_images(load_mnist("test")[0][:200])
    loaded = metrics.mnist_classifier(device="cpu")
    assert loaded.info["cached"] and not loaded.training
    assert np.array_equal(metrics.extract_features(x, loaded), metrics.extract_features(x, net))
    # a damaged file is reported and replaced by a retrained classifier (here a tiny, cheap config)
    tiny = {"train_size": 512, "epochs": 1, "width": 2, "hidden": 8}
    path = tmp_path / "classifiers" / f"mnist-lenet-{metrics.config_hash({**metrics.CLASSIFIER_CONFIG, **tiny})}.pt"
    first = metrics.mnist_classifier(config=tiny, device="cpu")
    assert path.is_file() and not first.info["cached"] and first.info["hash"] != net.info["hash"]
    path.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="retraining"):
        again = metrics.mnist_classifier(config=tiny, device="cpu")
    assert not again.info["cached"] and metrics.mnist_classifier(config=tiny, device="cpu").info["cached"]
    # same config, same seed: the same network
    assert np.array_equal(metrics.extract_features(x, again), metrics.extract_features(x, first))
    # cache=False trains and writes nothing
    path.unlink()
    metrics.mnist_classifier(config=tiny, cache=False, device="cpu")
    assert not path.exists()
    with pytest.raises(ValueError, match="unknown classifier config"):
        metrics.mnist_classifier(config={"epoch": 3})


def test_cache_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("GANLIB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert metrics.cache_dir() == tmp_path / "xdg" / "ganlib"
    monkeypatch.setenv("GANLIB_CACHE", str(tmp_path / "mine"))
    assert metrics.cache_dir() == tmp_path / "mine"


def test_lenet_shapes_and_features():
    from ganlib.models import LeNet

    net = LeNet(width=4, hidden=12).eval()
    x = digits(3)
    f, logits = net.features_and_logits(x)
    assert f.shape == (3, 12) and logits.shape == (3, 10) and bool((f >= 0).all())  # after ReLU
    assert torch.allclose(net(x), logits) and torch.allclose(net.features(x), f)
    assert metrics.predict_proba(x, net).sum(1) == pytest.approx(np.ones(3))


# --------------------------------------------------------------------------- ganlib evaluate


def run_cli(argv, capsys):
    from ganlib.__main__ import main

    code = main(["evaluate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def tiny_classifier(monkeypatch, tmp_path):
    """Error paths need no accurate classifier: a tiny, quickly trained one in a private cache."""
    monkeypatch.setenv("GANLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(classifier, "CLASSIFIER_CONFIG",
                        {**classifier.CLASSIFIER_CONFIG, "train_size": 512, "epochs": 1, "width": 2, "hidden": 8})


def save(tmp_path, x, name="samples.npy"):
    path = tmp_path / name
    np.save(path, x)
    return str(path)


@needs_mnist
@pytest.mark.parametrize("make, message", [
    (lambda: np.zeros((20, 3, 28, 28)), r"shape \(N, 1, H, W\)"),
    (lambda: np.zeros((20, 784)), r"got shape \(20, 784\)"),
    (lambda: np.full((20, 28, 28), 200.0), r"\[0, 255\]"),
    (lambda: np.full((20, 28, 28), 0.5), r"\[0, 1\]"),
    (lambda: np.where(np.arange(20 * 784).reshape(20, 1, 28, 28) % 97 == 0, np.nan, -1.0), "NaN"),
])
def test_cli_explains_bad_samples(make, message, tmp_path, capsys, tiny_classifier):
    code, out, err = run_cli(["--samples", save(tmp_path, make()), "--n", "10"], capsys)
    assert code == 1 and out == ""
    assert err.startswith("ganlib evaluate: error: ") and len(err.strip().splitlines()) == 1
    assert __import__("re").search(message, err), err


@needs_mnist
def test_cli_explains_bad_n_files_and_arguments(tmp_path, capsys, tiny_classifier):
    from ganlib.data import load_mnist, scale_images

    path = save(tmp_path, scale_images(load_mnist("test")[0][:50]).numpy())
    code, _, err = run_cli(["--samples", path, "--n", "60"], capsys)
    assert code == 1 and "larger than the number of samples" in err
    big = save(tmp_path, -np.ones((10_001, 1, 28, 28), dtype=np.float32), "big.npy")
    code, _, err = run_cli(["--samples", big, "--n", "10001"], capsys)
    assert code == 1 and "larger than the MNIST test set (10000 digits): use --n 10000 or less" in err
    code, _, err = run_cli(["--samples", str(tmp_path / "missing.npy")], capsys)
    assert code == 1 and "no such file" in err
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    code, _, err = run_cli(["--samples", str(tmp_path / "bad.npy")], capsys)
    assert code == 1 and "not a readable NumPy .npy array" in err
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = run_cli(["--samples", str(tmp_path / "obj.npy")], capsys)
    assert code == 1 and "not a readable NumPy" in err
    np.savez(tmp_path / "two.npz", a=np.zeros(3))
    code, _, err = run_cli(["--samples", str(tmp_path / "two.npz")], capsys)
    assert code == 1 and "several arrays" in err
    code, _, err = run_cli(["--samples", path, "--n", "1"], capsys)
    assert code == 2 and err.startswith("usage:") and "--n must be at least 2" in err
    code, _, err = run_cli(["--samples", path, "--n", "20", "--k", "20"], capsys)
    assert code == 2 and "--k must be between 1 and n - 1 = 19" in err
    code, _, err = run_cli(["--samples", path, "--ema"], capsys)
    assert code == 2 and "--ema goes with --checkpoint" in err
    code, _, err = run_cli(["--n", "20"], capsys)  # argparse: usage and a one-line message
    assert code == 2 and err.startswith("usage: ganlib evaluate") and "--samples" in err.splitlines()[-1]
    code, _, err = run_cli(["--samples", path, "--checkpoint", path], capsys)
    assert code == 2 and "not allowed with" in err
    assert "Traceback" not in err


@needs_mnist
def test_cli_prints_the_table_and_json(tmp_path, capsys, tiny_classifier):
    from ganlib.data import load_mnist, scale_images

    x = scale_images(load_mnist("test")[0][:300]).numpy()
    code, out, _ = run_cli(["--samples", save(tmp_path, x), "--n", "200", "--json"], capsys)
    assert code == 0
    res = json.loads(out)
    assert res["n"] == 200 and res["k"] == 3 and set(res["floor"]) == set(res) - {"n", "k", "floor", "source"}
    assert sum(res["class_counts"]) == 200 and 0 <= res["precision"] <= 1 and 1 <= res["classifier_score"] <= 10
    code, out, _ = run_cli(["--samples", save(tmp_path, x), "--n", "200", "--no-floor", "--k", "5"], capsys)
    assert code == 0 and "real vs real" not in out
    for row in ("FID", "precision", "recall", "classifier score", "classes covered"):
        assert row in out
    # 32x32 samples are resized to 28x28 rather than refused
    x32 = torch.nn.functional.interpolate(torch.from_numpy(x), size=(32, 32), mode="bilinear").numpy()
    code, out, _ = run_cli(["--samples", save(tmp_path, x32, "s32.npy"), "--n", "200", "--no-floor"], capsys)
    assert code == 0


@needs_mnist
def test_protocol_acceptance_on_real_and_collapsed_digits(trained, monkeypatch, tmp_path, capsys):
    """10,000 test digits sit at (here: below) the real-vs-real floor; 10,000 copies of one digit are
    caught by class coverage and a large FID."""
    from ganlib.data import load_mnist, scale_images

    net, cache = trained
    monkeypatch.setenv("GANLIB_CACHE", str(cache))
    x, y = load_mnist("test")
    code, out, _ = run_cli(["--samples", save(tmp_path, scale_images(x).numpy()), "--n", "10000", "--json"], capsys)
    res = json.loads(out)
    assert code == 0 and res["fid"] <= 2 * res["floor"]["fid"]
    assert res["floor"]["classes_covered"] == 10 and res["floor"]["precision"] > 0.6 and res["floor"]["recall"] > 0.6
    one = scale_images(x[y == 3][:1]).repeat(10_000, 1, 1, 1).numpy()
    code, out, _ = run_cli(["--samples", save(tmp_path, one, "one.npy"), "--n", "10000", "--json", "--no-floor"],
                           capsys)
    bad = json.loads(out)
    assert code == 0 and bad["classes_covered"] == 1 and bad["class_counts"][3] == 10_000
    assert bad["fid"] > 20 * res["floor"]["fid"] and bad["recall"] < 0.05
    assert bad["classifier_score"] == pytest.approx(1.0)


@needs_mnist
def test_fid_from_a_generator_and_its_errors(trained):
    net, _ = trained
    G = torch.nn.Sequential(torch.nn.Linear(5, 784), torch.nn.Tanh(), torch.nn.Unflatten(1, (1, 28, 28)))
    a = metrics.fid(G, extractor=net, n=500)
    assert a > 0 and a == metrics.fid(metrics.generate(G, 500), extractor=net, n=500)
    with pytest.raises(ValueError, match="larger than the real set"):
        metrics.fid(G, extractor=net, n=10_001)
    with pytest.raises(ValueError, match="larger than the number of samples"):
        metrics.fid(metrics.generate(G, 50), extractor=net, n=100)


@needs_mnist
def test_evaluate_uses_k_3_neighbours_by_default():
    """Improved precision and recall use k = 3 (Kynkaanniemi et al. 2019): evaluate's default, pinned."""
    from ganlib.classifier import extract_features
    from ganlib.models import LeNet

    torch.manual_seed(0)
    net = LeNet(width=4, hidden=16)  # untrained: any fixed feature map serves
    digits = metrics._mnist("test")[0]
    n = 500
    noisy = (digits[-n:] + 0.5 * torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    result = metrics.evaluate(noisy, n, classifier=net, floor=False)
    real = metrics._subset(digits, n, 0, "the MNIST test set")  # the seed-0 subset evaluate compares with
    feats_real, feats_fake = extract_features(real, net), extract_features(noisy, net)
    k3, k5 = (metrics.precision_recall(feats_real, feats_fake, k=k) for k in (3, 5))
    assert (result["precision"], result["recall"]) == (k3.precision, k3.recall) and result["k"] == 3
    assert (k5.precision, k5.recall) != (k3.precision, k3.recall)  # another k would show


@needs_mnist
def test_cli_evaluates_a_checkpoint_of_ganlib_train(tmp_path, capsys, tiny_classifier):
    from ganlib.__main__ import main
    from ganlib import train

    out = tmp_path / "run"
    assert main(["train", "--model", "mlp", "--data", "synthetic", "--out", str(out), "--steps", "3",
                 "--batch-size", "16", "--width", "8", "--latent-dim", "4"]) == 0
    capsys.readouterr()
    ckpt = str(out / "checkpoint.pt")
    code, text, _ = run_cli(["--checkpoint", ckpt, "--n", "64", "--no-floor"], capsys)
    assert code == 0 and "samples of" in text and "(step 3)" in text and "FID" in text
    # the same numbers as sampling the generator by hand and passing the images
    code, text, _ = run_cli(["--checkpoint", ckpt, "--n", "64", "--json", "--no-floor", "--seed", "5"], capsys)
    res = json.loads(text)
    blob = train.load_checkpoint(ckpt)
    G, _ = train.build_models(blob["meta"])
    G.load_state_dict(blob["models"]["G"])
    by_hand = metrics.evaluate(metrics.generate(G, 64, 4, seed=5), 64, floor=False, seed=5)
    assert res["fid"] == pytest.approx(by_hand["fid"], rel=1e-9) and res["class_counts"] == by_hand["class_counts"]
    code, _, err = run_cli(["--checkpoint", ckpt, "--n", "64", "--ema"], capsys)
    assert code == 1 and "trained without --ema" in err
    code, _, err = run_cli(["--checkpoint", str(tmp_path / "none.pt")], capsys)
    assert code == 1 and "no checkpoint at" in err
    python_run = torch.load(ckpt, weights_only=True)
    python_run["meta"] = {}
    torch.save(python_run, tmp_path / "python.pt")
    code, _, err = run_cli(["--checkpoint", str(tmp_path / "python.pt")], capsys)
    assert code == 1 and "from Python with your own models" in err
    python_run["meta"] = {**blob["meta"], "channels": 3}
    torch.save(python_run, tmp_path / "rgb.pt")
    code, _, err = run_cli(["--checkpoint", str(tmp_path / "rgb.pt")], capsys)
    assert code == 1 and "3-channel images" in err


@needs_mnist
def test_cli_n_defaults_to_the_samples_given_and_says_so(tmp_path, capsys, tiny_classifier):
    from ganlib.data import load_mnist, scale_images

    x = scale_images(load_mnist("test")[0][:50]).numpy()
    path = save(tmp_path, x)
    code, out, err = run_cli(["--samples", path, "--no-floor"], capsys)  # 50 samples, no --n: n = 50
    assert code == 0 and err == ""
    assert out.startswith(f"--n not given: n = 50, all the samples in {path}; compare results only at the same n")
    assert "50 of the 50 samples" in out
    code, out, err = run_cli(["--samples", path, "--no-floor", "--json"], capsys)
    assert code == 0 and json.loads(out)["n"] == 50 and "n = 50" in err  # stdout stays pure JSON
    # the same numbers as --n 50 given explicitly
    code, explicit, _ = run_cli(["--samples", path, "--no-floor", "--json", "--n", "50"], capsys)
    assert json.loads(explicit) == json.loads(out)
    # more samples than test digits: n is the test set's size
    big = save(tmp_path, np.concatenate([x] * 201)[:10_020], "big.npy")
    code, out, _ = run_cli(["--samples", big, "--no-floor", "--json"], capsys)
    assert code == 0 and json.loads(out)["n"] == 10_000
    # an explicit --n larger than the samples names the way out
    code, _, err = run_cli(["--samples", path, "--n", "60"], capsys)
    assert code == 1 and "use --n 50, or leave --n out to use them all" in err
    code, _, err = run_cli(["--samples", path, "--k", "50"], capsys)
    assert code == 1 and "--k 50 needs more than 50 samples" in err
    code, _, err = run_cli(["--samples", save(tmp_path, x[:1], "one.npy")], capsys)
    assert code == 1 and "at least 2" in err


@needs_mnist
def test_classifier_training_shows_progress_unless_smoke_or_ci(monkeypatch, tmp_path, capsys):
    """A learner's first chapter-09 run trains the classifier: a bar says so, and that it is cached afterwards."""
    tiny = {"train_size": 512, "epochs": 1, "width": 2, "hidden": 8}  # 4 steps of 128
    monkeypatch.setenv("GANLIB_CACHE", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("GANLIB_SMOKE", raising=False)
    metrics.mnist_classifier(config=tiny, device="cpu", cache=False)
    out, err = capsys.readouterr()
    assert "training the MNIST classifier once (cached for later runs)" in err and "4/4" in err and out == ""
    for env in ("GANLIB_SMOKE", "CI"):  # the bar stays off where outputs are stored or compared
        monkeypatch.setenv(env, "1")
        metrics.mnist_classifier(config=tiny, device="cpu", cache=False)
        assert capsys.readouterr() == ("", "")
        monkeypatch.delenv(env)
    metrics.mnist_classifier(config=tiny, device="cpu", cache=False, verbose=False)
    assert capsys.readouterr() == ("", "")
