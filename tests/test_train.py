"""The one GAN training loop: ganlib.train.train_gan against a hand-written PyTorch step, and its options."""

import copy
import math
import time

import numpy as np
import pytest
import torch

from ganlib import losses
from ganlib.data import Batches, synthetic_images
from ganlib.models import dcgan_discriminator, dcgan_generator, discriminator, generator
from ganlib.train import (CHECKPOINT, COLUMNS, HISTORY, History, TrainConfig, every, latent_generator,
                          load_checkpoint, pack_samples, sample_latent, save_checkpoint, train_gan)
from ganlib.utils import seed_everything


def toy_data(n):
    """Real samples from torch's global generator, so train_gan's seeding makes them reproducible."""
    return torch.randn(n, 2) * 0.1 + torch.tensor([1.0, -1.0])


def models(latent_dim=3, dim=2, pack=1, seed=1):
    torch.manual_seed(seed)
    return generator(latent_dim, dim, hidden=(16,)), discriminator(dim * pack, hidden=(16,))


def cfg(**kw):
    base = dict(steps=3, batch_size=8, device="cpu", seed=0)
    base.update(kw)
    return TrainConfig(**base)


# --------------------------------------------------------------------------- the step, written out by hand

# Independent closed forms of each loss (not taken from ganlib.losses.LOSSES): (d_loss(real, fake), g_loss(fake)).
HAND_LOSSES = {
    "minimax": (lambda r, f: -torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean(),
                lambda f: torch.log(1 - torch.sigmoid(f)).mean()),
    "nonsaturating": (lambda r, f: -torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean(),
                      lambda f: -torch.log(torch.sigmoid(f)).mean()),
    "lsgan": (lambda r, f: 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f ** 2).mean(), lambda f: 0.5 * ((f - 1) ** 2).mean()),
    "hinge": (lambda r, f: torch.clamp(1 - r, min=0).mean() + torch.clamp(1 + f, min=0).mean(), lambda f: -f.mean()),
    "wasserstein": (lambda r, f: f.mean() - r.mean(), lambda f: -f.mean()),
}


def hand_penalty(kind, D, real, fake, weight):
    if kind == "gp":
        eps = torch.rand(real.shape[0]).reshape(-1, *([1] * (real.dim() - 1)))
        x = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (g,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
        return weight * ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
    x = real.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    return weight / 2 * g.flatten(1).pow(2).sum(1).mean()


def hand_train(G, D, data, c: TrainConfig, latent_dim):
    """Chapter 03's algorithm written out, with the seeding train_gan documents. Returns the losses."""
    seed_everything(c.seed, torch=True)
    gen = latent_generator(c.seed)
    opt_g = torch.optim.Adam(G.parameters(), lr=c.lr_g, betas=c.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=c.lr_d, betas=c.betas)
    d_fn, g_fn = HAND_LOSSES[c.loss]
    m = c.pack
    packed = lambda x: x.reshape(x.shape[0] // m, -1)  # noqa: E731  (flat samples)
    out = []
    for _ in range(c.steps):
        for _ in range(c.n_critic):
            real = data(c.batch_size)
            fake = G(torch.randn(c.batch_size, latent_dim, generator=gen)).detach()
            loss_d = d_fn(D(packed(real)), D(packed(fake)))
            pen = hand_penalty(c.penalty, D, packed(real), packed(fake), c.penalty_weight) if c.penalty else 0.0
            opt_d.zero_grad()
            (loss_d + pen).backward()
            opt_d.step()
            if c.clip:
                with torch.no_grad():
                    for p in D.parameters():
                        p.clamp_(-c.clip, c.clip)
        loss_g = g_fn(D(packed(G(torch.randn(c.batch_size, latent_dim, generator=gen)))))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        out.append((loss_d.item(), loss_g.item()))
    return out


CASES = [
    dict(loss="nonsaturating"),
    dict(loss="minimax"),
    dict(loss="lsgan"),
    dict(loss="hinge"),
    dict(loss="wasserstein", clip=0.05, n_critic=3),
    dict(loss="wasserstein", penalty="gp", n_critic=2),
    dict(loss="nonsaturating", penalty="r1", penalty_weight=2.0),
    dict(loss="nonsaturating", pack=2),
    dict(loss="hinge", pack=4, penalty="gp", lr_d=1e-3, betas=(0.0, 0.9)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_train_gan_equals_a_hand_written_torch_loop(case):
    c = cfg(**case)
    G, D = models(pack=c.pack)
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    h = train_gan(G, D, toy_data, c)
    expected = hand_train(G2, D2, toy_data, c, latent_dim=3)
    for p, q in zip(list(G.parameters()) + list(D.parameters()), list(G2.parameters()) + list(D2.parameters())):
        assert torch.allclose(p, q, atol=1e-6, rtol=0), (p - q).abs().max()
    # the history records the losses of each step (the last D step's loss)
    np.testing.assert_allclose(h["loss_d"], [e[0] for e in expected], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h["loss_g"], [e[1] for e in expected], rtol=1e-5, atol=1e-6)


def test_a_loss_given_as_functions_is_used():
    calls = {"d": 0, "g": 0}

    def d_loss(r, f):
        calls["d"] += 1
        return losses.discriminator_loss_bce(r, f)

    def g_loss(f):
        calls["g"] += 1
        return losses.generator_loss_nonsaturating(f)

    G, D = models()
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    train_gan(G, D, toy_data, cfg(loss=(d_loss, g_loss), n_critic=2))
    train_gan(G2, D2, toy_data, cfg(loss="nonsaturating", n_critic=2))
    assert calls == {"d": 6, "g": 3}
    assert all(torch.equal(p, q) for p, q in zip(G.parameters(), G2.parameters()))


def test_loss_names_map_to_ganlib_losses():
    for name, (d_fn, g_fn) in losses.LOSSES.items():
        r, f = torch.randn(5, 1), torch.randn(5, 1)
        hd, hg = HAND_LOSSES[name]
        assert torch.allclose(d_fn(r, f), hd(r, f), atol=1e-6), name
        assert torch.allclose(g_fn(f), hg(f), atol=1e-6), name
    assert set(HAND_LOSSES) == set(losses.LOSSES)


# --------------------------------------------------------------------------- history, callbacks, budgets


def test_history_has_exactly_one_row_per_generator_step():
    G, D = models()
    h = train_gan(G, D, toy_data, cfg(steps=7, n_critic=2))
    assert len(h) == 7
    assert h["step"].tolist() == list(range(1, 8))
    assert list(h[0]) == list(COLUMNS)
    assert np.all(np.diff(h["time"]) >= 0) and np.all(h["samples_per_s"] > 0)
    # BCE losses report D's outputs as probabilities
    assert np.all((h["d_real"] > 0) & (h["d_real"] < 1) & (h["d_fake"] > 0) & (h["d_fake"] < 1))
    assert np.all(h["penalty"] == 0)


def test_d_outputs_are_probabilities_for_bce_and_raw_otherwise():
    G, D = models()
    h = train_gan(G, D, lambda n: torch.full((n, 2), 1.0), cfg(steps=1, loss="wasserstein", seed=3))
    G2, D2 = models()  # the same initial D: its mean output on the real batch before the first update
    out = D2(torch.full((8, 2), 1.0)).mean().item()
    assert h["d_real"][0] == pytest.approx(out, rel=1e-5)  # the raw critic value before the update
    h2 = train_gan(*models(), lambda n: torch.full((n, 2), 1.0), cfg(steps=1, loss="nonsaturating", seed=3))
    assert h2["d_real"][0] == pytest.approx(torch.sigmoid(D2(torch.full((8, 2), 1.0))).mean().item(), rel=1e-5)


def test_n_critic_steps_the_discriminator_k_times_per_generator_step():
    G, D = models()
    opt_G, opt_D = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    counts = {"G": 0, "D": 0, "data": 0}
    opt_G.register_step_post_hook(lambda *a: counts.__setitem__("G", counts["G"] + 1))
    opt_D.register_step_post_hook(lambda *a: counts.__setitem__("D", counts["D"] + 1))

    def data(n):
        counts["data"] += 1
        return toy_data(n)

    train_gan(G, D, data, cfg(steps=4, n_critic=5), opt_G=opt_G, opt_D=opt_D)
    assert counts == {"G": 4, "D": 20, "data": 20}


def test_callbacks_see_each_step_and_d_trainable_again():
    G, D = models()
    snapshots = []
    train_gan(G, D, toy_data, cfg(steps=2), callbacks=[lambda s, G_, D_, hist: snapshots.append(
        (s, [p.requires_grad for p in D_.parameters()], len(hist)))])
    assert snapshots == [(1, [True] * 4, 1), (2, [True] * 4, 2)]  # D is frozen only inside the G step


def test_every_calls_back_on_multiples_only():
    seen = []
    G, D = models()
    train_gan(G, D, toy_data, cfg(steps=10), callbacks=[every(3, lambda s, G_, D_, h: seen.append((s, len(h))))])
    assert seen == [(3, 3), (6, 6), (9, 9)]
    with pytest.raises(ValueError, match="positive integer"):
        every(0, print)


def test_wall_clock_budget_stops_training(monkeypatch):
    clock = [0.0]  # the trainer's clock, advanced 0.1 s by each batch it draws
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])

    def slow(n):
        clock[0] += 0.1
        if clock[0] > 10:
            raise RuntimeError("the time budget did not stop training")
        return toy_data(n)

    G, D = models()
    h = train_gan(G, D, slow, cfg(steps=None, minutes=0.45 / 60))
    assert h["step"].tolist() == [1, 2, 3, 4, 5]  # the budget is checked after every step: 0.5 s is past 0.45 s
    assert h["time"][-1] == pytest.approx(0.5)  # the history's clock is the one the budget reads


def test_steps_is_a_cap_when_minutes_is_also_given():
    G, D = models()
    assert len(train_gan(G, D, toy_data, cfg(steps=3, minutes=10.0))) == 3


def test_epochs_of_an_iterable_restart_it_and_accept_labelled_batches():
    batches = [(torch.randn(8, 2), torch.zeros(8, dtype=torch.long)) for _ in range(5)]
    G, D = models()
    assert len(train_gan(G, D, batches, cfg(steps=None, epochs=2))) == 10
    assert len(train_gan(G, D, batches, cfg(steps=None, epochs=2, n_critic=2))) == 5
    assert len(train_gan(G, D, batches, cfg(steps=4, epochs=2))) == 4
    with pytest.raises(ValueError, match="epochs needs a data source with a length"):
        train_gan(G, D, toy_data, cfg(steps=None, epochs=1))


def test_iterable_batch_size_sets_the_fake_batch_size():
    G, D = models()
    sizes = []
    h = train_gan(G, D, [torch.randn(6, 2)] * 3, cfg(steps=3, batch_size=999),
                  callbacks=[lambda s, G_, D_, hist: sizes.append(s)])
    assert len(h) == 3
    assert h["samples_per_s"][0] > 0


def test_progress_bar_comes_from_ganlib_utils(monkeypatch):
    import ganlib.train as train_mod

    seen = {}

    def fake_progress(iterable, **kw):
        seen.update(kw)
        return iter(iterable)

    monkeypatch.setattr(train_mod, "progress", fake_progress)
    G, D = models()
    train_gan(G, D, toy_data, cfg(steps=4))
    assert seen["total"] == 4


# --------------------------------------------------------------------------- packing


def test_pack_samples_groups_consecutive_samples():
    x = torch.arange(12.0).reshape(6, 2)
    p = pack_samples(x, 3)
    assert p.shape == (2, 6)
    assert torch.equal(p[0], torch.cat([x[0], x[1], x[2]])) and torch.equal(p[1], torch.cat([x[3], x[4], x[5]]))
    img = torch.randn(8, 3, 5, 5)
    q = pack_samples(img, 2)
    assert q.shape == (4, 6, 5, 5)
    assert torch.equal(q[1, :3], img[2]) and torch.equal(q[1, 3:], img[3])
    assert pack_samples(img, 1) is img


def test_pack_samples_rejects_a_factor_that_does_not_divide():
    with pytest.raises(ValueError, match="m=3 must divide the batch size 8"):
        pack_samples(torch.zeros(8, 2), 3)
    with pytest.raises(ValueError, match="positive integer"):
        pack_samples(torch.zeros(8, 2), 0)
    G, D = models(pack=3)
    with pytest.raises(ValueError, match="must divide the batch size 8"):
        train_gan(G, D, toy_data, cfg(pack=3))


# --------------------------------------------------------------------------- NaN / inf and bad input


def poisoned(at_call: int, value: float, record: list):
    """A D loss equal to the BCE except at one call, where it is ``value`` (NaN or +inf)."""
    calls = {"n": 0}

    def d_loss(r, f):
        calls["n"] += 1
        loss = losses.discriminator_loss_bce(r, f)
        if calls["n"] == at_call:
            loss = loss + value
            record.append(loss.item())
        return loss

    return d_loss


@pytest.mark.parametrize("value, word", [(float("nan"), "nan"), (float("inf"), "inf")])
def test_nonfinite_d_loss_stops_training_naming_the_step(value, word):
    record = []
    G, D = models()
    with pytest.raises(FloatingPointError, match=rf"at step 3: loss_d is {word}"):
        train_gan(G, D, toy_data, cfg(steps=10, loss=(poisoned(3, value, record), losses.generator_loss_nonsaturating)))
    # the injected value really was NaN / +inf (an inf that turned into NaN would test the wrong branch)
    assert (math.isnan(record[0]) if word == "nan" else record[0] == math.inf)


def test_nonfinite_loss_in_a_later_critic_step_names_it():
    G, D = models()
    with pytest.raises(FloatingPointError, match=r"at step 2: loss_d is nan \(D step 2 of 3\)"):
        train_gan(G, D, toy_data, cfg(steps=5, n_critic=3,
                                      loss=(poisoned(5, float("nan"), []), losses.generator_loss_nonsaturating)))


def test_nonfinite_generator_gradient_stops_training():
    def g_loss(f):  # value 0, but d sqrt(|x|)/dx is infinite at 0: the gradient is inf/NaN
        return (f - f.detach()).abs().sqrt().mean()

    G, D = models()
    with pytest.raises(FloatingPointError, match=r"at step 1: grad_norm_g is (nan|inf)"):
        train_gan(G, D, toy_data, cfg(loss=(losses.discriminator_loss_bce, g_loss)))


def test_nan_in_the_data_is_caught():
    G, D = models()
    with pytest.raises(FloatingPointError, match="step 1: loss_d is nan"):
        train_gan(G, D, lambda n: torch.full((n, 2), float("nan")), cfg())


def test_incompatible_shapes_fail_on_the_first_step_naming_both():
    G, D = models(dim=2)
    before = [p.clone() for p in D.parameters()]
    with pytest.raises(ValueError, match=r"G makes samples of shape \(2,\).*real batches have shape \(5,\)"):
        train_gan(G, D, lambda n: torch.randn(n, 5), cfg())
    assert all(torch.equal(a, b) for a, b in zip(before, D.parameters()))  # no optimiser step was taken
    G, D = generator(3, 2), discriminator(5)
    with pytest.raises(ValueError, match=r"D cannot take a batch of shape \(8, 2\)"):
        train_gan(G, D, toy_data, cfg())
    with pytest.raises(ValueError, match=r"G cannot take latent vectors of shape \(n, 4\)"):
        train_gan(generator(3, 2), discriminator(2), toy_data, cfg(), latent_dim=4)
    with pytest.raises(ValueError, match=r"D must return one number per sample.*returned \(8, 3\)"):
        train_gan(generator(3, 2), torch.nn.Linear(2, 3), toy_data, cfg())


def test_bad_data_sources_are_named():
    G, D = models()
    with pytest.raises(TypeError, match="whole tensor"):
        train_gan(G, D, torch.randn(100, 2), cfg())
    with pytest.raises(TypeError, match="floating point"):
        train_gan(G, D, lambda n: torch.zeros(n, 2, dtype=torch.uint8), cfg())
    with pytest.raises(ValueError, match="no batch at all"):
        train_gan(G, D, [], cfg())


@pytest.mark.parametrize("kw, msg", [
    (dict(loss="wgan"), "unknown loss 'wgan'"),
    (dict(penalty="gp2"), "penalty must be one of"),
    (dict(pack=0), "pack must be a positive integer"),
    (dict(steps=None), "needs a budget"),
    (dict(n_critic=1.5), "n_critic must be a positive integer"),
    (dict(minutes=-1), "minutes must be a positive number"),
    (dict(device="gpu"), "device must be"),
    (dict(amp="fp8"), "amp must be one of"),
    (dict(ema=1.0), "ema is a decay"),
    (dict(betas=(0.5, 1.0)), "betas must be two numbers"),
])
def test_config_validation(kw, msg):
    with pytest.raises(ValueError, match=msg):
        TrainConfig(**kw)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    G, D = models()
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        train_gan(G, D, toy_data, cfg(device="cuda"))


def test_latent_noise_is_its_own_seeded_stream():
    seed_everything(0, torch=True)
    global_draw = torch.randn(4, 3)
    z = sample_latent(4, 3, latent_generator(0))
    assert not torch.allclose(z, global_draw)
    assert torch.equal(z, sample_latent(4, 3, latent_generator(0)))


def test_training_is_reproducible_from_the_seed():
    runs = []
    for _ in range(2):
        G, D = models()
        train_gan(G, D, toy_data, cfg(steps=3))
        runs.append(torch.cat([p.flatten() for p in G.parameters()]))
    assert torch.equal(*runs)
    G, D = models()
    train_gan(G, D, toy_data, cfg(steps=3, seed=1))
    assert not torch.equal(runs[0], torch.cat([p.flatten() for p in G.parameters()]))


# --------------------------------------------------------------------------- History


def test_history_columns_plot_and_json_lines(tmp_path):
    G, D = models()
    h = train_gan(G, D, toy_data, cfg(steps=5))
    with pytest.raises(KeyError, match="no column 'loss'"):
        h["loss"]
    fig = h.plot(smooth=2)
    assert len(fig.axes) == 2
    assert [len(line.get_xdata()) for line in fig.axes[0].lines] == [4, 4]  # a 2-step moving average
    h.to_jsonl(tmp_path / "h.jsonl")
    back = History.from_jsonl(tmp_path / "h.jsonl")
    assert back.rows == h.rows
    (tmp_path / "bad.jsonl").write_text('{"step": 1}\nnot json\n')
    with pytest.raises(ValueError, match="line 2"):
        History.from_jsonl(tmp_path / "bad.jsonl")
    import matplotlib.pyplot as plt

    plt.close("all")


# --------------------------------------------------------------------------- checkpoints and exact resume

def state(*modules):
    return {f"{i}.{k}": v.clone() for i, m in enumerate(modules) for k, v in m.state_dict().items()}


def assert_bit_identical(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def image_models(seed=1, width=4, batchnorm=True):
    torch.manual_seed(seed)
    return (dcgan_generator(28, channels=1, latent_dim=8, width=width),
            dcgan_discriminator(28, channels=1, width=width, batchnorm=batchnorm))


IMAGES = synthetic_images(96, size=28, seed=0)[0]


def test_resume_is_bit_identical_with_a_callable_source(tmp_path):
    G, D = models()
    full = train_gan(G, D, toy_data, cfg(steps=8, out=tmp_path / "a", checkpoint_every=4))
    G2, D2 = models()
    train_gan(G2, D2, toy_data, cfg(steps=4, out=tmp_path / "b"))
    G3, D3 = models(seed=99)  # fresh objects, other initial weights: everything comes from the checkpoint
    resumed = train_gan(G3, D3, toy_data, cfg(steps=8, out=tmp_path / "b"), resume=True)
    assert_bit_identical(state(G, D), state(G3, D3))
    # the history continues without a seam, in memory and on disk
    assert resumed["step"].tolist() == list(range(1, 9))
    for col in ("loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g"):
        assert resumed[col].tolist() == full[col].tolist(), col
    on_disk = History.from_jsonl(tmp_path / "b" / HISTORY)
    assert on_disk["step"].tolist() == list(range(1, 9)) and on_disk["loss_g"].tolist() == full["loss_g"].tolist()
    assert np.all(np.diff(on_disk["time"]) > 0)  # the clock continues too


def test_resume_is_bit_identical_with_batches_of_images(tmp_path):
    c = dict(batch_size=16, n_critic=2, sample_every=3)
    G, D = image_models()
    train_gan(G, D, Batches(IMAGES, 16, seed=5), cfg(steps=6, out=tmp_path / "a", **c))
    G2, D2 = image_models()
    train_gan(G2, D2, Batches(IMAGES, 16, seed=5), cfg(steps=3, out=tmp_path / "b", **c))
    G3, D3 = image_models(seed=7)
    data = Batches(IMAGES, 16, seed=5)  # a fresh source: its position comes from the checkpoint
    train_gan(G3, D3, data, cfg(steps=6, out=tmp_path / "b", **c), resume=tmp_path / "b" / CHECKPOINT)
    assert_bit_identical(state(G, D), state(G3, D3))  # parameters and BatchNorm statistics
    assert (data.epoch, data.position) == (1, 96)  # 12 batches of 16 from 96 images: the end of epoch 2
    # fixed-noise sample grids, the same pictures in both runs
    for step in (3, 6):
        a, b = tmp_path / "a" / "samples" / f"step_{step:06d}.png", tmp_path / "b" / "samples" / f"step_{step:06d}.png"
        assert a.read_bytes() == b.read_bytes()
    from PIL import Image

    assert Image.open(a).size == (8 * 30 + 2, 8 * 30 + 2)  # 64 fixed samples, 8 x 8 tiles of 28 px + padding


def test_resume_with_a_changed_budget_and_the_penalty_still_matches(tmp_path):
    c = dict(loss="wasserstein", penalty="gp", batch_size=16)
    G, D = image_models(batchnorm=False)
    train_gan(G, D, Batches(IMAGES, 16, seed=1), cfg(steps=4, **c))
    G2, D2 = image_models(batchnorm=False)
    train_gan(G2, D2, Batches(IMAGES, 16, seed=1), cfg(steps=2, out=tmp_path, **c))
    G3, D3 = image_models(seed=3, batchnorm=False)
    h = train_gan(G3, D3, Batches(IMAGES, 16, seed=1), cfg(steps=4, out=tmp_path, minutes=60.0, **c), resume=True)
    assert_bit_identical(state(G, D), state(G3, D3))
    assert len(h) == 4


def test_checkpoint_contents(tmp_path):
    G, D = models()
    train_gan(G, D, toy_data, cfg(steps=3, out=tmp_path), meta={"model": "toy"})
    ck = load_checkpoint(tmp_path / CHECKPOINT)
    import ganlib

    assert ck["step"] == 3 and ck["ganlib_version"] == ganlib.__version__ and ck["meta"] == {"model": "toy"}
    assert ck["config"]["steps"] == 3 and ck["config"]["loss"] == "nonsaturating" and ck["latent_dim"] == 3
    assert set(ck["rng"]) == {"python", "numpy", "torch", "cuda", "latent", "data"}
    assert set(ck["models"]) == {"G", "D", "G_ema"} and set(ck["optimizers"]) == {"G", "D"}
    assert_bit_identical(ck["models"]["G"], G.state_dict())
    assert ck["fixed_noise"].shape == (64, 3)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_a_checkpoint_for_another_architecture_is_refused_without_loading_anything(tmp_path):
    G, D = models()
    train_gan(G, D, toy_data, cfg(steps=2, out=tmp_path))
    torch.manual_seed(0)
    G2, D2 = generator(3, 2, hidden=(16,)), discriminator(2, hidden=(32,))  # D is wider
    before = state(G2, D2)
    with pytest.raises(ValueError, match=r"D's 0\.weight has shape \(32, 2\) here but \(16, 2\) in the checkpoint"):
        train_gan(G2, D2, toy_data, cfg(steps=4, out=tmp_path), resume=True)
    assert_bit_identical(before, state(G2, D2))  # G matched, but was not loaded either
    with pytest.raises(ValueError, match=r"config loss: checkpoint 'nonsaturating', now 'hinge'"):
        train_gan(*models(), toy_data, cfg(steps=4, out=tmp_path, loss="hinge"), resume=True)
    with pytest.raises(ValueError, match=r"latent_dim: checkpoint 3, now 5"):
        train_gan(generator(5, 2, hidden=(16,)), discriminator(2, hidden=(16,)), toy_data,
                  cfg(steps=4, out=tmp_path), resume=True)
    G4, D4 = image_models()
    with pytest.raises(ValueError, match="has parameters the checkpoint lacks"):
        train_gan(G4, D4, Batches(IMAGES, 8), cfg(steps=4, out=tmp_path), resume=True)


def test_a_batches_state_from_another_batch_size_is_refused_before_loading(tmp_path):
    G, D = image_models()
    train_gan(G, D, Batches(IMAGES, 16), cfg(steps=1, batch_size=16, out=tmp_path))
    G2, D2 = image_models(seed=4)
    before = state(G2, D2)
    with pytest.raises(ValueError, match="batch_size=16, this one has 8"):
        train_gan(G2, D2, Batches(IMAGES, 8), cfg(steps=2, batch_size=16, out=tmp_path), resume=True)
    assert_bit_identical(before, state(G2, D2))


def test_a_fresh_run_does_not_overwrite_a_checkpoint(tmp_path):
    G, D = models()
    train_gan(G, D, toy_data, cfg(steps=2, out=tmp_path))
    with pytest.raises(FileExistsError, match="already holds a checkpoint"):
        train_gan(G, D, toy_data, cfg(steps=2, out=tmp_path))
    h = train_gan(G, D, toy_data, cfg(steps=1, out=tmp_path), overwrite=True)
    assert len(h) == 1 and len(History.from_jsonl(tmp_path / HISTORY)) == 1
    assert load_checkpoint(tmp_path / CHECKPOINT)["step"] == 1


def test_resume_past_the_budget_trains_nothing(tmp_path):
    G, D = models()
    train_gan(G, D, toy_data, cfg(steps=3, out=tmp_path))
    before = state(G, D)
    h = train_gan(G, D, toy_data, cfg(steps=3, out=tmp_path), resume=True)
    assert len(h) == 3
    assert_bit_identical(before, state(G, D))


def test_bad_checkpoint_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="junk.pt is not a ganlib checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt is not a ganlib checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    G, D = models()
    train_gan(G, D, toy_data, cfg(steps=1, out=tmp_path / "run"))
    data = (tmp_path / "run" / CHECKPOINT).read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.pt is truncated"):
        load_checkpoint(tmp_path / "cut.pt")


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"format": "ganlib-checkpoint", "step": 1})

    def broken_save(obj, f):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"format": "ganlib-checkpoint", "step": 2})
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_nan_keeps_the_last_good_checkpoint(tmp_path):
    G, D = models()
    loss = (poisoned(5, float("nan"), []), losses.generator_loss_nonsaturating)
    with pytest.raises(FloatingPointError, match=r"step 5: loss_d is nan\. The last checkpoint in"):
        train_gan(G, D, toy_data, cfg(steps=10, out=tmp_path, checkpoint_every=2, loss=loss))
    ck = load_checkpoint(tmp_path / CHECKPOINT)
    assert ck["step"] == 4 and all(torch.isfinite(v).all() for v in ck["models"]["D"].values())
    assert History.from_jsonl(tmp_path / HISTORY)["step"].tolist() == [1, 2, 3, 4]


def test_sigint_saves_a_loadable_checkpoint_and_resume_finishes(tmp_path):
    import os
    import signal
    import threading

    def interrupt_at_3(step, G, D, history):
        if step == 3:  # Ctrl-C from another thread, as a terminal would deliver it
            t = threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGINT))
            t.start()
            t.join()

    G, D = models()
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="interrupted at step"):
        train_gan(G, D, toy_data, cfg(steps=1000, out=tmp_path), callbacks=[interrupt_at_3])
    assert signal.getsignal(signal.SIGINT) is handler  # the previous handler is back
    ck = load_checkpoint(tmp_path / CHECKPOINT)
    assert 3 <= ck["step"] <= 4  # the step in progress finishes, then the run saves and stops
    assert len(History.from_jsonl(tmp_path / HISTORY)) == ck["step"]
    assert_bit_identical(ck["models"]["G"], G.state_dict())
    G2, D2 = models()
    h = train_gan(G2, D2, toy_data, cfg(steps=6, out=tmp_path), resume=True)
    assert h["step"].tolist() == list(range(1, 7))
    G3, D3 = models()
    train_gan(G3, D3, toy_data, cfg(steps=6))
    assert_bit_identical(state(G2, D2), state(G3, D3))  # interrupted + resumed == uninterrupted


# --------------------------------------------------------------------------- chapter 08: speed options, EMA


def record_conv_io(module, seen):
    """Forward hooks that note the dtype and memory layout of every convolution's input and output."""
    for m in module.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            m.register_forward_hook(lambda mod, inp, out: seen.append(
                (inp[0].dtype, out.dtype, inp[0].is_contiguous(memory_format=torch.channels_last))))


def test_one_step_under_bfloat16_autocast_on_cpu():
    G, D = image_models()
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    seen = []
    record_conv_io(D, seen)
    h = train_gan(G, D, Batches(IMAGES, 16), cfg(steps=1, batch_size=16, amp="bf16"))
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in D.modules())
    assert len(seen) > n_conv
    assert all(o == torch.float32 for _, o, _ in seen[:n_conv])  # the first-step shape check, in float32
    assert all(o == torch.bfloat16 for _, o, _ in seen[n_conv:])  # training: convolutions ran in bfloat16
    assert all(p.dtype == torch.float32 for p in list(G.parameters()) + list(D.parameters()))  # weights stay fp32
    assert all(math.isfinite(v) for v in h[0].values())
    # the same step in float32 gives nearly the same losses (bfloat16 keeps about 3 significant digits)
    h32 = train_gan(G2, D2, Batches(IMAGES, 16), cfg(steps=1, batch_size=16))
    assert h["loss_d"][0] == pytest.approx(h32["loss_d"][0], rel=0.05)
    assert h["loss_g"][0] == pytest.approx(h32["loss_g"][0], rel=0.05)
    moved = [float((p - q).abs().max().detach()) for p, q in zip(G.parameters(), G2.parameters())]
    assert max(moved) < 1e-3  # both took one Adam step of size about lr = 2e-4 from the same start


def test_fp16_needs_cuda():
    G, D = image_models()
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="amp='fp16' needs a CUDA device"):
        train_gan(G, D, Batches(IMAGES, 16), cfg(amp="fp16"))


def test_channels_last_on_cpu_matches_the_default_layout():
    G, D = image_models()
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    seen = []
    record_conv_io(D, seen)
    h = train_gan(G, D, Batches(IMAGES, 16), cfg(steps=2, batch_size=16, channels_last=True))
    assert seen and all(cl for _, _, cl in seen)  # D's convolutions saw NHWC inputs
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in G.parameters() if p.dim() == 4)
    h2 = train_gan(G2, D2, Batches(IMAGES, 16), cfg(steps=2, batch_size=16))
    np.testing.assert_allclose(h["loss_d"], h2["loss_d"], rtol=1e-4)
    for p, q in zip(G.parameters(), G2.parameters()):
        assert torch.allclose(p, q, atol=1e-5)


def test_compile_runs_the_same_loop():
    G, D = models()
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    h = train_gan(G, D, toy_data, cfg(steps=2, compile="eager"))  # dynamo tracing, no C++ compiler needed
    h2 = train_gan(G2, D2, toy_data, cfg(steps=2))
    np.testing.assert_allclose(h["loss_g"], h2["loss_g"], rtol=1e-5)
    for p, q in zip(G.parameters(), G2.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_compile_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("no compiler on this platform")

    monkeypatch.setattr(torch, "compile", broken)
    G, D = models()
    with pytest.warns(UserWarning, match="torch.compile is unavailable .*no compiler.*eager mode"):
        h = train_gan(G, D, toy_data, cfg(steps=2, compile=True))
    assert len(h) == 2


def test_ema_is_the_moving_average_of_g_and_is_saved(tmp_path):
    G, D = models()
    start = [p.detach().clone() for p in G.parameters()]
    train_gan(G, D, toy_data, cfg(steps=1, ema=0.75, out=tmp_path))
    ck = load_checkpoint(tmp_path / CHECKPOINT)
    ema = ck["models"]["G_ema"]
    for (name, p), p0 in zip(G.named_parameters(), start):
        assert torch.allclose(ema[name], 0.75 * p0 + 0.25 * p.detach(), atol=1e-7), name
    # resume continues the average exactly
    G1, D1 = models()
    train_gan(G1, D1, toy_data, cfg(steps=3, ema=0.75, out=tmp_path / "full"))
    G2, D2 = models(seed=5)
    train_gan(G2, D2, toy_data, cfg(steps=3, ema=0.75, out=tmp_path), resume=True)
    assert_bit_identical(load_checkpoint(tmp_path / "full" / CHECKPOINT)["models"]["G_ema"],
                         load_checkpoint(tmp_path / CHECKPOINT)["models"]["G_ema"])


def test_resuming_an_older_checkpoint_drops_the_later_history_rows(tmp_path):
    import shutil

    G, D = models()
    train_gan(G, D, toy_data, cfg(steps=4, out=tmp_path))
    shutil.copy(tmp_path / CHECKPOINT, tmp_path / "step4.pt")
    train_gan(G, D, toy_data, cfg(steps=6, out=tmp_path), resume=True)
    assert len(History.from_jsonl(tmp_path / HISTORY)) == 6
    G2, D2 = models()
    h = train_gan(G2, D2, toy_data, cfg(steps=7, out=tmp_path), resume=tmp_path / "step4.pt")
    assert h["step"].tolist() == list(range(1, 8))
    assert History.from_jsonl(tmp_path / HISTORY)["step"].tolist() == list(range(1, 8))  # no duplicated 5, 6


def test_the_float16_path_with_its_gradient_scaler_saves_and_resumes(tmp_path, monkeypatch):
    """fp16 is for CUDA; torch's CPU autocast and GradScaler run the same code path here."""
    import ganlib.train as train_mod

    monkeypatch.setattr(train_mod, "_FP16_DEVICES", ("cuda", "cpu"))
    seen = []
    G, D = image_models()
    record_conv_io(G, seen)
    train_gan(G, D, Batches(IMAGES, 16), cfg(steps=2, batch_size=16, amp="fp16", out=tmp_path / "a"))
    assert torch.float16 in {o for _, o, _ in seen}
    ck = load_checkpoint(tmp_path / "a" / CHECKPOINT)
    assert ck["scalers"]["D"]["scale"] > 0 and ck["scalers"]["G"] is not None
    G2, D2 = image_models()
    train_gan(G2, D2, Batches(IMAGES, 16), cfg(steps=1, batch_size=16, amp="fp16", out=tmp_path / "b"))
    G3, D3 = image_models(seed=3)
    train_gan(G3, D3, Batches(IMAGES, 16), cfg(steps=2, batch_size=16, amp="fp16", out=tmp_path / "b"), resume=True)
    assert_bit_identical(state(G, D), state(G3, D3))
