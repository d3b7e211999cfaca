"""ganlib.losses against independent NumPy formulas, chapter 02's functions and finite differences."""

import numpy as np
import pytest
import torch

from ganlib import losses, theory
from ganlib.utils import default_device

RNG = np.random.default_rng(2024)
SHAPES = [(7,), (7, 1)]


def logits_pair(shape, scale=3.0, n_fake=None):
    real = RNG.normal(0.5, scale, size=shape)
    fake = RNG.normal(-0.5, scale, size=((n_fake,) + shape[1:]) if n_fake else shape)
    return real, fake


def T(a, dtype=torch.float64):
    return torch.tensor(a, dtype=dtype)


# --------------------------------------------------------------------------- values on random inputs


@pytest.mark.parametrize("shape", SHAPES)
def test_bce_losses_match_chapter_02(shape):
    real, fake = logits_pair(shape, n_fake=11)
    assert np.isclose(losses.discriminator_loss_bce(T(real), T(fake)).item(), theory.discriminator_loss(real, fake), rtol=1e-12)
    assert np.isclose(losses.generator_loss_saturating(T(fake)).item(), theory.generator_loss_saturating(fake), rtol=1e-12)
    assert np.isclose(losses.generator_loss_nonsaturating(T(fake)).item(), theory.generator_loss_nonsaturating(fake), rtol=1e-12)


def test_bce_matches_naive_formula_and_torch_builtin():
    real, fake = logits_pair((9, 1), scale=2.0)
    d = lambda a: 1 / (1 + np.exp(-a))
    naive = -np.mean(np.log(d(real))) - np.mean(np.log(1 - d(fake)))
    assert np.isclose(losses.discriminator_loss_bce(T(real), T(fake)).item(), naive, rtol=1e-10)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    builtin = bce(T(real), torch.ones(9, 1, dtype=torch.float64)) + bce(T(fake), torch.zeros(9, 1, dtype=torch.float64))
    assert np.isclose(losses.discriminator_loss_bce(T(real), T(fake)).item(), builtin.item(), rtol=1e-12)
    probs = losses.discriminator_loss_bce_probs(T(d(real)), T(d(fake))).item()
    assert np.isclose(probs, naive, rtol=1e-10)


def test_bce_is_finite_for_extreme_logits():
    real, fake = T([-800.0, 0.0, 800.0]), T([800.0, -800.0, 0.0])
    loss = losses.discriminator_loss_bce(real, fake)
    assert np.isclose(loss.item(), (800 + np.log(2)) / 3 + (800 + np.log(2)) / 3, rtol=1e-12)
    assert np.isclose(losses.generator_loss_nonsaturating(T([-800.0])).item(), 800.0)


@pytest.mark.parametrize("shape", SHAPES)
def test_lsgan_matches_numpy(shape):
    real, fake = logits_pair(shape, n_fake=5)
    a, b, c = RNG.normal(size=3)
    want_d = 0.5 * np.mean((real - b) ** 2) + 0.5 * np.mean((fake - a) ** 2)
    assert np.isclose(losses.discriminator_loss_lsgan(T(real), T(fake), a=a, b=b).item(), want_d, rtol=1e-12)
    assert np.isclose(losses.generator_loss_lsgan(T(fake), c=c).item(), 0.5 * np.mean((fake - c) ** 2), rtol=1e-12)
    default = 0.5 * np.mean((real - 1) ** 2) + 0.5 * np.mean(fake ** 2)
    assert np.isclose(losses.discriminator_loss_lsgan(T(real), T(fake)).item(), default, rtol=1e-12)


@pytest.mark.parametrize("ab", [{}, {"a": -1.0, "b": 1.0}, {"a": 0.5, "b": 2.0}])
def test_lsgan_optimal_discriminator(ab):
    """D*(x) = (b p_d + a p_g) / (p_d + p_g) minimises ganlib's LSGAN loss (Mao et al. 2017, Prop. 1).

    A distribution on four points is a batch that repeats each point by its probability; D is one
    free value per point, so the batch loss is the expectation of the pointwise loss.
    """
    a, b = ab.get("a", 0.0), ab.get("b", 1.0)
    counts_d, counts_g = np.array([1, 4, 3, 2]), np.array([3, 1, 2, 4])
    pd, pg = counts_d / counts_d.sum(), counts_g / counts_g.sum()
    real_idx = torch.tensor(np.repeat(np.arange(4), counts_d))
    fake_idx = torch.tensor(np.repeat(np.arange(4), counts_g))
    loss = lambda d: losses.discriminator_loss_lsgan(d[real_idx], d[fake_idx], **ab)
    d_star = T((b * pd + a * pg) / (pd + pg)).requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(d_star), d_star)
    np.testing.assert_allclose(grad.numpy(), 0.0, atol=1e-15)
    # the loss is a quadratic with Hessian diag(p_d + p_g) / 2: the excess at D* + delta is exact
    delta = T(RNG.normal(size=4))
    excess = (loss(d_star + delta) - loss(d_star)).item()
    assert np.isclose(excess, 0.5 * np.sum((pd + pg) * delta.numpy() ** 2), rtol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
def test_hinge_and_wasserstein_match_numpy(shape):
    real, fake = logits_pair(shape, scale=1.5, n_fake=13)
    want = np.mean(np.maximum(0, 1 - real)) + np.mean(np.maximum(0, 1 + fake))
    assert np.isclose(losses.discriminator_loss_hinge(T(real), T(fake)).item(), want, rtol=1e-12)
    assert np.isclose(losses.generator_loss_hinge(T(fake)).item(), -np.mean(fake), rtol=1e-12)
    assert np.isclose(losses.critic_loss_wasserstein(T(real), T(fake)).item(), np.mean(fake) - np.mean(real), rtol=1e-12)
    assert np.isclose(losses.generator_loss_wasserstein(T(fake)).item(), -np.mean(fake), rtol=1e-12)


def test_generator_gradients_with_respect_to_the_output():
    """The per-sample gradients the lesson plots: -D, -(1 - D), (d - c), -1, -1 (each divided by n)."""
    a = T(RNG.normal(0, 3, size=(6, 1))).requires_grad_(True)
    s = theory.sigmoid(a.detach().numpy())
    cases = {
        losses.generator_loss_saturating: -s,
        losses.generator_loss_nonsaturating: -(1 - s),
        losses.generator_loss_lsgan: a.detach().numpy() - 1.0,
        losses.generator_loss_hinge: -np.ones_like(s),
        losses.generator_loss_wasserstein: -np.ones_like(s),
    }
    for fn, per_sample in cases.items():
        (g,) = torch.autograd.grad(fn(a), a)
        np.testing.assert_allclose(g.numpy(), per_sample / 6, rtol=1e-10, atol=1e-15)


def _sp(a):
    return np.log1p(np.exp(a))  # naive softplus: fine for the moderate logits used with it


# Independent NumPy formulas for each entry of LOSSES: (discriminator(real, fake), generator(fake)).
NUMPY_LOSSES = {
    "minimax": (lambda r, f: np.mean(_sp(-r)) + np.mean(_sp(f)), lambda f: np.mean(np.log(1 - 1 / (1 + np.exp(-f))))),
    "nonsaturating": (lambda r, f: np.mean(_sp(-r)) + np.mean(_sp(f)), lambda f: -np.mean(np.log(1 / (1 + np.exp(-f))))),
    "lsgan": (lambda r, f: 0.5 * np.mean((r - 1) ** 2) + 0.5 * np.mean(f**2), lambda f: 0.5 * np.mean((f - 1) ** 2)),
    "hinge": (lambda r, f: np.mean(np.maximum(0, 1 - r)) + np.mean(np.maximum(0, 1 + f)), lambda f: -np.mean(f)),
    "wasserstein": (lambda r, f: np.mean(f) - np.mean(r), lambda f: -np.mean(f)),
}
FIXED_REAL = np.array([[2.0], [-0.5], [0.3], [1.2]])
FIXED_FAKE = np.array([[-1.0], [0.8], [-1.5], [0.4], [2.5]])


def test_losses_registry_maps_each_name_to_its_functions():
    want = {
        "minimax": (losses.discriminator_loss_bce, losses.generator_loss_saturating),
        "nonsaturating": (losses.discriminator_loss_bce, losses.generator_loss_nonsaturating),
        "lsgan": (losses.discriminator_loss_lsgan, losses.generator_loss_lsgan),
        "hinge": (losses.discriminator_loss_hinge, losses.generator_loss_hinge),
        "wasserstein": (losses.critic_loss_wasserstein, losses.generator_loss_wasserstein),
    }
    assert list(losses.LOSSES) == list(want)
    for name, (d_loss, g_loss) in losses.LOSSES.items():
        assert d_loss is want[name][0] and g_loss is want[name][1], name


@pytest.mark.parametrize("name", list(NUMPY_LOSSES))
def test_losses_registry_values_on_fixed_inputs(name):
    d_loss, g_loss = losses.LOSSES[name]
    d_np, g_np = NUMPY_LOSSES[name]
    got_d, got_g = d_loss(T(FIXED_REAL), T(FIXED_FAKE)), g_loss(T(FIXED_FAKE))
    assert got_d.shape == () and got_g.shape == ()
    assert np.isclose(got_d.item(), d_np(FIXED_REAL, FIXED_FAKE), rtol=1e-12, atol=1e-15)
    assert np.isclose(got_g.item(), g_np(FIXED_FAKE), rtol=1e-12, atol=1e-15)
    # the fixed inputs tell every entry apart (a swapped pairing could not pass by coincidence)
    others = [n for n in NUMPY_LOSSES if n != name]
    pairs = [(round(NUMPY_LOSSES[n][0](FIXED_REAL, FIXED_FAKE), 9), round(NUMPY_LOSSES[n][1](FIXED_FAKE), 9)) for n in others]
    assert (round(got_d.item(), 9), round(got_g.item(), 9)) not in pairs


# --------------------------------------------------------------------------- dtypes, devices, errors


@pytest.mark.parametrize("dtype,rtol", [(torch.float32, 1e-6), (torch.float64, 1e-12), (torch.bfloat16, 2e-2)])
def test_dtypes(dtype, rtol):
    """Each loss keeps the inputs' dtype and agrees with the NumPy formula to that dtype's precision."""
    real, fake = logits_pair((16, 1), scale=2.0)
    real_t, fake_t = T(real, dtype), T(fake, dtype)
    # the reference sees the same (rounded) inputs, so only the arithmetic's precision is tested
    r, f = real_t.double().numpy(), fake_t.double().numpy()
    for name, (d_loss, g_loss) in losses.LOSSES.items():
        d_np, g_np = NUMPY_LOSSES[name]
        got_d, got_g = d_loss(real_t, fake_t), g_loss(fake_t)
        assert got_d.dtype == dtype and got_g.dtype == dtype, name
        assert np.isclose(got_d.item(), d_np(r, f), rtol=rtol, atol=rtol), name
        assert np.isclose(got_g.item(), g_np(f), rtol=rtol, atol=rtol), name


def test_default_device():
    dev = default_device()
    real = torch.randn(5, 1, device=dev)
    assert losses.discriminator_loss_hinge(real, real).device.type == dev.type
    critic = torch.nn.Linear(3, 1).to(dev)
    assert losses.gradient_penalty(critic, torch.randn(4, 3, device=dev), torch.randn(4, 3, device=dev)).device.type == dev.type


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="same shape per sample"):
        losses.discriminator_loss_bce(torch.zeros(4), torch.zeros(4, 1))
    with pytest.raises(ValueError, match="pairwise"):
        losses.gradient_penalty(torch.nn.Linear(2, 1), torch.zeros(4, 2), torch.zeros(5, 2))
    with pytest.raises(TypeError, match="torch.Tensor"):
        losses.generator_loss_hinge(np.zeros(3))
    with pytest.raises(TypeError, match="floating-point"):
        losses.generator_loss_hinge(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="one number per sample"):
        losses.r1_penalty(torch.nn.Linear(2, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="one weight per sample"):
        losses.gradient_penalty(torch.nn.Linear(2, 1), torch.zeros(4, 2), torch.zeros(4, 2), eps=torch.rand(1))
    with pytest.raises(TypeError, match="different dtypes"):
        losses.discriminator_loss_hinge(torch.zeros(4), torch.zeros(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="different devices"):  # the meta device stands in for a GPU
        losses.critic_loss_wasserstein(torch.zeros(4), torch.zeros(4, device="meta"))
    with pytest.raises(ValueError, match="device or dtype"):
        losses.gradient_penalty(torch.nn.Linear(2, 1), torch.zeros(4, 2), torch.zeros(4, 2, dtype=torch.float64))


@pytest.mark.parametrize("bad", [1.5, -0.2, -2.0, 1.0 + 1e-6, float("nan")])
def test_logits_given_to_probability_loss_get_a_clear_message(bad):
    with pytest.raises(ValueError, match="look like logits"):
        losses.discriminator_loss_bce_probs(T([0.3, bad]), T([0.5, 0.5]))
    with pytest.raises(ValueError, match="look like logits"):
        losses.discriminator_loss_bce_probs(T([0.3]), T([bad]))


def test_saturated_probabilities_are_accepted_and_give_inf():
    assert torch.isinf(losses.discriminator_loss_bce_probs(T([0.5]), T([1.0])))
    assert torch.isinf(losses.discriminator_loss_bce_probs(T([0.0]), T([0.5])))


def test_clip_weights():
    lin = torch.nn.Linear(10, 10)
    before = [p.detach().clone() for p in lin.parameters()]
    losses.clip_weights_(lin, 0.05)
    for p, b in zip(lin.parameters(), before):
        np.testing.assert_array_equal(p.detach().numpy(), np.clip(b.numpy(), -0.05, 0.05))
    with pytest.raises(ValueError):
        losses.clip_weights_(lin, 0.0)


# --------------------------------------------------------------------------- penalties vs finite differences


def make_critic(d, hidden=6, seed=0, out_1d=False):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(d, hidden), torch.nn.Tanh(),
                              torch.nn.Linear(hidden, 1)).double()
    if out_1d:
        return lambda x: net(x)[:, 0], net
    return net, net


def fd_input_grad(critic, x, h=1e-6):
    """Central differences of each sample's output w.r.t. each of its own entries."""
    x = x.detach().clone()
    flat = x.reshape(x.shape[0], -1)
    g = torch.zeros_like(flat)
    with torch.no_grad():
        for j in range(flat.shape[1]):
            old = flat[:, j].clone()
            flat[:, j] = old + h
            up = critic(x).reshape(-1)
            flat[:, j] = old - h
            down = critic(x).reshape(-1)
            flat[:, j] = old
            g[:, j] = (up - down) / (2 * h)
    return g


def fd_param_grad(fn, params, h=1e-6):
    out = []
    with torch.no_grad():
        for p in params:
            g = torch.zeros_like(p)
            for idx in np.ndindex(*p.shape):
                old = p[idx].item()
                p[idx] = old + h
                up = fn().item()
                p[idx] = old - h
                down = fn().item()
                p[idx] = old
                g[idx] = (up - down) / (2 * h)
            out.append(g)
    return out


@pytest.mark.parametrize("shape,out_1d", [((5, 3), False), ((4, 2, 3, 3), False), ((6, 4), True)])
def test_gradient_penalty_value_against_finite_differences(shape, out_1d):
    d = int(np.prod(shape[1:]))
    critic, _ = make_critic(d, out_1d=out_1d)
    real, fake = T(RNG.normal(size=shape)), T(RNG.normal(1.0, 2.0, size=shape))
    eps = T(RNG.uniform(size=shape[0]))
    e = eps.reshape((-1,) + (1,) * (len(shape) - 1))
    x_hat = e * real + (1 - e) * fake
    norms = fd_input_grad(critic, x_hat).norm(dim=1).numpy()
    want = 7.0 * np.mean((norms - 1) ** 2)
    got = losses.gradient_penalty(critic, real, fake, lam=7.0, eps=eps)
    assert np.isclose(got.item(), want, rtol=1e-7)
    # the typical mistakes give other values
    batch_norm = float(np.linalg.norm(norms))
    assert not np.isclose(got.item(), 7.0 * (batch_norm - 1) ** 2, rtol=1e-3)


def test_gradient_penalty_draws_one_eps_per_sample():
    critic, _ = make_critic(3)
    real, fake = T(RNG.normal(size=(8, 3))), T(RNG.normal(size=(8, 3)))
    torch.manual_seed(5)
    got = losses.gradient_penalty(critic, real, fake)
    torch.manual_seed(5)
    eps = torch.rand(8, dtype=torch.float64)
    assert got.item() == losses.gradient_penalty(critic, real, fake, eps=eps).item()
    assert len(set(eps.tolist())) == 8


@pytest.mark.parametrize("penalty", ["gp", "r1"])
def test_penalties_are_differentiable_in_the_critic_parameters(penalty):
    """Second-order gradients (create_graph=True) match finite differences of the penalty value."""
    critic, net = make_critic(3, hidden=4, seed=1)
    real, fake = T(RNG.normal(size=(6, 3))), T(RNG.normal(size=(6, 3)))
    eps = T(RNG.uniform(size=6))
    fn = (lambda: losses.gradient_penalty(critic, real, fake, lam=10.0, eps=eps)) if penalty == "gp" \
        else (lambda: losses.r1_penalty(critic, real, gamma=3.0))
    params = list(net.parameters())[:3]  # the output bias does not change any input gradient
    grads = torch.autograd.grad(fn(), params)
    numeric = fd_param_grad(fn, params)
    for g, n in zip(grads, numeric):
        np.testing.assert_allclose(g.numpy(), n.numpy(), rtol=1e-5, atol=1e-7)
    assert max(float(g.abs().max()) for g in grads) > 1e-3


@pytest.mark.parametrize("shape", [(5, 3), (3, 1, 4, 4)])
def test_r1_value_against_finite_differences(shape):
    critic, _ = make_critic(int(np.prod(shape[1:])), seed=2)
    real = T(RNG.normal(size=shape))
    sq = (fd_input_grad(critic, real) ** 2).sum(dim=1).numpy()
    assert np.isclose(losses.r1_penalty(critic, real, gamma=4.0).item(), 2.0 * sq.mean(), rtol=1e-7)


def test_penalties_in_float32_and_bfloat16():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LeakyReLU(0.2), torch.nn.Linear(8, 1))
    real, fake, eps = torch.randn(16, 4), torch.randn(16, 4), torch.rand(16)
    want_gp = losses.gradient_penalty(net.double(), real.double(), fake.double(), eps=eps.double()).item()
    want_r1 = losses.r1_penalty(net, real.double()).item()
    for dtype, rtol in ((torch.float32, 1e-5), (torch.bfloat16, 5e-2)):
        net = net.to(dtype)
        gp = losses.gradient_penalty(net, real.to(dtype), fake.to(dtype), eps=eps)
        r1 = losses.r1_penalty(net, real.to(dtype))
        assert gp.dtype == r1.dtype == dtype
        assert np.isclose(gp.item(), want_gp, rtol=rtol) and np.isclose(r1.item(), want_r1, rtol=rtol)
        gp.backward()  # differentiable in every dtype


def test_penalty_does_not_train_the_generator():
    gen = torch.nn.Linear(2, 3).double()
    critic, _ = make_critic(3)
    fake = gen(T(RNG.normal(size=(4, 2))))
    gp = losses.gradient_penalty(critic, T(RNG.normal(size=(4, 3))), fake)
    assert torch.autograd.grad(gp, list(gen.parameters()), allow_unused=True) == (None, None)
