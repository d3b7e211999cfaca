"""Precision/recall, nearest neighbours, classifier score, class coverage and the image checks,
against brute-force references and closed forms."""

import math
import warnings

import numpy as np
import pytest
import torch

from ganlib import metrics


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
    for max_elements in (2**24, 100, 1):  # 1: one query row at a time
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
    assert torch.equal(metrics.generate(G, 25, batch_size=25, seed=3), a)
    assert not torch.equal(metrics.generate(G, 25, seed=4), a)
    assert metrics.generate(lambda n: torch.zeros(n, 1, 28, 28), 3).shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="latent_dim"):
        metrics.generate(torch.nn.Tanh(), 3)
    assert metrics.generate(torch.nn.Tanh(), 3, latent_dim=4).shape == (3, 4)
