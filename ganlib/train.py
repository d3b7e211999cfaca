"""The course's one GAN training loop (chapter 06 on).

Every later chapter, the command line and distributed training use :func:`train_gan` with
options; none of them writes a second loop. One generator step is chapter 03's algorithm:

1. ``n_critic`` discriminator steps, each on a fresh real batch and a detached fake batch
   ``G(z)`` (no gradient flows into G), with an optional gradient penalty and weight clipping;
2. one generator step on a fresh ``z``, D frozen.

Losses come by name from :data:`ganlib.losses.LOSSES`, penalties are ``"gp"`` (WGAN-GP,
Gulrajani et al. 2017) and ``"r1"`` (Mescheder et al. 2018), packing is PacGAN's (Lin et al.
2018). Randomness, all seeded from ``config.seed``: python, NumPy and torch's global
generators (``ganlib.utils.seed_everything``: data sources, dropout, the penalty's
interpolation weights) and a separate ``torch.Generator`` on the device for the latent noise
``z = torch.randn(n, latent_dim, generator=...)`` (:func:`latent_generator`), so the noise
never repeats the data's stream.

Checkpoints (``config.out``) hold G, D, both optimisers, every RNG state, the data source's
position, the step, the config and the ganlib version; ``resume=`` continues bit-identically
on a CPU. Their files (writing, reading, checking, the random states, rebuilding the command
line's models) are :mod:`ganlib.checkpoints`; the ``ganlib train`` and ``ganlib sample``
commands are :mod:`ganlib.cli.train` and :mod:`ganlib.cli.sample`. Extension points for later chapters, so that they add options instead of loops:
a batch ``(x, y)`` carries labels (``_Source.next``: conditional GANs), and every file is
written only where ``_is_main_process()`` holds (rank 0 of a distributed run:
``TrainConfig(distributed=True)`` runs this loop in every process ``torchrun`` starts, with the
pieces of :mod:`ganlib.distributed`).

Chapter 08's speed options keep a GPU busy without a second loop: the statistics of each step
stay on the device and are read every ``sync_every`` steps, gradient norms are computed on logged
steps only, an in-memory ``Batches`` moves to the GPU, Adam runs fused, and ``cuda_graphs``
captures the whole D and G steps (:class:`_CudaGraphStep`), with an eager fallback that says why.

This module is longer than the others (about 1,350 lines) on purpose: the loop and the small
pieces it is made of (config, history, data sources, checks, speed options, conditional models,
EMA) are read together, as one algorithm with its options.

Examples
--------
>>> import torch
>>> from ganlib.models import generator, discriminator
>>> G, D = generator(latent_dim=2, out_dim=2), discriminator(in_dim=2)
>>> real = lambda n: torch.randn(n, 2) * 0.1 + 1.0
>>> h = train_gan(G, D, real, TrainConfig(steps=5, batch_size=16, device="cpu"))
>>> len(h), h["loss_d"].shape
(5, (5,))
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ganlib import __version__
from ganlib import losses as _losses
from ganlib.checkpoints import (CHECKPOINT, _check_compatible, _rng_state, _set_rng_state, build_models,
                                load_checkpoint, save_checkpoint)
from ganlib.utils import default_device, progress, seed_everything

# save_checkpoint, load_checkpoint and build_models live in ganlib.checkpoints; they stay importable from here.
__all__ = [
    "TrainConfig", "History", "train_gan", "every", "pack_samples", "latent_generator", "sample_latent",
    "resolve_device", "save_checkpoint", "load_checkpoint", "build_models", "CHECKPOINT", "HISTORY",
]

COLUMNS = ("step", "loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g", "penalty",
           "samples_per_s", "time")
PENALTIES = (None, "gp", "r1")
AMP = (None, "bf16", "fp16")
_FP16_DEVICES = ("cuda",)  # float16 autocast with a gradient scaler: a GPU feature (tests widen it to the CPU)


HISTORY = "history.jsonl"


# --------------------------------------------------------------------------- configuration


@dataclass
class TrainConfig:
    """Everything :func:`train_gan` needs besides the models and the data.

    Budget: training stops at the first limit reached among ``steps`` (generator steps, counted
    from the start of the run being resumed too), ``epochs`` (passes over a data source with a
    length) and ``minutes`` (wall clock of this call). Set ``steps=None`` to train by time or
    epochs alone.

    Attributes
    ----------
    steps, minutes, epochs : budget (see above).
    batch_size : int
        Real and fake samples per D step for a callable data source; an iterable source
        decides its own batch size (the fake batch always matches the real one).
    n_critic : int
        D steps per G step (WGAN uses 5).
    loss : str or (d_loss, g_loss)
        A key of :data:`ganlib.losses.LOSSES`, or a pair of functions ``d_loss(real, fake)``,
        ``g_loss(fake)`` on D's outputs.
    penalty : None, "gp" or "r1"; penalty_weight : float
        WGAN-GP's lambda or R1's gamma (10 in both papers).
    pack : int
        PacGAN's m: D sees m samples concatenated (:func:`pack_samples`); D's input must fit.
    clip : float or None
        WGAN weight clipping bound c, applied after every D step.
    lr_g, lr_d, betas :
        Adam's settings for the default optimisers (DCGAN's 2e-4 and (0.5, 0.999)).
    device : "auto", "cpu", "cuda", "cuda:1", "mps"
    seed : int or None
        Seeds python, NumPy, torch and the latent generator; ``None`` leaves the global
        generators alone and draws the latent seed from torch's.
    out : folder or None
        Where checkpoints (``checkpoint.pt``), the history (``history.jsonl``) and sample grids
        (``samples/step_000100.png``) go. Nothing is written when ``None``.
    checkpoint_every, sample_every : int or None
        Save a checkpoint / a fixed-noise sample grid every so many steps (both also at the end).
    n_samples : int
        Size of the fixed-noise sample grid.
    amp : None, "bf16" or "fp16"
        Mixed precision with ``torch.autocast``: bfloat16 (CPU and CUDA) or float16 with a
        gradient scaler (CUDA only). Losses and penalties are computed in float32.
    channels_last : bool
        Models and image batches in the NHWC memory layout (faster convolutions on GPUs).
    compile : bool or str
        ``torch.compile`` both models (a string names the backend, e.g. ``"aot_eager"``); falls
        back to eager mode, with a warning, when torch cannot compile here.
    cudnn_benchmark : bool
        Let cuDNN pick the fastest convolution algorithms (CUDA only).
    sync_every : int or None
        Read the steps' statistics (losses, D's outputs, gradient norms) from the device every
        so many steps, in one transfer. Between reads the host never waits for the device, so
        a GPU always has work queued. The history keeps one row per step, filled in at the
        read (or as soon as anyone reads ``history``, e.g. a callback); a NaN/inf still names
        the step where it appeared, and checkpoints and sample grids are written only after a
        read found every step before them finite. ``None``: 1 on a CPU or MPS (the values are
        there at once), 50 on CUDA. A distributed run reads every step (its ranks agree on
        stopping at every step).
    log_every : int or None
        Gradient norms (``grad_norm_d``, ``grad_norm_g``) are computed on steps ``log_every,
        2 log_every, ...`` only; other rows hold ``None`` (NaN in ``history["grad_norm_d"]``).
        ``None``: 1 on a CPU or MPS (every row, as always), 10 on CUDA. With ``cuda_graphs`` the
        norms are part of the captured steps, cost no host time, and every row has them.
    cuda_graphs : bool
        After 3 eager warm-up steps, capture the whole D step and the whole G step (forwards,
        backwards, optimiser steps, EMA) in two CUDA graphs and replay them, so the host issues
        a handful of launches per step instead of hundreds. The steps compute the same things
        (the noise and the real batch are drawn outside the graphs, in the same order, and
        copied into the graphs' input buffers). CUDA only: elsewhere, and with what a graph
        cannot hold (fp16's gradient scaler, WGAN-GP's random interpolation, distributed
        training, an optimiser without ``capturable=True``, a failed capture), training runs
        eagerly after a one-line warning that says why.
    ema : float or None
        Keep an exponential moving average of G's weights with this decay (e.g. 0.999);
        it is saved in checkpoints, draws the sample grids, and is used by ``ganlib sample --ema``.
    distributed : bool
        Data-parallel training in every process that ``torchrun`` starts (appendix B,
        :mod:`ganlib.distributed`): ``batch_size`` is the global batch, each rank trains on
        ``batch_size / world_size`` rows, G and D are wrapped in ``DistributedDataParallel``,
        only rank 0 writes files. A checkpoint resumes with any number of processes.
    sync_batchnorm : bool
        With ``distributed``: BatchNorm statistics over the global batch (``SyncBatchNorm``, CUDA only).
    num_classes : int or None
        Class-conditional training (chapter 10): batches are ``(x, y)`` with labels in
        ``0..num_classes-1``, and the models are called as ``G(z, y)`` and ``D(x, y)``. In a D
        step the fake batch is made for the real batch's labels (so real, fake and the penalty's
        interpolates share labels); in the G step the labels are drawn uniformly from the
        latent generator. Sample grids show one row per class. Needs ``pack=1``.

    Examples
    --------
    >>> TrainConfig(steps=None, minutes=2.5, loss="hinge", n_critic=2).minutes
    2.5
    >>> TrainConfig(loss="wgan")
    Traceback (most recent call last):
    ...
    ValueError: unknown loss 'wgan'; choose one of ['hinge', 'lsgan', 'minimax', 'nonsaturating', 'wasserstein'] or pass a pair of functions (d_loss, g_loss)
    """

    steps: int | None = 1000
    minutes: float | None = None
    epochs: float | None = None
    batch_size: int = 64
    n_critic: int = 1
    loss: str | tuple = "nonsaturating"
    penalty: str | None = None
    penalty_weight: float = 10.0
    pack: int = 1
    clip: float | None = None
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    device: str = "auto"
    seed: int | None = 0
    # chapter 07: checkpoints and sample grids
    out: str | os.PathLike | None = None
    checkpoint_every: int | None = None
    sample_every: int | None = None
    n_samples: int = 64
    # chapter 08: speed
    amp: str | None = None
    channels_last: bool = False
    compile: bool | str = False
    cudnn_benchmark: bool = True
    sync_every: int | None = None
    log_every: int | None = None
    cuda_graphs: bool = False
    # later chapters: an EMA of G's weights, class-conditional models
    ema: float | None = None
    # appendix B: data-parallel training over torchrun's processes
    distributed: bool = False
    sync_batchnorm: bool = False
    num_classes: int | None = None

    def __post_init__(self):
        def positive_int(name, allow_none=True):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer{' or None' if allow_none else ''}, "
                                 f"got {v!r}")

        for name in ("steps", "checkpoint_every", "sample_every", "sync_every", "log_every"):
            positive_int(name)
        for name in ("batch_size", "n_critic", "pack", "n_samples"):
            positive_int(name, allow_none=False)
        for name in ("minutes", "epochs", "clip"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ValueError(f"TrainConfig.{name} must be a positive number or None, got {v!r}")
        if self.steps is None and self.minutes is None and self.epochs is None:
            raise ValueError("TrainConfig needs a budget: set steps, minutes or epochs")
        if isinstance(self.loss, str):
            if self.loss not in _losses.LOSSES:
                raise ValueError(f"unknown loss {self.loss!r}; choose one of {sorted(_losses.LOSSES)} "
                                 "or pass a pair of functions (d_loss, g_loss)")
        elif not (isinstance(self.loss, (tuple, list)) and len(self.loss) == 2 and all(map(callable, self.loss))):
            raise ValueError(f"loss must be a name from ganlib.losses.LOSSES or a pair (d_loss, g_loss), got {self.loss!r}")
        if self.penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {PENALTIES}, got {self.penalty!r}")
        if not self.penalty_weight >= 0:
            raise ValueError(f"penalty_weight must be >= 0, got {self.penalty_weight!r}")
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TrainConfig.{name} must be positive, got {getattr(self, name)!r}")
        self.betas = tuple(float(b) for b in self.betas)
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if not isinstance(self.device, str) or self.device.split(":")[0] not in ("auto", "cpu", "cuda", "mps"):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' (or 'cuda:N') or 'mps', got {self.device!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer))
                                      or self.seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {self.seed!r}")
        if not isinstance(self.cuda_graphs, bool):
            raise ValueError(f"cuda_graphs must be True or False, got {self.cuda_graphs!r}")
        if self.amp not in AMP:
            raise ValueError(f"amp must be one of {AMP}, got {self.amp!r}")
        if self.ema is not None and not 0 < self.ema < 1:
            raise ValueError(f"ema is a decay in (0, 1), e.g. 0.999, got {self.ema!r}")
        if self.sync_batchnorm and not self.distributed:
            raise ValueError("sync_batchnorm synchronises BatchNorm across the processes of a distributed run: "
                             "set distributed=True too")
        if self.num_classes is not None:
            positive_int("num_classes")
            if self.num_classes < 2 or self.pack != 1:
                raise ValueError(f"a conditional run needs num_classes >= 2 and pack=1, got num_classes="
                                 f"{self.num_classes!r}, pack={self.pack!r}")

    def to_dict(self) -> dict:
        """The config as plain Python values (a loss given as functions becomes its names)."""
        d = dataclasses.asdict(self)
        if not isinstance(self.loss, str):
            d["loss"] = "custom:" + ",".join(getattr(f, "__name__", type(f).__name__) for f in self.loss)
        d["out"] = None if self.out is None else str(self.out)
        return d


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> :func:`ganlib.utils.default_device`; otherwise the named device, if this machine has it.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if name == "auto":
        return default_device()
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda or mps") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was requested but torch sees no CUDA GPU here "
                           f"(torch {torch.__version__}, torch.cuda.is_available() is False); "
                           "use device 'auto' or 'cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise RuntimeError(f"device {name!r} was requested but only {torch.cuda.device_count()} CUDA GPU(s) exist")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError(f"device {name!r} was requested but Apple's MPS backend is not available here; "
                           "use device 'auto' or 'cpu'")
    return dev


# --------------------------------------------------------------------------- history


class History:
    """One row per generator step: ``step, loss_d, loss_g, d_real, d_fake, grad_norm_d, grad_norm_g,
    penalty, samples_per_s, time``.

    ``d_real`` / ``d_fake`` are the mean of D's output on the last D step's real / fake batch:
    a probability ``sigmoid(logit)`` for the BCE losses ("minimax", "nonsaturating"), the raw
    output otherwise. ``loss_d`` and ``penalty`` are from the last of the ``n_critic`` D steps;
    ``samples_per_s`` counts real samples; ``time`` is seconds since training began (resumed
    runs continue the clock). ``grad_norm_d`` / ``grad_norm_g`` are ``None`` on the steps that
    :func:`train_gan` does not log (``TrainConfig.log_every``).

    While :func:`train_gan` runs, the rows of the steps whose statistics are still on the
    device (``TrainConfig.sync_every``) are filled in at the next read, which any use of the
    history (``len``, indexing, ``rows``) triggers. A read covers a window of steps: their
    ``samples_per_s`` is the window's rate (the steps' own time plus the wait for the device,
    so callbacks and checkpoints are not counted) and their ``time`` is spread evenly from the
    previous read to this one; with one step per read (the CPU default) both are per step.

    Examples
    --------
    >>> h = History([{"step": 1, "loss_d": 1.5, "loss_g": 0.7}, {"step": 2, "loss_d": 1.25, "loss_g": 0.75}])
    >>> len(h), h["loss_d"].tolist(), h[-1]["step"]
    (2, [1.5, 1.25], 2)
    """

    def __init__(self, rows: Iterable[dict] = ()):
        self._rows: list[dict] = [dict(r) for r in rows]
        self._sync: Callable[[], None] | None = None  # train_gan's read of the statistics still on the device

    @property
    def rows(self) -> list[dict]:
        """The rows, one dict per step (pending steps of a running :func:`train_gan` are read first)."""
        if self._sync is not None:
            self._sync()
        return self._rows

    @rows.setter
    def rows(self, rows: list[dict]) -> None:
        self._rows = rows

    def append(self, row: dict) -> None:
        self.rows.append(row)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key):
        if isinstance(key, str):
            if self.rows and key not in self.rows[0]:
                raise KeyError(f"no column {key!r}; the columns are {list(self.rows[0])}")
            return np.array([r[key] for r in self.rows], dtype=float)
        return self.rows[key]

    @property
    def columns(self) -> list[str]:
        return list(self.rows[0]) if self.rows else list(COLUMNS)

    def __repr__(self) -> str:
        if not self.rows:
            return "History(0 steps)"
        last = self.rows[-1]
        return (f"History({len(self)} steps, last step {last['step']}: "
                + ", ".join(f"{k}={last[k]:.4g}" for k in ("loss_d", "loss_g") if k in last) + ")")

    def plot(self, smooth: int = 1, axes=None):
        """Loss curves and D's outputs on real and fake batches, side by side (see :func:`ganlib.plot.plot_history`)."""
        from ganlib.plot import plot_history

        return plot_history(self, smooth=smooth, axes=axes)

    def to_jsonl(self, path: str | os.PathLike) -> None:
        """Write one JSON object per line (atomically: a temporary file, then a rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as f:
            for r in self.rows:
                f.write(json.dumps(r) + "\n")
        os.replace(tmp, path)

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike) -> "History":
        """Read a history written by :meth:`to_jsonl` or by :func:`train_gan`'s ``out`` folder."""
        rows = []
        with open(path) as f:
            for i, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{path}, line {i}: not a JSON object ({e.msg})") from None
        return cls(rows)


# --------------------------------------------------------------------------- small pieces


def every(n: int, fn: Callable) -> Callable:
    """A callback that calls ``fn(step, G, D, history)`` only on steps ``n, 2n, 3n, ...``.

    Examples
    --------
    >>> seen = []
    >>> cb = every(3, lambda step, G, D, h: seen.append(step))
    >>> for s in range(1, 10): cb(s, None, None, None)
    >>> seen
    [3, 6, 9]
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"every(n, fn) needs a positive integer n, got {n!r}")

    def callback(step, G, D, history):
        if step % n == 0:
            fn(step, G, D, history)

    callback.__name__ = f"every_{n}_{getattr(fn, '__name__', 'callback')}"
    return callback


def pack_samples(x: Tensor, m: int) -> Tensor:
    """PacGAN packing: groups of ``m`` consecutive samples become one, concatenated along axis 1.

    ``(n, d) -> (n // m, m * d)``; images ``(n, C, H, W) -> (n // m, m * C, H, W)`` (channels).
    Sample ``i`` of the result holds samples ``m*i, ..., m*i + m - 1``.

    Examples
    --------
    >>> pack_samples(torch.arange(6.0).reshape(6, 1), 2).tolist()
    [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    >>> pack_samples(torch.zeros(8, 3, 4, 4), 4).shape
    torch.Size([2, 12, 4, 4])
    """
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"the packing factor m must be a positive integer, got {m!r}")
    if x.dim() < 2:
        raise ValueError(f"pack_samples needs a batch of shape (n, d) or (n, C, H, W), got shape {tuple(x.shape)}")
    n = x.shape[0]
    if n % m:
        raise ValueError(f"the packing factor m={m} must divide the batch size {n}: choose a batch size that is a "
                         f"multiple of {m}")
    if m == 1:
        return x
    return x.reshape(n // m, m * x.shape[1], *x.shape[2:])


def _derived_seed(seed: int, stream: int) -> int:
    """An independent 63-bit seed for ``stream`` (1: latent noise, 2: fixed sample noise) from ``seed``."""
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def latent_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The seeded ``torch.Generator`` :func:`train_gan` draws its latent noise from.

    Its seed is derived from ``seed`` with NumPy's ``SeedSequence`` (stream 1), so the noise
    is independent of anything drawn from torch's global generator seeded with ``seed``.

    Examples
    --------
    >>> a = sample_latent(3, 2, latent_generator(0))
    >>> b = sample_latent(3, 2, latent_generator(0))
    >>> torch.equal(a, b), a.shape
    (True, torch.Size([3, 2]))
    """
    return torch.Generator(device=torch.device(device)).manual_seed(_derived_seed(seed, 1))


def sample_latent(n: int, latent_dim: int, generator: torch.Generator) -> Tensor:
    """``z ~ N(0, I)``, shape ``(n, latent_dim)``, on the generator's device.

    Examples
    --------
    >>> sample_latent(4, 100, latent_generator(0)).shape
    torch.Size([4, 100])
    """
    return torch.randn(n, latent_dim, generator=generator, device=generator.device)


def _infer_latent_dim(G: nn.Module) -> int:
    for attr in ("latent_dim", "nz", "z_dim"):
        v = getattr(G, attr, None)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    for m in G.modules():
        if isinstance(m, nn.Linear):
            return m.in_features
        if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Conv1d, nn.Conv2d,
                          nn.Conv3d)):
            return m.in_channels
    raise ValueError("cannot tell the generator's latent dimension: pass train_gan(..., latent_dim=...)")


def _grad_norm(params: Sequence[Tensor], device: torch.device | None = None) -> Tensor:
    """The 2-norm of all gradients together, as a tensor on ``device`` (no device sync)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), device=device)
    foreach_norm = getattr(torch, "_foreach_norm", None)  # one fused call where torch has it
    norms = foreach_norm(grads) if foreach_norm is not None else [torch.linalg.vector_norm(g) for g in grads]
    return torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))


@contextlib.contextmanager
def _frozen(params: Sequence[Tensor]):
    """No gradients for ``params`` inside the block (D's during the G step); they are trainable again after."""
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _is_main_process() -> bool:
    """True unless this is a non-zero rank of a ``torch.distributed`` run: only rank 0 writes files."""
    dist = getattr(torch, "distributed", None)
    return not (dist is not None and dist.is_available() and dist.is_initialized() and dist.get_rank() != 0)


class _Source:
    """Real batches from a callable ``sample(n)``, an iterable of batches, or a resumable ``Batches``."""

    def __init__(self, data, batch_size: int, device: torch.device, dtype: torch.dtype, channels_last: bool):
        if isinstance(data, (Tensor, np.ndarray)):
            raise TypeError("data is a whole tensor; pass batches instead: ganlib.data.Batches(x, batch_size), "
                            "a DataLoader, or a function sample(n)")
        self.is_callable = callable(data) and not hasattr(data, "__iter__")
        if not self.is_callable and not hasattr(data, "__iter__"):
            raise TypeError(f"data must be a function sample(n), an iterable of batches or a ganlib.data.Batches, "
                            f"got {type(data).__name__}")
        self.data, self.batch_size, self.device, self.dtype = data, batch_size, device, dtype
        self.channels_last = channels_last
        self.it = None
        self.labels: Tensor | None = None  # the last batch's labels, for conditional models

    @property
    def batches_per_epoch(self) -> int | None:
        n = getattr(self.data, "batches_per_epoch", None)
        if n is None and not self.is_callable and hasattr(self.data, "__len__"):
            n = len(self.data)
        return n

    def next(self) -> Tensor:
        if self.is_callable:
            batch = self.data(self.batch_size)
        else:
            if self.it is None:
                self.it = iter(self.data)
            try:
                batch = next(self.it)
            except StopIteration:  # the end of an epoch of a finite iterable: start the next one
                self.it = iter(self.data)
                try:
                    batch = next(self.it)
                except StopIteration:
                    raise ValueError("the data source yielded no batch at all (is it empty?)") from None
        # A batch (x, y) carries labels: the place where conditional models (chapter 10) will use y.
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        y = batch[1] if isinstance(batch, (tuple, list)) and len(batch) > 1 else None
        self.labels = None if y is None else torch.as_tensor(y).to(self.device, non_blocking=True)
        x = torch.as_tensor(x)
        if not x.is_floating_point():
            raise TypeError(f"real batches must be floating point (scaled images or samples), got dtype {x.dtype}; "
                            "scale uint8 images with ganlib.data.scale_images")
        x = x.to(device=self.device, dtype=self.dtype, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def state_dict(self) -> dict | None:
        sd = getattr(self.data, "state_dict", None)
        return sd() if callable(sd) else None

    def load_state_dict(self, state) -> None:
        if state is not None and hasattr(self.data, "load_state_dict"):
            self.data.load_state_dict(state)
            self.it = None


def _check_batch_shapes(real: Tensor, fake: Tensor, D: nn.Module, pack: int, labels: tuple = ()) -> None:
    """First step only: G's samples must look like the data, and D must give one number per (packed) sample.

    D runs in eval mode without gradients, so the check changes no state (BatchNorm statistics, RNGs).
    """
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"G and the data disagree: G makes samples of shape {tuple(fake.shape[1:])} "
                         f"(batch {tuple(fake.shape)}) but the real batches have shape {tuple(real.shape[1:])} "
                         f"(batch {tuple(real.shape)})")
    x = pack_samples(real, pack)
    was_training = D.training
    try:
        D.eval()
        with torch.no_grad():
            out = D(x, *labels)
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"D cannot take a batch of shape {tuple(x.shape)} (real samples of shape "
                         f"{tuple(real.shape[1:])}, packed by {pack}): {str(e).splitlines()[0]}") from e
    finally:
        D.train(was_training)
    if not isinstance(out, Tensor) or out.dim() == 0 or out.shape[0] != x.shape[0] or out[0].numel() != 1:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"D must return one number per sample, shape (n,) or (n, 1); for a batch of shape "
                         f"{tuple(x.shape)} it returned {shape}")


def _check_generator(G: nn.Module, latent_dim: int, device: torch.device, num_classes: int | None = None) -> None:
    """G must accept ``(n, latent_dim)``; run in eval mode on zeros, so no state or RNG changes."""
    was_training = G.training
    try:
        G.eval()
        dtype = next((p.dtype for p in G.parameters() if p.is_floating_point()), torch.get_default_dtype())
        with torch.no_grad():
            G(torch.zeros(2, latent_dim, device=device, dtype=dtype),
              *((torch.zeros(2, dtype=torch.long, device=device),) if num_classes else ()))
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"G cannot take latent vectors of shape (n, {latent_dim}): {str(e).splitlines()[0]}; "
                         "pass the right train_gan(..., latent_dim=...)") from e
    finally:
        G.train(was_training)


# --------------------------------------------------------------------------- the training loop


def train_gan(G: nn.Module, D: nn.Module, data, config: TrainConfig | None = None, *,
              latent_dim: int | None = None, opt_G: torch.optim.Optimizer | None = None,
              opt_D: torch.optim.Optimizer | None = None, callbacks: Sequence[Callable] = (),
              resume: str | os.PathLike | bool | None = None, overwrite: bool = False,
              meta: dict | None = None) -> History:
    """Train a GAN: per generator step, ``config.n_critic`` D steps then one G step (chapter 03's algorithm).

    Parameters
    ----------
    G : nn.Module
        Maps ``z`` of shape ``(n, latent_dim)`` to samples shaped like the real batches.
    D : nn.Module
        Maps (packed) samples to ``(n,)`` or ``(n, 1)`` raw outputs: logits, or critic values.
    data : callable, iterable or ``ganlib.data.Batches``
        ``sample(n) -> Tensor`` (toy data; ``config.batch_size`` per call), or any iterable of
        batches ``x`` or ``(x, y)`` (a DataLoader; restarted at each epoch). Batches are moved
        to the device. Exact resume needs a ``Batches`` (or any source with ``state_dict()`` /
        ``load_state_dict()``) or a callable drawing from the global RNGs. In a distributed run,
        a callable is sharded for you, a ``Batches`` must be built with ``rank`` and
        ``world_size``, and a DataLoader needs a ``DistributedSampler`` (with ``set_epoch``).
    config : TrainConfig, optional
        Budget, loss, penalty, device, output folder... (defaults: ``TrainConfig()``).
    latent_dim : int, optional
        Inferred from ``G.latent_dim`` or G's first layer when omitted.
    opt_G, opt_D : torch.optim.Optimizer, optional
        Default: Adam with ``config.lr_g`` / ``config.lr_d`` and ``config.betas``.
    callbacks : sequence of callables
        ``fn(step, G, D, history)`` after every generator step (see :func:`every`).
    resume : path or True, optional
        Continue from a checkpoint (``True``: ``config.out/checkpoint.pt``). ``config.steps`` is
        the total step count, so training continues up to it.
    overwrite : bool
        Start afresh in an ``out`` folder that already holds a checkpoint (otherwise an error).
    meta : dict, optional
        Plain values stored in the checkpoint (the command line records how it built G and D).

    Returns
    -------
    History
        One row per generator step (including the resumed run's earlier rows, when its folder
        holds them).

    Raises
    ------
    FloatingPointError
        A loss, the penalty or a gradient norm became NaN/inf; the message names the step.
    ValueError
        G, D and the data do not fit together (named shapes), or a checkpoint does not match.
    KeyboardInterrupt
        After Ctrl-C, once the checkpoint is saved (when ``config.out`` is set).

    Examples
    --------
    A run of 4 steps, then the same run resumed up to 6 steps from its checkpoint:

    >>> import tempfile
    >>> from ganlib.models import generator, discriminator
    >>> out = tempfile.mkdtemp()
    >>> real = lambda n: torch.randn(n, 2) + 3.0
    >>> cfg = TrainConfig(steps=4, batch_size=32, loss="hinge", device="cpu", out=out)
    >>> h = train_gan(generator(2, 2), discriminator(2), real, cfg)
    >>> cfg.steps = 6
    >>> h = train_gan(generator(2, 2), discriminator(2), real, cfg, resume=True)
    >>> h["step"].tolist(), load_checkpoint(f"{out}/checkpoint.pt")["step"]
    ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 6)
    """
    cfg = config or TrainConfig()
    device = resolve_device(cfg.device)
    rank, world = 0, 1
    if cfg.distributed:  # appendix B: this process is one rank of a torchrun job
        from ganlib import distributed as _dist

        rank, world, device = _dist.setup(cfg.batch_size, device)
        data = _dist.shard(data, cfg.batch_size, rank, world)
    if cfg.amp == "fp16" and device.type not in _FP16_DEVICES:
        raise ValueError(f"amp='fp16' needs a CUDA device (its gradient scaler is CUDA-only); on {device.type} "
                         "use amp='bf16'")
    if cfg.clip is not None and cfg.penalty is not None:
        warnings.warn("weight clipping and a gradient penalty together: WGAN-GP replaces clipping", stacklevel=2)
    if device.type == "cuda" and cfg.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    latent_dim = int(latent_dim) if latent_dim is not None else _infer_latent_dim(G)
    out = Path(cfg.out) if cfg.out is not None else None
    writer = out is not None and _is_main_process()
    if resume is True:
        if out is None:
            raise ValueError("resume=True needs config.out (the folder holding checkpoint.pt)")
        resume = out / CHECKPOINT
    ckpt = load_checkpoint(resume) if resume else None
    if writer and ckpt is None and (out / CHECKPOINT).exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a checkpoint: resume it (resume=True, or --resume), "
                              "start afresh with overwrite=True (--overwrite), or choose another folder")

    if cfg.seed is not None and ckpt is None:
        seed_everything(cfg.seed, torch=True)
    seed = cfg.seed if cfg.seed is not None else int(torch.randint(0, 2**62, ()).item())
    G.to(device)
    D.to(device)
    if cfg.channels_last:
        _to_channels_last(G, D, device.type, cfg)
    graphs_refusal = _cuda_graphs_refusal(cfg, device, opt_G, opt_D) if cfg.cuda_graphs else None
    use_graphs = cfg.cuda_graphs and graphs_refusal is None
    opt_flags = {}  # the default optimisers' implementation flags, set again after loading a checkpoint's state
    if opt_G is None:
        opt_G, opt_flags["G"] = _default_adam(G.parameters(), cfg.lr_g, cfg.betas, device, use_graphs)
    if opt_D is None:
        opt_D, opt_flags["D"] = _default_adam(D.parameters(), cfg.lr_d, cfg.betas, device, use_graphs)
    scaler_G, scaler_D = (_grad_scaler(device, cfg.amp == "fp16") for _ in range(2))
    G_ema = copy.deepcopy(G).requires_grad_(False) if cfg.ema else None
    d_loss, g_loss = _losses.LOSSES[cfg.loss] if isinstance(cfg.loss, str) else cfg.loss
    probs = cfg.loss in ("minimax", "nonsaturating")  # history shows D's outputs as probabilities
    dtype = next((p.dtype for p in D.parameters() if p.is_floating_point()), torch.get_default_dtype())
    _data_to_device(data, device)
    source = _Source(data, cfg.batch_size // world, device, dtype, cfg.channels_last)
    labels = (lambda: _batch_labels(source, cfg.num_classes)) if cfg.num_classes else (lambda: ())  # noqa: E731
    gen = latent_generator(seed, device)
    fixed_z = torch.randn(cfg.n_samples, latent_dim, generator=torch.Generator().manual_seed(_derived_seed(seed, 2)))
    _check_generator(G, latent_dim, device, cfg.num_classes)

    start_step, clock0, history = 0, 0.0, History()
    if ckpt is not None:
        _check_compatible(ckpt, resume, cfg, latent_dim, G, D, opt_G, opt_D)
        source.load_state_dict(ckpt["rng"]["data"])  # first: it is the one load that can still refuse
        G.load_state_dict(ckpt["models"]["G"])
        D.load_state_dict(ckpt["models"]["D"])
        if G_ema is not None:
            G_ema.load_state_dict(ckpt["models"]["G_ema"] or ckpt["models"]["G"])
        opt_G.load_state_dict(ckpt["optimizers"]["G"])
        opt_D.load_state_dict(ckpt["optimizers"]["D"])
        for name, opt in (("G", opt_G), ("D", opt_D)):
            if name in opt_flags:  # a run saved on another device: this device's implementation of Adam
                _set_optimizer_flags(opt, opt_flags[name])
        scaler_G.load_state_dict(ckpt["scalers"]["G"]) if ckpt["scalers"]["G"] else None
        scaler_D.load_state_dict(ckpt["scalers"]["D"]) if ckpt["scalers"]["D"] else None
        _set_rng_state(ckpt["rng"], gen)
        fixed_z = ckpt["fixed_noise"]
        start_step, clock0 = ckpt["step"], ckpt["time"]
        old_history = Path(resume).parent / HISTORY
        if old_history.exists():  # rows up to the checkpoint's step: no seam, no duplicates
            history = History(r for r in History.from_jsonl(old_history).rows if r["step"] <= start_step)
        if writer:  # rows written after the checkpoint (a run that went on, or was cut short) are dropped
            out.mkdir(parents=True, exist_ok=True)
            history.to_jsonl(out / HISTORY)
    fixed_z = fixed_z.to(device)

    total = _total_steps(cfg, source)
    G_dp, D_dp = (_dist.wrap(G, device, cfg.sync_batchnorm), _dist.wrap(D, device, cfg.sync_batchnorm)) \
        if cfg.distributed else (G, D)  # DistributedDataParallel: backward passes average gradients over ranks
    Gf, Df = _maybe_compile(G_dp, D_dp, cfg.compile)
    autocast = _autocast(device, cfg.amp, cache=not use_graphs)  # graphs: no autocast weight cache across captures
    pack = lambda x: pack_samples(x, cfg.pack)  # noqa: E731
    d_params = [p for p in D.parameters() if p.requires_grad]
    g_params = [p for p in G.parameters() if p.requires_grad]
    n_written = len(history)
    sync_every, log_every = _sync_and_log_every(cfg, device)
    if graphs_refusal is not None:
        warnings.warn(f"cuda_graphs: {graphs_refusal}; training without CUDA graphs", stacklevel=2)
    not_logged = torch.full((), math.nan, device=device)  # the gradient norm of a step that does not log it

    def penalty(real: Tensor, fake: Tensor, y: tuple = ()) -> Tensor:  # float32, outside autocast: a second-order gradient
        if cfg.penalty is None:
            return torch.zeros((), device=device)
        real, fake = pack(real).float(), pack(fake).float()
        critic = (lambda x: D(x, *y)) if y else D  # noqa: E731
        with torch.autocast(device.type, enabled=False):
            if cfg.penalty == "gp":
                return _losses.gradient_penalty(critic, real, fake, lam=cfg.penalty_weight)
            return _losses.r1_penalty(critic, real, gamma=cfg.penalty_weight)

    def draw_z(n: int) -> Tensor:  # this rank's rows of the global batch's noise: the same z as one process
        return sample_latent(n * world, latent_dim, gen)[rank::world]

    def draw_labels(n: int) -> Tensor:  # the G step's labels, uniform, sharded like the noise
        return torch.randint(cfg.num_classes, (n * world,), generator=gen, device=device)[rank::world]

    def mean_output(out: Tensor) -> Tensor:
        return (torch.sigmoid(out) if probs else out).float().mean().detach()

    def d_step(real: Tensor, z: Tensor, *y: Tensor, norm: bool = True, check: bool = False) -> Tensor:
        """One D step on ``real`` and the detached ``G(z)``: (loss_d, penalty, grad_norm_d, d_real, d_fake) on the device."""
        with torch.no_grad(), autocast:
            fake = Gf(z, *y)  # detached: no graph through G, same values as G(z).detach()
        if check:  # the first step: G, D and the data fit together
            _check_batch_shapes(real, fake.to(real.dtype), D, cfg.pack, y)
        with autocast:
            out_real, out_fake = Df(pack(real), *y), Df(pack(fake), *y)
        loss_d = d_loss(out_real.float(), out_fake.float())
        pen = penalty(real, fake, y)
        opt_D.zero_grad(set_to_none=True)
        scaler_D.scale(loss_d + pen).backward()
        scaler_D.unscale_(opt_D)
        grad_d = _grad_norm(d_params, device) if norm else not_logged
        scaler_D.step(opt_D)
        scaler_D.update()
        if cfg.clip is not None:
            _losses.clip_weights_(D, cfg.clip)
        return torch.stack([loss_d.detach(), pen.detach(), grad_d, mean_output(out_real), mean_output(out_fake)])

    def g_step(z: Tensor, *y: Tensor, norm: bool = True, check: bool = False) -> Tensor:
        """One G step on a fresh ``z``, D frozen: (loss_g, grad_norm_g) on the device (``check``: unused)."""
        with _frozen(d_params):
            with autocast:
                out_fake = Df(pack(Gf(z, *y)), *y)
            loss_g = g_loss(out_fake.float())
            opt_G.zero_grad(set_to_none=True)
            scaler_G.scale(loss_g).backward()
        scaler_G.unscale_(opt_G)
        grad_g = _grad_norm(g_params, device) if norm else not_logged
        scaler_G.step(opt_G)
        scaler_G.update()
        if G_ema is not None:
            _ema_update(G_ema, G, cfg.ema)
        return torch.stack([loss_g.detach(), grad_g])

    if use_graphs:  # each step captured once (norms included), then replayed
        d_run, g_run = _CudaGraphStep(d_step, "D"), _CudaGraphStep(g_step, "G")
    else:
        d_run, g_run = d_step, g_step

    # ---- statistics: queued on the device, read every sync_every steps (or when the history is read)
    pending: list[tuple] = []  # (step, stats on the device, real samples, seconds of the step, norms computed)
    last_read = [clock0]  # the training clock at the previous read

    def sync() -> None:
        """Read the pending steps' statistics in one transfer, check them in order, append their rows."""
        if not pending:
            return
        t = time.perf_counter()
        stats = pending[0][1][None] if len(pending) == 1 else torch.stack([p[1] for p in pending])
        values = stats.tolist()  # the one wait for the device
        now = time.perf_counter()
        window = pending[:]
        pending.clear()
        rate = sum(w[2] for w in window) / max(sum(w[3] for w in window) + (now - t), 1e-9)
        clock, previous = clock0 + (now - t_start), last_read[0]
        last_read[0] = clock
        k = cfg.n_critic
        for i, ((s, _, _, _, norms), v) in enumerate(zip(window, values)):
            _check_finite(s, v, k, skip_grads=cfg.amp == "fp16" or not norms, out=out if writer else None)
            ld, pn, gd, dr, df = v[5 * (k - 1): 5 * k]
            history._rows.append({"step": s, "loss_d": ld, "loss_g": v[-2], "d_real": dr, "d_fake": df,
                                  "grad_norm_d": gd if norms else None, "grad_norm_g": v[-1] if norms else None,
                                  "penalty": pn, "samples_per_s": rate,
                                  "time": previous + (clock - previous) * (i + 1) / len(window)})

    def save(step: int) -> None:
        nonlocal n_written
        sync()  # only a state whose every step was checked finite is saved
        if not writer:
            return
        elapsed = clock0 + (time.perf_counter() - t_start)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / HISTORY, "w" if n_written == 0 else "a") as f:
            for r in history.rows[n_written:]:
                f.write(json.dumps(r) + "\n")
        n_written = len(history)
        save_checkpoint(out / CHECKPOINT, {
            "format": "ganlib-checkpoint", "format_version": 1, "ganlib_version": __version__,
            "torch_version": str(torch.__version__), "step": step, "time": elapsed, "config": cfg.to_dict(),
            "latent_dim": latent_dim, "meta": dict(meta or {}),
            "models": {"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict() if G_ema else None},
            "optimizers": {"G": opt_G.state_dict(), "D": opt_D.state_dict()},
            "optimizer_types": {"G": type(opt_G).__name__, "D": type(opt_D).__name__},
            "scalers": {"G": scaler_G.state_dict() if scaler_G.is_enabled() else None,
                        "D": scaler_D.state_dict() if scaler_D.is_enabled() else None},
            "rng": _rng_state(gen, source), "fixed_noise": fixed_z.cpu(),
        })

    def save_samples(step: int) -> None:
        sync()
        if writer:
            _save_sample_grid(G_ema or G, fixed_z, out / "samples" / f"step_{step:06d}.png", cfg.num_classes)

    if writer and ckpt is None:  # a fresh run: a new history file
        out.mkdir(parents=True, exist_ok=True)
        (out / HISTORY).write_text("")
    steps = range(start_step + 1, total + 1) if total is not None else _count(start_step + 1)
    bar = progress(steps, total=total, initial=start_step, desc="train", unit="step")
    interrupted = _SigintFlag(enabled=writer or cfg.distributed)
    t_start = time.perf_counter()
    step = start_step
    history._sync = sync
    try:
        with interrupted:
            for step in bar:
                t0 = time.perf_counter()
                norms = use_graphs or step % log_every == 0
                d_stats = []
                # ---- the D step(s): real batch vs detached fake batch ---------------------------------
                for k in range(cfg.n_critic):
                    real = source.next()
                    y = labels()  # () or, for a conditional run, (the real batch's labels,)
                    z = draw_z(real.shape[0])
                    d_stats.append(d_run(real, z, *y, norm=norms, check=step == start_step + 1 and k == 0))
                # ---- the G step: fresh z, D frozen ------------------------------------------------------
                z = draw_z(real.shape[0])
                y = (draw_labels(real.shape[0]),) if cfg.num_classes else ()
                stats = torch.cat([*d_stats, g_run(z, *y, norm=norms)])
                # ---- bookkeeping: no wait for the device until sync_every steps are queued ---------------
                stop = interrupted.flag or (cfg.minutes is not None and
                                            time.perf_counter() - t_start >= 60 * cfg.minutes)
                if cfg.distributed:  # global-batch means on every rank, and one stop decision for all of them
                    stats, stop = _dist.all_mean(stats, stop)
                pending.append((step, stats, cfg.n_critic * real.shape[0] * world, time.perf_counter() - t0, norms))
                if len(pending) >= sync_every:
                    sync()
                for fn in callbacks:
                    fn(step, G, D, history)
                if cfg.sample_every and step % cfg.sample_every == 0:
                    save_samples(step)
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                    save(step)
                # a Ctrl-C during this step's callbacks stops here too; a distributed run stops only on the
                # decision all ranks share (computed above), so that no rank waits for the others forever
                if stop or (interrupted.flag and not cfg.distributed):
                    break
            getattr(bar, "close", lambda: None)()
            sync()
            if step > start_step:  # the end of the run: a last sample grid and checkpoint, unless just written
                if not (cfg.sample_every and step % cfg.sample_every == 0):
                    save_samples(step)
                if not (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
                    save(step)
    finally:
        history._sync = None
    if interrupted.flag:
        raise KeyboardInterrupt(f"training interrupted at step {step}"
                                + (f"; checkpoint saved to {out / CHECKPOINT}" if writer else ""))
    return history


def _count(start: int):
    while True:
        yield start
        start += 1


def _total_steps(cfg: TrainConfig, source: _Source) -> int | None:
    """The last generator step: ``steps``, or the steps that ``epochs`` passes take, whichever is first."""
    total = cfg.steps
    if cfg.epochs is not None:
        per_epoch = source.batches_per_epoch
        if per_epoch is None:
            raise ValueError("epochs needs a data source with a length (a Batches or a DataLoader); "
                             "a function sample(n) has none: use steps or minutes")
        by_epochs = max(1, math.ceil(cfg.epochs * per_epoch / cfg.n_critic))
        total = by_epochs if total is None else min(total, by_epochs)
    return total


def _check_finite(step: int, values: list[float], n_critic: int, skip_grads: bool, out: Path | None) -> None:
    names = ("loss_d", "penalty", "grad_norm_d")
    bad = []
    for i in range(n_critic):
        for j, name in enumerate(names):
            if skip_grads and name == "grad_norm_d":
                continue
            v = values[5 * i + j]
            if not math.isfinite(v):
                bad.append(f"{name} is {v}" + (f" (D step {i + 1} of {n_critic})" if n_critic > 1 else ""))
    for name, v in (("loss_g", values[-2]), ("grad_norm_g", values[-1])):
        if not math.isfinite(v) and not (skip_grads and name == "grad_norm_g"):
            bad.append(f"{name} is {v}")
    if bad:
        where = (f" The last checkpoint in {out} holds the state before; " if out is not None and
                 (out / CHECKPOINT).exists() else " ")
        raise FloatingPointError(f"training stopped at step {step}: {'; '.join(bad)}.{where}"
                                 "try smaller learning rates, a gradient penalty, and check the data for NaN/inf")


class _SigintFlag:
    """While active (main thread only), Ctrl-C sets ``.flag`` so the loop can save and stop; a second one stops at once."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.flag = False
        self.previous = None

    def _handler(self, signum, frame):
        if self.flag:
            raise KeyboardInterrupt
        self.flag = True

    def __enter__(self):
        if self.enabled:
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            signal.signal(signal.SIGINT, self.previous)
        return False


def _grad_scaler(device: torch.device, enabled: bool):
    """float16 training scales the losses so small gradients do not underflow; a no-op when disabled."""
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device.type if enabled else "cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)  # torch < 2.3


def _autocast(device: torch.device, amp: str | None, cache: bool = True):
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16, cache_enabled=cache)


# --------------------------------------------------------------------------- chapter 08: keeping a GPU busy

_GPU_SYNC_EVERY, _GPU_LOG_EVERY = 50, 10  # the CUDA defaults of sync_every and log_every
_GRAPH_WARMUP = 3  # eager steps before the capture (lazy initialisation, cuDNN's choices, torch.compile)
_DATA_ON_DEVICE_BYTES = 2 * 2**30  # a Batches up to this size moves to the GPU (MNIST at 64 px: 0.98 GB)


def _sync_and_log_every(cfg: TrainConfig, device: torch.device) -> tuple[int, int]:
    """``(sync_every, log_every)`` with the defaults filled in: 1 and 1 on a CPU or MPS, 50 and 10 on CUDA.

    A CPU computes each value before the host moves on, so reading it at once costs nothing
    and keeps every row exactly as before; a GPU runs behind the host, and every read makes the
    host wait until the GPU has caught up, so it reads rarely. A distributed run reads every step.

    Examples
    --------
    >>> _sync_and_log_every(TrainConfig(), torch.device("cpu")), _sync_and_log_every(TrainConfig(), torch.device("cuda"))
    ((1, 1), (50, 10))
    """
    gpu = device.type == "cuda"
    sync_every = 1 if cfg.distributed else cfg.sync_every or (_GPU_SYNC_EVERY if gpu else 1)
    return sync_every, cfg.log_every or (_GPU_LOG_EVERY if gpu else 1)


def _channels_last_exceptions(G: nn.Module, device_type: str, cfg: TrainConfig) -> list[str]:
    """Names of G's layers whose weights keep the default layout when the models go channels_last.

    On CUDA, torch.compile with channels_last (measured with bf16 autocast, torch 2.11) fails in
    the backward pass of G's first transposed convolution, the one fed the latent vector as a
    1x1 image: inductor expects its weight gradient in the weight's channels_last strides and
    cuDNN returns it contiguous (a 1x1 input is both layouts at once, and cuDNN takes the default).
    Keeping that one weight contiguous avoids the mismatch; it is 4x4 and one layer of G, so
    its layout costs nothing measurable. CPUs train with every combination as it is.

    Examples
    --------
    >>> from ganlib.models import dcgan_generator
    >>> G = dcgan_generator(28, width=8)
    >>> cfg = TrainConfig(channels_last=True, compile=True, amp="bf16")
    >>> _channels_last_exceptions(G, "cuda", cfg), _channels_last_exceptions(G, "cpu", cfg)
    (['main.0'], [])
    """
    if not (device_type == "cuda" and cfg.channels_last and cfg.compile):
        return []
    first = next(((name, m) for name, m in G.named_modules() if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d))), None)
    return [first[0]] if first is not None and isinstance(first[1], nn.ConvTranspose2d) else []


def _to_channels_last(G: nn.Module, D: nn.Module, device_type: str, cfg: TrainConfig) -> list[str]:
    """Both models in the NHWC layout, except the layers :func:`_channels_last_exceptions` names; returns those names."""
    G.to(memory_format=torch.channels_last)
    D.to(memory_format=torch.channels_last)
    keep = _channels_last_exceptions(G, device_type, cfg)
    modules = dict(G.named_modules())
    for name in keep:
        modules[name].to(memory_format=torch.contiguous_format)
    return keep


def _cuda_graphs_refusal(cfg: TrainConfig, device: torch.device, opt_G=None, opt_D=None) -> str | None:
    """Why the D and G steps cannot be captured in CUDA graphs here, in a few words; ``None`` when they can.

    Examples
    --------
    >>> _cuda_graphs_refusal(TrainConfig(cuda_graphs=True), torch.device("cpu"))
    'CUDA graphs need a CUDA device and this run is on cpu'
    >>> print(_cuda_graphs_refusal(TrainConfig(cuda_graphs=True), torch.device("cuda")))
    None
    """
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device and this run is on {device.type}"
    if not hasattr(torch.cuda, "CUDAGraph"):
        return f"torch {torch.__version__} has no torch.cuda.CUDAGraph"
    if cfg.distributed:
        return "a distributed run synchronises its ranks inside the step (not captured here)"
    if cfg.amp == "fp16":
        return "fp16's gradient scaler decides on the host whether to skip a step"
    if cfg.penalty == "gp":
        return "the WGAN-GP penalty draws random interpolation weights inside the step"
    for name, opt in (("G", opt_G), ("D", opt_D)):
        if opt is not None and not all(g.get("capturable", False) for g in opt.param_groups):
            return f"the optimiser given for {name} was built without capturable=True"
    return None


def _default_adam(params, lr: float, betas: tuple[float, float], device: torch.device,
                  capturable: bool) -> tuple[torch.optim.Optimizer, dict]:
    """The default optimiser and its implementation flags: on CUDA Adam's fused kernel (one launch for all
    parameters, and float16's scaler needs no host check); elsewhere exactly ``Adam(params, lr, betas)``."""
    params = list(params)
    if device.type != "cuda":
        opt = torch.optim.Adam(params, lr=lr, betas=betas)
    else:
        try:
            opt = torch.optim.Adam(params, lr=lr, betas=betas, fused=True, capturable=capturable)
        except (TypeError, ValueError, RuntimeError):  # a torch without the fused kernel: foreach, a few launches
            opt = torch.optim.Adam(params, lr=lr, betas=betas, foreach=True, capturable=capturable)
    group = opt.param_groups[0]
    return opt, {k: group[k] for k in ("foreach", "fused", "capturable") if k in group}


def _set_optimizer_flags(opt: torch.optim.Optimizer, flags: dict) -> None:
    """Set implementation flags again after ``load_state_dict`` (which takes the saving run's), with the step counters
    where they belong: on the parameter's device for fused or capturable Adam, on the CPU otherwise."""
    for group in opt.param_groups:
        group.update(flags)
    on_device = bool(flags.get("fused") or flags.get("capturable"))
    for p, state in opt.state.items():
        step = state.get("step") if isinstance(state, dict) else None
        if isinstance(step, Tensor):
            state["step"] = step.to(p.device if on_device else "cpu")


def _data_to_device(data, device: torch.device) -> bool:
    """Move a ``ganlib.data.Batches`` held on the CPU to a CUDA device, in place, when it fits easily.

    Batches are then gathered on the GPU (no copy from the host per step). The stream of
    batches is unchanged. The limit: 2 GiB and a quarter of the GPU's free memory. Returns
    whether it moved.
    """
    from ganlib.images import Batches

    if device.type != "cuda" or not isinstance(data, Batches) or data.device.type == "cuda":
        return False
    size = data.x.element_size() * data.x.nelement()
    if data.labels is not None:
        size += data.labels.element_size() * data.labels.nelement()
    free = torch.cuda.mem_get_info(device)[0] if hasattr(torch.cuda, "mem_get_info") else 0
    if size > min(_DATA_ON_DEVICE_BYTES, free // 4):
        return False
    data.to(device)
    return True


class _CudaGraphStep:
    """A step function run eagerly for its first calls, then captured once in a CUDA graph and replayed.

    The tensors passed in are copied into the graph's input buffers before each replay, and
    the statistics it returns are cloned (the next replay overwrites them); inputs of another
    shape than the captured ones (a data loader's short last batch) run eagerly. The graph keeps
    computing with the memory it captured (gradients included), so eager calls in between do no harm. The warm-up calls run
    on a side stream (as torch's documentation of whole-network capture asks), so lazy
    initialisation, cuDNN's algorithm search and compilation happen before the capture. When the
    capture fails, a one-line warning says why and every later call runs eagerly.
    """

    def __init__(self, fn: Callable[..., Tensor], name: str, warmup: int = _GRAPH_WARMUP):
        self.fn, self.name, self.warmup = fn, name, warmup
        self.calls, self.graph, self.eager = 0, None, False
        self.inputs: list[Tensor] = []
        self.output: Tensor | None = None

    def __call__(self, *tensors: Tensor, norm: bool = True, check: bool = False) -> Tensor:
        self.calls += 1
        if self.eager:
            return self.fn(*tensors, norm=norm, check=check)
        if self.graph is None and self.calls <= self.warmup:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.fn(*tensors, norm=True, check=check)
            torch.cuda.current_stream().wait_stream(side)
            return out
        if self.graph is None:
            try:
                self.inputs = [t.clone() for t in tensors]
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    self.output = self.fn(*self.inputs, norm=True)
                self.graph = graph
            except Exception as e:  # noqa: BLE001 - anything that cannot be captured runs eagerly
                self.eager, self.inputs, self.output = True, [], None
                warnings.warn(f"cuda_graphs: the {self.name} step could not be captured "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); training it without CUDA graphs",
                              stacklevel=3)
                return self.fn(*tensors, norm=norm, check=check)
        elif any(b.shape != t.shape for b, t in zip(self.inputs, tensors)):
            return self.fn(*tensors, norm=norm, check=check)  # another batch size (an epoch's last batch): eagerly
        else:
            for buffer, t in zip(self.inputs, tensors):
                buffer.copy_(t)
        self.graph.replay()
        return self.output.clone()


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def _maybe_compile(G: nn.Module, D: nn.Module, enabled: bool | str):
    """``torch.compile`` both models, or return them unchanged (with a warning) when compiling is impossible.

    Only the forward calls of the loop use the compiled wrappers; checkpoints, penalties and
    callbacks see the original modules (which share the parameters). Errors while compiling
    later (a missing C++ compiler, an unsupported platform) fall back to eager code through
    ``torch._dynamo.config.suppress_errors``, with torch's warning.
    """
    if not enabled:
        return G, D
    if not hasattr(torch, "compile"):
        warnings.warn(f"torch {torch.__version__} has no torch.compile: training in eager mode", stacklevel=3)
        return G, D
    kwargs = {"backend": enabled} if isinstance(enabled, str) else {}
    try:
        import torch._dynamo as dynamo

        dynamo.config.suppress_errors = True  # a failing compilation falls back to eager code
        return torch.compile(G, **kwargs), torch.compile(D, **kwargs)
    except Exception as e:  # noqa: BLE001 - any failure means: run eagerly
        warnings.warn(f"torch.compile is unavailable ({type(e).__name__}: {e}); training in eager mode", stacklevel=3)
        return G, D


def _save_sample_grid(G: nn.Module, z: Tensor, path: Path, num_classes: int | None = None) -> None:
    was_training = G.training
    G.eval()
    y, nrow = (), None
    if num_classes:  # one row per class
        y, nrow = class_rows(num_classes, max(1, z.shape[0] // num_classes), z.device)
        z = z[:y[0].shape[0]] if z.shape[0] >= y[0].shape[0] else z.repeat(num_classes, 1)[:y[0].shape[0]]
    try:
        with torch.no_grad():
            x = G(z, *y).float().cpu()
    finally:
        G.train(was_training)
    if x.dim() != 4:  # only images make a grid
        return
    from ganlib.plot import save_image_grid

    path.parent.mkdir(parents=True, exist_ok=True)
    save_image_grid(x, path, nrow=nrow)


# --------------------------------------------------------------------------- conditional models, EMA (chapter 10)

__all__ += ["class_rows", "ema_update"]


def _batch_labels(source: _Source, num_classes: int) -> tuple[Tensor]:
    """The labels of the batch just drawn, checked, as a 1-tuple (``G(z, *y)``, ``D(x, *y)``)."""
    y = source.labels
    if y is None:
        raise ValueError("a conditional run (num_classes set) needs labelled batches (x, y): "
                         "use ganlib.data.Batches(x, batch_size, labels=y)")
    if y.dim() != 1 or y.is_floating_point() or (y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes)):
        raise ValueError(f"labels must be integers in 0..{num_classes - 1} of shape (n,), got {y.dtype} "
                         f"{tuple(y.shape)}" + (f" with values {int(y.min())}..{int(y.max())}" if y.numel() else ""))
    return (y.long(),)


def class_rows(num_classes: int, per_class: int, device: str | torch.device = "cpu") -> tuple[tuple[Tensor], int]:
    """Labels for a grid with one row per class: ``((y,), per_class)``, ``y = 0,...,0, 1,...,1, ...``.

    Examples
    --------
    >>> (y,), nrow = class_rows(3, 2)
    >>> y.tolist(), nrow
    ([0, 0, 1, 1, 2, 2], 2)
    """
    return (torch.arange(num_classes, device=device).repeat_interleave(per_class),), per_class


def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """One step of the exponential moving average that :func:`train_gan` keeps with ``config.ema``.

    Each parameter becomes ``decay * ema + (1 - decay) * model`` (``decay = 0`` copies the model,
    ``decay = 1`` keeps the average fixed); buffers (BatchNorm's running statistics) are copied
    from the model, since they describe the model's activations, not an average's.

    Examples
    --------
    >>> a, b = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    >>> _ = a.weight.data.fill_(0.0), b.weight.data.fill_(1.0)
    >>> ema_update(a, b, 0.75); a.weight.item()
    0.25
    """
    _ema_update(ema, model, decay)
