"""Toy distributions: samplers match their densities, distances match closed forms."""

import numpy as np
import pytest

from ganlib import data


def test_gaussian_sampler_moments_and_shape():
    x = data.sample_gaussian_1d(200_000, np.random.default_rng(0), mean=4.0, std=1.25)
    assert x.shape == (200_000, 1)
    assert abs(x.mean() - 4.0) < 0.01 and abs(x.std() - 1.25) < 0.01


def test_densities_integrate_to_one_and_match_histograms():
    grid = np.linspace(-15, 15, 30001)
    dx = grid[1] - grid[0]
    assert np.isclose(np.sum(data.mixture_pdf_1d(grid, [1.0], 2.0)) * dx, 1.0, atol=1e-8)
    means, stds, w = [-3.0, 0.5, 4.0], [0.5, 1.0, 0.3], [0.2, 0.5, 0.3]
    assert np.isclose(np.sum(data.mixture_pdf_1d(grid, means, stds, w)) * dx, 1.0, atol=1e-8)
    # sampler vs density: histogram of 400k samples
    x = data.sample_mixture_1d(400_000, np.random.default_rng(1), means, stds, w)[:, 0]
    edges = np.linspace(-6, 7, 53)
    hist, _ = np.histogram(x, bins=edges, density=True)
    centres = (edges[1:] + edges[:-1]) / 2
    fine = np.linspace(-6, 7, 5201)
    pdf_bins = np.add.reduceat(data.mixture_pdf_1d(fine[:-1], means, stds, w), np.arange(0, 5200, 100)) / 100
    assert np.max(np.abs(hist - pdf_bins)) < 0.02, (centres, hist - pdf_bins)


def test_mixture_labels_and_weights():
    x, k = data.sample_mixture_1d(100_000, np.random.default_rng(2), [-5, 5], [0.1, 0.1], [0.25, 0.75],
                                  return_labels=True)
    assert abs(k.mean() - 0.75) < 0.01
    assert np.all((x[k == 0, 0] < 0)) and np.all(x[k == 1, 0] > 0)


def test_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="std"):
        data.sample_gaussian_1d(3, rng, std=0)
    with pytest.raises(ValueError, match="sum to 1"):
        data.sample_mixture_1d(3, rng, [0, 1], 1.0, [0.5, 0.6])
    with pytest.raises(ValueError, match="n must be"):
        data.sample_gaussian_1d(-1, rng)
    with pytest.raises(ValueError, match="NaN"):
        data.wasserstein1_1d([0.0, np.nan], [1.0, 2.0])
    # the mixture's own checks, also where no sampler would notice (the density)
    for fn in (lambda *a: data.mixture_pdf_1d(0.0, *a), lambda *a: data.sample_mixture_1d(3, rng, *a)):
        with pytest.raises(ValueError, match="weights must be non-negative and sum to 1"):
            fn([0, 1], 1.0, [0.5, 0.6])
        with pytest.raises(ValueError, match="weights must be non-negative and sum to 1"):
            fn([0, 1], 1.0, [1.5, -0.5])
        with pytest.raises(ValueError, match="stds must be positive"):
            fn([0, 1], [1.0, 0.0])
        with pytest.raises(ValueError, match="same length"):
            fn([0, 1], 1.0, [1.0])


def test_empty_samples_have_the_batch_layout():
    rng = np.random.default_rng(0)
    assert data.sample_gaussian_1d(0, rng).shape == (0, 1)
    assert data.sample_mixture_1d(0, rng, [0.0, 1.0], 1.0).shape == (0, 1)
    with pytest.raises(ValueError, match="n must be"):
        data.sample_mixture_1d(2.5, rng, [0.0], 1.0)


def test_wasserstein_closed_forms():
    rng = np.random.default_rng(3)
    a = rng.normal(size=1000)
    assert np.isclose(data.wasserstein1_1d(a, a + 0.7), 0.7)          # a shift moves every point by 0.7
    assert data.wasserstein1_1d(a, rng.permutation(a)) == 0.0
    # two point masses: W1 = |x - y|; different sample sizes use the CDF formula
    assert np.isclose(data.wasserstein1_1d([0.0], [2.0, 2.0, 2.0]), 2.0)
    # N(0, 1) vs N(0, 2^2): the quantile coupling gives W1 = E|Z| (2 - 1) = sqrt(2 / pi)
    x = data.sample_gaussian_1d(200_000, rng)
    y = data.sample_gaussian_1d(200_000, rng, std=2.0)
    assert abs(data.wasserstein1_1d(x, y) - np.sqrt(2 / np.pi)) < 0.01


def test_wasserstein_unequal_sizes_agrees_with_quantile_integral():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=300), rng.normal(0.5, 1.5, size=700)
    # independent route: integrate |F_a^{-1}(u) - F_b^{-1}(u)| du with the empirical quantile functions
    u = (np.arange(2_100_000) + 0.5) / 2_100_000
    qa = np.sort(a)[np.floor(u * 300).astype(int)]
    qb = np.sort(b)[np.floor(u * 700).astype(int)]
    assert np.isclose(data.wasserstein1_1d(a, b), np.mean(np.abs(qa - qb)), rtol=1e-4)


def test_mode_coverage():
    x = np.concatenate([np.full(30, -2.0), np.full(60, 2.1), np.full(10, 0.0)])
    cov = data.mode_coverage(x, [-2.0, 2.0], radius=0.5)
    assert np.allclose(cov, [0.3, 0.6])


def test_mode_coverage_radius_edge():
    """Points between the radius and twice the radius count for no mode; a point at the radius counts."""
    means, radius = [-2.0, 2.0], 0.5
    x = np.array([-2.0, -2.0 + 0.5, -2.0 - 0.7, -2.0 - 0.99,    # mode 0: centre, at the radius, 1.4 r, 1.98 r
                  2.0 + 0.49, 2.0 + 0.51, 2.0 - 0.75, 2.0 + 0.9,  # mode 1: inside, just outside, 1.5 r, 1.8 r
                  0.0, 10.0])
    np.testing.assert_array_equal(data.mode_coverage(x, means, radius), [2 / 10, 1 / 10])
    np.testing.assert_array_equal(data.mode_coverage(x, means, radius=1.0), [4 / 10, 4 / 10])
    np.testing.assert_array_equal(data.mode_coverage(x[:, None], means, radius), [2 / 10, 1 / 10])  # (n, 1) as sampled
    with pytest.raises(ValueError, match="radius"):
        data.mode_coverage(x, means, radius=0.0)
