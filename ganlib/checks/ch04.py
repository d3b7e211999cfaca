"""Chapter 04, training dynamics of the Dirac-GAN: graded questions.

Answers are compared with ganlib's Dirac-GAN on freshly drawn random losses ``f``
(scaled logistic losses with random ``f'(0)`` and ``f''(0)``), random array-valued
players and random hyperparameters; eigenvalues are checked against the eigenvalues
of a finite-difference Jacobian, and the classification against simulation.
"""

from __future__ import annotations

import numpy as np

from ganlib import games
from ganlib.theory import sigmoid, softplus
from ganlib.grading import CheckFailed, expect_close, expect_tuple, question, summarize

METHOD_NAMES = tuple(games.DIRAC_METHODS)


class _LossTerm:
    """``f``, ``f'`` or ``f''`` (``order`` 0, 1, 2) of ``f(t) = (c / a) log sigmoid(a t)``, or of the WGAN
    loss ``f(t) = t`` when ``a`` is None.

    A module-level class, not a lambda: the grader hands ``f'`` to the learner's code in its
    worker process, so it must be picklable.
    """

    def __init__(self, order: int, a: float | None = None, c: float | None = None):
        self.order, self.a, self.c = order, a, c

    def __call__(self, t):
        t = np.asarray(t, dtype=float)
        a, c = self.a, self.c
        if a is None:
            return (t, np.ones_like(t), np.zeros_like(t))[self.order]
        if self.order == 0:
            return -(c / a) * softplus(-a * t)
        if self.order == 1:
            return c * sigmoid(-a * t)
        return -c * a * sigmoid(a * t) * sigmoid(-a * t)


def random_loss(rng: np.random.Generator) -> games.DiracLoss:
    """``f(t) = (c / a) log sigmoid(a t)``: ``f'(t) = c sigmoid(-a t)``, ``f'(0) = c/2``, ``f''(0) = -c a / 4``."""
    a, c = (float(v) for v in rng.uniform(0.5, 2.5, size=2))
    return games.DiracLoss(f"scaled logistic a={a:.3g} c={c:.3g}", _LossTerm(0, a, c), _LossTerm(1, a, c),
                           _LossTerm(2, a, c))


def _wgan_loss() -> games.DiracLoss:
    """``games.dirac_loss("wgan")`` with picklable functions."""
    return games.DiracLoss("wgan", _LossTerm(0), _LossTerm(1), _LossTerm(2))


def _players(rng):
    shape = (int(rng.integers(2, 6)),)
    return rng.normal(scale=1.5, size=shape), rng.normal(scale=1.5, size=shape)


def _check_field(got, want, wrongs, name):
    got = expect_tuple(got, name, ("v_theta", "v_psi"))
    for i, player in enumerate(("v_theta (generator)", "v_psi (discriminator)")):
        expect_close(got[i], want[i], f"{name}: {player}", rtol=1e-7, atol=1e-10,
                     wrong={h: w[i] for h, w in wrongs.items() if not np.allclose(w[i], want[i])})


@question("q1", "Dirac-GAN gradient field", 2, needs=["dirac_field"])
def check_q1(rng, dirac_field):
    for loss in (random_loss(rng), _wgan_loss()):
        theta, psi = _players(rng)
        fp = loss.df
        want = games.dirac_field(theta, psi, loss)
        t = psi * theta
        wrongs = {
            "the generator minimises L, so it moves against dL/dtheta: v_theta = -psi f'(psi theta).":
                (psi * fp(t), theta * fp(t)),
            "the discriminator maximises L, so it moves along dL/dpsi: v_psi = +theta f'(psi theta).":
                (-psi * fp(t), -theta * fp(t)),
            "chain rule: d f(psi theta)/dtheta = psi f'(psi theta) (the factors are swapped).":
                (-theta * fp(t), psi * fp(t)),
            "that is the non-saturating generator, -psi f'(-psi theta); this question asks for the zero-sum game.":
                (-psi * fp(-t), theta * fp(t)),
        }
        _check_field(dirac_field(theta.copy(), psi.copy(), fp), want, wrongs, "dirac_field")


@question("q2", "R1-regularised field", 2, needs=["r1_field"])
def check_q2(rng, r1_field):
    loss = random_loss(rng)
    theta, psi = _players(rng)
    gamma = float(rng.uniform(0.1, 2.0))
    want = games.dirac_gan(loss, "r1", gamma=gamma).field(theta, psi)
    v1, v2 = games.dirac_field(theta, psi, loss)
    wrongs = {
        "the penalty gamma/2 psi^2 is *subtracted* from the discriminator's objective, so v_psi gets -gamma psi.":
            (v1, v2 + gamma * psi),
        "d/dpsi (gamma/2 psi^2) = gamma psi, not gamma/2 psi.": (v1, v2 - 0.5 * gamma * psi),
        "the gradient penalty acts on the discriminator only; the generator's component is unchanged.":
            (v1 - gamma * theta, v2),
        "the regulariser is missing: v_psi should include -gamma psi.": (v1, v2),
    }
    _check_field(r1_field(theta.copy(), psi.copy(), loss.df, gamma), want, wrongs, "r1_field")


def _expect_eigs(got, want, what, wrongs):
    try:
        got = np.asarray(got, dtype=complex).ravel()
    except (TypeError, ValueError):
        raise CheckFailed(f"{what} should return two (complex) numbers, got {summarize(got)}") from None
    if got.shape != (2,):
        raise CheckFailed(f"{what} should return 2 eigenvalues, got {got.shape[0]}")
    if not np.all(np.isfinite(got)):
        raise CheckFailed(f"{what} contains NaN or inf: {_eigs(got)}")
    g, w = np.sort_complex(got), np.sort_complex(np.asarray(want, dtype=complex))
    stack = lambda z: np.concatenate([np.sort_complex(np.round(z, 8)).real, np.sort_complex(np.round(z, 8)).imag])
    if np.allclose(stack(got), stack(want), atol=1e-6):
        return
    for hint, value in wrongs.items():
        if np.allclose(stack(got), stack(np.asarray(value, dtype=complex)), atol=1e-6):
            raise CheckFailed(f"{what} is wrong: {hint}")
    raise CheckFailed(f"{what} = {_eigs(g)}, expected {_eigs(w)}")


def _eigs(z: np.ndarray) -> str:
    return "[" + ", ".join(f"{complex(v).real:.6g}{complex(v).imag:+.6g}j" for v in np.ravel(z)[:4]) + "]"


@question("q3", "instance-noise eigenvalues", 2, needs=["instance_noise_eigenvalues"])
def check_q3(rng, instance_noise_eigenvalues):
    for _ in range(3):
        loss = random_loss(rng)
        sigma = float(rng.uniform(0.2, 1.5))
        a, b = float(loss.df(0.0)), float(loss.d2f(0.0))
        game = games.dirac_gan(loss, "instance_noise", sigma=sigma)
        want = np.linalg.eigvals(games.jacobian(game.field_flat, np.zeros(2)))
        half = b * sigma**2 / 2
        wrongs = {
            "noise is added to the real data *and* to the generated samples: each contributes f''(0) sigma^2 / 2 "
            "to the mean, so the real part is f''(0) sigma^2.":
                [half + np.sqrt(complex(half**2 - a * a)), half - np.sqrt(complex(half**2 - a * a))],
            "sign: f''(0) < 0, and the real part f''(0) sigma^2 is negative (damping).":
                [-b * sigma**2 + np.sqrt(complex(b * b * sigma**4 - a * a)),
                 -b * sigma**2 - np.sqrt(complex(b * b * sigma**4 - a * a))],
            "noise std sigma enters squared (its variance): f''(0) sigma^2.":
                [b * sigma + np.sqrt(complex(b * b * sigma**2 - a * a)), b * sigma - np.sqrt(complex(b * b * sigma**2 - a * a))],
            "these are the eigenvalues without noise; instance noise adds 2 f''(0) sigma^2 to the psi-psi entry.":
                [1j * a, -1j * a],
        }
        _expect_eigs(instance_noise_eigenvalues(a, b, sigma), want,
                     f"instance_noise_eigenvalues(f'(0)={a:.4g}, f''(0)={b:.4g}, sigma={sigma:.4g})", wrongs)


@question("q4", "critical gradient-penalty weight", 2, needs=["critical_gamma"])
def check_q4(rng, critical_gamma):
    for _ in range(3):
        loss = random_loss(rng)
        a = float(loss.df(0.0))
        got = critical_gamma(a)
        want = games.critical_gamma(a)
        expect_close(got, want, f"critical_gamma({a:.4g})", rtol=1e-9, wrong={
            "at the critical gamma the discriminant gamma^2/4 - f'(0)^2 vanishes: gamma = 2 f'(0).": a,
            "gamma^2/4 = f'(0)^2 gives gamma = 2 f'(0), not f'(0)^2-based.": a * a,
            "gamma^2/4 = f'(0)^2 gives gamma = 2 f'(0), not 4 f'(0)^2.": 4 * a * a,
        })
        # independent confirmation from numerical Jacobians: complex just below, real just above
        for g, want_real in ((0.98 * float(got), False), (1.02 * float(got), True)):
            ev = np.linalg.eigvals(games.jacobian(games.dirac_gan(loss, "r1", gamma=g).field_flat, np.zeros(2)))
            if bool(np.all(np.abs(ev.imag) < 1e-7)) != want_real:
                raise CheckFailed("critical_gamma: the eigenvalues of the numerical Jacobian do not change from "
                                  "complex to real at your gamma.")


@question("q5", "alternating-update eigenvalues", 2, needs=["alternating_eigenvalues"])
def check_q5(rng, alternating_eigenvalues):
    loss = random_loss(rng)
    a = float(loss.df(0.0))
    J = games.jacobian(games.dirac_gan(loss).field_flat, np.zeros(2))
    cases = [(0.2, 1, 1), (0.2, 1, 5)]
    for _ in range(3):  # random step counts, h chosen so that a^2 stays away from the double root a = 2
        n_g, n_d = int(rng.integers(1, 4)), int(rng.integers(1, 8))
        cases.append((float(np.sqrt(rng.uniform(0.01, 3.5) / (n_g * n_d * a * a))), n_g, n_d))
    for h, n_g, n_d in cases:
        want = np.linalg.eigvals(games.update_matrix(J, h, "alternating", n_x=n_g, n_y=n_d))
        s = (n_g + n_d) * (h * a) ** 2 / 2
        wrong_sum = [1 - s + np.sqrt(complex((1 - s) ** 2 - 1)), 1 - s - np.sqrt(complex((1 - s) ** 2 - 1))]
        c1 = 1 - (h * a) ** 2 / 2
        wrong_one = [c1 + np.sqrt(complex(c1 * c1 - 1)), c1 - np.sqrt(complex(c1 * c1 - 1))]
        _expect_eigs(alternating_eigenvalues(h, a, n_g, n_d), want,
                     f"alternating_eigenvalues(h={h:.3g}, f'(0)={a:.4g}, n_g={n_g}, n_d={n_d})", {
                         "n_g generator and n_d discriminator steps multiply: a = sqrt(n_g n_d) h f'(0), not a sum.": wrong_sum,
                         "the step counts matter: a = sqrt(n_g n_d) h f'(0).": wrong_one if (n_g, n_d) != (1, 1) else [np.nan, np.nan],
                         "these are the simultaneous-GD eigenvalues 1 +- h f'(0) i; alternating updates have determinant 1.":
                             [1 + 1j * h * a, 1 - 1j * h * a],
                     })


def _converges_locally(name: str, rng: np.random.Generator) -> bool:
    game = games.dirac_gan(**games.DIRAC_METHODS[name])
    z0 = 0.05 * rng.normal(size=2)
    r0 = float(np.hypot(*z0))
    for rule in ("simultaneous", "alternating"):
        traj = games.run(game, rule, tuple(z0), 0.2, 400)
        if not np.hypot(*traj[-1]) < 1e-2 * r0:
            return False
    return True


_WHY = {
    "gan": "the unregularised GAN has purely imaginary eigenvalues +-f'(0) i: simultaneous GD spirals out, alternating GD circles.",
    "nsgan": "the non-saturating loss has the same imaginary eigenvalues +-f'(0) i at the equilibrium: at best a slow, sublinear drift.",
    "wgan": "WGAN (clipped or not) has eigenvalues +-i: the iterates circle, clipping only bounds them.",
    "wgan_gp": "the WGAN-GP penalty pushes |psi| towards g0 > 0, away from the equilibrium psi = 0; it does not converge.",
    "instance_noise": "instance noise adds f''(0) sigma^2 < 0 to the real part of the eigenvalues: it converges locally.",
    "gradient_penalty": "a zero-centred gradient penalty moves the eigenvalues to real part -gamma/2 < 0: it converges locally.",
    "gradient_penalty_critical": "at the critical gamma = 2 f'(0) the eigenvalue is -f'(0) (double): it converges locally.",
    "consensus": "consensus optimisation adds -gamma f'(0)^2 to the real part: it converges locally.",
}


@question("q6", "which methods converge locally?", 2, needs=["LOCALLY_CONVERGENT"])
def check_q6(rng, LOCALLY_CONVERGENT):
    if not isinstance(LOCALLY_CONVERGENT, (set, frozenset, list, tuple)):
        raise CheckFailed(f"LOCALLY_CONVERGENT should be a set of method names, got {type(LOCALLY_CONVERGENT).__name__}")
    answer = set(LOCALLY_CONVERGENT)
    unknown = answer - set(METHOD_NAMES)
    if unknown:
        raise CheckFailed(f"LOCALLY_CONVERGENT contains {sorted(unknown)}; use names from {list(METHOD_NAMES)}")
    for name in METHOD_NAMES:
        truth = _converges_locally(name, rng)
        if truth and name not in answer:
            raise CheckFailed(f"{name!r} is missing: {_WHY[name]}")
        if not truth and name in answer:
            raise CheckFailed(f"{name!r} does not converge locally: {_WHY[name]}")


QUESTIONS = [check_q1, check_q2, check_q3, check_q4, check_q5, check_q6]
