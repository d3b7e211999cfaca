"""Chapter 05, from NumPy to PyTorch and a loss zoo: graded questions.

Answers are torch functions. Each is compared with chapter 03's NumPy layers, chapter 02's
stable losses or :mod:`ganlib.losses` on fresh random shapes and values, in float64. The
penalty questions watch what the learner's code feeds the critic (the interpolates) and
check it against the definition: one ``eps`` per sample, the norm per sample, and a
penalty that can be backpropagated into the critic's parameters (``create_graph=True``).
Every input kind a question cares about is tested on every run (the penalties on flat
``(n, d)`` and image-shaped ``(n, C, H, W)`` batches, the losses at extreme logits), so the
grade of a submission does not depend on the seed.
"""

from __future__ import annotations

import numpy as np
import torch

from ganlib import losses, theory
from ganlib import numpy_nn as nn
from ganlib.grading import CheckFailed, as_float_array, expect_close, question, random_sizes, to_numpy

F64 = torch.float64


def _t(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=float), dtype=F64)


def _finite(value) -> bool:
    try:
        return bool(np.all(np.isfinite(to_numpy(value))))
    except (TypeError, ValueError):
        return True  # let the shape and type checks report it


def _scalar_tensor(value, what: str) -> torch.Tensor:
    if value is None:
        raise CheckFailed(f"{what} returned None: did you forget a `return` statement?")
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{what} should return a torch tensor (to backpropagate through), got "
                          f"{type(value).__name__}: do not call .item() or convert to NumPy.")
    if value.numel() != 1:
        raise CheckFailed(f"{what} should return a scalar (the mean over the batch), got shape {tuple(value.shape)}")
    return value.reshape(())


# --------------------------------------------------------------------------- Q1 a layer in torch


def _np_dense(x, W, b, slope, grad_out):
    lin, act = nn.Linear(W.shape[0], W.shape[1], np.random.default_rng(0)), nn.LeakyReLU(slope)
    lin.W[...], lin.b[...] = W, b
    y = act.forward(lin.forward(x))
    dx = lin.backward(act.backward(grad_out))
    return y, dx, lin.dW.copy(), lin.db.copy()


@question("q1", "a Linear + LeakyReLU layer in torch, gradients by autograd", 2,
          needs=["dense_forward", "dense_backward_autograd"])
def check_q1(rng, dense_forward, dense_backward_autograd):
    n, d_in, d_out = random_sizes(rng)
    x, W, b = rng.normal(size=(n, d_in)), rng.normal(size=(d_in, d_out)), rng.normal(size=d_out)
    slope, g = float(rng.uniform(0.05, 0.4)), rng.normal(size=(n, d_out))
    y_ref, dx_ref, dW_ref, db_ref = _np_dense(x, W, b, slope, g)
    y = dense_forward(_t(x), _t(W), _t(b), slope)
    expect_close(as_float_array(y, "dense_forward(x, W, b, slope)"), y_ref, "dense_forward(x, W, b, slope)", wrong={
        "that is ReLU: LeakyReLU keeps slope * y for y <= 0 (torch.nn.functional.leaky_relu(y, slope)).":
            np.maximum(x @ W + b, 0),
        "the activation is missing: apply LeakyReLU to x @ W + b.": x @ W + b,
        "the bias is missing: y = x @ W + b before the activation.": np.where(x @ W > 0, x @ W, slope * (x @ W)),
    })
    xt, Wt, bt = _t(x).requires_grad_(True), _t(W).requires_grad_(True), _t(b).requires_grad_(True)
    y = dense_forward(xt, Wt, bt, slope)
    if not isinstance(y, torch.Tensor) or not y.requires_grad:
        raise CheckFailed("dense_forward's output is not connected to x, W, b: stay in torch "
                          "(no .numpy(), .item(), .detach() or .data inside).")
    grads = torch.autograd.grad(y.sum(), [xt, Wt, bt], allow_unused=True)
    cut = [name for name, gr in zip("xWb", grads) if gr is None]
    if cut:
        raise CheckFailed(f"dense_forward's output does not depend on {', '.join(cut)} through autograd, so "
                          "dense_backward_autograd cannot get its gradient: inside dense_forward, use the inputs "
                          "directly (no .detach(), .data, .clone().detach() or torch.tensor(...) copies).")
    out = dense_backward_autograd(_t(x), _t(W), _t(b), slope, _t(g))
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise CheckFailed(f"dense_backward_autograd should return (dx, dW, db), got {type(out).__name__}")
    dx, dW, db = (as_float_array(v, name) for v, name in zip(out, ("dx", "dW", "db")))
    mask = np.where(x @ W + b > 0, 1.0, slope)
    ones = np.ones_like(g)
    wrong_dx = {
        "grad_out is ignored: backpropagate y with torch.autograd.grad(y, [x, W, b], grad_outputs=grad_out) "
        "or y.backward(grad_out), not y.sum().backward().": (ones * mask) @ W.T,
        "grad_out is ignored and the loss is a mean: pass grad_out as the vector of the vector-Jacobian product.":
            (ones * mask) @ W.T / g.size,
    }
    expect_close(dx, dx_ref, "dx", wrong=wrong_dx)
    expect_close(dW, dW_ref, "dW", wrong={"dW should have shape (in, out), like W.": dW_ref})
    expect_close(db, db_ref, "db")


# --------------------------------------------------------------------------- Q2 non-saturating loss


def _logits(rng, n):
    a = rng.normal(0.0, 3.0, size=(n, 1))
    a[0, 0], a[1, 0] = -float(rng.uniform(1.5, 4)), float(rng.uniform(1.5, 4))  # both signs, always
    return a


@question("q2", "non-saturating generator loss from logits", 2, needs=["nonsaturating_loss"])
def check_q2(rng, nonsaturating_loss):
    n = int(rng.integers(5, 40))
    a = _logits(rng, n)
    want = theory.generator_loss_nonsaturating(a)
    try:
        got, failed = nonsaturating_loss(_t(a)), None
    except RuntimeError as exc:  # e.g. F.binary_cross_entropy refuses values outside [0, 1]
        got, failed = None, exc
    if failed is not None or not _finite(got):
        try:
            probs_ok = np.allclose(to_numpy(nonsaturating_loss(_t(theory.sigmoid(a)))), want, rtol=1e-6)
        except Exception:
            probs_ok = False
        if probs_ok:
            raise CheckFailed("your loss treats its input as probabilities D(G(z)), but it receives logits "
                              "(raw discriminator outputs, any real number): use softplus(-logits).mean(), "
                              "or binary_cross_entropy_with_logits.")
        if failed is not None:
            raise failed
    got = _scalar_tensor(got, "nonsaturating_loss(logits)")
    expect_close(as_float_array(got, "nonsaturating_loss(logits)"), want, "nonsaturating_loss(logits)", wrong={
        "that is the saturating loss log(1 - D) = -softplus(logits); the non-saturating one is -log D = softplus(-logits).":
            theory.generator_loss_saturating(a),
        "sign flip: -log D(G(z)) = softplus(-logits), which is positive.": -want,
        "the loss is a mean over the batch, not a sum.": want * n,
        "a sigmoid too many: the logits go straight into softplus (or binary_cross_entropy_with_logits).":
            float(np.mean(theory.softplus(-theory.sigmoid(a)))),
        "that is the discriminator's term for fakes, softplus(logits); the generator wants softplus(-logits).":
            float(np.mean(theory.softplus(a))),
    })
    big = np.array([[-150.0], [-800.0], [30.0]])
    got_big = nonsaturating_loss(_t(big))
    if not _finite(got_big):
        raise CheckFailed("not stable: for logits -800, log(sigmoid(a)) underflows to log(0) = -inf. "
                          "Use the identity -log sigmoid(a) = softplus(-a).")
    with np.errstate(divide="ignore"):
        clamped = float(np.mean(np.minimum(-np.log(theory.sigmoid(big)), 100.0)))  # torch clamps log at -100
    expect_close(as_float_array(got_big, "nonsaturating_loss(logits)"), theory.generator_loss_nonsaturating(big),
                 "nonsaturating_loss at logits (-150, -800, 30)", rtol=1e-9, wrong={
        "right for moderate logits but capped at 100 per sample for very negative ones: torch's "
        "binary_cross_entropy (and anything that takes the log of a probability with a floor) clamps log(D) at "
        "-100, and sigmoid(-800) = 0. Work with the logits: softplus(-logits).mean(), or "
        "binary_cross_entropy_with_logits.": clamped,
    })


# --------------------------------------------------------------------------- Q3 hinge


@question("q3", "hinge loss for D and G", 2, needs=["hinge_d_loss", "hinge_g_loss"])
def check_q3(rng, hinge_d_loss, hinge_g_loss):
    n_real, n_fake = random_sizes(rng, 2, 3, 12)
    real, fake = rng.normal(0.5, 1.5, size=(n_real, 1)), rng.normal(-0.5, 1.5, size=(n_fake, 1))
    real[0, 0], fake[0, 0] = 2.5, -2.5  # outside the margin: no loss from these
    relu = lambda v: np.maximum(v, 0)
    want = float(np.mean(relu(1 - real)) + np.mean(relu(1 + fake)))
    got = _scalar_tensor(hinge_d_loss(_t(real), _t(fake)), "hinge_d_loss(real, fake)")
    both = np.concatenate([relu(1 - real), relu(1 + fake)])
    expect_close(as_float_array(got, "hinge_d_loss"), want, "hinge_d_loss(real, fake)", wrong={
        "sign of the fake term: the discriminator pushes fakes *below* -1, so it pays max(0, 1 + D(G(z))).":
            float(np.mean(relu(1 - real)) + np.mean(relu(1 - fake))),
        "the max(0, .) is missing: samples beyond the margin must contribute nothing.":
            float(np.mean(1 - real) + np.mean(1 + fake)),
        "each term is a mean over its own batch (real and fake batches can differ in size).": float(np.mean(both)),
        "the loss is a mean over the batch, not a sum.": float(np.sum(relu(1 - real)) + np.sum(relu(1 + fake))),
    })
    got = _scalar_tensor(hinge_g_loss(_t(fake)), "hinge_g_loss(fake)")
    expect_close(as_float_array(got, "hinge_g_loss"), -float(np.mean(fake)), "hinge_g_loss(fake)", wrong={
        "the generator's hinge loss has no margin: L_G = -E[D(G(z))], no max(0, .).": float(np.mean(relu(1 - fake))),
        "sign flip: the generator wants D(G(z)) large, so it minimises -E[D(G(z))].": float(np.mean(fake)),
    })


# --------------------------------------------------------------------------- penalties: a recording critic


class _Critic:
    """A float64 tanh MLP on flattened samples that records every batch it is called on."""

    _ganlib_sync = ("calls",)  # when grading, the calls made in the worker come back to the check

    def __init__(self, rng, d, hidden=6):
        self.W1 = _t(rng.normal(0, 0.8, size=(d, hidden))).requires_grad_(True)
        self.b1 = _t(rng.normal(0, 0.5, size=hidden)).requires_grad_(True)
        self.W2 = _t(rng.normal(0, 1.0, size=(hidden, 1))).requires_grad_(True)
        self.calls: list[torch.Tensor] = []

    def params(self):
        return [self.W1, self.b1, self.W2]

    def __call__(self, x):
        if not isinstance(x, torch.Tensor):
            raise CheckFailed(f"the critic takes a torch tensor, got {type(x).__name__}")
        self.calls.append(x.detach().clone())
        return torch.tanh(x.reshape(x.shape[0], -1) @ self.W1 + self.b1) @ self.W2

    def grads(self, x):
        """Per-sample input gradients, flattened, shape (n, d) (closed form, no autograd)."""
        x = x.reshape(x.shape[0], -1)
        h = torch.tanh(x @ self.W1 + self.b1).detach()
        return ((1 - h**2) * self.W2.detach()[:, 0]) @ self.W1.detach().T


def _penalty_inputs(rng):
    """Both input kinds, every time: a flat batch (n, d) and an image batch (n, C, H, W)."""
    n = int(rng.integers(6, 12))
    for shape in ((n, int(rng.integers(2, 5))), (n, 2, 2, 3)):
        yield n, shape, int(np.prod(shape[1:])), f" on a batch of shape {shape}"


def _differentiable(value, critic, what):
    if not value.requires_grad:
        raise CheckFailed(f"{what} cannot be backpropagated into the critic's parameters: compute the input "
                          "gradient with torch.autograd.grad(..., create_graph=True), so the gradient is itself "
                          "part of the graph.")
    grads = torch.autograd.grad(value, critic.params(), allow_unused=True)
    if all(g is None or float(g.abs().max()) == 0 for g in grads):
        raise CheckFailed(f"{what} does not depend on the critic's parameters: compute the input gradient "
                          "with torch.autograd.grad(..., create_graph=True).")
    return grads


@question("q4", "WGAN-GP gradient penalty", 3, needs=["gradient_penalty"])
def check_q4(rng, gradient_penalty):
    for n, shape, d, on in _penalty_inputs(rng):
        critic = _Critic(rng, d)
        real = rng.normal(0, 1, size=shape)
        fake = real + rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 2.0, size=shape)  # no entry of real - fake near 0
        real, fake = _t(real), _t(fake)
        lam = float(rng.choice([1.0, 5.0, 10.0]))
        torch.manual_seed(int(rng.integers(2**31)))
        value = _scalar_tensor(gradient_penalty(critic, real, fake, lam), "gradient_penalty(critic, real, fake, lam)" + on)
        calls = [c for c in critic.calls if c.shape == real.shape]
        if not calls:
            raise CheckFailed(f"the critic was never called on a batch of shape {tuple(real.shape)} "
                              "(the interpolates x_hat, same shape as real and fake).")
        x_hat = calls[-1]
        # x_hat = eps * real + (1 - eps) * fake, so eps = (x_hat - fake) / (real - fake), entry by entry
        eps = ((x_hat - fake) / (real - fake)).reshape(n, -1).numpy()
        if not np.all((eps > -1e-9) & (eps < 1 + 1e-9)):
            raise CheckFailed("the critic's input is not between real and fake samples: "
                              "x_hat = eps * real + (1 - eps) * fake with eps in [0, 1].")
        per_sample = np.ptp(eps, axis=1) < 1e-9
        if not np.all(per_sample):
            raise CheckFailed("eps differs between the entries of one sample: draw one eps per sample, "
                              "shape (batch, 1, ..., 1), e.g. torch.rand(n, *[1] * (real.dim() - 1)), "
                              "not torch.rand_like(real).")
        if np.ptp(eps[:, 0]) < 1e-9:
            raise CheckFailed("one eps for the whole batch: every sample must get its own eps ~ U[0, 1], "
                              "shape (batch, 1, ..., 1), so the interpolates cover the segments between the pairs.")
        g = critic.grads(x_hat).numpy()
        norms = np.linalg.norm(g, axis=1)
        want = lam * np.mean((norms - 1) ** 2)
        wrong = {}
        if len(shape) == 4:
            wrong["for images, flatten each sample before the norm: grad.reshape(n, -1).norm(dim=1), "
                  "not grad.norm(dim=1)."] = lam * np.mean((np.linalg.norm(g.reshape(shape), axis=1) - 1) ** 2)
        expect_close(as_float_array(value, "gradient_penalty"), want, "gradient_penalty(critic, real, fake, lam)" + on,
                     rtol=1e-6, wrong=wrong | {
            "the norm is per sample: flatten each sample's gradient, grad.reshape(n, -1).norm(dim=1), "
            "not one norm over the whole batch.": lam * (np.linalg.norm(g) - 1) ** 2,
            "that uses the squared norm: the penalty is (||grad|| - 1)^2 with the Euclidean norm itself.":
                lam * np.mean((norms**2 - 1) ** 2),
            "lam is missing: multiply by lam.": np.mean((norms - 1) ** 2),
            "average over the batch: the penalty is lam * mean((||grad|| - 1)^2), not a sum.": lam * np.sum((norms - 1) ** 2),
            "the penalty is (||grad|| - 1)^2 (two-sided), not max(0, ||grad|| - 1)^2.":
                lam * np.mean(np.maximum(norms - 1, 0) ** 2),
        })
        grads = _differentiable(value, critic, "the penalty")
        ref = losses.gradient_penalty(critic, real, fake, lam, eps=torch.from_numpy(eps[:, 0].copy()))
        for got_g, want_g in zip(grads, torch.autograd.grad(ref, critic.params())):
            expect_close(as_float_array(got_g, "d penalty / d critic parameters"), want_g.numpy(),
                         "the penalty's gradient with respect to the critic's parameters", rtol=1e-6)


@question("q5", "R1 penalty", 2, needs=["r1_penalty"])
def check_q5(rng, r1_penalty):
    for n, shape, d, on in _penalty_inputs(rng):
        critic = _Critic(rng, d)
        real = _t(rng.normal(0, 1, size=shape))
        gamma = float(rng.choice([0.5, 2.0, 10.0]))
        value = _scalar_tensor(r1_penalty(critic, real, gamma), "r1_penalty(critic, real, gamma)" + on)
        if not any(c.shape == real.shape and torch.equal(c, real) for c in critic.calls):
            raise CheckFailed("R1 is evaluated on the real samples themselves (no interpolation).")
        g = critic.grads(real).numpy()
        sq = np.sum(g**2, axis=1)
        want = gamma / 2 * np.mean(sq)
        wrong = {}
        if len(shape) == 4:
            wrong["for images, sum the squares over all of a sample's entries: grad.reshape(n, -1).pow(2).sum(dim=1), "
                  "not over dim=1 only."] = gamma / 2 * np.mean(np.sum(g.reshape(shape) ** 2, axis=1))
        expect_close(as_float_array(value, "r1_penalty"), want, "r1_penalty(critic, real, gamma)" + on, rtol=1e-6,
                     wrong=wrong | {
            "the factor is gamma / 2, not gamma.": gamma * np.mean(sq),
            "R1 uses the *squared* norm ||grad||^2, not the norm.": gamma / 2 * np.mean(np.sqrt(sq)),
            "average over the batch: gamma / 2 * mean of the per-sample squared norms, not their sum "
            "(one norm over the whole batch squared is the sum).": gamma / 2 * np.sum(sq),
            "that is the WGAN-GP form (||grad|| - 1)^2; R1 penalises ||grad||^2, pushing the gradient to 0.":
                gamma / 2 * np.mean((np.sqrt(sq) - 1) ** 2),
        })
        grads = _differentiable(value, critic, "the R1 penalty")
        for got_g, want_g in zip(grads, torch.autograd.grad(losses.r1_penalty(critic, real, gamma), critic.params())):
            expect_close(as_float_array(got_g, "d R1 / d critic parameters"), want_g.numpy(),
                         "the R1 penalty's gradient with respect to the critic's parameters", rtol=1e-6)


QUESTIONS = [check_q1, check_q2, check_q3, check_q4, check_q5]
