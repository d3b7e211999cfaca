"""The GAN objective in NumPy: numerically stable losses from logits (chapter 02).

A discriminator outputs a *logit* ``a``; its probability is ``D = sigmoid(a)``.
Everything here works on logits, because ``log(sigmoid(a))`` computed naively
overflows to ``-inf`` (and its gradient to NaN) once ``|a|`` reaches a few dozen.

Identities used throughout:
``log sigmoid(a) = -softplus(-a)`` and ``log(1 - sigmoid(a)) = -softplus(a)``,
with ``softplus(a) = log(1 + exp(a)) = max(a, 0) + log1p(exp(-|a|))``.
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
    """Gradients of the per-sample generator losses with respect to the logit ``a``.

    Returns
    -------
    (saturating, nonsaturating) : arrays, same shape as ``fake_logits``
        ``d/da log(1 - sigmoid(a)) = -sigmoid(a) = -D`` and
        ``d/da [-log sigmoid(a)] = -(1 - sigmoid(a)) = -(1 - D)``.
        Both point the same way (increase ``a``); the first vanishes as ``D -> 0``.

    Examples
    --------
    >>> sat, ns = generator_loss_grads(np.log(0.001 / 0.999))  # D = 0.001
    >>> round(float(sat), 6), round(float(ns), 6)
    (-0.001, -0.999)
    """
    d = sigmoid(fake_logits)
    return -d, -(1.0 - d)
