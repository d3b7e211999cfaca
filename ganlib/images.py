"""Images for the GAN chapters: MNIST from its original files, CIFAR-10, folders of images, ``Batches`` (chapter 07).

MNIST is read from the original IDX files without torchvision (:func:`read_idx`), found in
``root``, ``$GANLIB_DATA`` or the user cache, else downloaded from public mirrors and checked
against their md5 sums (:func:`mnist_dir`, :func:`load_mnist`); :func:`scale_images` maps
bytes to ``[-1, 1]`` for a tanh generator. :func:`image_folder` reads a folder of pictures,
:func:`synthetic_images` makes a tiny offline image set, and :class:`Batches` feeds a whole
in-memory dataset to :func:`ganlib.train.train_gan`, seeded and resumable (chapter 08 adds
other sizes and data on the device; chapter B shards it across processes).

CIFAR-10, for the DCGAN on colour photographs, comes the same way, through the same downloader: the
python version of the archive, md5-verified and cached (:func:`cifar10_dir`), its pickled
batches read by an unpickler that accepts only what the format holds (:func:`read_cifar10`,
:func:`load_cifar10`, :func:`cifar10_images`). Colour datasets stay uint8 in memory and
``Batches(..., scale=True)`` converts each batch to ``[-1, 1]``.

About 1,000 lines: one job, the course's image datasets (fetched, verified, parsed and served),
kept together because MNIST and CIFAR-10 share one downloader and every dataset feeds ``Batches``.

Everything here imports torch (and Pillow) inside the functions that need it, so importing
this module is cheap. HTTP uses only the standard library. Every public name is also
importable from :mod:`ganlib.data`, as the chapters do.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import pickle
import socket
import struct
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ganlib.utils import check_n

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: The four original MNIST files: name -> (md5, size in bytes, content).
MNIST_FILES: dict[str, tuple[str, int, str]] = {
    "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422, "60000 training images, 28x28"),
    "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432", 28881, "60000 training labels"),
    "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3", 1648877, "10000 test images, 28x28"),
    "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c", 4542, "10000 test labels"),
}
_MNIST_SPLITS = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}

#: Public mirrors of the original files (the ones torchvision's MNIST uses), tried in order.
MNIST_MIRRORS: tuple[str, ...] = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                                  "http://yann.lecun.com/exdb/mnist/")
DATA_ENV = "GANLIB_DATA"              # folder holding the four files (or an ``mnist/`` folder with them)
MIRRORS_ENV = "GANLIB_MNIST_MIRRORS"  # comma-separated base URLs replacing MNIST_MIRRORS

#: The python version of CIFAR-10 (Krizhevsky 2009): name -> (md5, size in bytes, content).
CIFAR10_FILES: dict[str, tuple[str, int, str]] = {
    "cifar-10-python.tar.gz": ("c58f30108f718f92721af3b95e74349a", 170498071,
                               "50000 training and 10000 test images, 32x32 RGB, in pickled batches"),
}
#: Where the archive is published (https://www.cs.toronto.edu/~kriz/cifar.html), tried in order.
CIFAR10_MIRRORS: tuple[str, ...] = ("https://www.cs.toronto.edu/~kriz/",)
CIFAR10_MIRRORS_ENV = "GANLIB_CIFAR10_MIRRORS"  # comma-separated base URLs replacing CIFAR10_MIRRORS
CIFAR10_CLASSES: tuple[str, ...] = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                    "ship", "truck")
_CIFAR10_SPLITS = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_CIFAR10_FOLDER = "cifar-10-batches-py"   # the folder inside the archive

IDX_MAGIC_IMAGES = 2051  # 0x00000803: unsigned bytes, 3 dimensions (N, rows, cols)
IDX_MAGIC_LABELS = 2049  # 0x00000801: unsigned bytes, 1 dimension (N,)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class DataNotFoundError(FileNotFoundError):
    """Data files are missing and could not be downloaded (the message says what to put where)."""


class DataCorruptError(ValueError):
    """A data file is damaged: wrong checksum, wrong magic number, truncated or unreadable."""


# ----------------------------------------------------------------------------- IDX files

def _open_maybe_gzip(path: Path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) of unsigned bytes into a uint8 array.

    The header is big-endian: a 32-bit magic number (2051 = ``0x00000803`` for images:
    unsigned bytes, 3 dimensions; 2049 = ``0x00000801`` for labels: 1 dimension), then one
    32-bit size per dimension, then the data, row-major. The data must hold exactly
    ``prod(sizes)`` bytes.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    numpy.ndarray
        uint8, shape ``(N, rows, cols)`` for images or ``(N,)`` for labels.

    Raises
    ------
    DataCorruptError
        Wrong magic number, truncated or over-long file, damaged gzip stream; the message names the file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "tiny-labels-idx1-ubyte"
    >>> _ = p.write_bytes(struct.pack(">II", 2049, 3) + bytes([7, 0, 9]))
    >>> read_idx(p)
    array([7, 0, 9], dtype=uint8)
    """
    path = Path(path)
    redo = "delete it and download it again (ganlib.data.mnist_dir downloads missing files)"
    try:
        with _open_maybe_gzip(path) as f:
            raw = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise DataCorruptError(f"{path}: cannot decompress ({e}); the file is damaged or truncated: {redo}") from e
    if len(raw) < 4:
        raise DataCorruptError(f"{path}: only {len(raw)} bytes, too short for an IDX header; {redo}")
    magic = struct.unpack(">i", raw[:4])[0]
    if magic not in (IDX_MAGIC_IMAGES, IDX_MAGIC_LABELS):
        raise DataCorruptError(
            f"{path}: magic number {magic} (0x{magic & 0xFFFFFFFF:08x}) is not an IDX file of unsigned bytes "
            f"(expected {IDX_MAGIC_IMAGES} for images or {IDX_MAGIC_LABELS} for labels); is it the right file? {redo}")
    ndim = 3 if magic == IDX_MAGIC_IMAGES else 1
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataCorruptError(f"{path}: truncated header ({len(raw)} of {header} bytes); {redo}")
    dims = struct.unpack(">" + "i" * ndim, raw[4:header])
    if any(d <= 0 for d in dims):
        raise DataCorruptError(f"{path}: invalid dimensions {dims} in the header; {redo}")
    expected = int(np.prod(dims))
    got = len(raw) - header
    if got < expected:
        raise DataCorruptError(f"{path}: truncated: {got} data bytes, the header {dims} needs {expected}; {redo}")
    if got > expected:
        raise DataCorruptError(f"{path}: {got - expected} bytes after the data the header {dims} describes; {redo}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()  # writable


# ----------------------------------------------------------------------------- where files live

def cache_dir() -> Path:
    """The per-user cache folder of ganlib (created on first download, not here).

    ``$XDG_CACHE_HOME/ganlib`` when that variable is set, else the platform's cache folder:
    ``~/.cache/ganlib`` (Linux), ``~/Library/Caches/ganlib`` (macOS), ``%LOCALAPPDATA%\\ganlib``
    (Windows).

    Examples
    --------
    >>> cache_dir().name
    'ganlib'
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    if xdg:
        base = Path(xdg)
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path.home() / ".cache"
    return base / "ganlib"


def file_md5(path) -> str:
    """Hex md5 digest of a file, read in 1 MiB chunks.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"abc")
    >>> file_md5(p)
    '900150983cd24fb0d6963f7d28e17f72'
    """
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _mirrors(variable: str = MIRRORS_ENV, default: tuple[str, ...] | None = None) -> list[str]:
    """Base URLs from the environment ``variable`` (comma-separated), else ``default`` (MNIST's mirrors)."""
    env = os.environ.get(variable, "").strip()
    urls = [u.strip() for u in env.split(",") if u.strip()] if env else list(MNIST_MIRRORS if default is None
                                                                              else default)
    return [u if u.endswith("/") else u + "/" for u in urls]


def _quiet() -> bool:
    from ganlib.utils import _TRUE, is_smoke

    return is_smoke() or os.environ.get("CI", "").strip().lower() in _TRUE


def _missing_message(folder: Path, names: list[str], reason: str) -> str:
    files = "\n".join(f"  {n}  md5 {MNIST_FILES[n][0]}  ({MNIST_FILES[n][1]:,} bytes)" for n in MNIST_FILES)
    return (f"MNIST is not available: {reason}\n"
            f"Missing or damaged: {', '.join(names)}\n"
            f"Put the four original MNIST files (gzip-compressed IDX, as published) in\n  {folder}\n"
            f"or point ${DATA_ENV} at a folder that holds them:\n{files}\n"
            f"Check them with `md5sum *.gz`. With a network connection they are downloaded automatically "
            f"(mirrors: ${MIRRORS_ENV}, comma-separated base URLs).")


def _download(name: str, folder: Path, *, timeout: float, retries: int, files: dict | None = None,
              mirrors: list[str] | None = None) -> list[str]:
    """Try each mirror for ``name``; write it atomically to ``folder``. Returns the failures (empty on success).

    ``files`` (name -> (md5, size, content)) and ``mirrors`` default to MNIST's.
    """
    md5, size, _ = (MNIST_FILES if files is None else files)[name]
    failures = []
    for base in (_mirrors() if mirrors is None else mirrors):
        url = base + name
        for attempt in range(1, retries + 1):
            try:
                _fetch(url, folder / name, md5, size, timeout)
                return []
            except urllib.error.HTTPError as e:  # the mirror answered: retrying will not help
                failures.append(f"{url}: HTTP {e.code} {e.reason}")
                break
            except DataCorruptError as e:          # served the wrong bytes: try the next mirror
                failures.append(f"{url}: {e}")
                break
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                reason = getattr(e, "reason", e)
                failures.append(f"{url}: {type(reason).__name__}: {reason} (attempt {attempt}/{retries})")
                if isinstance(reason, socket.gaierror):  # name resolution failed: offline, do not wait
                    break
                if attempt < retries:
                    time.sleep(0.5 * attempt)
    return failures


def _fetch(url: str, dest: Path, md5: str, size: int, timeout: float) -> None:
    """Stream ``url`` into a temporary file beside ``dest``, check length and md5, then rename."""
    from ganlib.utils import progress_bar as tqdm  # not tqdm.auto: it warns in a notebook without ipywidgets

    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        h = hashlib.md5()
        received = 0
        req = urllib.request.Request(url, headers={"User-Agent": "ganlib"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(req, timeout=timeout) as resp, \
                tqdm(total=size, unit="B", unit_scale=True, desc=dest.name, disable=_quiet(), leave=False) as bar:
            while True:
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                out.write(chunk)
                h.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if received < size:  # the connection ended early: worth another try
            raise ConnectionError(f"transfer ended after {received:,} of {size:,} bytes")
        if received > size:
            raise DataCorruptError(f"received {received:,} bytes, expected {size:,} (not the published file)")
        if h.hexdigest() != md5:
            raise DataCorruptError(f"md5 {h.hexdigest()} does not match the published {md5}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def mnist_dir(root=None, download: bool = True, *, timeout: float = 30.0, retries: int = 3) -> Path:
    """The folder holding the four md5-verified MNIST files, downloading the missing ones.

    The folder is the first of: ``root``; ``$GANLIB_DATA`` (the folder itself or its ``mnist/``
    subfolder, whichever holds the files); ``cache_dir() / "mnist"``. Every file there is checked
    against its md5 in ``MNIST_FILES``. A missing or damaged file is downloaded from the mirrors
    (``MNIST_MIRRORS``, or ``$GANLIB_MNIST_MIRRORS``: comma-separated base URLs), each tried
    ``retries`` times with a ``timeout`` in seconds, into a temporary file in the same folder
    that is renamed only once its length and md5 are right. A damaged file is never used.

    Raises
    ------
    DataNotFoundError
        Files missing (or damaged) and ``download=False``, or no mirror could deliver them; the
        message names the four files, their md5s and the folder to put them in.

    Examples
    --------
    >>> os.environ.get(DATA_ENV) is None or mnist_dir().is_dir()
    True
    """
    env = os.environ.get(DATA_ENV, "").strip()
    if root is not None:
        folder = Path(root).expanduser()
    elif env:
        folder = Path(env).expanduser()
        if not (folder / "train-images-idx3-ubyte.gz").exists() and (folder / "mnist").is_dir():
            folder = folder / "mnist"
    else:
        folder = cache_dir() / "mnist"
    return _verified_files(folder, MNIST_FILES, _mirrors(), _missing_message, download=download, timeout=timeout,
                           retries=retries)


def _verified_files(folder: Path, files: dict, mirrors: list[str], message, *, download: bool, timeout: float,
                    retries: int) -> Path:
    """``folder`` once every file of ``files`` in it has its md5, downloading the missing or damaged ones.

    ``message(folder, names, reason)`` is the text of the error when that fails (or ``download=False``).
    """
    bad = []
    for name, (md5, _, _) in files.items():
        p = folder / name
        if not (p.is_file() and file_md5(p) == md5):
            bad.append(name)
    if not bad:
        return folder
    damaged = [n for n in bad if (folder / n).exists()]
    if not download:
        why = "download=False" + (f"; wrong md5 (damaged or truncated): {', '.join(damaged)}" if damaged else "")
        raise DataNotFoundError(message(folder, bad, why))
    if damaged:
        warnings.warn(f"{', '.join(damaged)} in {folder}: wrong md5 (damaged or truncated); downloading again",
                      stacklevel=3)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataNotFoundError(message(folder, bad, f"cannot create the folder ({e})")) from e
    for name in bad:
        failures = _download(name, folder, timeout=timeout, retries=retries, files=files, mirrors=mirrors)
        if failures:
            tried = "\n".join("  " + f for f in failures)
            raise DataNotFoundError(message(folder, bad, f"downloading {name} failed:\n{tried}"))
    return folder


def load_mnist(split: str = "train", root=None, download: bool = True) -> tuple["torch.Tensor", "torch.Tensor"]:
    """MNIST as uint8 images ``(N, 28, 28)`` and int64 labels ``(N,)`` (N = 60000 train, 10000 test).

    Files come from :func:`mnist_dir` (``root``, then ``$GANLIB_DATA``, then the user cache,
    downloading what is missing) and are parsed by :func:`read_idx`.

    Examples
    --------
    >>> if os.environ.get(DATA_ENV):
    ...     x, y = load_mnist("test")
    ...     print(x.shape, x.dtype, y.shape, y.dtype, y[:5].tolist())
    ... else:
    ...     print("torch.Size([10000, 28, 28]) torch.uint8 torch.Size([10000]) torch.int64 [7, 2, 1, 0, 4]")
    torch.Size([10000, 28, 28]) torch.uint8 torch.Size([10000]) torch.int64 [7, 2, 1, 0, 4]
    """
    import torch

    if split not in _MNIST_SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = mnist_dir(root, download=download)
    img_name, lab_name = _MNIST_SPLITS[split]
    images, labels = read_idx(folder / img_name), read_idx(folder / lab_name)
    if images.ndim != 3 or labels.ndim != 1:
        raise DataCorruptError(f"{folder}: {img_name} must hold images and {lab_name} labels "
                               f"(got {images.ndim}-D and {labels.ndim}-D arrays); are the files swapped?")
    if len(images) != len(labels):
        raise DataCorruptError(f"{folder}: {len(images)} images in {img_name} but {len(labels)} labels in {lab_name}")
    if labels.size and labels.max() > 9:
        raise DataCorruptError(f"{folder / lab_name}: label {labels.max()} outside 0..9")
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


# ----------------------------------------------------------------------------- scaling

def scale_images(x_uint8) -> "torch.Tensor":
    """uint8 pixels ``[0, 255]`` to float32 ``[-1, 1]`` (the range of a tanh generator): ``x / 127.5 - 1``.

    Parameters
    ----------
    x_uint8 : torch.Tensor or numpy.ndarray, uint8
        ``(N, H, W)`` (a channel axis is added) or ``(N, C, H, W)``.

    Returns
    -------
    torch.Tensor
        float32, ``(N, C, H, W)``; 0 maps to -1 and 255 to +1.

    Examples
    --------
    >>> import torch
    >>> scale_images(torch.tensor([[[0, 255]]], dtype=torch.uint8))
    tensor([[[[-1.,  1.]]]])
    """
    import torch

    x = torch.as_tensor(x_uint8)
    if x.dtype != torch.uint8:
        raise TypeError(f"scale_images expects uint8 pixels in [0, 255], got {x.dtype}; "
                        "already scaled? (unscale_images goes back)")
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise ValueError(f"scale_images expects (N, H, W) or (N, C, H, W), got shape {tuple(x.shape)}")
    return x.to(torch.float32) / 127.5 - 1.0


def unscale_images(x) -> "torch.Tensor":
    """float ``[-1, 1]`` back to uint8 ``[0, 255]``: ``round((x + 1) * 127.5)``, clipped; shape kept.

    ``unscale_images(scale_images(u))`` gives back ``u`` exactly (with the channel axis).

    Examples
    --------
    >>> import torch
    >>> unscale_images(torch.tensor([-1.0, -0.2, 0.0, 1.0, 1.7]))
    tensor([  0, 102, 128, 255, 255], dtype=torch.uint8)
    """
    import torch

    x = torch.as_tensor(x)
    if not x.is_floating_point():
        raise TypeError(f"unscale_images expects floats in [-1, 1], got {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("unscale_images: the images contain NaN or inf")
    return ((x.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def _resize_uint8(x: "torch.Tensor", size: int, chunk: int = 4096) -> "torch.Tensor":
    import torch
    import torch.nn.functional as F

    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8)
    for i in range(0, x.shape[0], chunk):
        y = F.interpolate(x[i:i + chunk].float(), size=(size, size), mode="bilinear",
                          align_corners=False, antialias=False)
        out[i:i + chunk] = y.round().clamp(0, 255).to(torch.uint8)
    return out


def mnist_images(split: str = "train", root=None, size: int = 28,
                 download: bool = True) -> tuple["torch.Tensor", "torch.Tensor"]:
    """MNIST ready for a tanh generator: float32 ``(N, 1, size, size)`` in ``[-1, 1]``, int64 labels.

    ``size`` is 28 (the original), 32 or 64. Larger sizes are made once, up front, by bilinear
    interpolation of the uint8 digits (``torch.nn.functional.interpolate``, ``align_corners=False``,
    no antialiasing) rounded back to uint8, as torchvision's ``Resize`` does on uint8 tensors;
    then :func:`scale_images`. Memory: 60000 x 64 x 64 float32 is about 1 GB.

    Examples
    --------
    >>> if os.environ.get(DATA_ENV):
    ...     x, y = mnist_images("test", size=32)
    ...     print(x.shape, x.dtype, float(x.min()), float(x.max()))
    ... else:
    ...     print("torch.Size([10000, 1, 32, 32]) torch.float32 -1.0 1.0")
    torch.Size([10000, 1, 32, 32]) torch.float32 -1.0 1.0
    """
    if size not in (28, 32, 64):
        raise ValueError(f"size must be 28, 32 or 64, got {size!r}")
    x, y = load_mnist(split, root, download=download)
    x = x.unsqueeze(1)
    if size != 28:
        x = _resize_uint8(x, size)
    return scale_images(x), y


# ----------------------------------------------------------------------------- CIFAR-10

def _cifar10_message(folder: Path, names: list[str], reason: str) -> str:
    (name, (md5, size, _)), = CIFAR10_FILES.items()
    return (f"CIFAR-10 is not available: {reason}\n"
            f"Put the python version of CIFAR-10, as published, in\n  {folder}\n"
            f"or point ${DATA_ENV} at a folder that holds it (or holds a cifar10/ folder with it):\n"
            f"  {name}  md5 {md5}  ({size:,} bytes; https://www.cs.toronto.edu/~kriz/cifar.html)\n"
            f"Check it with `md5sum {name}`. With a network connection it is downloaded automatically "
            f"(mirrors: ${CIFAR10_MIRRORS_ENV}, comma-separated base URLs).")


def cifar10_dir(root=None, download: bool = True, *, timeout: float = 30.0, retries: int = 3) -> Path:
    """The folder holding the md5-verified CIFAR-10 archive (``cifar-10-python.tar.gz``), downloading it if missing.

    The folder is the first of: ``root``; ``$GANLIB_DATA`` if the archive is there, else its
    ``cifar10/`` subfolder; ``cache_dir() / "cifar10"``. The archive (163 MiB) is checked against
    its md5 in ``CIFAR10_FILES`` and, when missing or damaged, downloaded as MNIST's files are
    (:func:`mnist_dir`): from ``CIFAR10_MIRRORS`` (or ``$GANLIB_CIFAR10_MIRRORS``), into a
    temporary file renamed only once its length and md5 are right.

    Raises
    ------
    DataNotFoundError
        The archive is missing (or damaged) and ``download=False``, or no mirror delivered it;
        the message names the file, its md5 and the folder to put it in.

    Examples
    --------
    >>> import tempfile
    >>> try:
    ...     cifar10_dir(tempfile.mkdtemp(), download=False)
    ... except DataNotFoundError as e:
    ...     print(str(e).splitlines()[0])
    CIFAR-10 is not available: download=False
    """
    env = os.environ.get(DATA_ENV, "").strip()
    archive = next(iter(CIFAR10_FILES))
    if root is not None:
        folder = Path(root).expanduser()
    elif env:
        folder = Path(env).expanduser()
        if not (folder / archive).exists():
            folder = folder / "cifar10"
    else:
        folder = cache_dir() / "cifar10"
    return _verified_files(folder, CIFAR10_FILES, _mirrors(CIFAR10_MIRRORS_ENV, CIFAR10_MIRRORS), _cifar10_message,
                           download=download, timeout=timeout, retries=retries)


def _reconstruct_array(subtype, shape, typecode):
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"only plain numpy arrays are allowed, not {subtype!r}")
    return _NUMPY_RECONSTRUCT(subtype, shape, typecode)


def _uint8_dtype(spec, align=False, copy=False):
    dtype = np.dtype(spec.decode("ascii") if isinstance(spec, bytes) else spec, align, copy)
    if dtype != np.uint8:
        raise pickle.UnpicklingError(f"only uint8 arrays are allowed, not dtype {dtype}")
    return dtype


_NUMPY_RECONSTRUCT = np.empty(0).__reduce__()[0]   # numpy's ndarray reconstructor, whatever its module path
# The only globals a CIFAR-10 batch refers to: a numpy array of bytes (numpy 1 and numpy 2 spell the module
# differently). Everything else in the batch is a dict, lists, byte strings and integers.
_CIFAR10_GLOBALS = {("numpy.core.multiarray", "_reconstruct"): _reconstruct_array,
                    ("numpy._core.multiarray", "_reconstruct"): _reconstruct_array,
                    ("numpy", "ndarray"): np.ndarray,
                    ("numpy", "dtype"): _uint8_dtype}


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler for CIFAR-10's batches that can build nothing but plain containers and uint8 numpy arrays."""

    def find_class(self, module: str, name: str):
        try:
            return _CIFAR10_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR-10 batch holds only a dict, "
                                         "lists, byte strings, integers and a uint8 numpy array") from None


def _cifar10_batch(blob: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    redo = "delete the archive and download it again (ganlib.data.cifar10_dir downloads it)"
    try:
        batch = _CifarUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as e:  # UnpicklingError, EOFError, ValueError, TypeError...: all mean a damaged batch
        raise DataCorruptError(f"{where}: not a readable CIFAR-10 batch ({type(e).__name__}: {e}); {redo}") from e
    if not isinstance(batch, dict):
        raise DataCorruptError(f"{where}: a CIFAR-10 batch is a dict, got {type(batch).__name__}; {redo}")
    batch = {k.decode("latin-1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        what = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataCorruptError(f"{where}: 'data' must be a uint8 array (N, 3072), got {what}; {redo}")
    if not (isinstance(labels, list) and len(labels) == len(data)
            and all(type(v) is int and 0 <= v <= 9 for v in labels)):
        raise DataCorruptError(f"{where}: 'labels' must be a list of {len(data)} integers in 0..9; {redo}")
    return data, np.asarray(labels, dtype=np.int64)


def read_cifar10(archive, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The images and labels of one split of ``cifar-10-python.tar.gz``, read without extracting the archive.

    The archive holds ``cifar-10-batches-py/data_batch_1`` .. ``data_batch_5`` (training, 10000
    images each) and ``test_batch``, each a pickled dict (written by Python 2) with ``b"data"``, a
    uint8 numpy array ``(10000, 3072)`` (per image the 1024 red, then green, then blue bytes of
    the 32 x 32 picture, row by row), and ``b"labels"``, a list of ints in 0..9. A pickle can run
    any code while it loads, so the batches are read by an unpickler that can build only what
    this format holds: dicts, lists, byte strings, integers and numpy uint8 arrays (the globals
    ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype("uint8")``,
    nothing else); anything more is refused as a damaged file.

    Parameters
    ----------
    archive : str or Path
    split : str
        ``"train"`` (50000 images) or ``"test"`` (10000).

    Returns
    -------
    images : numpy.ndarray
        uint8 ``(N, 3, 32, 32)``.
    labels : numpy.ndarray
        int64 ``(N,)``; ``CIFAR10_CLASSES[label]`` names it.

    Raises
    ------
    DataCorruptError
        The archive cannot be decompressed, lacks a batch, or a batch is not in the format
        above; the message names the file (and the batch).
    """
    if split not in _CIFAR10_SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = Path(archive)
    wanted = {f"{_CIFAR10_FOLDER}/{b}": None for b in _CIFAR10_SPLITS[split]}
    redo = "delete it and download it again (ganlib.data.cifar10_dir downloads it)"
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:              # one pass through the compressed stream
                if member.name in wanted and member.isfile():
                    wanted[member.name] = tar.extractfile(member).read()
    except FileNotFoundError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataCorruptError(f"{path}: cannot read the archive ({type(e).__name__}: {e}); the file is damaged "
                               f"or truncated: {redo}") from e
    missing = [name for name, blob in wanted.items() if blob is None]
    if missing:
        raise DataCorruptError(f"{path}: the archive lacks {', '.join(missing)}; is it the python version of "
                               f"CIFAR-10 ({next(iter(CIFAR10_FILES))})? {redo}")
    parts = [_cifar10_batch(blob, f"{path}: {name}") for name, blob in wanted.items()]
    data = np.concatenate([d for d, _ in parts]).reshape(-1, 3, 32, 32)
    return data, np.concatenate([y for _, y in parts])


def load_cifar10(split: str = "train", root=None, download: bool = True) -> tuple["torch.Tensor", "torch.Tensor"]:
    """CIFAR-10 as uint8 images ``(N, 3, 32, 32)`` and int64 labels ``(N,)`` (N = 50000 train, 10000 test).

    The archive comes from :func:`cifar10_dir` (``root``, then ``$GANLIB_DATA``, then the user
    cache, downloading it when missing) and is read by :func:`read_cifar10`. uint8 keeps the
    training set at 154 MB (float32 would take 614 MB): feed it to ``Batches(x, ..., scale=True)``,
    or scale it with :func:`scale_images` (:func:`cifar10_images` does).
    """
    import torch

    if split not in _CIFAR10_SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = cifar10_dir(root, download=download)
    x, y = read_cifar10(folder / next(iter(CIFAR10_FILES)), split)
    return torch.from_numpy(x), torch.from_numpy(y)


def cifar10_images(split: str = "train", root=None, size: int = 32,
                   download: bool = True) -> tuple["torch.Tensor", "torch.Tensor"]:
    """CIFAR-10 ready for a tanh generator: float32 ``(N, 3, size, size)`` in ``[-1, 1]``, int64 labels.

    ``size`` is 32 (the original) or 64 (bilinear, as :func:`mnist_images` enlarges). The
    training set takes 614 MB at 32 px and 2.5 GB at 64 px this way; :func:`load_cifar10`
    gives the uint8 images (4 times smaller).
    """
    if size not in (32, 64):
        raise ValueError(f"size must be 32 or 64 (CIFAR-10's images are 32x32), got {size!r}")
    x, y = load_cifar10(split, root, download=download)
    if size != 32:
        x = _resize_uint8(x, size)
    return scale_images(x), y


# ----------------------------------------------------------------------------- synthetic images

def synthetic_images(n: int, size: int = 28, channels: int = 1,
                     seed: int = 0) -> tuple["torch.Tensor", "torch.Tensor"]:
    """A tiny labelled image set for tests: a soft bar per image, its place and direction given by the class.

    Class ``k`` in 0..4 is a horizontal bar at row ``(k + 1) * size / 6``; class 5..9 a vertical
    bar at column ``(k - 4) * size / 6``; each image shifts its bar by up to one pixel and adds a
    little noise. With 3 channels the bar's colour also depends on the class. Deterministic for a
    given ``seed`` on every platform (NumPy's generator); classes balanced (``n // 10`` or one more).

    Returns
    -------
    images : torch.Tensor
        float32 ``(n, channels, size, size)`` in ``[-1, 1]`` (background -1).
    labels : torch.Tensor
        int64 ``(n,)`` in 0..9.

    Examples
    --------
    >>> x, y = synthetic_images(20, size=16, seed=0)
    >>> x.shape, y.bincount().tolist(), bool(x.min() >= -1 and x.max() <= 1)
    (torch.Size([20, 1, 16, 16]), [2, 2, 2, 2, 2, 2, 2, 2, 2, 2], True)
    """
    import torch

    n = check_n(n)
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10)
    coords = np.arange(size, dtype=np.float64)
    centre = np.where(labels < 5, labels + 1, labels - 4) * size / 6 + rng.uniform(-1, 1, n)
    width = max(size / 14, 1.0)
    profile = np.exp(-0.5 * ((coords[None, :] - centre[:, None]) / width) ** 2)    # (n, size)
    bars = np.where((labels < 5)[:, None, None], profile[:, :, None], profile[:, None, :])
    bars = np.broadcast_to(bars, (n, size, size))
    colours = np.array([[1.0, 1.0, 1.0]]) if channels == 1 else \
        0.4 + 0.6 * np.stack([np.cos(2 * np.pi * (np.arange(10) / 10 + j / 3)) ** 2 for j in range(3)], axis=1)
    colour = colours[labels % len(colours)][:, :channels]                             # (n, C)
    img = bars[:, None] * colour[:, :, None, None] + 0.05 * rng.normal(size=(n, channels, size, size))
    img = np.clip(img, 0.0, 1.0) * 2.0 - 1.0
    return torch.from_numpy(img.astype(np.float32)), torch.from_numpy(labels.astype(np.int64))


# ----------------------------------------------------------------------------- folders of images

def _format_bytes(n: int) -> str:
    """``n`` bytes for people: ``'2.5 GB'``, ``'154 MB'``, ``'12 kB'`` (powers of 1000)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}" if unit == "GB" or n < 10 * scale else f"{n / scale:,.0f} {unit}"
    return f"{n} bytes"


def image_folder(path, size: int = 64, channels: int = 3, *, skip_bad: bool = False, scaled: bool = True,
                 verbose: bool | None = None) -> "torch.Tensor":
    """Every image under ``path`` (searched recursively), as float32 ``(N, channels, size, size)`` in ``[-1, 1]``.

    Each image is converted to grey (``channels=1``) or RGB (``channels=3``), resized so its
    shorter side is ``size`` (Pillow's bilinear filter) and centre-cropped to a square, as the
    reference DCGAN's ``Resize`` + ``CenterCrop`` do. Files are read in sorted path order.
    A warning says when images of other modes or of several sizes were converted.

    Before reading, one line on stderr states the memory the images will take (``N x channels x
    size x size`` bytes as uint8, four times that as float32): CelebA's 202,599 faces at 64 px
    take 2.5 GB as uint8 and 10 GB as float32. ``scaled=False`` keeps the uint8 pixels; train on
    them with ``Batches(x, batch_size, scale=True)``, which converts one batch at a time (what
    ``ganlib train --data folder`` does). A progress bar follows the reading.

    Parameters
    ----------
    path : str or Path
        Folder; files ending in one of ``IMAGE_EXTENSIONS`` are read, others ignored.
    size : int
    channels : int
        1 or 3.
    skip_bad : bool
        Unreadable files are an error naming them (default), or skipped with a warning.
    scaled : bool
        Return float32 in ``[-1, 1]`` (default) or the uint8 pixels ``[0, 255]``.
    verbose : bool, optional
        Print the memory line and show the progress bar; by default unless ``GANLIB_SMOKE`` or ``CI`` is set.

    Raises
    ------
    DataNotFoundError
        ``path`` is not a folder or holds no images.
    DataCorruptError
        Files that Pillow cannot read (and ``skip_bad=False``), named in the message.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (40, 30), (255, 0, 0)).save(d / "red.png")
    >>> x = image_folder(d, size=16, channels=3)
    >>> x.shape, x[0, :, 0, 0].tolist()
    (torch.Size([1, 3, 16, 16]), [1.0, -1.0, -1.0])
    >>> image_folder(d, size=16, scaled=False, verbose=False)[0, :, 0, 0].tolist()
    [255, 0, 0]
    """
    import torch
    from PIL import Image

    from ganlib.utils import progress

    folder = Path(path).expanduser()
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if not folder.is_dir():
        raise DataNotFoundError(f"image folder {folder} does not exist or is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise DataNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {folder}")
    nbytes = len(files) * size * size * channels
    if verbose if verbose is not None else not _quiet():
        print(f"image_folder: {len(files):,} images in {folder}: {_format_bytes(nbytes)} in memory as uint8 "
              f"({channels}x{size}x{size} bytes each)" + (f", then {_format_bytes(4 * nbytes)} as float32 "
                                                         "(scaled=False keeps uint8)" if scaled else ""),
              file=sys.stderr, flush=True)
    mode = "L" if channels == 1 else "RGB"
    out = np.empty((len(files), size, size, channels), dtype=np.uint8)
    bad, modes, sizes, kept = [], set(), set(), 0
    for p in progress(files, desc="images", unit="img", **({} if verbose is None else {"disable": not verbose})):
        try:
            with Image.open(p) as im:
                im.load()
                modes.add(im.mode)
                sizes.add(im.size)
                if im.mode == "P" or im.mode == "PA":
                    im = im.convert("RGBA")
                im = im.convert(mode)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            bad.append(f"{p.relative_to(folder)} ({type(e).__name__})")
            continue
        w, h = im.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        if (nw, nh) != (w, h):
            im = im.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - size) // 2, (nh - size) // 2
        im = im.crop((left, top, left + size, top + size))
        out[kept] = np.asarray(im, dtype=np.uint8).reshape(size, size, channels)
        kept += 1
    if bad:
        listed = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        if not skip_bad:
            raise DataCorruptError(f"{len(bad)} of {len(files)} files in {folder} cannot be read as images: "
                                   f"{listed}; remove or replace them, or pass skip_bad=True")
        warnings.warn(f"skipped {len(bad)} unreadable files in {folder}: {listed}", stacklevel=2)
    if kept == 0:
        raise DataNotFoundError(f"no readable images in {folder}")
    converted = sorted(modes - {mode})
    if converted or len(sizes) > 1:
        what = []
        if converted:
            what.append(f"modes {'/'.join(converted)} converted to {mode}")
        if len(sizes) > 1:
            what.append(f"{len(sizes)} different sizes resized and cropped to {size}x{size}")
        warnings.warn(f"image_folder({folder}): {'; '.join(what)}", stacklevel=2)
    x = torch.from_numpy(out[:kept]).permute(0, 3, 1, 2).contiguous()
    return scale_images(x) if scaled else x


# ----------------------------------------------------------------------------- batches

class Batches:
    """Endless batches from a dataset held in one tensor, in a fresh seeded order each epoch.

    Epoch ``e`` visits the samples in the order ``torch.randperm(N)`` drawn from a
    ``torch.Generator`` seeded from ``(seed, e)``, so the stream depends only on ``seed`` and
    :meth:`state_dict` (seed, epoch, position) restores it exactly: ``2k`` batches in one go
    equal ``k`` batches, ``load_state_dict``, ``k`` batches.

    Parameters
    ----------
    x : torch.Tensor
        ``(N, ...)`` samples.
    batch_size : int
    labels : torch.Tensor, optional
        ``(N,)``; batches are then ``(x, y)`` pairs.
    seed : int
    device : str or torch.device, optional
        Keep the whole dataset on this device (e.g. ``"cuda"``): batches need no copies.
    drop_last : bool
        Skip the last incomplete batch of each epoch (default), so every batch has ``batch_size`` rows.
    scale : bool
        ``x`` holds uint8 pixels, kept as they are (4 times smaller than float32); each batch is
        mapped to float32 ``[-1, 1]`` by :func:`scale_images` as it is served.
    rank, world_size : int
        Data-parallel training (appendix B, the equivalent of a ``DistributedSampler`` with
        ``set_epoch``): ``batch_size`` is then the global batch and this process (``rank`` of
        ``world_size``) gets rows ``rank, rank + world_size, ...`` of each global batch. The ranks'
        batches are disjoint, together they are exactly the single-process batch, and
        :meth:`state_dict` is the single-process one, so a run resumes with any world size.

    Attributes
    ----------
    epoch : int
        Epochs started so far minus one (0 during the first).
    position : int
        Samples of the current epoch already served.
    batches_per_epoch : int
        Also ``len(batches)``.

    Examples
    --------
    >>> import torch
    >>> b = Batches(torch.arange(10.0), batch_size=4, seed=0)
    >>> b.batches_per_epoch, [next(b).shape[0] for _ in range(3)], b.epoch
    (2, [4, 4, 4], 1)
    >>> r0, r1 = (next(Batches(torch.arange(10.0), 4, rank=r, world_size=2)) for r in (0, 1))
    >>> sorted(torch.cat([r0, r1]).tolist()) == sorted(next(Batches(torch.arange(10.0), 4)).tolist())
    True
    """

    def __init__(self, x: "torch.Tensor", batch_size: int, *, labels: "torch.Tensor | None" = None, seed: int = 0,
                 device=None, drop_last: bool = True, rank: int = 0, world_size: int = 1, scale: bool = False):
        import torch

        x = torch.as_tensor(x)
        if scale and x.dtype != torch.uint8:
            raise TypeError(f"scale=True serves uint8 pixels as [-1, 1] batches, but x has dtype {x.dtype}; "
                            "drop scale=True for data that is already scaled")
        self.scale = bool(scale)
        if x.ndim < 1 or x.shape[0] == 0:
            raise ValueError(f"Batches needs a non-empty dataset (N, ...), got shape {tuple(x.shape)}")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        n = x.shape[0]
        if drop_last and batch_size > n:
            raise ValueError(f"batch_size {batch_size} exceeds the {n} samples (drop_last=True gives no batch)")
        if labels is not None:
            labels = torch.as_tensor(labels)
            if labels.shape[:1] != x.shape[:1]:
                raise ValueError(f"{n} samples but labels of shape {tuple(labels.shape)}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if not (isinstance(world_size, (int, np.integer)) and isinstance(rank, (int, np.integer))
                and world_size >= 1 and 0 <= rank < world_size):
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank!r}, world_size={world_size!r}")
        if world_size > 1:
            if batch_size % world_size:
                raise ValueError(f"the batch size {batch_size} is not divisible by the world size {world_size}: "
                                 f"batch_size is the global batch, each rank takes batch_size / world_size rows; "
                                 f"choose a multiple of {world_size}")
            if not drop_last:
                raise ValueError("a sharded Batches (world_size > 1) needs drop_last=True, so that every rank "
                                 "gets the same number of rows in every step")
        self.rank, self.world_size = int(rank), int(world_size)
        self.device = torch.device(device) if device is not None else x.device
        self.x = x.to(self.device)
        self.labels = labels.to(self.device) if labels is not None else None
        self.batch_size, self.seed, self.drop_last = int(batch_size), int(seed), bool(drop_last)
        self.num_samples = n
        self.batches_per_epoch = n // self.batch_size if drop_last else -(-n // self.batch_size)
        self.epoch, self.position = 0, 0
        self._perm = None

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> "Batches":
        return self

    def _permutation(self, epoch: int) -> "torch.Tensor":
        import torch

        seed = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1, dtype=np.uint64)[0] >> 1)
        perm = torch.randperm(self.num_samples, generator=torch.Generator().manual_seed(seed))
        return perm.to(self.device)

    def __next__(self):
        end = self.position + self.batch_size
        if end > self.num_samples and (self.drop_last or self.position >= self.num_samples):
            self.epoch, self.position, self._perm = self.epoch + 1, 0, None
            end = self.batch_size
        if self._perm is None:
            self._perm = self._permutation(self.epoch)
        idx = self._perm[self.position:end][self.rank::self.world_size]
        self.position = min(end, self.num_samples)
        xb = scale_images(self.x[idx]) if self.scale else self.x[idx]
        return xb if self.labels is None else (xb, self.labels[idx])

    def to(self, device) -> "Batches":
        """Move the dataset (and labels) to ``device``, in place; the stream of batches is unchanged. Returns self."""
        import torch

        self.device = torch.device(device)
        self.x = self.x.to(self.device)
        self.labels = self.labels.to(self.device) if self.labels is not None else None
        self._perm = self._perm.to(self.device) if self._perm is not None else None
        return self

    def state_dict(self) -> dict:
        """Everything needed to continue the exact stream: seed, epoch, position (plus sizes, checked on load)."""
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position,
                "num_samples": self.num_samples, "batch_size": self.batch_size, "drop_last": self.drop_last}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`; a state from another dataset size or batch size is an error."""
        mine = self.state_dict()
        for key in ("num_samples", "batch_size", "drop_last"):
            if key in state and state[key] != mine[key]:
                raise ValueError(f"Batches state was saved with {key}={state[key]!r}, this one has {mine[key]!r}; "
                                 "resume with the same data and batch size")
        missing = {"seed", "epoch", "position"} - set(state)
        if missing:
            raise ValueError(f"Batches state lacks {sorted(missing)}")
        self.seed, self.epoch, self.position = int(state["seed"]), int(state["epoch"]), int(state["position"])
        self._perm = None

    def __repr__(self) -> str:
        return (f"Batches(num_samples={self.num_samples}, batch_size={self.batch_size}, seed={self.seed}, "
                f"epoch={self.epoch}, position={self.position}, device={self.device}"
                + (f", rank={self.rank}, world_size={self.world_size})" if self.world_size > 1 else ")"))
