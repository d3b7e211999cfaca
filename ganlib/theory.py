"""The GAN objective in NumPy (chapter 02): stable losses from logits, and densities on a grid.

Losses from logits
    A discriminator outputs a *logit* ``a``; its probability is ``D = sigmoid(a)``.
    Everything here works on logits, because ``log(1 - sigmoid(a))`` computed naively
    is ``log(0) = -inf`` once ``a`` exceeds about 37 (``1 - sigmoid(a)`` rounds to 0),
    and ``exp(-a)`` overflows for ``a < -709.78``. Identities used throughout:
    ``log sigmoid(a) = -softplus(-a)`` and ``log(1 - sigmoid(a)) = -softplus(a)``,
    with ``softplus(a) = log(1 + exp(a)) = max(a, 0) + log1p(exp(-|a|))``.

Densities on a grid
    A 1-D density is its values ``p[i] = p(x[i])`` on a uniform grid of spacing ``dx``
    (:func:`grid`, :func:`discretize`); integrals are ``sum(...) * dx``. Functions taking
    densities validate them (:func:`check_density`): non-negative, ``sum(p) * dx = 1``
    within ``DENSITY_TOL``, matching shapes. Logarithms are natural (nats), ``0 log 0 = 0``.
    :func:`optimal_discriminator`, :func:`value_function`, :func:`optimal_value` (``C(G)``),
    :func:`kl`, :func:`jsd`, and the closed form :func:`gaussian_kl`.

Reference: I. Goodfellow, J. Pouget-Abadie, M. Mirza, B. Xu, D. Warde-Farley, S. Ozair,
A. Courville, Y. Bengio, "Generative Adversarial Nets", NeurIPS 2014 (then called NIPS).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def softplus(a: ArrayLike) -> np.ndarray:
    """``log(1 + exp(a))`` without overflow, elementwise.

    Examples
    --------
    >>> softplus(np.array([-1000.0, 0.0, 1000.0])).round(6).tolist()
    [0.0, 0.693147, 1000.0]
    """
    a = np.asarray(a, dtype=float)
    return np.maximum(a, 0.0) + np.log1p(np.exp(-np.abs(a)))


def sigmoid(a: ArrayLike) -> np.ndarray:
    """``1 / (1 + exp(-a))`` without overflow warnings, elementwise.

    Examples
    --------
    >>> sigmoid(np.array([-800.0, 0.0, 800.0])).tolist()
    [0.0, 0.5, 1.0]
    """
    a = np.asarray(a, dtype=float)
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def log_sigmoid(a: ArrayLike) -> np.ndarray:
    """``log(sigmoid(a)) = -softplus(-a)``, finite for every finite ``a``.

    Examples
    --------
    >>> log_sigmoid(np.array([-100.0, 0.0])).round(6).tolist()
    [-100.0, -0.693147]
    """
    return -softplus(-np.asarray(a, dtype=float))


def bce_with_logits(logits: ArrayLike, targets: ArrayLike) -> float:
    """Mean binary cross-entropy of ``sigmoid(logits)`` against 0/1 (or soft) targets.

    ``-mean(t * log sigmoid(a) + (1 - t) * log(1 - sigmoid(a)))
    = mean(softplus(a) - t * a)``.

    Parameters
    ----------
    logits : array, shape (n,) or any shape
    targets : array, same shape, values in [0, 1]

    Returns
    -------
    float

    Examples
    --------
    >>> round(bce_with_logits(np.array([0.0]), np.array([1.0])), 6)  # -log 0.5
    0.693147
    """
    a = np.asarray(logits, dtype=float)
    t = np.asarray(targets, dtype=float)
    if a.shape != t.shape:
        raise ValueError(f"logits and targets must have the same shape, got {a.shape} and {t.shape}")
    if np.any((t < 0) | (t > 1)):
        raise ValueError("targets must lie in [0, 1]")
    return float(np.mean(softplus(a) - t * a))


def discriminator_loss(real_logits: ArrayLike, fake_logits: ArrayLike) -> float:
    """The discriminator's loss: BCE with label 1 on real and 0 on fake samples.

    ``L_D = -E[log D(x)] - E[log(1 - D(G(z)))] = mean softplus(-a_real) + mean softplus(a_fake)``,
    the negative of the discriminator's part of the value function V(D, G).

    Examples
    --------
    >>> round(discriminator_loss(np.zeros(4), np.zeros(4)), 6)  # D = 1/2 everywhere: log 4
    1.386294
    """
    real = np.asarray(real_logits, dtype=float)
    fake = np.asarray(fake_logits, dtype=float)
    return float(np.mean(softplus(-real)) + np.mean(softplus(fake)))


def generator_loss_saturating(fake_logits: ArrayLike) -> float:
    """Minimax generator loss ``E[log(1 - D(G(z)))] = -mean softplus(a)`` (to be minimised).

    Examples
    --------
    >>> round(generator_loss_saturating(np.zeros(3)), 6)  # log(1/2)
    -0.693147
    """
    return float(-np.mean(softplus(np.asarray(fake_logits, dtype=float))))


def generator_loss_nonsaturating(fake_logits: ArrayLike) -> float:
    """Non-saturating generator loss ``-E[log D(G(z))] = mean softplus(-a)`` (to be minimised).

    Examples
    --------
    >>> round(generator_loss_nonsaturating(np.zeros(3)), 6)
    0.693147
    """
    return float(np.mean(softplus(-np.asarray(fake_logits, dtype=float))))


def generator_loss_grads(fake_logits: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of the per-sample generator *losses* (what G minimises) with respect to the logit ``a``.

    Sign conventions: the saturating loss is the objective ``log(1 - D)`` itself, so its gradient
    is ``-D``. The non-saturating *objective* is ``log D`` (G maximises it), gradient ``+(1 - D)``;
    the *loss* is its negative, ``-log D``, gradient ``-(1 - D)``. This function returns the
    gradients of the two losses; the objective's ``+(1 - D)`` is the negative of the second entry.

    Returns
    -------
    (saturating, nonsaturating) : arrays, same shape as ``fake_logits``
        ``d/da log(1 - sigmoid(a)) = -sigmoid(a) = -D`` and
        ``d/da [-log sigmoid(a)] = -(1 - sigmoid(a)) = -(1 - D)``.
        Both are negative, so descending either loss increases ``a`` (makes the fake look
        more real); the first vanishes as ``D -> 0``, the second tends to -1.

    Examples
    --------
    >>> sat, ns = generator_loss_grads(np.log(0.001 / 0.999))  # D = 0.001
    >>> round(float(sat), 6), round(float(ns), 6)
    (-0.001, -0.999)
    """
    d = sigmoid(fake_logits)
    return -d, -(1.0 - d)


# --------------------------------------------------------------------------- densities on a grid
#
# A 1-D density is represented by its values ``p[i] = p(x[i])`` on a uniform grid with
# spacing ``dx``; integrals are Riemann sums ``sum(f * p) * dx``. Conventions: natural
# logarithms (nats) and ``0 * log 0 = 0``.

DENSITY_TOL = 1e-4


def grid(lo: float, hi: float, n: int) -> tuple[np.ndarray, float]:
    """A uniform grid of ``n`` points on ``[lo, hi]`` and its spacing.

    Returns
    -------
    x : array, shape (n,)
    dx : float

    Examples
    --------
    >>> x, dx = grid(-1.0, 1.0, 5)
    >>> x.tolist(), dx
    ([-1.0, -0.5, 0.0, 0.5, 1.0], 0.5)
    """
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise ValueError(f"need finite lo < hi, got lo={lo}, hi={hi}")
    if int(n) != n or n < 2:
        raise ValueError(f"need an integer n >= 2 grid points, got {n}")
    x = np.linspace(lo, hi, int(n))
    return x, float(x[1] - x[0])


def gaussian_pdf(x: ArrayLike, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    """The normal density ``N(mean, std^2)`` at ``x``, elementwise.

    Examples
    --------
    >>> round(float(gaussian_pdf(0.0)), 6)  # 1 / sqrt(2 pi)
    0.398942
    """
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    z = (np.asarray(x, dtype=float) - mean) / std
    return np.exp(-0.5 * z**2) / (std * np.sqrt(2 * np.pi))


def discretize(pdf, x: ArrayLike) -> np.ndarray:
    """Discretise a 1-D density on a uniform grid: values at ``x``, renormalised so ``sum(p) * dx = 1``.

    Parameters
    ----------
    pdf : callable or array
        A function of ``x`` returning non-negative values, or those values, shape (n,).
        It need not be normalised (mass outside the grid is dropped, the rest rescaled).
    x : array, shape (n,)
        Uniform grid, increasing.

    Returns
    -------
    p : array, shape (n,)
        A grid density that passes :func:`check_density`.

    Examples
    --------
    >>> x, dx = grid(0.0, 1.0, 11)
    >>> p = discretize(lambda t: 1 + t, x)   # unnormalised density proportional to 1 + t
    >>> round(float(p.sum() * dx), 12)
    1.0
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"x must be a 1-D grid with at least 2 points, got shape {x.shape}")
    steps = np.diff(x)
    if not (np.all(steps > 0) and np.allclose(steps, steps[0], rtol=1e-6, atol=0)):
        raise ValueError("x must be a uniform, increasing grid (use grid(lo, hi, n))")
    values = np.asarray(pdf(x) if callable(pdf) else pdf, dtype=float)
    if values.shape != x.shape:
        raise ValueError(f"density values have shape {values.shape}, the grid has shape {x.shape}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("density values must be finite and non-negative")
    mass = values.sum() * steps[0]
    if mass <= 0:
        raise ValueError("the density is zero everywhere on the grid: widen the grid")
    return values / mass


def check_density(p: ArrayLike, dx: float, name: str = "p", tol: float = DENSITY_TOL) -> np.ndarray:
    """Validate a grid density and return it as a float array.

    Raises ``ValueError`` unless ``p`` is finite, non-negative and ``sum(p) * dx`` is 1 within ``tol``.

    Examples
    --------
    >>> check_density([0.5, 0.5], dx=1.0).tolist()
    [0.5, 0.5]
    >>> check_density([0.5, 0.5], dx=0.1)
    Traceback (most recent call last):
    ...
    ValueError: p integrates to 0.1 on the grid (sum(p) * dx), not 1: pass the grid spacing dx, or normalise with discretize(p, x)
    """
    if not (np.isscalar(dx) and np.isfinite(dx) and dx > 0):
        raise ValueError(f"dx must be a positive number (the grid spacing), got {dx!r}")
    arr = np.asarray(p, dtype=float)
    if arr.ndim == 0:
        raise ValueError(f"{name} must be an array of density values on a grid, got a scalar")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    if np.any(arr < 0):
        raise ValueError(f"{name} has negative values (min {arr.min():.3g}): a density is non-negative")
    mass = float(arr.sum() * dx)
    if abs(mass - 1.0) > tol:
        raise ValueError(f"{name} integrates to {mass:.6g} on the grid (sum({name}) * dx), not 1: "
                         f"pass the grid spacing dx, or normalise with discretize({name}, x)")
    return arr


def _same_shape(**arrays: np.ndarray) -> None:
    shapes = {k: np.shape(v) for k, v in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError("shapes must match, got " + ", ".join(f"{k}: {s}" for k, s in shapes.items()))


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x * log(y)`` with ``0 * log(anything) = 0``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x == 0, 0.0, x * np.log(np.where(x == 0, 1.0, y)))


def optimal_discriminator(p_data: ArrayLike, p_g: ArrayLike) -> np.ndarray:
    """The optimal discriminator for a fixed generator, ``D*(x) = p_data(x) / (p_data(x) + p_g(x))``.

    Pointwise, so the inputs may be density values anywhere (no grid needed). Where both
    densities vanish ``D*`` does not affect the value function; 1/2 is returned there.

    Parameters
    ----------
    p_data, p_g : arrays of the same shape, non-negative

    Returns
    -------
    array, same shape, values in [0, 1]

    Examples
    --------
    >>> optimal_discriminator([3.0, 1.0, 0.0, 0.0], [1.0, 1.0, 2.0, 0.0]).tolist()
    [0.75, 0.5, 0.0, 0.5]
    """
    p = np.asarray(p_data, dtype=float)
    q = np.asarray(p_g, dtype=float)
    _same_shape(p_data=p, p_g=q)
    if np.any(p < 0) or np.any(q < 0) or not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
        raise ValueError("p_data and p_g must be finite and non-negative")
    total = p + q
    return np.where(total > 0, p / np.where(total > 0, total, 1.0), 0.5)


def value_function(D: ArrayLike, p_data: ArrayLike, p_g: ArrayLike, dx: float) -> float:
    """``V(D, G) = E_{p_data}[log D(x)] + E_{p_g}[log(1 - D(x))]`` on a grid.

    ``= sum(p_data * log D + p_g * log(1 - D)) * dx`` with ``0 * log 0 = 0``. The value is
    at most ``-log 4 + 2 JSD`` (reached at ``D = D*``) and ``-inf`` when ``D = 0`` where
    ``p_data > 0`` (or ``D = 1`` where ``p_g > 0``).

    Parameters
    ----------
    D : array, shape (n,), values in [0, 1]
        The discriminator's probability "real" at each grid point.
    p_data, p_g : arrays, shape (n,)
        Grid densities (see :func:`check_density`).
    dx : float
        Grid spacing.

    Examples
    --------
    >>> p = np.array([0.5, 0.5])
    >>> round(value_function(np.full(2, 0.5), p, p, dx=1.0), 6)   # -log 4
    -1.386294
    """
    p = check_density(p_data, dx, "p_data")
    q = check_density(p_g, dx, "p_g")
    d = np.asarray(D, dtype=float)
    _same_shape(D=d, p_data=p, p_g=q)
    if not np.all(np.isfinite(d)) or np.any(d < 0) or np.any(d > 1):
        raise ValueError("D must be a probability: values in [0, 1] (apply sigmoid to logits)")
    return float(np.sum(_xlogy(p, d) + _xlogy(q, 1.0 - d)) * dx)


def optimal_value(p_data: ArrayLike, p_g: ArrayLike, dx: float) -> float:
    """The virtual training criterion ``C(G) = max_D V(D, G) = V(D*, G)`` on a grid.

    Equals ``-log 4 + 2 * jsd(p_data, p_g, dx)``; its minimum ``-log 4`` is reached when ``p_g = p_data``.
    Same value as ``value_function(optimal_discriminator(p_data, p_g), p_data, p_g, dx)``, but
    computed from the density ratio directly, so it stays finite where ``1 - D*`` rounds to 0.

    Examples
    --------
    >>> p = np.array([0.25, 0.75])
    >>> round(optimal_value(p, p, dx=1.0), 6)
    -1.386294
    """
    p = check_density(p_data, dx, "p_data")
    q = check_density(p_g, dx, "p_g")
    _same_shape(p_data=p, p_g=q)
    total = p + q
    # p log(p / (p + q)) + q log(q / (p + q)): computed from the densities, not from D*,
    # because 1 - D* rounds to 0 where p_g is tiny but positive, and log(0) would give -inf.
    return float(np.sum(_xlogy(p, p / np.where(total > 0, total, 1.0))
                        + _xlogy(q, q / np.where(total > 0, total, 1.0))) * dx)


def kl(p: ArrayLike, q: ArrayLike, dx: float) -> float:
    """Kullback-Leibler divergence ``KL(p || q) = sum(p * log(p / q)) * dx`` in nats, on a grid.

    Not symmetric; ``inf`` when ``q = 0`` somewhere ``p > 0``; terms with ``p = 0`` count 0.

    Examples
    --------
    >>> round(kl([1.0, 0.0], [0.5, 0.5], dx=1.0), 6)   # log 2
    0.693147
    >>> kl([0.5, 0.5], [1.0, 0.0], dx=1.0)
    inf
    """
    p = check_density(p, dx, "p")
    q = check_density(q, dx, "q")
    _same_shape(p=p, q=q)
    if np.any((p > 0) & (q == 0)):
        return float("inf")
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - np.log(np.where(p > 0, q, 1.0))), 0.0)
    return float(np.sum(terms) * dx)


def jsd(p: ArrayLike, q: ArrayLike, dx: float) -> float:
    """Jensen-Shannon divergence ``JSD(p || q) = KL(p || m) / 2 + KL(q || m) / 2``, ``m = (p + q) / 2``, in nats.

    Symmetric, always finite, between 0 (``p = q``) and ``log 2`` (disjoint supports).
    Two Gaussians have no closed form for it; evaluate it on a grid.

    Examples
    --------
    >>> round(jsd([1.0, 0.0], [0.0, 1.0], dx=1.0), 6)  # disjoint supports: log 2
    0.693147
    """
    p = check_density(p, dx, "p")
    q = check_density(q, dx, "q")
    _same_shape(p=p, q=q)
    m = 0.5 * (p + q)
    return 0.5 * kl(p, m, dx) + 0.5 * kl(q, m, dx)


def gaussian_kl(mean_p: ArrayLike, std_p: ArrayLike, mean_q: ArrayLike, std_q: ArrayLike) -> np.ndarray | float:
    """Closed-form ``KL(N(mean_p, std_p^2) || N(mean_q, std_q^2))`` in nats (broadcasts).

    ``log(std_q / std_p) + (std_p^2 + (mean_p - mean_q)^2) / (2 std_q^2) - 1/2``.

    Examples
    --------
    >>> gaussian_kl(0.0, 1.0, 0.0, 1.0)
    0.0
    >>> gaussian_kl(1.0, 1.0, 0.0, 1.0)   # (mean difference)^2 / 2
    0.5
    """
    mp, sp, mq, sq = (np.asarray(v, dtype=float) for v in (mean_p, std_p, mean_q, std_q))
    if np.any(sp <= 0) or np.any(sq <= 0):
        raise ValueError("standard deviations must be positive")
    out = np.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5
    return float(out) if out.ndim == 0 else out
