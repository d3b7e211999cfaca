"""Chapter 01, minimax games: graded questions.

Every answer is compared with ganlib's reference on a freshly drawn random game,
random array-valued players and a random step size, so hard-coding the notebook's
example cannot pass.
"""

from __future__ import annotations

import numpy as np

from ganlib import games
from ganlib.grading import CheckFailed, expect_close, expect_tuple, question

RULE_NAMES = set(games.RULES)


class _Field:
    """The gradient field ``(df/dx, df/dy)`` of :func:`_random_grad`, as an object.

    A module-level class, not a closure: the grader hands it to the learner's code in its
    worker process, so it must be picklable.
    """

    def __init__(self, a, b, c, d, e):
        self.a, self.b, self.c, self.d, self.e = a, b, c, d, e

    def __call__(self, x, y):
        a, b, c, d, e = self.a, self.b, self.c, self.d, self.e
        return a * x + b * y + d * np.sin(y), b * x - c * y + e * np.cos(x)


def _random_grad(rng: np.random.Generator):
    """A random smooth, non-linear gradient field ``(df/dx, df/dy)`` (not symmetric in x and y)."""
    a, b, c = rng.uniform(0.3, 1.5, size=3)
    d, e = rng.uniform(-1, 1, size=2)
    return _Field(a, b, c, d, e)


def _problem(rng: np.random.Generator):
    grad = _random_grad(rng)
    shape = (int(rng.integers(2, 5)),)
    x, y = rng.normal(size=shape), rng.normal(size=shape)
    eta = float(rng.uniform(0.05, 0.5))
    return grad, x, y, eta


def _check_step(fn, reference, wrongs, rng, name, extra=()):
    grad, x, y, eta = _problem(rng)
    extra_args = [rng.normal(size=x.shape) for _ in extra]
    args = (grad, x.copy(), y.copy(), *[a.copy() for a in extra_args], eta)
    got = expect_tuple(fn(*args), name, ("x_new", "y_new"))
    want = reference(grad, x, y, *extra_args, eta)
    candidates = {hint: w(grad, x, y, *extra_args, eta) for hint, w in wrongs.items()}
    expect_close(got[0], want[0], f"{name}: x_new",
                 wrong={h: v[0] for h, v in candidates.items() if not np.allclose(v[0], want[0])})
    expect_close(got[1], want[1], f"{name}: y_new",
                 wrong={h: v[1] for h, v in candidates.items() if not np.allclose(v[1], want[1])})


def _sim_sign_y(grad, x, y, eta):
    gx, gy = grad(x, y)
    return x - eta * gx, y - eta * gy


def _sim_sign_x(grad, x, y, eta):
    gx, gy = grad(x, y)
    return x + eta * gx, y + eta * gy


def _alt_y_first(grad, x, y, eta):
    _, gy = grad(x, y)
    y_new = y + eta * gy
    gx, _ = grad(x, y_new)
    return x - eta * gx, y_new


def _eg_from_lookahead(grad, x, y, eta):
    xh, yh = games.simultaneous_step(grad, x, y, eta)
    return games.simultaneous_step(grad, xh, yh, eta)


@question("q1", "simultaneous GDA step", 2, needs=["simultaneous_step"])
def check_q1(rng, simultaneous_step):
    _check_step(simultaneous_step, games.simultaneous_step, {
        "y maximises f, so it moves *along* df/dy: y + eta * df/dy.": _sim_sign_y,
        "x minimises f, so it moves *against* df/dx: x - eta * df/dx.": _sim_sign_x,
        "this is alternating GDA; in the simultaneous step both players use the old point.": games.alternating_step,
    }, rng, "simultaneous_step")


@question("q2", "alternating GDA step", 2, needs=["alternating_step"])
def check_q2(rng, alternating_step):
    _check_step(alternating_step, games.alternating_step, {
        "y used the gradient at the old x. In alternating GDA, y responds to the *new* x.": games.simultaneous_step,
        "y moved first. In this course's convention x moves first, then y responds.": _alt_y_first,
        "y maximises f, so it moves *along* df/dy.": lambda g, x, y, e: (games.alternating_step(g, x, y, e)[0],
                                                                            2 * y - games.alternating_step(g, x, y, e)[1]),
    }, rng, "alternating_step")


@question("q3", "extragradient step", 2, needs=["extragradient_step"])
def check_q3(rng, extragradient_step):
    _check_step(extragradient_step, games.extragradient_step, {
        "this is a plain simultaneous step; extragradient first looks ahead, then steps with the look-ahead gradient.": games.simultaneous_step,
        "the second step must start from the *old* point (x, y), not from the look-ahead point.": _eg_from_lookahead,
    }, rng, "extragradient_step")


def _ogda_swapped(grad, x, y, xp, yp, eta):
    gx, gy = grad(x, y)
    gxp, gyp = grad(xp, yp)
    return x - eta * gx + 2 * eta * gxp, y + eta * gy - 2 * eta * gyp


def _ogda_no_two(grad, x, y, xp, yp, eta):
    gx, gy = grad(x, y)
    gxp, gyp = grad(xp, yp)
    return x - eta * gx + eta * gxp, y + eta * gy - eta * gyp


@question("q4", "optimistic GDA step", 2, needs=["optimistic_step"])
def check_q4(rng, optimistic_step):
    _check_step(optimistic_step, games.optimistic_step, {
        "the factor 2 belongs to the *current* gradient: x - 2 eta g(z_t) + eta g(z_(t-1)).": _ogda_swapped,
        "the current gradient is weighted 2 eta, not eta.": _ogda_no_two,
        "the previous gradient is ignored: optimistic GDA adds + eta g(z_(t-1)) for x (and - for y).":
            lambda g, x, y, xp, yp, e: (x - 2 * e * g(x, y)[0], y + 2 * e * g(x, y)[1]),
    }, rng, "optimistic_step", extra=("x_prev", "y_prev"))


def _eigen_factor(rule: str, eta: float) -> float:
    """Reference by a route independent of the closed forms: eigenvalues of the linearised step."""
    J = games.jacobian(games.bilinear().field_flat, np.zeros(2))
    return games.spectral_radius(games.update_matrix(J, eta, rule))


@question("q5", "per-step factor on the bilinear game", 2, needs=["per_step_factor"])
def check_q5(rng, per_step_factor):
    for rule in games.RULES:
        for eta in (0.1, *rng.uniform(0.02, 1.5, size=3)):
            eta = float(eta)
            want = _eigen_factor(rule, eta)
            got = per_step_factor(rule, eta)
            expect_close(got, want, f"per_step_factor({rule!r}, eta={eta:.4g})", rtol=1e-6, atol=1e-8, wrong={
                "you returned the squared modulus |lambda|^2; the factor is |lambda|.": want**2,
                "that is the simultaneous-GDA factor sqrt(1 + eta^2); each rule has its own update matrix.":
                    np.sqrt(1 + eta**2) if rule != "simultaneous" else np.nan,
            })


@question("q6", "which rules converge on f = xy?", 2, needs=["CONVERGE", "DIVERGE"])
def check_q6(rng, CONVERGE, DIVERGE):
    for name, answer in (("CONVERGE", CONVERGE), ("DIVERGE", DIVERGE)):
        if not isinstance(answer, (set, frozenset, list, tuple)):
            raise CheckFailed(f"{name} should be a set of rule names, got {type(answer).__name__}")
        unknown = set(answer) - RULE_NAMES
        if unknown:
            raise CheckFailed(f"{name} contains {sorted(unknown)}; use names from {sorted(RULE_NAMES)}")
    # ground truth by simulation, from a random start, eta = 0.1
    z0 = tuple(rng.normal(size=2))
    r0 = np.hypot(*z0)
    truth = {}
    for rule in games.RULES:
        traj = games.run(games.bilinear(), rule, z0, eta=0.1, steps=3000)
        r = np.hypot(traj[-1, 0], traj[-1, 1])
        truth[rule] = "converge" if r < 1e-3 * r0 else "diverge" if r > 1e3 * r0 else "bounded"
    for rule in games.RULES:
        in_c, in_d = rule in set(CONVERGE), rule in set(DIVERGE)
        if in_c and in_d:
            raise CheckFailed(f"{rule!r} is in both sets")
        kind = truth[rule]
        if kind == "converge" and not in_c:
            raise CheckFailed(f"{rule!r} does converge: its per-step factor is below 1 (run it for a few thousand steps).")
        if kind == "diverge" and not in_d:
            raise CheckFailed(f"{rule!r} does diverge: its per-step factor is above 1, the iterates spiral out.")
        if kind == "bounded" and (in_c or in_d):
            raise CheckFailed(f"{rule!r} neither converges nor diverges: its update matrix has determinant 1, "
                              "so the orbit stays bounded on an ellipse.")


QUESTIONS = [check_q1, check_q2, check_q3, check_q4, check_q5, check_q6]
