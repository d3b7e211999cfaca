"""Chapter 07, real images: graded questions.

Each answer is compared with the ganlib code the chapter teaches: the IDX parser with
:func:`ganlib.data.read_idx`, the scaling with :func:`ganlib.data.scale_images` /
:func:`ganlib.data.unscale_images`, the training step with two steps of the course's trainer
:func:`ganlib.train.train_gan` on the same models, batches and noise, and the checkpoint by
what a restored run does next (random numbers, parameters, the next optimiser step).
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import pickle
import random
import struct
import tempfile
from pathlib import Path

import numpy as np
import torch

from ganlib import data, losses, models, train
from ganlib.grading import CheckFailed, as_float_array, beside, expect_close, expect_tuple, question, random_sizes


# --------------------------------------------------------------------------- Q1 IDX


def _idx(array: np.ndarray, magic: int | None = None) -> bytes:
    magic = (2051 if array.ndim == 3 else 2049) if magic is None else magic
    return struct.pack(">i" + "i" * array.ndim, magic, *array.shape) + array.astype(np.uint8).tobytes()


def _reference_idx(raw: bytes) -> np.ndarray:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "file-idx-ubyte"
        p.write_bytes(raw)
        return data.read_idx(p)


def _rejects(parse_idx, raw: bytes, what: str, hint: str) -> None:
    try:
        out = parse_idx(raw)
    except ValueError:
        return
    except (struct.error, IndexError) as exc:
        raise CheckFailed(f"{what}: your parse_idx raised {type(exc).__name__} ({exc}); raise a ValueError that "
                          f"says what is wrong instead, so that users learn the file is damaged. {hint}") from None
    shape = getattr(out, "shape", None)
    raise CheckFailed(f"{what} was accepted (returned an array of shape {shape}): {hint}")


@question("q1", "parse an IDX file, rejecting a wrong magic number and a truncated file", 3, needs=["parse_idx"])
def check_q1(rng, parse_idx):
    n, rows, cols = random_sizes(rng, 3, 2, 9)
    images = rng.integers(0, 256, size=(n, rows, cols), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    for array, kind in ((images, "an image file (magic 2051)"), (labels, "a label file (magic 2049)")):
        raw = _idx(array)
        want = _reference_idx(raw)
        try:
            got = parse_idx(raw)
        except NotImplementedError:
            raise
        except Exception as exc:
            extra = (" A label file has ONE size in its header (8 bytes: magic and count), an image file three "
                     "(16 bytes)." if array.ndim == 1 else "")
            raise CheckFailed(f"parse_idx rejected {kind} of shape {array.shape} that is valid "
                              f"({type(exc).__name__}: {exc}). The header is big-endian ('>' in struct, "
                              f"4 + 4 * ndim bytes: magic, then one size per dimension).{extra}") from None
        if got is None:
            raise CheckFailed("parse_idx returned None: did you forget a `return` statement?")
        got = np.asarray(got)
        if got.shape != want.shape:
            if got.shape == want.shape[:1] + want.shape[1:][::-1]:
                raise CheckFailed(f"shape {got.shape} for {kind} of {n} images of {rows} rows x {cols} columns: "
                                  "rows and columns are swapped; the header gives N, then rows, then columns.")
            if array.ndim == 1:
                raise CheckFailed(f"shape {got.shape} for {kind}: a label file has ONE size in its header (8 bytes "
                                  "of header: magic and count), an image file three (16 bytes).")
            raise CheckFailed(f"{kind}: expected shape {want.shape}, got {got.shape}")
        if got.dtype != np.uint8:
            raise CheckFailed(f"{kind}: the values are unsigned bytes; return dtype uint8, got {got.dtype}")
        if not np.array_equal(got, want):
            raise CheckFailed(f"{kind}: the values differ from the file's; the data start right after the header "
                              f"(byte {4 + 4 * array.ndim}), row-major.")
    flat = images.reshape(n, rows * cols)   # a valid IDX file of another kind: 2-D unsigned bytes, magic 2050
    bad_magics = {2050: (flat, "2050 (2-D unsigned bytes) is neither"),
                  int.from_bytes(struct.pack("<i", 2051), "big"): (images, "the magic written little-endian is not")}
    for magic, (array, why) in bad_magics.items():
        _rejects(parse_idx, _idx(array, magic=magic), f"a file with magic number {magic}",
                 f"{why} 2051 (images) or 2049 (labels); check the magic number and raise ValueError otherwise.")
    whole = _idx(images)
    _rejects(parse_idx, whole[: len(whole) - rows * cols], "an image file missing its last image",
             f"the header promises {n} images; compare the number of data bytes with N * rows * cols "
             "(reshape(-1, rows, cols) silently returns one image fewer).")
    _rejects(parse_idx, whole[: len(whole) - 1], "an image file missing its last byte",
             "compare the number of data bytes with the product of the header's sizes.")
    _rejects(parse_idx, whole[:10], "a file cut inside its header (10 bytes)",
             "check that the file is long enough for its header before unpacking it.")
    extra = int(rng.integers(1, rows * cols))   # fewer than one image: a reshape(-1, ...) would not notice either
    for raw, kind in ((whole, "an image file"), (_idx(labels), "a label file")):
        _rejects(parse_idx, raw + bytes(rng.integers(0, 256, size=extra, dtype=np.uint8)),
                 f"{kind} with {extra} trailing bytes after its data",
                 "the number of data bytes must EQUAL the product of the header's sizes; a file that is longer "
                 "is damaged too (reading only the first N * rows * cols bytes hides that).")


# --------------------------------------------------------------------------- Q2 scaling


@question("q2", "scale images to [-1, 1] and back", 2, needs=["scale", "unscale"])
def check_q2(rng, scale, unscale):
    n, h, w = random_sizes(rng, 3, 2, 9)
    u = torch.from_numpy(rng.integers(0, 256, size=(n, h, w), dtype=np.uint8))
    u[0, 0, 0], u[0, 0, 1], u[0, 1, 0] = 0, 255, 128
    want = data.scale_images(u)
    x = scale(u.clone())
    if x is None:
        raise CheckFailed("scale returned None: did you forget a `return` statement?")
    if not isinstance(x, torch.Tensor):
        raise CheckFailed(f"scale should return a torch tensor, got {type(x).__name__}")
    if tuple(x.shape) == (n, h, w):
        raise CheckFailed(f"scale returned shape {tuple(x.shape)}: add the channel axis, (N, H, W) -> (N, 1, H, W) "
                          "(x.unsqueeze(1)), the layout of image batches in PyTorch.")
    if x.dtype != torch.float32:
        raise CheckFailed(f"scale should return float32 (the networks' dtype), got {x.dtype}")
    u64 = u.double().unsqueeze(1).numpy()
    expect_close(x, want, "scale(x)", rtol=0, atol=1e-6, wrong={
        "that is [0, 1] (x / 255); a tanh generator's outputs live in [-1, 1]: x / 127.5 - 1.": u64 / 255,
        "255 must map to exactly +1 and 0 to -1: divide by 127.5 (= 255 / 2), not 128.": u64 / 128 - 1,
        "that is [-1, 1] upside down: 0 (black) should map to -1 and 255 to +1.": 1 - u64 / 127.5,
    })
    # unscale: the exact round trip, rounding to the nearest grey level, and clipping
    back = unscale(want.clone())
    if not isinstance(back, torch.Tensor):
        raise CheckFailed(f"unscale should return a torch tensor, got {type(back).__name__}")
    if back.dtype != torch.uint8:
        raise CheckFailed(f"unscale should return uint8 pixels, got {back.dtype}")
    if tuple(back.shape) != (n, 1, h, w):
        raise CheckFailed(f"unscale should keep the shape (N, 1, H, W) = {(n, 1, h, w)}, got {tuple(back.shape)}")
    if not torch.equal(back, u.unsqueeze(1)):
        raise CheckFailed("unscale(scale(x)) does not give x back exactly: compute (x + 1) * 127.5 and ROUND "
                          "to the nearest integer before converting to uint8 (.to(torch.uint8) truncates: 101.99 -> 101).")
    near = torch.tensor([[-1 + 0.3 / 127.5, -1 + 0.7 / 127.5, 0.5, 1 - 0.3 / 127.5]])
    got_near = unscale(near.clone())
    expect_close(as_float_array(got_near, "unscale"), data.unscale_images(near).numpy(),
                 "unscale of values between grey levels", atol=0, rtol=0, wrong={
                     "round to the nearest integer; .to(torch.uint8) truncates (0.7 -> 0).":
                         torch.floor((near + 1) * 127.5).numpy()})
    outside = torch.tensor([[-1.3, -1.0, 1.0, 1.02, 2.5]])   # a generator without tanh can leave [-1, 1]
    got_out = as_float_array(unscale(outside.clone()), "unscale of values outside [-1, 1]")
    if not np.array_equal(got_out, data.unscale_images(outside).numpy().astype(float)):
        raise CheckFailed(f"unscale({outside.tolist()[0]}) = {got_out.tolist()[0]}, expected [0, 0, 255, 255, 255]: "
                          "clamp to [0, 255] before converting to uint8 (values outside wrap around).")


# --------------------------------------------------------------------------- Q3 one training step


def _quiet_trainer():
    """train_gan without its progress bar (the check prints one line)."""
    real_progress = train.progress
    return _Patch(train, "progress", lambda it, **kw: real_progress(it, **{**kw, "disable": True}))


class _Patch(contextlib.AbstractContextManager):
    def __init__(self, obj, name, value):
        self.obj, self.name, self.value = obj, name, value

    def __enter__(self):
        self.old = getattr(self.obj, self.name)
        setattr(self.obj, self.name, self.value)
        return self

    def __exit__(self, *exc):
        setattr(self.obj, self.name, self.old)
        return False


def _params(*modules) -> list[torch.Tensor]:
    return [p.detach().clone() for m in modules for p in m.parameters()]


class _WatchedSGD(torch.optim.SGD):
    """SGD that tells whether G's gradients changed between G's last optimiser call and D's step.

    G's optimiser (``watch=None``) remembers G's gradients at :meth:`arm` (the start of a call)
    and after each of its own ``step`` and ``zero_grad``; D's optimiser (``watch=`` G's optimiser)
    compares them at each of its ``step`` calls. A change there came from D's loss: its fake batch
    was not detached, and ``leaked`` is set. A class rather than wrapped methods, so that it can be
    pickled: when grading, the learner's step runs in the grader's worker, and ``leaked`` comes back.
    """

    _ganlib_sync = ("seen", "leaked")

    def __init__(self, params, lr: float, watch: _WatchedSGD | None = None):
        super().__init__(params, lr=lr)
        self.watch, self.seen, self.leaked = watch, None, False

    def __getstate__(self):
        return {**super().__getstate__(), "watch": self.watch, "seen": self.seen, "leaked": self.leaked}

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def arm(self) -> None:
        self.seen = [None if p.grad is None else p.grad.detach().clone() for p in self._params()]

    def step(self, closure=None):
        if self.watch is None:
            out = super().step(closure)
            self.arm()
            return out
        for old, p in zip(self.watch.seen or [], self.watch._params()):
            g = p.grad
            if g is not None and bool(g.abs().max() > 0) and (old is None or not torch.equal(old, g)):
                self.leaked = True
        return super().step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        if self.watch is None:
            self.arm()


@question("q3", "one training step: D on a real and a detached fake batch, then G on fresh noise", 3,
          needs=["train_step"], timeout=60.0)
def check_q3(rng, train_step):
    latent, dim, n = int(rng.integers(2, 6)), int(rng.integers(3, 8)), int(rng.integers(6, 12))
    seed = int(rng.integers(0, 2**31))
    torch.manual_seed(seed)
    G0 = models.generator(latent, dim, hidden=(8,), out_activation="tanh")
    D0 = models.discriminator(dim, hidden=(8,))
    reals = [torch.randn(n, dim) * 0.5 + 0.3 for _ in range(2)]
    gen = train.latent_generator(seed)
    zs = [train.sample_latent(n, latent, gen) for _ in range(4)]   # the trainer's order: z_d, z_g per step
    lr_d, lr_g = 0.05, 0.03

    def sgd(G, D):
        return torch.optim.SGD(G.parameters(), lr=lr_g), torch.optim.SGD(D.parameters(), lr=lr_d)

    # the course's trainer, two steps on the same batches and noise
    G1, D1 = copy.deepcopy(G0), copy.deepcopy(D0)
    oG1, oD1 = sgd(G1, D1)
    with _quiet_trainer():
        hist = train.train_gan(G1, D1, reals, train.TrainConfig(steps=2, batch_size=n, seed=seed, device="cpu"),
                               latent_dim=latent, opt_G=oG1, opt_D=oD1)
    # the learner's step, twice; G's gradients are looked at when D steps (opt_D.step())
    G2, D2 = copy.deepcopy(G0), copy.deepcopy(D0)
    oG2 = _WatchedSGD(G2.parameters(), lr=lr_g)
    oD2 = _WatchedSGD(D2.parameters(), lr=lr_d, watch=oG2)
    got_losses = []
    for k in range(2):
        oG2.arm()
        out = train_step(G2, D2, oG2, oD2, reals[k].clone(), zs[2 * k].clone(), zs[2 * k + 1].clone())
        if oD2.leaked:
            raise CheckFailed(f"step {k + 1}: right after the D step (opt_D.step()) G's parameters hold gradients of "
                              "D's loss: no gradient may reach G in the D step. Detach the fake batch "
                              "(fake = G(z_d).detach()); zeroing G's gradients later hides the mistake but still "
                              "backpropagates D's loss through G, and a G that accumulates gradients trains wrong.")
        loss_d, loss_g = expect_tuple(out, "train_step(...)", ("loss_d", "loss_g"))
        got_losses.append((float(as_float_array(loss_d, "loss_d")), float(as_float_array(loss_g, "loss_g"))))
        if k == 0:
            first = _params(G2, D2)
    want_losses = list(zip(hist["loss_d"].tolist(), hist["loss_g"].tolist()))

    # plausible mistakes, replayed by hand from the same start
    def replay(mistake: str):
        G, D = copy.deepcopy(G0), copy.deepcopy(D0)
        oG, oD = sgd(G, D)
        for k in range(2 if mistake == "no_zero_d" else 1):
            real, zd, zg = reals[k], zs[2 * k], zs[2 * k + 1]
            def d_step():
                fake = G(zd) if mistake == "no_detach" else G(zd).detach()
                if mistake != "no_zero_d":
                    oD.zero_grad()
                losses.discriminator_loss_bce(D(real), D(fake)).backward()
                oD.step()

            def g_step():
                z = zd if mistake == "same_z" else zg
                if mistake != "no_detach":
                    oG.zero_grad()
                loss = (losses.generator_loss_saturating if mistake == "saturating"
                        else losses.generator_loss_nonsaturating)(D(G(z)))
                loss.backward()
                oG.step()

            if mistake == "g_first":
                g_step(); d_step()
            else:
                d_step(); g_step()
        return _params(G, D)

    hints = {
        "g_first": "the order is D first (on the current G), then G against the updated D.",
        "same_z": "the G step draws on fresh noise z_g; z_d belongs to the D step.",
        "saturating": "that is the saturating (minimax) generator loss log(1 - D(G(z))); the trainer's default "
                      "is the non-saturating -log D(G(z)) = softplus(-logits).",
        "no_detach": "G's update contains gradients from the D step: detach the fake batch in the D step "
                     "(G(z_d).detach()) and zero G's gradients before its own backward pass.",
    }
    n_g = len(list(G0.parameters()))

    def compare(got, want, label):
        for a, b in zip(got, want):
            if not torch.allclose(a, b, rtol=1e-4, atol=1e-6):
                for mistake, hint in hints.items():
                    if all(torch.allclose(x, y, rtol=1e-4, atol=1e-6) for x, y in zip(got, replay(mistake))):
                        raise CheckFailed(f"{label}: {hint}")
                which = "G" if any(not torch.allclose(x, y, rtol=1e-4, atol=1e-6)
                                   for x, y in zip(got[:n_g], want[:n_g])) else "D"
                raise CheckFailed(f"{label}: {which}'s parameters differ from the trainer's after the same step "
                                  "(D: BCE on D(real) and D(fake.detach()), zero_grad, backward, step; then G).")

    G_ref, D_ref = copy.deepcopy(G0), copy.deepcopy(D0)
    oG_ref, oD_ref = sgd(G_ref, D_ref)
    with _quiet_trainer():
        train.train_gan(G_ref, D_ref, reals[:1], train.TrainConfig(steps=1, batch_size=n, seed=seed, device="cpu"),
                        latent_dim=latent, opt_G=oG_ref, opt_D=oD_ref)
    compare(first, _params(G_ref, D_ref), "after one step")
    got_two = _params(G2, D2)
    if not all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(got_two, _params(G1, D1))):
        if all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(got_two, replay("no_zero_d"))):
            raise CheckFailed("the second step differs: D's gradients accumulate across steps; call "
                              "opt_D.zero_grad() before D's backward pass (and opt_G.zero_grad() before G's).")
        raise CheckFailed("the first step matches the trainer's but the second does not: zero each optimiser's "
                          "gradients before its backward pass, and leave no gradients behind in D after G's step.")
    for k, ((gd, gg), (wd, wg)) in enumerate(zip(got_losses, want_losses), 1):
        expect_close(gd, wd, f"loss_d of step {k}", rtol=1e-4, atol=1e-6)
        expect_close(gg, wg, f"loss_g of step {k}", rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- Q4 checkpoints


def _draws() -> tuple:
    return random.random(), tuple(np.random.random_sample(3).tolist()), tuple(torch.randn(3).tolist())


# The checkpoint questions look at the process that runs the learner's code (its random number
# generators, its files, its torch.save): the helpers below run there, through `beside`.

def _seed_all(python_seed: int, numpy_seed: int, torch_seed: int) -> None:
    random.seed(python_seed)
    np.random.seed(numpy_seed)
    torch.manual_seed(torch_seed)


def _new_folder() -> str:
    return tempfile.mkdtemp(prefix="checkpoint-")


def _remove_folder(folder: str) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _listing(folder: str) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir())


def _file_facts(path) -> tuple:
    """``(contents, inode)`` of a file, or ``(None, None)`` when there is none."""
    path = Path(path)
    if not path.exists():
        return None, None
    return path.read_bytes(), path.stat().st_ino


@question("q4", "save and restore a checkpoint, random number generators included", 3,
          needs=["save_state", "restore_state"], timeout=60.0)
def check_q4(rng, save_state, restore_state):
    latent, dim, n = int(rng.integers(2, 6)), int(rng.integers(3, 8)), int(rng.integers(4, 9))
    seed = int(rng.integers(0, 2**31))
    step = int(rng.integers(5, 500))
    torch.manual_seed(seed)
    G, D = models.generator(latent, dim, hidden=(8,)), models.discriminator(dim, hidden=(8,))
    oG = torch.optim.Adam(G.parameters(), lr=1e-2, betas=(0.5, 0.999))
    oD = torch.optim.Adam(D.parameters(), lr=1e-2, betas=(0.5, 0.999))
    x, z = torch.randn(n, dim), torch.randn(n, latent)

    def adam_step(G, D, oG, oD):  # any loss will do: what matters is Adam's state
        oD.zero_grad()
        D(x).square().mean().backward()
        oD.step()
        oG.zero_grad()
        D(G(z)).mean().backward()
        oG.step()

    adam_step(G, D, oG, oD)
    beside(save_state, _seed_all, seed, seed % 2**32, seed + 1)
    saved = _params(G, D)
    folder = beside(save_state, _new_folder)
    try:
        path = Path(folder) / "checkpoint.pt"
        save_state(path, G, D, oG, oD, step)
        if beside(save_state, _file_facts, path)[0] is None:
            raise CheckFailed("save_state wrote no file at `path`: torch.save(checkpoint_dict, path).")
        want_draws = beside(save_state, _draws)
        adam_step(G, D, oG, oD)
        want_next = _params(G, D)
        # another process, later: fresh models and optimisers, other random states
        torch.manual_seed(seed + 7)
        G2, D2 = models.generator(latent, dim, hidden=(8,)), models.discriminator(dim, hidden=(8,))
        oG2 = torch.optim.Adam(G2.parameters(), lr=1e-2, betas=(0.5, 0.999))
        oD2 = torch.optim.Adam(D2.parameters(), lr=1e-2, betas=(0.5, 0.999))
        beside(restore_state, _seed_all, seed + 3, (seed + 3) % 2**32, seed + 7)
        try:
            got_step = restore_state(path, G2, D2, oG2, oD2)
        except pickle.UnpicklingError as exc:
            raise CheckFailed("torch.load refused the file (weights_only=True, the safe default, loads tensors "
                              "and plain Python values only): store NumPy's state as a tensor or list "
                              f"(torch.from_numpy(state[1])). ({str(exc).splitlines()[0][:100]})") from None
        got_draws = beside(restore_state, _draws)
        leftovers = [name for name in beside(save_state, _listing, folder) if name != "checkpoint.pt"]
    finally:
        beside(save_state, _remove_folder, folder)
    if got_step is None:
        raise CheckFailed("restore_state returned None: return the step stored in the checkpoint.")
    if int(got_step) != step:
        raise CheckFailed(f"restore_state returned step {got_step}, the checkpoint was saved at step {step}.")
    if not all(torch.equal(a, b) for a, b in zip(_params(G2, D2), saved)):
        raise CheckFailed("the restored G and D differ from the saved ones: save G.state_dict() and D.state_dict(), "
                          "restore them with load_state_dict.")
    names = ("Python's random", "NumPy's global generator", "torch's generator")
    calls = ("random.getstate() / random.setstate()", "np.random.get_state() / np.random.set_state()",
             "torch.get_rng_state() / torch.set_rng_state()")
    for got, want, name, call in zip(got_draws, want_draws, names, calls):
        if got != want:
            raise CheckFailed(f"after restoring, {name} does not continue where the saved run was: "
                              f"save and restore its state ({call}); dropout, data order and noise depend on it.")
    adam_step(G2, D2, oG2, oD2)
    if not all(torch.allclose(a, b, rtol=1e-6, atol=1e-8) for a, b in zip(_params(G2, D2), want_next)):
        raise CheckFailed("the next optimiser step after restoring differs from the saved run's: save and restore "
                          "opt_G.state_dict() and opt_D.state_dict() (Adam's moment estimates and step counts).")
    if leftovers:
        raise CheckFailed(f"save_state left extra files beside the checkpoint: {leftovers}")
    _check_atomic(save_state, G2, D2, oG2, oD2, step)


class _Interrupted(BaseException):
    """A crash in the middle of writing a checkpoint (as Ctrl-C or a full disk would stop torch.save)."""


_CRASH: dict = {"real": None, "interrupted": False}


def _crashing_save(obj, f, *args, **kwargs):
    buffer = io.BytesIO()
    _CRASH["real"](obj, buffer, *args, **kwargs)
    half = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as out:
            out.write(half)
    else:
        f.write(half)
    _CRASH["interrupted"] = True
    raise _Interrupted()


def _crash_saves(on: bool) -> bool:
    """Make ``torch.save`` stop half-way (``on``), or put it back; returns whether a save was interrupted."""
    if on:
        if _CRASH["real"] is None:
            _CRASH["real"] = torch.save
        _CRASH["interrupted"] = False
        torch.save = torch.serialization.save = _crashing_save
        return False
    if _CRASH["real"] is not None:
        torch.save = torch.serialization.save = _CRASH["real"]
        _CRASH["real"] = None
    return bool(_CRASH["interrupted"])


def _check_atomic(save_state, G, D, opt_G, opt_D, step: int) -> None:
    """Overwrite a checkpoint, once with ``torch.save`` stopped half-way, once normally.

    The interrupted save must leave the previous file intact, and the completed one must replace
    the file (a new file renamed over it), not rewrite it in place.
    """
    folder = beside(save_state, _new_folder)
    try:
        path = Path(folder) / "checkpoint.pt"
        save_state(path, G, D, opt_G, opt_D, step)
        before, inode = beside(save_state, _file_facts, path)
        beside(save_state, _crash_saves, True)
        try:
            save_state(path, G, D, opt_G, opt_D, step + 1)
        except BaseException:  # the crash, or what the answer's own clean-up turned it into
            if not beside(save_state, _crash_saves, False):
                raise
        finally:
            interrupted = beside(save_state, _crash_saves, False)
        after, _ = beside(save_state, _file_facts, path)
        if interrupted and (after is None or after != before):
            raise CheckFailed("a save interrupted while writing (a crash, Ctrl-C, a full disk) destroyed the previous "
                              "checkpoint: write to a temporary file in the same folder, then os.replace(tmp, path), "
                              "so that `path` always holds a complete checkpoint.")
        save_state(path, G, D, opt_G, opt_D, step + 1)
        if beside(save_state, _file_facts, path)[1] == inode:
            raise CheckFailed("save_state rewrote the checkpoint in place (the file at `path` is the same file as "
                              "before): a crash during the write would leave half a checkpoint. Write a temporary "
                              "file in the same folder, then os.replace(tmp, path).")
    finally:
        beside(save_state, _remove_folder, folder)


QUESTIONS = [check_q1, check_q2, check_q3, check_q4]
