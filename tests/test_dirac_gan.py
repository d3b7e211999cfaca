"""The Dirac-GAN in ganlib.games against finite differences, closed forms and simulation."""

import numpy as np
import pytest

from ganlib import games
from ganlib.checks.ch04 import random_loss

H = 0.2
RULES3 = [("simultaneous", 1), ("alternating", 1), ("alternating", 5)]
LINEARISABLE = [k for k in games.DIRAC_METHODS if k != "wgan_gp"]


def fd(fn, t, eps=1e-5):
    return (fn(t + eps) - fn(t - eps)) / (2 * eps)


def closed_form_args(kw):
    return dict(loss=kw["loss"], regularizer=kw.get("regularizer"), gamma=kw.get("gamma", 0.0), sigma=kw.get("sigma", 0.0))


def eigs_fd(game):
    return np.sort_complex(np.linalg.eigvals(games.jacobian(game.field_flat, np.zeros(2))))


# ----------------------------------------------------------------------------- losses and fields


@pytest.mark.parametrize("name", games.DIRAC_LOSSES)
def test_loss_derivatives_by_finite_differences(name):
    loss = games.dirac_loss(name)
    t = np.linspace(-30, 30, 61)
    np.testing.assert_allclose(loss.df(t), fd(loss.f, t), atol=1e-8)
    np.testing.assert_allclose(loss.d2f(t), fd(loss.df, t), atol=1e-8)


def test_standard_gan_f_values_from_the_text():
    loss = games.dirac_loss("gan")
    t = np.array([-3.0, 0.0, 2.0])
    np.testing.assert_allclose(loss.f(t), -np.log1p(np.exp(-t)), rtol=1e-14)
    assert float(loss.df(0.0)) == 0.5 and float(loss.d2f(0.0)) == -0.25
    assert np.isfinite(loss.f(-1000.0)) and float(loss.df(-1000.0)) == 1.0


@pytest.mark.parametrize("name", ["gan", "wgan", "random"])
def test_field_is_minus_dL_dtheta_and_plus_dL_dpsi(name):
    rng = np.random.default_rng(1)
    loss = random_loss(rng) if name == "random" else games.dirac_loss(name)
    L = lambda th, ps: loss.f(ps * th) + loss.f(0.0)
    for th, ps in rng.normal(scale=1.5, size=(5, 2)):
        v1, v2 = games.dirac_field(th, ps, loss)
        assert v1 == pytest.approx(-fd(lambda a: L(a, ps), th), abs=1e-8)
        assert v2 == pytest.approx(fd(lambda b: L(th, b), ps), abs=1e-8)


def test_non_saturating_generator_minimises_minus_f_of_minus_D():
    loss = games.dirac_loss("nsgan")
    rng = np.random.default_rng(2)
    for th, ps in rng.normal(size=(5, 2)):
        v1, v2 = games.dirac_field(th, ps, loss)
        assert v1 == pytest.approx(-fd(lambda a: -loss.f(-ps * a), th), abs=1e-8)
        assert v2 == pytest.approx(games.dirac_field(th, ps, "gan")[1], abs=1e-15)


@pytest.mark.parametrize("name", ["gan", "nsgan", "wgan"])
def test_analytic_jacobian_equals_finite_differences(name):
    rng = np.random.default_rng(3)
    flat = lambda z: np.array(games.dirac_field(z[0], z[1], name))
    for z in rng.normal(size=(5, 2)):
        np.testing.assert_allclose(games.dirac_field_jacobian(z[0], z[1], name), games.jacobian(flat, z), atol=1e-8)


def test_field_broadcasts_over_grids():
    th, ps = np.meshgrid(np.linspace(-2, 2, 7), np.linspace(-2, 2, 5))
    for kw in games.DIRAC_METHODS.values():
        g = games.dirac_gan(**kw)
        v1, v2 = g.field(th, ps)
        assert np.shape(v1) == th.shape and np.shape(v2) == th.shape
        np.testing.assert_allclose(v1[2, 3], g.field(th[2, 3], ps[2, 3])[0], atol=1e-14)


def test_r1_penalty_field_is_gradient_of_regularised_objective():
    g = games.dirac_gan("gan", "r1", gamma=0.7)
    for th, ps in [(0.4, -1.1), (-1.3, 0.2)]:
        assert g.field(th, ps)[1] == pytest.approx(fd(lambda b: g.value(th, b), ps), abs=1e-8)
    assert games.dirac_gan("gan", "r2", gamma=0.7).field(0.4, -1.1) == g.field(0.4, -1.1)


def test_instance_noise_quadrature_matches_brute_force_integration():
    sigma = 0.7
    g = games.dirac_gan("gan", "instance_noise", sigma=sigma)
    loss = games.dirac_loss("gan")
    e = np.linspace(-12 * sigma, 12 * sigma, 200001)
    w = np.exp(-0.5 * (e / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi)) * (e[1] - e[0])
    for th, ps in [(1.0, 1.0), (-0.3, 2.0), (0.8, -0.5)]:
        v1 = -np.sum(w * ps * loss.df(ps * (th + e)))
        v2 = np.sum(w * ((th + e) * loss.df(ps * (th + e)) - e * loss.df(-ps * e)))
        np.testing.assert_allclose(g.field(th, ps), (v1, v2), atol=1e-9)


def test_consensus_subtracts_gamma_times_gradient_of_half_squared_norm():
    gamma = 0.8
    g = games.dirac_gan("gan", "consensus", gamma=gamma)
    half_sq = lambda z: np.array([0.5 * np.sum(np.square(games.dirac_field(z[0], z[1])))])
    for z in np.random.default_rng(4).normal(size=(5, 2)):
        grad = games.jacobian(half_sq, z)[0]
        np.testing.assert_allclose(np.array(g.field(*z)), np.array(games.dirac_field(*z)) - gamma * grad, atol=1e-8)


def test_wgan_gp_field_and_its_missing_jacobian():
    g = games.dirac_gan("wgan", "wgan_gp", gamma=0.7, g0=1.0)
    assert g.field(0.5, 1.0) == (-1.0, 0.5)  # |psi| = g0: no penalty force
    assert g.field(0.0, 0.5)[1] == pytest.approx(0.35)  # pushes |psi| up towards g0
    assert g.field(0.0, -0.5)[1] == pytest.approx(-0.35)
    with pytest.raises(ValueError, match="discontinuous"):
        games.dirac_jacobian("wgan", "wgan_gp", gamma=0.7)
    # the finite-difference "Jacobian" blows up like gamma g0 / eps: there is no derivative at psi = 0
    for eps in (1e-3, 1e-5):
        assert games.jacobian(g.field_flat, np.zeros(2), eps=eps)[1, 1] == pytest.approx(0.7 / eps - 0.7, rel=1e-6)


def test_weight_clipping_projects_psi_after_every_step():
    g = games.dirac_gan("wgan", "clip", clip=0.5)
    for rule, nd in RULES3 + [("extragradient", 1), ("optimistic", 1)]:
        traj = games.run(g, rule, (1.0, 1.0), H, 200, n_y=nd)
        assert np.abs(traj[:, 1]).max() <= 0.5 and traj[0, 1] == 0.5, rule
        assert np.abs(traj[:, 1]).max() == 0.5  # the constraint is active: unprojected, psi would leave [-0.5, 0.5]
    assert games.dirac_gan("wgan").project is None


def test_dirac_methods_table_holds_the_settings_chapter_04_states():
    """Each name maps to its loss, regularizer and the constants the lesson quotes."""
    assert games.DIRAC_METHODS == {
        "gan": dict(loss="gan"),
        "nsgan": dict(loss="nsgan"),
        "wgan": dict(loss="wgan", regularizer="clip", clip=1.0),
        "wgan_gp": dict(loss="wgan", regularizer="wgan_gp", gamma=0.7, g0=1.0),
        "instance_noise": dict(loss="gan", regularizer="instance_noise", sigma=0.7),
        "gradient_penalty": dict(loss="gan", regularizer="r1", gamma=0.3),
        "gradient_penalty_critical": dict(loss="gan", regularizer="r1", gamma=1.0),
        "consensus": dict(loss="gan", regularizer="consensus", gamma=1.0),
    }
    # the "critical" entry is the critical weight of the standard GAN, the other penalty lies below it
    gc = games.critical_gamma(float(games.dirac_loss("gan").df(0.0)))
    assert games.DIRAC_METHODS["gradient_penalty_critical"]["gamma"] == gc
    assert games.DIRAC_METHODS["gradient_penalty"]["gamma"] < gc
    for name, kw in games.DIRAC_METHODS.items():
        assert games.dirac_gan(**kw).name.startswith(f"Dirac-GAN, {kw['loss']}"), name


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown regularizer"):
        games.dirac_gan("gan", "r3")
    with pytest.raises(ValueError, match="unknown regularizer"):
        games.dirac_jacobian("gan", "r3")
    with pytest.raises(ValueError, match="unknown loss"):
        games.dirac_loss("lsgan")
    with pytest.raises(ValueError, match="gamma and sigma"):
        games.dirac_gan("gan", "r1", gamma=-1.0)


# ----------------------------------------------------------------------------- update rules with n_g, n_d


def test_alternating_round_defaults_to_chapter_01_step_and_matches_update_matrix():
    rng = np.random.default_rng(5)
    A = rng.normal(size=(2, 2))
    grad = lambda x, y: (A[0, 0] * x + A[0, 1] * y, A[1, 0] * x + A[1, 1] * y)
    J = np.array([[-A[0, 0], -A[0, 1]], [A[1, 0], A[1, 1]]])
    x, y = rng.normal(size=2)
    assert games.alternating_round(grad, x, y, 0.3) == games.alternating_step(grad, x, y, 0.3)
    for n_x, n_y in [(1, 1), (1, 5), (3, 2)]:
        step = lambda z: np.array(games.alternating_round(grad, z[0], z[1], 0.3, n_x=n_x, n_y=n_y))
        np.testing.assert_allclose(games.update_matrix(J, 0.3, "alternating", n_x=n_x, n_y=n_y),
                                   games.jacobian(step, rng.normal(size=2)), atol=1e-8)
    with pytest.raises(ValueError, match="only apply"):
        games.run(games.bilinear(), "simultaneous", (1, 1), 0.1, 3, n_y=2)


@pytest.mark.parametrize("n_g,n_d", [(1, 1), (1, 5), (2, 3), (1, 30)])
def test_alternating_eigenvalues_closed_form_vs_update_matrix(n_g, n_d):
    J = games.jacobian(games.dirac_gan("gan").field_flat, np.zeros(2))
    M = games.update_matrix(J, H, "alternating", n_x=n_g, n_y=n_d)
    want = np.sort_complex(np.linalg.eigvals(M))
    np.testing.assert_allclose(np.sort_complex(games.alternating_eigenvalues(H, 0.5, n_g, n_d)), want, atol=1e-9)
    a = np.sqrt(n_g * n_d) * H * 0.5
    assert np.linalg.det(M) == pytest.approx(1.0, abs=1e-12)
    if a <= 2:
        np.testing.assert_allclose(np.abs(want), 1.0, atol=1e-6)
    else:
        assert games.spectral_radius(M) > 1


def test_issue_numbers_for_update_eigenvalues():
    J = games.jacobian(games.dirac_gan("gan").field_flat, np.zeros(2))
    sim = np.linalg.eigvals(games.update_matrix(J, H, "simultaneous"))
    np.testing.assert_allclose(np.sort_complex(sim), [1 - 0.1j, 1 + 0.1j], atol=1e-9)
    assert round(float(np.abs(sim[0])), 6) == 1.004988
    for n_d, (re, im) in [(1, (0.995, 0.099875)), (5, (0.975, 0.222205))]:
        ev = np.linalg.eigvals(games.update_matrix(J, H, "alternating", n_y=n_d))
        assert np.allclose(sorted(ev.real), [re, re], atol=1e-9)
        assert round(float(np.abs(ev.imag).max()), 6) == im


# ----------------------------------------------------------------------------- eigenvalues at the equilibrium


CASES = [("gan", None, {}), ("nsgan", None, {}), ("wgan", None, {}), ("wgan", "clip", {}),
         ("gan", "r1", {"gamma": 0.3}), ("gan", "r2", {"gamma": 0.3}), ("gan", "r1", {"gamma": 1.0}),
         ("gan", "r1", {"gamma": 1.7}), ("nsgan", "r1", {"gamma": 0.3}), ("gan", "instance_noise", {"sigma": 0.7}),
         ("gan", "instance_noise", {"sigma": 2.5}), ("nsgan", "instance_noise", {"sigma": 0.7}),
         ("gan", "consensus", {"gamma": 1.0}), ("wgan", "consensus", {"gamma": 0.4})]


@pytest.mark.parametrize("loss,reg,kw", CASES)
def test_closed_form_eigenvalues_equal_numerical_jacobian_eigenvalues(loss, reg, kw):
    game = games.dirac_gan(loss, reg, **kw)
    np.testing.assert_allclose(games.jacobian(game.field_flat, np.zeros(2)),
                               games.dirac_jacobian(loss, reg, **kw), atol=1e-6)
    np.testing.assert_allclose(np.sort_complex(games.dirac_eigenvalues(loss, reg, **kw)), eigs_fd(game), atol=1e-6)


@pytest.mark.parametrize("reg,kw", [(None, {}), ("r1", {"gamma": 0.6}), ("instance_noise", {"sigma": 0.9}),
                                    ("consensus", {"gamma": 0.5})])
def test_closed_forms_hold_for_random_f(reg, kw):
    rng = np.random.default_rng(6)
    for _ in range(3):
        loss = random_loss(rng)
        np.testing.assert_allclose(np.sort_complex(games.dirac_eigenvalues(loss, reg, **kw)),
                                   eigs_fd(games.dirac_gan(loss, reg, **kw)), atol=1e-6)


def test_issue_numbers_for_regularised_eigenvalues():
    ev = games.dirac_eigenvalues("gan", "r1", gamma=0.3)
    assert np.allclose(ev.real, -0.15) and round(float(abs(ev[0].imag)), 5) == 0.47697
    ev = eigs_fd(games.dirac_gan("gan", "r1", gamma=1.0))
    np.testing.assert_allclose(ev, [-0.5, -0.5], atol=1e-4)  # double root: FD error is amplified to sqrt(eps)
    ev = games.dirac_eigenvalues("gan", "instance_noise", sigma=0.7)
    assert np.allclose(ev.real, -0.1225) and round(float(abs(ev[0].imag)), 5) == 0.48476
    np.testing.assert_allclose(np.sort_complex(games.dirac_eigenvalues("gan", "consensus", gamma=1.0)),
                               [-0.25 - 0.5j, -0.25 + 0.5j], atol=1e-12)


def test_critical_gamma_is_where_eigenvalues_become_real():
    for loss in ("gan", "wgan", random_loss(np.random.default_rng(7))):
        lo = games.dirac_loss(loss) if isinstance(loss, str) else loss
        gc = games.critical_gamma(float(lo.df(0.0)))
        below = eigs_fd(games.dirac_gan(lo, "r1", gamma=0.99 * gc))
        above = eigs_fd(games.dirac_gan(lo, "r1", gamma=1.01 * gc))
        assert np.all(np.abs(below.imag) > 1e-3) and np.all(np.abs(above.imag) < 1e-9)
    assert games.critical_gamma(0.5) == 1.0


# ----------------------------------------------------------------------------- simulation


@pytest.mark.parametrize("name", LINEARISABLE)
@pytest.mark.parametrize("rule,n_d", RULES3)
def test_simulated_rate_near_equilibrium_matches_update_eigenvalues(name, rule, n_d):
    kw = games.DIRAC_METHODS[name]
    game = games.dirac_gan(**kw)
    M = games.update_matrix(games.dirac_jacobian(**closed_form_args(kw)), H, rule, n_y=n_d)
    rho = games.spectral_radius(M)
    steps = 300
    traj = games.run(game, rule, (1e-4, -0.5e-4), H, steps, n_y=n_d)
    r = np.hypot(traj[:, 0], traj[:, 1])
    if name == "gradient_penalty_critical" and rule == "simultaneous":
        r = r / np.arange(1, steps + 2)  # double eigenvalue 0.9: a Jordan block, r_t ~ t 0.9^t
    keep = r > 1e-8 * r[0] / np.arange(1, steps + 2)  # stay far above the round-off floor (~1e-17)
    last = int(np.nonzero(keep)[0].max())
    # |z_t| of a rotating, non-normal linear map oscillates within each turn: measure between
    # local maxima of |z_t| (the same phase of the turn); without oscillation, between the window ends
    first = last // 4
    peaks = [k for k in range(first + 1, last) if r[k - 1] < r[k] >= r[k + 1]]
    i1, i2 = (peaks[0], peaks[-1]) if len(peaks) >= 2 and peaks[-1] - peaks[0] > last // 3 else (first, last)
    rate = (r[i2] / r[i1]) ** (1 / (i2 - i1))
    assert rate == pytest.approx(rho, abs=1e-3)


def test_table_behaviour_matches_the_eigenvalue_prediction():
    start, steps = (1.0, 1.0), 500
    for name, kw in games.DIRAC_METHODS.items():
        game = games.dirac_gan(**kw)
        for rule, n_d in RULES3:
            final = float(np.hypot(*games.run(game, rule, start, H, steps, n_y=n_d)[-1]))
            if name == "wgan_gp":
                assert final > 0.1
                continue
            rho = games.spectral_radius(games.update_matrix(games.dirac_jacobian(**closed_form_args(kw)), H, rule, n_y=n_d))
            if rho < 1 - 1e-6 and not (name == "consensus" and n_d == 5):
                assert final < 1e-3, (name, rule, n_d)
            elif rho >= 1 - 1e-9:
                assert final > 0.1, (name, rule, n_d)
    # consensus with 5 discriminator steps converges locally but (1, 1) lies outside its basin of attraction
    game = games.dirac_gan(**games.DIRAC_METHODS["consensus"])
    assert np.hypot(*games.run(game, "alternating", (1.0, 1.0), H, steps, n_y=5)[-1]) > 1
    assert np.hypot(*games.run(game, "alternating", (0.5, 0.5), H, steps, n_y=5)[-1]) < 1e-12


def test_non_saturating_drifts_slowly_but_does_not_converge_linearly():
    game = games.dirac_gan("nsgan")
    traj = games.run(game, "alternating", (1.0, 1.0), H, 4000)
    r = np.hypot(traj[:, 0], traj[:, 1])
    assert r[4000] < r[1000] < r[0]
    assert r[4000] > 0.25 * r[1000]  # a linear rate below 1 would shrink it by far more
    sim = np.hypot(*games.run(game, "simultaneous", (1.0, 1.0), H, 4000).T)
    assert abs(sim[4000] - sim[2000]) < 0.05 and sim[4000] > 0.5  # a cycle, no convergence
