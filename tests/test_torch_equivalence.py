"""Chapter 03's NumPy GAN and its PyTorch rewrite agree step by step (float64, identical weights).

The NumPy side is ``ganlib.numpy_nn`` (hand-written backward passes and Adam); the torch side
is autograd, ``torch.optim.Adam`` and ``ganlib.losses``. Both consume the same random numbers.
"""

import numpy as np
import pytest
import torch

from ganlib import data, losses, models
from ganlib import numpy_nn as nn

MEAN, STD = 4.0, 1.25
TOL = dict(rtol=1e-6, atol=1e-9)


def sample(n, rng):
    return data.sample_gaussian_1d(n, rng, MEAN, STD)


def numpy_gan(seed, hidden=32):
    """Chapter 03's experiment-1 networks (Standardize + MLP 1-32-32-1, He init) and the rng after them."""
    rng = np.random.default_rng(seed)
    reference = sample(4000, rng)
    gen = nn.mlp([1, hidden, hidden, 1], rng)
    disc = nn.Sequential(nn.Standardize(reference.mean(), reference.std()), *nn.mlp([1, hidden, hidden, 1], rng).layers)
    return gen, disc, rng


def torch_copies(gen, disc):
    return models.from_numpy(gen, torch.float64), models.from_numpy(disc, torch.float64)


def t(a):
    return torch.from_numpy(np.asarray(a, dtype=float))


def torch_d_step(gen_t, disc_t, opt_d, x_real, z):
    x_fake = gen_t(t(z)).detach()
    logits = disc_t(torch.cat([t(x_real), x_fake]))
    loss = losses.discriminator_loss_bce(logits[: len(x_real)], logits[len(x_real):])
    opt_d.zero_grad()
    loss.backward()
    opt_d.step()
    return loss.item()


def torch_g_step(gen_t, disc_t, opt_g, z, kind):
    loss_fn = losses.generator_loss_nonsaturating if kind == "nonsaturating" else losses.generator_loss_saturating
    loss = loss_fn(disc_t(gen_t(t(z))))
    opt_g.zero_grad()
    loss.backward()
    norm = float(np.sqrt(sum(float((p.grad ** 2).sum()) for p in gen_t.parameters())))
    opt_g.step()
    return loss.item(), norm


def test_from_numpy_copies_the_forward_pass_exactly():
    gen, disc, rng = numpy_gan(0)
    gen_t, disc_t = torch_copies(gen, disc)
    z, x = rng.normal(size=(50, 1)), sample(50, rng)
    np.testing.assert_allclose(gen_t(t(z)).detach().numpy(), gen.forward(z), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(disc_t(t(x)).detach().numpy(), disc.forward(x), rtol=1e-12, atol=1e-13)
    for a, b in zip(models.to_numpy_params(disc_t), disc.parameters()):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("kind", ["nonsaturating", "saturating"])
def test_first_steps_losses_gradients_and_parameters_agree(kind):
    gen, disc, rng = numpy_gan(1)
    gen_t, disc_t = torch_copies(gen, disc)
    lr, betas, n = 1e-3, (0.5, 0.999), 64
    opt_d_np, opt_g_np = nn.Adam(disc.parameters(), lr=lr, betas=betas), nn.Adam(gen.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(disc_t.parameters(), lr=lr, betas=betas, eps=1e-8)
    opt_g = torch.optim.Adam(gen_t.parameters(), lr=lr, betas=betas, eps=1e-8)
    for step in range(5):
        x_real, z_d, z_g = sample(n, rng), rng.normal(size=(n, 1)), rng.normal(size=(n, 1))
        # discriminator: loss and every parameter gradient, then parameters after Adam
        loss_np = nn.discriminator_step(disc, opt_d_np, x_real, gen.forward(z_d))
        loss_t = torch_d_step(gen_t, disc_t, opt_d, x_real, z_d)
        np.testing.assert_allclose(loss_t, loss_np, **TOL)
        for g_t, g_np in zip(models.to_numpy_params(disc_t, grads=True), disc.gradients()):
            np.testing.assert_allclose(g_t, g_np, **TOL)
        for p_t, p_np in zip(models.to_numpy_params(disc_t), disc.parameters()):
            np.testing.assert_allclose(p_t, p_np, **TOL)
        # generator: through the (not updated) discriminator
        (loss_np, norm_np), (loss_t, norm_t) = (nn.generator_step(gen, disc, opt_g_np, z_g, kind),
                                                torch_g_step(gen_t, disc_t, opt_g, z_g, kind))
        np.testing.assert_allclose([loss_t, norm_t], [loss_np, norm_np], **TOL)
        for g_t, g_np in zip(models.to_numpy_params(gen_t, grads=True), gen.gradients()):
            np.testing.assert_allclose(g_t, g_np, **TOL)
        for p_t, p_np in zip(models.to_numpy_params(gen_t), gen.parameters()):
            np.testing.assert_allclose(p_t, p_np, **TOL)
    # the parameters really moved (the comparison above is not between two frozen networks)
    _, disc0, _ = numpy_gan(1)
    assert max(np.abs(a - b).max() for a, b in zip(disc.parameters(), disc0.parameters())) > 1e-3


@pytest.mark.parametrize("lr_decay,kind", [(False, "nonsaturating"), (True, "nonsaturating"), (True, "saturating")])
def test_torch_loop_reproduces_train_gan_1d(lr_decay, kind):
    """train_gan_1d equals a hand-written torch loop, including the linear decay (torch's LambdaLR) and the loss kind."""
    steps, n, lr_d, lr_g = 8, 128, 2e-3, 1e-3
    gen, disc, rng = numpy_gan(2)
    gen_t, disc_t = torch_copies(gen, disc)
    hist = nn.train_gan_1d(gen, disc, sample, rng, steps=steps, batch_size=n, lr_d=lr_d, lr_g=lr_g, lr_decay=lr_decay,
                           kind=kind)
    _, _, rng_t = numpy_gan(2)
    rng_t.integers(2**63)  # train_gan_1d draws the seed of its evaluation stream first
    opt_d = torch.optim.Adam(disc_t.parameters(), lr=lr_d, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(gen_t.parameters(), lr=lr_g, betas=(0.5, 0.999))
    factor = (lambda k: 1 - k / steps) if lr_decay else (lambda k: 1.0)
    schedules = [torch.optim.lr_scheduler.LambdaLR(opt, factor) for opt in (opt_d, opt_g)]
    loss_d, loss_g, norm_g = [], [], []
    for _ in range(steps):
        x_real, z_d = sample(n, rng_t), rng_t.normal(size=(n, 1))
        loss_d.append(torch_d_step(gen_t, disc_t, opt_d, x_real, z_d))
        lg, ng = torch_g_step(gen_t, disc_t, opt_g, rng_t.normal(size=(n, 1)), kind)
        loss_g.append(lg)
        norm_g.append(ng)
        for schedule in schedules:
            schedule.step()
    np.testing.assert_allclose(loss_d, hist.loss_d, **TOL)
    np.testing.assert_allclose(loss_g, hist.loss_g, **TOL)
    np.testing.assert_allclose(norm_g, hist.grad_norm_g, **TOL)
    for p_t, p_np in zip(models.to_numpy_params(gen_t) + models.to_numpy_params(disc_t),
                         gen.parameters() + disc.parameters()):
        np.testing.assert_allclose(p_t, p_np, **TOL)


def test_a_wrong_torch_loss_is_detected():
    """The comparison has teeth: the saturating loss on the torch side breaks it at step 1."""
    gen, disc, rng = numpy_gan(3)
    gen_t, disc_t = torch_copies(gen, disc)
    z = rng.normal(size=(32, 1))
    opt_np = nn.Adam(gen.parameters(), lr=1e-3)
    opt_t = torch.optim.Adam(gen_t.parameters(), lr=1e-3)
    loss_np, _ = nn.generator_step(gen, disc, opt_np, z, "nonsaturating")
    loss_t, _ = torch_g_step(gen_t, disc_t, opt_t, z, "saturating")
    assert abs(loss_np - loss_t) > 1e-3
