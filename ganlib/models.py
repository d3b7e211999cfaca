"""The course's PyTorch networks (chapters 05-10), and a bridge from chapter 03's NumPy networks.

MLP generators and discriminators (chapters 05-07), DCGAN for 28, 32 and 64 pixels
(chapter 08), spectral normalisation and class-conditional models (chapter 10) and the LeNet
behind the image metrics (chapter 09). About 880 lines: every network of the course in one
place, so that a chapter's model and the next chapter's variant of it can be read side by side.

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


# --------------------------------------------------------------------------- minibatch standard deviation (chapter 06)


class MinibatchStdDev(nn.Module):
    """Append the batch's average standard deviation as one extra feature (Karras et al. 2018, ProGAN).

    For inputs ``(n, f)`` (or images ``(n, c, h, w)``) the layer splits the batch into groups
    of ``group_size`` samples (the whole batch when ``None``), computes each feature's standard
    deviation over the group, averages it over the features (and pixels) to one number per
    group, and appends that number to every sample of the group: ``(n, f) -> (n, f + 1)``,
    ``(n, c, h, w) -> (n, c + 1, h, w)``. A discriminator that sees it can tell a collapsed
    batch (almost no spread) from a real one, which pushes the generator towards variety.
    Unlike the other layers, each output depends on the whole group.

    Examples
    --------
    >>> layer = MinibatchStdDev()
    >>> x = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    >>> layer(x).tolist()           # std over the batch: 1 for both features
    [[0.0, 1.0, 1.0], [2.0, 3.0, 1.0]]
    >>> layer(torch.zeros(4, 3, 5, 5)).shape
    torch.Size([4, 4, 5, 5])
    """

    def __init__(self, group_size: int | None = None, eps: float = 1e-8):
        super().__init__()
        if group_size is not None and (not isinstance(group_size, int) or group_size < 2):
            raise ValueError(f"group_size must be an integer >= 2 or None (whole batch), got {group_size!r}")
        self.group_size, self.eps = group_size, float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        g = n if self.group_size is None else min(self.group_size, n)
        if n % g:
            raise ValueError(f"MinibatchStdDev: batch size {n} is not a multiple of group_size {g}")
        if g < 2:
            raise ValueError("MinibatchStdDev needs at least 2 samples per group to measure a spread")
        y = x.reshape(n // g, g, -1)                                            # (groups, g, features)
        std = (y.var(dim=1, unbiased=False) + self.eps).sqrt().mean(dim=1)     # (groups,)
        std = std.repeat_interleave(g).reshape(n, 1, *([1] * (x.dim() - 2)))
        return torch.cat([x, std.expand(n, 1, *x.shape[2:])], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}"


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

    def __init__(self, main: nn.Sequential, *, latent_dim: int, image_size: int, channels: int, width: int,
                 num_classes: int | None = None):
        super().__init__()
        self.main = main
        self.latent_dim, self.image_size, self.channels, self.width = latent_dim, image_size, channels, width
        self.num_classes = num_classes

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``G(z)``, or ``G(z, y)`` for a conditional generator (``num_classes`` set): labels ``y`` (N,) in
        ``0..num_classes-1`` are one-hot encoded and concatenated to ``z``; when omitted, the labels
        are ``0, 1, ..., num_classes - 1, 0, 1, ...`` (balanced classes, no randomness)."""
        if z.dim() == 2 and z.shape[1] == self.latent_dim:
            z = z[:, :, None, None]
        elif not (z.dim() == 4 and tuple(z.shape[1:]) == (self.latent_dim, 1, 1)):
            raise ValueError(f"DCGAN generator expects noise of shape (N, {self.latent_dim}) or "
                             f"(N, {self.latent_dim}, 1, 1), got {tuple(z.shape)}")
        if self.num_classes is None:
            if y is not None:
                raise ValueError("this DCGAN generator is unconditional (built without num_classes): call G(z)")
        else:
            y = _check_labels(y, z.shape[0], self.num_classes, z.device, default=True)
            onehot = nn.functional.one_hot(y, self.num_classes).to(z.dtype)
            z = torch.cat([z, onehot[:, :, None, None]], dim=1)
        return self.main(z)

    def extra_repr(self) -> str:
        return (f"latent_dim={self.latent_dim}, image_size={self.image_size}, channels={self.channels}, "
                f"width={self.width}" + (f", num_classes={self.num_classes}" if self.num_classes else ""))


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: images ``(N, C, S, S)`` -> logits ``(N, 1)`` (no sigmoid).

    Layers in ``self.main`` as in pytorch/examples' ``dcgan/main.py`` minus its final ``Sigmoid``:
    ganlib's losses take logits, which is the numerically stable form (chapter 02). Build it with
    :func:`dcgan_discriminator`.
    """

    def __init__(self, main: nn.Sequential, *, image_size: int, channels: int, width: int,
                 head: "ProjectionHead | None" = None):
        super().__init__()
        self.main = main
        self.image_size, self.channels, self.width = image_size, channels, width
        self.head = head
        self.num_classes = head.num_classes if head is not None else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``D(x)``, or ``D(x, y)`` for a projection discriminator (``num_classes`` set; labels required)."""
        want = (self.channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"DCGAN discriminator was built for images (N, {want[0]}, {want[1]}, {want[2]}), "
                             f"got {tuple(x.shape)}: build it with the data's image_size and channels")
        if self.head is None:
            if y is not None:
                raise ValueError("this DCGAN discriminator is unconditional (built without num_classes): call D(x)")
            return self.main(x).flatten(1)
        y = _check_labels(y, x.shape[0], self.num_classes, x.device, default=False)
        return self.head(self.main(x).flatten(1), y)

    def extra_repr(self) -> str:
        return (f"image_size={self.image_size}, channels={self.channels}, width={self.width}"
                + (f", num_classes={self.num_classes}" if self.num_classes else ""))


def _check_labels(y, n: int, num_classes: int, device, default: bool) -> torch.Tensor:
    if y is None:
        if not default:
            raise ValueError(f"this discriminator is conditional ({num_classes} classes): call D(x, y) with labels "
                             "y of shape (N,)")
        return torch.arange(n, device=device) % num_classes
    y = torch.as_tensor(y, device=device)
    if y.shape != (n,) or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"labels must be integers of shape ({n},), one per sample, got {y.dtype} {tuple(y.shape)}")
    if n and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got values from {int(y.min())} to {int(y.max())}")
    return y.long()


def dcgan_generator(image_size: int = 64, channels: int = 1, latent_dim: int = 100, width: int = 64,
                    *, init: bool = True, num_classes: int | None = None) -> DCGANGenerator:
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
    num_classes : int, optional
        A class-conditional generator ``G(z, y)`` (chapter 10): the one-hot label is concatenated
        to ``z``, so the first layer has ``latent_dim + num_classes`` input channels (Mirza &
        Osindero 2014).

    Examples
    --------
    >>> G = dcgan_generator(64, channels=1, latent_dim=100, width=64)
    >>> sum(p.numel() for p in G.parameters())
    3574656
    >>> dcgan_generator(28, width=8)(torch.randn(2, 100)).shape
    torch.Size([2, 1, 28, 28])
    >>> dcgan_generator(28, width=8, num_classes=10)(torch.randn(2, 100), torch.tensor([3, 7])).shape
    torch.Size([2, 1, 28, 28])
    """
    sides = dcgan_sides(image_size)
    channels, latent_dim, width = (_positive_int(n, v) for n, v in
                                   (("channels", channels), ("latent_dim", latent_dim), ("width", width)))
    n_up = len(sides) - 1
    chans = [width * 2 ** (n_up - 1 - i) for i in range(n_up)] + [channels]
    num_classes = None if num_classes is None else _positive_int("num_classes", num_classes)
    layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim + (num_classes or 0), chans[0], 4, 1, 0, bias=False),
                               nn.BatchNorm2d(chans[0]), nn.ReLU(True)]
    for i in range(1, n_up + 1):
        layers.append(nn.ConvTranspose2d(chans[i - 1], chans[i], _up_kernel(sides[i - 1], sides[i]), 2, 1,
                                         bias=False))
        layers += [nn.BatchNorm2d(chans[i]), nn.ReLU(True)] if i < n_up else [nn.Tanh()]
    G = DCGANGenerator(nn.Sequential(*layers), latent_dim=latent_dim, image_size=sides[-1], channels=channels,
                       width=width, num_classes=num_classes)
    if init:
        init_dcgan_weights(G)
    return G


def dcgan_discriminator(image_size: int = 64, channels: int = 1, width: int = 64, *, batchnorm: bool = True,
                        init: bool = True, norm: str | None = None, spectral_norm: bool = False,
                        num_classes: int | None = None) -> DCGANDiscriminator:
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
    norm : {"batch", "layer", "instance", "none"}, optional
        The normalisation after each convolution but the first (chapter 10). "layer" normalises
        each image over its channels and pixels (``GroupNorm(1, C)``), "instance" each channel of
        each image: both per sample, as WGAN-GP's critic needs. Default: "batch" when
        ``batchnorm`` and not ``spectral_norm``, else "none".
    spectral_norm : bool
        Spectrally normalise every convolution (and the projection head) with
        :func:`add_spectral_norm` (Miyato et al. 2018).
    num_classes : int, optional
        A projection discriminator ``D(x, y)`` (Miyato & Koyama 2018): the last 4x4 map is
        flattened into features ``phi`` and :class:`ProjectionHead` gives
        ``psi(phi) + <embed(y), phi>``; ``psi`` takes the place of the last 4x4 convolution.

    Examples
    --------
    >>> D = dcgan_discriminator(64, channels=1, width=64)
    >>> sum(p.numel() for p in D.parameters())
    2763520
    >>> dcgan_discriminator(32, channels=3, width=8)(torch.randn(5, 3, 32, 32)).shape
    torch.Size([5, 1])
    >>> D = dcgan_discriminator(28, width=8, spectral_norm=True, num_classes=10)
    >>> D(torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 9])).shape
    torch.Size([4, 1])
    """
    down = dcgan_sides(image_size)[::-1]
    channels, width = _positive_int("channels", channels), _positive_int("width", width)
    if norm is None:
        norm = "batch" if batchnorm and not spectral_norm else "none"
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of {sorted(_NORMS)}, got {norm!r}")
    num_classes = None if num_classes is None else _positive_int("num_classes", num_classes)
    chans = [channels] + [width * 2 ** j for j in range(len(down) - 1)]
    layers: list[nn.Module] = []
    for j in range(1, len(down)):
        layers.append(nn.Conv2d(chans[j - 1], chans[j], _up_kernel(down[j], down[j - 1]), 2, 1, bias=False))
        if j > 1 and norm != "none":
            layers.append(_NORMS[norm](chans[j]))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
    head = None
    if num_classes is None:
        layers.append(nn.Conv2d(chans[-1], 1, 4, 1, 0, bias=False))
    else:
        head = ProjectionHead(chans[-1] * 16, num_classes)
    D = DCGANDiscriminator(nn.Sequential(*layers), image_size=down[0], channels=channels, width=width, head=head)
    if init:
        init_dcgan_weights(D)
    if spectral_norm:
        for m in list(D.modules()):
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
                add_spectral_norm(m)
    return D


_NORMS = {"batch": nn.BatchNorm2d, "layer": lambda c: nn.GroupNorm(1, c),
          "instance": lambda c: nn.InstanceNorm2d(c, affine=True), "none": None}


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


# ---------------------------------------------------------------------------------------------
# Spectral normalisation (chapter 10)
# ---------------------------------------------------------------------------------------------
# Miyato, Kataoka, Koyama & Yoshida (ICLR 2018): divide each weight matrix by an estimate of its
# largest singular value, so every layer is 1-Lipschitz (for the reshaped matrix; see
# conv_operator_norm for what that means for a convolution). The estimate is one step of power
# iteration per forward pass in training mode, continuing from the previous step's vectors.

__all__ += ["power_iteration", "weight_matrix", "SpectralNorm", "add_spectral_norm", "conv_operator_norm",
            "ProjectionHead"]


def _normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return x / x.norm().clamp_min(eps)


def power_iteration(W: torch.Tensor, v: torch.Tensor, n_iter: int = 1, eps: float = 1e-12
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Estimate the largest singular value of a matrix ``W`` (m, n) by power iteration.

    One step: ``u = W v / ||W v||``, then ``v = W^T u / ||W^T u||``; the estimate is
    ``sigma = u^T W v``. ``v`` converges to the top right singular vector at a rate
    ``(sigma_2 / sigma_1)^2`` per step, ``sigma`` from below. This is the order torch's
    ``spectral_norm`` uses (u first, from the previous v).

    Parameters
    ----------
    W : Tensor (m, n)
    v : Tensor (n,)
        Starting right vector (any non-zero vector; normalised here).
    n_iter : int
        Number of steps (at least 1).

    Returns
    -------
    sigma : Tensor ()
    u : Tensor (m,), unit norm
    v : Tensor (n,), unit norm

    Examples
    --------
    >>> W = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    >>> sigma, u, v = power_iteration(W, torch.tensor([1.0, 1.0]), n_iter=20)
    >>> round(sigma.item(), 6), [round(a, 3) for a in v.abs().tolist()]
    (3.0, [1.0, 0.0])
    """
    if W.dim() != 2:
        raise ValueError(f"power_iteration needs a matrix (m, n), got shape {tuple(W.shape)}; "
                         "reshape a conv weight with weight_matrix(w) first")
    if v.shape != (W.shape[1],):
        raise ValueError(f"v must have shape ({W.shape[1]},) for W of shape {tuple(W.shape)}, got {tuple(v.shape)}")
    n_iter = _positive_int("n_iter", n_iter)
    with torch.no_grad():
        v = _normalize(v, eps)
        for _ in range(n_iter):
            u = _normalize(W @ v, eps)
            v = _normalize(W.T @ u, eps)
    return u @ (W @ v), u, v


def weight_matrix(weight: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """A layer's weight as the matrix spectral normalisation divides: axis ``dim`` first, the rest flattened.

    ``nn.Linear`` (out, in) stays as it is; ``nn.Conv2d`` (out, in, kh, kw) becomes
    (out, in * kh * kw), the matrix each output pixel applies to its input patch;
    ``nn.ConvTranspose2d`` stores (in, out, kh, kw) and uses ``dim=1`` (out first), as torch does.

    Examples
    --------
    >>> weight_matrix(torch.zeros(8, 3, 4, 4)).shape, weight_matrix(torch.zeros(8, 3, 4, 4), dim=1).shape
    (torch.Size([8, 48]), torch.Size([3, 128]))
    """
    if weight.dim() < 2:
        raise ValueError(f"a weight matrix needs at least 2 axes, got shape {tuple(weight.shape)}")
    if dim != 0:
        weight = weight.permute(dim, *(d for d in range(weight.dim()) if d != dim))
    return weight.flatten(1)


class SpectralNorm(nn.Module):
    """A parametrization ``W -> W / sigma(W)``, with ``sigma`` estimated by power iteration (Miyato et al. 2018).

    Register it with :func:`add_spectral_norm`. It keeps the unit vectors ``u`` and ``v`` as
    buffers; in training mode each forward pass runs ``n_power_iterations`` steps of
    :func:`power_iteration` from the stored ``v`` and stores the new vectors (no gradient flows
    through them); in eval mode the vectors stay fixed. ``sigma = u^T W v`` is differentiated
    through ``W``.

    Built to match ``torch.nn.utils.parametrizations.spectral_norm`` step for step: the same
    start (``u`` then ``v`` drawn from ``N(0, I)`` with torch's global generator, normalised, then
    15 warm-up steps), the same update order and the same ``eps``. With the same seed both give
    the same weights (tested).
    """

    def __init__(self, weight: torch.Tensor, n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12):
        super().__init__()
        self.n_power_iterations = _positive_int("n_power_iterations", n_power_iterations)
        self.dim, self.eps = dim, eps
        W = weight_matrix(weight.detach(), dim)
        u = W.new_empty(W.shape[0]).normal_(0, 1)
        v = W.new_empty(W.shape[1]).normal_(0, 1)
        self.register_buffer("_u", _normalize(u, eps))
        self.register_buffer("_v", _normalize(v, eps))
        self._step(W, 15)

    @torch.no_grad()
    def _step(self, W: torch.Tensor, n: int) -> None:
        _, u, v = power_iteration(W, self._v, n, self.eps)
        self._u.copy_(u)
        self._v.copy_(v)

    def estimate(self, weight: torch.Tensor) -> torch.Tensor:
        """``u^T W v`` with the stored vectors (no update)."""
        W = weight_matrix(weight, self.dim)
        return self._u @ (W @ self._v)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        W = weight_matrix(weight, self.dim)
        if self.training:
            self._step(W.detach(), self.n_power_iterations)
        u, v = self._u.clone(), self._v.clone()  # later in-place updates must not touch this graph
        return weight / (u @ (W @ v))

    def right_inverse(self, value: torch.Tensor) -> torch.Tensor:
        return value


def add_spectral_norm(module: nn.Module, n_power_iterations: int = 1, eps: float = 1e-12) -> nn.Module:
    """Spectrally normalise ``module.weight`` in place with :class:`SpectralNorm`; returns the module.

    The axis that counts as "output" is 0, except for transposed convolutions (1), as in torch.
    The raw weight lives on as ``module.parametrizations.weight.original``.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> lin = add_spectral_norm(nn.Linear(20, 10))
    >>> for _ in range(30): _ = lin(torch.zeros(1, 20))   # each training-mode call: one more step
    >>> s = torch.linalg.matrix_norm(lin.weight.detach(), ord=2).item()
    >>> abs(s - 1) < 1e-3
    True
    """
    from torch.nn.utils import parametrize

    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() < 2:
        raise ValueError(f"add_spectral_norm needs a layer with a weight matrix or kernel, got {type(module).__name__}")
    dim = 1 if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)) else 0
    parametrize.register_parametrization(module, "weight", SpectralNorm(weight, n_power_iterations, dim, eps))
    return module


def conv_operator_norm(weight: torch.Tensor, input_shape: tuple[int, int, int], stride: int = 1, padding: int = 0,
                       n_iter: int = 100, seed: int = 0) -> float:
    """The operator norm ``max ||conv(x)|| / ||x||`` of a convolution on inputs of ``input_shape`` (C, H, W).

    Power iteration on the linear map itself: ``conv2d`` and its adjoint ``conv_transpose2d``
    (no bias). Spectral normalisation bounds the reshaped matrix's ``sigma``
    (:func:`weight_matrix`) instead. Each output pixel applies that matrix to one input patch,
    so ``sigma <= operator norm <= sqrt(c) * sigma``, where ``c`` is the most patches that
    share one input pixel (``ceil(k / s)^2`` for a k x k kernel with stride s).

    Examples
    --------
    >>> w = torch.zeros(1, 1, 3, 3); w[0, 0, 1, 1] = 2.0        # a scaled identity
    >>> round(conv_operator_norm(w, (1, 8, 8), padding=1), 4)
    2.0
    """
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(int(seed))
    x = torch.randn(1, *input_shape, generator=gen, dtype=weight.dtype).to(weight.device)
    with torch.no_grad():
        x = _normalize(x)
        out_pad = None
        for _ in range(_positive_int("n_iter", n_iter)):
            y = F.conv2d(x, weight, stride=stride, padding=padding)
            if out_pad is None:  # the adjoint must give back the input's shape exactly
                full = F.conv_transpose2d(y, weight, stride=stride, padding=padding)
                out_pad = (input_shape[1] - full.shape[2], input_shape[2] - full.shape[3])
            x = _normalize(F.conv_transpose2d(y, weight, stride=stride, padding=padding, output_padding=out_pad))
        return float(F.conv2d(x, weight, stride=stride, padding=padding).norm())


class ProjectionHead(nn.Module):
    """The projection discriminator's output (Miyato & Koyama, ICLR 2018): ``psi(phi) + <embed(y), phi>``.

    ``phi`` (N, F) are D's features of an image, ``psi`` a linear map to one number, and
    ``embed(y)`` a learned vector per class. The class enters as an inner product with the
    features, the form the log-density ratio takes when ``p(y | x)`` is a log-linear model.

    Examples
    --------
    >>> head = ProjectionHead(4, num_classes=3)
    >>> head(torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])).shape
    torch.Size([5, 1])
    """

    def __init__(self, features: int, num_classes: int, spectral_norm: bool = False):
        super().__init__()
        self.linear = nn.Linear(features, 1)
        self.embed = nn.Embedding(num_classes, features)
        self.num_classes = num_classes
        with torch.no_grad():
            self.embed.weight.normal_(0.0, 0.02)
        if spectral_norm:
            add_spectral_norm(self.linear)
            add_spectral_norm(self.embed)

    def forward(self, phi: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.linear(phi) + (self.embed(y) * phi).sum(dim=1, keepdim=True)
