"""Two-player zero-sum games and the update rules used to train GANs (chapter 01; the Dirac-GAN, chapter 04).

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
    project : callable or None
        Optional ``project(x, y) -> (x, y)`` applied by :func:`run` after every update
        (e.g. WGAN weight clipping). ``None``: unconstrained.

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
    project: Callable[[ArrayLike, ArrayLike], tuple[ArrayLike, ArrayLike]] | None = None

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


def alternating_round(
    grad: Grad, x: ArrayLike, y: ArrayLike, eta: float, *, n_x: int = 1, n_y: int = 1,
    project: Callable[[ArrayLike, ArrayLike], tuple[ArrayLike, ArrayLike]] | None = None,
) -> tuple[ArrayLike, ArrayLike]:
    """One round of alternating GDA: ``n_x`` steps of player ``x``, then ``n_y`` steps of player ``y``.

    Every sub-step uses the gradient at the current point; ``project`` (if given) is applied
    after each sub-step. With ``n_x = n_y = 1`` and no projection this is :func:`alternating_step`.
    For a GAN with ``x`` = generator and ``y`` = discriminator, ``n_x = n_g`` and ``n_y = n_d``.

    Examples
    --------
    >>> alternating_round(bilinear().grad, 1.0, 1.0, 0.1) == alternating_step(bilinear().grad, 1.0, 1.0, 0.1)
    True
    >>> x, y = alternating_round(bilinear().grad, 1.0, 1.0, 0.1, n_y=2)   # y moves twice by 0.1 * 0.9
    >>> round(x, 12), round(y, 12)
    (0.9, 1.18)
    """
    for _ in range(n_x):
        gx, _ = grad(x, y)
        x = x - eta * gx
        if project is not None:
            x, y = project(x, y)
    for _ in range(n_y):
        _, gy = grad(x, y)
        y = y + eta * gy
        if project is not None:
            x, y = project(x, y)
    return x, y


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
    game: Game | Grad, rule: str, z0: tuple[ArrayLike, ArrayLike], eta: float, steps: int,
    *, n_x: int = 1, n_y: int = 1,
    project: Callable[[ArrayLike, ArrayLike], tuple[ArrayLike, ArrayLike]] | None = None,
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
    n_x, n_y : int, keyword-only
        For ``"alternating"`` only: each update is ``n_x`` steps of player x followed by
        ``n_y`` steps of player y (:func:`alternating_round`). Default 1 and 1.
    project : callable, keyword-only, optional
        ``project(x, y) -> (x, y)`` applied after every (sub-)step; defaults to ``game.project``.
        Row 0 is ``project(z0)`` when a projection is used.

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
    if project is None and isinstance(game, Game):
        project = game.project
    if n_x < 1 or n_y < 1:
        raise ValueError(f"n_x and n_y must be >= 1, got {n_x} and {n_y}")
    if (n_x, n_y) != (1, 1) and rule != "alternating":
        raise ValueError("n_x and n_y only apply to the 'alternating' rule")
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {RULES}")
    if not eta > 0:
        raise ValueError(f"step size eta must be positive, got {eta}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    x, y = (np.asarray(v, dtype=float) for v in z0)
    if x.shape != y.shape:
        raise ValueError(f"x0 and y0 must have the same shape, got {x.shape} and {y.shape}")
    if project is not None:
        x, y = (np.asarray(v, dtype=float) for v in project(x, y))
    out = np.empty((steps + 1, 2, *x.shape))
    out[0] = x, y
    x_prev, y_prev = x, y
    for t in range(steps):
        if rule == "simultaneous":
            x_new, y_new = simultaneous_step(grad, x, y, eta)
        elif rule == "alternating":
            x_new, y_new = alternating_round(grad, x, y, eta, n_x=n_x, n_y=n_y, project=project)
        elif rule == "extragradient":
            x_new, y_new = extragradient_step(grad, x, y, eta)
        else:
            x_new, y_new = optimistic_step(grad, x, y, x_prev, y_prev, eta)
        if project is not None and rule != "alternating":
            x_new, y_new = project(x_new, y_new)
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


def update_matrix(J: np.ndarray, eta: float, rule: str, nx: int | None = None,
                  *, n_x: int = 1, n_y: int = 1) -> np.ndarray:
    """The linear map one step of ``rule`` applies near an equilibrium whose field Jacobian is ``J``.

    With ``v(z) ~ J (z - z*)``:

    - simultaneous: ``I + eta J``
    - alternating: ``(I + eta J_y) (I + eta J_x)``, where ``J_x`` / ``J_y`` keep only the rows of player x / y;
      with ``n_x`` / ``n_y`` steps per round (:func:`alternating_round`): ``(I + eta J_y)^n_y (I + eta J_x)^n_x``
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
    n_x, n_y : int, keyword-only
        Steps of player x and of player y per alternating round (default 1 and 1).

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
        return np.linalg.matrix_power(eye + eta * Jy, n_y) @ np.linalg.matrix_power(eye + eta * Jx, n_x)
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
    - alternating: ``1`` for ``eta < 2`` (eigenvalues on the unit circle). At ``eta = 2`` the
      spectral radius is still 1, but ``-1`` is a defective double eigenvalue (a Jordan block):
      ``|z_t|`` grows linearly in ``t``. Above 2 one eigenvalue is real with modulus above 1.
    - extragradient: ``sqrt(1 - eta^2 + eta^4)``
    - optimistic: largest root modulus of ``lambda^2 - (1 + 2 i eta) lambda + i eta``

    Examples
    --------
    >>> round(bilinear_factor("simultaneous", 0.1), 6)
    1.004988
    >>> bilinear_factor("alternating", 2.0)   # the boundary: radius 1, yet |z_t| grows like t
    1.0
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


# --------------------------------------------------------------------------- the Dirac-GAN (chapter 04)
#
# Mescheder, Geiger, Nowozin 2018, "Which Training Methods for GANs do actually Converge?" (ICML).
# Data: a point mass at 0. Generator: a point mass at theta. Discriminator: D_psi(x) = psi * x.
# Objective L(theta, psi) = f(psi * theta) + f(0): the generator theta minimises it, the
# discriminator psi maximises it. In this module's (x, y) convention: x = theta, y = psi.


@dataclass(frozen=True)
class DiracLoss:
    """The function ``f`` of the GAN objective ``L = E[f(D(G(z)))] + E[f(-D(x))]``, with two derivatives.

    Attributes
    ----------
    name : str
    f, df, d2f : callable
        ``f``, ``f'`` and ``f''``, elementwise on arrays.
    non_saturating : bool
        If True the generator minimises ``-f(-D(G(z)))`` instead of ``f(D(G(z)))``
        (the non-saturating loss of Goodfellow et al. 2014, in this sign convention).

    Examples
    --------
    >>> gan = dirac_loss("gan")
    >>> float(gan.df(0.0)), float(gan.d2f(0.0))
    (0.5, -0.25)
    """

    name: str
    f: Callable[[ArrayLike], ArrayLike]
    df: Callable[[ArrayLike], ArrayLike]
    d2f: Callable[[ArrayLike], ArrayLike]
    non_saturating: bool = False


DIRAC_LOSSES = ("gan", "nsgan", "wgan")
DIRAC_REGULARIZERS = (None, "r1", "r2", "instance_noise", "clip", "wgan_gp", "consensus")


def dirac_loss(name: str = "gan") -> DiracLoss:
    """The standard, non-saturating or Wasserstein ``f``.

    - ``"gan"``: ``f(t) = -log(1 + exp(-t)) = log sigmoid(t)``, ``f'(t) = sigmoid(-t)``,
      ``f''(t) = -sigmoid(t) sigmoid(-t)``; ``f'(0) = 1/2``, ``f''(0) = -1/4``.
    - ``"nsgan"``: the same ``f``, non-saturating generator loss.
    - ``"wgan"``: ``f(t) = t``, ``f' = 1``, ``f'' = 0``.

    Examples
    --------
    >>> round(float(dirac_loss("gan").f(0.0)), 6)   # -log 2
    -0.693147
    """
    from ganlib.theory import sigmoid, softplus

    if name in ("gan", "nsgan"):
        return DiracLoss(name, lambda t: -softplus(-np.asarray(t, dtype=float)),
                         lambda t: sigmoid(-np.asarray(t, dtype=float)),
                         lambda t: -sigmoid(np.asarray(t, dtype=float)) * sigmoid(-np.asarray(t, dtype=float)),
                         non_saturating=name == "nsgan")
    if name == "wgan":
        return DiracLoss(name, lambda t: np.asarray(t, dtype=float), lambda t: np.ones_like(np.asarray(t, dtype=float)),
                         lambda t: np.zeros_like(np.asarray(t, dtype=float)))
    raise ValueError(f"unknown loss {name!r}; choose one of {DIRAC_LOSSES} or pass a DiracLoss")


def _as_loss(loss: str | DiracLoss) -> DiracLoss:
    return loss if isinstance(loss, DiracLoss) else dirac_loss(loss)


def dirac_field(theta: ArrayLike, psi: ArrayLike, loss: str | DiracLoss = "gan") -> tuple[np.ndarray, np.ndarray]:
    """The unregularised Dirac-GAN vector field ``v = (-dL/dtheta, dL/dpsi)``.

    ``v(theta, psi) = (-psi f'(psi theta), theta f'(psi theta))``; for the non-saturating loss
    the generator component is ``-psi f'(-psi theta)``. Broadcasts over arrays.

    Examples
    --------
    >>> v = dirac_field(1.0, 1.0, "wgan")
    >>> float(v[0]), float(v[1])
    (-1.0, 1.0)
    """
    fn = _as_loss(loss)
    theta, psi = np.asarray(theta, dtype=float), np.asarray(psi, dtype=float)
    t = psi * theta
    v_psi = theta * fn.df(t)
    v_theta = -psi * fn.df(-t) if fn.non_saturating else -psi * fn.df(t)
    return v_theta, v_psi


def dirac_field_jacobian(theta: ArrayLike, psi: ArrayLike, loss: str | DiracLoss = "gan") -> np.ndarray:
    """Analytic Jacobian of :func:`dirac_field` at ``(theta, psi)``.

    Returns
    -------
    numpy.ndarray, shape (2, 2, *broadcast shape)
        ``J[i, j] = d v_i / d z_j`` with ``z = (theta, psi)``.

    Examples
    --------
    >>> dirac_field_jacobian(0.0, 0.0, "gan").tolist()
    [[0.0, -0.5], [0.5, 0.0]]
    """
    fn = _as_loss(loss)
    theta, psi = np.broadcast_arrays(np.asarray(theta, dtype=float), np.asarray(psi, dtype=float))
    t = psi * theta
    d1, d2 = fn.df(t), fn.d2f(t)
    if fn.non_saturating:
        m1, m2 = fn.df(-t), fn.d2f(-t)
        j00, j01 = psi**2 * m2, -m1 + t * m2
    else:
        j00, j01 = -(psi**2) * d2, -d1 - t * d2
    j10, j11 = d1 + t * d2, theta**2 * d2
    return np.array([[j00, j01], [j10, j11]], dtype=float) + 0.0  # + 0.0 turns -0.0 into 0.0


def _gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights with ``E[g(Z)] ~ sum w g(x)`` for ``Z ~ N(0, 1)``."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    x, w = (x - x[::-1]) / 2, (w + w[::-1]) / 2  # exactly symmetric, so the noise has mean exactly 0
    return x, w / np.sqrt(2 * np.pi)


def dirac_gan(
    loss: str | DiracLoss = "gan",
    regularizer: str | None = None,
    *,
    gamma: float = 0.0,
    sigma: float = 0.0,
    clip: float = 1.0,
    g0: float = 1.0,
    nodes: int = 40,
) -> Game:
    """The Dirac-GAN as a :class:`Game` with player ``x = theta`` (generator) and ``y = psi`` (discriminator).

    ``L(theta, psi) = f(psi theta) + f(0)``; the discriminator maximises ``L - R(psi)``.

    Parameters
    ----------
    loss : {"gan", "nsgan", "wgan"} or DiracLoss
    regularizer : None or str
        - ``"r1"`` / ``"r2"``: zero-centred gradient penalty ``gamma/2 |grad_x D|^2`` on data / on generated
          samples; both equal ``gamma/2 psi^2`` here, so ``v_psi -= gamma psi``.
        - ``"instance_noise"``: Gaussian noise of std ``sigma`` added to data and generated samples; the
          expectation over the noise is computed exactly enough by ``nodes``-point Gauss-Hermite quadrature
          (deterministic).
        - ``"clip"``: WGAN weight clipping, ``psi`` projected onto ``[-clip, clip]`` after every update.
        - ``"wgan_gp"``: ``gamma/2 (|psi| - g0)^2``, so ``v_psi -= gamma (|psi| - g0) sign(psi)``.
        - ``"consensus"``: consensus optimisation (Mescheder et al. 2017), ``v - gamma J(z)^T v(z)``,
          the field minus ``gamma`` times the gradient of ``|v|^2 / 2``.
    gamma, sigma, clip, g0, nodes : float / int, keyword-only

    Returns
    -------
    Game
        ``value`` is the discriminator's (regularised) objective; ``grad`` returns
        ``(dL_G/dtheta, d(L - R)/dpsi)``, so ``game.field`` is the training vector field.

    Examples
    --------
    >>> g = dirac_gan("gan", "r1", gamma=0.3)
    >>> [round(float(v), 6) for v in g.field(1.0, 1.0)]
    [-0.268941, -0.031059]
    """
    fn = _as_loss(loss)
    if regularizer not in DIRAC_REGULARIZERS:
        raise ValueError(f"unknown regularizer {regularizer!r}; choose one of {DIRAC_REGULARIZERS}")
    if min(gamma, sigma) < 0 or clip <= 0:
        raise ValueError("gamma and sigma must be >= 0 and clip > 0")
    f0 = float(fn.f(0.0))
    name = f"Dirac-GAN, {fn.name}" + ("" if regularizer is None else f", {regularizer}")
    project = None

    def value(theta, psi):
        return fn.f(psi * theta) + f0

    base = lambda theta, psi: dirac_field(theta, psi, fn)

    if regularizer is None:
        field_fn = base
    elif regularizer in ("r1", "r2"):
        name += f" gamma={gamma:g}"

        def field_fn(theta, psi):
            v1, v2 = base(theta, psi)
            return v1, v2 - gamma * np.asarray(psi, dtype=float)

        value = lambda theta, psi: fn.f(psi * theta) + f0 - 0.5 * gamma * psi**2
    elif regularizer == "wgan_gp":
        name += f" gamma={gamma:g} g0={g0:g}"

        def field_fn(theta, psi):
            v1, v2 = base(theta, psi)
            psi = np.asarray(psi, dtype=float)
            return v1, v2 - gamma * (np.abs(psi) - g0) * np.sign(psi)

        value = lambda theta, psi: fn.f(psi * theta) + f0 - 0.5 * gamma * (np.abs(psi) - g0) ** 2
    elif regularizer == "clip":
        name += f" c={clip:g}"
        field_fn = base

        def project(theta, psi):
            return theta, np.clip(psi, -clip, clip)
    elif regularizer == "consensus":
        name += f" gamma={gamma:g}"

        def field_fn(theta, psi):
            v = np.array(base(theta, psi))
            J = dirac_field_jacobian(theta, psi, fn)
            jtv = np.einsum("ji...,j...->i...", J, v)
            return v[0] - gamma * jtv[0], v[1] - gamma * jtv[1]
    else:  # instance noise
        name += f" sigma={sigma:g}"
        eps, w = _gauss_hermite(nodes)

        def _expect(values):
            return np.tensordot(w, values, axes=(0, 0))

        def field_fn(theta, psi):
            theta, psi = np.asarray(theta, dtype=float), np.asarray(psi, dtype=float)
            e = (sigma * eps).reshape((-1,) + (1,) * np.broadcast(theta, psi).ndim)
            fake = theta + e
            gen_df = fn.df(-psi * fake) if fn.non_saturating else fn.df(psi * fake)
            v1 = _expect(-psi * gen_df)
            v2 = _expect(fake * fn.df(psi * fake) - e * fn.df(-psi * e))
            return v1, v2

        def value(theta, psi):
            theta, psi = np.asarray(theta, dtype=float), np.asarray(psi, dtype=float)
            e = (sigma * eps).reshape((-1,) + (1,) * np.broadcast(theta, psi).ndim)
            return _expect(fn.f(psi * (theta + e)) + fn.f(-psi * e))

    def grad(theta, psi):
        v1, v2 = field_fn(theta, psi)
        return -v1, v2

    return Game(name, value, grad, (0.0, 0.0), project)


DIRAC_METHODS: dict[str, dict] = {
    "gan": dict(loss="gan"),
    "nsgan": dict(loss="nsgan"),
    "wgan": dict(loss="wgan", regularizer="clip", clip=1.0),
    "wgan_gp": dict(loss="wgan", regularizer="wgan_gp", gamma=0.7, g0=1.0),
    "instance_noise": dict(loss="gan", regularizer="instance_noise", sigma=0.7),
    "gradient_penalty": dict(loss="gan", regularizer="r1", gamma=0.3),
    "gradient_penalty_critical": dict(loss="gan", regularizer="r1", gamma=1.0),
    "consensus": dict(loss="gan", regularizer="consensus", gamma=1.0),
}
"""The eight training methods compared by Mescheder et al. (2018) on the Dirac-GAN, as ``dirac_gan`` arguments."""


def dirac_jacobian(loss: str | DiracLoss = "gan", regularizer: str | None = None, *,
                   gamma: float = 0.0, sigma: float = 0.0) -> np.ndarray:
    """Closed-form Jacobian of the Dirac-GAN training field at the equilibrium ``(0, 0)``.

    With ``a = f'(0)`` and ``b = f''(0)``:

    - none / ``"clip"`` (inactive at 0) / non-saturating: ``[[0, -a], [a, 0]]``
    - ``"r1"``, ``"r2"``: ``[[0, -a], [a, -gamma]]``
    - ``"instance_noise"``: ``[[0, -a], [a, 2 b sigma^2]]`` (noise on data and on samples each add ``b sigma^2``)
    - ``"consensus"``: ``J0 - gamma J0^T J0 = [[-gamma a^2, -a], [a, -gamma a^2]]``
    - ``"wgan_gp"``: the field jumps at ``psi = 0`` (``sign(psi)``), so there is no Jacobian: ValueError.

    Examples
    --------
    >>> dirac_jacobian("gan", "r1", gamma=0.3).tolist()
    [[0.0, -0.5], [0.5, -0.3]]
    """
    fn = _as_loss(loss)
    a, b = float(fn.df(0.0)), float(fn.d2f(0.0))
    J = np.array([[0.0, -a], [a, 0.0]])
    if regularizer in (None, "clip"):
        return J
    if regularizer in ("r1", "r2"):
        return J + np.array([[0.0, 0.0], [0.0, -gamma]])
    if regularizer == "instance_noise":
        return J + np.array([[0.0, 0.0], [0.0, 2 * b * sigma**2]])
    if regularizer == "consensus":
        return J - gamma * J.T @ J
    if regularizer == "wgan_gp":
        raise ValueError("the WGAN-GP field is discontinuous at psi = 0: no Jacobian at the equilibrium")
    raise ValueError(f"unknown regularizer {regularizer!r}; choose one of {DIRAC_REGULARIZERS}")


def dirac_eigenvalues(loss: str | DiracLoss = "gan", regularizer: str | None = None, *,
                      gamma: float = 0.0, sigma: float = 0.0) -> np.ndarray:
    """Closed-form eigenvalues of :func:`dirac_jacobian`, ``[mean + root, mean - root]``.

    - none / clip: ``+- f'(0) i``
    - R1 / R2: ``-gamma/2 +- sqrt(gamma^2/4 - f'(0)^2)``
    - instance noise: ``f''(0) sigma^2 +- sqrt(f''(0)^2 sigma^4 - f'(0)^2)``
    - consensus: ``-gamma f'(0)^2 +- f'(0) i``

    Returns
    -------
    numpy.ndarray of complex, shape (2,)

    Examples
    --------
    >>> dirac_eigenvalues("gan", "r1", gamma=0.3).round(5).tolist()
    [(-0.15+0.47697j), (-0.15-0.47697j)]
    """
    fn = _as_loss(loss)
    a, b = float(fn.df(0.0)), float(fn.d2f(0.0))
    if regularizer in (None, "clip"):
        mean, disc = 0.0, -a * a
    elif regularizer in ("r1", "r2"):
        mean, disc = -gamma / 2, gamma**2 / 4 - a * a
    elif regularizer == "instance_noise":
        mean, disc = b * sigma**2, b * b * sigma**4 - a * a
    elif regularizer == "consensus":
        mean, disc = -gamma * a * a, -a * a
    else:
        dirac_jacobian(fn, regularizer)  # raises the right error
        raise AssertionError  # pragma: no cover
    root = np.sqrt(complex(disc))
    return np.array([mean + root, mean - root])


def critical_gamma(fprime0: float) -> float:
    """Smallest R1/R2 weight with real eigenvalues at the equilibrium: ``gamma_c = 2 f'(0)`` (1 for the GAN).

    Below it the iterates spiral in; at it the Jacobian has the double eigenvalue ``-f'(0)``,
    the fastest decay of the continuous-time dynamics; above it one eigenvalue moves back to 0.

    Examples
    --------
    >>> critical_gamma(0.5)
    1.0
    """
    return 2.0 * float(fprime0)


def alternating_eigenvalues(h: float, fprime0: float, n_g: int = 1, n_d: int = 1) -> np.ndarray:
    """Eigenvalues of the alternating update of the unregularised Dirac-GAN near equilibrium.

    ``lambda = 1 - a^2/2 +- sqrt((1 - a^2/2)^2 - 1)`` with ``a = sqrt(n_g n_d) h f'(0)``: distinct and on
    the unit circle for ``a < 2`` (the determinant is 1). At ``a = 2`` both are ``-1``, a defective double
    root, and the iterates grow linearly; for ``a > 2`` one is real with modulus above 1.

    Examples
    --------
    >>> alternating_eigenvalues(0.2, 0.5, 1, 5).round(6).tolist()
    [(0.975+0.222205j), (0.975-0.222205j)]
    """
    a2 = n_g * n_d * (h * fprime0) ** 2
    c = 1 - a2 / 2
    root = np.sqrt(complex(c * c - 1))
    return np.array([c + root, c - root])


def measured_rate(traj: np.ndarray, start: int | None = None, jordan: bool = False) -> float:
    """Per-step growth factor of the distance to ``(0, 0)``: ``(r_T / r_s) ** (1 / (T - s))``.

    Parameters
    ----------
    traj : array, shape (T + 1, 2)
        A trajectory from :func:`run`.
    start : int, optional
        First step used (default ``T // 2``, to skip transients).
    jordan : bool
        The update matrix has a double eigenvalue (a Jordan block), so ``r_t ~ t rho^t``:
        divide ``r_t`` by ``t`` first to measure ``rho``.

    Examples
    --------
    >>> traj = run(bilinear(), "simultaneous", (0.1, 0.0), 0.2, 100)
    >>> round(measured_rate(traj), 6)     # sqrt(1 + 0.2^2)
    1.019804
    """
    traj = np.asarray(traj, dtype=float)
    r = np.hypot(traj[:, 0], traj[:, 1])
    T = len(r) - 1
    if jordan:
        r = r / np.maximum(np.arange(T + 1), 1)
    s = T // 2 if start is None else start
    return float((r[T] / r[s]) ** (1.0 / (T - s)))
