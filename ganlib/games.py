"""Two-player zero-sum games and the update rules used to train GANs.

A game is ``min_x max_y f(x, y)``: player ``x`` descends ``f``, player ``y`` ascends it.
It is given by its value ``f`` and its gradient ``grad(x, y) -> (df/dx, df/dy)``.
The *vector field* of gradient descent-ascent (GDA) is ``v(x, y) = (-df/dx, +df/dy)``;
every update rule below is a different way of following it.

Players may be scalars or NumPy arrays of any (matching) shape; ``run`` stacks the
iterates into one trajectory array.

References
----------
Korpelevich 1976, "The extragradient method for finding saddle points and other problems".
Mescheder, Nowozin, Geiger 2017, "The Numerics of GANs" (NeurIPS).
Daskalakis, Ilyas, Syrgkanis, Zeng 2018, "Training GANs with Optimism" (ICLR).
Gidel, Berard, Vignoud, Vincent, Lacoste-Julien 2019, "A Variational Inequality
Perspective on Generative Adversarial Networks" (ICLR).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

ArrayLike = float | np.ndarray
Grad = Callable[[ArrayLike, ArrayLike], tuple[ArrayLike, ArrayLike]]

RULES = ("simultaneous", "alternating", "extragradient", "optimistic")


@dataclass(frozen=True)
class Game:
    """A two-player zero-sum game ``min_x max_y value(x, y)``.

    Attributes
    ----------
    name : str
        Human-readable name, used in plot titles.
    value : callable
        ``value(x, y)``, broadcasting over arrays.
    grad : callable
        ``grad(x, y) -> (df/dx, df/dy)``, broadcasting over arrays.
    equilibrium : tuple of float
        A Nash equilibrium ``(x*, y*)``.

    Examples
    --------
    >>> g = bilinear()
    >>> g.field(1.0, 2.0)
    (-2.0, 1.0)
    """

    name: str
    value: Callable[[ArrayLike, ArrayLike], ArrayLike]
    grad: Grad
    equilibrium: tuple[float, float] = field(default=(0.0, 0.0))

    def field(self, x: ArrayLike, y: ArrayLike) -> tuple[ArrayLike, ArrayLike]:
        """GDA vector field ``(-df/dx, df/dy)``: the direction both players move in."""
        gx, gy = self.grad(x, y)
        return -gx, gy

    def field_flat(self, z: np.ndarray) -> np.ndarray:
        """The vector field for scalar players as a map ``R^2 -> R^2`` (for Jacobians)."""
        vx, vy = self.field(z[0], z[1])
        return np.array([vx, vy], dtype=float)


def bilinear() -> Game:
    """The bilinear game ``f(x, y) = x * y``, equilibrium ``(0, 0)``.

    Examples
    --------
    >>> bilinear().grad(3.0, 5.0)
    (5.0, 3.0)
    """
    return Game("bilinear  f = xy", lambda x, y: x * y, lambda x, y: (y, x))


def regularized_bilinear(mu: float) -> Game:
    """``f(x, y) = mu/2 x^2 + x y - mu/2 y^2``: strongly convex-concave for ``mu > 0``.

    The equilibrium is ``(0, 0)`` and the Jacobian of the GDA field there is
    ``[[-mu, -1], [1, -mu]]`` with eigenvalues ``-mu +- i``.

    Examples
    --------
    >>> regularized_bilinear(0.5).grad(1.0, 1.0)
    (1.5, 0.5)
    """
    if mu < 0:
        raise ValueError(f"mu must be >= 0, got {mu}")
    return Game(
        f"regularized bilinear  mu = {mu:g}",
        lambda x, y: 0.5 * mu * x * x + x * y - 0.5 * mu * y * y,
        lambda x, y: (mu * x + y, x - mu * y),
    )


# --------------------------------------------------------------------------- update rules


def simultaneous_step(grad: Grad, x: ArrayLike, y: ArrayLike, eta: float) -> tuple[ArrayLike, ArrayLike]:
    """One step of simultaneous gradient descent-ascent.

    ``x' = x - eta * df/dx(x, y)``, ``y' = y + eta * df/dy(x, y)``: both players use the old point.

    Examples
    --------
    >>> simultaneous_step(bilinear().grad, 1.0, 1.0, 0.1)
    (0.9, 1.1)
    """
    gx, gy = grad(x, y)
    return x - eta * gx, y + eta * gy


def alternating_step(grad: Grad, x: ArrayLike, y: ArrayLike, eta: float) -> tuple[ArrayLike, ArrayLike]:
    """One step of alternating GDA: ``x`` moves first, then ``y`` responds to the *new* ``x``.

    Examples
    --------
    >>> alternating_step(bilinear().grad, 1.0, 1.0, 0.1)
    (0.9, 1.09)
    """
    gx, _ = grad(x, y)
    x_new = x - eta * gx
    _, gy = grad(x_new, y)
    return x_new, y + eta * gy


def extragradient_step(grad: Grad, x: ArrayLike, y: ArrayLike, eta: float) -> tuple[ArrayLike, ArrayLike]:
    """One extragradient step: a look-ahead GDA step, then a step from the *old* point with the look-ahead gradient.

    Examples
    --------
    >>> x, y = extragradient_step(bilinear().grad, 1.0, 1.0, 0.1)
    >>> round(x, 6), round(y, 6)
    (0.89, 1.09)
    """
    gx, gy = grad(x, y)
    x_half, y_half = x - eta * gx, y + eta * gy
    gx_half, gy_half = grad(x_half, y_half)
    return x - eta * gx_half, y + eta * gy_half


def optimistic_step(
    grad: Grad, x: ArrayLike, y: ArrayLike, x_prev: ArrayLike, y_prev: ArrayLike, eta: float
) -> tuple[ArrayLike, ArrayLike]:
    """One optimistic GDA step: ``x' = x - 2 eta g_x(z_t) + eta g_x(z_{t-1})``, and likewise for ``y``.

    Examples
    --------
    >>> x, y = optimistic_step(bilinear().grad, 1.0, 1.0, 1.0, 1.0, 0.1)  # first step = plain GDA
    >>> round(x, 12), round(y, 12)
    (0.9, 1.1)
    """
    gx, gy = grad(x, y)
    gx_prev, gy_prev = grad(x_prev, y_prev)
    return x - 2 * eta * gx + eta * gx_prev, y + 2 * eta * gy - eta * gy_prev


def run(
    game: Game | Grad, rule: str, z0: tuple[ArrayLike, ArrayLike], eta: float, steps: int
) -> np.ndarray:
    """Run an update rule and return the whole trajectory.

    Parameters
    ----------
    game : Game or callable
        The game, or directly its ``grad(x, y)``.
    rule : {"simultaneous", "alternating", "extragradient", "optimistic"}
    z0 : (x0, y0)
        Starting point. Optimistic GDA uses ``z_{-1} = z0``, so its first step is plain GDA.
    eta : float
        Step size, > 0.
    steps : int
        Number of updates, >= 0.

    Returns
    -------
    numpy.ndarray, shape (steps + 1, 2, *x.shape)
        Row ``t`` is ``(x_t, y_t)``; row 0 is ``z0``.

    Examples
    --------
    >>> traj = run(bilinear(), "simultaneous", (1.0, 0.0), eta=0.1, steps=10)
    >>> traj.shape
    (11, 2)
    """
    grad = game.grad if isinstance(game, Game) else game
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {RULES}")
    if not eta > 0:
        raise ValueError(f"step size eta must be positive, got {eta}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    x, y = (np.asarray(v, dtype=float) for v in z0)
    if x.shape != y.shape:
        raise ValueError(f"x0 and y0 must have the same shape, got {x.shape} and {y.shape}")
    out = np.empty((steps + 1, 2, *x.shape))
    out[0] = x, y
    x_prev, y_prev = x, y
    for t in range(steps):
        if rule == "simultaneous":
            x_new, y_new = simultaneous_step(grad, x, y, eta)
        elif rule == "alternating":
            x_new, y_new = alternating_step(grad, x, y, eta)
        elif rule == "extragradient":
            x_new, y_new = extragradient_step(grad, x, y, eta)
        else:
            x_new, y_new = optimistic_step(grad, x, y, x_prev, y_prev, eta)
        x_prev, y_prev, x, y = x, y, x_new, y_new
        out[t + 1] = x, y
    return out


# --------------------------------------------------------------------------- linear analysis


def jacobian(fn: Callable[[np.ndarray], np.ndarray], z: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Jacobian of ``fn: R^n -> R^m`` at ``z`` by central finite differences.

    Parameters
    ----------
    fn : callable
        Maps a float array of shape (n,) to shape (m,).
    z : array, shape (n,)
    eps : float
        Step; the truncation error is O(eps^2).

    Returns
    -------
    numpy.ndarray, shape (m, n)

    Examples
    --------
    >>> jacobian(bilinear().field_flat, np.zeros(2)).round(6).tolist()
    [[0.0, -1.0], [1.0, 0.0]]
    """
    z = np.asarray(z, dtype=float)
    cols = []
    for i in range(z.size):
        dz = np.zeros_like(z)
        dz[i] = eps
        cols.append((np.asarray(fn(z + dz), dtype=float) - np.asarray(fn(z - dz), dtype=float)) / (2 * eps))
    return np.stack(cols, axis=-1)


def update_matrix(J: np.ndarray, eta: float, rule: str, nx: int | None = None) -> np.ndarray:
    """The linear map one step of ``rule`` applies near an equilibrium whose field Jacobian is ``J``.

    With ``v(z) ~ J (z - z*)``:

    - simultaneous: ``I + eta J``
    - alternating: ``(I + eta J_y) (I + eta J_x)``, where ``J_x`` / ``J_y`` keep only the rows of player x / y
    - extragradient: ``I + eta J + eta^2 J^2``
    - optimistic: on the stacked state ``(z_t, z_{t-1})``, ``[[I + 2 eta J, -eta J], [I, 0]]``

    Parameters
    ----------
    J : array, shape (n, n)
        Jacobian of the GDA field ``(-df/dx, df/dy)`` at the equilibrium.
    eta : float
    rule : str
        One of ``RULES``.
    nx : int, optional
        Number of coordinates belonging to player x (default ``n // 2``); used by "alternating".

    Returns
    -------
    numpy.ndarray, shape (n, n), or (2n, 2n) for "optimistic"

    Examples
    --------
    >>> J = np.array([[0.0, -1.0], [1.0, 0.0]])
    >>> update_matrix(J, 0.1, "alternating")
    array([[ 1.  , -0.1 ],
           [ 0.1 ,  0.99]])
    """
    J = np.asarray(J, dtype=float)
    if J.ndim != 2 or J.shape[0] != J.shape[1]:
        raise ValueError(f"J must be a square matrix, got shape {J.shape}")
    n = J.shape[0]
    eye = np.eye(n)
    if rule == "simultaneous":
        return eye + eta * J
    if rule == "alternating":
        nx = n // 2 if nx is None else nx
        Jx, Jy = np.zeros_like(J), np.zeros_like(J)
        Jx[:nx], Jy[nx:] = J[:nx], J[nx:]
        return (eye + eta * Jy) @ (eye + eta * Jx)
    if rule == "extragradient":
        return eye + eta * J + eta**2 * J @ J
    if rule == "optimistic":
        return np.block([[eye + 2 * eta * J, -eta * J], [eye, np.zeros((n, n))]])
    raise ValueError(f"unknown rule {rule!r}; choose one of {RULES}")


def spectral_radius(M: np.ndarray) -> float:
    """Largest eigenvalue modulus of a square matrix: the asymptotic per-step growth factor.

    Examples
    --------
    >>> round(spectral_radius(np.array([[0.0, -2.0], [2.0, 0.0]])), 12)
    2.0
    """
    return float(np.max(np.abs(np.linalg.eigvals(np.asarray(M, dtype=float)))))


def bilinear_factor(rule: str, eta: float) -> float:
    """Closed-form per-step factor of ``|z|`` for the bilinear game ``f = xy``.

    - simultaneous: ``sqrt(1 + eta^2)`` (spirals out)
    - alternating: ``1`` for ``eta <= 2`` (eigenvalues on the unit circle)
    - extragradient: ``sqrt(1 - eta^2 + eta^4)``
    - optimistic: largest root modulus of ``lambda^2 - (1 + 2 i eta) lambda + i eta``

    Examples
    --------
    >>> round(bilinear_factor("simultaneous", 0.1), 6)
    1.004988
    """
    if rule == "simultaneous":
        return float(np.sqrt(1 + eta**2))
    if rule == "alternating":
        # eigenvalues of [[1, -eta], [eta, 1 - eta^2]]: det 1, trace 2 - eta^2
        tr = 2 - eta**2
        if abs(tr) <= 2:
            return 1.0
        return float(max(abs(np.roots([1.0, -tr, 1.0]))))
    if rule == "extragradient":
        return float(np.sqrt(1 - eta**2 + eta**4))
    if rule == "optimistic":
        return float(max(abs(np.roots([1.0, -(1 + 2j * eta), 1j * eta]))))
    raise ValueError(f"unknown rule {rule!r}; choose one of {RULES}")
