"""ganlib.models, DCGAN: shapes for every size, the reference architecture layer for layer,
transposed-convolution arithmetic, initialisation statistics, bfloat16 autocast and channels_last."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from ganlib import models


# --- An independent reference: pytorch/examples' dcgan/main.py networks, written out by hand ---------
def reference_generator(nz=100, ngf=64, nc=1):
    return nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())


def reference_discriminator(ndf=64, nc=1):
    return nn.Sequential(                      # the reference ends with nn.Sigmoid(); ganlib returns logits
        nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False))


def reference_weights_init(m):                 # the reference's per-class-name rule, applied with .apply
    name = m.__class__.__name__
    if "Conv" in name:
        m.weight.data.normal_(0.0, 0.02)
    elif "BatchNorm" in name:
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.fill_(0)


def describe(layer):
    """Type and every hyperparameter that shapes a layer's computation."""
    keys = ["in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding", "dilation",
            "groups", "num_features", "eps", "momentum", "affine", "negative_slope", "inplace"]
    d = {k: getattr(layer, k) for k in keys if hasattr(layer, k)}
    if hasattr(layer, "bias") and isinstance(layer, nn.modules.conv._ConvNd):
        d["bias"] = layer.bias is not None
    return type(layer), d, [tuple(p.shape) for p in layer.parameters()]


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_reference_parameter_counts():
    G = models.dcgan_generator(64, channels=1, latent_dim=100, width=64)
    D = models.dcgan_discriminator(64, channels=1, width=64)
    assert n_params(G) == 3_574_656 and n_params(D) == 2_763_520
    assert n_params(reference_generator()) == 3_574_656 and n_params(reference_discriminator()) == 2_763_520
    # closed form: conv weights in*out*k*k, BatchNorm 2 per channel
    g = 100 * 512 * 16 + 512 * 256 * 16 + 256 * 128 * 16 + 128 * 64 * 16 + 64 * 1 * 16 + 2 * (512 + 256 + 128 + 64)
    d = 1 * 64 * 16 + 64 * 128 * 16 + 128 * 256 * 16 + 256 * 512 * 16 + 512 * 16 + 2 * (128 + 256 + 512)
    assert (g, d) == (3_574_656, 2_763_520)


@pytest.mark.parametrize("nc", [1, 3])
def test_layer_for_layer_equal_to_the_reference(nc):
    G = models.dcgan_generator(64, channels=nc, latent_dim=100, width=64)
    D = models.dcgan_discriminator(64, channels=nc, width=64)
    for ours, ref in ((G.main, reference_generator(nc=nc)), (D.main, reference_discriminator(nc=nc))):
        assert len(ours) == len(ref)
        for a, b in zip(ours, ref):
            assert describe(a) == describe(b)
    assert not any(isinstance(m, nn.Sigmoid) for m in D.modules())
    # same state-dict keys and shapes: a reference checkpoint loads as it is
    ref_g = nn.Module()
    ref_g.main = reference_generator(nc=nc)
    G.load_state_dict(ref_g.state_dict())


def test_same_seed_same_weights_as_the_reference():
    """Building and initialising in the reference's order draws the same random numbers."""
    torch.manual_seed(7)
    ref_g = reference_generator()
    ref_g.apply(reference_weights_init)
    ref_d = reference_discriminator()
    ref_d.apply(reference_weights_init)
    torch.manual_seed(7)
    G, D = models.dcgan_generator(64), models.dcgan_discriminator(64)
    for ours, ref in ((G.main, ref_g), (D.main, ref_d)):
        for a, b in zip(ours.state_dict().values(), ref.state_dict().values()):
            assert torch.equal(a, b)
    z = torch.randn(3, 100, 1, 1)
    x = torch.rand(3, 1, 64, 64) * 2 - 1
    assert torch.equal(G(z), ref_g(z)) and torch.equal(D(x), ref_d(x).view(-1, 1))
    assert torch.equal(G(z.flatten(1)), G(z))          # (N, nz) and (N, nz, 1, 1) both accepted


# intermediate feature-map sides, written out by hand for each size
G_SIDES = {28: [4, 7, 14, 28], 32: [4, 8, 16, 32], 64: [4, 8, 16, 32, 64]}


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("nc", [1, 3])
def test_shapes_for_every_size_and_channel_count(size, nc):
    torch.manual_seed(0)
    width, nz, n = 8, 16, 4
    G = models.dcgan_generator(size, channels=nc, latent_dim=nz, width=width)
    D = models.dcgan_discriminator(size, channels=nc, width=width)
    x = G(torch.randn(n, nz))
    assert x.shape == (n, nc, size, size) and x.abs().max() < 1
    logits = D(x)
    assert logits.shape == (n, 1) and logits.dtype == torch.float32
    # every transposed convolution's output side and channel count
    sides, h = [], torch.randn(n, nz, 1, 1)
    for layer in G.main:
        h = layer(h)
        if isinstance(layer, nn.ConvTranspose2d):
            sides.append((h.shape[1], h.shape[-1]))
    k = len(G_SIDES[size]) - 1
    assert sides == [(width * 2 ** (k - 1 - i), s) for i, s in enumerate(G_SIDES[size][:-1])] + [(nc, size)]
    d_sides, h = [], x
    for layer in D.main:
        h = layer(h)
        if isinstance(layer, nn.Conv2d):
            d_sides.append(h.shape[-1])
    assert d_sides == G_SIDES[size][::-1][1:] + [1]
    assert models.dcgan_sides(size) == G_SIDES[size]
    # DCGAN rules: BatchNorm everywhere but G's output and D's input layer; tanh out; LeakyReLU(0.2) in D
    assert isinstance(G.main[-1], nn.Tanh) and isinstance(G.main[-2], nn.ConvTranspose2d)
    assert isinstance(D.main[1], nn.LeakyReLU) and D.main[1].negative_slope == 0.2
    assert sum(isinstance(m, nn.BatchNorm2d) for m in G.modules()) == k
    assert sum(isinstance(m, nn.BatchNorm2d) for m in D.modules()) == k - 1
    assert not any(isinstance(m, (nn.Linear, nn.MaxPool2d, nn.AvgPool2d)) for m in list(G.modules()) + list(D.modules()))


def test_width_scales_every_hidden_layer():
    for size in (28, 32, 64):
        a, b = models.dcgan_generator(size, width=8), models.dcgan_generator(size, width=16)
        ca = [m.out_channels for m in a.modules() if isinstance(m, nn.ConvTranspose2d)]
        cb = [m.out_channels for m in b.modules() if isinstance(m, nn.ConvTranspose2d)]
        assert cb[:-1] == [2 * c for c in ca[:-1]] and ca[-1] == cb[-1] == 1
        da, db = models.dcgan_discriminator(size, width=8), models.dcgan_discriminator(size, width=16)
        assert [m.out_channels for m in db.modules() if isinstance(m, nn.Conv2d)][:-1] == \
            [2 * m.out_channels for m in da.modules() if isinstance(m, nn.Conv2d)][:-1]


@pytest.mark.parametrize("bad", [0, 16, 27, 48, 96, 128, 28.0, "64", True])
def test_unsupported_size_says_which_sizes_work_and_why(bad):
    for build in (models.dcgan_generator, models.dcgan_discriminator):
        with pytest.raises(ValueError) as err:
            build(bad)
        msg = str(err.value)
        assert "28, 32, 64" in msg and repr(bad) in msg and "4x4" in msg and "Resize" in msg


def test_other_bad_arguments_and_bad_inputs():
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        models.dcgan_generator(28, channels=0)
    with pytest.raises(ValueError, match="width must be a positive integer"):
        models.dcgan_discriminator(28, width=-4)
    with pytest.raises(ValueError, match="latent_dim must be a positive integer"):
        models.dcgan_generator(28, latent_dim=2.5)
    G, D = models.dcgan_generator(28, latent_dim=10, width=4), models.dcgan_discriminator(28, width=4)
    with pytest.raises(ValueError, match=r"\(N, 10\) or \(N, 10, 1, 1\), got \(3, 12\)"):
        G(torch.randn(3, 12))
    with pytest.raises(ValueError, match=r"built for images \(N, 1, 28, 28\), got \(2, 1, 32, 32\)"):
        D(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"got \(2, 28, 28\)"):
        D(torch.randn(2, 28, 28))


def test_discriminator_without_batchnorm_scores_each_image_on_its_own():
    torch.manual_seed(0)
    D = models.dcgan_discriminator(32, channels=3, width=8, batchnorm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    assert n_params(D) == n_params(models.dcgan_discriminator(32, channels=3, width=8)) - 2 * (16 + 32)
    x = torch.randn(6, 3, 32, 32)
    torch.testing.assert_close(D(x)[:2], D(x[:2]))      # per sample: the rest of the batch does not matter
    D_bn = models.dcgan_discriminator(32, channels=3, width=8)
    assert not torch.allclose(D_bn(x)[:2], D_bn(x[:2]))  # with BatchNorm (train mode) it does


def test_init_false_keeps_pytorch_defaults():
    torch.manual_seed(0)
    G = models.dcgan_generator(28, width=8, init=False)
    bn = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in bn)


# --- transposed-convolution arithmetic against torch ---------------------------------------------
def test_conv_transpose_output_size_matches_torch_on_a_grid():
    checked = 0
    for size in (1, 2, 3, 4, 7):
        for kernel in (1, 2, 3, 4, 5):
            for stride in (1, 2, 3):
                for padding in (0, 1, 2):
                    for dilation in (1, 2):
                        for output_padding in range(max(stride, dilation)):
                            layer = nn.ConvTranspose2d(1, 1, kernel, stride, padding, output_padding,
                                                       dilation=dilation)
                            try:
                                actual = layer(torch.zeros(1, 1, size, size)).shape[-1]
                            except RuntimeError:
                                actual = None          # torch refuses: the output would be empty
                            if actual is None or actual < 1:
                                with pytest.raises(ValueError, match="pixels wide"):
                                    models.conv_transpose_output_size(size, kernel, stride, padding,
                                                                      output_padding, dilation)
                            else:
                                assert models.conv_transpose_output_size(
                                    size, kernel, stride, padding, output_padding, dilation) == actual
                                checked += 1
    assert checked > 500


def test_conv_output_size_matches_torch_and_inverts_the_transpose():
    for size in (4, 7, 14, 28, 32, 64):
        for kernel, stride, padding in ((4, 2, 1), (3, 2, 1), (4, 1, 0), (5, 1, 2), (3, 3, 0)):
            if kernel > size + 2 * padding:
                continue
            actual = nn.Conv2d(1, 1, kernel, stride, padding)(torch.zeros(1, 1, size, size)).shape[-1]
            out = models.conv_output_size(size, kernel, stride, padding)
            assert out == actual
            if stride == 2 and padding == 1 and kernel == (4 if size % 2 == 0 else 3):
                # DCGAN's steps (kernel 4 on an even side, 3 on an odd one): the transpose goes back exactly
                assert models.conv_transpose_output_size(out, kernel, stride, padding) == size


def test_conv_size_argument_errors():
    with pytest.raises(ValueError, match="output_padding"):
        models.conv_transpose_output_size(4, 4, 2, 1, output_padding=2)
    with pytest.raises(ValueError, match="kernel must be a positive integer"):
        models.conv_transpose_output_size(4, 0, 2, 1)
    with pytest.raises(ValueError, match="padding must be a non-negative integer"):
        models.conv_transpose_output_size(4, 4, 2, -1)
    with pytest.raises(ValueError, match="does not fit"):
        models.conv_output_size(2, 5, 1, 0)


# --- initialisation statistics -------------------------------------------------------------------
def assert_normal_sample(values, mean, std, z=5.0):
    """Sample mean and std of n i.i.d. N(mean, std^2) values lie within z standard errors:
    se(mean) = std/sqrt(n), se(sample std) ~ std/sqrt(2(n-1))."""
    v = values.detach().double().flatten()
    n = v.numel()
    assert abs(v.mean().item() - mean) < z * std / math.sqrt(n), (v.mean().item(), n)
    assert abs(v.std().item() - std) < z * std / math.sqrt(2 * (n - 1)), (v.std().item(), n)


def init_groups(module):
    conv = torch.cat([m.weight.flatten() for m in module.modules() if isinstance(m, nn.modules.conv._ConvNd)])
    bn = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    bn_w = torch.cat([m.weight for m in bn]) if bn else torch.empty(0)
    bn_b = torch.cat([m.bias for m in bn]) if bn else torch.empty(0)
    return conv, bn_w, bn_b


@pytest.mark.parametrize("size", [28, 64])
def test_init_statistics(size):
    torch.manual_seed(1)
    for net in (models.dcgan_generator(size, width=32), models.dcgan_discriminator(size, width=32)):
        conv, bn_w, bn_b = init_groups(net)
        assert_normal_sample(conv, 0.0, 0.02)
        assert_normal_sample(bn_w, 1.0, 0.02)
        assert bn_b.abs().max() == 0
        for m in net.modules():                     # each layer too, not only the pooled sample
            if isinstance(m, nn.modules.conv._ConvNd) and m.weight.numel() >= 1000:
                assert_normal_sample(m.weight, 0.0, 0.02)


def test_init_statistics_check_rejects_pytorch_default_init():
    """The statistical check has power: PyTorch's default init fails it."""
    torch.manual_seed(1)
    conv, bn_w, _ = init_groups(models.dcgan_generator(64, width=32, init=False))
    with pytest.raises(AssertionError):
        assert_normal_sample(conv, 0.0, 0.02)
    with pytest.raises(AssertionError):
        assert_normal_sample(bn_w, 1.0, 0.02)           # all exactly 1: std 0
    with pytest.raises(AssertionError):
        assert_normal_sample(torch.randn(20000) * 0.021, 0.0, 0.02)   # a 5% wrong std is detected


def test_init_also_covers_linear_layers_and_biases():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(300, 200), nn.Conv2d(3, 8, 3), nn.BatchNorm1d(50))
    models.init_dcgan_weights(net)
    assert_normal_sample(net[0].weight, 0.0, 0.02)
    assert net[0].bias.abs().max() == 0 and net[1].bias.abs().max() == 0 and net[2].bias.abs().max() == 0


# --- bfloat16 autocast and channels_last on the CPU ----------------------------------------------
@pytest.mark.parametrize("size", [28, 64])
def test_bfloat16_autocast_forward_and_backward_on_cpu(size):
    torch.manual_seed(3)
    G = models.dcgan_generator(size, width=8, latent_dim=16)
    D = models.dcgan_discriminator(size, width=8)
    G32, D32 = copy.deepcopy(G), copy.deepcopy(D)
    z = torch.randn(8, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fake = G(z)
        logits = D(fake)
    assert fake.dtype == torch.bfloat16 and logits.dtype == torch.bfloat16     # convolutions ran in bf16
    loss = torch.nn.functional.softplus(-logits.float()).mean()                 # non-saturating G loss
    loss.backward()
    loss32 = torch.nn.functional.softplus(-D32(G32(z))).mean()
    loss32.backward()
    # bfloat16 keeps 8 bits of mantissa (relative step 2^-8 ~ 0.004): agree to a few of those steps
    assert abs(loss.item() - loss32.item()) < 0.05 * abs(loss32.item())
    for p, p32 in zip(G.parameters(), G32.parameters()):
        assert p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()
    g = torch.cat([p.grad.flatten() for p in G.parameters()])
    g32 = torch.cat([p.grad.flatten() for p in G32.parameters()])
    assert torch.nn.functional.cosine_similarity(g, g32, dim=0) > 0.95


@pytest.mark.parametrize("size", [28, 64])
def test_channels_last_gives_the_same_result_as_contiguous(size):
    torch.manual_seed(4)
    G = models.dcgan_generator(size, channels=3, width=8, latent_dim=16)
    D = models.dcgan_discriminator(size, channels=3, width=8)
    Gc = copy.deepcopy(G).to(memory_format=torch.channels_last)
    Dc = copy.deepcopy(D).to(memory_format=torch.channels_last)
    assert Gc.main[0].weight.is_contiguous(memory_format=torch.channels_last)
    z = torch.randn(6, 16, 1, 1)
    x, xc = G(z), Gc(z.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(xc, x, rtol=1e-4, atol=1e-5)
    real = torch.rand(6, 3, size, size) * 2 - 1
    torch.testing.assert_close(Dc(real.contiguous(memory_format=torch.channels_last)), D(real),
                               rtol=1e-4, atol=1e-4)
    D(x).sum().backward()
    Dc(xc).sum().backward()
    for p, q in zip(G.parameters(), Gc.parameters()):
        torch.testing.assert_close(q.grad.contiguous(), p.grad, rtol=1e-3, atol=1e-5)
