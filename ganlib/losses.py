"""The GAN loss zoo in PyTorch (chapter 05): every loss from logits or critic outputs.

Conventions
    ``real`` and ``fake`` are the discriminator's (or critic's) raw outputs on a real and a
    fake batch: tensors of shape ``(n,)`` or ``(n, 1)`` (any shape works; every entry counts
    as one sample's output). Every function returns a **scalar tensor to be minimised**
    (a mean over the batch), on the inputs' device and in their dtype, so it can be
    backpropagated. Discriminator losses take ``(real, fake)``; generator losses take
    ``fake``; the penalties take the critic itself and the batches of *inputs*.

    Nothing here applies a sigmoid for you except the BCE losses, which take **logits**
    (pre-sigmoid outputs) and use ``softplus``: ``-log sigmoid(a) = softplus(-a)`` and
    ``-log(1 - sigmoid(a)) = softplus(a)`` stay finite for every finite ``a``.

=================  ==========================================  ===================================
loss               discriminator / critic minimises            generator minimises
=================  ==========================================  ===================================
minimax (GAN)      ``E softplus(-D(x)) + E softplus(D(x~))``   ``-E softplus(D(x~))`` = E log(1-D)
non-saturating     same                                        ``E softplus(-D(x~))`` = -E log D
least squares      ``1/2 E (D(x)-b)^2 + 1/2 E (D(x~)-a)^2``    ``1/2 E (D(x~)-c)^2``
hinge              ``E relu(1-D(x)) + E relu(1+D(x~))``        ``-E D(x~)``
Wasserstein        ``E D(x~) - E D(x)``                        ``-E D(x~)``
=================  ==========================================  ===================================

References: Goodfellow et al., NeurIPS 2014 (minimax, non-saturating); Mao et al., ICCV 2017
(least squares); Lim & Ye, arXiv:1705.02894, 2017 and Miyato et al., ICLR 2018 (hinge);
Arjovsky, Chintala & Bottou, ICML 2017 (Wasserstein, weight clipping); Gulrajani et al.,
NeurIPS 2017 (gradient penalty); Mescheder, Geiger & Nowozin, ICML 2018 (R1).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "discriminator_loss_bce", "generator_loss_saturating", "generator_loss_nonsaturating",
    "discriminator_loss_bce_probs", "discriminator_loss_lsgan", "generator_loss_lsgan",
    "discriminator_loss_hinge", "generator_loss_hinge", "critic_loss_wasserstein",
    "generator_loss_wasserstein", "clip_weights_", "input_gradient", "gradient_penalty",
    "r1_penalty", "LOSSES",
]


# --------------------------------------------------------------------------- validation


def _tensor(x, what: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__} "
                        "(convert with torch.as_tensor(x, dtype=torch.float32))")
    if not x.is_floating_point():
        raise TypeError(f"{what} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"{what} must be a non-empty batch of shape (batch,) or (batch, 1), got shape {tuple(x.shape)}")
    return x


def _outputs(real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    """Check a pair of discriminator outputs: same per-sample shape, dtype and device."""
    real, fake = _tensor(real, "real"), _tensor(fake, "fake")
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real and fake outputs must have the same shape per sample, got {tuple(real.shape)} "
                         f"and {tuple(fake.shape)}: mixing shapes (batch,) and (batch, 1) would broadcast "
                         "to a (batch, batch) matrix")
    if real.dtype != fake.dtype:
        raise TypeError(f"real and fake outputs have different dtypes, {real.dtype} and {fake.dtype}")
    if real.device != fake.device:
        raise ValueError(f"real and fake outputs live on different devices, {real.device} and {fake.device}: "
                         "move both with .to(device)")
    return real, fake


def _probabilities(p: Tensor, what: str) -> Tensor:
    p = _tensor(p, what)
    with torch.no_grad():
        bad = (p < 0) | (p > 1) | torch.isnan(p)
        if bool(bad.any()):
            v = p[bad].flatten()[0].item()
            raise ValueError(f"{what} must be probabilities in [0, 1], got a value {v:.4g}: "
                             "these look like logits (raw discriminator outputs). Pass logits to "
                             "discriminator_loss_bce instead, or apply torch.sigmoid first")
    return p


# --------------------------------------------------------------------------- minimax / non-saturating


def discriminator_loss_bce(real: Tensor, fake: Tensor) -> Tensor:
    """The GAN discriminator's loss from **logits**: ``E softplus(-D(x)) + E softplus(D(G(z)))``.

    Equal to ``-E log sigmoid(D(x)) - E log(1 - sigmoid(D(G(z))))``, the binary cross-entropy
    with label 1 on real and 0 on fake samples (Goodfellow et al. 2014). Optimum for fixed G:
    ``sigmoid(D*(x)) = p_data / (p_data + p_g)``, where the loss is ``log 4 - 2 JSD``.

    Parameters
    ----------
    real, fake : Tensor, shape (n,) or (n, 1)
        Logits on a real and a fake batch (the batch sizes may differ).

    Examples
    --------
    >>> round(discriminator_loss_bce(torch.zeros(4, 1), torch.zeros(4, 1)).item(), 6)  # log 4
    1.386294
    """
    real, fake = _outputs(real, fake)
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def generator_loss_saturating(fake: Tensor) -> Tensor:
    """Minimax (saturating) generator loss from logits: ``E log(1 - sigmoid(a)) = -E softplus(a)``.

    Gradient per sample with respect to the logit: ``-sigmoid(a) / n``, which vanishes when the
    discriminator rejects the fakes confidently (``a -> -inf``).

    Examples
    --------
    >>> round(generator_loss_saturating(torch.zeros(3)).item(), 6)  # log(1/2)
    -0.693147
    """
    return -F.softplus(_tensor(fake, "fake")).mean()


def generator_loss_nonsaturating(fake: Tensor) -> Tensor:
    """Non-saturating generator loss from logits: ``-E log sigmoid(a) = E softplus(-a)``.

    Gradient per sample with respect to the logit: ``-(1 - sigmoid(a)) / n``, close to ``-1/n``
    when the discriminator rejects the fakes (Goodfellow et al. 2014, Section 3).

    Examples
    --------
    >>> round(generator_loss_nonsaturating(torch.zeros(3, 1)).item(), 6)
    0.693147
    """
    return F.softplus(-_tensor(fake, "fake")).mean()


def discriminator_loss_bce_probs(real_prob: Tensor, fake_prob: Tensor) -> Tensor:
    """The discriminator's BCE from **probabilities** ``D(x) in (0, 1)``: ``-E log D(x) - E log(1 - D(x~))``.

    For teaching only: it loses precision (``1 - D`` rounds to 0 once ``D`` is within float
    epsilon of 1, and the loss becomes ``inf``) where :func:`discriminator_loss_bce` on logits
    does not. Values outside ``[0, 1]`` (or NaN) raise a ``ValueError``: they are almost surely
    logits. Exactly 0 or 1 is accepted, since a saturated sigmoid produces it.

    Examples
    --------
    >>> round(discriminator_loss_bce_probs(torch.full((2,), 0.5), torch.full((2,), 0.5)).item(), 6)
    1.386294
    >>> discriminator_loss_bce_probs(torch.tensor([2.0]), torch.tensor([0.5]))
    Traceback (most recent call last):
    ...
    ValueError: real_prob must be probabilities in [0, 1], got a value 2: these look like logits (raw discriminator outputs). Pass logits to discriminator_loss_bce instead, or apply torch.sigmoid first
    """
    real_prob, fake_prob = _outputs(_probabilities(real_prob, "real_prob"), _probabilities(fake_prob, "fake_prob"))
    return -torch.log(real_prob).mean() - torch.log1p(-fake_prob).mean()


# --------------------------------------------------------------------------- least squares


def discriminator_loss_lsgan(real: Tensor, fake: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """LSGAN discriminator loss ``1/2 E (D(x) - b)^2 + 1/2 E (D(G(z)) - a)^2`` (Mao et al. 2017).

    ``D`` has a linear output (no sigmoid). Default: the 0-1 coding ``a = 0``, ``b = 1`` (with
    ``c = 1`` for the generator), one of the two codings Mao et al. propose (the 0-1 binary
    coding with ``c = b``, used in their released code); the alternative ``a = -1, b = 1,
    c = 0`` satisfies ``b - c = 1, b - a = 2``, under which the generator minimises a Pearson
    chi^2 divergence. Optimum for fixed G:
    ``D*(x) = (b p_data + a p_g) / (p_data + p_g)``.

    Examples
    --------
    >>> discriminator_loss_lsgan(torch.ones(3), torch.zeros(5)).item()  # a perfect D
    0.0
    """
    real, fake = _outputs(real, fake)
    return 0.5 * ((real - b) ** 2).mean() + 0.5 * ((fake - a) ** 2).mean()


def generator_loss_lsgan(fake: Tensor, c: float = 1.0) -> Tensor:
    """LSGAN generator loss ``1/2 E (D(G(z)) - c)^2``; per-sample gradient ``(D(G(z)) - c) / n``.

    Examples
    --------
    >>> generator_loss_lsgan(torch.zeros(4)).item()
    0.5
    """
    return 0.5 * ((_tensor(fake, "fake") - c) ** 2).mean()


# --------------------------------------------------------------------------- hinge


def discriminator_loss_hinge(real: Tensor, fake: Tensor) -> Tensor:
    """Hinge loss ``E max(0, 1 - D(x)) + E max(0, 1 + D(G(z)))`` (Lim & Ye 2017; Miyato et al. 2018).

    Only samples inside the margin (``D(x) < 1`` or ``D(G(z)) > -1``) contribute gradient.

    Examples
    --------
    >>> discriminator_loss_hinge(torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0])).item()  # (0 + .5)/2 + (0 + 1)/2
    0.75
    """
    real, fake = _outputs(real, fake)
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def generator_loss_hinge(fake: Tensor) -> Tensor:
    """The hinge GAN's generator loss ``-E D(G(z))`` (no margin for the generator).

    It is the same function as the WGAN generator loss, :func:`generator_loss_wasserstein`.

    Examples
    --------
    >>> generator_loss_hinge(torch.tensor([1.0, 3.0])).item()
    -2.0
    """
    return generator_loss_wasserstein(fake)


# --------------------------------------------------------------------------- Wasserstein


def critic_loss_wasserstein(real: Tensor, fake: Tensor) -> Tensor:
    """WGAN critic loss ``E f(G(z)) - E f(x)`` (Arjovsky, Chintala & Bottou 2017).

    Minimising it maximises ``E f(x) - E f(G(z))``, which for a 1-Lipschitz critic ``f``
    estimates the Wasserstein-1 distance (Kantorovich-Rubinstein duality). The Lipschitz
    constraint comes from :func:`clip_weights_` or :func:`gradient_penalty`.

    Examples
    --------
    >>> critic_loss_wasserstein(torch.tensor([3.0, 5.0]), torch.tensor([1.0])).item()
    -3.0
    """
    real, fake = _outputs(real, fake)
    return fake.mean() - real.mean()


def generator_loss_wasserstein(fake: Tensor) -> Tensor:
    """WGAN generator loss ``-E f(G(z))``; gradient ``-1/n`` per sample whatever ``f`` says.

    Examples
    --------
    >>> generator_loss_wasserstein(torch.tensor([1.0, 3.0])).item()
    -2.0
    """
    return -_tensor(fake, "fake").mean()


@torch.no_grad()
def clip_weights_(module: torch.nn.Module, c: float = 0.01) -> None:
    """Clamp every parameter of ``module`` to ``[-c, c]`` in place (WGAN; the paper uses ``c = 0.01``).

    Call it after each critic update. It bounds the critic's Lipschitz constant crudely;
    the gradient penalty is the better-behaved alternative (Gulrajani et al. 2017).

    Examples
    --------
    >>> lin = torch.nn.Linear(2, 1)
    >>> clip_weights_(lin, 0.01)
    >>> bool(lin.weight.abs().max() <= 0.01)
    True
    """
    if not c > 0:
        raise ValueError(f"the clipping bound c must be positive, got {c}")
    for p in module.parameters():
        p.clamp_(-c, c)


# --------------------------------------------------------------------------- penalties


def input_gradient(critic: Callable[[Tensor], Tensor], x: Tensor, create_graph: bool = True) -> Tensor:
    """``grad_x D(x)`` for every sample of a batch, shape ``x.shape``.

    One backward pass of ``D(x).sum()`` gives every sample's own gradient, because each
    output depends only on its own input (true for MLPs and convolutional nets *without*
    BatchNorm, which couples the samples of a batch). ``create_graph=True`` keeps the graph
    of the gradient itself, so that a penalty built from it can be backpropagated into the
    critic's parameters (a second-order derivative).

    Examples
    --------
    >>> lin = torch.nn.Linear(3, 1)
    >>> g = input_gradient(lin, torch.randn(5, 3))
    >>> torch.allclose(g, lin.weight.expand(5, 3))
    True
    """
    x = _tensor(x, "x")
    with torch.enable_grad():  # works inside torch.no_grad() too, e.g. when logging a penalty
        x = x.detach().requires_grad_(True)
        out = critic(x)
        if not isinstance(out, Tensor) or out.dim() == 0 or out.shape[0] != x.shape[0] or out[0].numel() != 1:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"the critic must return one number per sample, shape ({x.shape[0]},) or "
                             f"({x.shape[0]}, 1); it returned {shape}")
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=create_graph)
    return grad


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, lam: float = 10.0,
                     eps: Tensor | None = None) -> Tensor:
    """WGAN-GP penalty ``lam * E[(||grad D(x^)||_2 - 1)^2]`` (Gulrajani et al. 2017).

    ``x^ = eps * x + (1 - eps) * x~`` with **one** ``eps ~ U[0, 1]`` **per sample**, and the norm
    taken **per sample** over all of its entries (images are flattened). The gradient is
    computed with ``create_graph=True`` so the penalty is differentiable with respect to the
    critic's parameters. ``real`` and ``fake`` are detached: the penalty trains the critic only.

    Parameters
    ----------
    critic : callable
        Maps a batch like ``real`` to ``(n,)`` or ``(n, 1)`` outputs. No BatchNorm (it couples
        the samples; the paper uses layer normalisation or none).
    real, fake : Tensor, same shape (n, ...)
    lam : float
        The paper's ``lambda = 10``.
    eps : Tensor of shape (n,), optional
        Interpolation weights; drawn from ``U[0, 1]`` with torch's generator when omitted.

    Examples
    --------
    >>> lin = torch.nn.Linear(2, 1, bias=False)
    >>> with torch.no_grad(): _ = lin.weight.copy_(torch.tensor([[3.0, 4.0]]))  # ||grad|| = 5 everywhere
    >>> gradient_penalty(lin, torch.randn(8, 2), torch.randn(8, 2), lam=10.0).item()  # 10 * (5 - 1)^2
    160.0
    """
    real, fake = _tensor(real, "real"), _tensor(fake, "fake")
    if real.shape != fake.shape:
        raise ValueError(f"real and fake batches must have the same shape to be interpolated pairwise, "
                         f"got {tuple(real.shape)} and {tuple(fake.shape)}")
    if real.device != fake.device or real.dtype != fake.dtype:
        raise ValueError(f"real and fake batches differ in device or dtype: {real.device}/{real.dtype} "
                         f"and {fake.device}/{fake.dtype}")
    n = real.shape[0]
    if eps is None:
        eps = torch.rand(n, device=real.device, dtype=real.dtype)
    elif eps.shape != (n,):
        raise ValueError(f"eps must have shape ({n},), one weight per sample, got {tuple(eps.shape)}")
    eps = eps.to(device=real.device, dtype=real.dtype).reshape((n,) + (1,) * (real.dim() - 1))
    x_hat = eps * real.detach() + (1 - eps) * fake.detach()
    grad = input_gradient(critic, x_hat, create_graph=True)
    norms = grad.reshape(n, -1).norm(2, dim=1)
    return lam * ((norms - 1) ** 2).mean()


def r1_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, gamma: float = 10.0) -> Tensor:
    """R1 penalty ``gamma / 2 * E_real ||grad_x D(x)||^2`` (Mescheder, Geiger & Nowozin 2018).

    Penalises the discriminator's input gradient on **real** data only, per sample (squared
    norm over all entries), with ``create_graph=True`` so it trains the discriminator. Add it
    to the discriminator's loss; it pushes ``D`` towards flatness on the data manifold,
    which makes the equilibrium ``p_g = p_data, D = 0`` locally convergent.

    Examples
    --------
    >>> lin = torch.nn.Linear(2, 1)
    >>> with torch.no_grad(): _ = lin.weight.copy_(torch.tensor([[3.0, 4.0]]))
    >>> r1_penalty(lin, torch.randn(8, 2), gamma=2.0).item()  # 2/2 * 25
    25.0
    """
    real = _tensor(real, "real")
    grad = input_gradient(critic, real, create_graph=True)
    return 0.5 * gamma * grad.reshape(real.shape[0], -1).pow(2).sum(dim=1).mean()


LOSSES: dict[str, tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "minimax": (discriminator_loss_bce, generator_loss_saturating),
    "nonsaturating": (discriminator_loss_bce, generator_loss_nonsaturating),
    "lsgan": (discriminator_loss_lsgan, generator_loss_lsgan),
    "hinge": (discriminator_loss_hinge, generator_loss_hinge),
    "wasserstein": (critic_loss_wasserstein, generator_loss_wasserstein),
}
"""Name -> ``(discriminator_loss(real, fake), generator_loss(fake))``."""
