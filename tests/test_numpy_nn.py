"""The NumPy toolkit: every backward pass against central finite differences, optimisers against
their closed-form first steps, the GAN losses end to end, and the error messages."""

import numpy as np
import pytest

from ganlib import data, theory
from ganlib import numpy_nn as nn

TOL = 1e-6


def _loss_fn(layer, x, R):
    """L = sum(layer(x) * R): dL/dy = R. Returns fn() -> (L, grads) and the input-gradient holder."""
    box = {}

    def fn():
        y = layer.forward(x)
        box["dx"] = layer.backward(R)
        return float(np.sum(y * R)), layer.gradients()

    return fn, box


def _input_grad_check(layer, x, R, eps=1e-6):
    fn, box = _loss_fn(layer, x, R)
    fn()
    analytic = box["dx"].copy()
    numeric = nn.numerical_gradient(lambda: fn()[0], [x], eps)[0]
    return nn.relative_error(analytic, numeric)


def _away_from_kinks(rng, shape):
    x = rng.normal(size=shape)
    return np.where(np.abs(x) < 1e-3, 0.5, x)


@pytest.mark.parametrize("init", ["xavier", "he"])
def test_linear_gradients_match_finite_differences(init):
    rng = np.random.default_rng(0)
    lin = nn.Linear(4, 3, rng, init=init)
    lin.b[:] = rng.normal(size=3)
    x, R = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    fn, _ = _loss_fn(lin, x, R)
    assert nn.gradient_check(fn, lin.parameters()) < TOL
    assert _input_grad_check(lin, x, R) < TOL


def test_linear_closed_form():
    x = np.array([[1.0, 2.0]])
    lin = nn.Linear(2, 1, np.random.default_rng(0))
    lin.W[:] = [[3.0], [-1.0]]
    lin.b[:] = [0.5]
    assert lin.forward(x).tolist() == [[1.5]]
    dx = lin.backward(np.array([[2.0]]))
    assert dx.tolist() == [[6.0, -2.0]] and lin.dW.tolist() == [[2.0], [4.0]] and lin.db.tolist() == [2.0]


@pytest.mark.parametrize("layer", [nn.ReLU(), nn.LeakyReLU(0.2), nn.LeakyReLU(0.01), nn.Tanh(), nn.Sigmoid(),
                                   nn.Standardize(4.0, 1.25)], ids=repr)
def test_activation_input_gradients(layer):
    rng = np.random.default_rng(1)
    x, R = _away_from_kinks(rng, (6, 3)), rng.normal(size=(6, 3))
    if isinstance(layer, nn.Standardize):
        x = x[:, :1]
        R = R[:, :1]
    assert _input_grad_check(layer, x, R) < TOL
    assert layer.parameters() == [] and layer.gradients() == []


def test_activation_values():
    x = np.array([[-2.0, 0.0, 3.0]])
    assert nn.ReLU().forward(x).tolist() == [[0.0, 0.0, 3.0]]
    assert np.allclose(nn.LeakyReLU(0.1).forward(x), [[-0.2, 0.0, 3.0]])
    assert np.allclose(nn.Tanh().forward(x), np.tanh(x))
    assert np.allclose(nn.Sigmoid().forward(x), 1 / (1 + np.exp(-x)))


@pytest.mark.parametrize("activation", ["leaky_relu", "relu", "tanh"])
def test_sequential_mlp_gradients(activation):
    rng = np.random.default_rng(2)
    net = nn.mlp([3, 7, 5, 2], rng, activation=activation)
    for p in net.parameters():
        p += 0.1 * rng.normal(size=p.shape)  # non-zero biases too
    x, R = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    fn, _ = _loss_fn(net, x, R)
    assert nn.gradient_check(fn, net.parameters()) < TOL
    assert _input_grad_check(net, x, R) < TOL


def test_initialisation_scales():
    rng = np.random.default_rng(3)
    xav = nn.Linear(300, 200, rng, init="xavier").W
    he = nn.Linear(400, 300, rng, init="he").W
    r = np.sqrt(6 / 500)
    assert np.abs(xav).max() <= r and np.isclose(xav.var(), r**2 / 3, rtol=0.05)   # Var U(-r, r) = r^2 / 3
    assert np.isclose(he.var(), 2 / 400, rtol=0.05) and abs(he.mean()) < 0.01
    with pytest.raises(ValueError, match="xavier"):
        nn.Linear(2, 2, rng, init="glorot")


def test_loss_gradients_match_finite_differences():
    rng = np.random.default_rng(4)
    a, t = rng.normal(0, 3, size=(7, 1)), rng.integers(0, 2, size=(7, 1)).astype(float)
    box = [a]
    g_num = nn.numerical_gradient(lambda: theory.bce_with_logits(box[0], t), box)[0]
    assert nn.relative_error(nn.bce_with_logits_grad(a, t), g_num) < TOL

    real, fake = rng.normal(size=(5, 1)), rng.normal(size=(9, 1))
    loss, g_real, g_fake = nn.discriminator_loss_and_grads(real, fake)
    assert np.isclose(loss, theory.discriminator_loss(real, fake))
    num = nn.numerical_gradient(lambda: theory.discriminator_loss(real, fake), [real, fake])
    assert nn.relative_error([g_real, g_fake], num) < TOL

    for kind, f in (("nonsaturating", theory.generator_loss_nonsaturating),
                    ("saturating", theory.generator_loss_saturating)):
        loss, g = nn.generator_loss_and_grad(fake, kind)
        assert np.isclose(loss, f(fake))
        assert nn.relative_error(g, nn.numerical_gradient(lambda: f(fake), [fake])[0]) < TOL
    with pytest.raises(ValueError, match="kind"):
        nn.generator_loss_and_grad(fake, "wasserstein")


def _gan(rng):
    G = nn.mlp([2, 6, 1], rng)
    D = nn.Sequential(nn.Standardize(1.0, 2.0), *nn.mlp([1, 6, 6, 1], rng).layers)
    for p in G.parameters() + D.parameters():
        p += 0.1 * rng.normal(size=p.shape)
    return G, D


@pytest.mark.parametrize("kind", ["nonsaturating", "saturating"])
def test_generator_loss_end_to_end_through_D_and_G(kind):
    """dL_G/dtheta_G backpropagated through D into G matches finite differences on G's parameters."""
    rng = np.random.default_rng(5)
    G, D = _gan(rng)
    z = rng.normal(size=(10, 2))

    def fn():
        logits = D.forward(G.forward(z))
        loss, g = nn.generator_loss_and_grad(logits, kind)
        G.backward(D.backward(g))
        return loss, G.gradients()

    assert nn.gradient_check(fn, G.parameters()) < TOL


def test_discriminator_loss_end_to_end():
    rng = np.random.default_rng(6)
    G, D = _gan(rng)
    x_real, x_fake = rng.normal(1, 2, size=(6, 1)), G.forward(rng.normal(size=(8, 2)))

    def fn():
        logits = D.forward(np.concatenate([x_real, x_fake]))
        loss, g_r, g_f = nn.discriminator_loss_and_grads(logits[:6], logits[6:])
        D.backward(np.concatenate([g_r, g_f]))
        return loss, D.gradients()

    assert nn.gradient_check(fn, D.parameters()) < TOL


def test_gradient_check_detects_a_wrong_backward():
    rng = np.random.default_rng(7)
    lin, x, R = nn.Linear(3, 2, rng), rng.normal(size=(4, 3)), rng.normal(size=(4, 2))

    def wrong():  # dW without the transpose-correct product: use a sum over the batch of the wrong thing
        y = lin.forward(x)
        lin.backward(R)
        return float(np.sum(y * R)), [lin.dW / 4, lin.db]   # mean instead of sum

    assert nn.gradient_check(wrong, lin.parameters()) > 0.1


def test_numerical_gradient_restores_params_and_needs_float64():
    w = np.array([1.0, -2.0])
    before = w.copy()
    g = nn.numerical_gradient(lambda: float(np.sum(w**3)), [w])[0]
    assert np.array_equal(w, before) and np.allclose(g, 3 * w**2, rtol=1e-8)
    with pytest.raises(TypeError, match="float64"):
        nn.numerical_gradient(lambda: 0.0, [np.ones(2, dtype=np.float32)])


def test_sgd_momentum_closed_form():
    w = np.array([2.0])
    opt = nn.SGD([w], lr=0.1, momentum=0.5)
    g = np.array([1.0])
    opt.step([g])   # v = 1, w = 2 - 0.1
    assert np.isclose(w[0], 1.9)
    opt.step([g])   # v = 0.5 + 1 = 1.5, w = 1.9 - 0.15
    assert np.isclose(w[0], 1.75)
    plain = np.array([2.0])
    nn.SGD([plain], lr=0.1).step([np.array([3.0])])
    assert np.isclose(plain[0], 1.7)


def test_adam_first_steps_closed_form():
    rng = np.random.default_rng(8)
    p0, g = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    p = p0.copy()
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    opt = nn.Adam([p], lr=lr, betas=(b1, b2), eps=eps)
    opt.step([g])
    # step 1: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps)
    assert np.allclose(p, p0 - lr * g / (np.abs(g) + eps), rtol=0, atol=1e-15)
    g2 = rng.normal(size=(3, 2))
    opt.step([g2])
    m = (1 - b1) * (b1 * g + g2)
    v = (1 - b2) * (b2 * g**2 + g2**2)
    step2 = lr * (m / (1 - b1**2)) / (np.sqrt(v / (1 - b2**2)) + eps)
    assert np.allclose(p, p0 - lr * g / (np.abs(g) + eps) - step2, rtol=0, atol=1e-14)
    # without bias correction step 1 would have been lr * 0.1 g / (sqrt(0.001) |g|) ~ 3.16 lr: different
    assert not np.allclose(lr * g / np.abs(g), lr * (0.1 * g) / np.sqrt(0.001 * g**2))


def test_optimizer_errors():
    w = np.zeros(2)
    with pytest.raises(ValueError, match="2 gradients for 1 parameters"):
        nn.Adam([w]).step([np.zeros(2), np.zeros(2)])
    with pytest.raises(ValueError, match="shape"):
        nn.SGD([w]).step([np.zeros(3)])
    with pytest.raises(ValueError, match="learning rate"):
        nn.Adam([w], lr=0)
    nn.SGD([w], momentum=0.99)
    with pytest.raises(ValueError, match="momentum"):
        nn.SGD([w], momentum=1.0)
    with pytest.raises(ValueError, match="betas"):
        nn.Adam([w], betas=(0.9, 1.0))


def test_train_gan_1d_validates_its_arguments():
    rng = np.random.default_rng(0)
    G, D = nn.mlp([1, 2, 1], rng), nn.mlp([1, 2, 1], rng)
    real = lambda n, r: r.normal(size=(n, 1))
    with pytest.raises(ValueError, match="batch_size >= 1"):
        nn.train_gan_1d(G, D, real, rng, steps=2, batch_size=0)
    with pytest.raises(ValueError, match="steps >= 0"):
        nn.train_gan_1d(G, D, real, rng, steps=-1)
    with pytest.raises(ValueError, match="kind"):
        nn.train_gan_1d(G, D, real, rng, steps=2, kind="wasserstein")
    assert nn.train_gan_1d(G, D, real, rng, steps=0).loss_d.shape == (0,)


def test_mlp_defaults_he_for_relu_xavier_for_tanh_and_passes_the_slope():
    rng = np.random.default_rng(15)
    for activation in ("leaky_relu", "relu"):
        W = nn.mlp([400, 300], rng, activation=activation).layers[0].W
        assert np.isclose(W.var(), 2 / 400, rtol=0.05)
    W = nn.mlp([400, 300], rng, activation="tanh").layers[0].W
    assert np.abs(W).max() <= np.sqrt(6 / 700) and np.isclose(W.var(), 6 / 700 / 3, rtol=0.05)
    net = nn.mlp([1, 4, 4, 1], rng, slope=0.05)
    assert [layer.slope for layer in net.layers if isinstance(layer, nn.LeakyReLU)] == [0.05, 0.05]
    assert [type(layer) for layer in nn.mlp([1, 4, 1], rng, activation="relu").layers][1] is nn.ReLU


@pytest.mark.parametrize("layer,torch_name", [(nn.ReLU(), "relu"), (nn.LeakyReLU(0.2), "leaky_relu")])
def test_derivative_at_the_kink_matches_torch(layer, torch_name):
    """At exactly x = 0 the NumPy layers use the same one-sided derivative as torch (the slope, or 0)."""
    import torch

    x = np.array([[0.0, -1.0, 1.0]])
    layer.forward(x)
    xt = torch.from_numpy(x).requires_grad_(True)
    fn = torch.nn.functional.relu if torch_name == "relu" else (lambda t: torch.nn.functional.leaky_relu(t, 0.2))
    fn(xt).sum().backward()
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), xt.grad.numpy())


def test_wrong_shapes_name_the_layer_and_expected_shape():
    rng = np.random.default_rng(9)
    net = nn.mlp([2, 4, 1], rng)
    with pytest.raises(ValueError, match=r"Linear\(2, 4\) \(layer 0 of Sequential\): expected input of shape \(batch, 2\), got \(5, 3\)"):
        net.forward(np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, 2\), got \(5,\)"):
        net.forward(np.zeros(5))
    net.forward(np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"Linear\(4, 1\) \(layer 2 of Sequential\): backward expects grad_out of shape \(5, 1\)"):
        net.backward(np.zeros((5, 2)))
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Linear(2, 2, rng).backward(np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"LeakyReLU\(0.2\): expected input of shape \(batch, features\)"):
        nn.LeakyReLU(0.2).forward(np.zeros(3))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_stops_training_naming_step_and_quantity():
    rng = np.random.default_rng(10)
    G, D = nn.mlp([1, 4, 1], rng), nn.mlp([1, 4, 1], rng)

    def poisoned(n, r):
        x = r.normal(size=(n, 1))
        if poisoned.calls == 3:
            x[0, 0] = np.nan
        poisoned.calls += 1
        return x

    poisoned.calls = 0
    with pytest.raises(FloatingPointError, match="step 3: the discriminator loss is nan"):
        nn.train_gan_1d(G, D, poisoned, rng, steps=10, batch_size=8)

    G, D = nn.mlp([1, 4, 1], rng), nn.mlp([1, 4, 1], rng)
    D.layers[-1].W[:] = np.inf                     # inf weights meet hidden units of both signs: inf - inf = NaN logits
    with pytest.raises(FloatingPointError, match="step 0: the discriminator loss is nan "):
        nn.train_gan_1d(G, D, lambda n, r: r.normal(size=(n, 1)), rng, steps=3, batch_size=8)


def test_generator_step_uses_the_discriminators_input_gradient():
    """With a linear D(x) = w x + b, dL_NS/dx_i = -(1 - D_i) w / n: G's samples move towards larger logits."""
    rng = np.random.default_rng(11)
    G = nn.Sequential(nn.Linear(1, 1, rng))
    D = nn.Sequential(nn.Linear(1, 1, rng))
    D.layers[0].W[:] = 2.0
    c0 = G.layers[0].b.copy()
    opt = nn.SGD(G.parameters(), lr=0.1)
    z = rng.normal(size=(16, 1))
    x = G.forward(z)
    d = theory.sigmoid(D.forward(x))
    loss, norm = nn.generator_step(G, D, opt, z)
    assert np.isclose(loss, theory.generator_loss_nonsaturating(D.forward(x)))
    expected_dc = float(np.sum(-(1 - d) * 2.0 / 16))
    assert np.isclose(G.layers[0].b[0], c0[0] - 0.1 * expected_dc)
    assert G.layers[0].b[0] > c0[0]      # moved towards where D says "real"
    assert norm > 0


def test_train_gan_1d_learns_the_mean_quickly():
    """A short run moves G's samples from around 0 to the data's mean 3 (the full criterion is in the notebooks)."""
    rng = np.random.default_rng(0)
    G = nn.mlp([1, 16, 1], rng)
    D = nn.Sequential(nn.Standardize(3.0, 1.0), *nn.mlp([1, 16, 16, 1], rng).layers)
    before = nn.generate(G, 2000, np.random.default_rng(1))[:, 0]
    hist = nn.train_gan_1d(G, D, lambda n, r: data.sample_gaussian_1d(n, r, 3.0, 1.0), rng, steps=600,
                           lr_g=3e-3, lr_d=3e-3, snapshot_steps=[0, 600])
    after = nn.generate(G, 2000, np.random.default_rng(1))[:, 0]
    assert abs(before.mean() - 3.0) > 2 and abs(after.mean() - 3.0) < 0.5
    assert [s["step"] for s in hist.snapshots] == [0, 600]
    assert hist.snapshots[0]["d_prob"].shape == hist.snapshots[0]["grid"].shape
    assert np.all(np.isfinite(hist.loss_d)) and hist.grad_norm_g.shape == (600,)


class _RecordingAdam(nn.Adam):
    """Adam that logs the learning rate it uses at every step (one log per optimiser)."""

    logs: list = []

    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)
        self.rates: list[float] = []
        _RecordingAdam.logs.append(self)

    def step(self, grads):
        self.rates.append(self.lr)
        super().step(grads)


def _recorded_rates(monkeypatch, lr_decay, steps=10, lr_g=2e-3, lr_d=5e-3):
    monkeypatch.setattr(_RecordingAdam, "logs", [])
    monkeypatch.setattr(nn, "Adam", _RecordingAdam)
    rng = np.random.default_rng(12)
    G, D = nn.mlp([1, 4, 1], rng), nn.mlp([1, 4, 1], rng)
    nn.train_gan_1d(G, D, lambda n, r: r.normal(size=(n, 1)), rng, steps=steps, batch_size=8,
                    lr_g=lr_g, lr_d=lr_d, lr_decay=lr_decay)
    by_net = {}
    for opt in _RecordingAdam.logs:
        net = "G" if opt.params[0] is G.parameters()[0] else "D" if opt.params[0] is D.parameters()[0] else "?"
        by_net[net] = np.array(opt.rates)
    assert sorted(by_net) == ["D", "G"]
    return by_net


def test_lr_decay_is_linear_for_both_optimisers(monkeypatch):
    """At step k (0-based) both rates are lr * (1 - k / steps): lr at the first step, lr / steps at the last."""
    steps = 10
    rates = _recorded_rates(monkeypatch, lr_decay=True, steps=steps)
    k = np.arange(steps)
    np.testing.assert_allclose(rates["D"], 5e-3 * (1 - k / steps), rtol=1e-15)
    np.testing.assert_allclose(rates["G"], 2e-3 * (1 - k / steps), rtol=1e-15)
    off = _recorded_rates(monkeypatch, lr_decay=False, steps=steps)
    assert np.all(off["D"] == 5e-3) and np.all(off["G"] == 2e-3) and len(off["D"]) == steps


def test_snapshots_do_not_change_training():
    runs = []
    for snaps in ([], [0, 5, 10]):
        rng = np.random.default_rng(12)
        G, D = nn.mlp([1, 4, 1], rng), nn.mlp([1, 4, 1], rng)
        h = nn.train_gan_1d(G, D, lambda n, r: r.normal(size=(n, 1)), rng, steps=10, batch_size=8,
                            lr_decay=True, snapshot_steps=snaps)
        runs.append((h, G.parameters()[0].copy()))
    assert np.array_equal(runs[0][0].loss_d, runs[1][0].loss_d) and np.array_equal(runs[0][1], runs[1][1])
    assert runs[0][0].snapshots == [] and [s["step"] for s in runs[1][0].snapshots] == [0, 5, 10]


def test_check_finite_rejects_inf_and_nan_and_accepts_finite():
    nn.check_finite(1e308, 0, "loss")
    nn.check_finite(-3.0, 0, "loss")
    for bad, shown in ((float("inf"), "inf"), (float("-inf"), "-inf"), (float("nan"), "nan"), (np.float64(np.inf), "inf")):
        with pytest.raises(FloatingPointError, match=f"step 7: the generator loss is {shown} "):
            nn.check_finite(bad, 7, "generator loss")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_an_infinite_discriminator_loss_stops_training():
    """A real inf: D(x) = -x sends a real sample at +inf to logit -inf, and softplus(+inf) = inf (not NaN)."""
    rng = np.random.default_rng(13)
    G = nn.mlp([1, 4, 1], rng)
    D = nn.Sequential(nn.Linear(1, 1, rng))
    D.layers[0].W[:] = -1.0

    def data_with_inf(n, r):
        x = r.normal(size=(n, 1))
        if data_with_inf.calls == 2:
            x[0, 0] = np.inf
        data_with_inf.calls += 1
        return x

    data_with_inf.calls = 0
    logits = D.forward(np.array([[np.inf], [0.0]]))
    assert theory.discriminator_loss(logits[:1], logits[1:]) == np.inf   # inf, not NaN
    with pytest.raises(FloatingPointError, match="step 2: the discriminator loss is inf "):
        nn.train_gan_1d(G, D, data_with_inf, rng, steps=10, batch_size=8)


@pytest.mark.parametrize("bad,message", [((np.inf, 1.0), "generator loss is inf"),
                                         ((1.0, np.inf), "generator's gradient norm is inf"),
                                         ((np.nan, 1.0), "generator loss is nan")])
def test_generator_step_results_are_checked(monkeypatch, bad, message):
    real_step = nn.generator_step
    calls = []

    def step(*args, **kwargs):
        calls.append(1)
        out = real_step(*args, **kwargs)
        return bad if len(calls) == 4 else out

    monkeypatch.setattr(nn, "generator_step", step)
    rng = np.random.default_rng(14)
    G, D = nn.mlp([1, 4, 1], rng), nn.mlp([1, 4, 1], rng)
    with pytest.raises(FloatingPointError, match=f"step 3: the {message}"):
        nn.train_gan_1d(G, D, lambda n, r: r.normal(size=(n, 1)), rng, steps=10, batch_size=8)
