"""Small helpers every chapter uses: seeding, device choice, training budgets, progress bars.

Nothing here imports torch at module level, so NumPy chapters start fast.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

T = TypeVar("T")

SMOKE_ENV = "GANLIB_SMOKE"
_TRUE = {"1", "true", "yes", "on"}


def is_smoke() -> bool:
    """Return True when ``GANLIB_SMOKE`` is set to 1/true/yes/on (CI and quick checks).

    Examples
    --------
    >>> from unittest import mock
    >>> with mock.patch.dict("os.environ", {"GANLIB_SMOKE": "yes"}):  # the environment is restored afterwards
    ...     is_smoke()
    True
    """
    return os.environ.get(SMOKE_ENV, "").strip().lower() in _TRUE


def budget(full: int, smoke: int) -> int:
    """Pick a training budget: ``full`` normally, ``smoke`` when ``GANLIB_SMOKE=1``.

    Parameters
    ----------
    full : int
        Budget for a real run (steps, epochs, samples...).
    smoke : int
        Small budget used by CI and quick checks; must not exceed ``full``.

    Examples
    --------
    >>> from unittest import mock
    >>> with mock.patch.dict("os.environ", {"GANLIB_SMOKE": "1"}):
    ...     budget(full=5000, smoke=200)
    200
    >>> with mock.patch.dict("os.environ", {"GANLIB_SMOKE": "0"}):
    ...     budget(full=5000, smoke=200)
    5000
    """
    if smoke > full:
        raise ValueError(f"budget(full={full}, smoke={smoke}): the smoke budget must not exceed the full one")
    return smoke if is_smoke() else full


def progress(iterable: Iterable[T], **kwargs) -> Iterator[T]:
    """Wrap a loop in a tqdm progress bar, silent under ``GANLIB_SMOKE=1`` or ``CI``.

    Examples
    --------
    >>> from unittest import mock
    >>> with mock.patch.dict("os.environ", {"GANLIB_SMOKE": "1"}):  # no bar: the items pass through
    ...     [step for step in progress(range(3), desc="train")]
    [0, 1, 2]
    """
    from tqdm.auto import tqdm

    quiet = is_smoke() or os.environ.get("CI", "").strip().lower() in _TRUE
    kwargs.setdefault("disable", quiet)
    return iter(tqdm(iterable, **kwargs))


def seed_everything(seed: int, *, torch: bool | None = None) -> np.random.Generator:
    """Seed Python's ``random``, NumPy's global generator and torch; return a fresh NumPy Generator.

    Parameters
    ----------
    seed : int
        Non-negative seed.
    torch : bool or None
        Seed torch too. ``None`` (default) seeds torch only if it is already imported,
        so NumPy chapters never pay for importing it.

    Returns
    -------
    numpy.random.Generator
        ``np.random.default_rng(seed)``; prefer passing this around to global state.

    Examples
    --------
    >>> rng = seed_everything(0)
    >>> rng.normal(size=2).shape
    (2,)
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if torch or (torch is None and "torch" in sys.modules):
        import torch as _torch

        _torch.manual_seed(seed)  # also seeds every CUDA device
    return np.random.default_rng(seed)


def default_device() -> "torch.device":
    """The best available torch device: CUDA, then Apple's MPS, then CPU.

    Examples
    --------
    >>> default_device().type in {"cuda", "mps", "cpu"}
    True
    """
    import torch as _torch

    if _torch.cuda.is_available():
        return _torch.device("cuda")
    mps = getattr(_torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return _torch.device("mps")
    return _torch.device("cpu")
