"""Chapter 10, beyond DCGAN: graded questions.

Answers are torch functions, compared with ganlib's versions on fresh random inputs in float64:
one step of power iteration and the spectral-norm estimate (against :func:`ganlib.models.power_iteration`
and an SVD), the gradient penalty of a conditional critic (the interpolates it is fed are
recorded and checked: one ``eps`` per sample, the pair's label kept), the projection
discriminator's output (against :class:`ganlib.models.ProjectionHead`) and an EMA update
(against :func:`ganlib.train.ema_update`).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ganlib import losses, models
from ganlib.grading import CheckFailed, as_float_array, expect_close, question, to_numpy

F64 = torch.float64


def _t(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=float), dtype=F64)


def _tensor_answer(value, what: str) -> torch.Tensor:
    if value is None:
        raise CheckFailed(f"{what} returned None: did you forget a `return` statement?")
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{what} should return a torch tensor, got {type(value).__name__}")
    return value


def _matrix(rng):
    """A random (m, n) matrix, m != n, with a clear gap between its two largest singular values."""
    m, n = (int(a) for a in rng.choice(np.arange(3, 12), size=2, replace=False))
    W = rng.normal(size=(m, n))
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    s = np.sort(rng.uniform(0.2, 1.0, size=s.size))[::-1]
    s[0] = s[1] * rng.uniform(1.5, 3.0)
    return (U * s) @ Vt, s


# --------------------------------------------------------------------------- Q1 power iteration


@question("q1", "one power-iteration step and the spectral-norm estimate", 3,
          needs=["power_iteration_step", "spectral_norm_estimate"])
def check_q1(rng, power_iteration_step, spectral_norm_estimate):
    W, s = _matrix(rng)
    v0 = rng.normal(size=W.shape[1])
    try:
        out = power_iteration_step(_t(W), _t(v0))
    except RuntimeError as exc:
        if "shape" in str(exc) or "size" in str(exc) or "mismatch" in str(exc):
            raise CheckFailed(f"a shape error ({str(exc).splitlines()[0]}): u = W v has W's row count, and "
                              "the new v = W^T u (the transpose) has its column count.") from None
        raise
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise CheckFailed(f"power_iteration_step should return (sigma, u, v), got {type(out).__name__}")
    sigma, u, v = (as_float_array(a, name) for a, name in zip(out, ("sigma", "u", "v")))
    want_sigma, want_u, want_v = (a.numpy() for a in models.power_iteration(_t(W), _t(v0), 1))
    u_raw = W @ (v0 / np.linalg.norm(v0))
    expect_close(u, want_u, "u", rtol=1e-6, wrong={
        "normalise u: u = W v / ||W v||, a unit vector.": u_raw,
    })
    v_raw = W.T @ want_u
    expect_close(v, want_v, "v", rtol=1e-6, wrong={
        "normalise v: v = W^T u / ||W^T u||, a unit vector.": v_raw,
    })
    expect_close(sigma, want_sigma, "sigma", rtol=1e-6, wrong={
        "sigma = u^T W v uses the new v (after the step), as the estimate the next forward pass divides by.":
            want_u @ W @ (v0 / np.linalg.norm(v0)),
        "that is sigma squared: sigma = u^T W v (or ||W^T u||), not ||W^T W v||.": np.linalg.norm(W.T @ W @ want_v),
        "sigma is a number, u^T W v, not ||W||_F (the Frobenius norm bounds sigma from above).": np.linalg.norm(W),
    })
    est = as_float_array(spectral_norm_estimate(_t(W), 200), "spectral_norm_estimate(W, 200)", shape=())
    expect_close(est, s[0], "spectral_norm_estimate(W, 200), compared with the SVD's largest singular value",
                 rtol=1e-3, atol=0, wrong={
        "that is the Frobenius norm sqrt(sum W_ij^2); the spectral norm is the largest singular value: "
        "iterate power_iteration_step and return its last sigma.": np.linalg.norm(W),
        "that is sigma squared.": s[0] ** 2,
    })
    # exactly n_iter steps from v = (1, ..., 1): after 1 and 2 steps the estimate still moves by more than
    # 1e-6 (relative) per step for every matrix _matrix draws, so one step too many or too few shows
    ones = torch.ones(W.shape[1], dtype=F64)
    after = {k: models.power_iteration(_t(W), ones, k)[0].item() for k in (1, 2, 3)}
    for k in (1, 2):
        got_k = as_float_array(spectral_norm_estimate(_t(W), k), f"spectral_norm_estimate(W, {k})", shape=())
        expect_close(got_k, after[k], f"spectral_norm_estimate(W, {k}), compared with sigma after {k} "
                     f"power-iteration step{'s' if k > 1 else ''} from v = (1, ..., 1)", rtol=1e-9, atol=0, wrong={
            f"that is sigma after {k + 1} steps: run exactly n_iter steps (for _ in range(n_iter)), each one call "
            "of power_iteration_step, and return the last sigma.": after[k + 1],
            **({"that is sigma after 1 step: run exactly n_iter steps (for _ in range(n_iter)), not n_iter - 1.":
                after[1]} if k == 2 else {}),
        })


# --------------------------------------------------------------------------- Q2 the conditional gradient penalty


class _CondCritic:
    """A float64 tanh network on (flattened image, label) that records every call."""

    _ganlib_sync = ("calls",)  # when grading, the calls made in the worker come back to the check

    def __init__(self, rng, d, k, hidden=6):
        self.W1 = _t(rng.normal(0, 0.8, size=(d, hidden))).requires_grad_(True)
        self.E = _t(rng.normal(0, 1.0, size=(k, hidden))).requires_grad_(True)
        self.W2 = _t(rng.normal(0, 1.0, size=(hidden, 1))).requires_grad_(True)
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def params(self):
        return [self.W1, self.E, self.W2]

    def __call__(self, x, y=None):
        if y is None:
            raise CheckFailed("the critic is conditional: call critic(x_hat, labels), with the labels of the pairs.")
        if not isinstance(x, torch.Tensor):
            raise CheckFailed(f"the critic takes a torch tensor, got {type(x).__name__}")
        y = torch.as_tensor(y)
        self.calls.append((x.detach().clone(), y.detach().clone()))
        return torch.tanh(x.reshape(x.shape[0], -1) @ self.W1 + self.E[y]) @ self.W2


@question("q2", "the gradient penalty of a conditional critic, on interpolates", 3, needs=["gradient_penalty"])
def check_q2(rng, gradient_penalty):
    n, k = int(rng.integers(6, 12)), int(rng.integers(3, 7))
    shape = (n, 1, int(rng.integers(2, 5)), int(rng.integers(2, 5)))
    critic = _CondCritic(rng, int(np.prod(shape[1:])), k)
    real = rng.normal(size=shape)
    fake = real + rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 2.0, size=shape)
    real, fake = _t(real), _t(fake)
    labels = torch.from_numpy(rng.integers(0, k, size=n))
    lam = float(rng.choice([1.0, 5.0, 10.0]))
    torch.manual_seed(int(rng.integers(2**31)))
    value = _tensor_answer(gradient_penalty(critic, real, fake, labels, lam),
                           "gradient_penalty(critic, real, fake, labels, lam)")
    if value.numel() != 1:
        raise CheckFailed(f"the penalty is a scalar (the mean over the batch), got shape {tuple(value.shape)}")
    calls = [c for c in critic.calls if c[0].shape == real.shape]
    if not calls:
        raise CheckFailed(f"the critic was never called on a batch of shape {tuple(real.shape)} (the interpolates).")
    x_hat, y_hat = calls[-1]
    if not torch.equal(y_hat.long(), labels):
        raise CheckFailed("the interpolates keep their pair's labels: call critic(x_hat, labels) with the same "
                          "labels, in the same order.")
    eps = ((x_hat - fake) / (real - fake)).reshape(n, -1).numpy()
    if not np.all((eps > -1e-9) & (eps < 1 + 1e-9)):
        raise CheckFailed("the critic's input is not between real and fake: x_hat = eps * real + (1 - eps) * fake.")
    if not np.all(np.ptp(eps, axis=1) < 1e-9):
        raise CheckFailed("eps differs between the pixels of one image: draw one eps per sample, shape "
                          "(n, 1, 1, 1), not torch.rand_like(real).")
    if np.ptp(eps[:, 0]) < 1e-9:
        raise CheckFailed("one eps for the whole batch: every sample needs its own eps ~ U[0, 1], shape "
                          "(n, 1, 1, 1), so the interpolates cover the segments between the pairs.")
    ref = losses.gradient_penalty(lambda x: critic(x, labels), real, fake, lam, eps=torch.from_numpy(eps[:, 0].copy()))
    critic.calls.clear()
    x_hat_t = x_hat.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x_hat_t, labels).sum(), x_hat_t)
    norms = g.reshape(n, -1).norm(dim=1).numpy()
    expect_close(as_float_array(value, "gradient_penalty"), ref.item(), "gradient_penalty(critic, real, fake, labels, lam)",
                 rtol=1e-6, wrong={
        "the norm is per sample: grad.reshape(n, -1).norm(dim=1), not one norm over the batch.":
            lam * (np.linalg.norm(g.numpy()) - 1) ** 2,
        "flatten each image before the norm: grad.reshape(n, -1).norm(dim=1), not grad.norm(dim=1).":
            lam * np.mean((np.linalg.norm(g.numpy(), axis=1) - 1) ** 2),
        "that uses the squared norm: the penalty is lam * mean((||grad|| - 1)^2).": lam * np.mean((norms**2 - 1) ** 2),
        "lam is missing.": np.mean((norms - 1) ** 2),
    })
    if not value.requires_grad:
        raise CheckFailed("the penalty cannot be backpropagated into the critic: use torch.autograd.grad(..., "
                          "create_graph=True).")
    got = torch.autograd.grad(value, critic.params(), allow_unused=True)
    for gg, ww, name in zip(got, torch.autograd.grad(ref, critic.params()), ("W1", "E", "W2")):
        if gg is None:
            raise CheckFailed(f"the penalty does not depend on the critic's {name}: use create_graph=True.")
        expect_close(as_float_array(gg, "d penalty / d critic"), ww.numpy(),
                     "the penalty's gradient with respect to the critic's parameters", rtol=1e-6)


# --------------------------------------------------------------------------- Q3 the projection discriminator


@question("q3", "the projection discriminator's output", 2, needs=["projection_output"])
def check_q3(rng, projection_output):
    n, f, k = int(rng.integers(4, 10)), int(rng.integers(3, 9)), int(rng.integers(3, 8))
    phi, w, b, E = rng.normal(size=(n, f)), rng.normal(size=(f, 1)), rng.normal(size=1), rng.normal(size=(k, f))
    y = rng.integers(0, k, size=n)
    y[:2] = [0, k - 1]
    head = models.ProjectionHead(f, k).double()
    with torch.no_grad():
        head.linear.weight.copy_(_t(w.T))
        head.linear.bias.copy_(_t(b))
        head.embed.weight.copy_(_t(E))
    want = head(_t(phi), torch.from_numpy(y)).detach().numpy()
    got = projection_output(_t(phi), torch.from_numpy(y), _t(w), _t(b), _t(E))
    got = as_float_array(_tensor_answer(got, "projection_output(phi, y, w, b, E)"), "projection_output(phi, y, w, b, E)")
    if got.shape == (n, k):
        raise CheckFailed("one score per image, shape (n, 1): pick each image's class embedding E[y], "
                          "do not score every class (phi @ E.T).")
    if got.shape == (n,):
        got = got[:, None]
    psi = phi @ w + b
    inner = (E[y] * phi).sum(1, keepdims=True)
    expect_close(got, want, "projection_output(phi, y, w, b, E)", rtol=1e-7, wrong={
        "psi(phi) = phi @ w + b is missing: the class term is added to the unconditional score.": inner,
        "the class term <E[y], phi> is missing: without it the label does nothing.": psi,
        "the bias b is missing from psi(phi) = phi @ w + b.": phi @ w + inner,
        "that uses the one-hot label's own index as a scale, not the embedding row E[y].": psi + y[:, None] * phi.sum(1, keepdims=True),
        "that concatenates nothing: the projection is the inner product of E[y] with phi, summed over the features.":
            psi + (E[y] * phi).mean(1, keepdims=True),
    })


# --------------------------------------------------------------------------- Q4 an EMA update


def _small_model(seed):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).double()
    m(torch.randn(16, 3, dtype=F64))  # non-trivial BatchNorm statistics
    return m


@question("q4", "an EMA update of a model's weights", 2, needs=["ema_update"])
def check_q4(rng, ema_update):
    from ganlib.train import ema_update as reference

    model = _small_model(int(rng.integers(2**31)))
    ema = _small_model(int(rng.integers(2**31)))
    decay = float(rng.uniform(0.6, 0.95))
    want = copy.deepcopy(ema)
    reference(want, model, decay)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    start = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        ema_update(ema, model, decay)
    for k, v in model.state_dict().items():
        if not torch.equal(v, before[k]):
            raise CheckFailed("ema_update changed the model: only the average moves, towards the model.")
    got, ref = ema.state_dict(), want.state_dict()
    for name, p in want.named_parameters():
        expect_close(to_numpy(got[name]), to_numpy(ref[name]), f"the averaged {name}", rtol=1e-9, wrong={
            "the decay is applied the wrong way round: ema = decay * ema + (1 - decay) * model keeps most of "
            "the average.": to_numpy((1 - decay) * start[name] + decay * before[name]),
            "the average did not move: update the EMA's parameters in place (p_ema.mul_(decay).add_(...) or "
            "p_ema.lerp_(p, 1 - decay)).": to_numpy(start[name]),
        })
    for name, b in want.named_buffers():
        if not torch.equal(got[name].to(b.dtype), b):
            raise CheckFailed(f"copy the buffers ({name}: BatchNorm's running statistics) from the model, as "
                              "ganlib.train.ema_update does: they are statistics of the model's activations, not weights "
                              "to average.")


QUESTIONS = [check_q1, check_q2, check_q3, check_q4]
