"""ganlib.theory against closed forms, finite differences and independent formulas."""

import math

import numpy as np
import pytest

from ganlib import theory as th

LOG4 = math.log(4.0)
LOG2 = math.log(2.0)


def naive_sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def random_density(rng, n, zeros=0.0):
    """Random positive weights (some set to zero), normalised on a grid of spacing dx."""
    w = rng.gamma(0.7, size=n)
    if zeros:
        w[rng.random(n) < zeros] = 0.0
        w[0] = 1.0  # keep some mass
    dx = float(rng.uniform(0.01, 0.5))
    return w / (w.sum() * dx), dx


# ---------------------------------------------------------------- losses from logits


def test_softplus_sigmoid_match_naive_where_naive_is_safe(rng):
    a = rng.uniform(-20, 20, size=1000)
    np.testing.assert_allclose(th.softplus(a), np.log1p(np.exp(a)), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(th.sigmoid(a), naive_sigmoid(a), rtol=1e-12)
    np.testing.assert_allclose(th.log_sigmoid(a), np.log(naive_sigmoid(a)), rtol=1e-10, atol=1e-12)


def test_stable_at_extreme_logits():
    a = np.array([-1000.0, -100.0, -40.0, 40.0, 100.0, 1000.0])
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # no overflow, no log(0)
        sp = th.softplus(a)
        ls = th.log_sigmoid(a)
        l1m = -th.softplus(a)  # log(1 - sigmoid(a))
    np.testing.assert_allclose(sp[3:], a[3:], rtol=1e-15)          # softplus(a) ~ a for large a
    np.testing.assert_allclose(ls[:3], a[:3], rtol=1e-15)          # log sigmoid(a) ~ a for very negative a
    np.testing.assert_allclose(l1m[4:], -a[4:], rtol=1e-15)
    # at a = 40, where 1 - sigmoid(a) rounds to 0 in float64, log(1 - sigmoid(a)) = -40 - log1p(e^-40)
    assert l1m[3] == -40.0 and np.isfinite(l1m[3])
    assert ls[2] == pytest.approx(-40.0 - math.exp(-40.0), rel=1e-15) and sp[2] == pytest.approx(math.exp(-40.0), rel=1e-15)


def test_bce_with_logits_matches_naive_and_extremes(rng):
    a = rng.uniform(-8, 8, size=50)
    t = rng.uniform(0, 1, size=50)
    d = naive_sigmoid(a)
    want = -np.mean(t * np.log(d) + (1 - t) * np.log(1 - d))
    assert th.bce_with_logits(a, t) == pytest.approx(want, rel=1e-12)
    assert th.bce_with_logits([100.0], [0.0]) == pytest.approx(100.0, rel=1e-15)
    assert th.bce_with_logits([-100.0], [1.0]) == pytest.approx(100.0, rel=1e-15)
    assert th.bce_with_logits([0.0], [1.0]) == pytest.approx(LOG2)
    with pytest.raises(ValueError, match="same shape"):
        th.bce_with_logits([0.0, 1.0], [1.0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        th.bce_with_logits([0.0], [2.0])


def test_discriminator_loss_worked_example():
    """The numbers of chapter 02's worked example, every one computed by ganlib."""
    # D(x) = 0.6 on a real sample, D(G(z)) = 0.4 on a fake one
    logit = lambda d: math.log(d / (1 - d))
    loss = th.discriminator_loss([logit(0.6)], [logit(0.4)])
    real_term, fake_term = th.bce_with_logits([logit(0.6)], [1.0]), th.bce_with_logits([logit(0.4)], [0.0])
    assert round(real_term, 6) == round(fake_term, 6) == 0.510826
    assert loss == pytest.approx(real_term + fake_term, rel=1e-12)
    assert round(loss, 6) == 1.021651
    # a more confident D(x) = 0.7: a smaller, still positive real term
    confident = th.discriminator_loss([logit(0.7)], [logit(0.4)]) - fake_term
    assert round(confident, 6) == 0.356675 and 0 < confident < real_term
    # the common slip (label 1 on the fake) gives -ln 0.4 instead
    assert round(th.bce_with_logits([logit(0.4)], [1.0]), 6) == 0.916291
    # = BCE with label 1 on real plus BCE with label 0 on fake, = minus the discriminator's part of V
    real, fake = np.array([1.3, -0.2, 4.0]), np.array([-2.0, 0.5])
    assert th.discriminator_loss(real, fake) == pytest.approx(
        th.bce_with_logits(real, np.ones(3)) + th.bce_with_logits(fake, np.zeros(2)), rel=1e-12)
    v_part = np.mean(np.log(naive_sigmoid(real))) + np.mean(np.log(1 - naive_sigmoid(fake)))
    assert th.discriminator_loss(real, fake) == pytest.approx(-v_part, rel=1e-12)


def test_generator_losses_and_their_gradients_by_finite_differences(rng):
    a = rng.uniform(-10, 10, size=40)
    h = 1e-6
    fd_sat = np.array([(th.generator_loss_saturating([x + h]) - th.generator_loss_saturating([x - h])) / (2 * h) for x in a])
    fd_ns = np.array([(th.generator_loss_nonsaturating([x + h]) - th.generator_loss_nonsaturating([x - h])) / (2 * h) for x in a])
    sat, ns = th.generator_loss_grads(a)
    np.testing.assert_allclose(sat, fd_sat, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(ns, fd_ns, rtol=1e-5, atol=1e-9)
    d = naive_sigmoid(a)
    np.testing.assert_allclose(sat, -d, rtol=1e-12)
    np.testing.assert_allclose(ns, -(1 - d), rtol=1e-10, atol=1e-15)
    # values of the losses themselves
    assert th.generator_loss_saturating(a) == pytest.approx(np.mean(np.log(1 - d)), rel=1e-10)
    assert th.generator_loss_nonsaturating(a) == pytest.approx(-np.mean(np.log(d)), rel=1e-10)


def test_gradients_at_d_0_001_both_sign_conventions():
    a = math.log(0.001 / 0.999)
    sat, ns = th.generator_loss_grads(a)
    assert float(sat) == pytest.approx(-0.001, rel=1e-9)      # d/da log(1 - D) = -D
    assert float(ns) == pytest.approx(-0.999, rel=1e-9)       # d/da [-log D] = -(1 - D)
    h = 1e-6
    objective = lambda x: float(th.log_sigmoid(x))           # log D, which G maximises
    assert (objective(a + h) - objective(a - h)) / (2 * h) == pytest.approx(0.999, rel=1e-7)  # +(1 - D)


# ---------------------------------------------------------------- grids and densities


def test_grid_and_gaussian_pdf_integrate_to_one():
    x, dx = th.grid(-20, 20, 8001)
    assert x.shape == (8001,) and dx == pytest.approx(40 / 8000)
    for mean, std in [(0, 1), (2.5, 0.4), (-1, 2)]:
        assert np.sum(th.gaussian_pdf(x, mean, std)) * dx == pytest.approx(1.0, abs=1e-10)
    assert float(th.gaussian_pdf(1.0, 1.0, 2.0)) == pytest.approx(1 / (2 * math.sqrt(2 * math.pi)))
    with pytest.raises(ValueError):
        th.grid(1, 0, 10)
    assert th.grid(0, 1, 2) == (pytest.approx([0.0, 1.0]), 1.0)
    for n in (1, 0, 2.5):
        with pytest.raises(ValueError, match="n >= 2"):
            th.grid(0, 1, n)
    with pytest.raises(ValueError):
        th.gaussian_pdf(0.0, 0.0, 0.0)


def test_discretize_normalises_and_validates():
    x, dx = th.grid(0, 2, 201)
    p = th.discretize(lambda t: 3 * t**2, x)
    assert np.sum(p) * dx == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(p / p[-1], (x / 2) ** 2, rtol=1e-12)
    assert np.allclose(th.discretize(3 * x**2, x), p)
    with pytest.raises(ValueError, match="uniform"):
        th.discretize(np.ones(3), np.array([0.0, 1.0, 3.0]))
    # uniform within a relative 1e-6 (linspace's rounding passes, a step 1e-5 off does not)
    th.discretize(np.ones(4), np.array([0.0, 0.1, 0.2, 0.3 + 1e-9]))
    with pytest.raises(ValueError, match="uniform"):
        th.discretize(np.ones(4), np.array([0.0, 0.1, 0.2, 0.3 + 1e-6]))
    with pytest.raises(ValueError, match="non-negative"):
        th.discretize(lambda t: t - 1, x)
    with pytest.raises(ValueError, match="zero everywhere"):
        th.discretize(np.zeros_like(x), x)
    with pytest.raises(ValueError, match="shape"):
        th.discretize(np.ones(5), x)


def test_check_density_errors_are_specific():
    with pytest.raises(ValueError, match="negative"):
        th.check_density([1.5, -0.5], 1.0)
    with pytest.raises(ValueError, match="integrates to 2"):
        th.check_density([1.0, 1.0], 1.0)
    with pytest.raises(ValueError, match="NaN"):
        th.check_density([np.nan, 1.0], 1.0)
    with pytest.raises(ValueError, match="dx"):
        th.check_density([0.5, 0.5], 0.0)
    with pytest.raises(ValueError, match="shapes must match"):
        th.kl([0.5, 0.5], [1 / 3, 1 / 3, 1 / 3], 1.0)
    with pytest.raises(ValueError, match="shapes must match"):
        th.value_function(np.full(3, 0.5), [0.5, 0.5], [0.5, 0.5], 1.0)
    with pytest.raises(ValueError, match="probability"):
        th.value_function([0.5, 1.5], [0.5, 0.5], [0.5, 0.5], 1.0)


def test_check_density_tolerance_edges():
    """The documented tolerance is 1e-4 on the mass: just inside passes, just outside fails, either side of 1."""
    assert th.DENSITY_TOL == 1e-4
    for off in (0.9e-4, -0.9e-4):
        th.check_density([0.5, 0.5 + off], 1.0)
        th.check_density(np.array([0.5, 0.5 + off]) / 0.1, 0.1)  # the mass includes dx
    for off in (1.1e-4, -1.1e-4):
        with pytest.raises(ValueError, match="integrates to"):
            th.check_density([0.5, 0.5 + off], 1.0)
    # an explicit tol is honoured: looser accepts 1% off, tighter rejects 1e-5 off
    th.check_density([0.5, 0.509], 1.0, tol=1e-2)
    with pytest.raises(ValueError, match="integrates to 1.011"):
        th.check_density([0.5, 0.511], 1.0, tol=1e-2)
    with pytest.raises(ValueError, match="integrates to"):
        th.check_density([0.5, 0.5 + 2e-5], 1.0, tol=1e-5)
    # the functions built on check_density inherit the tolerance
    with pytest.raises(ValueError, match="p_g integrates to"):
        th.optimal_value([0.5, 0.5], [0.5, 0.5 + 1.1e-4], 1.0)
    assert th.kl([0.5, 0.5 + 0.9e-4], [0.5, 0.5], 1.0) >= 0


# ---------------------------------------------------------------- D*, V, C(G)


def test_optimal_discriminator_pointwise_maximiser(rng):
    a, b = rng.uniform(0.01, 5, size=20), rng.uniform(0.01, 5, size=20)
    y = np.linspace(1e-6, 1 - 1e-6, 200_001)
    brute = np.array([y[np.argmax(ai * np.log(y) + bi * np.log(1 - y))] for ai, bi in zip(a, b)])
    np.testing.assert_allclose(th.optimal_discriminator(a, b), brute, atol=1e-5)
    np.testing.assert_allclose(th.optimal_discriminator(a, b) + th.optimal_discriminator(b, a), 1.0)
    assert th.optimal_discriminator([2.0, 0.0, 0.0, 1.0], [0.0, 3.0, 0.0, 1.0]).tolist() == [1.0, 0.0, 0.5, 0.5]
    with pytest.raises(ValueError):
        th.optimal_discriminator([1.0, -1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="shapes"):
        th.optimal_discriminator([1.0], [1.0, 1.0])


def test_value_function_hand_example_and_half():
    # two grid cells, dx = 0.5: p_data = (1.5, 0.5), p_g = (0.5, 1.5), D = (0.6, 0.4)
    p, q, D = np.array([1.5, 0.5]), np.array([0.5, 1.5]), np.array([0.6, 0.4])
    want = 0.5 * (1.5 * math.log(0.6) + 0.5 * math.log(0.4) + 0.5 * math.log(0.4) + 1.5 * math.log(0.6))
    assert th.value_function(D, p, q, 0.5) == pytest.approx(want, rel=1e-14)
    assert th.value_function(np.full(2, 0.5), p, q, 0.5) == pytest.approx(-LOG4, rel=1e-14)
    # D = 0 where p_data > 0: minus infinity; D = 0 where p_data = 0 contributes nothing
    assert th.value_function([0.0, 0.5], p, q, 0.5) == -np.inf
    assert th.value_function([0.0, 1.0], [0.0, 2.0], [2.0, 0.0], 0.5) == 0.0


def test_value_is_maximal_at_d_star(rng):
    x, dx = th.grid(-8, 8, 801)
    p = th.discretize(lambda t: th.gaussian_pdf(t, 0, 1), x)
    q = th.discretize(lambda t: th.gaussian_pdf(t, 1.5, 0.7), x)
    d_star = th.optimal_discriminator(p, q)
    best = th.optimal_value(p, q, dx)
    # far in the tails 1 - D* rounds to 0 while p_g > 0, so V at the rounded D* is -inf
    assert th.value_function(d_star, p, q, dx) == -np.inf
    inner = slice(200, 601)  # on [-4, 4] it does not: there V(D*) is C(G)
    pi, qi = th.discretize(p[inner], x[inner]), th.discretize(q[inner], x[inner])
    assert th.value_function(th.optimal_discriminator(pi, qi), pi, qi, dx) == pytest.approx(
        th.optimal_value(pi, qi, dx), abs=1e-13)
    for _ in range(50):
        D = np.clip(d_star + rng.normal(0, 0.05, size=x.size), 1e-9, 1 - 1e-9)
        assert th.value_function(D, p, q, dx) < best


def entropy(p, dx):
    nz = p > 0
    return -np.sum(p[nz] * np.log(p[nz])) * dx


@pytest.mark.parametrize("seed", range(5))
def test_c_of_g_is_minus_log4_plus_2_jsd_random_densities(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    w1, w2 = rng.gamma(0.7, size=n), rng.gamma(0.7, size=n)
    w1[rng.random(n) < 0.3] = 0.0
    w1[0] = w2[-1] = 1.0
    dx = float(rng.uniform(0.01, 0.5))
    p, q = w1 / (w1.sum() * dx), w2 / (w2.sum() * dx)
    c = th.optimal_value(p, q, dx)
    j = th.jsd(p, q, dx)
    assert c == pytest.approx(-LOG4 + 2 * j, abs=1e-12)
    # independent formula for JSD: entropy of the mixture minus mean entropy
    assert j == pytest.approx(entropy(0.5 * (p + q), dx) - 0.5 * (entropy(p, dx) + entropy(q, dx)), abs=1e-12)


def test_c_of_g_extremes():
    x, dx = th.grid(-6, 6, 1201)
    p = th.discretize(th.gaussian_pdf(x, 0.3, 0.8), x)
    assert th.optimal_value(p, p, dx) == pytest.approx(-LOG4, abs=1e-14)
    np.testing.assert_allclose(th.optimal_discriminator(p, p), 0.5)
    left = th.discretize((x < 0).astype(float), x)
    right = th.discretize((x > 0).astype(float), x)
    assert th.optimal_value(left, right, dx) == pytest.approx(0.0, abs=1e-14)  # -log 4 + 2 log 2


# ---------------------------------------------------------------- KL and JSD


@pytest.mark.parametrize("mp,sp,mq,sq", [(0, 1, 0, 1), (0, 1, 1, 1), (0.5, 0.6, -1, 1.4), (1, 2, 0, 0.9)])
def test_gaussian_kl_closed_form_vs_grid(mp, sp, mq, sq):
    x, dx = th.grid(-25, 25, 20001)
    p, q = th.gaussian_pdf(x, mp, sp), th.gaussian_pdf(x, mq, sq)
    assert th.kl(p, q, dx) == pytest.approx(th.gaussian_kl(mp, sp, mq, sq), abs=1e-9)


def test_gaussian_kl_values_and_broadcasting():
    assert th.gaussian_kl(0, 1, 0, 1) == 0.0
    assert th.gaussian_kl(3, 1, 0, 1) == pytest.approx(4.5)  # d^2 / 2
    assert th.gaussian_kl(0, 1, 0, 2) == pytest.approx(math.log(2) + 1 / 8 - 0.5)
    out = th.gaussian_kl(np.array([0.0, 1.0, 2.0]), 1.0, 0.0, 1.0)
    np.testing.assert_allclose(out, [0.0, 0.5, 2.0])
    assert th.gaussian_kl(0, 1, 0, 2) != pytest.approx(th.gaussian_kl(0, 2, 0, 1))  # asymmetric
    with pytest.raises(ValueError):
        th.gaussian_kl(0, -1, 0, 1)


def test_kl_properties(rng):
    p, dx = random_density(rng, 50)
    q = rng.gamma(0.7, size=50)
    q /= q.sum() * dx
    assert th.kl(p, p, dx) == pytest.approx(0.0, abs=1e-14)
    assert th.kl(p, q, dx) > 0 and th.kl(q, p, dx) > 0
    assert th.kl(p, q, dx) != pytest.approx(th.kl(q, p, dx))
    assert th.kl([1.0, 0.0], [0.0, 1.0], 1.0) == np.inf
    assert th.kl([1.0, 0.0], [0.5, 0.5], 1.0) == pytest.approx(LOG2)   # p has zeros: fine
    assert th.kl([0.5, 0.5], [1.0, 0.0], 1.0) == np.inf               # q has zeros under p: infinite


def test_jsd_properties(rng):
    for _ in range(20):
        p, dx = random_density(rng, 40, zeros=0.3)
        q = rng.gamma(0.7, size=40)
        q[rng.random(40) < 0.3] = 0.0
        q[-1] = 1.0
        q /= q.sum() * dx
        j = th.jsd(p, q, dx)
        assert 0 <= j <= LOG2 + 1e-15
        assert j == pytest.approx(th.jsd(q, p, dx), abs=1e-15)
    assert th.jsd(p, p, dx) == pytest.approx(0.0, abs=1e-15)
    x, dx = th.grid(-6, 6, 1201)
    left = th.discretize((x < -1).astype(float), x)
    right = th.discretize((x > 1).astype(float), x)
    assert th.jsd(left, right, dx) == pytest.approx(LOG2, abs=1e-14)
    assert th.kl(left, right, dx) == np.inf


def test_jsd_saturates_for_far_apart_narrow_gaussians():
    x, dx = th.grid(-2, 8, 10001)
    p = th.discretize(th.gaussian_pdf(x, 0, 0.1), x)
    far = th.discretize(th.gaussian_pdf(x, 5, 0.1), x)
    farther = th.discretize(th.gaussian_pdf(x, 6, 0.1), x)
    assert th.jsd(p, far, dx) == pytest.approx(LOG2, abs=1e-12)
    assert th.jsd(p, far, dx) - th.jsd(p, farther, dx) == pytest.approx(0.0, abs=1e-12)  # no gradient left
