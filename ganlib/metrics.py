"""Sample-based metrics for GANs: mode coverage on mixtures (chapter 06), and FID, precision and
recall, classifier score and class coverage for images (chapter 09).

**Mode coverage** (chapter 06). For a mixture of isotropic Gaussians with means ``mu_1 .. mu_k`` and standard deviation
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

**Image metrics** (chapter 09). Everything runs offline on a CPU. Inception weights are not available offline and fit 28x28
digits badly, so the course uses its own small MNIST classifier (:func:`mnist_classifier`, in
:mod:`ganlib.classifier`, whose names are importable from here too) as the feature extractor:
its penultimate layer gives the features of FID and precision/recall, its softmax the
classifier score and class coverage. FID numbers computed this way measure the same thing as
Inception-FID but **cannot be compared with published Inception-FID numbers**.

About 820 lines: one job, the metrics of chapters 06 and 09 and the evaluation protocol,
each metric next to its input checks.

Shapes: images ``(n, 1, H, W)`` float in ``[-1, 1]`` (the range of a tanh generator); features
``(n, d)``; class probabilities ``(n, C)``.

References
----------
Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", NeurIPS 2017 (FID). Salimans et al., "Improved Techniques for Training GANs",
NeurIPS 2016 (Inception Score). Kynkaanniemi et al., "Improved Precision and Recall Metric
for Assessing Generative Models", NeurIPS 2019.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ganlib.classifier import (CLASSIFIER_CONFIG, IMAGE_SIZE, _extract, _mnist, cache_dir, check_images,
                               classifier_accuracy, config_hash, extract_features, mnist_classifier, predict_proba)

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "ModeCoverage", "mode_coverage", "nearest_mode", "reverse_kl_uniform", "high_quality_ceiling",
    "frechet_distance", "feature_statistics", "fid", "classifier_score", "class_coverage", "ClassCoverage",
    "precision_recall", "PrecisionRecall", "knn_radii", "nearest_neighbours", "extract_features",
    "predict_proba", "check_images", "generate", "mnist_classifier", "classifier_accuracy",
    "CLASSIFIER_CONFIG", "cache_dir", "config_hash", "IMAGE_SIZE", "evaluate", "format_evaluation",
]

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


# --------------------------------------------------------------------------- Frechet distance


def _as_matrix(sigma, d: int, name: str) -> np.ndarray:
    s = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
    if s.shape != (d, d):
        raise ValueError(f"{name} should have shape ({d}, {d}) to match the mean, got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{name} contains NaN or inf")
    scale = max(float(np.abs(s).max()), 1e-300)
    if np.abs(s - s.T).max() > 1e-8 * scale:
        raise ValueError(f"{name} is not symmetric (max |S - S^T| = {np.abs(s - s.T).max():.3g}): "
                         "pass a covariance matrix, e.g. np.cov(x, rowvar=False)")
    return (s + s.T) / 2


def _psd_sqrt(s: np.ndarray, name: str, tol: float = 1e-8) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix, from its eigendecomposition.

    Eigenvalues a little below zero (rounding in a near-singular covariance) are set to zero;
    clearly negative ones (below ``-tol * largest``) mean the matrix is not a covariance.
    """
    w, v = np.linalg.eigh(s)
    floor = -tol * max(float(np.abs(w).max()), 1e-300)
    if w.min() < floor:
        raise ValueError(f"{name} is not positive semi-definite (eigenvalue {w.min():.3g}): not a covariance matrix")
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1, sigma2) -> float:
    """``Tr (S1 S2)^{1/2}`` for symmetric positive semi-definite ``S1``, ``S2``.

    ``S1 S2`` is not symmetric, but it is similar to ``A S2 A`` with ``A = S1^{1/2}``
    (``A^{-1} (A A S2) A = A S2 A``), which is symmetric positive semi-definite: same
    eigenvalues, all real and non-negative. So the trace is the sum of the square roots of
    the eigenvalues of ``A S2 A``, computed with ``eigh``; no complex numbers appear.
    Eigenvalues that rounding pushed slightly below zero are checked (they must be tiny
    compared with the largest) and then set to zero.

    Examples
    --------
    >>> round(trace_sqrt_product(np.diag([1.0, 4.0]), np.diag([9.0, 1.0])), 12)   # sqrt(9) + sqrt(4)
    5.0
    """
    s1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    s2 = _as_matrix(sigma2, s1.shape[0], "sigma2")
    s1 = _as_matrix(s1, s1.shape[0], "sigma1")
    a = _psd_sqrt(s1, "sigma1")
    m = a @ s2 @ a
    w = np.linalg.eigvalsh((m + m.T) / 2)
    largest = max(float(np.abs(w).max()), 1e-300)
    if w.min() < -1e-8 * largest:
        raise ValueError(f"S1^(1/2) S2 S1^(1/2) has eigenvalue {w.min():.3g}: sigma2 is not positive semi-definite")
    return float(np.sqrt(np.clip(w, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``: the squared 2-Wasserstein distance.

    ``d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})`` (Heusel et al. 2017). The matrix
    square root is computed stably (see :func:`trace_sqrt_product`); singular covariances, as
    with fewer samples than feature dimensions, are fine.

    Parameters
    ----------
    mu1, mu2 : array_like, shape (d,)
    sigma1, sigma2 : array_like, shape (d, d)
        Symmetric positive semi-definite. A scalar is read as a 1x1 variance.

    Returns
    -------
    float
        Non-negative; tiny negative results from rounding are returned as 0. Accuracy: about
        1e-12 relative for well-conditioned covariances, about 1e-8 relative at singular ones
        (the square root of a rounding error).

    Examples
    --------
    >>> frechet_distance([0.0], [[1.0]], [1.0], [[4.0]])   # 1 + (1 + 4 - 2 * 2)
    2.0
    >>> frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(3))
    0.0
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"mu1 and mu2 should be vectors of the same length, got shapes {mu1.shape} and {mu2.shape}")
    if not (np.all(np.isfinite(mu1)) and np.all(np.isfinite(mu2))):
        raise ValueError("mu1 or mu2 contains NaN or inf")
    d = mu1.shape[0]
    s1, s2 = _as_matrix(sigma1, d, "sigma1"), _as_matrix(sigma2, d, "sigma2")
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))
    scale = float(diff @ diff + np.trace(s1) + np.trace(s2))
    # Mathematically value >= 0. At a singular covariance a zero eigenvalue comes out as +-1e-16
    # and its square root as 1e-8, so rounding can push value slightly below zero: allow that.
    if value < -1e-6 * max(scale, 1e-12):
        raise ValueError(f"negative Frechet distance {value:.3g}: the covariances are not valid")
    return max(value, 0.0)


def feature_statistics(feats) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and covariance ``(d, d)`` (unbiased, ``n - 1``) of features ``(n, d)``, in float64.

    Examples
    --------
    >>> mu, sigma = feature_statistics(np.array([[0.0, 1.0], [2.0, 3.0]]))
    >>> mu.tolist(), sigma.tolist()
    ([1.0, 2.0], [[2.0, 2.0], [2.0, 2.0]])
    """
    x = _as_features(feats, "feats")
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 samples for a covariance, got {x.shape[0]}")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _as_features(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} should be a 2-D array (n, d) of features, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def fid_from_features(real_feats, fake_feats) -> float:
    """FID between two feature sets ``(n, d)`` and ``(m, d)``: the Frechet distance of their Gaussian fits.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(500, 4))
    >>> round(fid_from_features(x, x), 9), round(fid_from_features(x, x + 1.0), 9)   # a shift by (1, 1, 1, 1)
    (0.0, 4.0)
    """
    return frechet_distance(*feature_statistics(real_feats), *feature_statistics(fake_feats))


# --------------------------------------------------------------------------- classifier score, coverage


def classifier_score(probs) -> float:
    """The classifier score (the Inception Score's analogue): ``exp(E_x KL(p(y|x) || p(y)))``.

    ``p(y)`` is the mean of the rows. The score lies in ``[1, C]``: 1 when every sample gets
    the same prediction (or every prediction is uniform), ``C`` when predictions are confident
    (one-hot) and the classes are used equally (Salimans et al. 2016; they average over 10
    splits of the samples, which this function leaves to the caller).

    Parameters
    ----------
    probs : array_like, shape (n, C)
        Rows are probability vectors (non-negative, summing to 1).

    Examples
    --------
    >>> classifier_score(np.eye(10))        # confident and balanced: the maximum
    10.0
    >>> classifier_score(np.full((5, 10), 0.1))   # uninformative: the minimum
    1.0
    """
    p = _as_features(probs, "probs")
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("probs should have non-negative rows summing to 1 (apply softmax to logits first)")
    marginal = p.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - np.log(np.where(marginal > 0, marginal, 1.0))), 0.0)
    kl = terms.sum(axis=1)
    score = float(np.exp(kl.mean()))
    return min(max(score, 1.0), float(p.shape[1]))  # clip rounding just outside [1, C]


class ClassCoverage(NamedTuple):
    """Histogram of predicted classes. ``covered``: classes with at least ``min_fraction`` of the samples;
    ``effective``: ``exp(entropy)`` of the histogram (1 for one class, C for a uniform spread)."""

    counts: np.ndarray
    fractions: np.ndarray
    covered: int
    effective: float


def class_coverage(labels_or_probs, num_classes: int = 10, min_fraction: float = 0.01) -> ClassCoverage:
    """How many classes the samples fall into: a mode-collapse detector (chapter 06's mode counting, on digits).

    Parameters
    ----------
    labels_or_probs : array_like, shape (n,) integer labels or (n, C) probabilities (argmax taken)
    num_classes : int
    min_fraction : float
        A class counts as covered when it receives at least this fraction of the samples
        (default 1%, a tenth of a uniform share for 10 classes), so that a few misclassified
        samples of a collapsed generator do not count as coverage.

    Examples
    --------
    >>> cov = class_coverage([3, 3, 3, 7])
    >>> cov.counts.tolist(), cov.covered
    ([0, 0, 0, 3, 0, 0, 0, 1, 0, 0], 2)
    """
    a = labels_or_probs.detach().cpu().numpy() if hasattr(labels_or_probs, "detach") else np.asarray(labels_or_probs)
    if a.ndim == 2:
        if a.shape[1] != num_classes:
            raise ValueError(f"probs should have {num_classes} columns, got shape {a.shape}")
        labels = a.argmax(axis=1)
    elif a.ndim == 1:
        if a.size and not np.all(np.equal(np.mod(a, 1), 0)):
            raise ValueError("labels should be integers; pass probabilities as an (n, C) array")
        labels = a.astype(np.int64)
    else:
        raise ValueError(f"expected labels (n,) or probabilities (n, C), got shape {a.shape}")
    if labels.size == 0:
        raise ValueError("no samples")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels should lie in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}")
    counts = np.bincount(labels, minlength=num_classes)
    fractions = counts / counts.sum()
    nz = fractions[fractions > 0]
    effective = float(np.exp(-(nz * np.log(nz)).sum()))
    return ClassCoverage(counts, fractions, int((fractions >= min_fraction).sum()), effective)


# --------------------------------------------------------------------------- nearest neighbours, precision/recall


def _torch_features(x, device, dtype):
    import torch

    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        t = torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype=np.float64)))
    if t.ndim != 2:
        raise ValueError(f"features should be a 2-D array (n, d), got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError("features contain NaN or inf")
    return t.to(device=device, dtype=dtype)


def _setup(device):
    import torch

    device = torch.device("cpu") if device is None else torch.device(device)
    dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
    return device, dtype


def _chunk_rows(n_cols: int, max_elements: int) -> int:
    return max(1, max_elements // max(n_cols, 1))


def nearest_neighbours(queries, references, k: int = 1, *, exclude_self: bool = False, device=None,
                       max_elements: int = 2**22) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest references (Euclidean) of each query, computed in chunks of queries.

    Memory stays bounded by ``max_elements`` distances at a time (32 MiB in float64 by
    default), so 50,000 x 50,000 works on a laptop.

    Parameters
    ----------
    queries : array_like, shape (n, d)
    references : array_like, shape (m, d)
    k : int
    exclude_self : bool
        ``queries`` and ``references`` are the same set: skip each point's own zero distance.
    device : torch device, optional (default CPU)
    max_elements : int
        Distances held at once.

    Returns
    -------
    distances : ndarray, shape (n, k), ascending
    indices : ndarray of int64, shape (n, k), rows of ``references``

    Examples
    --------
    >>> ref = np.array([[0.0], [1.0], [3.0]])
    >>> d, i = nearest_neighbours(np.array([[0.9], [2.5]]), ref, k=2)
    >>> np.round(d, 6).tolist(), i.tolist()
    ([[0.1, 0.9], [0.5, 1.5]], [[1, 0], [2, 1]])
    """
    import torch

    device, dtype = _setup(device)
    q = _torch_features(queries, device, dtype)
    if references is None and not exclude_self:
        raise ValueError("references is None: pass the reference features, or exclude_self=True for a set against itself")
    r = q if references is None else _torch_features(references, device, dtype)
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} features, references {r.shape[1]}")
    if exclude_self and q.shape[0] != r.shape[0]:
        raise ValueError("exclude_self needs queries and references to be the same set")
    available = r.shape[0] - (1 if exclude_self else 0)
    if not 1 <= k <= available:
        raise ValueError(f"k must be between 1 and {available} (the number of references), got {k}")
    r_sq = (r * r).sum(dim=1)
    step = _chunk_rows(r.shape[0], max_elements)
    dists, idxs = [], []
    for start in range(0, q.shape[0], step):
        qc = q[start:start + step]
        d2 = (qc * qc).sum(dim=1, keepdim=True) + r_sq[None, :] - 2.0 * qc @ r.T
        if exclude_self:
            rows = torch.arange(qc.shape[0], device=device)
            d2[rows, rows + start] = float("inf")
        vals, ind = torch.topk(d2, k, dim=1, largest=False)
        dists.append(vals.clamp_min(0).sqrt().cpu())
        idxs.append(ind.cpu())
    return torch.cat(dists).double().numpy(), torch.cat(idxs).numpy()


def knn_radii(feats, k: int = 3, **kwargs) -> np.ndarray:
    """Distance from each sample to its ``k``-th nearest neighbour in the same set (itself excluded), ``(n,)``.

    Examples
    --------
    >>> knn_radii(np.array([[0.0], [1.0], [3.0], [7.0]]), k=2).tolist()
    [3.0, 2.0, 3.0, 6.0]
    """
    d, _ = nearest_neighbours(feats, None, k, exclude_self=True, **kwargs)
    return d[:, -1]


def _inside_any_ball(points, centres, radii, device, max_elements) -> np.ndarray:
    """Boolean ``(n,)``: is ``points[i]`` within ``radii[j]`` of some ``centres[j]``?"""
    import torch

    device, dtype = _setup(device)
    p, c = _torch_features(points, device, dtype), _torch_features(centres, device, dtype)
    r2 = torch.as_tensor(np.asarray(radii, dtype=np.float64), device=device, dtype=dtype) ** 2
    c_sq = (c * c).sum(dim=1)
    step = _chunk_rows(c.shape[0], max_elements)
    out = []
    for start in range(0, p.shape[0], step):
        pc = p[start:start + step]
        d2 = ((pc * pc).sum(dim=1, keepdim=True) + c_sq[None, :] - 2.0 * pc @ c.T).clamp_min(0)
        out.append((d2 <= r2[None, :]).any(dim=1).cpu())
    return torch.cat(out).numpy()


class PrecisionRecall(NamedTuple):
    """Improved precision and recall (Kynkaanniemi et al. 2019), each in [0, 1]."""

    precision: float
    recall: float


def precision_recall(real_feats, fake_feats, k: int = 3, *, device=None, max_elements: int = 2**22) -> PrecisionRecall:
    """Improved precision and recall of Kynkaanniemi et al. (NeurIPS 2019).

    Each real sample gets a ball reaching its ``k``-th nearest real neighbour; their union
    estimates the real manifold. **Precision** is the fraction of fake samples inside that
    manifold (quality), **recall** the fraction of real samples inside the fake manifold built
    the same way from the fakes (diversity). Distances are computed in chunks, so memory stays
    bounded (see :func:`nearest_neighbours`).

    Parameters
    ----------
    real_feats : array_like, shape (n, d)
    fake_feats : array_like, shape (m, d)
    k : int
        Neighbourhood size; the paper uses 3.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(200, 2))
    >>> precision_recall(x, x)
    PrecisionRecall(precision=1.0, recall=1.0)
    """
    real_r = knn_radii(real_feats, k, device=device, max_elements=max_elements)
    fake_r = knn_radii(fake_feats, k, device=device, max_elements=max_elements)
    precision = _inside_any_ball(fake_feats, real_feats, real_r, device, max_elements).mean()
    recall = _inside_any_ball(real_feats, fake_feats, fake_r, device, max_elements).mean()
    return PrecisionRecall(float(precision), float(recall))


def _latent_dim(G) -> int:
    for attr in ("latent_dim", "nz", "z_dim"):
        if isinstance(getattr(G, attr, None), int):
            return int(getattr(G, attr))
    for m in G.modules():
        if hasattr(m, "in_features"):
            return int(m.in_features)
        if hasattr(m, "in_channels"):
            return int(m.in_channels)
    raise ValueError("cannot tell the generator's latent dimension: pass latent_dim=...")


def generate(G, n: int, latent_dim: int | None = None, *, batch_size: int = 500, device=None,
             seed: int = 0) -> "torch.Tensor":
    """``n`` samples of a generator, in eval mode and without gradients, returned on the CPU.

    ``G`` is a module mapping noise ``z ~ N(0, I)`` of shape ``(batch, latent_dim)`` to images, or
    any callable ``sample(n) -> Tensor``. It runs where its parameters are, unless ``device`` is given. The noise comes from its own seeded generator, so
    global random state is untouched.

    Examples
    --------
    >>> import torch
    >>> G = torch.nn.Sequential(torch.nn.Linear(8, 784), torch.nn.Tanh(), torch.nn.Unflatten(1, (1, 28, 28)))
    >>> generate(G, 5).shape
    torch.Size([5, 1, 28, 28])
    """
    import torch
    from torch import nn

    from ganlib.utils import default_device

    if not isinstance(G, nn.Module):
        if not callable(G):
            raise TypeError(f"expected a generator module or a callable sample(n), got {type(G).__name__}")
        return torch.as_tensor(G(n)).detach().cpu()
    params = list(G.parameters())
    if device is None:  # where G already is
        device = params[0].device if params else default_device()
    device = torch.device(device)
    latent_dim = _latent_dim(G) if latent_dim is None else int(latent_dim)
    was_training = G.training
    G.eval()
    gen = torch.Generator().manual_seed(int(seed))
    G.to(device)
    z_all = torch.randn(n, latent_dim, generator=gen)  # all at once: the samples do not depend on batch_size
    out = []
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                out.append(G(z_all[start:start + batch_size].to(device)).float().cpu())
    finally:
        G.train(was_training)
    return torch.cat(out)


# --------------------------------------------------------------------------- the evaluation protocol


def _subset(x, n: int, seed: int, what: str):
    import torch

    if not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if n > x.shape[0]:
        raise ValueError(f"n = {n} is larger than {what} ({x.shape[0]} images): use n <= {x.shape[0]}")
    if n == x.shape[0]:
        return x
    return x[torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(int(seed)))[:n]]


def _fake_images(fake, n: int, seed: int, latent_dim, batch_size, device):
    import torch

    if callable(fake) and not isinstance(fake, (np.ndarray, torch.Tensor)):
        return check_images(generate(fake, n, latent_dim, batch_size=batch_size, device=device, seed=seed), "samples")
    return _subset(check_images(fake, "samples"), n, seed, "the number of samples")


def fid(fake, real=None, extractor=None, n: int = 10_000, *, seed: int = 0, latent_dim: int | None = None,
        batch_size: int = 500, device=None, root=None) -> float:
    """Frechet Inception Distance with the course's MNIST features: FID between ``n`` fakes and ``n`` reals.

    Parameters
    ----------
    fake : images ``(m, 1, H, W)`` in ``[-1, 1]`` (m >= n; a seeded random subset of n is used),
        or a generator module (``n`` samples are drawn with :func:`generate`), or a callable ``sample(n)``.
    real : images, optional
        The reference set; default: the 10,000 MNIST test digits.
    extractor : module, optional
        Feature extractor; default: :func:`mnist_classifier`'s penultimate layer.
    n : int
        Samples on each side. FID is biased upwards at small n: compare numbers only at the
        same n, next to the real-vs-real floor at that n (see :func:`evaluate`).
    seed : int
        Seed of the subsets and of the generator's noise.

    Returns
    -------
    float

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(300, 1, 28, 28) * 2 - 1
    >>> fid(x, x, torch.nn.Flatten(), n=300) < 1e-6
    True
    """
    real = _mnist("test", root)[0] if real is None else real
    real = _subset(check_images(real, "real images"), n, seed, "the real set")
    extractor = mnist_classifier(root, device=device) if extractor is None else extractor
    fake = _fake_images(fake, n, seed, latent_dim, batch_size, device)
    return fid_from_features(_extract(real, extractor, batch_size, device),
                             _extract(fake, extractor, batch_size, device, name="samples"))


def _scores(feats, probs, ref_feats, k, device) -> dict:
    pr = precision_recall(ref_feats, feats, k, device=device)
    cov = class_coverage(probs)
    return {"fid": fid_from_features(ref_feats, feats), "precision": pr.precision, "recall": pr.recall,
            "classifier_score": classifier_score(probs), "classes_covered": cov.covered,
            "effective_classes": cov.effective, "class_counts": cov.counts.tolist()}


def evaluate(fake, n: int = 10_000, *, k: int = 3, classifier=None, floor: bool = True, seed: int = 0,
             latent_dim: int | None = None, batch_size: int = 500, device=None, root=None) -> dict:
    """The course's evaluation protocol: FID, precision, recall, classifier score, class coverage.

    ``n`` fakes are compared with ``n`` MNIST test digits (a seeded subset when ``n < 10,000``),
    all in the feature space of :func:`mnist_classifier`. With ``floor=True`` the same numbers
    are computed for ``n`` *training* digits in place of the fakes: the real-vs-real floor, a reference
    for FID at this ``n`` (FID is biased upwards at finite n); not a bound on precision or recall.

    Parameters
    ----------
    fake : images ``(m, 1, H, W)`` in ``[-1, 1]``, a generator module or a callable ``sample(n)``
        (see :func:`fid`).
    n : int
        At most 10,000 (the size of the test set).
    k : int
        Neighbourhood size of precision and recall.

    Returns
    -------
    dict
        ``n``, ``k``, ``fid``, ``precision``, ``recall``, ``classifier_score``, ``classes_covered``,
        ``effective_classes``, ``class_counts`` and, with ``floor``, ``floor`` (the same keys for
        real training digits).
    """
    import torch

    real = _subset(_mnist("test", root)[0], n, seed, "the MNIST test set")
    fake = _fake_images(fake, n, seed, latent_dim, batch_size, device)
    net = mnist_classifier(root, device=device) if classifier is None else classifier
    ref_feats = _extract(real, net, batch_size, device)

    def scores(images, name):
        feats, logits = _extract(images, net, batch_size, device, with_logits=True, name=name)
        probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
        return _scores(feats, probs, ref_feats, k, device)

    out = {"n": int(n), "k": int(k), **scores(fake, "samples")}
    if floor:
        train = _subset(_mnist("train", root)[0], n, seed + 1, "the MNIST training set")
        out["floor"] = scores(train, "training digits")
    return out


_ROWS = [("FID", "fid", "{:.3f}"), ("precision", "precision", "{:.3f}"), ("recall", "recall", "{:.3f}"),
         ("classifier score", "classifier_score", "{:.2f}"), ("classes covered", "classes_covered", "{} / 10"),
         ("effective classes", "effective_classes", "{:.2f}")]


def format_evaluation(result: dict) -> str:
    """The evaluation table: one row per metric, the samples next to the real-vs-real floor."""
    floor = result.get("floor")
    head = ["metric", "samples"] + (["real vs real"] if floor else [])
    rows = [[name, fmt.format(result[key])] + ([fmt.format(floor[key])] if floor else []) for name, key, fmt in _ROWS]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    text = [f"n = {result['n']} samples vs {result['n']} MNIST test digits; features and classes from the "
            "course's MNIST classifier", line(head), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]
    return "\n".join(text)
