"""Chapter 08, DCGAN: graded questions.

Answers are PyTorch code. Sizes are compared with ``nn.ConvTranspose2d`` through
:func:`ganlib.models.conv_transpose_output_size` on a batch of random settings; modules are
graded by output shapes, parameter counts, layer hyperparameters and forward passes against a
functional reference or ganlib's builder with the learner's weights copied in; the
initialisation by sample statistics with tolerances derived from the sample size (5 standard
errors), so a correct answer fails with negligible probability.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganlib import models
from ganlib.grading import CheckFailed, expect_close, question


def _seed_torch(rng: np.random.Generator) -> None:
    torch.manual_seed(int(rng.integers(2**31)))


def _module(value, what: str) -> nn.Module:
    if value is None:
        raise CheckFailed(f"{what} returned None: did you forget a `return` statement?")
    if not isinstance(value, nn.Module):
        raise CheckFailed(f"{what} should return a torch.nn.Module (e.g. nn.Sequential(...)), got {type(value).__name__}")
    return value


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _forward(module: nn.Module, x: torch.Tensor, what: str) -> torch.Tensor:
    try:
        out = module(x)
    except RuntimeError as exc:  # shape mismatches inside the learner's stack
        raise CheckFailed(f"{what} fails on an input of shape {tuple(x.shape)}: {str(exc).splitlines()[0]}") from None
    if not isinstance(out, torch.Tensor):
        raise CheckFailed(f"{what} should return a tensor, got {type(out).__name__}")
    return out


# --------------------------------------------------------------------------- Q1 transposed-conv size


def _settings(rng: np.random.Generator, n: int = 40) -> list[tuple[int, int, int, int, int]]:
    out = [(1, 4, 1, 0, 0), (4, 4, 2, 1, 0), (4, 3, 2, 1, 0), (7, 4, 2, 1, 0), (3, 3, 2, 0, 1)]
    while len(out) < n:
        size, kernel, stride = int(rng.integers(1, 12)), int(rng.integers(1, 7)), int(rng.integers(1, 5))
        padding, op = int(rng.integers(0, 3)), int(rng.integers(0, stride))
        if (size - 1) * stride - 2 * padding + kernel + op >= 1:
            out.append((size, kernel, stride, padding, op))
    return out


@question("q1", "output size of a transposed convolution", 2, needs=["conv_transpose_output_size"])
def check_q1(rng, conv_transpose_output_size):
    cases = _settings(rng)
    got = []
    for s, k, st, p, op in cases:
        v = conv_transpose_output_size(s, k, st, p, op) if op else conv_transpose_output_size(s, k, st, p)
        if v is None:
            raise CheckFailed("conv_transpose_output_size returned None: did you forget a `return` statement?")
        if isinstance(v, torch.Tensor):
            v = v.item()
        try:
            whole = float(v) == int(v)
        except (TypeError, ValueError):
            raise CheckFailed(f"conv_transpose_output_size should return an int, got {type(v).__name__}") from None
        if not whole:
            raise CheckFailed(f"conv_transpose_output_size{(s, k, st, p, op)} = {v}: a side is a whole number of "
                              f"pixels; the transposed convolution's formula has no division.")
        got.append(float(v))
    c = np.array(cases, dtype=float).T
    s, k, st, p, op = c
    want = [models.conv_transpose_output_size(*case) for case in cases]
    expect_close(np.array(got), np.array(want, dtype=float), "conv_transpose_output_size on 40 settings", wrong={
        "that is the formula of an ordinary convolution, which shrinks the image; the transposed one runs it "
        "backwards: (size - 1) * stride - 2 * padding + kernel + output_padding.":
            np.floor((s + 2 * p - k) / st) + 1,
        "the size input pixels paint patches that start stride apart, so the last one starts at "
        "(size - 1) * stride, not size * stride.": s * st - 2 * p + k + op,
        "padding crops the output (it is the padding of the convolution this one reverses): subtract 2 * padding.":
            (s - 1) * st + 2 * p + k + op,
        "padding is cropped on both sides: subtract 2 * padding, not padding.": (s - 1) * st - p + k + op,
        "output_padding is missing: it adds that many pixels to one side of the output.": (s - 1) * st - 2 * p + k,
        "off by one: a kernel of width k covers dilation * (k - 1) + 1 = k pixels, so the term is + kernel.":
            (s - 1) * st - 2 * p + (k - 1) + op,
    })


# --------------------------------------------------------------------------- Q2 a generator block


@question("q2", "a DCGAN generator block that doubles the side", 2, needs=["generator_block"])
def check_q2(rng, generator_block):
    _seed_torch(rng)
    cin, cout = (int(v) for v in rng.choice(np.arange(3, 13), size=2, replace=False))
    n, h = int(rng.integers(4, 9)), int(rng.integers(5, 10))     # h >= 5: 2h, 2h - 1, 2h + 2, h + 3 all differ
    block = _module(generator_block(cin, cout), f"generator_block({cin}, {cout})")
    block.train()
    x = torch.randn(n, cin, h, h)
    what = f"generator_block({cin}, {cout}) on an input of shape {tuple(x.shape)}"
    with torch.no_grad():
        y = _forward(block, x, what)
    want_shape = (n, cout, 2 * h, 2 * h)
    if tuple(y.shape) != want_shape:
        side = y.shape[-1] if y.dim() == 4 else None
        hints = {h // 2: "the side halved: that is nn.Conv2d; the generator upsamples with nn.ConvTranspose2d.",
                 (h - 1) // 2 + 1: "the side halved: that is nn.Conv2d; the generator upsamples with nn.ConvTranspose2d.",
                 2 * h - 1: "kernel 3 gives 2h - 1: with stride 2 and padding 1, kernel 4 doubles the side exactly, "
                            "(h - 1) * 2 - 2 + 4 = 2h.",
                 2 * h + 2: "padding 0 adds two pixels: padding=1 crops one on each side, (h - 1) * 2 - 2 + 4 = 2h.",
                 h + 3: "stride 1 only adds kernel - 1 pixels: stride 2 doubles the side."}
        hint = hints.get(side, "with kernel 4, stride 2 and padding 1 the side becomes (h - 1) * 2 - 2 + 4 = 2h.")
        if side == 2 * h and y.dim() == 4 and y.shape[1] != cout:
            hint = "the number of output channels should be out_channels."
        raise CheckFailed(f"{what} should give shape {want_shape}, got {tuple(y.shape)}: {hint}")
    mods = list(block.modules())
    convs = [m for m in mods if isinstance(m, nn.ConvTranspose2d)]
    bns = [m for m in mods if isinstance(m, nn.BatchNorm2d)]
    if len(convs) != 1:
        raise CheckFailed(f"the block should hold exactly one nn.ConvTranspose2d, found {len(convs)}.")
    if not bns:
        raise CheckFailed("nn.BatchNorm2d(out_channels) is missing: in DCGAN every generator layer but the output one "
                          "is followed by BatchNorm.")
    want_params = cin * cout * 16 + 2 * cout
    got_params = _count(block)
    if got_params != want_params:
        if convs[0].bias is not None:
            raise CheckFailed(f"{got_params} parameters instead of {want_params}: the convolution's bias is redundant "
                              f"before BatchNorm, which subtracts the mean and adds its own shift; use bias=False.")
        raise CheckFailed(f"{got_params} parameters, expected {want_params} = {cin} * {cout} * 4 * 4 (kernel) + "
                          f"2 * {cout} (BatchNorm's scale and shift).")
    if float(y.min()) < 0:
        if any(isinstance(m, nn.LeakyReLU) for m in mods):
            raise CheckFailed("that is LeakyReLU: the DCGAN generator uses ReLU (LeakyReLU belongs to the discriminator).")
        if any(isinstance(m, nn.Tanh) for m in mods):
            raise CheckFailed("tanh belongs to the generator's output layer only; hidden blocks use ReLU.")
        raise CheckFailed("the output has negative values: the block should end with ReLU, in the order "
                          "ConvTranspose2d -> BatchNorm2d -> ReLU.")
    conv, bn = convs[0], bns[0]
    if (conv.kernel_size, conv.stride, conv.padding, conv.output_padding, conv.dilation) != ((4, 4), (2, 2), (1, 1),
                                                                                         (0, 0), (1, 1)):
        raise CheckFailed(f"the transposed convolution has kernel {conv.kernel_size}, stride {conv.stride}, padding "
                          f"{conv.padding}, output_padding {conv.output_padding}, dilation {conv.dilation}: DCGAN's "
                          f"doubling step is kernel 4, stride 2, padding 1 (and no output_padding or dilation).")
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_(0.0, 0.5)
        y = block(x)
        ref = F.relu(F.batch_norm(F.conv_transpose2d(x, conv.weight, stride=2, padding=1), None, None,
                                  bn.weight, bn.bias, training=True, eps=bn.eps))
    expect_close(y.double().numpy(), ref.double().numpy(), "the block's output (against ConvTranspose2d -> "
                 "BatchNorm2d in training mode -> ReLU with your weights)", rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- Q3 the initialisation

_SENTINEL = 7.0


def _z_tol(std: float, n: int, z: float = 5.0) -> tuple[float, float]:
    """Tolerances of the sample mean and sample std of ``n`` draws of N(., std^2): z standard errors."""
    return z * std / math.sqrt(n), z * std / math.sqrt(2 * (n - 1))


def _init_target(rng: np.random.Generator) -> nn.Module:
    width = int(rng.integers(24, 33))
    net = nn.ModuleList([models.dcgan_generator(28, 1, latent_dim=int(rng.integers(16, 40)), width=width, init=False),
                         models.dcgan_discriminator(28, 1, width=width, init=False),
                         nn.Conv2d(3, width, 3, padding=1, bias=True)])
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(_SENTINEL)
    return net


@question("q3", "DCGAN weight initialisation", 2, needs=["init_weights"])
def check_q3(rng, init_weights):
    _seed_torch(rng)
    net = _init_target(rng)
    try:
        init_weights(net)
    except AttributeError as exc:
        if "NoneType" in str(exc):
            raise CheckFailed("DCGAN's convolutions have no bias (m.bias is None): zero a bias only "
                              "`if m.bias is not None`.") from None
        raise
    convs = [m for m in net.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    untouched = [m for m in convs + bns if bool((m.weight == _SENTINEL).all())]
    if len(untouched) == len(convs) + len(bns):
        raise CheckFailed("nothing changed: init_weights(model) must visit every layer inside the model "
                          "(for m in model.modules(): ...). A function written for model.apply(fn) only "
                          "handles the one module it is given.")
    if untouched:
        kinds = sorted({type(m).__name__ for m in untouched})
        hints = {"ConvTranspose2d": "nn.ConvTranspose2d is not a subclass of nn.Conv2d: test "
                                    "isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)).",
                 "BatchNorm2d": "BatchNorm weights are drawn from N(1, 0.02) too."}
        hint = " ".join(hints[k] for k in kinds if k in hints)
        raise CheckFailed(f"some layers were not initialised ({', '.join(kinds)}): every convolution, transposed "
                          f"convolution and BatchNorm layer must be. {hint}".strip())
    w = torch.cat([m.weight.detach().flatten() for m in convs]).double()
    tol_m, tol_s = _z_tol(0.02, w.numel())
    mean, std = float(w.mean()), float(w.std())
    if abs(mean) > tol_m or abs(std - 0.02) > tol_s:
        if abs(std - math.sqrt(0.02)) < 0.1 * math.sqrt(0.02):
            raise CheckFailed(f"convolution weights have std {std:.3f} = sqrt(0.02): 0.02 is the standard "
                              f"deviation, not the variance (normal_(0.0, 0.02)).")
        if float(w.abs().max()) <= 0.02 + 1e-6 and abs(std - 0.02 / math.sqrt(3)) < 0.1 * 0.02:
            raise CheckFailed("these weights are uniform on [-0.02, 0.02]: DCGAN draws them from a normal "
                              "distribution N(0, 0.02) (nn.init.normal_ or .normal_).")
        if std < 1e-12:
            raise CheckFailed(f"every convolution weight is {mean:g}: draw them at random from N(0, 0.02), "
                              f"a constant would make all filters identical.")
        raise CheckFailed(f"convolution weights should look like N(0, 0.02): sample mean {mean:.5f} (allowed "
                          f"+-{tol_m:.5f}), std {std:.5f} (allowed 0.02 +- {tol_s:.5f}).")
    biases = [m.bias for m in convs + bns if m.bias is not None]
    if any(float(b.detach().abs().max()) != 0 for b in biases):
        raise CheckFailed("biases (of the convolution that has one, and BatchNorm's shift) start at exactly 0.")
    g = torch.cat([m.weight.detach() for m in bns]).double()
    tol_m, tol_s = _z_tol(0.02, g.numel())
    mean, std = float(g.mean()), float(g.std())
    if abs(mean - 1) > tol_m or abs(std - 0.02) > tol_s:
        if abs(mean) < 0.1:
            raise CheckFailed("BatchNorm weights (the scale gamma) are centred on 0: DCGAN draws them from "
                              "N(1, 0.02); a scale near 0 would all but switch every channel off.")
        if std < 1e-12:
            raise CheckFailed(f"every BatchNorm weight is {mean:g}: draw them from N(1, 0.02) as the DCGAN "
                              f"reference does.")
        raise CheckFailed(f"BatchNorm weights should look like N(1, 0.02): sample mean {mean:.4f}, std {std:.5f}.")


# --------------------------------------------------------------------------- Q4 D's stack for a size


def _layer_hint(got: nn.Module, ref: nn.Module, size: int) -> str | None:
    """A specific hint from comparing the learner's layers with ganlib's, or None."""
    layers = [m for m in got.modules() if not list(m.children())]
    ref_layers = list(ref)
    if any(isinstance(m, nn.Sigmoid) for m in layers):
        return "no sigmoid at the end: the discriminator returns logits (ganlib's losses apply the sigmoid stably)."
    if any(isinstance(m, nn.ReLU) for m in layers):
        return "the discriminator uses LeakyReLU(0.2), not ReLU (ReLU is the generator's)."
    slopes = {m.negative_slope for m in layers if isinstance(m, nn.LeakyReLU)}
    if slopes and slopes != {0.2}:
        return f"LeakyReLU's negative slope should be 0.2, got {sorted(slopes)}."
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    if any(m.bias is not None for m in convs):
        return "bias=False in every convolution (BatchNorm's shift replaces it; the reference has none anywhere)."
    if len(layers) > 1 and isinstance(layers[1], nn.BatchNorm2d):
        return "no BatchNorm after D's input layer (Radford et al.: not on G's output nor D's input)."
    if sum(isinstance(m, nn.BatchNorm2d) for m in layers) < sum(isinstance(m, nn.BatchNorm2d) for m in ref_layers):
        return "BatchNorm2d is missing after some hidden convolutions: every one but the first and the last has it."
    ref_convs = [m for m in ref_layers if isinstance(m, nn.Conv2d)]
    if len(convs) != len(ref_convs):
        return (f"{len(convs)} convolutions, expected {len(ref_convs)} for {size} pixels: one stride-2 step per halving "
                f"of the side down to 4x4 ({' -> '.join(map(str, models.dcgan_sides(size)[::-1]))}), then one "
                f"4x4 convolution to a single logit.")
    for i, (a, b) in enumerate(zip(convs, ref_convs)):
        if (a.in_channels, a.out_channels) != (b.in_channels, b.out_channels):
            return (f"convolution {i + 1} maps {a.in_channels} -> {a.out_channels} channels, expected "
                    f"{b.in_channels} -> {b.out_channels}: start at width and double at each step.")
        if (a.kernel_size, a.stride, a.padding) != (b.kernel_size, b.stride, b.padding):
            extra = " (7 -> 4 needs kernel 3: kernel 4 would give 3)" if b.kernel_size == (3, 3) else ""
            if i == len(convs) - 1:
                extra = " (the last convolution turns the 4x4 map into a 1x1 map: one logit per image)"
            return (f"convolution {i + 1} has kernel {a.kernel_size[0]}, stride {a.stride[0]}, padding "
                    f"{a.padding[0]}; expected kernel {b.kernel_size[0]}, stride {b.stride[0]}, padding "
                    f"{b.padding[0]}{extra}.")
    return None


@question("q4", "the discriminator's layer stack for 28, 32 and 64 pixels", 3, needs=["discriminator_stack"])
def check_q4(rng, discriminator_stack):
    for size in (28, 32, 64):
        _seed_torch(rng)
        channels, width, n = int(rng.choice([1, 3])), int(rng.integers(2, 7)), int(rng.integers(3, 7))
        what = f"discriminator_stack({size}, {channels}, {width})"
        got = _module(discriminator_stack(size, channels, width), what)
        ref = models.dcgan_discriminator(size, channels, width).main
        got.train()
        x = torch.randn(n, channels, size, size)
        try:
            with torch.no_grad():
                out = got(x)
        except RuntimeError as exc:
            hint = _layer_hint(got, ref, size)
            raise CheckFailed(f"{what} fails on images of shape {tuple(x.shape)}"
                              + (f": {hint}" if hint else f": {str(exc).splitlines()[0]}")) from None
        if not isinstance(out, torch.Tensor) or out.numel() != n:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            hint = _layer_hint(got, ref, size) or (
                "the stack should end with a 1x1 map, one logit per image: a last convolution with kernel 4, "
                "stride 1, padding 0 and one output channel turns the 4x4 map into 1x1.")
            raise CheckFailed(f"{what} gives shape {shape} on {n} images, expected (n, 1, 1, 1): {hint}")
        hint = _layer_hint(got, ref, size)
        if hint:
            raise CheckFailed(f"{what}: {hint}")
        if _count(got) != _count(ref):
            raise CheckFailed(f"{what} has {_count(got)} parameters, expected {_count(ref)}.")
        if [tuple(p.shape) for p in got.parameters()] != [tuple(p.shape) for p in ref.parameters()]:
            raise CheckFailed(f"{what}: the parameters come in another order than Conv -> (BatchNorm) -> LeakyReLU "
                              f"layer by layer.")
        with torch.no_grad():
            for p, q in zip(ref.parameters(), got.parameters()):
                p.copy_(q)
            expect_close(got(x).reshape(n, 1).double().numpy(), ref(x).reshape(n, 1).double().numpy(),
                         f"{what}'s logits (against ganlib's stack with your weights)", rtol=1e-4, atol=1e-5)


QUESTIONS = [check_q1, check_q2, check_q3, check_q4]
