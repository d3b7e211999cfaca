"""The data of the course: toy distributions (chapters 03 and 06), and, re-exported, the images (chapter 07).

Toy distributions, defined here: 1-D Gaussians and mixtures (chapter 03), the ring and grid
of 2-D Gaussians (chapter 06), their densities, and the 1-D Wasserstein distance between
samples. Samplers take a ``numpy.random.Generator`` and return arrays of shape ``(n, d)``
(``(n, 1)`` in 1-D), the ``(batch, features)`` layout the networks expect. Densities take any
array of points and return an array of the same shape, for plotting.

Images (MNIST, CIFAR-10, image folders, synthetic images, :class:`Batches`) live in :mod:`ganlib.images`;
their public names are importable from here too (``ganlib.data.load_mnist``,
``from ganlib.data import Batches``), as the chapters do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ganlib.images import (CIFAR10_CLASSES, CIFAR10_FILES, CIFAR10_MIRRORS, CIFAR10_MIRRORS_ENV, DATA_ENV,
                           IDX_MAGIC_IMAGES, IDX_MAGIC_LABELS, IMAGE_EXTENSIONS, MIRRORS_ENV, MNIST_FILES,
                           MNIST_MIRRORS, Batches, DataCorruptError, DataNotFoundError, cache_dir, cifar10_dir,
                           cifar10_images, file_md5, image_folder, load_cifar10, load_mnist, mnist_dir, mnist_images,
                           read_cifar10, read_idx, scale_images, synthetic_images, unscale_images)
from ganlib.theory import gaussian_pdf  # chapter 02's density; mixtures below reuse it
from ganlib.utils import check_n

__all__ = [
    # toy distributions (defined here)
    "sample_gaussian_1d", "sample_mixture_1d", "mixture_pdf_1d", "ring_means", "grid_means", "sample_mixture",
    "sample_ring", "sample_grid", "wasserstein1_1d", "mode_coverage",
    # images (defined in ganlib.images)
    "MNIST_FILES", "MNIST_MIRRORS", "DATA_ENV", "MIRRORS_ENV", "IDX_MAGIC_IMAGES", "IDX_MAGIC_LABELS",
    "IMAGE_EXTENSIONS", "DataNotFoundError", "DataCorruptError", "read_idx", "cache_dir", "file_md5", "mnist_dir",
    "load_mnist", "scale_images", "unscale_images", "mnist_images", "synthetic_images", "image_folder", "Batches",
    "CIFAR10_FILES", "CIFAR10_MIRRORS", "CIFAR10_MIRRORS_ENV", "CIFAR10_CLASSES", "cifar10_dir", "read_cifar10",
    "load_cifar10", "cifar10_images",
]


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
    return rng.normal(float(mean), _check_std(std), size=(check_n(n), 1))


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
    n = check_n(n)
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


# --------------------------------------------------------------------------- 2-D mixtures (chapter 06)


def ring_means(k: int = 8, radius: float = 1.0) -> np.ndarray:
    """The ``k`` means of the ring benchmark, ``radius * (cos(2 pi i / k), sin(2 pi i / k))``, shape ``(k, 2)``.

    ``i`` runs over ``0 .. k-1``: the angle ``2 pi`` itself is left out, because it is the
    same point as angle 0 (``np.linspace(0, 2 * np.pi, k)`` includes it and gives only
    ``k - 1`` distinct means).

    Examples
    --------
    >>> ring_means(4).round(12).tolist()
    [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [-0.0, -1.0]]
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")
    angles = 2 * np.pi * np.arange(k) / k
    return float(radius) * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def grid_means(side: int = 5, spacing: float = 2.0) -> np.ndarray:
    """The ``side**2`` means of the grid benchmark, centred on the origin, shape ``(side**2, 2)``.

    Coordinates are ``spacing * (j - (side - 1) / 2)`` for ``j = 0 .. side-1``; the default
    is ``{-4, -2, 0, 2, 4}^2``. Row ``side * a + b`` holds ``(c_a, c_b)`` (the first
    coordinate varies slowest, as ``itertools.product``).

    Examples
    --------
    >>> grid_means(2, spacing=2.0).tolist()
    [[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]]
    >>> grid_means().min(axis=0).tolist(), grid_means().max(axis=0).tolist()
    ([-4.0, -4.0], [4.0, 4.0])
    """
    if not isinstance(side, (int, np.integer)) or side < 1:
        raise ValueError(f"side must be a positive integer, got {side!r}")
    if not spacing > 0:
        raise ValueError(f"spacing must be positive, got {spacing}")
    c = float(spacing) * (np.arange(side) - (side - 1) / 2)
    a, b = np.meshgrid(c, c, indexing="ij")
    return np.stack([a.ravel(), b.ravel()], axis=1)


def sample_mixture(n: int, rng: np.random.Generator, means: ArrayLike, std: ArrayLike,
                   weights: Sequence[float] | None = None, return_labels: bool = False):
    """``n`` samples of the isotropic Gaussian mixture ``sum_k w_k N(means[k], std_k^2 I)``, shape ``(n, d)``.

    Parameters
    ----------
    n : int
    rng : numpy.random.Generator
    means : array of shape (k, d)
        One mean per row, any dimension ``d``.
    std : float or array of shape (k,)
        Standard deviation of every coordinate (the covariance is ``std^2 I``).
    weights : sequence of float, optional
        Non-negative, summing to 1; equal weights when omitted.
    return_labels : bool
        Also return the component of each sample, shape ``(n,)``.

    Examples
    --------
    >>> x, k = sample_mixture(1000, np.random.default_rng(0), [[0, 0], [10, 10]], 0.1, return_labels=True)
    >>> x.shape, bool(np.all(np.abs(x - 10 * k[:, None]) < 1))
    ((1000, 2), True)
    """
    means = np.asarray(means, dtype=float)
    if means.ndim != 2 or means.shape[0] < 1 or means.shape[1] < 1:
        raise ValueError(f"means must have shape (k, d), got {means.shape}")
    if not np.all(np.isfinite(means)):
        raise ValueError("means contain NaN or inf")
    k = means.shape[0]
    stds = np.asarray(std, dtype=float)
    if stds.ndim > 1 or (stds.ndim == 1 and stds.shape != (k,)):
        raise ValueError(f"std must be a number or have shape ({k},), got shape {stds.shape}")
    stds = np.broadcast_to(stds, (k,))
    if not np.all(stds > 0) or not np.all(np.isfinite(stds)):
        raise ValueError(f"std must be positive and finite, got {std}")
    p = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, dtype=float)
    if p.shape != (k,) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
        raise ValueError(f"weights must be {k} non-negative numbers summing to 1, got {weights}")
    n = check_n(n)
    labels = rng.choice(k, size=n, p=p)
    x = means[labels] + stds[labels, None] * rng.normal(size=(n, means.shape[1]))
    return (x, labels) if return_labels else x


def sample_ring(n: int, rng: np.random.Generator, k: int = 8, radius: float = 1.0, std: float = 0.01,
                return_labels: bool = False):
    """``n`` samples of the ring: ``k`` equally weighted Gaussians on a circle, shape ``(n, 2)``.

    The defaults are the 2-D ring of PacGAN (Lin et al. 2018; the authors' released
    configuration): 8 modes on the unit circle, standard deviation 0.01 per coordinate.
    See :func:`ring_means` and :func:`sample_mixture`.

    Examples
    --------
    >>> x = sample_ring(10_000, np.random.default_rng(0))
    >>> x.shape, round(float(np.hypot(x[:, 0], x[:, 1]).mean()), 2)
    ((10000, 2), 1.0)
    """
    return sample_mixture(n, rng, ring_means(k, radius), _check_std(std), return_labels=return_labels)


def sample_grid(n: int, rng: np.random.Generator, side: int = 5, spacing: float = 2.0, std: float = 0.05,
                return_labels: bool = False):
    """``n`` samples of the grid: ``side**2`` equally weighted Gaussians, shape ``(n, 2)``.

    The defaults are the 2-D grid of VEEGAN and PacGAN: 25 modes at ``{-4, -2, 0, 2, 4}^2``,
    standard deviation 0.05 per coordinate. See :func:`grid_means` and :func:`sample_mixture`.

    Examples
    --------
    >>> x = sample_grid(10_000, np.random.default_rng(0))
    >>> x.shape, bool(np.abs(x).max() < 4.5)
    ((10000, 2), True)
    """
    return sample_mixture(n, rng, grid_means(side, spacing), _check_std(std), return_labels=return_labels)


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
    """Fraction of 1-D ``samples`` within ``radius`` of each mode centre, shape ``(k,)`` (deprecated alias).

    Deprecated: use :func:`ganlib.metrics.mode_coverage` (the one implementation, for any
    dimension): this is ``metrics.mode_coverage(x[:, None], means[:, None], std=radius,
    threshold=1).counts / n``. It stays for the chapter 03 and appendix A lessons, which call it.
    Each sample counts for its nearest centre if it lies within ``radius`` of it. The rest
    (``1 - sum``) lies away from every mode. Samples may have shape ``(n,)`` or ``(n, 1)``;
    NaN or inf samples raise ``ValueError``.

    Examples
    --------
    >>> mode_coverage([-2.1, -1.9, 2.0, 5.0], [-2, 2], radius=0.5).tolist()
    [0.5, 0.25]
    """
    from ganlib import metrics  # imported here: ganlib.data stays importable on its own

    x = np.ravel(np.asarray(samples, dtype=float))[:, None]
    m = np.atleast_1d(np.asarray(means, dtype=float))
    if m.ndim != 1:
        raise ValueError(f"means must be a 1-D sequence of mode centres, got shape {m.shape}")
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")
    result = metrics.mode_coverage(x, m[:, None], std=radius, threshold=1.0)
    return result.counts / x.shape[0]
