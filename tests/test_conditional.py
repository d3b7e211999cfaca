"""Class-conditional DCGANs (chapter 10): shapes, the label's effect, the projection head, per-sample
norms, the trainer's conditional path against a hand-written loop, and the EMA update."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from ganlib import data, losses, models
from ganlib.train import (TrainConfig, class_rows, ema_update, latent_generator, load_checkpoint, sample_latent,
                          train_gan)
from ganlib.utils import seed_everything


@pytest.mark.parametrize("size", [28, 32, 64])
def test_conditional_models_give_the_right_shapes(size):
    torch.manual_seed(0)
    G = models.dcgan_generator(size, 3, latent_dim=16, width=4, num_classes=10)
    D = models.dcgan_discriminator(size, 3, width=4, num_classes=10, spectral_norm=True)
    z, y = torch.randn(5, 16), torch.tensor([0, 3, 9, 3, 1])
    x = G(z, y)
    assert x.shape == (5, 3, size, size) and D(x, y).shape == (5, 1)
    assert G.main[0].in_channels == 16 + 10 and G(z[:, :, None, None], y).shape == x.shape


def test_the_models_respond_to_the_label():
    torch.manual_seed(0)
    G = models.dcgan_generator(28, 1, latent_dim=8, width=8, num_classes=10)
    D = models.dcgan_discriminator(28, 1, width=8, num_classes=10)
    with torch.no_grad():
        D.head.embed.weight.normal_()  # a trained-looking embedding
    G.eval()
    z = torch.randn(1, 8).repeat(10, 1)
    x = G(z, torch.arange(10))
    diffs = (x[:, None] - x[None]).flatten(2).abs().amax(-1)
    assert (diffs + torch.eye(10) > 1e-6).all()  # ten different images for one z (small: an untrained G)
    out = D(x[:1].repeat(10, 1, 1, 1), torch.arange(10)).flatten()
    assert out.unique().numel() == 10  # one image, ten labels, ten scores
    # without labels the generator cycles through the classes
    assert torch.equal(G(z[:3]), G(z[:3], torch.tensor([0, 1, 2])))


def test_projection_head_is_psi_plus_the_inner_product_with_the_class_embedding():
    torch.manual_seed(0)
    D = models.dcgan_discriminator(28, 1, width=4, num_classes=7, norm="none")
    x, y = torch.randn(6, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4, 6])
    phi = D.main(x).flatten(1)
    assert phi.shape == (6, 4 * 4 * 16)
    want = phi @ D.head.linear.weight.T + D.head.linear.bias + (D.head.embed.weight[y] * phi).sum(1, keepdim=True)
    assert torch.allclose(D(x, y), want, atol=1e-6)
    # with the embedding at zero the label has no effect: psi alone is the unconditional part
    with torch.no_grad():
        D.head.embed.weight.zero_()
    assert torch.allclose(D(x, y), D(x, torch.zeros(6, dtype=torch.long)))


def test_bad_labels_are_clear_errors():
    G = models.dcgan_generator(28, 1, latent_dim=8, width=4, num_classes=10)
    D = models.dcgan_discriminator(28, 1, width=4, num_classes=10)
    x, z = torch.randn(2, 1, 28, 28), torch.randn(2, 8)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        G(z, torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="integers of shape"):
        D(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="integers of shape"):
        D(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"call D\(x, y\)"):
        D(x)
    with pytest.raises(ValueError, match="unconditional"):
        models.dcgan_generator(28, 1, latent_dim=8, width=4)(z, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="unconditional"):
        models.dcgan_discriminator(28, 1, width=4)(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="norm must be one of"):
        models.dcgan_discriminator(28, 1, width=4, norm="group")


@pytest.mark.parametrize("norm,per_sample", [("batch", False), ("layer", True), ("instance", True), ("none", True)])
def test_norm_options_and_which_ones_keep_samples_independent(norm, per_sample):
    torch.manual_seed(0)
    D = models.dcgan_discriminator(28, 1, width=4, norm=norm)
    kinds = {type(m) for m in D.modules()}
    assert (nn.BatchNorm2d in kinds) == (norm == "batch")
    assert (nn.GroupNorm in kinds) == (norm == "layer") and (nn.InstanceNorm2d in kinds) == (norm == "instance")
    x = torch.randn(4, 1, 28, 28)
    alone = D(x[:1])[0] if norm != "batch" else None
    together = D(x)[0]
    x2 = x.clone()
    x2[1:] *= 3.0  # change the other samples of the batch
    changed = D(x2)[0]
    assert torch.allclose(together, changed, atol=1e-6) == per_sample
    if per_sample:
        assert torch.allclose(alone, together, atol=1e-6)


def test_spectral_norm_default_drops_batchnorm_and_normalises_every_layer():
    D = models.dcgan_discriminator(28, 1, width=4, spectral_norm=True, num_classes=10)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    normalised = [m for m in D.modules() if hasattr(m, "parametrizations")]
    assert len(normalised) == 3 + 2  # three convolutions, the head's linear map and embedding
    assert any(isinstance(m, nn.BatchNorm2d) for m in models.dcgan_discriminator(28, 1, width=4, spectral_norm=True,
                                                                                  norm="batch").modules())


def test_unconditional_builders_are_unchanged():
    """The chapter 08 networks keep their parameter counts and state-dict keys."""
    G, D = models.dcgan_generator(64), models.dcgan_discriminator(64)
    assert sum(p.numel() for p in G.parameters()) == 3574656 and sum(p.numel() for p in D.parameters()) == 2763520
    assert "main.11.weight" in D.state_dict() and not hasattr(D.head, "embed")


# --------------------------------------------------------------------------- the trainer's conditional path


def _hand_conditional(G, D, batches, steps, seed, latent_dim, lr, betas, lam):
    """The documented conditional algorithm, written out: D sees fakes made for the real batch's labels
    (hinge loss + WGAN-GP penalty on interpolates sharing those labels); G's labels come uniformly from
    the latent generator, right after its z."""
    seed_everything(seed, torch=True)
    gen = latent_generator(seed)
    opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_D = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    it = iter(batches)
    for _ in range(steps):
        x, y = next(it)
        z = sample_latent(x.shape[0], latent_dim, gen)
        with torch.no_grad():
            fake = G(z, y)
        loss = losses.discriminator_loss_hinge(D(x, y), D(fake, y))
        pen = losses.gradient_penalty(lambda t: D(t, y), x, fake, lam=lam)
        opt_D.zero_grad()
        (loss + pen).backward()
        opt_D.step()
        z = sample_latent(x.shape[0], latent_dim, gen)
        yg = torch.randint(10, (x.shape[0],), generator=gen)
        for p in D.parameters():
            p.requires_grad_(False)
        loss_g = losses.generator_loss_hinge(D(G(z, yg), yg))
        opt_G.zero_grad()
        loss_g.backward()
        opt_G.step()
        for p in D.parameters():
            p.requires_grad_(True)


def test_conditional_training_equals_a_hand_written_loop():
    x, y = data.synthetic_images(64, size=28, seed=0)
    torch.manual_seed(3)
    G = models.dcgan_generator(28, 1, latent_dim=8, width=4, num_classes=10)
    D = models.dcgan_discriminator(28, 1, width=4, num_classes=10, norm="layer")
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    cfg = TrainConfig(steps=3, loss="hinge", penalty="gp", lr_g=1e-3, lr_d=1e-3, device="cpu", seed=4, num_classes=10)
    train_gan(G, D, data.Batches(x, 16, labels=y, seed=0), cfg)
    _hand_conditional(G2, D2, data.Batches(x, 16, labels=y, seed=0), 3, 4, 8, 1e-3, cfg.betas, 10.0)
    for p, q in zip([*G.parameters(), *D.parameters()], [*G2.parameters(), *D2.parameters()]):
        assert torch.allclose(p, q, atol=1e-6), (p - q).abs().max()


def test_conditional_runs_need_labels_and_valid_settings():
    x, y = data.synthetic_images(32, size=28, seed=0)
    G = models.dcgan_generator(28, 1, latent_dim=8, width=4, num_classes=10)
    D = models.dcgan_discriminator(28, 1, width=4, num_classes=10)
    with pytest.raises(ValueError, match="labelled batches"):
        train_gan(G, D, data.Batches(x, 16), TrainConfig(steps=1, device="cpu", num_classes=10))
    with pytest.raises(ValueError, match=r"0\.\.2"):
        train_gan(G, D, data.Batches(x, 16, labels=y), TrainConfig(steps=1, device="cpu", num_classes=3))
    with pytest.raises(ValueError, match="pack=1"):
        TrainConfig(num_classes=10, pack=2)
    with pytest.raises(ValueError, match="num_classes"):
        TrainConfig(num_classes=1)


def test_conditional_sample_grids_have_one_row_per_class(tmp_path):
    from PIL import Image

    x, y = data.synthetic_images(64, size=28, seed=0)
    G = models.dcgan_generator(28, 1, latent_dim=8, width=4, num_classes=10)
    D = models.dcgan_discriminator(28, 1, width=4, num_classes=10)
    train_gan(G, D, data.Batches(x, 16, labels=y), TrainConfig(steps=2, device="cpu", num_classes=10, ema=0.5,
                                                              out=tmp_path, n_samples=30))
    img = Image.open(tmp_path / "samples" / "step_000002.png")
    assert img.size == (3 * 30 + 2, 10 * 30 + 2)  # 3 per row (30 // 10), 10 rows; 28 px + 2 px padding
    assert load_checkpoint(tmp_path / "checkpoint.pt")["config"]["num_classes"] == 10
    (labels,), nrow = class_rows(10, 3)
    assert labels.tolist()[:7] == [0, 0, 0, 1, 1, 1, 2] and nrow == 3


# --------------------------------------------------------------------------- EMA


def test_ema_decay_zero_copies_and_decay_one_keeps_fixed():
    torch.manual_seed(0)
    model, ema = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model(torch.randn(8, 3))  # running statistics away from their start
    before = copy.deepcopy(ema.state_dict())
    ema_update(ema, model, 1.0)
    for (name, p), (_, q) in zip(ema.named_parameters(), model.named_parameters()):
        assert torch.equal(p, before[name])
    ema_update(ema, model, 0.0)
    for p, q in zip(ema.parameters(), model.parameters()):
        assert torch.equal(p, q)
    # BatchNorm statistics are copied from the model, whatever the decay
    assert torch.equal(ema[1].running_mean, model[1].running_mean)


def test_ema_update_moves_one_minus_decay_of_the_way():
    a, b = nn.Linear(2, 1), nn.Linear(2, 1)
    start = [p.detach().clone() for p in a.parameters()]
    ema_update(a, b, 0.9)
    for p, p0, q in zip(a.parameters(), start, b.parameters()):
        assert torch.allclose(p, 0.9 * p0 + 0.1 * q)
        assert not torch.allclose(p, 0.1 * p0 + 0.9 * q)  # the decay applied the wrong way round


def test_ema_of_a_constant_model_converges_geometrically():
    a, b = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    a.weight.data.fill_(0.0)
    b.weight.data.fill_(1.0)
    for _ in range(10):
        ema_update(a, b, 0.5)
    assert abs(a.weight.item() - (1 - 0.5 ** 10)) < 1e-7
    assert np.isclose(a.weight.item(), 1 - 0.5 ** 10)
