"""Data-parallel GAN training with ``torch.distributed`` (appendix B): the trainer's distributed mode.

:func:`ganlib.train.train_gan` with ``TrainConfig(distributed=True)``, launched by ``torchrun``,
runs the same loop in every process ("rank"). This module holds the small pieces it needs:

- :func:`setup` / :func:`teardown`: join / leave the process group that ``torchrun`` describes in
  the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``);
  gloo on CPUs, NCCL on CUDA GPUs (one GPU per process, ``cuda:LOCAL_RANK``);
- :func:`wrap`: ``DistributedDataParallel`` around G and D, so that every backward pass averages
  the gradients over the ranks before the optimiser steps;
- :func:`shard`: each rank draws its part of the global batch (``batch_size`` is the global
  batch; every rank gets ``batch_size // world_size`` rows, rows ``rank, rank + W, ...``);
- :func:`all_mean`: the logged numbers as global-batch means, and one stop decision for all ranks.

Only rank 0 writes files (``ganlib.train._is_main_process``); every rank reads the same checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["free_port", "torchrun_command", "env_world", "setup", "teardown", "rank", "world_size", "local_batch_size",
           "wrap", "shard", "all_mean"]

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now: a rendezvous port for runs that must not collide.

    Examples
    --------
    >>> 1024 <= free_port() < 65536
    True
    """
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def torchrun_command(args: Sequence[str] = ("...",), nproc: int = 2) -> str:
    """The command line that starts ``ganlib train`` in ``nproc`` processes on this machine.

    Examples
    --------
    >>> torchrun_command(["--model", "mlp", "--data", "mnist", "--out", "runs/ddp"])
    'torchrun --nproc-per-node 2 -m ganlib train --distributed --model mlp --data mnist --out runs/ddp'
    """
    rest = [a for a in args if a != "--distributed"]
    return " ".join(["torchrun", "--nproc-per-node", str(nproc), "-m", "ganlib", "train", "--distributed", *rest])


def env_world() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from the environment ``torchrun`` sets; an error outside torchrun.

    Examples
    --------
    >>> import os
    >>> os.environ.pop("WORLD_SIZE", None) and None
    >>> env_world()
    Traceback (most recent call last):
    ...
    RuntimeError: distributed training must be started by torchrun, which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for every process; start it with: torchrun --nproc-per-node 2 -m ganlib train --distributed ...
    """
    missing = [k for k in _ENV if k not in os.environ]
    if missing:
        raise RuntimeError("distributed training must be started by torchrun, which sets "
                           f"{', '.join(_ENV[:-1])} and {_ENV[-1]} for every process; start it with: "
                           + torchrun_command())
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])


def local_batch_size(batch_size: int, world: int) -> int:
    """Rows per rank of a global batch; an error when the world size does not divide it.

    Examples
    --------
    >>> local_batch_size(128, 2)
    64
    >>> local_batch_size(100, 3)
    Traceback (most recent call last):
    ...
    ValueError: the batch size 100 is not divisible by the world size 3 (processes): every rank takes batch_size / world_size rows, so choose a multiple of 3, e.g. 99 or 102
    """
    if batch_size % world:
        lo, hi = (batch_size // world) * world, (batch_size // world + 1) * world
        raise ValueError(f"the batch size {batch_size} is not divisible by the world size {world} (processes): "
                         f"every rank takes batch_size / world_size rows, so choose a multiple of {world}, "
                         f"e.g. {lo or hi} or {hi}")
    return batch_size // world


def setup(batch_size: int, device: torch.device) -> tuple[int, int, torch.device]:
    """Join the process group (unless already joined); returns ``(rank, world_size, device)``.

    The batch size is checked before any connection is made. The backend is NCCL for CUDA
    devices (this process's GPU becomes ``cuda:LOCAL_RANK``) and gloo otherwise.
    """
    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeError(f"this torch build ({torch.__version__}) has no torch.distributed")
    if dist.is_initialized():
        r, w, local = dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    else:
        r, w, local = env_world()
    local_batch_size(batch_size, w)
    if device.type == "cuda":
        device = torch.device("cuda", local if device.index is None else device.index)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        _import_before_joining()
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return r, w, device


def _import_before_joining() -> None:
    """Import, before the process group exists, the torch module that would otherwise pin it.

    ``torch.distributed.nn.functional`` takes ``group.WORLD`` as a default argument of its
    collectives, evaluated when it is first imported; ``DistributedDataParallel`` imports it
    (through ``torch._dynamo``) when the first wrapper is built. Imported after
    ``init_process_group``, it holds the group for the life of the interpreter:
    ``destroy_process_group`` then cannot free it, gloo's worker threads outlive :func:`teardown`,
    and one that releases its last collective while Python shuts down aborts the process
    ("terminate called without an active exception"), at random, more often on a busy machine.
    Imported first, the defaults are ``None``.
    """
    try:
        import torch.distributed.nn  # noqa: F401
    except ImportError:  # a build without it has nothing to pin the group
        pass


def teardown() -> None:
    """Leave the process group, if this process joined one.

    Once no ``DistributedDataParallel`` wrapper is left, the group is freed here, while Python
    runs: its communication threads (gloo's) end now, not during the interpreter's shutdown
    (see :func:`setup`).
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Processes in the group (1 outside a process group)."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def wrap(module: nn.Module, device: torch.device, sync_batchnorm: bool = False) -> nn.Module:
    """``DistributedDataParallel(module)``: its backward passes average the gradients over the ranks.

    ``sync_batchnorm`` turns BatchNorm layers into ``SyncBatchNorm`` (in place: same parameters,
    same state-dict keys), which computes batch statistics over the global batch; torch
    supports it on CUDA only. A module without trainable parameters is returned as it is.
    """
    from torch.nn.parallel import DistributedDataParallel

    if sync_batchnorm:
        if device.type != "cuda":
            raise ValueError("sync_batchnorm needs CUDA GPUs (torch's SyncBatchNorm does not run on CPU); on CPUs "
                             "train without it (BatchNorm then normalises each rank's batch) or use a model without "
                             "BatchNorm")
        for name, child in module.named_children():
            setattr(module, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
    if not any(p.requires_grad for p in module.parameters()):
        return module
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def shard(data, batch_size: int, r: int, w: int):
    """The real data each rank trains on, for a global batch of ``batch_size``.

    A function ``sample(n)`` draws the global batch (the same on every rank: the RNGs are seeded
    alike) and keeps rows ``r, r + w, ...``; a ``ganlib.data.Batches`` must be rank-aware
    (``Batches(x, batch_size, rank=r, world_size=w)``); other iterables (a DataLoader with a
    ``DistributedSampler``) are the caller's responsibility.
    """
    from ganlib.data import Batches

    if isinstance(data, Batches):
        if (data.rank, data.world_size) != (r, w) or data.batch_size != batch_size:
            raise ValueError(f"in a distributed run (rank {r} of {w}) pass each rank its shard: "
                             f"Batches(x, {batch_size}, rank={r}, world_size={w}), with the global batch size; "
                             f"got {data!r}")
        return data
    if callable(data) and not hasattr(data, "__iter__"):
        def sample(n: int) -> Tensor:
            return data(n * w)[r::w]

        return sample
    return data


def all_mean(stats: Tensor, stop: bool) -> tuple[Tensor, bool]:
    """Average ``stats`` over the ranks, and stop everywhere if any rank wants to stop.

    A NaN on one rank becomes a NaN everywhere, so every rank raises at the same step
    instead of leaving the others waiting in the next collective call.
    """
    import torch.distributed as dist

    w = dist.get_world_size()
    buf = torch.cat([stats.float().flatten(), torch.tensor([float(stop)], device=stats.device)])
    dist.all_reduce(buf)
    return buf[:-1] / w, bool(buf[-1].item() > 0)
