"""Keeping a GPU busy with the one trainer (chapter 08): deferred statistics, logged gradient norms,
CUDA graphs with their eager fallback, and every combination of the speed options.

What a CPU can check is checked here: reading the statistics every N steps changes nothing that
is computed or recorded, a NaN found N steps late still names its step and leaves the output
folder as it was, the CUDA-graph option falls back to eager training saying why, and the
channels_last workaround for CUDA picks the layer it documents. The tests marked ``cuda`` run
only where torch sees a GPU (``benchmarks/gpu_check.sh`` runs them).
"""

import copy
import math
import warnings

import numpy as np
import pytest
import torch

from ganlib import losses
from ganlib import train as train_mod
from ganlib.data import Batches, synthetic_images
from ganlib.models import dcgan_discriminator, dcgan_generator, discriminator, generator
from ganlib.train import CHECKPOINT, HISTORY, History, TrainConfig, load_checkpoint, train_gan

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

IMAGES = synthetic_images(96, size=28, seed=0)[0]
RECORDED = ("step", "loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g", "penalty")


def toy_data(n):
    return torch.randn(n, 2) * 0.1 + torch.tensor([1.0, -1.0])


def toy_models(seed=1):
    torch.manual_seed(seed)
    return generator(3, 2, hidden=(16,)), discriminator(2, hidden=(16,))


def image_models(seed=1, width=4):
    torch.manual_seed(seed)
    return dcgan_generator(28, channels=1, latent_dim=8, width=width), dcgan_discriminator(28, channels=1, width=width)


def cfg(**kw):
    base = dict(steps=3, batch_size=8, device="cpu", seed=0)
    base.update(kw)
    return TrainConfig(**base)


def params(*modules):
    return [t.detach().clone() for m in modules for t in m.state_dict().values()]


def assert_same_tensors(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def poisoned(at_call: int):
    """The BCE D loss, NaN at its ``at_call``-th call (with n_critic=1, the D step of step ``at_call``)."""
    calls = {"n": 0}

    def d_loss(r, f):
        calls["n"] += 1
        loss = losses.discriminator_loss_bce(r, f)
        return loss + float("nan") if calls["n"] == at_call else loss

    return d_loss


# --------------------------------------------------------------------------- the defaults


def test_defaults_read_every_step_on_a_cpu_and_rarely_on_cuda():
    read = train_mod._sync_and_log_every
    assert read(TrainConfig(), torch.device("cpu")) == (1, 1)
    assert read(TrainConfig(), torch.device("cuda")) == (50, 10)
    assert read(TrainConfig(sync_every=7, log_every=3), torch.device("cuda")) == (7, 3)
    assert read(TrainConfig(sync_every=7), torch.device("cpu")) == (7, 1)
    assert read(TrainConfig(sync_every=7, distributed=True), torch.device("cuda")) == (1, 10)  # ranks agree each step


@pytest.mark.parametrize("kw, msg", [
    (dict(sync_every=0), "sync_every must be a positive integer"),
    (dict(log_every=1.5), "log_every must be a positive integer"),
    (dict(cuda_graphs="yes"), "cuda_graphs must be True or False"),
])
def test_config_validation(kw, msg):
    with pytest.raises(ValueError, match=msg):
        TrainConfig(**kw)


# --------------------------------------------------------------------------- deferred statistics: exactly the same


@pytest.mark.parametrize("sync_every", [2, 4, 50])
@pytest.mark.parametrize("case", [dict(), dict(n_critic=2, penalty="r1", loss="hinge"), dict(ema=0.9)],
                         ids=["ns", "hinge-r1-ncritic2", "ema"])
def test_reading_every_n_steps_changes_nothing_computed_or_recorded(sync_every, case):
    """Same parameters (bit for bit) and the same history values, whether read every step or every N."""
    G, D = toy_models()
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    h1 = train_gan(G, D, toy_data, cfg(steps=9, **case))
    hn = train_gan(G2, D2, toy_data, cfg(steps=9, sync_every=sync_every, **case))
    assert_same_tensors(params(G, D), params(G2, D2))
    assert len(hn) == 9
    for col in RECORDED:
        assert hn[col].tolist() == h1[col].tolist(), col
    assert np.all(np.diff(hn["time"]) >= 0) and np.all(hn["samples_per_s"] > 0)


def test_reading_every_n_steps_with_images_and_batches_resumes_bit_identically(tmp_path):
    c = dict(batch_size=16, n_critic=2, sync_every=4, checkpoint_every=5)
    G, D = image_models()
    G1, D1 = copy.deepcopy(G), copy.deepcopy(D)
    full = train_gan(G, D, Batches(IMAGES, 16, seed=5), cfg(steps=7, out=tmp_path / "a", **c))
    every_step = train_gan(G1, D1, Batches(IMAGES, 16, seed=5), cfg(steps=7, batch_size=16, n_critic=2))
    assert_same_tensors(params(G, D), params(G1, D1))
    for col in RECORDED:
        assert full[col].tolist() == every_step[col].tolist(), col
    # stopped at step 5 (a checkpoint), resumed to 7 with other weights: the same state and history
    G2, D2 = image_models()
    train_gan(G2, D2, Batches(IMAGES, 16, seed=5), cfg(steps=5, out=tmp_path / "b", **c))
    G3, D3 = image_models(seed=9)
    resumed = train_gan(G3, D3, Batches(IMAGES, 16, seed=5), cfg(steps=7, out=tmp_path / "b", **c), resume=True)
    assert_same_tensors(params(G, D), params(G3, D3))
    assert resumed["loss_g"].tolist() == full["loss_g"].tolist()
    on_disk = History.from_jsonl(tmp_path / "b" / HISTORY)
    assert on_disk["step"].tolist() == list(range(1, 8)) and on_disk["loss_d"].tolist() == full["loss_d"].tolist()


def test_callbacks_see_every_row_up_to_their_step_when_they_look():
    seen, looked = [], []
    G, D = toy_models()
    train_gan(G, D, toy_data, cfg(steps=6, sync_every=4),
              callbacks=[lambda s, G_, D_, h: seen.append(s),
                         train_mod.every(3, lambda s, G_, D_, h: looked.append((s, len(h), h[-1]["step"])))])
    assert seen == [1, 2, 3, 4, 5, 6]
    assert looked == [(3, 3, 3), (6, 6, 6)]  # reading the history reads the steps still on the device


def test_gradient_norms_only_on_logged_steps():
    G, D = toy_models()
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    every = train_gan(G, D, toy_data, cfg(steps=7))
    logged = train_gan(G2, D2, toy_data, cfg(steps=7, log_every=3, sync_every=2))
    assert_same_tensors(params(G, D), params(G2, D2))  # the norms are read-outs: training is unchanged
    for col in ("grad_norm_d", "grad_norm_g"):
        assert [r[col] for r in logged.rows] == [every[col][i] if (i + 1) % 3 == 0 else None for i in range(7)]
        assert np.isnan(logged[col][0]) and logged[col][2] == every[col][2]
    for col in ("loss_d", "loss_g", "d_real", "d_fake"):
        assert logged[col].tolist() == every[col].tolist()


def test_default_cpu_history_has_every_gradient_norm():
    h = train_gan(*toy_models(), toy_data, cfg(steps=4))
    assert np.all(np.isfinite(h["grad_norm_d"])) and np.all(np.isfinite(h["grad_norm_g"]))


# --------------------------------------------------------------------------- NaN found late: the step, and the folder


@pytest.mark.parametrize("sync_every", [1, 3, 10])
def test_a_nan_read_late_names_its_step_and_keeps_the_last_good_checkpoint(tmp_path, sync_every):
    G, D = image_models()
    reference = train_gan(*image_models(), Batches(IMAGES, 16), cfg(steps=4, batch_size=16))
    loss = (poisoned(6), losses.generator_loss_nonsaturating)
    with pytest.raises(FloatingPointError, match=r"^training stopped at step 6: loss_d is nan\. The last checkpoint"):
        train_gan(G, D, Batches(IMAGES, 16), cfg(steps=20, batch_size=16, out=tmp_path, checkpoint_every=4,
                                                 sample_every=4, loss=loss, sync_every=sync_every))
    ck = load_checkpoint(tmp_path / CHECKPOINT)
    assert ck["step"] == 4  # written after a read that found steps 1-4 finite; step 8's never came
    assert all(torch.isfinite(v).all() for part in ("G", "D") for v in ck["models"][part].values())
    on_disk = History.from_jsonl(tmp_path / HISTORY)
    assert on_disk["step"].tolist() == [1, 2, 3, 4]
    assert on_disk["loss_d"].tolist() == reference["loss_d"].tolist()  # the good rows, unchanged
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_000004.png"]


def test_a_nan_at_a_checkpoint_step_is_caught_before_the_checkpoint_is_written(tmp_path):
    G, D = toy_models()
    loss = (poisoned(4), losses.generator_loss_nonsaturating)
    with pytest.raises(FloatingPointError, match=r"at step 4: loss_d is nan"):
        train_gan(G, D, toy_data, cfg(steps=20, out=tmp_path, checkpoint_every=2, loss=loss, sync_every=10))
    assert load_checkpoint(tmp_path / CHECKPOINT)["step"] == 2
    assert History.from_jsonl(tmp_path / HISTORY)["step"].tolist() == [1, 2]


def test_a_nan_read_at_the_end_of_a_short_run_is_still_caught():
    G, D = toy_models()
    with pytest.raises(FloatingPointError, match=r"at step 3: loss_d is nan"):
        train_gan(G, D, toy_data, cfg(steps=3, sync_every=50,
                                      loss=(poisoned(3), losses.generator_loss_nonsaturating)))


def test_a_nan_found_by_a_callback_reading_the_history_names_its_step():
    G, D = toy_models()
    with pytest.raises(FloatingPointError, match=r"at step 2: loss_d is nan"):
        train_gan(G, D, toy_data, cfg(steps=20, sync_every=10, loss=(poisoned(2), losses.generator_loss_nonsaturating)),
                  callbacks=[train_mod.every(3, lambda s, G_, D_, h: len(h))])


# --------------------------------------------------------------------------- CUDA graphs: the fallback


def test_cuda_graphs_fall_back_to_eager_on_a_cpu_saying_why_in_one_line():
    G, D = image_models()
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    with pytest.warns(UserWarning) as caught:
        h = train_gan(G, D, Batches(IMAGES, 16), cfg(batch_size=16, cuda_graphs=True))
    messages = [str(w.message) for w in caught if "cuda_graphs" in str(w.message)]
    assert messages == ["cuda_graphs: CUDA graphs need a CUDA device and this run is on cpu; "
                        "training without CUDA graphs"]
    h2 = train_gan(G2, D2, Batches(IMAGES, 16), cfg(batch_size=16))
    assert_same_tensors(params(G, D), params(G2, D2))  # the eager fallback is the ordinary loop
    assert h["loss_d"].tolist() == h2["loss_d"].tolist()


def test_no_warning_without_cuda_graphs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_gan(*toy_models(), toy_data, cfg(steps=2))


@pytest.mark.parametrize("kw, reason", [
    (dict(amp="fp16"), "fp16's gradient scaler decides on the host"),
    (dict(loss="wasserstein", penalty="gp"), "WGAN-GP penalty draws random interpolation weights"),
    (dict(distributed=True), "distributed run"),
])
def test_what_a_cuda_graph_cannot_hold_is_named(kw, reason):
    refusal = train_mod._cuda_graphs_refusal(TrainConfig(cuda_graphs=True, **kw), torch.device("cuda"))
    assert reason in refusal and "\n" not in refusal


def test_an_optimiser_that_cannot_be_captured_is_named():
    G, D = toy_models()
    plain = torch.optim.Adam(G.parameters())
    ok = torch.optim.Adam(D.parameters(), capturable=True)
    refusal = train_mod._cuda_graphs_refusal(TrainConfig(cuda_graphs=True), torch.device("cuda"), plain, ok)
    assert refusal == "the optimiser given for G was built without capturable=True"
    assert train_mod._cuda_graphs_refusal(TrainConfig(cuda_graphs=True), torch.device("cuda"), None, ok) is None


# --------------------------------------------------------------------------- the channels_last workaround on CUDA


@pytest.mark.parametrize("size", [28, 64])
def test_channels_last_with_compile_on_cuda_keeps_the_latent_layer_contiguous(size):
    """The decision, checked on CPU modules by naming the device type: G's first transposed convolution (fed z as
    a 1x1 image) keeps the default layout on CUDA when channels_last and compile are combined; nothing else does."""
    for num_classes in (None, 10):
        torch.manual_seed(0)
        G = dcgan_generator(size, width=8, num_classes=num_classes)
        D = dcgan_discriminator(size, width=8)
        all_three = TrainConfig(channels_last=True, compile=True, amp="bf16")
        assert train_mod._channels_last_exceptions(G, "cuda", all_three) == ["main.0"]
        assert train_mod._channels_last_exceptions(G, "cuda", TrainConfig(channels_last=True, compile=True)) == ["main.0"]
        assert train_mod._channels_last_exceptions(G, "cpu", all_three) == []
        assert train_mod._channels_last_exceptions(G, "cuda", TrainConfig(channels_last=True, amp="bf16")) == []
        before = [p.clone() for p in G.parameters()]
        assert train_mod._to_channels_last(G, D, "cuda", all_three) == ["main.0"]
        w0 = G.main[0].weight
        assert w0.is_contiguous() and not w0.is_contiguous(memory_format=torch.channels_last)
        rest = [p for n, p in G.named_parameters() if p.dim() == 4 and n != "main.0.weight"]
        rest += [p for p in D.parameters() if p.dim() == 4]
        assert rest and all(p.is_contiguous(memory_format=torch.channels_last) for p in rest)
        assert_same_tensors(before, [p.detach() for p in G.parameters()])  # a layout, not a change of values


def test_an_mlp_generator_has_nothing_to_keep():
    G, _ = toy_models()
    assert train_mod._channels_last_exceptions(G, "cuda", TrainConfig(channels_last=True, compile=True)) == []


def test_on_a_cpu_every_weight_goes_channels_last_with_all_three_options():
    G, D = image_models()
    train_gan(G, D, Batches(IMAGES, 16), cfg(steps=1, batch_size=16, amp="bf16", channels_last=True, compile="eager"))
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in G.parameters() if p.dim() == 4)


# --------------------------------------------------------------------------- every combination of the options


COMBOS = [dict(amp=a, channels_last=c, compile=k) for a in (None, "bf16") for c in (False, True)
          for k in (False, "aot_eager")]


@pytest.mark.parametrize("options", COMBOS, ids=lambda o: "+".join(k for k, v in o.items() if v) or "none")
def test_every_combination_of_the_speed_options_trains_on_a_cpu(options):
    """aot_eager: dynamo's graph capture and AOTAutograd's backward (the code paths torch.compile adds) without
    inductor's C++ code generation; the next test runs inductor itself once."""
    G, D = image_models(width=2)
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    h = train_gan(G, D, Batches(IMAGES, 16), cfg(steps=2, batch_size=16, **options))
    h0 = train_gan(G2, D2, Batches(IMAGES, 16), cfg(steps=2, batch_size=16))
    assert len(h) == 2 and all(math.isfinite(v) for r in h.rows for v in r.values())
    # bfloat16 keeps about 3 significant digits; float32 paths agree to rounding
    rel = 0.05 if options["amp"] else 1e-4
    np.testing.assert_allclose(h["loss_d"], h0["loss_d"], rtol=rel)
    np.testing.assert_allclose(h["loss_g"], h0["loss_g"], rtol=rel)


def test_all_three_options_with_inductor_train_on_a_cpu():
    """torch.compile's default backend (inductor, C++ on a CPU) with bf16 autocast and channels_last: 2 steps."""
    G, D = image_models(width=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a machine without a C++ compiler falls back to eager, with torch's warning
        h = train_gan(G, D, Batches(IMAGES, 16), cfg(steps=2, batch_size=16, amp="bf16", channels_last=True,
                                                      compile=True))
    assert len(h) == 2 and all(math.isfinite(v) for r in h.rows for v in r.values())


# --------------------------------------------------------------------------- optimisers and data on the device


def test_a_cpu_run_keeps_torchs_default_adam():
    G, D = toy_models()
    opt, flags = train_mod._default_adam(G.parameters(), 2e-4, (0.5, 0.999), torch.device("cpu"), capturable=False)
    reference = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    assert {k: v for k, v in opt.param_groups[0].items() if k != "params"} == \
           {k: v for k, v in reference.param_groups[0].items() if k != "params"}
    assert flags == {"foreach": None, "fused": None, "capturable": False}


def test_resume_on_a_cpu_of_a_checkpoint_saved_with_gpu_optimiser_flags_stays_bit_identical(tmp_path):
    """A CUDA run saves Adam's groups with fused=True (and capturable with graphs); a CPU resume uses torch's
    default Adam again, so the run continues exactly as one that never left the CPU."""
    G, D = toy_models()
    train_gan(G, D, toy_data, cfg(steps=6))
    G2, D2 = toy_models()
    train_gan(G2, D2, toy_data, cfg(steps=3, out=tmp_path))
    ck = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    for name in ("G", "D"):
        for group in ck["optimizers"][name]["param_groups"]:
            group.update(fused=True, capturable=True, foreach=False)
    torch.save(ck, tmp_path / CHECKPOINT)
    G3, D3 = toy_models(seed=4)
    train_gan(G3, D3, toy_data, cfg(steps=6, out=tmp_path), resume=True)
    assert_same_tensors(params(G, D), params(G3, D3))


def test_set_optimizer_flags_puts_the_step_counters_where_the_implementation_wants_them():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], capturable=False)
    p.grad = torch.ones(3)
    opt.step()
    train_mod._set_optimizer_flags(opt, {"foreach": None, "fused": None, "capturable": False})
    assert opt.state[p]["step"].device.type == "cpu" and opt.param_groups[0]["capturable"] is False


def test_batches_move_to_a_device_in_place_without_changing_the_stream():
    a, b = Batches(IMAGES, 16, seed=3), Batches(IMAGES, 16, seed=3)
    first = [next(a) for _ in range(8)]  # crosses an epoch
    assert b.to("cpu") is b
    assert_same_tensors(first, [next(b) for _ in range(8)])
    assert train_mod._data_to_device(Batches(IMAGES, 16), torch.device("cpu")) is False  # CUDA only


# --------------------------------------------------------------------------- on a GPU (benchmarks/gpu_check.sh)


@cuda
def test_cuda_defaults_put_the_data_on_the_gpu_and_fill_every_row():
    G, D = image_models()
    data = Batches(IMAGES, 16)
    h = train_gan(G, D, data, TrainConfig(steps=60, batch_size=16, device="cuda", seed=0))
    assert data.device.type == "cuda" and len(h) == 60 and h["step"].tolist() == list(range(1, 61))
    assert np.isfinite(h["grad_norm_g"][9::10]).all() and np.isnan(h["grad_norm_g"][0])


@cuda
def test_cuda_deferred_reads_change_nothing_computed():
    G, D = image_models()
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    h1 = train_gan(G, D, Batches(IMAGES, 16), TrainConfig(steps=12, batch_size=16, device="cuda", seed=0,
                                                          sync_every=1, log_every=1))
    h2 = train_gan(G2, D2, Batches(IMAGES, 16), TrainConfig(steps=12, batch_size=16, device="cuda", seed=0,
                                                            sync_every=5, log_every=1))
    assert_same_tensors(params(G, D), params(G2, D2))
    assert h1["loss_d"].tolist() == h2["loss_d"].tolist()


@cuda
@pytest.mark.parametrize("amp", [None, "bf16"])
def test_cuda_graphs_train_like_the_eager_loop(amp):
    """Captured steps replay the same kernels on the same inputs: the losses agree with the eager loop's."""
    G, D = image_models(width=8)
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    c = dict(steps=10, batch_size=16, device="cuda", seed=0, amp=amp, log_every=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback
        h = train_gan(G, D, Batches(IMAGES, 16), TrainConfig(cuda_graphs=True, **c))
    h0 = train_gan(G2, D2, Batches(IMAGES, 16), TrainConfig(**c))
    tol = dict(rtol=0.05) if amp else dict(rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(h["loss_d"], h0["loss_d"], **tol)
    np.testing.assert_allclose(h["loss_g"], h0["loss_g"], **tol)
    assert np.isfinite(h["grad_norm_d"]).all()  # captured with the norms: every row has them


@cuda
@pytest.mark.parametrize("options", [dict(amp=a, channels_last=c, compile=k) for a in (None, "bf16")
                                     for c in (False, True) for k in (False, True)],
                         ids=lambda o: "+".join(k for k, v in o.items() if v) or "none")
@pytest.mark.parametrize("graphs", [False, True])
def test_cuda_every_combination_trains_at_64_px(options, graphs):
    """The combination that crashed in the backward pass (channels_last + compile + bf16) included."""
    torch.manual_seed(0)
    G, D = dcgan_generator(64, width=16), dcgan_discriminator(64, width=16)
    x = synthetic_images(256, size=64, seed=0)[0]
    h = train_gan(G, D, Batches(x, 32), TrainConfig(steps=5, batch_size=32, device="cuda", seed=0,
                                                    cuda_graphs=graphs, **options))
    assert len(h) == 5 and np.isfinite(h["loss_d"]).all() and np.isfinite(h["loss_g"]).all()


@cuda
def test_cuda_nan_read_late_names_its_step(tmp_path):
    G, D = image_models()
    with pytest.raises(FloatingPointError, match=r"at step 6: loss_d is nan"):
        train_gan(G, D, Batches(IMAGES, 16), TrainConfig(steps=40, batch_size=16, device="cuda", seed=0,
                                                        out=tmp_path, checkpoint_every=4,
                                                        loss=(poisoned(6), losses.generator_loss_nonsaturating)))
    assert load_checkpoint(tmp_path / CHECKPOINT)["step"] == 4


def test_a_failed_capture_warns_once_and_the_step_runs_eagerly_from_then_on(monkeypatch):
    """The CUDA-graph wrapper's bookkeeping, with torch.cuda's stream and graph calls replaced by stand-ins whose
    capture fails as a real one does when a step reads a value on the host."""
    import contextlib

    class Stream:
        def wait_stream(self, other):
            pass

    @contextlib.contextmanager
    def failing_graph(graph, **kw):
        yield
        raise RuntimeError("operation not permitted when stream is capturing\nsecond line")

    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: Stream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: object())
    monkeypatch.setattr(torch.cuda, "graph", failing_graph)
    calls = []

    def step(x, norm=True, check=False):
        calls.append((norm, check))
        return x * 2

    wrapped = train_mod._CudaGraphStep(step, "D", warmup=2)
    assert wrapped(torch.ones(2), norm=False, check=True).tolist() == [2.0, 2.0]
    assert wrapped(torch.ones(2), norm=False).tolist() == [2.0, 2.0]
    assert calls == [(True, True), (True, False)]  # warm-up steps compute the norms the graph will hold
    with pytest.warns(UserWarning) as caught:
        assert wrapped(torch.full((2,), 3.0), norm=False).tolist() == [6.0, 6.0]  # the capture, then eagerly
    assert [str(w.message) for w in caught] == [
        "cuda_graphs: the D step could not be captured (RuntimeError: operation not permitted when stream is "
        "capturing); training it without CUDA graphs"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert wrapped(torch.full((2,), 4.0), norm=False).tolist() == [8.0, 8.0]
    assert wrapped.eager and wrapped.graph is None and calls[-1] == (False, False)
