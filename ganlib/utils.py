"""Small helpers every chapter uses: seeding, device choice, training budgets, progress bars (chapter 00).

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


def quiet() -> bool:
    """True when progress output should stay off: ``GANLIB_SMOKE=1`` or ``CI`` set to 1/true/yes/on.

    Examples
    --------
    >>> from unittest import mock
    >>> with mock.patch.dict("os.environ", {"GANLIB_SMOKE": "0", "CI": "true"}):
    ...     quiet()
    True
    """
    return is_smoke() or os.environ.get("CI", "").strip().lower() in _TRUE


def _in_jupyter_kernel() -> bool:
    """True inside a Jupyter kernel (IPython's kernel app), False in a terminal, a script or plain IPython."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # pragma: no cover - a broken or partial IPython
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _bar_class():
    """The tqdm class to draw with: a widget inside a Jupyter kernel that has ipywidgets, else the text bar.

    Never ``tqdm.auto``: without ipywidgets it warns (``TqdmWarning: IProgress not found``) in the
    learner's notebook. Without ipywidgets the text bar is used, silently.
    """
    if _in_jupyter_kernel():
        try:
            import ipywidgets  # noqa: F401  (the widget bar needs it; the course extras install it)
            from tqdm.notebook import IProgress, tqdm as widget_bar
        except ImportError:
            pass
        else:
            if IProgress is not None:
                return widget_bar
    from tqdm.std import tqdm as text_bar

    return text_bar


def progress_bar(**kwargs):
    """A manual tqdm bar (``bar.update(n)``), silent under ``GANLIB_SMOKE=1`` or ``CI``; see :func:`progress`.

    Examples
    --------
    >>> with progress_bar(total=3, disable=True) as bar:
    ...     bar.update(3)
    """
    kwargs.setdefault("disable", quiet())
    if kwargs["disable"]:
        from tqdm.std import tqdm as text_bar  # a silent bar: no widget, no warning

        return text_bar(**kwargs)
    return _bar_class()(**kwargs)


def progress(iterable: Iterable[T], **kwargs) -> Iterator[T]:
    """Wrap a loop in a progress bar, silent under ``GANLIB_SMOKE=1`` or ``CI``.

    In a Jupyter kernel with ipywidgets installed (the course's set-up) the bar is a widget;
    elsewhere, or without ipywidgets, it is tqdm's text bar on stderr, without a warning. A
    silent bar imports nothing: the items pass through unchanged.

    Parameters
    ----------
    iterable : iterable
        The loop's items.
    **kwargs
        tqdm's options (``desc``, ``total``, ``unit``...); ``disable=True`` or ``False`` overrides
        the environment.

    Examples
    --------
    >>> from unittest import mock
    >>> with mock.patch.dict("os.environ", {"GANLIB_SMOKE": "1"}):  # no bar: the items pass through
    ...     [step for step in progress(range(3), desc="train")]
    [0, 1, 2]
    """
    disable = kwargs.pop("disable", quiet())
    if disable:
        return iter(iterable)
    return iter(_bar_class()(iterable, disable=disable, **kwargs))


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


THREADS_ENV = "GANLIB_THREADS"


def configure_threads(n: int | None = None) -> int:
    """Set the number of CPU threads torch uses inside one operation, for the course's small models.

    The course's networks are tiny (MLPs of a few thousand parameters on batches of about 128), so
    one operation takes microseconds and splitting it across threads costs more than it saves. With
    torch's default (one thread per core), two threads that compete with any other busy process
    for a core wait for each other at every operation. One thread is the deliberate default here.

    Parameters
    ----------
    n : int, optional
        Threads to use, >= 1. ``None`` (default): the environment variable ``GANLIB_THREADS`` if
        set (``0`` or ``auto`` keeps torch's own default), otherwise 1. Later chapters with
        convolutional models may pass a larger number.

    Returns
    -------
    int
        The number of threads torch now uses (``torch.get_num_threads()``).

    Examples
    --------
    >>> configure_threads(1)
    1
    """
    import torch as _torch

    if n is None:
        env = os.environ.get(THREADS_ENV, "").strip().lower()
        if env in {"0", "auto"}:
            return _torch.get_num_threads()
        if env:
            try:
                n = int(env)
            except ValueError:
                raise ValueError(f"{THREADS_ENV}={env!r}: use a positive integer, or 0 / auto for torch's default") from None
        else:
            n = 1
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"configure_threads: n must be a positive integer, got {n!r}")
    _torch.set_num_threads(int(n))
    return _torch.get_num_threads()


def optional_simd_features() -> list[str]:
    """NumPy's optional SIMD targets that this CPU has and NumPy would use (e.g. AVX2, AVX-512 groups).

    These are the "dispatched" features, chosen at run time: ``NPY_DISABLE_CPU_FEATURES`` may switch
    them off (the test suite does, to check that printed results do not depend on the CPU). The
    baseline features NumPy was compiled for cannot be disabled and are not listed. Names follow
    the installed NumPy (``X86_V3``, ``X86_V4``, ``AVX512_ICL`` in NumPy 2.4; ``AVX2``, ``AVX512F``... in 1.x).

    Examples
    --------
    >>> all(isinstance(name, str) for name in optional_simd_features())
    True
    """
    try:
        from numpy._core import _multiarray_umath as umath  # NumPy >= 2
    except ImportError:  # pragma: no cover - NumPy 1.x
        from numpy.core import _multiarray_umath as umath
    found = umath.__cpu_features__
    return [f for f in umath.__cpu_dispatch__ if found.get(f)]


def check_n(n: int) -> int:
    """``n`` as an ``int`` when it is a non-negative integer (a sample count), else ``ValueError``.

    Examples
    --------
    >>> check_n(np.int64(3))
    3
    """
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    return int(n)
