"""The course's one GAN training loop (chapter 06 on), its checkpoints and the ``ganlib train`` command.

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
on a CPU. Extension points for later chapters, so that they add options instead of loops:
a batch ``(x, y)`` carries labels (``_Source.next``: conditional GANs), and every file is
written only where ``_is_main_process()`` holds (rank 0 of a distributed run:
``TrainConfig(distributed=True)`` runs this loop in every process ``torchrun`` starts, with the
pieces of :mod:`ganlib.distributed`).

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
import random
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
from ganlib.utils import default_device, progress, seed_everything

__all__ = [
    "TrainConfig", "History", "train_gan", "every", "pack_samples", "latent_generator", "sample_latent",
    "resolve_device", "save_checkpoint", "load_checkpoint", "build_models", "main_train", "main_sample",
]

COLUMNS = ("step", "loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g", "penalty",
           "samples_per_s", "time")
PENALTIES = (None, "gp", "r1")
AMP = (None, "bf16", "fp16")
_FP16_DEVICES = ("cuda",)  # float16 autocast with a gradient scaler: a GPU feature (tests widen it to the CPU)
CHECKPOINT = "checkpoint.pt"
HISTORY = "history.jsonl"
# Config fields that may change between a run and its resumption (budgets, folders, speed options).
_RESUMABLE_CHANGES = {"steps", "minutes", "epochs", "device", "out", "checkpoint_every", "sample_every",
                      "channels_last", "compile", "amp", "distributed", "sync_batchnorm"}


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

        for name in ("steps", "checkpoint_every", "sample_every"):
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
    runs continue the clock).

    Examples
    --------
    >>> h = History([{"step": 1, "loss_d": 1.5, "loss_g": 0.7}, {"step": 2, "loss_d": 1.25, "loss_g": 0.75}])
    >>> len(h), h["loss_d"].tolist(), h[-1]["step"]
    (2, [1.5, 1.25], 2)
    """

    def __init__(self, rows: Iterable[dict] = ()):
        self.rows: list[dict] = [dict(r) for r in rows]

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


def _grad_norm(params: Sequence[Tensor]) -> Tensor:
    """The 2-norm of all gradients together, as a tensor (no device sync)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
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


# --------------------------------------------------------------------------- checkpoints


def _rng_state(gen: torch.Generator, source: _Source) -> dict:
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "latent": gen.get_state(),
        "data": source.state_dict(),
    }


def _set_rng_state(state: dict, gen: torch.Generator) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    gen.set_state(state["latent"])


def save_checkpoint(path: str | os.PathLike, obj: dict) -> Path:
    """Write ``obj`` with ``torch.save`` atomically: a temporary file in the same folder, then ``os.replace``.

    A crash or Ctrl-C while writing leaves the previous checkpoint intact, never a truncated file.

    Examples
    --------
    >>> import tempfile, os
    >>> path = save_checkpoint(os.path.join(tempfile.mkdtemp(), "c.pt"), {"step": 3})
    >>> torch.load(path, weights_only=True)["step"], sorted(os.listdir(path.parent))
    (3, ['c.pt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`train_gan` (``weights_only``: no arbitrary code runs).

    Keys: ``step``, ``time``, ``config`` (a dict), ``latent_dim``, ``meta`` (how the command line
    built the models, or ``{}``), ``models`` (``G``, ``D`` and ``G_ema`` state dicts),
    ``optimizers``, ``scalers``, ``rng``, ``fixed_noise``, ``ganlib_version``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or foreign file: say which, and what it is not
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "Unsupported global" in ln), lines[0] if lines else "no detail")
        raise ValueError(f"{path} is not a readable ganlib checkpoint ({type(e).__name__}: {detail})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != "ganlib-checkpoint":
        raise ValueError(f"{path} is not a ganlib checkpoint (written by ganlib.train.train_gan)")
    return ckpt


def _architecture_mismatch(name: str, saved: dict, module: nn.Module) -> str | None:
    current = module.state_dict()
    missing = [k for k in current if k not in saved]
    extra = [k for k in saved if k not in current]
    if missing or extra:
        return (f"{name} has parameters the checkpoint lacks {missing[:3]} and the checkpoint has ones {name} "
                f"lacks {extra[:3]}" if missing and extra else
                f"{name} has parameters the checkpoint lacks: {missing[:3]}" if missing else
                f"the checkpoint's {name} has parameters this {name} lacks: {extra[:3]}")
    for k, v in current.items():
        if tuple(saved[k].shape) != tuple(v.shape):
            return f"{name}'s {k} has shape {tuple(v.shape)} here but {tuple(saved[k].shape)} in the checkpoint"
    return None


def _check_compatible(ckpt: dict, path, config: TrainConfig, latent_dim: int, G, D, opt_G, opt_D) -> None:
    """Every check before anything is loaded, so a mismatch never leaves a half-loaded model."""
    problems = []
    old, new = ckpt["config"], config.to_dict()
    for k in new:
        if k not in _RESUMABLE_CHANGES and k in old and old[k] != new[k]:
            problems.append(f"config {k}: checkpoint {old[k]!r}, now {new[k]!r}")
    if ckpt["latent_dim"] != latent_dim:
        problems.append(f"latent_dim: checkpoint {ckpt['latent_dim']}, now {latent_dim}")
    for name, module in (("G", G), ("D", D)):
        msg = _architecture_mismatch(name, ckpt["models"][name], module)
        if msg:
            problems.append(msg)
    for name, opt in (("G", opt_G), ("D", opt_D)):
        saved = ckpt["optimizers"][name]
        if ckpt["optimizer_types"][name] != type(opt).__name__:
            problems.append(f"optimizer for {name}: checkpoint {ckpt['optimizer_types'][name]}, now {type(opt).__name__}")
        elif [len(g["params"]) for g in saved["param_groups"]] != [len(g["params"]) for g in opt.param_groups]:
            problems.append(f"optimizer for {name} manages different parameter groups than in the checkpoint")
    if problems:
        raise ValueError(f"cannot resume from {path}: it was written for another model or config:\n  "
                         + "\n  ".join(problems) + "\nStart a new run in another folder, or use the same settings.")


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
        G.to(memory_format=torch.channels_last)
        D.to(memory_format=torch.channels_last)
    opt_G = opt_G or torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_D = opt_D or torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    scaler_G, scaler_D = (_grad_scaler(device, cfg.amp == "fp16") for _ in range(2))
    G_ema = copy.deepcopy(G).requires_grad_(False) if cfg.ema else None
    d_loss, g_loss = _losses.LOSSES[cfg.loss] if isinstance(cfg.loss, str) else cfg.loss
    probs = cfg.loss in ("minimax", "nonsaturating")  # history shows D's outputs as probabilities
    dtype = next((p.dtype for p in D.parameters() if p.is_floating_point()), torch.get_default_dtype())
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
    autocast = _autocast(device, cfg.amp)
    pack = lambda x: pack_samples(x, cfg.pack)  # noqa: E731
    d_params = [p for p in D.parameters() if p.requires_grad]
    g_params = [p for p in G.parameters() if p.requires_grad]
    n_written = len(history)

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

    def save(step: int, elapsed: float) -> None:
        nonlocal n_written
        if not writer:
            return
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
    with interrupted:
        for step in bar:
            t0 = time.perf_counter()
            d_stats = []
            # ---- the D step(s): real batch vs detached fake batch --------------------------------
            for _ in range(cfg.n_critic):
                real = source.next()
                y = labels()  # () or, for a conditional run, (the real batch's labels,)
                z = draw_z(real.shape[0])
                with torch.no_grad(), autocast:
                    fake = Gf(z, *y)  # detached: no graph through G, same values as G(z).detach()
                if step == start_step + 1 and not d_stats:
                    _check_batch_shapes(real, fake.to(real.dtype), D, cfg.pack, y)
                with autocast:
                    out_real, out_fake = Df(pack(real), *y), Df(pack(fake), *y)
                loss_d = d_loss(out_real.float(), out_fake.float())
                pen = penalty(real, fake, y)
                opt_D.zero_grad(set_to_none=True)
                scaler_D.scale(loss_d + pen).backward()
                scaler_D.unscale_(opt_D)
                grad_d = _grad_norm(d_params)
                scaler_D.step(opt_D)
                scaler_D.update()
                if cfg.clip is not None:
                    _losses.clip_weights_(D, cfg.clip)
                d_stats.append(torch.stack([loss_d.detach(), pen.detach(), grad_d.to(device),
                                            mean_output(out_real), mean_output(out_fake)]))
            # ---- the G step: fresh z, D frozen -----------------------------------------------------
            z = draw_z(real.shape[0])
            y = (draw_labels(real.shape[0]),) if cfg.num_classes else ()
            with _frozen(d_params):
                with autocast:
                    out_fake = Df(pack(Gf(z, *y)), *y)
                loss_g = g_loss(out_fake.float())
                opt_G.zero_grad(set_to_none=True)
                scaler_G.scale(loss_g).backward()
            scaler_G.unscale_(opt_G)
            grad_g = _grad_norm(g_params)
            scaler_G.step(opt_G)
            scaler_G.update()
            if G_ema is not None:
                _ema_update(G_ema, G, cfg.ema)
            # ---- bookkeeping: one device sync per step --------------------------------------------
            stats = torch.cat([torch.stack(d_stats).flatten(), torch.stack([loss_g.detach(), grad_g.to(device)])])
            stop = interrupted.flag or (cfg.minutes is not None and time.perf_counter() - t_start >= 60 * cfg.minutes)
            if cfg.distributed:  # global-batch means on every rank, and one stop decision for all of them
                stats, stop = _dist.all_mean(stats, stop)
            values = stats.tolist()
            _check_finite(step, values, cfg.n_critic, skip_grads=cfg.amp == "fp16", out=out if writer else None)
            t1 = time.perf_counter()
            ld, pn, gd, dr, df = values[5 * (cfg.n_critic - 1): 5 * cfg.n_critic]
            history.append({"step": step, "loss_d": ld, "loss_g": values[-2], "d_real": dr, "d_fake": df,
                            "grad_norm_d": gd, "grad_norm_g": values[-1], "penalty": pn,
                            "samples_per_s": cfg.n_critic * real.shape[0] * world / max(t1 - t0, 1e-9),
                            "time": clock0 + (t1 - t_start)})
            for fn in callbacks:
                fn(step, G, D, history)
            if cfg.sample_every and step % cfg.sample_every == 0:
                save_samples(step)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                save(step, clock0 + (time.perf_counter() - t_start))
            # a Ctrl-C during this step's callbacks stops here too; a distributed run stops only on the
            # decision all ranks share (computed above), so that no rank waits for the others forever
            if stop or (interrupted.flag and not cfg.distributed):
                break
        getattr(bar, "close", lambda: None)()
        if step > start_step:  # the end of the run: a last sample grid and checkpoint, unless just written
            if not (cfg.sample_every and step % cfg.sample_every == 0):
                save_samples(step)
            if not (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
                save(step, clock0 + (time.perf_counter() - t_start))
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


def _autocast(device: torch.device, amp: str | None):
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


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


# --------------------------------------------------------------------------- command line

TRAIN_EXAMPLES = """examples:
  ganlib train --model mlp --data mnist --out runs/mlp --minutes 3
  ganlib train --model mlp --data mnist --out runs/mlp --steps 8000 --resume      # continue the same run
  ganlib train --model dcgan --data mnist --image-size 32 --out runs/dcgan --epochs 5 --amp --channels-last
  ganlib train --model dcgan --data folder --path photos/ --image-size 64 --channels 3 --out runs/photos
  ganlib train --model dcgan --data mnist --loss wgan-gp --out runs/wgan-gp --minutes 10
  ganlib train --model dcgan --data mnist --loss hinge --spectral-norm --conditional --ema 0.999 --lr-d 4e-4 --lr-g 1e-4 --out runs/cond
  ganlib sample --checkpoint runs/mlp/checkpoint.pt --n 64 --out grid.png
  torchrun --nproc-per-node 2 -m ganlib train --distributed --model mlp --data mnist --out runs/ddp --steps 2000

OUT receives checkpoint.pt (models, optimisers, RNG states: --resume continues exactly),
history.jsonl (one JSON line per step) and samples/step_NNNNNN.png (fixed-noise grids).
MNIST is read from --path, else $GANLIB_DATA, else the user cache, else downloaded.
With --resume, settings not given on the command line are taken from the checkpoint."""

SAMPLE_EXAMPLES = """examples:
  ganlib sample --checkpoint runs/mlp/checkpoint.pt --n 64 --out grid.png
  ganlib sample --checkpoint runs/dcgan/checkpoint.pt --n 1000 --out samples.npy   # float32 (N, C, H, W) in [-1, 1]
  ganlib sample --checkpoint runs/cond/checkpoint.pt --n 16 --label 3 --out threes.png   # a conditional model"""

# Built-in defaults of the command line; with --resume the checkpoint's values come first.
_CLI_DEFAULTS = {"batch_size": 128, "seed": 0, "loss": "nonsaturating", "penalty": None, "penalty_weight": 10.0,
                 "n_critic": 1, "lr_g": 2e-4, "lr_d": 2e-4, "checkpoint_every": 500, "sample_every": 500,
                 "ema": None}
_MODEL_DEFAULTS = {"mlp": {"latent_dim": 64, "width": 256}, "dcgan": {"latent_dim": 100, "width": 64}}


class _CLIError(Exception):
    """A problem to report as one ``ganlib CMD: error: ...`` message (exit code 1)."""


def _parser_train():
    import argparse

    p = argparse.ArgumentParser(prog="ganlib train", usage="ganlib train --model mlp|dcgan --data mnist|folder|synthetic "
                                "--out DIR [--steps N | --epochs E | --minutes M] [options]", description="Train a GAN on images with ganlib's one training loop.",
                                epilog=TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("mlp", "dcgan"), help="fully connected (chapter 07) or DCGAN (chapter 08)")
    p.add_argument("--data", choices=("mnist", "folder", "synthetic"), help="the real images")
    p.add_argument("--path", help="folder of images (--data folder), or of the MNIST files")
    p.add_argument("--out", required=True, help="output folder")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=_positive(int), help="total generator steps (default 1000)")
    budget.add_argument("--epochs", type=_positive(float), help="passes over the data (fractions allowed)")
    budget.add_argument("--minutes", type=_positive(float), help="wall-clock budget of this run (fractions allowed)")
    p.add_argument("--batch-size", type=_positive(int), help="default 128")
    p.add_argument("--seed", type=_nonnegative_int, help="default 0")
    p.add_argument("--device", default="auto", type=_device_name, help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--resume", action="store_true", help="continue OUT/checkpoint.pt")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an OUT that holds a checkpoint")
    p.add_argument("--loss", choices=sorted(_losses.LOSSES) + ["ns", "wgan-gp"],
                   help="default nonsaturating (ns); wgan-gp is wasserstein with --penalty gp, and unless given: "
                   "--n-critic 5, --lr-g/--lr-d 1e-4, Adam betas (0, 0.9), --norm layer")
    p.add_argument("--penalty", choices=("gp", "r1"), help="WGAN-GP or R1 gradient penalty")
    p.add_argument("--penalty-weight", type=_positive(float), help="lambda or gamma (default 10)")
    p.add_argument("--n-critic", type=_positive(int), help="D steps per G step (default 1)")
    p.add_argument("--lr-g", type=_positive(float), help="default 2e-4")
    p.add_argument("--lr-d", type=_positive(float), help="default 2e-4")
    p.add_argument("--image-size", type=int, choices=(28, 32, 64), help="default 28")
    p.add_argument("--channels", type=int, choices=(1, 3), help="default 1 (3 for --data folder)")
    p.add_argument("--latent-dim", type=_positive(int), help="default 64 (mlp) or 100 (dcgan)")
    p.add_argument("--width", type=_positive(int), help="hidden width: default 256 (mlp) or 64 (dcgan: ngf = ndf)")
    p.add_argument("--checkpoint-every", type=_positive(int), help="steps between checkpoints (default 500)")
    p.add_argument("--sample-every", type=_positive(int), help="steps between sample grids (default 500)")
    p.add_argument("--amp", nargs="?", const="bf16", choices=("bf16", "fp16"),
                   help="mixed precision: bf16 (default when given; CPU or CUDA) or fp16 (CUDA)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory layout")
    p.add_argument("--compile", action="store_true", help="torch.compile the models (eager fallback)")
    p.add_argument("--ema", type=float, help="keep an EMA of G's weights with this decay, e.g. 0.999")
    p.add_argument("--distributed", action="store_true", help="data-parallel over the processes torchrun starts: "
                   "torchrun --nproc-per-node 2 -m ganlib train --distributed ... (--batch-size is the global batch)")
    p.add_argument("--sync-batchnorm", action="store_true", help="with --distributed on GPUs: SyncBatchNorm")
    p.add_argument("--spectral-norm", action="store_true", default=None,
                   help="spectrally normalise D's layers (dcgan; D then has no BatchNorm unless --norm batch)")
    p.add_argument("--norm", choices=("batch", "layer", "instance", "none"),
                   help="D's normalisation (dcgan): default batch, none with --spectral-norm, layer with wgan-gp")
    p.add_argument("--conditional", action="store_true", default=None,
                   help="class-conditional G(z, y) and projection D(x, y) (dcgan on mnist or synthetic)")
    return p


def _positive(kind):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise _argparse_error(f"expected a positive {'integer' if kind is int else 'number'}, got {text!r}")
        if not (v > 0 and math.isfinite(v)):
            raise _argparse_error(f"expected a positive {'integer' if kind is int else 'number'}, got {text!r}")
        return v

    parse.__name__ = kind.__name__
    return parse


def _device_name(text: str) -> str:
    kind, _, index = text.partition(":")
    if kind not in ("auto", "cpu", "cuda", "mps") or (index and not (kind == "cuda" and index.isdigit())):
        raise _argparse_error(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def _nonnegative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise _argparse_error(f"expected a non-negative integer, got {text!r}")
    return v


def _argparse_error(msg: str):
    import argparse

    return argparse.ArgumentTypeError(msg)


def _run_cli(name: str, parser, body, argv) -> int:
    """Parse, run, and turn every expected failure into one ``ganlib NAME: error: ...`` message."""
    import sys

    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed by argparse
        return int(e.code or 0)
    try:
        return body(args, parser)
    except SystemExit as e:  # parser.error() inside body
        return int(e.code or 0)
    except KeyboardInterrupt as e:
        print(f"ganlib {name}: {e or 'interrupted'}", file=sys.stderr)
        return 130
    except (_CLIError, ValueError, TypeError, RuntimeError, OSError, FloatingPointError) as e:
        # the message of ganlib.data's missing-MNIST error lists the files and md5s on further lines
        print(f"ganlib {name}: error: {e}", file=sys.stderr)
        return 1


def _image_mlp(meta: dict) -> tuple[nn.Module, nn.Module]:
    """Chapter 07's fully connected G and D for images: ganlib.models' MLPs with an (un)flattening layer."""
    from ganlib import models

    c, s, w, ld = meta["channels"], meta["image_size"], meta["width"], meta["latent_dim"]
    G = models.generator(ld, c * s * s, hidden=(w, 2 * w), out_activation="tanh")
    G.append(nn.Unflatten(1, (c, s, s)))
    D = models.discriminator(c * s * s, hidden=(2 * w, w))
    D.insert(0, nn.Flatten())
    G.latent_dim = ld
    return G, D


def build_models(meta: dict) -> tuple[nn.Module, nn.Module]:
    """G and D as the command line builds them from ``meta`` (stored in its checkpoints).

    ``meta``: ``model`` ("mlp" or "dcgan"), ``image_size``, ``channels``, ``latent_dim``, ``width``;
    for dcgan also ``num_classes``, ``spectral_norm`` and ``norm`` (chapter 10; absent: unconditional DCGAN).
    Initialisation draws from torch's global generator (seed it first).

    Examples
    --------
    >>> G, D = build_models({"model": "mlp", "image_size": 28, "channels": 1, "latent_dim": 8, "width": 16})
    >>> x = G(torch.randn(2, 8)); x.shape, D(x).shape
    (torch.Size([2, 1, 28, 28]), torch.Size([2, 1]))
    """
    from ganlib import models

    kind = meta.get("model")
    if kind == "mlp":
        return _image_mlp(meta)
    if kind == "dcgan":
        k = meta.get("num_classes")
        return (models.dcgan_generator(meta["image_size"], meta["channels"], meta["latent_dim"], meta["width"],
                                       num_classes=k),
                models.dcgan_discriminator(meta["image_size"], meta["channels"], meta["width"], num_classes=k,
                                           spectral_norm=bool(meta.get("spectral_norm")), norm=meta.get("norm")))
    raise ValueError(f"unknown model {kind!r}: the command line builds 'mlp' or 'dcgan'")


def _load_images(meta: dict):
    from ganlib import data

    kind, size, channels, path = meta["data"], meta["image_size"], meta["channels"], meta.get("path")
    if kind == "mnist":
        if channels != 1:
            raise _CLIError("MNIST digits are grey: use --channels 1")
        return data.mnist_images("train", root=path, size=size)
    if kind == "folder":
        return data.image_folder(path, size=size, channels=channels), None
    return data.synthetic_images(2048, size=size, channels=channels, seed=meta["seed"])


def _train_body(args, parser) -> int:
    import sys

    out = Path(args.out)
    ckpt = None
    if args.resume:
        if not (out / CHECKPOINT).is_file():
            raise _CLIError(f"--resume: there is no checkpoint in {out} (expected {out / CHECKPOINT})")
        ckpt = load_checkpoint(out / CHECKPOINT)
        if not ckpt["meta"].get("model"):
            raise _CLIError(f"{out / CHECKPOINT} was not written by ganlib train; resume it from Python with "
                            "train_gan(..., resume=path)")
    old_meta, old_cfg = (ckpt["meta"], ckpt["config"]) if ckpt else ({}, {})

    def pick(name, fallback=None):  # the command line, then the checkpoint, then the default
        v = getattr(args, name, None)
        if v is not None:
            return v
        if name in old_meta:
            return old_meta[name]
        if name in old_cfg:
            return old_cfg[name]
        return _CLI_DEFAULTS.get(name, fallback)

    model, kind = pick("model"), pick("data")
    if model is None or kind is None:
        parser.error("--model and --data are required (unless --resume finds them in the checkpoint)")
    betas = tuple(old_cfg.get("betas", (0.5, 0.999)))
    if args.loss == "wgan-gp":  # Gulrajani et al. (2017): lambda 10, 5 critic steps, Adam(1e-4, (0, 0.9))
        args.loss, betas = "wasserstein", (0.0, 0.9)
        for name, value in (("penalty", "gp"), ("n_critic", 5), ("lr_g", 1e-4), ("lr_d", 1e-4), ("norm", "layer")):
            if getattr(args, name) is None:
                setattr(args, name, value)
    elif args.loss == "ns":
        args.loss = "nonsaturating"
    chapter10 = {"spectral_norm": bool(pick("spectral_norm", False)), "norm": pick("norm"),
                 "num_classes": 10 if args.conditional else old_meta.get("num_classes")}
    if model != "dcgan" and (chapter10["spectral_norm"] or chapter10["norm"] or chapter10["num_classes"]):
        parser.error("--spectral-norm, --norm and --conditional are options of --model dcgan")
    if chapter10["num_classes"] and kind == "folder":
        parser.error("--conditional needs labelled images: --data mnist or synthetic")
    path = pick("path")
    if kind == "folder" and not path:
        parser.error("--data folder needs --path DIR, the folder of images")
    meta = {"model": model, "data": kind, "path": path,
            "image_size": pick("image_size", 28), "channels": pick("channels", 3 if kind == "folder" else 1),
            "latent_dim": pick("latent_dim", _MODEL_DEFAULTS[model]["latent_dim"]),
            "width": pick("width", _MODEL_DEFAULTS[model]["width"]), "seed": pick("seed"), **chapter10}
    if args.steps is None and args.epochs is None and args.minutes is None:  # no budget given
        steps, epochs, minutes = ((old_cfg["steps"], old_cfg["epochs"], old_cfg["minutes"]) if ckpt
                                  else (1000, None, None))
    else:
        steps, epochs, minutes = args.steps, args.epochs, args.minutes
    device = resolve_device(args.device)  # before loading data: a missing GPU is reported at once
    rank, world = 0, 1
    if args.distributed:  # join torchrun's process group first: a missing torchrun is reported at once
        from ganlib import distributed as _dist

        if "WORLD_SIZE" not in os.environ:
            raise _CLIError("--distributed runs in the processes that torchrun starts; on one machine with 2 "
                            "processes: "
                            + _dist.torchrun_command(["--model", model, "--data", kind, "--out", str(out), "..."]))
        rank, world, device = _dist.setup(pick("batch_size"), device)
    elif args.sync_batchnorm:
        parser.error("--sync-batchnorm needs --distributed")
    config = TrainConfig(steps=steps, epochs=epochs, minutes=minutes, batch_size=pick("batch_size"),
                         n_critic=pick("n_critic"), loss=pick("loss"), penalty=pick("penalty"),
                         penalty_weight=pick("penalty_weight"), lr_g=pick("lr_g"), lr_d=pick("lr_d"), betas=betas,
                         device=str(device), seed=meta["seed"], out=out, checkpoint_every=pick("checkpoint_every"),
                         sample_every=pick("sample_every"), amp=args.amp, channels_last=args.channels_last,
                         compile=args.compile, ema=pick("ema"), num_classes=meta["num_classes"],
                         distributed=args.distributed, sync_batchnorm=args.sync_batchnorm)
    seed_everything(config.seed, torch=True)
    G, D = build_models(meta)
    from ganlib.data import Batches

    x, y = _load_images(meta)
    batches = Batches(x, config.batch_size, labels=y if config.num_classes else None, seed=config.seed,
                      device=device, rank=rank, world_size=world)  # the whole dataset on the device
    say = print if rank == 0 else (lambda *a, **k: None)  # only rank 0 talks
    say(f"ganlib train: {model} on {kind} ({x.shape[0]} images of {tuple(x.shape[1:])}), device {device}, "
        f"{'resuming at step ' + str(ckpt['step']) if ckpt else 'new run'} -> {out}"
        + (f", {world} processes of {config.batch_size // world} images per step" if args.distributed else ""),
        file=sys.stderr)
    try:
        history = train_gan(G, D, batches, config, resume=bool(ckpt), overwrite=args.overwrite, meta=meta)
    finally:
        if args.distributed:
            _dist.teardown()
    last = history[-1] if len(history) else {"step": 0}
    say(f"ganlib train: done at step {last['step']}; checkpoint {out / CHECKPOINT}, history {out / HISTORY}, "
        f"samples {out / 'samples'}", file=sys.stderr)
    return 0


def main_train(argv: list[str]) -> int:
    """``ganlib train ...`` (see ``ganlib train --help``); returns the exit code.

    0: trained; 1: a problem with the data, device, checkpoint or training (one ``error:`` line
    on stderr); 2: bad arguments (the usage line and one ``error:`` line); 130: Ctrl-C, after
    saving the checkpoint.

    Examples
    --------
    >>> main_train(["--model", "gan", "--data", "mnist", "--out", "runs/x"])   # 'gan' is no model
    2
    """
    return _run_cli("train", _parser_train(), _train_body, argv)


def _parser_sample():
    import argparse

    p = argparse.ArgumentParser(prog="ganlib sample", usage="ganlib sample --checkpoint FILE --out grid.png|samples.npy "
                                "[--n 64] [options]", description="Draw samples from a trained generator.",
                                epilog=SAMPLE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by ganlib train")
    p.add_argument("--n", type=_positive(int), default=64, help="how many samples (default 64)")
    p.add_argument("--out", required=True, help="grid.png (an image grid) or samples.npy (float32 N x C x H x W)")
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="seed of the latent noise (default 0)")
    p.add_argument("--device", default="auto", type=_device_name, help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--ema", action="store_true", help="use the EMA generator (runs trained with --ema)")
    p.add_argument("--nrow", type=_positive(int), help="images per row of the grid (default: a square; "
                   "one row per class for a conditional model)")
    p.add_argument("--label", type=_nonnegative_int, help="conditional models: draw every sample of this class "
                   "(default: the classes in turn, one row each)")
    return p


def _sample_body(args, parser) -> int:
    import sys

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".npy"):
        parser.error(f"--out must end in .png (an image grid) or .npy (an array), got {args.out!r}")
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.checkpoint)
    meta = ckpt["meta"]
    if not meta.get("model"):
        raise _CLIError(f"{args.checkpoint} was written by train_gan from Python with your own models; "
                        "load it with ganlib.train.load_checkpoint and call your generator")
    state = ckpt["models"]["G_ema"] if args.ema else ckpt["models"]["G"]
    if state is None:
        raise _CLIError(f"{args.checkpoint} holds no EMA generator: it was trained without --ema")
    k = meta.get("num_classes")
    if args.label is not None and not k:
        raise _CLIError(f"--label needs a conditional model; {args.checkpoint} was trained without --conditional")
    if args.label is not None and args.label >= k:
        raise _CLIError(f"--label must be a class in 0..{k - 1}, got {args.label}")
    G, _ = build_models(meta)
    G.load_state_dict(state)
    G.to(device).eval()
    z = torch.randn(args.n, ckpt["latent_dim"], generator=torch.Generator().manual_seed(args.seed)).to(device)
    y = [None] * len(z.split(1024))
    if k:  # one class (--label), or the classes in turn, one row each
        per_row = -(-args.n // k)
        labels = (torch.full((args.n,), args.label) if args.label is not None
                  else class_rows(k, per_row)[0][0][:args.n])
        y = labels.to(device).split(1024)
        args.nrow = args.nrow or (per_row if args.label is None else None)
    with torch.no_grad():
        x = torch.cat([G(zb, yb).float().cpu() if k else G(zb).float().cpu()
                       for zb, yb in zip(z.split(1024), y)]).clamp_(-1, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".npy":
        np.save(out, x.numpy().astype(np.float32))
    else:
        from ganlib.plot import save_image_grid

        save_image_grid(x, out, nrow=args.nrow)
    print(f"ganlib sample: {args.n} samples of shape {tuple(x.shape[1:])} from step {ckpt['step']} -> {out}",
          file=sys.stderr)
    return 0


def main_sample(argv: list[str]) -> int:
    """``ganlib sample ...`` (see ``ganlib sample --help``); returns the exit code (0, 1 or 2 as ``main_train``).

    Examples
    --------
    >>> main_sample(["--checkpoint", "runs/none/checkpoint.pt", "--out", "grid.jpg"])   # .png or .npy only
    2
    """
    return _run_cli("sample", _parser_sample(), _sample_body, argv)
