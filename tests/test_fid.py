"""The Frechet distance against closed forms and an independent matrix square root."""

import numpy as np
import pytest

from ganlib import metrics


def random_spd(rng, d, cond=10.0):
    """A random covariance with eigenvalues spread over ``[1, cond]`` in a random basis."""
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q * np.geomspace(1.0, cond, d)) @ q.T


def denman_beavers_sqrt(a, iters=60):
    """Principal square root of a (not necessarily symmetric) matrix by the Denman-Beavers iteration.

    Independent of the eigendecomposition route: it works on S1 S2 itself, which is not symmetric.
    """
    y, z = a.copy(), np.eye(a.shape[0])
    for _ in range(iters):
        y, z = (y + np.linalg.inv(z)) / 2, (z + np.linalg.inv(y)) / 2
    return y


def fd_reference(mu1, s1, mu2, s2):
    root = denman_beavers_sqrt(s1 @ s2)
    assert np.allclose(root @ root, s1 @ s2, atol=1e-9 * np.abs(s1 @ s2).max())
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * root))


def fd_elementwise_sqrt(mu1, s1, mu2, s2):
    """The classic mistake: an elementwise square root of S1 S2 instead of the matrix square root."""
    with np.errstate(invalid="ignore"):
        return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.sqrt(s1 @ s2)))


def test_one_dimensional_closed_form_is_exactly_two():
    # N(0, 1) vs N(1, 4): (0 - 1)^2 + 1 + 4 - 2 sqrt(1 * 4) = 2
    assert metrics.frechet_distance([0.0], [[1.0]], [1.0], [[4.0]]) == 2.0
    assert metrics.frechet_distance(np.array([0.0]), 1.0, np.array([1.0]), 4.0) == 2.0


@pytest.mark.parametrize("seed", range(5))
def test_one_dimensional_is_squared_wasserstein(seed):
    m1, m2, s1, s2 = np.random.default_rng(seed).uniform(0.1, 3, size=4)
    got = metrics.frechet_distance([m1], [[s1**2]], [m2], [[s2**2]])
    assert got == pytest.approx((m1 - m2) ** 2 + (s1 - s2) ** 2, rel=1e-12)


def test_identical_sets_give_zero():
    x = np.random.default_rng(0).normal(size=(2000, 16)) @ np.random.default_rng(1).normal(size=(16, 16))
    mu, sigma = metrics.feature_statistics(x)
    assert metrics.frechet_distance(mu, sigma, mu, sigma) < 1e-9 * np.trace(sigma)
    assert metrics.fid_from_features(x, x) < 1e-9 * np.trace(sigma)


@pytest.mark.parametrize("d", [2, 5, 32, 128])
def test_random_gaussians_match_independent_square_root(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = random_spd(rng, d), random_spd(rng, d, cond=100.0)
    got = metrics.frechet_distance(mu1, s1, mu2, s2)
    assert got == pytest.approx(fd_reference(mu1, s1, mu2, s2), rel=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_commuting_covariances_have_a_brute_force_formula(seed):
    # S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T commute: Tr (S1 S2)^1/2 = sum sqrt(a b),
    # so d^2 = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2. Some eigenvalues are zero (singular).
    rng = np.random.default_rng(seed)
    d = 12
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a, b = rng.uniform(0, 5, size=d), rng.uniform(0, 5, size=d)
    a[:3] = 0.0
    b[2:4] = 0.0
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = metrics.frechet_distance(mu1, (q * a) @ q.T, mu2, (q * b) @ q.T)
    # a zero eigenvalue comes out of eigh as +-1e-16 and its square root as 1e-8: that is the
    # accuracy any matrix square root has at a singular matrix
    assert got == pytest.approx(want, rel=1e-6)


def test_near_singular_covariances_from_few_samples():
    """Fewer samples than dimensions: rank-deficient covariances; still finite, non-negative, symmetric."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 64)), rng.normal(0.5, 1.0, size=(30, 64))
    mx, sx = metrics.feature_statistics(x)
    my, sy = metrics.feature_statistics(y)
    assert np.linalg.matrix_rank(sx) == 19
    d_xy = metrics.frechet_distance(mx, sx, my, sy)
    d_yx = metrics.frechet_distance(my, sy, mx, sx)
    assert np.isfinite(d_xy) and d_xy > 0
    # Tr (S1 S2)^1/2 = Tr (S2 S1)^1/2, to the accuracy of a square root at a singular matrix: each of the
    # 45 zero eigenvalues of S1 S2 can contribute about 1e-8 (the square root of +-1e-16 times the scale),
    # and which of them come out positive depends on the BLAS kernel (1.6e-9 relative on a Haswell one)
    assert d_xy == pytest.approx(d_yx, rel=1e-7)
    # Independent route through the data: S1 = X^T X / (n1 - 1), S2 = Y^T Y / (n2 - 1) with X, Y
    # centred, so the eigenvalues of S1 S2 are the squared singular values of X Y^T / sqrt((n1-1)(n2-1))
    # and Tr (S1 S2)^1/2 is the sum of those singular values (an SVD, no square root of a matrix).
    xc, yc = x - mx, y - my
    tr = np.linalg.svd(xc @ yc.T / np.sqrt(19 * 29), compute_uv=False).sum()
    want = np.sum((mx - my) ** 2) + np.trace(sx) + np.trace(sy) - 2 * tr
    assert d_xy == pytest.approx(want, rel=1e-6)
    assert metrics.frechet_distance(mx, sx, mx, sx) < 1e-9 * np.trace(sx)


def test_matches_large_sample_estimate():
    """FID of two large Gaussian samples converges to the Frechet distance of the true Gaussians."""
    rng = np.random.default_rng(3)
    d = 4
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = random_spd(rng, d, 4.0), random_spd(rng, d, 4.0)
    x = rng.multivariate_normal(mu1, s1, size=200_000)
    y = rng.multivariate_normal(mu2, s2, size=200_000)
    assert metrics.fid_from_features(x, y) == pytest.approx(metrics.frechet_distance(mu1, s1, mu2, s2), rel=0.02)


def test_elementwise_square_root_is_wrong():
    """On diagonal covariances the elementwise sqrt agrees (which hides the bug); after a rotation it does not."""
    rng = np.random.default_rng(0)
    d = 6
    a, b = np.diag(rng.uniform(0.5, 3, d)), np.diag(rng.uniform(0.5, 3, d))
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    assert fd_elementwise_sqrt(mu1, a, mu2, b) == pytest.approx(metrics.frechet_distance(mu1, a, mu2, b), rel=1e-12)
    s1, s2 = random_spd(rng, d, 5.0), random_spd(rng, d, 5.0)
    right, wrong = metrics.frechet_distance(mu1, s1, mu2, s2), fd_elementwise_sqrt(mu1, s1, mu2, s2)
    assert right == pytest.approx(fd_reference(mu1, s1, mu2, s2), rel=1e-9)
    assert not np.isclose(wrong, right, rtol=1e-2)  # NaN (negative entries of S1 S2) or simply off
    # The distance between Gaussians does not depend on the basis; the elementwise version does.
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    rotated = metrics.frechet_distance(q @ mu1, q @ s1 @ q.T, q @ mu2, q @ s2 @ q.T)
    assert rotated == pytest.approx(right, rel=1e-9)
    rotated_wrong = fd_elementwise_sqrt(q @ mu1, q @ s1 @ q.T, q @ mu2, q @ s2 @ q.T)
    assert not np.isclose(rotated_wrong, wrong, rtol=1e-3, equal_nan=False)


def test_shift_of_the_mean_adds_its_squared_length():
    rng = np.random.default_rng(1)
    d = 8
    mu, s1, s2, c = rng.normal(size=d), random_spd(rng, d), random_spd(rng, d), rng.normal(size=d)
    base = metrics.frechet_distance(mu, s1, mu, s2)
    assert metrics.frechet_distance(mu, s1, mu + c, s2) == pytest.approx(base + c @ c, rel=1e-10)


def test_trace_sqrt_product_on_diagonals():
    assert metrics.trace_sqrt_product(np.diag([1.0, 4.0]), np.diag([9.0, 1.0])) == pytest.approx(5.0, rel=1e-14)


@pytest.mark.parametrize("args, message", [
    (([0.0, 0.0], np.eye(2), [0.0], np.eye(1)), "same length"),
    (([0.0, 0.0], np.eye(3), [0.0, 0.0], np.eye(2)), "shape (2, 2)"),
    (([0.0, 0.0], [[1.0, 0.5], [0.0, 1.0]], [0.0, 0.0], np.eye(2)), "not symmetric"),
    (([0.0, 0.0], np.diag([1.0, -1.0]), [0.0, 0.0], np.eye(2)), "not positive semi-definite"),
    (([0.0, 0.0], np.eye(2), [0.0, 0.0], np.diag([1.0, -0.5])), "not positive semi-definite"),
    (([np.nan, 0.0], np.eye(2), [0.0, 0.0], np.eye(2)), "NaN"),
    (([0.0, 0.0], np.full((2, 2), np.inf), [0.0, 0.0], np.eye(2)), "NaN or inf"),
])
def test_bad_input_is_explained(args, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        metrics.frechet_distance(*args)


def test_rounding_below_zero_is_tolerated_but_real_negatives_are_not():
    s = random_spd(np.random.default_rng(0), 5)
    w, v = np.linalg.eigh(s)
    w[0] = -1e-12 * w.max()  # rounding-sized negative eigenvalue: accepted as 0
    nearly = (v * w) @ v.T
    assert metrics.frechet_distance(np.zeros(5), nearly, np.zeros(5), nearly) < 1e-9
    w[0] = -1e-3 * w.max()
    with pytest.raises(ValueError, match="not positive semi-definite"):
        metrics.frechet_distance(np.zeros(5), (v * w) @ v.T, np.zeros(5), s)


def test_feature_statistics_match_numpy_and_check_input():
    x = np.random.default_rng(0).normal(size=(50, 3))
    mu, sigma = metrics.feature_statistics(x)
    assert np.allclose(mu, x.mean(0)) and np.allclose(sigma, np.cov(x.T))
    with pytest.raises(ValueError, match="at least 2 samples"):
        metrics.feature_statistics(x[:1])
    with pytest.raises(ValueError, match="2-D"):
        metrics.feature_statistics(x[:, 0])
