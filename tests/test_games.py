"""ganlib.games against closed forms and finite differences."""

import numpy as np
import pytest

from ganlib import games

ETAS = [0.1, 0.2, 0.5]


def radius(traj):
    return np.hypot(traj[:, 0], traj[:, 1])


@pytest.mark.parametrize("eta", ETAS)
def test_simultaneous_multiplies_modulus_by_sqrt_1_plus_eta2_every_step(eta):
    r = radius(games.run(games.bilinear(), "simultaneous", (0.7, -0.3), eta, 50))
    np.testing.assert_allclose(r[1:] / r[:-1], np.sqrt(1 + eta**2), rtol=1e-12)


def test_simultaneous_factor_value_from_the_text():
    assert round(games.bilinear_factor("simultaneous", 0.1), 6) == 1.004988
    traj = games.run(games.bilinear(), "simultaneous", (1.0, 0.0), 0.1, 10)
    assert round(games.measured_rate(traj, start=0), 6) == 1.004988


@pytest.mark.parametrize("eta", ETAS + [1.5])
def test_alternating_conserves_quadratic_and_has_determinant_one(eta):
    traj = games.run(games.bilinear(), "alternating", (0.7, -0.3), eta, 2000)
    x, y = traj[:, 0], traj[:, 1]
    q = x**2 + y**2 - eta * x * y
    np.testing.assert_allclose(q, q[0], rtol=1e-10)
    M = games.update_matrix(np.array([[0.0, -1.0], [1.0, 0.0]]), eta, "alternating")
    np.testing.assert_allclose(M, [[1, -eta], [eta, 1 - eta**2]], atol=1e-15)
    assert np.linalg.det(M) == pytest.approx(1.0, abs=1e-14)
    assert radius(traj).max() < 10 * radius(traj)[0]


@pytest.mark.parametrize("eta,want", [(0.1, 0.995038), (0.2, 0.980612), (0.5, 0.901388)])
def test_extragradient_contracts_by_closed_form(eta, want):
    assert games.bilinear_factor("extragradient", eta) == pytest.approx(want, abs=5e-7)
    r = radius(games.run(games.bilinear(), "extragradient", (0.7, -0.3), eta, 40))
    np.testing.assert_allclose(r[1:] / r[:-1], np.sqrt(1 - eta**2 + eta**4), rtol=1e-12)


@pytest.mark.parametrize("eta,want", [(0.1, 0.994936), (0.2, 0.978906), (0.5, 0.707107)])
def test_optimistic_rate_is_largest_root_of_characteristic_polynomial(eta, want):
    assert games.bilinear_factor("optimistic", eta) == pytest.approx(want, abs=5e-7)
    steps = 400
    r = radius(games.run(games.bilinear(), "optimistic", (0.7, -0.3), eta, steps))
    t = np.arange(steps + 1)
    if eta == 0.5:
        # a double root (discriminant (1 + 2i eta)^2 - 4 i eta = 0): r_t ~ t * lambda^t, a Jordan block
        r = r / np.maximum(t, 1)
    # asymptotic rate measured over the second half of the run
    rate = (r[-1] / r[steps // 2]) ** (1 / (steps - steps // 2))
    assert rate == pytest.approx(want, rel=2e-3)


def test_optimistic_matches_complex_recursion():
    eta, steps = 0.2, 30
    z = [0.7 - 0.3j, 0.7 - 0.3j]
    for _ in range(steps):
        z.append(z[-1] + 2j * eta * z[-1] - 1j * eta * z[-2])
    traj = games.run(games.bilinear(), "optimistic", (0.7, -0.3), eta, steps)
    np.testing.assert_allclose(traj[:, 0] + 1j * traj[:, 1], z[1:], atol=1e-12)


def _step_map(rule, grad, eta):
    if rule == "optimistic":
        def f(s):
            x, y = games.optimistic_step(grad, s[0], s[1], s[2], s[3], eta)
            return np.array([x, y, s[0], s[1]])
    else:
        step = {"simultaneous": games.simultaneous_step, "alternating": games.alternating_step,
                "extragradient": games.extragradient_step}[rule]

        def f(s):
            return np.array(step(grad, s[0], s[1], eta))
    return f


@pytest.mark.parametrize("rule", games.RULES)
def test_update_matrix_equals_finite_difference_jacobian_of_the_step(rule):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(2, 2))  # a random linear field: grad = (A00 x + A01 y, A10 x + A11 y)
    grad = lambda x, y: (A[0, 0] * x + A[0, 1] * y, A[1, 0] * x + A[1, 1] * y)
    J = np.array([[-A[0, 0], -A[0, 1]], [A[1, 0], A[1, 1]]])
    eta = 0.3
    n = 4 if rule == "optimistic" else 2
    fd = games.jacobian(_step_map(rule, grad, eta), rng.normal(size=n))
    np.testing.assert_allclose(games.update_matrix(J, eta, rule), fd, atol=1e-8)


@pytest.mark.parametrize("rule", games.RULES)
@pytest.mark.parametrize("eta", [0.05, 0.3, 0.9, 1.7])
def test_closed_form_factor_equals_spectral_radius(rule, eta):
    J = games.jacobian(games.bilinear().field_flat, np.zeros(2))
    assert games.bilinear_factor(rule, eta) == pytest.approx(
        games.spectral_radius(games.update_matrix(J, eta, rule)), rel=1e-9)


def test_alternating_diverges_beyond_eta_2():
    assert games.bilinear_factor("alternating", 2.5) > 1
    J = np.array([[0.0, -1.0], [1.0, 0.0]])
    assert games.spectral_radius(games.update_matrix(J, 2.5, "alternating")) == pytest.approx(
        games.bilinear_factor("alternating", 2.5))


def test_jacobian_of_nonlinear_map():
    f = lambda z: np.array([np.sin(z[0]) * z[1], z[0] ** 3])
    z = np.array([0.4, -1.3])
    want = np.array([[np.cos(z[0]) * z[1], np.sin(z[0])], [3 * z[0] ** 2, 0.0]])
    np.testing.assert_allclose(games.jacobian(f, z), want, atol=1e-8)


def test_regularized_bilinear_converges_under_simultaneous_gda():
    mu, eta = 0.3, 0.1
    g = games.regularized_bilinear(mu)
    J = games.jacobian(g.field_flat, np.zeros(2))
    np.testing.assert_allclose(np.sort_complex(np.linalg.eigvals(J)), [-mu - 1j, -mu + 1j], atol=1e-8)
    factor = np.sqrt((1 - eta * mu) ** 2 + eta**2)
    r = radius(games.run(g, "simultaneous", (1.0, 1.0), eta, 60))
    np.testing.assert_allclose(r[1:] / r[:-1], factor, rtol=1e-12)
    assert factor < 1
    # the stability condition eta < 2 mu / (1 + mu^2)
    eta_max = 2 * mu / (1 + mu**2)
    assert games.spectral_radius(games.update_matrix(J, 0.99 * eta_max, "simultaneous")) < 1
    assert games.spectral_radius(games.update_matrix(J, 1.01 * eta_max, "simultaneous")) > 1


def test_value_and_grad_agree_by_finite_differences():
    for g in (games.bilinear(), games.regularized_bilinear(0.4)):
        for x, y in [(0.3, -0.7), (1.2, 0.5)]:
            h = 1e-6
            dx = (g.value(x + h, y) - g.value(x - h, y)) / (2 * h)
            dy = (g.value(x, y + h) - g.value(x, y - h)) / (2 * h)
            np.testing.assert_allclose(g.grad(x, y), (dx, dy), atol=1e-8)


def test_run_handles_array_players_and_validates():
    traj = games.run(games.bilinear(), "extragradient", (np.ones(3), np.zeros(3)), 0.1, 5)
    assert traj.shape == (6, 2, 3)
    with pytest.raises(ValueError, match="unknown rule"):
        games.run(games.bilinear(), "newton", (1, 1), 0.1, 5)
    with pytest.raises(ValueError, match="positive"):
        games.run(games.bilinear(), "simultaneous", (1, 1), 0.0, 5)
    with pytest.raises(ValueError, match="same shape"):
        games.run(games.bilinear(), "simultaneous", (np.ones(2), np.ones(3)), 0.1, 5)
    with pytest.raises(ValueError, match="square"):
        games.update_matrix(np.ones((2, 3)), 0.1, "simultaneous")


def test_plot_game_draws_field_and_trajectories():
    import matplotlib

    matplotlib.use("Agg")
    from ganlib.plot import plot_game

    g = games.bilinear()
    trajs = {r: games.run(g, r, (1.0, 0.5), 0.1, 100) for r in games.RULES}
    ax = plot_game(g, trajs)
    labels = [line.get_label() for line in ax.get_lines()]
    assert all(r in labels for r in games.RULES)
    assert len(ax.collections) == 1  # the quiver
    with pytest.raises(ValueError, match="shape"):
        plot_game(g, {"bad": np.zeros((3, 3))})


def test_measured_rate_starts_halfway_by_default():
    """A trajectory that grows by 2 per step, then shrinks by 1/2: the default window is the second half."""
    r = np.concatenate([2.0 ** np.arange(41), 2.0**40 * 0.5 ** np.arange(1, 61)])  # T = 100, turn at t = 40
    traj = np.stack([r, np.zeros_like(r)], axis=1)
    assert games.measured_rate(traj) == pytest.approx(0.5, rel=1e-12)
    assert games.measured_rate(traj, start=20) == pytest.approx((2.0**20 * 0.5**60) ** (1 / 80), rel=1e-12)


def test_measured_rate_with_a_double_root():
    traj = games.run(games.bilinear(), "optimistic", (0.7, -0.3), 0.5, 400)
    assert games.measured_rate(traj, jordan=True) == pytest.approx(1 / np.sqrt(2), rel=2e-3)
    assert games.measured_rate(traj) > 1.002 / np.sqrt(2)  # without the correction the t factor biases it up
