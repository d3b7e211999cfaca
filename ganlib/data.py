"""Toy data distributions: samplers, densities and sample-based distances (1-D for now).

Samplers take a ``numpy.random.Generator`` and return arrays of shape ``(n, 1)``, the
``(batch, features)`` layout the networks expect. Densities take any array of points
and return an array of the same shape, for plotting.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ganlib.theory import gaussian_pdf  # chapter 02's density; mixtures below reuse it


def _check_n(n: int) -> int:
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    return int(n)


def _check_std(std: float) -> float:
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    return float(std)


def sample_gaussian_1d(n: int, rng: np.random.Generator, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    """``n`` samples of ``N(mean, std^2)``, shape ``(n, 1)``.

    Examples
    --------
    >>> x = sample_gaussian_1d(100_000, np.random.default_rng(0), mean=4.0, std=1.25)
    >>> x.shape, round(float(x.mean()), 1), round(float(x.std()), 2)
    ((100000, 1), 4.0, 1.25)
    """
    return rng.normal(float(mean), _check_std(std), size=(_check_n(n), 1))


def _mixture_args(means: Sequence[float], stds: Sequence[float] | float, weights: Sequence[float] | None):
    means = np.atleast_1d(np.asarray(means, dtype=float))
    k = means.size
    stds = np.broadcast_to(np.asarray(stds, dtype=float), (k,)).copy()
    weights = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, dtype=float)
    if means.ndim != 1 or weights.shape != (k,):
        raise ValueError(f"means and weights must be 1-D of the same length, got {means.shape} and {weights.shape}")
    if np.any(stds <= 0):
        raise ValueError(f"stds must be positive, got {stds}")
    if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
        raise ValueError(f"weights must be non-negative and sum to 1, got {weights}")
    return means, stds, weights


def sample_mixture_1d(n: int, rng: np.random.Generator, means: Sequence[float], stds: Sequence[float] | float,
                      weights: Sequence[float] | None = None, return_labels: bool = False):
    """``n`` samples of the Gaussian mixture ``sum_k w_k N(means[k], stds[k]^2)``, shape ``(n, 1)``.

    Parameters
    ----------
    n : int
    rng : numpy.random.Generator
    means : sequence of float, length k
    stds : float or sequence of float (length k)
    weights : sequence of float, optional
        Non-negative, summing to 1; equal weights when omitted.
    return_labels : bool
        Also return the component index of each sample, shape ``(n,)``.

    Examples
    --------
    >>> x, k = sample_mixture_1d(10_000, np.random.default_rng(0), [-2, 2], 0.5, return_labels=True)
    >>> x.shape, round(float(np.mean(k)), 1)
    ((10000, 1), 0.5)
    """
    means, stds, weights = _mixture_args(means, stds, weights)
    n = _check_n(n)
    labels = rng.choice(means.size, size=n, p=weights)
    x = (means[labels] + stds[labels] * rng.normal(size=n))[:, None]
    return (x, labels) if return_labels else x


def mixture_pdf_1d(x: ArrayLike, means: Sequence[float], stds: Sequence[float] | float,
                   weights: Sequence[float] | None = None) -> np.ndarray:
    """Density of the Gaussian mixture at ``x`` (any shape).

    Examples
    --------
    >>> round(float(mixture_pdf_1d(0.0, [-1, 1], 1.0)), 6) == round(float(gaussian_pdf(1.0)), 6)
    True
    """
    means, stds, weights = _mixture_args(means, stds, weights)
    x = np.asarray(x, dtype=float)
    return sum(w * gaussian_pdf(x, m, s) for m, s, w in zip(means, stds, weights))


def wasserstein1_1d(a: ArrayLike, b: ArrayLike) -> float:
    """Wasserstein-1 distance between the empirical distributions of two 1-D samples.

    In 1-D, ``W1 = integral |F_a(t) - F_b(t)| dt`` for the empirical CDFs; for equal sample
    sizes this is ``mean |sort(a) - sort(b)|``, the cost of matching the i-th smallest of
    ``a`` with the i-th smallest of ``b``. Inputs are flattened (shape (n,) or (n, 1)).

    Examples
    --------
    >>> wasserstein1_1d([0.0, 1.0], [0.5, 1.5])     # every point moves by 0.5
    0.5
    >>> wasserstein1_1d([0.0, 1.0, 2.0], [0.0, 2.0])
    0.3333333333333333
    """
    a = np.sort(np.ravel(np.asarray(a, dtype=float)))
    b = np.sort(np.ravel(np.asarray(b, dtype=float)))
    if a.size == 0 or b.size == 0:
        raise ValueError("both samples must be non-empty")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("samples contain NaN or inf")
    if a.size == b.size:
        return float(np.mean(np.abs(a - b)))
    points = np.sort(np.concatenate([a, b]))
    widths = np.diff(points)
    Fa = np.searchsorted(a, points[:-1], side="right") / a.size
    Fb = np.searchsorted(b, points[:-1], side="right") / b.size
    return float(np.sum(np.abs(Fa - Fb) * widths))


def mode_coverage(samples: ArrayLike, means: Sequence[float], radius: float) -> np.ndarray:
    """Fraction of ``samples`` within ``radius`` of each mode centre, shape ``(k,)``.

    A mode counts as covered when its fraction is a sizeable share of its weight; the
    rest (``1 - sum``) lies away from every mode.

    Examples
    --------
    >>> mode_coverage([-2.1, -1.9, 2.0, 5.0], [-2, 2], radius=0.5).tolist()
    [0.5, 0.25]
    """
    x = np.ravel(np.asarray(samples, dtype=float))
    m = np.atleast_1d(np.asarray(means, dtype=float))
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")
    return (np.abs(x[:, None] - m[None, :]) <= radius).mean(axis=0)
