"""Small PyTorch networks for chapters 05-07, and a bridge from chapter 03's NumPy networks.

Shapes: a generator maps noise ``(batch, latent_dim)`` to samples ``(batch, out_dim)``; a
discriminator maps samples ``(batch, in_dim)`` to **logits** ``(batch, 1)`` (no sigmoid: the
losses in :mod:`ganlib.losses` take logits or raw critic outputs).

Initialisation follows chapter 03: He (``N(0, 2/fan_in)``) for (leaky) ReLU networks, Xavier
uniform for tanh, biases at zero. A NumPy ``Linear`` stores ``W`` as ``(in, out)`` and computes
``x @ W + b``; ``torch.nn.Linear`` stores ``weight`` as ``(out, in)`` and computes
``x @ weight.T + bias``, so copying between them transposes.

Examples
--------
>>> import torch
>>> gen, disc = generator(latent_dim=2, out_dim=3), discriminator(in_dim=3)
>>> x = gen(torch.randn(5, 2))
>>> x.shape, disc(x).shape
(torch.Size([5, 3]), torch.Size([5, 1]))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ganlib import numpy_nn

__all__ = ["Standardize", "mlp", "generator", "discriminator", "from_numpy", "to_numpy_params"]


class Standardize(nn.Module):
    """Fixed input scaling ``(x - mean) / std`` (buffers, not parameters), as ``numpy_nn.Standardize``.

    Examples
    --------
    >>> Standardize(4.0, 2.0)(torch.tensor([[4.0], [6.0]])).tolist()
    [[0.0], [1.0]]
    """

    def __init__(self, mean, std, dtype: torch.dtype | None = None):
        super().__init__()
        dtype = dtype or torch.get_default_dtype()
        std_t = torch.as_tensor(np.asarray(std, dtype=float), dtype=dtype)
        if bool((std_t <= 0).any()):
            raise ValueError(f"std must be positive, got {std}")
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, dtype=float), dtype=dtype))
        self.register_buffer("std", std_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={np.round(self.mean.cpu().numpy(), 3)}, std={np.round(self.std.cpu().numpy(), 3)}"


_ACTS = {"leaky_relu": nn.LeakyReLU, "relu": lambda slope: nn.ReLU(), "tanh": lambda slope: nn.Tanh()}


def _init_(layer: nn.Linear, init: str) -> None:
    with torch.no_grad():
        if init == "he":
            layer.weight.normal_(0.0, float(np.sqrt(2.0 / layer.in_features)))
        elif init == "xavier":
            nn.init.xavier_uniform_(layer.weight)
        else:
            raise ValueError(f"init must be 'he' or 'xavier', got {init!r}")
        layer.bias.zero_()


def mlp(sizes: Sequence[int], activation: str = "leaky_relu", slope: float = 0.2,
        init: str | None = None) -> nn.Sequential:
    """``Linear -> act -> ... -> Linear`` (no activation after the last layer), like ``numpy_nn.mlp``.

    Parameters
    ----------
    sizes : sequence of int
        ``[in, hidden..., out]``, at least two entries.
    activation : {"leaky_relu", "relu", "tanh"}
    slope : float
        Negative slope of LeakyReLU.
    init : {"he", "xavier"}, optional
        Defaults to He for (leaky) ReLU, Xavier for tanh. Uses torch's global generator
        (seed it with ``ganlib.seed_everything``).

    Examples
    --------
    >>> mlp([1, 16, 1])
    Sequential(
      (0): Linear(in_features=1, out_features=16, bias=True)
      (1): LeakyReLU(negative_slope=0.2)
      (2): Linear(in_features=16, out_features=1, bias=True)
    )
    """
    if activation not in _ACTS:
        raise ValueError(f"activation must be one of {sorted(_ACTS)}, got {activation!r}")
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes needs at least [in, out], all positive, got {list(sizes)}")
    init = init or ("xavier" if activation == "tanh" else "he")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b)
        _init_(lin, init)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(_ACTS[activation](slope))
    return nn.Sequential(*layers)


def generator(latent_dim: int, out_dim: int, hidden: Sequence[int] = (32, 32), activation: str = "leaky_relu",
              slope: float = 0.2, out_activation: str | None = None) -> nn.Sequential:
    """A generator MLP: ``(batch, latent_dim) -> (batch, out_dim)``.

    ``out_activation="tanh"`` bounds the samples to ``(-1, 1)`` (for data scaled to that range).

    Examples
    --------
    >>> generator(4, 2)(torch.randn(7, 4)).shape
    torch.Size([7, 2])
    """
    net = mlp([latent_dim, *hidden, out_dim], activation, slope)
    if out_activation == "tanh":
        net.append(nn.Tanh())
    elif out_activation is not None:
        raise ValueError(f"out_activation must be None or 'tanh', got {out_activation!r}")
    return net


def discriminator(in_dim: int, hidden: Sequence[int] = (32, 32), activation: str = "leaky_relu",
                  slope: float = 0.2, standardize: tuple[float, float] | None = None) -> nn.Sequential:
    """A discriminator (or critic) MLP: ``(batch, in_dim) -> (batch, 1)`` logits.

    ``standardize=(mean, std)`` puts a fixed :class:`Standardize` layer first (chapter 03).
    There is no BatchNorm, so each output depends on its own sample only, as the gradient
    penalties require.

    Examples
    --------
    >>> discriminator(3, hidden=(8,))(torch.randn(6, 3)).shape
    torch.Size([6, 1])
    """
    net = mlp([in_dim, *hidden, 1], activation, slope)
    if standardize is not None:
        net.insert(0, Standardize(*standardize))
    return net


def from_numpy(net: numpy_nn.Layer, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """A torch copy of a chapter-03 NumPy network, with identical weights.

    Supports ``Sequential`` of ``Linear``, ``LeakyReLU``, ``ReLU``, ``Tanh``, ``Sigmoid`` and
    ``Standardize``. ``W`` of shape ``(in, out)`` becomes ``weight = W.T``.

    Examples
    --------
    >>> np_net = numpy_nn.mlp([2, 4, 1], np.random.default_rng(0))
    >>> t_net = from_numpy(np_net)
    >>> x = np.random.default_rng(1).normal(size=(3, 2))
    >>> bool(np.allclose(t_net(torch.from_numpy(x)).detach().numpy(), np_net.forward(x)))
    True
    """
    layers = net.layers if isinstance(net, numpy_nn.Sequential) else [net]
    out: list[nn.Module] = []
    for layer in layers:
        if isinstance(layer, numpy_nn.Linear):
            lin = nn.Linear(layer.in_features, layer.out_features, dtype=dtype)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(layer.W.T.copy()))
                lin.bias.copy_(torch.from_numpy(layer.b.copy()))
            out.append(lin)
        elif isinstance(layer, numpy_nn.LeakyReLU):
            out.append(nn.LeakyReLU(layer.slope))
        elif isinstance(layer, numpy_nn.ReLU):
            out.append(nn.ReLU())
        elif isinstance(layer, numpy_nn.Tanh):
            out.append(nn.Tanh())
        elif isinstance(layer, numpy_nn.Sigmoid):
            out.append(nn.Sigmoid())
        elif isinstance(layer, numpy_nn.Standardize):
            out.append(Standardize(layer.mean, layer.std, dtype=dtype))
        else:
            raise TypeError(f"from_numpy: no torch counterpart for layer {layer!r}")
    return nn.Sequential(*out)


def to_numpy_params(module: nn.Module, grads: bool = False) -> list[np.ndarray]:
    """A torch network's parameters (or, with ``grads=True``, their ``.grad``) as float64 NumPy arrays
    in chapter 03's layout and order.

    Weights of ``nn.Linear`` come back transposed to ``(in, out)``, so the list lines up with
    ``numpy_nn.Sequential.parameters()`` (``[W0, b0, W1, b1, ...]``).

    Examples
    --------
    >>> np_net = numpy_nn.mlp([2, 4, 1], np.random.default_rng(0))
    >>> all(np.array_equal(a, b) for a, b in zip(to_numpy_params(from_numpy(np_net)), np_net.parameters()))
    True
    """
    def get(p: torch.Tensor) -> np.ndarray:
        t = p.grad if grads else p
        if t is None:
            raise ValueError("a parameter has no .grad yet: call backward() first")
        return t.detach().cpu().double().numpy().copy()

    arrays = []
    for m in module.modules():
        if isinstance(m, nn.Linear):
            arrays.append(get(m.weight).T.copy())
            if m.bias is not None:
                arrays.append(get(m.bias))
    return arrays


# --------------------------------------------------------------------------- chapter 09: MNIST classifier


class LeNet(nn.Module):
    """A small LeNet-style CNN for 28x28 digits in ``[-1, 1]``: the course's evaluation network (chapter 09).

    Two 5x5 convolutions (``width`` and ``2 * width`` channels, each followed by batch norm,
    ReLU and 2x2 max pooling), a hidden layer of ``hidden`` units, and a linear layer to the
    class logits. ``features(x)`` returns the hidden layer (after ReLU), shape
    ``(n, hidden)``: the features of FID and precision/recall. Trained by
    :func:`ganlib.metrics.mnist_classifier`.

    Examples
    --------
    >>> net = LeNet()
    >>> x = torch.zeros(2, 1, 28, 28)
    >>> net(x).shape, net.features(x).shape
    (torch.Size([2, 10]), torch.Size([2, 128]))
    """

    def __init__(self, width: int = 16, hidden: int = 128, num_classes: int = 10, batchnorm: bool = True):
        super().__init__()

        def block(c_in, c_out):
            layers = [nn.Conv2d(c_in, c_out, 5, padding=2, bias=not batchnorm)]
            layers += [nn.BatchNorm2d(c_out)] if batchnorm else []
            return layers + [nn.ReLU(), nn.MaxPool2d(2)]

        self.body = nn.Sequential(*block(1, width), *block(width, 2 * width), nn.Flatten(),
                                  nn.Linear(2 * width * 7 * 7, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features ``(n, hidden)`` of images ``(n, 1, 28, 28)``."""
        return self.body(x)

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and logits in one pass."""
        f = self.body(x)
        return f, self.head(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


__all__ += ["LeNet"]
