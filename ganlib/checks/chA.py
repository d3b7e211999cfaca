"""Appendix A, errata: graded "find and fix the bug" questions.

Each question starts from a buggy piece of GAN code that blog posts repeat. The answers are
judged by behaviour: the loss against ``ganlib.losses`` at ordinary and extreme logits, the
generator head by shapes, range and gradient flow on random batches, and the training step by
the parameters it produces, compared with one plain SGD update computed here with
``torch.autograd.grad`` (one discriminator update on a detached fake batch, then one generator
update through the updated discriminator), over two consecutive calls so that gradients left
over from the previous call show up.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ganlib import losses
from ganlib.grading import CheckFailed, as_float_array, expect_close, question

F64 = torch.float64


def _t(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=float), dtype=F64)


# --------------------------------------------------------------------------- Q1 the discriminator loss


def _softplus(a: np.ndarray) -> np.ndarray:
    return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return np.exp(-_softplus(-a))


@question("q1", "fix the discriminator loss", 2, needs=["discriminator_loss"])
def check_q1(rng, discriminator_loss):
    n = int(rng.integers(4, 30))
    m = n  # equal batch sizes, so that the elementwise form of the bug runs and is recognised
    real, fake = rng.normal(0, 3, size=(n, 1)), rng.normal(0, 3, size=(m, 1))
    real[0, 0], fake[0, 0] = float(rng.uniform(1, 3)), -float(rng.uniform(1, 3))
    want = float(losses.discriminator_loss_bce(_t(real), _t(fake)))
    got = discriminator_loss(_t(real), _t(fake))
    if not isinstance(got, torch.Tensor):
        raise CheckFailed("discriminator_loss should return a torch tensor (to backpropagate through), got "
                          f"{type(got).__name__}")
    sr, sf = _sigmoid(real[:, 0]), _sigmoid(fake[:, 0])
    inside = ("this is still -log(D(x) + D(G(z))): the loss must score the real and fake batches separately, "
              "-[log D(x) + log(1 - D(G(z)))].")
    expect_close(as_float_array(got, "discriminator_loss(real, fake)").reshape(()), want,
                 "discriminator_loss(real, fake)", wrong={
        inside: -np.mean(np.log(sr + sf)),
        inside + " ": -np.log(np.mean(sr) + np.mean(sf)),
        "the fake term should be -log(1 - D(G(z))) = softplus(fake): you wrote -log D(G(z)), which rewards "
        "calling fakes real.": np.mean(_softplus(-real[:, 0])) + np.mean(_softplus(-fake[:, 0])),
        "real and fake are swapped: real logits get softplus(-real), fake logits softplus(+fake).":
            np.mean(_softplus(real[:, 0])) + np.mean(_softplus(-fake[:, 0])),
        "the sign is flipped: minimise the cross-entropy, do not maximise it.": -want,
    })
    # extreme logits: a confident discriminator must not produce inf or nan
    ext_real, ext_fake = np.array([[800.0], [-800.0], [30.0]]), np.array([[-800.0], [800.0], [-30.0]])
    got = discriminator_loss(_t(ext_real), _t(ext_fake))
    want = float(losses.discriminator_loss_bce(_t(ext_real), _t(ext_fake)))
    arr = np.asarray(got.detach().double().cpu().numpy() if isinstance(got, torch.Tensor) else got, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise CheckFailed("at logits of +-800 your loss gives inf or nan: sigmoid then log loses everything; "
                          "write it from logits with softplus (log D = -softplus(-a), log(1 - D) = -softplus(a)) "
                          "or F.binary_cross_entropy_with_logits.")
    expect_close(arr.reshape(()), want, "discriminator_loss at extreme logits (+-800)", rtol=1e-9)


# --------------------------------------------------------------------------- Q2 the generator head


@question("q2", "fix the generator head (7x7x128 -> 28x28x1)", 2, needs=["generator_head"])
def check_q2(rng, generator_head):
    torch.manual_seed(int(rng.integers(2**31)))
    head = generator_head()
    if not isinstance(head, nn.Module):
        raise CheckFailed(f"generator_head() should return a torch.nn.Module, got {type(head).__name__}")
    head = head.double()
    for n in (1, int(rng.integers(2, 9))):
        h = torch.randn(n, 128, 7, 7, dtype=F64)
        try:
            out = head(h)
        except RuntimeError as exc:
            if "invalid for input of size" in str(exc):
                raise CheckFailed("the reshape fails: a Linear(128, 1) (Keras' Dense(1)) on the 128 channels leaves "
                                  "7 x 7 = 49 values per sample, and 28 x 28 = 784 are needed. Use "
                                  "Linear(7*7*128, 784) on the flattened features, or transposed convolutions "
                                  "7 -> 14 -> 28.") from None
            raise
        if not isinstance(out, torch.Tensor):
            raise CheckFailed(f"the head should return a tensor, got {type(out).__name__}")
        if tuple(out.shape) == (n, 28, 28, 1):
            raise CheckFailed("the output is channels-last (n, 28, 28, 1): PyTorch images are (n, 1, 28, 28).")
        if tuple(out.shape) != (n, 1, 28, 28):
            raise CheckFailed(f"for an input of shape {tuple(h.shape)} the head should return shape "
                              f"({n}, 1, 28, 28), got {tuple(out.shape)}")
        if out.abs().max() > 1:
            raise CheckFailed("outputs leave [-1, 1]: the data are scaled to [-1, 1], so end with a tanh.")
        if out.min() >= 0:  # a fresh head on random features gives pixels of both signs, unless its range is [0, 1]
            raise CheckFailed(f"all {out.numel()} outputs are >= 0 (min {out.min().item():.3g}): the head's range is "
                              "[0, 1] (a sigmoid?), but the images are scaled to [-1, 1], so black (-1) is out of "
                              "reach: end with a tanh.")
    h1, h2 = torch.randn(2, 128, 7, 7, dtype=F64), torch.randn(2, 128, 7, 7, dtype=F64)
    if torch.allclose(head(h1), head(h2)):
        raise CheckFailed("the output does not depend on the input features")
    params = [p for p in head.parameters() if p.requires_grad]
    if not params:
        raise CheckFailed("the head has no trainable parameters")
    grads = torch.autograd.grad(head(h1).sum(), params, allow_unused=True)
    if any(g is None for g in grads):
        raise CheckFailed("some parameters of the head receive no gradient: are they used in forward?")


# --------------------------------------------------------------------------- Q3 the training step


def _tiny_gan(seed: int) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    G = nn.Sequential(nn.Linear(3, 8), nn.LeakyReLU(0.2), nn.Linear(8, 2)).double()
    D = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1)).double()
    return G, D


class _SGD:
    """Plain SGD with torch.optim's ``zero_grad`` / ``step`` interface.

    The learner's step only calls those two methods; constructing a ``torch.optim`` optimiser would
    import torch's compiler stack (about a second of CPU time) in every grading worker.
    """

    def __init__(self, params, lr: float):
        self.params, self.lr = list(params), lr

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        with torch.no_grad():
            for p in self.params:
                if p.grad is not None:
                    p -= self.lr * p.grad


def _params(m: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in m.parameters()]


def _reference_step(G, D, real, z, lr):
    """Parameters after one correct step: SGD on D with a detached fake batch, then SGD on G through the new D."""
    G, D = copy.deepcopy(G), copy.deepcopy(D)
    loss_d = losses.discriminator_loss_bce(D(real), D(G(z).detach()))
    grads_d = torch.autograd.grad(loss_d, list(D.parameters()))
    leaked = torch.autograd.grad(losses.discriminator_loss_bce(D(real), D(G(z))), list(G.parameters()))
    with torch.no_grad():
        for p, g in zip(D.parameters(), grads_d):
            p -= lr * g
    loss_g = losses.generator_loss_nonsaturating(D(G(z)))
    grads_g = torch.autograd.grad(loss_g, list(G.parameters()))
    G_leaky = copy.deepcopy(G)
    with torch.no_grad():
        for p, g in zip(G.parameters(), grads_g):
            p -= lr * g
        for p, g, extra in zip(G_leaky.parameters(), grads_g, leaked):
            p -= lr * (g + extra)
    return G, D, loss_d.item(), loss_g.item(), G_leaky


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.allclose(x, y, rtol=1e-9, atol=1e-12) for x, y in zip(a, b))


@question("q3", "fix the training step (detach, zero_grad, order)", 3, needs=["train_step"])
def check_q3(rng, train_step):
    lr = 0.05
    G, D = _tiny_gan(int(rng.integers(2**31)))
    opt_G, opt_D = _SGD(G.parameters(), lr), _SGD(D.parameters(), lr)
    ref_G, ref_D = copy.deepcopy(G), copy.deepcopy(D)
    for call in (1, 2):
        n = int(rng.integers(4, 12))
        real, z = _t(rng.normal(2.0, 0.5, size=(n, 2))), _t(rng.normal(size=(n, 3)))
        ref_G, ref_D, ref_ld, ref_lg, leaky_G = _reference_step(ref_G, ref_D, real, z, lr)
        out = train_step(G, D, opt_G, opt_D, real, z)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise CheckFailed(f"train_step should return (loss_d, loss_g) as floats, got {type(out).__name__}")
        where = "" if call == 1 else " on the second call (gradients left over from the first call?)"
        if not _same(_params(D), _params(ref_D)):
            if call == 2:
                raise CheckFailed("D's parameters are wrong on the second call: zero D's gradients before "
                                  "backpropagating its loss (opt_D.zero_grad()), or they accumulate the previous "
                                  "generator update's gradients.")
            raise CheckFailed("D's parameters after the step are wrong: one D update on the real batch and "
                              "a detached fake batch G(z).detach(), with opt_D.zero_grad() first.")
        if not _same(_params(G), _params(ref_G)):
            if call == 1 and _same(_params(G), _params(leaky_G)):
                raise CheckFailed("G's update also contains the gradient of the discriminator's loss: the fake batch "
                                  "in the D step must be detached (G(z).detach()), and G's gradients zeroed "
                                  "(opt_G.zero_grad()) before backpropagating the generator loss.")
            raise CheckFailed(f"G's parameters after the step are wrong{where}: after the D update, recompute "
                              "D(G(z)) with the updated D, zero G's gradients, and update G with the "
                              "non-saturating loss.")
        loss_d, loss_g = (float(as_float_array(v, name).reshape(())) for v, name in zip(out, ("loss_d", "loss_g")))
        expect_close(loss_d, ref_ld, "the returned loss_d (before D's update)", rtol=1e-9)
        expect_close(loss_g, ref_lg, "the returned loss_g (with the updated D)", rtol=1e-9)
        ref_G, ref_D = copy.deepcopy(G), copy.deepcopy(D)


QUESTIONS = [check_q1, check_q2, check_q3]
