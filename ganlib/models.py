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


# ---------------------------------------------------------------------------------------------
# DCGAN (chapter 08): one builder for 28x28, 32x32 and 64x64 images
# ---------------------------------------------------------------------------------------------
# Radford, Metz & Chintala (ICLR 2016): strided (transposed) convolutions instead of pooling,
# BatchNorm everywhere except G's output and D's input layer, no fully connected hidden layers,
# ReLU in G with a tanh output, LeakyReLU(0.2) in D, weights from N(0, 0.02).

DCGAN_IMAGE_SIZES = (28, 32, 64)

__all__ += ["DCGAN_IMAGE_SIZES", "DCGANGenerator", "DCGANDiscriminator", "dcgan_sides", "dcgan_generator",
            "dcgan_discriminator", "init_dcgan_weights", "conv_transpose_output_size", "conv_output_size"]


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def conv_transpose_output_size(size: int, kernel: int, stride: int, padding: int, output_padding: int = 0,
                               dilation: int = 1) -> int:
    """Side of the output of ``nn.ConvTranspose2d`` for an input of side ``size``.

    ``(size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1``: each input
    pixel paints a ``kernel``-wide patch, patches start ``stride`` apart, and ``padding`` crops that
    many pixels from each border.

    Raises
    ------
    ValueError
        For non-integer or out-of-range arguments, ``output_padding >= max(stride, dilation)``
        (PyTorch refuses it too) or an output side below 1.

    Examples
    --------
    >>> conv_transpose_output_size(1, kernel=4, stride=1, padding=0)   # z -> 4x4
    4
    >>> conv_transpose_output_size(4, kernel=4, stride=2, padding=1)   # doubles the side
    8
    >>> conv_transpose_output_size(4, kernel=3, stride=2, padding=1)   # 4 -> 7, on the way to 28
    7
    """
    size, kernel, stride, dilation = (_positive_int(n, v) for n, v in
                                      (("size", size), ("kernel", kernel), ("stride", stride), ("dilation", dilation)))
    for name, value in (("padding", padding), ("output_padding", output_padding)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if output_padding >= max(stride, dilation):
        raise ValueError(f"output_padding ({output_padding}) must be smaller than stride or dilation "
                         f"({stride}, {dilation})")
    out = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    if out < 1:
        raise ValueError(f"the output would be {out} pixels wide: padding {padding} crops more than the "
                         f"transposed convolution paints (size {size}, kernel {kernel}, stride {stride})")
    return int(out)


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Side of the output of ``nn.Conv2d``: ``floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1``.

    The inverse direction of :func:`conv_transpose_output_size` (the two agree up to the floor).

    Examples
    --------
    >>> conv_output_size(64, kernel=4, stride=2, padding=1), conv_output_size(7, kernel=3, stride=2, padding=1)
    (32, 4)
    """
    size, kernel, stride, dilation = (_positive_int(n, v) for n, v in
                                      (("size", size), ("kernel", kernel), ("stride", stride), ("dilation", dilation)))
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"padding must be a non-negative integer, got {padding!r}")
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if span < 0:
        raise ValueError(f"kernel {kernel} (dilation {dilation}) does not fit in {size} + 2*{padding} pixels")
    return span // stride + 1


def dcgan_sides(image_size: int) -> list[int]:
    """The spatial sides of G's feature maps, from the 4x4 seed up to ``image_size``.

    Each step up is one transposed convolution with stride 2 and padding 1: kernel 4 doubles the
    side, kernel 3 gives ``2 * side - 1`` (the one odd step, 4 -> 7, that reaches 28). D walks the
    same list backwards with ordinary convolutions.

    Raises
    ------
    ValueError
        For a size other than 28, 32 or 64, saying why and what to do.

    Examples
    --------
    >>> dcgan_sides(28), dcgan_sides(64)
    ([4, 7, 14, 28], [4, 8, 16, 32, 64])
    """
    ok = ", ".join(map(str, DCGAN_IMAGE_SIZES))
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) \
            or int(image_size) not in DCGAN_IMAGE_SIZES:
        raise ValueError(
            f"DCGAN image_size must be one of {ok}, got {image_size!r}: the stack starts from a 4x4 map and "
            f"each stride-2 transposed convolution doubles the side (kernel 4) or doubles it minus one "
            f"(kernel 3), so the side must halve down to 4: 32 and 64 (4 times a power of two) or 28 "
            f"(4 -> 7 -> 14 -> 28). Resize your images to one of these sizes first.")
    sides = [int(image_size)]
    while sides[-1] > 4:
        sides.append((sides[-1] + 1) // 2)
    return sides[::-1]


def _up_kernel(small: int, big: int) -> int:
    return 4 if big == 2 * small else 3          # 2s (kernel 4) or 2s - 1 (kernel 3), stride 2, padding 1


class DCGANGenerator(nn.Module):
    """DCGAN generator: ``z (N, latent_dim)`` or ``(N, latent_dim, 1, 1)`` -> images ``(N, C, S, S)`` in (-1, 1).

    The layers live in ``self.main`` (an ``nn.Sequential``), as in pytorch/examples' ``dcgan/main.py``,
    so the state-dict keys (``main.0.weight``, ...) are the same and its checkpoints load as they are.
    Build it with :func:`dcgan_generator`.
    """

    def __init__(self, main: nn.Sequential, *, latent_dim: int, image_size: int, channels: int, width: int):
        super().__init__()
        self.main = main
        self.latent_dim, self.image_size, self.channels, self.width = latent_dim, image_size, channels, width

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2 and z.shape[1] == self.latent_dim:
            z = z[:, :, None, None]
        elif not (z.dim() == 4 and tuple(z.shape[1:]) == (self.latent_dim, 1, 1)):
            raise ValueError(f"DCGAN generator expects noise of shape (N, {self.latent_dim}) or "
                             f"(N, {self.latent_dim}, 1, 1), got {tuple(z.shape)}")
        return self.main(z)

    def extra_repr(self) -> str:
        return (f"latent_dim={self.latent_dim}, image_size={self.image_size}, channels={self.channels}, "
                f"width={self.width}")


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: images ``(N, C, S, S)`` -> logits ``(N, 1)`` (no sigmoid).

    Layers in ``self.main`` as in pytorch/examples' ``dcgan/main.py`` minus its final ``Sigmoid``:
    ganlib's losses take logits, which is the numerically stable form (chapter 02). Build it with
    :func:`dcgan_discriminator`.
    """

    def __init__(self, main: nn.Sequential, *, image_size: int, channels: int, width: int):
        super().__init__()
        self.main = main
        self.image_size, self.channels, self.width = image_size, channels, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        want = (self.channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"DCGAN discriminator was built for images (N, {want[0]}, {want[1]}, {want[2]}), "
                             f"got {tuple(x.shape)}: build it with the data's image_size and channels")
        return self.main(x).flatten(1)

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}, channels={self.channels}, width={self.width}"


def dcgan_generator(image_size: int = 64, channels: int = 1, latent_dim: int = 100, width: int = 64,
                    *, init: bool = True) -> DCGANGenerator:
    """The DCGAN generator for ``image_size`` in {28, 32, 64}, computed from the size.

    ``ConvTranspose(latent_dim -> c, kernel 4)`` makes a 4x4 map, then one stride-2 transposed
    convolution per step of :func:`dcgan_sides`, halving the channels each time (``width`` in the
    last hidden layer, so ``8 * width`` first at 64 px and ``4 * width`` at 28 and 32 px). BatchNorm
    and ReLU after every layer but the last, which has ``channels`` outputs and a tanh. No biases
    (BatchNorm's shift replaces them; the last layer has none either, as in the reference).

    At ``image_size=64, channels=1, latent_dim=100, width=64`` this is pytorch/examples'
    ``dcgan/main.py`` generator (with ``nc=1``), layer for layer: 3,574,656 parameters.

    Parameters
    ----------
    image_size : {28, 32, 64}
    channels : int
        1 (grey) or 3 (RGB).
    latent_dim : int
        ``nz``, the length of z.
    width : int
        ``ngf``: channels of the last hidden layer.
    init : bool
        Apply :func:`init_dcgan_weights` (draws from torch's global generator; seed it first).

    Examples
    --------
    >>> G = dcgan_generator(64, channels=1, latent_dim=100, width=64)
    >>> sum(p.numel() for p in G.parameters())
    3574656
    >>> dcgan_generator(28, width=8)(torch.randn(2, 100)).shape
    torch.Size([2, 1, 28, 28])
    """
    sides = dcgan_sides(image_size)
    channels, latent_dim, width = (_positive_int(n, v) for n, v in
                                   (("channels", channels), ("latent_dim", latent_dim), ("width", width)))
    n_up = len(sides) - 1
    chans = [width * 2 ** (n_up - 1 - i) for i in range(n_up)] + [channels]
    layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, chans[0], 4, 1, 0, bias=False),
                               nn.BatchNorm2d(chans[0]), nn.ReLU(True)]
    for i in range(1, n_up + 1):
        layers.append(nn.ConvTranspose2d(chans[i - 1], chans[i], _up_kernel(sides[i - 1], sides[i]), 2, 1,
                                         bias=False))
        layers += [nn.BatchNorm2d(chans[i]), nn.ReLU(True)] if i < n_up else [nn.Tanh()]
    G = DCGANGenerator(nn.Sequential(*layers), latent_dim=latent_dim, image_size=sides[-1], channels=channels,
                       width=width)
    if init:
        init_dcgan_weights(G)
    return G


def dcgan_discriminator(image_size: int = 64, channels: int = 1, width: int = 64, *, batchnorm: bool = True,
                        init: bool = True) -> DCGANDiscriminator:
    """The DCGAN discriminator for ``image_size`` in {28, 32, 64}: G's stack mirrored, giving logits.

    Stride-2 convolutions walk :func:`dcgan_sides` backwards, doubling the channels from ``width``
    (``ndf``); LeakyReLU(0.2) after each, BatchNorm after each but the first; a final 4x4
    convolution to one logit per image. No sigmoid: ganlib's losses take logits.

    At ``image_size=64, channels=1, width=64`` this is pytorch/examples' ``dcgan/main.py``
    discriminator (``nc=1``) without its final ``Sigmoid``: 2,763,520 parameters.

    Parameters
    ----------
    image_size : {28, 32, 64}
    channels : int
    width : int
        ``ndf``: channels of the first layer.
    batchnorm : bool
        ``False`` drops the BatchNorm layers, so each logit depends on its own image only, as
        per-sample gradient penalties (WGAN-GP, R1) assume.
    init : bool
        Apply :func:`init_dcgan_weights`.

    Examples
    --------
    >>> D = dcgan_discriminator(64, channels=1, width=64)
    >>> sum(p.numel() for p in D.parameters())
    2763520
    >>> dcgan_discriminator(32, channels=3, width=8)(torch.randn(5, 3, 32, 32)).shape
    torch.Size([5, 1])
    """
    down = dcgan_sides(image_size)[::-1]
    channels, width = _positive_int("channels", channels), _positive_int("width", width)
    chans = [channels] + [width * 2 ** j for j in range(len(down) - 1)]
    layers: list[nn.Module] = []
    for j in range(1, len(down)):
        layers.append(nn.Conv2d(chans[j - 1], chans[j], _up_kernel(down[j], down[j - 1]), 2, 1, bias=False))
        if j > 1 and batchnorm:
            layers.append(nn.BatchNorm2d(chans[j]))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
    layers.append(nn.Conv2d(chans[-1], 1, 4, 1, 0, bias=False))
    D = DCGANDiscriminator(nn.Sequential(*layers), image_size=down[0], channels=channels, width=width)
    if init:
        init_dcgan_weights(D)
    return D


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN initialisation, in place: convolution and linear weights ~ N(0, 0.02), BatchNorm weights
    ~ N(1, 0.02), all biases 0.

    Call it once on the whole model (it visits every submodule in order, so with the same seed it
    draws the same numbers as pytorch/examples' ``netG.apply(weights_init)``).

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> conv = nn.Conv2d(64, 64, 4)
    >>> init_dcgan_weights(conv)
    >>> round(conv.weight.std().item(), 2), conv.bias.abs().max().item()
    (0.02, 0.0)
    """
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
                m.weight.normal_(0.0, 0.02)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._NormBase) and m.affine:
                m.weight.normal_(1.0, 0.02)
                m.bias.zero_()

# --------------------------------------------------------------------------- chapter 09: MNIST classifier


class LeNet(nn.Module):
    """A small LeNet-style CNN for 28x28 digits in ``[-1, 1]``: the course's evaluation network (chapter 09).

    Two 5x5 convolutions (``width`` and ``2 * width`` channels, each followed by ReLU and 2x2
    max pooling; optionally batch norm before the ReLU), a hidden layer of ``hidden`` units,
    and a linear layer to the class logits. ``features(x)`` returns the hidden layer (after ReLU), shape
    ``(n, hidden)``: the features of FID and precision/recall. Trained by
    :func:`ganlib.metrics.mnist_classifier`.

    Examples
    --------
    >>> net = LeNet()
    >>> x = torch.zeros(2, 1, 28, 28)
    >>> net(x).shape, net.features(x).shape
    (torch.Size([2, 10]), torch.Size([2, 128]))
    """

    def __init__(self, width: int = 16, hidden: int = 128, num_classes: int = 10, batchnorm: bool = False):
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
