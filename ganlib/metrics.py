"""Mode coverage on mixtures with known modes (chapter 06), as VEEGAN and PacGAN measure it.

For a mixture of isotropic Gaussians with means ``mu_1 .. mu_k`` and standard deviation
``sigma`` (Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN):

- a sample is **high quality** if it lies within ``3 sigma`` of its nearest mean;
- a mode is **captured** if it is the nearest mode of at least one high-quality sample;
- the **reverse KL** compares the histogram ``p`` of the high-quality samples over their
  nearest modes with the uniform distribution: ``KL(p || u) = sum_j p_j log(k p_j)``
  (``0 log 0 = 0``), which is 0 for a perfectly balanced generator and ``log k`` for one
  that puts every sample on one mode. As in the PacGAN authors' evaluation code, only
  high-quality samples enter the histogram.

Everything is vectorised: the ``(n, k)`` table of distances is computed at once.
NumPy only; torch tensors are accepted as input and converted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["ModeCoverage", "mode_coverage", "nearest_mode", "reverse_kl_uniform", "high_quality_ceiling"]

# above this many entries in the (n, k, d) difference array, distances are computed in blocks of rows
_BLOCK_ENTRIES = 1 << 24


def _as_array(x, what: str) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu().double().numpy()
    try:
        return np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be numeric (an array or a tensor), got {type(x).__name__}") from None


def _check_samples_means(samples, means) -> tuple[np.ndarray, np.ndarray]:
    x, m = _as_array(samples, "samples"), _as_array(means, "means")
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
        raise ValueError(f"means must have shape (k, d), one mode per row, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("means contain NaN or inf")
    if x.ndim != 2:
        hint = " (for 1-D data pass x[:, None])" if x.ndim == 1 else ""
        raise ValueError(f"samples must have shape (n, d), one sample per row, got shape {x.shape}{hint}")
    if x.shape[1] != m.shape[1]:
        raise ValueError(f"samples have dimension {x.shape[1]} but the means have dimension {m.shape[1]}: "
                         f"samples {x.shape} and means {m.shape} must agree in their last axis")
    if x.shape[0] == 0:
        raise ValueError("samples is an empty batch (0 rows): mode coverage needs at least one sample")
    bad = ~np.all(np.isfinite(x), axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(f"{bad.sum()} of {x.shape[0]} samples contain NaN or inf (rows {rows[:5].tolist()}"
                         f"{' ...' if rows.size > 5 else ''}): did training diverge?")
    return x, m


def nearest_mode(samples: ArrayLike, means: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest mean of each sample and the Euclidean distance to it.

    Parameters
    ----------
    samples : array of shape (n, d)
    means : array of shape (k, d)

    Returns
    -------
    index : int array of shape (n,)
    distance : float array of shape (n,)

    Examples
    --------
    >>> idx, dist = nearest_mode([[0.9, 0.0], [0.0, -3.0]], [[1.0, 0.0], [0.0, -1.0]])
    >>> idx.tolist(), dist.round(6).tolist()
    ([0, 1], [0.1, 2.0])
    """
    x, m = _check_samples_means(samples, means)
    n, k, d = x.shape[0], m.shape[0], m.shape[1]
    block = max(1, _BLOCK_ENTRIES // (k * d))
    idx = np.empty(n, dtype=np.intp)
    dist2 = np.empty(n)
    for start in range(0, n, block):  # one block (all rows) unless n * k * d > 2**24
        diff = x[start:start + block, None, :] - m[None, :, :]
        d2 = np.einsum("nkd,nkd->nk", diff, diff)
        j = np.argmin(d2, axis=1)
        idx[start:start + block] = j
        dist2[start:start + block] = d2[np.arange(j.size), j]
    return idx, np.sqrt(dist2)


def reverse_kl_uniform(counts: ArrayLike) -> float:
    """``KL(p || uniform)`` for the histogram ``p = counts / sum(counts)`` over ``k`` bins, in nats.

    Equals ``log k - H(p)``; empty bins contribute 0 (``0 log 0 = 0``). All-zero counts
    (no sample to make a histogram from) give ``inf``.

    Examples
    --------
    >>> reverse_kl_uniform([5, 5, 5, 5])
    0.0
    >>> bool(np.isclose(reverse_kl_uniform([7, 0, 0, 0]), np.log(4)))
    True
    """
    c = _as_array(counts, "counts")
    if c.ndim != 1 or c.size < 1:
        raise ValueError(f"counts must be a non-empty 1-D array, got shape {c.shape}")
    if np.any(c < 0) or not np.all(np.isfinite(c)):
        raise ValueError(f"counts must be non-negative and finite, got {c}")
    total = c.sum()
    if total == 0:
        return math.inf
    p = c[c > 0] / total
    return max(0.0, float(np.sum(p * np.log(p * c.size))))


@dataclass(frozen=True)
class ModeCoverage:
    """The result of :func:`mode_coverage`.

    Attributes
    ----------
    modes : int
        Modes captured (nearest mode of at least one high-quality sample).
    high_quality : float
        Fraction of samples within ``threshold`` standard deviations of their nearest mode.
    reverse_kl : float
        ``KL(p || uniform)`` of the high-quality samples' histogram over modes (nats);
        ``inf`` when no sample is high quality.
    counts : int array of shape (k,)
        High-quality samples per mode.
    """

    modes: int
    high_quality: float
    reverse_kl: float
    counts: np.ndarray = field(repr=False)

    @property
    def k(self) -> int:
        """Number of modes of the mixture."""
        return int(self.counts.size)

    def __str__(self) -> str:
        return (f"{self.modes}/{self.k} modes, {100 * self.high_quality:.1f}% high quality, "
                f"reverse KL {self.reverse_kl:.2f}")


def mode_coverage(samples: ArrayLike, means: ArrayLike, std: ArrayLike, *, threshold: float = 3.0) -> ModeCoverage:
    """Modes captured, fraction of high-quality samples and reverse KL (VEEGAN / PacGAN), any dimension.

    Parameters
    ----------
    samples : array or tensor of shape (n, d)
        Generated samples (the papers use n = 2,500).
    means : array of shape (k, d)
        The mixture's means.
    std : float or array of shape (k,)
        The mixture's standard deviation per coordinate (one per mode, or shared).
    threshold : float
        A sample is high quality if its distance to the nearest mean is at most
        ``threshold * std`` of that mode (3 in both papers).

    Returns
    -------
    ModeCoverage

    Raises
    ------
    ValueError
        For samples of the wrong shape or dimension, an empty batch, NaN or inf samples,
        or a non-positive ``std`` or ``threshold``.

    Examples
    --------
    >>> means = [[1.0, 0.0], [-1.0, 0.0]]
    >>> r = mode_coverage([[1.02, 0.0], [0.99, 0.01], [0.0, 0.5]], means, std=0.01)
    >>> r.modes, round(r.high_quality, 3), bool(np.isclose(r.reverse_kl, np.log(2))), r.counts.tolist()
    (1, 0.667, True, [2, 0])
    >>> print(r)
    1/2 modes, 66.7% high quality, reverse KL 0.69
    """
    x, m = _check_samples_means(samples, means)
    k = m.shape[0]
    s = _as_array(std, "std")
    if s.ndim > 1 or (s.ndim == 1 and s.shape != (k,)):
        raise ValueError(f"std must be a number or one per mode, shape ({k},), got shape {s.shape}")
    s = np.broadcast_to(s, (k,))
    if not (np.all(s > 0) and np.all(np.isfinite(s))):
        raise ValueError(f"std must be positive and finite, got {std}")
    if not (threshold > 0 and math.isfinite(threshold)):
        raise ValueError(f"threshold must be positive, got {threshold}")
    idx, dist = nearest_mode(x, m)
    good = dist <= threshold * s[idx]
    counts = np.bincount(idx[good], minlength=k)
    return ModeCoverage(modes=int(np.count_nonzero(counts)), high_quality=float(good.mean()),
                        reverse_kl=reverse_kl_uniform(counts), counts=counts)


def high_quality_ceiling(dim: int = 2, threshold: float = 3.0) -> float:
    """The fraction of a perfect generator's samples that are high quality: ``P(||Z|| <= threshold)``, ``Z ~ N(0, I_dim)``.

    ``||Z||^2`` is chi-squared with ``dim`` degrees of freedom, so this is the regularised
    lower incomplete gamma function ``P(dim / 2, threshold^2 / 2)``; in 2-D it is
    ``1 - exp(-threshold^2 / 2)``, 98.89% for 3 standard deviations (not 100%, and not the
    1-D 99.73%). Assumes modes far apart compared with ``threshold * std``.

    Examples
    --------
    >>> round(high_quality_ceiling(2), 4), round(1 - math.exp(-4.5), 4)
    (0.9889, 0.9889)
    >>> round(high_quality_ceiling(1), 4)   # the familiar 99.73% of the 3-sigma rule
    0.9973
    """
    if not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    if not threshold >= 0:
        raise ValueError(f"threshold must be non-negative, got {threshold}")
    a, x = dim / 2.0, threshold**2 / 2.0
    if x == 0:
        return 0.0
    # series P(a, x) = x^a e^-x / Gamma(a + 1) * sum_j x^j / ((a + 1) ... (a + j))
    term, total, j = 1.0, 1.0, 0
    while term > 1e-17 * total:
        j += 1
        term *= x / (a + j)
        total += term
    return min(1.0, math.exp(a * math.log(x) - x - math.lgamma(a + 1)) * total)
