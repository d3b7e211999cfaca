"""Chapter 02, the GAN objective: graded questions.

Answers are compared with ganlib's reference (``ganlib.theory``, itself tested against
closed forms and finite differences) on freshly drawn random grids, random densities
(with zeros, and with disjoint supports) and logits up to +-800 (past the float64 overflow of
exp at about 709), so hard-coding
the notebook's example cannot pass. Typical mistakes (swapped arguments, sign errors,
a missing ``dx``, log base 2, a naive sigmoid) get specific feedback.
"""

from __future__ import annotations

import math

import numpy as np

from ganlib import theory
from ganlib.grading import CheckFailed, as_float_array, expect_close, expect_tuple, question, summarize

LOG2, LOG4 = math.log(2.0), math.log(4.0)


def _grid(rng: np.random.Generator) -> tuple[int, float]:
    return int(rng.integers(20, 200)), float(rng.uniform(0.01, 0.3))


def _density(rng: np.random.Generator, n: int, dx: float, zeros: float = 0.0, support=None) -> np.ndarray:
    """Random grid density: positive weights (a fraction ``zeros`` set to 0, or only on ``support``)."""
    w = rng.uniform(0.05, 1.0, size=n) ** 2
    if zeros:
        w[rng.random(n) < zeros] = 0.0
    if support is not None:
        w = np.where(support, w, 0.0)
    if w.sum() == 0:
        w[np.flatnonzero(support)[0] if support is not None else 0] = 1.0
    return w / (w.sum() * dx)


# --------------------------------------------------------------------------- Q1


@question("q1", "optimal discriminator D*", 2, needs=["optimal_discriminator"])
def check_q1(rng, optimal_discriminator):
    for zeros in (0.0, 0.3):
        n, dx = _grid(rng)
        p = _density(rng, n, dx)
        q = _density(rng, n, dx)
        if zeros:  # some points where exactly one of the densities vanishes
            idx = rng.random(n) < zeros
            which = rng.random(n) < 0.5
            p[idx & which] = 0.0
            q[idx & ~which] = 0.0
        want = theory.optimal_discriminator(p, q)
        got = optimal_discriminator(p.copy(), q.copy())
        with np.errstate(all="ignore"):
            expect_close(got, want, "optimal_discriminator(p_data, p_g)", wrong={
                "the arguments are swapped: D* is the probability that x is *real*, p_data / (p_data + p_g).":
                    q / (p + q),
                "D* = 1/2 only where p_g = p_data; in general D* = p_data / (p_data + p_g).": np.full(n, 0.5),
                "p_data / p_g is a density ratio, not a probability; divide by p_data + p_g.": p / q,
                "upside down: D* = p_data / (p_data + p_g), not (p_data + p_g) / p_data.": (p + q) / p,
            })


# --------------------------------------------------------------------------- Q2


@question("q2", "value function V(D, G) on a grid", 2, needs=["value_function"])
def check_q2(rng, value_function):
    n, dx = _grid(rng)
    p, q = _density(rng, n, dx), _density(rng, n, dx)
    D = rng.uniform(0.02, 0.98, size=n)
    want = theory.value_function(D, p, q, dx)
    lp, l1 = np.log(D), np.log(1 - D)
    got = value_function(D.copy(), p.copy(), q.copy(), dx)
    expect_close(got, want, "value_function(D, p_data, p_g, dx)", rtol=1e-7, atol=1e-10, wrong={
        "log D belongs to the real data and log(1 - D) to the generated data: "
        "V = E_data[log D] + E_g[log(1 - D)]. Are p_data and p_g (or the two logs) swapped?":
            np.sum(p * l1 + q * lp) * dx,
        "the sign is flipped: that is the discriminator's loss -V. V is a sum of logs of probabilities, so V <= 0.":
            -want,
        "an expectation on a grid is an integral: sum(p * f) * dx. You forgot the factor dx.": want / dx,
        "np.mean averages over grid points; an expectation under p is sum(p * f) * dx.": want / dx / n,
        "log(1 - D) is weighted by p_g, not by p_data (the fake samples come from p_g).": np.sum(p * (lp + l1)) * dx,
    })
    # disjoint supports evaluated at D*: 0 * log 0 must count as 0
    n, dx = _grid(rng)
    cut = int(rng.integers(n // 4, 3 * n // 4))
    left = np.arange(n) < cut
    p, q = _density(rng, n, dx, support=left), _density(rng, n, dx, support=~left)
    D = theory.optimal_discriminator(p, q)  # 1 on p's support, 0 on q's
    got = as_float_array(value_function(D.copy(), p.copy(), q.copy(), dx), "value_function at D* for disjoint supports",
                         nonfinite_hint="where p_data(x) = 0 and D(x) = 0, the term p_data * log D is 0 * log 0, which counts as 0 "
                         "(its limit). Sum only over points where the density is positive, e.g. with np.where.")
    expect_close(got, 0.0, "value_function at D* for disjoint supports (= -log 4 + 2 log 2 = 0)", atol=1e-9)


# --------------------------------------------------------------------------- Q3


@question("q3", "Jensen-Shannon divergence on a grid", 2, needs=["jsd"])
def check_q3(rng, jsd):
    n, dx = _grid(rng)
    p, q = _density(rng, n, dx), _density(rng, n, dx)
    want = theory.jsd(p, q, dx)
    m = 0.5 * (p + q)
    expect_close(jsd(p.copy(), q.copy(), dx), want, "jsd(p, q, dx)", rtol=1e-7, atol=1e-10, wrong={
        "that is KL(p || q). JSD compares each density with the mixture m = (p + q) / 2.": theory.kl(p, q, dx),
        "that is KL(q || p). JSD compares each density with the mixture m = (p + q) / 2.": theory.kl(q, p, dx),
        "that is twice the JSD: JSD = KL(p || m) / 2 + KL(q || m) / 2.": 2 * want,
        "that is the JSD in bits (log base 2). This course uses natural logarithms (np.log).": want / LOG2,
        "only half of it: add KL(q || m) / 2 to KL(p || m) / 2.": 0.5 * theory.kl(p, m, dx),
        "an integral on a grid is sum(...) * dx; the factor dx is missing.": want / dx,
        "that is the symmetrised KL (KL(p||q) + KL(q||p)) / 2, which can be infinite; JSD uses the mixture m.":
            0.5 * (theory.kl(p, q, dx) + theory.kl(q, p, dx)),
    })
    zero_hint = ("terms with p(x) = 0 are 0 * log 0, which counts as 0; compute p * log(p / m) only where p > 0 "
                 "(e.g. np.where). JSD is always finite.")
    # partly overlapping supports
    n, dx = _grid(rng)
    p, q = _density(rng, n, dx, zeros=0.4), _density(rng, n, dx, zeros=0.4)
    got = as_float_array(jsd(p.copy(), q.copy(), dx), "jsd(p, q, dx) with zeros in p and q", nonfinite_hint=zero_hint)
    expect_close(got, theory.jsd(p, q, dx), "jsd(p, q, dx) with zeros in p and q", rtol=1e-7, atol=1e-10)
    # disjoint supports
    cut = int(rng.integers(n // 4, 3 * n // 4))
    left = np.arange(n) < cut
    p, q = _density(rng, n, dx, support=left), _density(rng, n, dx, support=~left)
    got = as_float_array(jsd(p.copy(), q.copy(), dx), "jsd(p, q, dx) for disjoint supports", nonfinite_hint=zero_hint)
    expect_close(got, LOG2, "jsd(p, q, dx) for disjoint supports (should be log 2)", atol=1e-9, wrong={
        "for disjoint supports JSD = log 2 = 0.693147 in nats; 1 is the value in bits. Use np.log.": 1.0,
    })


# --------------------------------------------------------------------------- Q4

# every sign and label at moderate, large and extreme logits: exp(800) overflows float64 (past about 709),
# so log1p(exp(z)) and 1 / (1 + exp(-z)) both fail there, whatever the seed
_EXTREME = np.repeat([-800.0, -100.0, -40.0, 40.0, 100.0, 800.0], 2)
_EXTREME_T = np.tile([0.0, 1.0], 6)


@question("q4", "numerically stable BCE from logits", 2, needs=["bce_with_logits"])
def check_q4(rng, bce_with_logits):
    n = int(rng.integers(5, 50))
    a = rng.uniform(-6, 6, size=n)
    t = (rng.random(n) < 0.5).astype(float)
    want = theory.bce_with_logits(a, t)
    d = theory.sigmoid(a)
    term = t * np.log(d) + (1 - t) * np.log(1 - d)
    expect_close(bce_with_logits(a.copy(), t.copy()), want, "bce_with_logits(logits, targets)", rtol=1e-7, wrong={
        "the sign is flipped: BCE = -mean(t log D + (1 - t) log(1 - D)) is non-negative.": -want,
        "the labels are swapped: target 1 goes with log D = log sigmoid(a), target 0 with log(1 - D).":
            theory.bce_with_logits(a, 1 - t),
        "that is the sum over samples; return the mean.": -np.sum(term),
        "use natural logarithms: that is the BCE in bits.": want / LOG2,
    })
    # soft targets
    ts = rng.uniform(0, 1, size=n)
    expect_close(bce_with_logits(a.copy(), ts.copy()), theory.bce_with_logits(a, ts),
                 "bce_with_logits(logits, targets) with soft targets in [0, 1]", rtol=1e-7)
    # large and extreme logits
    k = int(rng.integers(4, 20))
    a = np.concatenate([_EXTREME, rng.uniform(-100, 100, size=k)])
    t = np.concatenate([_EXTREME_T, (rng.random(k) < 0.5).astype(float)])
    perm = rng.permutation(a.size)
    a, t = a[perm], t[perm]
    want = theory.bce_with_logits(a, t)
    got = bce_with_logits(a.copy(), t.copy())
    try:
        arr = np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        arr = as_float_array(got, "bce_with_logits(logits, targets)")
    if arr.size and not np.all(np.isfinite(arr)):
        raise CheckFailed(
            f"bce_with_logits returned {summarize(arr)} for logits up to +-800: the loss must stay finite. "
            "With a naive D = 1 / (1 + exp(-a)), 1 - D rounds to exactly 0 once a > ~37, so log(1 - D) = log(0) = -inf; "
            "log1p(exp(a)) overflows to inf once a > ~709. Work with logits: log D = -softplus(-a), "
            "log(1 - D) = -softplus(a), softplus(a) = max(a, 0) + log1p(exp(-|a|)).")
    if not np.allclose(arr, want, rtol=1e-7, atol=1e-9):
        raise CheckFailed(
            f"bce_with_logits = {summarize(arr)} for logits up to +-800, expected {want:.6f}. Clipping D (or adding an "
            "eps inside the log) keeps the loss finite but wrong: the exact loss for logit 100 with label 0 is 100, not "
            "-log(eps). Use log D = -softplus(-a), log(1 - D) = -softplus(a).")


# --------------------------------------------------------------------------- Q5


@question("q5", "gradients of both generator losses w.r.t. the logit", 2, needs=["generator_loss_grads"])
def check_q5(rng, generator_loss_grads):
    what = "generator_loss_grads(a)"
    a = rng.uniform(-8, 8, size=int(rng.integers(3, 30)))
    sat, ns = theory.generator_loss_grads(a)
    D = theory.sigmoid(a)
    got_sat, got_ns = expect_tuple(generator_loss_grads(a.copy()), what, ("grad_saturating", "grad_nonsaturating"))
    with np.errstate(all="ignore"):
        wrong_sat = {
            "sign error: d/da log(1 - sigmoid(a)) = -sigmoid(a) = -D (the saturating loss decreases as a grows).": D,
            "the two gradients are swapped: return (saturating, non-saturating) = (-D, -(1 - D)).": -(1 - D),
            "that is the derivative with respect to D, not the logit a. Chain rule: dD/da = D (1 - D).": -1 / (1 - D),
        }
        wrong_ns = {
            "that is the gradient of the non-saturating *objective* log D, which G maximises. The *loss* G minimises "
            "is -log D, so its gradient is -(1 - D).": 1 - D,
            "the two gradients are swapped: return (saturating, non-saturating) = (-D, -(1 - D)).": -D,
            "that is the derivative with respect to D, not the logit a. Chain rule: dD/da = D (1 - D).": -1 / D,
        }
    expect_close(got_sat, sat, f"{what}[0], the saturating gradient", rtol=1e-7, atol=1e-12, wrong=wrong_sat)
    expect_close(got_ns, ns, f"{what}[1], the non-saturating gradient", rtol=1e-7, atol=1e-12, wrong=wrong_ns)
    # logits up to +-100 (and the D = 0.001 point of the lesson)
    a = np.concatenate([[-100.0, 100.0, math.log(0.001 / 0.999)], rng.uniform(-100, 100, size=int(rng.integers(3, 20)))])
    sat, ns = theory.generator_loss_grads(a)
    got_sat, got_ns = expect_tuple(generator_loss_grads(a.copy()), what, ("grad_saturating", "grad_nonsaturating"))
    hint = "the gradients are -D and -(1 - D), which stay in [-1, 0] for every logit; compute D with a stable sigmoid."
    got_sat = as_float_array(got_sat, f"{what}[0] for logits up to +-100", nonfinite_hint=hint)
    got_ns = as_float_array(got_ns, f"{what}[1] for logits up to +-100", nonfinite_hint=hint)
    expect_close(got_sat, sat, f"{what}[0] for logits up to +-100", rtol=1e-7, atol=1e-12)
    expect_close(got_ns, ns, f"{what}[1] for logits up to +-100", rtol=1e-7, atol=1e-12)


# --------------------------------------------------------------------------- Q6


@question("q6", "the key numbers of the theory", 2, needs=["C_MIN", "JSD_MAX", "D_STAR_AT_OPTIMUM"])
def check_q6(rng, C_MIN, JSD_MAX, D_STAR_AT_OPTIMUM):
    expect_close(C_MIN, -LOG4, "C_MIN", atol=1e-6, rtol=0, wrong={
        "C(G) = V(D*, G) is a sum of expected logs of probabilities, so it is negative: -log 4.": LOG4,
        "each of the two expectations contributes log(1/2) at the optimum: -log 2 - log 2 = -log 4.": -LOG2,
        "that is the minimum of the JSD; C(G) = -log 4 + 2 JSD, so its minimum is -log 4.": 0.0,
    })
    try:
        infinite = not np.all(np.isfinite(np.asarray(JSD_MAX, dtype=float)))
    except (TypeError, ValueError):
        infinite = False
    if infinite:
        raise CheckFailed("JSD_MAX is infinite: KL can be infinite, but the JSD is bounded (by log 2).")
    expect_close(JSD_MAX, LOG2, "JSD_MAX", atol=1e-6, rtol=0, wrong={
        "1 is the bound in bits (log base 2); with natural logarithms the JSD is at most log 2.": 1.0,
        "log 4 = 2 log 2 is the range of 2 JSD (C(G) runs from -log 4 to 0); the JSD itself is at most log 2.": LOG4,
    })
    expect_close(D_STAR_AT_OPTIMUM, 0.5, "D_STAR_AT_OPTIMUM", atol=1e-9, rtol=0, wrong={
        "when p_g = p_data, D* = p_data / (2 p_data) = 1/2: the discriminator cannot tell, not 'always fake'.": 0.0,
        "when p_g = p_data, D* = p_data / (2 p_data) = 1/2, not 1.": 1.0,
    })


QUESTIONS = [check_q1, check_q2, check_q3, check_q4, check_q5, check_q6]
