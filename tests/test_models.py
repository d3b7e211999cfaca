"""ganlib.models: shapes, initialisation statistics, and the bridge from chapter 03's NumPy networks."""

import numpy as np
import pytest
import torch

from ganlib import models
from ganlib import numpy_nn as nn


def test_generator_and_discriminator_shapes():
    torch.manual_seed(0)
    gen = models.generator(latent_dim=5, out_dim=3, hidden=(16, 8))
    disc = models.discriminator(in_dim=3, hidden=(16,), standardize=(1.0, 2.0))
    x = gen(torch.randn(11, 5))
    assert x.shape == (11, 3) and disc(x).shape == (11, 1)
    bounded = models.generator(2, 4, out_activation="tanh")(100 * torch.randn(9, 2))
    assert bounded.abs().max() <= 1 and isinstance(models.generator(2, 4, out_activation="tanh")[-1], torch.nn.Tanh)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in disc.modules())


def test_he_and_xavier_initialisation_statistics():
    torch.manual_seed(1)
    lin = models.mlp([400, 300], activation="relu")[0]
    assert lin.bias.abs().max() == 0
    assert np.isclose(lin.weight.std().item(), np.sqrt(2 / 400), rtol=0.02)
    lin = models.mlp([400, 200], activation="tanh")[0]
    r = np.sqrt(6 / 600)
    assert lin.weight.abs().max().item() <= r and np.isclose(lin.weight.std().item(), r / np.sqrt(3), rtol=0.02)


def test_seeding_makes_models_reproducible():
    torch.manual_seed(3)
    a = models.generator(2, 2)
    torch.manual_seed(3)
    b = models.generator(2, 2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("activation", ["leaky_relu", "relu", "tanh"])
def test_from_numpy_matches_forward_and_input_gradient(activation):
    rng = np.random.default_rng(4)
    net = nn.Sequential(nn.Standardize(2.0, 3.0), *nn.mlp([1, 7, 5, 1], rng, activation=activation).layers, nn.Sigmoid())
    for p in net.parameters():
        p += 0.1 * rng.normal(size=p.shape)
    tnet = models.from_numpy(net)
    x = rng.normal(size=(9, 1))
    y = net.forward(x)
    dx = net.backward(np.ones_like(y))
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = tnet(xt)
    yt.sum().backward()
    np.testing.assert_allclose(yt.detach().numpy(), y, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(xt.grad.numpy(), dx, rtol=1e-12, atol=1e-15)
    for g_t, g in zip(models.to_numpy_params(tnet, grads=True), net.gradients()):
        np.testing.assert_allclose(g_t, g, rtol=1e-12, atol=1e-15)


def test_from_numpy_in_float32_and_errors():
    net = nn.mlp([2, 3, 1], np.random.default_rng(0))
    assert all(p.dtype == torch.float32 for p in models.from_numpy(net, torch.float32).parameters())

    class Odd(nn.Layer):
        name = "Odd"

    with pytest.raises(TypeError, match="no torch counterpart"):
        models.from_numpy(nn.Sequential(Odd()))
    with pytest.raises(ValueError, match="activation"):
        models.mlp([1, 2], activation="gelu")
    with pytest.raises(ValueError, match="std must be positive"):
        models.Standardize(0.0, 0.0)
    with pytest.raises(ValueError, match="no .grad"):
        models.to_numpy_params(models.mlp([1, 1]), grads=True)


def test_numpy_weight_layout_is_transposed_in_torch():
    net = nn.mlp([3, 2], np.random.default_rng(0))
    lin = models.from_numpy(net)[0]
    assert lin.weight.shape == (2, 3) and np.array_equal(lin.weight.detach().numpy(), net.layers[0].W.T)


@pytest.mark.parametrize("mean,std", [(4.0, 1.25), ([1.0, -2.0, 0.5], [2.0, 0.5, 3.0])])
def test_discriminator_standardize_is_the_first_layer_and_rescales_inputs(mean, std):
    torch.manual_seed(7)
    plain = models.discriminator(3, hidden=(8, 8))
    torch.manual_seed(7)
    disc = models.discriminator(3, hidden=(8, 8), standardize=(mean, std))
    assert isinstance(disc[0], models.Standardize) and len(disc) == len(plain) + 1
    assert sum(isinstance(m, models.Standardize) for m in disc.modules()) == 1
    # the same weights (the layer has no parameters), applied to (x - mean) / std
    assert all(torch.equal(p, q) for p, q in zip(disc.parameters(), plain.parameters()))
    x = 3 * torch.randn(6, 3) + 2
    scaled = (x - torch.tensor(mean)) / torch.tensor(std)
    torch.testing.assert_close(disc(x), plain(scaled), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(disc(x), plain(x), atol=1e-3)
    # standardize=None: no such layer
    assert not any(isinstance(m, models.Standardize) for m in plain.modules())


def test_standardize_layer_values_buffers_and_dtype():
    layer = models.Standardize([1.0, -2.0], [2.0, 0.5], dtype=torch.float64)
    x = torch.tensor([[3.0, -1.0], [1.0, -2.0]], dtype=torch.float64)
    assert layer(x).tolist() == [[1.0, 2.0], [0.0, 0.0]]
    assert list(layer.parameters()) == [] and {n for n, _ in layer.named_buffers()} == {"mean", "std"}
    assert layer.mean.dtype == layer.std.dtype == torch.float64


@pytest.mark.parametrize("activation,kind", [("leaky_relu", torch.nn.LeakyReLU), ("relu", torch.nn.ReLU),
                                             ("tanh", torch.nn.Tanh)])
def test_activation_names_map_to_their_modules(activation, kind):
    net = models.mlp([2, 5, 4, 1], activation=activation, slope=0.3)
    acts = [m for m in net if not isinstance(m, torch.nn.Linear)]
    assert [type(m) for m in acts] == [kind, kind] and isinstance(net[-1], torch.nn.Linear)
    x = torch.linspace(-2, 2, 9)[:, None]
    want = {"leaky_relu": torch.where(x > 0, x, 0.3 * x), "relu": x.clamp(min=0), "tanh": torch.tanh(x)}[activation]
    torch.testing.assert_close(acts[0](x), want)
    disc = models.discriminator(2, hidden=(5,), activation=activation, slope=0.3)
    gen = models.generator(2, 2, hidden=(5,), activation=activation, slope=0.3)
    assert type(disc[1]) is kind and type(gen[1]) is kind
    if kind is torch.nn.LeakyReLU:
        assert disc[1].negative_slope == gen[1].negative_slope == 0.3


def test_init_override_and_leaky_relu_default():
    torch.manual_seed(2)
    he_tanh = models.mlp([400, 300], activation="tanh", init="he")[0]
    assert np.isclose(he_tanh.weight.std().item(), np.sqrt(2 / 400), rtol=0.02)
    leaky = models.mlp([400, 300])[0]   # leaky ReLU defaults to He
    assert np.isclose(leaky.weight.std().item(), np.sqrt(2 / 400), rtol=0.02)
    xav_relu = models.mlp([400, 200], activation="relu", init="xavier")[0]
    assert xav_relu.weight.abs().max().item() <= np.sqrt(6 / 600)
    with pytest.raises(ValueError, match="init must be"):
        models.mlp([2, 2], init="glorot")
    with pytest.raises(ValueError, match="out_activation"):
        models.generator(2, 2, out_activation="sigmoid")
    with pytest.raises(ValueError, match="sizes"):
        models.mlp([3])
