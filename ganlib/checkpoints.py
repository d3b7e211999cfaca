"""Checkpoint files of the training loop: writing, reading, resuming, rebuilding the models (chapter 07).

A checkpoint (``OUT/checkpoint.pt``, written by :func:`ganlib.train.train_gan`) holds G, D,
both optimisers, every random state, the data source's position, the step, the config, how
the command line built the models (``meta``) and the ganlib version. This module reads and
writes such files (:func:`save_checkpoint` is atomic, :func:`load_checkpoint` never runs
code), checks that a checkpoint fits the models and config it would resume
(:func:`_check_compatible`: every problem is listed before anything is loaded), saves and
restores the random states, and rebuilds ``ganlib train``'s models from ``meta``
(:func:`build_models`), which ``ganlib sample`` and ``ganlib evaluate`` use.

Examples
--------
>>> import os, tempfile
>>> G, D = build_models({"model": "mlp", "image_size": 28, "channels": 1, "latent_dim": 8, "width": 16})
>>> path = save_checkpoint(os.path.join(tempfile.mkdtemp(), CHECKPOINT), {"step": 3, "G": G.state_dict()})
>>> torch.load(path, weights_only=True)["step"], path.name
(3, 'checkpoint.pt')
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["CHECKPOINT", "save_checkpoint", "load_checkpoint", "build_models"]

CHECKPOINT = "checkpoint.pt"  # its file name in a run's folder
# Config fields that may change between a run and its resumption (budgets, folders, speed options).
_RESUMABLE_CHANGES = {"steps", "minutes", "epochs", "device", "out", "checkpoint_every", "sample_every",
                      "channels_last", "compile", "amp", "distributed", "sync_batchnorm", "cuda_graphs",
                      "sync_every", "log_every"}


def _rng_state(gen: torch.Generator, source) -> dict:
    """Every random state of a run: python, NumPy, torch (CPU and CUDA), the latent generator and ``source.state_dict()``."""
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


def _unreadable(path: Path, error: Exception) -> str:
    """Why ``torch.load`` could not read ``path``, judged from the file's bytes, and what to do (never torch's advice)."""
    import zipfile

    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4)
    redo = ("copy it again from where it came from, or start a new run: ganlib train ... --overwrite "
            "(or train_gan(..., overwrite=True))")
    if size == 0:
        return f"{path} is empty (0 bytes): the file was truncated. {redo[0].upper()}{redo[1:]}"
    if head == b"PK\x03\x04" and not zipfile.is_zipfile(path):  # a zip file's start without its end
        return (f"{path} is truncated ({size:,} bytes, its end is missing): it was cut off while being copied or "
                f"downloaded, or the disk filled up (ganlib writes checkpoints atomically, so training never leaves "
                f"half a file). {redo[0].upper()}{redo[1:]}")
    unsafe = next((ln.split("Unsupported global:", 1)[1].split(" was not", 1)[0].strip()
                   for ln in str(error).splitlines() if "Unsupported global:" in ln), None)
    if unsafe:
        return (f"{path} is not a ganlib checkpoint: it holds Python objects ({unsafe.replace('GLOBAL ', '')}) "
                "that a ganlib checkpoint never holds, and ganlib does not run code from files. Pass the "
                "checkpoint.pt of a run folder written by ganlib train or train_gan(..., TrainConfig(out=...))")
    if head == b"PK\x03\x04":
        return (f"{path} is damaged: it is a complete archive, but its contents cannot be read. {redo[0].upper()}"
                f"{redo[1:]}")
    return (f"{path} is not a ganlib checkpoint (a checkpoint is a zip archive written by torch.save; this file is "
            "not one). Pass the checkpoint.pt of a run folder written by ganlib train or "
            "train_gan(..., TrainConfig(out=...))")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`train_gan` (``weights_only``: no arbitrary code runs).

    Keys: ``step``, ``time``, ``config`` (a dict), ``latent_dim``, ``meta`` (how the command line
    built the models, or ``{}``), ``models`` (``G``, ``D`` and ``G_ema`` state dicts),
    ``optimizers``, ``scalers``, ``rng``, ``fixed_noise``, ``ganlib_version``.

    Raises
    ------
    FileNotFoundError
        No file at ``path`` (a run folder names its ``checkpoint.pt``).
    ValueError
        The file is empty or truncated, damaged, or not a ganlib checkpoint; the message says
        which, and what to do.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), CHECKPOINT)
    >>> _ = open(path, "wb").write(b"not a checkpoint")
    >>> load_checkpoint(path)
    Traceback (most recent call last):
    ...
    ValueError: ... is not a ganlib checkpoint (a checkpoint is a zip archive written by torch.save; ...
    """
    path = Path(path)
    if path.is_dir():
        hint = f": pass {path / CHECKPOINT}" if (path / CHECKPOINT).is_file() else f" (expected {path / CHECKPOINT})"
        raise FileNotFoundError(f"{path} is a folder, not a checkpoint file{hint}")
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # a foreign pickle makes torch warn about its protocol before refusing it
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated, damaged or foreign: judged from the bytes, without torch's advice
        raise ValueError(_unreadable(path, e)) from None
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


def _check_compatible(ckpt: dict, path, config, latent_dim: int, G, D, opt_G, opt_D) -> None:
    """Every check before anything is loaded, so a mismatch never leaves a half-loaded model (``config``: a TrainConfig)."""
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
