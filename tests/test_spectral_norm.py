"""Spectral normalisation (chapter 10): power iteration against the SVD, ganlib's parametrization
against torch's step for step, and the reshaped matrix against the convolution's operator norm."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm

from ganlib import models


@pytest.mark.parametrize("seed", range(5))
def test_power_iteration_converges_to_the_largest_singular_value(seed):
    gen = torch.Generator().manual_seed(seed)
    m, n = (int(a) for a in torch.randint(3, 40, (2,), generator=gen))
    W = torch.randn(m, n, generator=gen, dtype=torch.float64)
    s = torch.linalg.svdvals(W)
    sigma, u, v = models.power_iteration(W, torch.randn(n, generator=gen, dtype=torch.float64), n_iter=500)
    assert abs(sigma.item() - s[0].item()) < 1e-3 * s[0].item()
    # the vectors are the top singular pair: W v = sigma u
    assert torch.allclose(W @ v, sigma * u, atol=1e-3 * s[0].item())
    assert abs(u.norm().item() - 1) < 1e-12 and abs(v.norm().item() - 1) < 1e-12


def test_power_iteration_approaches_from_below_at_the_rate_of_the_gap():
    """W = diag(3, 1): after k steps from v = (1, 1), v is proportional to (9^k, 1): the error shrinks by (1/3)^2 a step."""
    W = torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64))
    previous = 0.0
    for k in (1, 2, 3, 4):
        sigma, _, v = models.power_iteration(W, torch.tensor([1.0, 1.0], dtype=torch.float64), n_iter=k)
        a = 9.0 ** k
        assert abs(v[1].item() / v[0].item() - 1 / a) < 1e-12
        # u is the normalised W v_(k-1), proportional to (a / 3, 1): sigma = u^T W v_k
        want = (a * a + 1) / math.sqrt((a * a / 9 + 1) * (a * a + 1))
        assert abs(sigma.item() - want) < 1e-12 and previous < sigma.item() <= 3.0
        previous = sigma.item()


def test_power_iteration_rejects_bad_shapes():
    with pytest.raises(ValueError, match="weight_matrix"):
        models.power_iteration(torch.zeros(2, 3, 4), torch.ones(3))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        models.power_iteration(torch.zeros(2, 3), torch.ones(2))


def test_weight_matrix_layout():
    w = torch.arange(2 * 3 * 2 * 2.0).reshape(2, 3, 2, 2)
    assert torch.equal(models.weight_matrix(w), w.reshape(2, 12))
    assert torch.equal(models.weight_matrix(w, dim=1)[1], w[:, 1].reshape(-1))
    with pytest.raises(ValueError):
        models.weight_matrix(torch.zeros(3))


LAYERS = {
    "linear": lambda: nn.Linear(12, 7),
    "conv": lambda: nn.Conv2d(3, 8, 4, 2, 1),
    "conv_transpose": lambda: nn.ConvTranspose2d(8, 3, 4, 2, 1),
    "embedding": lambda: nn.Embedding(10, 16),
}
INPUTS = {"linear": lambda: torch.randn(5, 12), "conv": lambda: torch.randn(2, 3, 8, 8),
          "conv_transpose": lambda: torch.randn(2, 8, 4, 4), "embedding": lambda: torch.tensor([1, 2, 3])}


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("n_power_iterations", [1, 3])
def test_agrees_with_torch_on_the_same_weights_after_the_same_steps(kind, n_power_iterations):
    torch.manual_seed(0)
    ours = LAYERS[kind]()
    theirs = LAYERS[kind]()
    theirs.load_state_dict(ours.state_dict())
    torch.manual_seed(1)  # the same start vectors: both draw u, then v, from the global generator
    models.add_spectral_norm(ours, n_power_iterations=n_power_iterations)
    torch.manual_seed(1)
    torch_spectral_norm(theirs, n_power_iterations=n_power_iterations)
    a, b = ours.parametrizations.weight[0], theirs.parametrizations.weight[0]
    assert torch.allclose(a._u, b._u, atol=1e-6) and torch.allclose(a._v, b._v, atol=1e-6)
    x = INPUTS[kind]()
    for step in range(4):  # training mode: every forward pass advances the power iteration
        assert torch.allclose(ours(x), theirs(x), atol=1e-5), step
        assert torch.allclose(ours.weight, theirs.weight, atol=1e-6), step
    assert torch.allclose(a._u, b._u, atol=1e-6) and torch.allclose(a._v, b._v, atol=1e-6)
    # gradients flow through sigma identically
    for layer in (ours, theirs):
        layer(x).pow(2).sum().backward()
    g1, g2 = ours.parametrizations.weight.original.grad, theirs.parametrizations.weight.original.grad
    assert torch.allclose(g1, g2, rtol=1e-4, atol=1e-4 * g2.abs().max().item())
    # eval mode: the vectors stay where they are
    ours.eval()
    u = a._u.clone()
    ours(x)
    assert torch.equal(a._u, u)


def test_the_normalised_weight_has_spectral_norm_one():
    torch.manual_seed(0)
    conv = models.add_spectral_norm(nn.Conv2d(16, 32, 4, 2, 1))
    for _ in range(500):  # one power-iteration step per training-mode call
        conv(torch.zeros(1, 16, 8, 8))
    s = torch.linalg.matrix_norm(models.weight_matrix(conv.weight.detach()), ord=2).item()
    assert abs(s - 1) < 1e-3


def test_add_spectral_norm_rejects_layers_without_a_matrix():
    with pytest.raises(ValueError, match="weight matrix"):
        models.add_spectral_norm(nn.ReLU())
    with pytest.raises(ValueError, match="weight matrix"):
        models.add_spectral_norm(nn.LayerNorm(4))


def _dense_conv_matrix(weight, shape, stride, padding):
    """The convolution as an explicit matrix: its columns are the images of the basis vectors."""
    n = int(np.prod(shape))
    basis = torch.eye(n, dtype=weight.dtype).reshape(n, *shape)
    out = nn.functional.conv2d(basis, weight, stride=stride, padding=padding)
    return out.reshape(n, -1).T


@pytest.mark.parametrize("kernel,stride,padding", [(3, 1, 1), (4, 2, 1), (3, 2, 1)])
def test_conv_operator_norm_matches_the_explicit_matrix_and_the_sandwich(kernel, stride, padding):
    torch.manual_seed(0)
    w = torch.randn(4, 3, kernel, kernel, dtype=torch.float64)
    shape = (3, 8, 8)
    exact = torch.linalg.matrix_norm(_dense_conv_matrix(w, shape, stride, padding), ord=2).item()
    est = models.conv_operator_norm(w, shape, stride=stride, padding=padding, n_iter=300)
    assert abs(est - exact) < 1e-3 * exact
    sigma = torch.linalg.matrix_norm(models.weight_matrix(w), ord=2).item()
    c = math.ceil(kernel / stride) ** 2  # the most patches that share one input pixel
    assert sigma * (1 - 1e-6) <= exact <= math.sqrt(c) * sigma * (1 + 1e-6)
