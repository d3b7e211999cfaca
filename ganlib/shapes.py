"""Coloured shapes: a procedural colour-image benchmark whose modes are known exactly, and its decoder.

Used by the colour sections of chapters 08 (the DCGAN guidelines' network) and 10 (spectral
norm and hinge loss), from the command line (``ganlib train --data shapes``, ``ganlib evaluate``)
and from Python.

The ring and grid of chapter 06 tell exactly how many modes a GAN captured, because every sample
can be assigned to its nearest mode. FID and precision/recall (chapter 09) can only estimate that
on images. This module gives images the same exactness: each image holds one shape (circle,
square or upright triangle) in one of eight colours (the corners of the RGB cube) on a mid-grey
background, at a random position and size, so the data has ``3 x 8 = 24`` known modes.

- :func:`make_shapes` draws ``n`` images from a seed (vectorised NumPy: 50,000 images of
  32 x 32 take seconds), balanced over the modes or over a chosen subset of them.
- :func:`decode_shapes` reads shape, colour, position and size back from any image, generated
  or not, by fixed rules with stated tolerances (:class:`Tolerance`), and says why an image is
  none of the 24 modes (noise, a blend, two shapes, an off colour). It is not a learned classifier:
  on the data itself it is right for every image, by construction (the tests check every size
  and position).
- :func:`shape_coverage` turns the decoded modes into chapter 06's numbers: modes captured,
  fraction of high-quality samples (decoded as some mode), reverse KL of their histogram against
  the uniform distribution over the 24 modes (:class:`ganlib.metrics.ModeCoverage`).
- :func:`shape_metrics` puts those exact numbers beside FID and precision/recall of the same
  samples against real shapes, in the features of a classifier trained on the shapes
  (:func:`shapes_classifier`), so the estimates can be checked against the truth.

Pixels are bytes ``0..255`` (uint8 ``(N, 3, H, W)``), or floats in ``[-1, 1]`` (a tanh
generator's output), which the decoder rounds to bytes as :func:`ganlib.images.unscale_images` does.
NumPy only; torch tensors are accepted and returned by :func:`make_shapes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ganlib.utils import check_n

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ganlib.metrics import ModeCoverage

__all__ = ["SHAPES", "COLOURS", "PALETTE", "BACKGROUND", "NUM_MODES", "Tolerance", "TOLERANCE", "shape_sizes",
           "mode_name", "make_shapes", "render_masks", "Decoded", "decode_shapes", "shape_coverage", "shape_metrics",
           "SHAPES_CLASSIFIER_CONFIG", "shapes_classifier"]

#: The shapes, in mode order: mode ``m`` is shape ``m // 8`` in colour ``m % 8``.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
#: The colours: colour ``i`` has red, green, blue = bits 0, 1, 2 of ``i``, times 255.
COLOURS: tuple[str, ...] = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")
#: RGB bytes of the colours, shape ``(8, 3)``.
PALETTE: np.ndarray = np.array([[(i >> b) & 1 for b in range(3)] for i in range(8)], dtype=np.uint8) * 255
PALETTE.flags.writeable = False
#: The background, mid-grey: every palette colour is 127 or 128 away from it in some channel.
BACKGROUND: int = 128
NUM_MODES: int = len(SHAPES) * len(COLOURS)  # 24


@dataclass(frozen=True)
class Tolerance:
    """The decoder's tolerances (pixel values in bytes, 0..255; distances are the largest of the 3 channels).

    Attributes
    ----------
    foreground : int
        A pixel is foreground if it differs from the background grey by more than this (64: half
        the distance from the background to every palette colour).
    colour : int
        A pixel has palette colour ``c`` if it is within this of ``c`` (48).
    colour_fraction : float
        At least this fraction of the shape's inner pixels must have the shape's colour (0.9).
    background : int
        A background pixel is clean if it is within this of the background grey (32).
    background_fraction : float
        At most this fraction of the pixels away from the shape may be unclean (0.02).
    iou : float
        The foreground must match the best-fitting shape with an intersection over union of at
        least this (0.85; between two different shapes in the same box it is at most 0.81).
    size_slack : int
        The shape's width may exceed the data's range of sizes by this many pixels either way (2).
    """

    foreground: int = 64
    colour: int = 48
    colour_fraction: float = 0.9
    background: int = 32
    background_fraction: float = 0.02
    iou: float = 0.85
    size_slack: int = 2


TOLERANCE = Tolerance()


def shape_sizes(size: int) -> tuple[int, int, int]:
    """Smallest and largest shape side, and the margin to the image border, for ``size x size`` images.

    Sides run from ``round(3 size / 8)`` to ``round(5 size / 8)`` pixels; the margin is
    ``size // 16`` (at least 1) pixels.

    Examples
    --------
    >>> shape_sizes(32), shape_sizes(64)
    ((12, 20, 2), (24, 40, 4))
    """
    if not isinstance(size, (int, np.integer)) or size < 16:
        raise ValueError(f"size must be an integer >= 16, got {size!r}")
    return int(round(3 * size / 8)), int(round(5 * size / 8)), max(1, int(size) // 16)


def mode_name(mode: int) -> str:
    """The name of mode ``m``: colour and shape, e.g. ``mode_name(9) == "red square"``; -1 is ``"none"``.

    Examples
    --------
    >>> [mode_name(m) for m in (0, 9, 23, -1)]
    ['black circle', 'red square', 'white triangle', 'none']
    """
    mode = int(mode)
    if mode == -1:
        return "none"
    if not 0 <= mode < NUM_MODES:
        raise ValueError(f"mode must be in 0..{NUM_MODES - 1} (or -1), got {mode}")
    return f"{COLOURS[mode % len(COLOURS)]} {SHAPES[mode // len(COLOURS)]}"


def render_masks(shape, left, top, side, size: int) -> np.ndarray:
    """Boolean masks ``(n, size, size)`` of shapes with bounding square ``[left, left + side) x [top, top + side)``.

    A pixel ``(row, col)`` is inside when its centre ``(row + 0.5, col + 0.5)`` is: for a square,
    inside the box; for a circle, within ``side / 2`` of the box's centre; for a triangle (apex
    up), at depth ``d = row + 0.5 - top`` in ``[0, side]`` below the apex and within ``d / 2`` of
    the box's vertical centre line. All coordinates are multiples of 1/4, so the test is exact.

    Parameters
    ----------
    shape, left, top, side : int arrays of shape (n,)
        Shape index (0 circle, 1 square, 2 triangle), box corner and side in pixels; boxes may
        reach beyond the image (the mask is cut).
    size : int

    Examples
    --------
    >>> render_masks([2], [0], [0], [4], 4)[0].astype(int)
    array([[0, 0, 0, 0],
           [0, 1, 1, 0],
           [0, 1, 1, 0],
           [1, 1, 1, 1]])
    """
    shape, left, top, side = np.broadcast_arrays(*(np.asarray(a, dtype=np.int64).reshape(-1)
                                                   for a in (shape, left, top, side)))
    if np.any((shape < 0) | (shape >= len(SHAPES))):
        raise ValueError(f"shape must be 0 (circle), 1 (square) or 2 (triangle), got {np.unique(shape)}")
    out = np.empty((shape.size, size, size), dtype=bool)
    c = np.arange(size, dtype=np.float32) + 0.5       # pixel centres; float32 is exact for these quarters
    for k in np.unique(shape):
        i = np.flatnonzero(shape == k)
        x = c[None, None, :] - left[i, None, None]      # (m, 1, size): column centre minus the box's left edge
        y = c[None, :, None] - top[i, None, None]       # (m, size, 1)
        s = side[i, None, None].astype(np.float32)
        if k == 0:
            out[i] = (x - s / 2) ** 2 + (y - s / 2) ** 2 <= (s / 2) ** 2
        elif k == 1:
            out[i] = (x >= 0) & (x < s) & (y >= 0) & (y < s)
        else:
            out[i] = (y >= 0) & (y <= s) & (np.abs(x - s / 2) <= y / 2)
    return out


def _check_modes(modes) -> np.ndarray:
    m = np.arange(NUM_MODES) if modes is None else np.unique(np.asarray(modes).reshape(-1))
    if m.size == 0 or not np.issubdtype(m.dtype, np.integer) or m.min() < 0 or m.max() >= NUM_MODES:
        raise ValueError(f"modes must be a non-empty list of integers in 0..{NUM_MODES - 1}, got {modes!r}")
    return m.astype(np.int64)


def make_shapes(n: int, seed: int = 0, *, size: int = 32, modes=None,
                attributes: bool = False):
    """``n`` images of one coloured shape each on a grey background, with their modes; deterministic for ``seed``.

    Modes are balanced: the ``n`` images take the chosen modes in turn (``n // k`` or one more
    each, for ``k`` modes), then are shuffled. Each image draws a side uniformly from
    :func:`shape_sizes` and a position uniformly among those keeping the shape ``margin`` pixels
    from the border. Drawn with NumPy's generator, so the same on every platform.

    Parameters
    ----------
    n : int
    seed : int
    size : int
        Image side in pixels (16 or more; the command line uses 28, 32 or 64).
    modes : sequence of int, optional
        Draw only these modes (a planted subset, e.g. ``[0, 5, 9, 13, 20]``); all 24 by default.
    attributes : bool
        Also return a dict of int64 arrays ``(n,)``: ``shape``, ``colour``, ``mode``, ``left``,
        ``top``, ``side``.

    Returns
    -------
    images : torch.Tensor
        uint8 ``(n, 3, size, size)`` (:func:`ganlib.images.scale_images` maps it to ``[-1, 1]``).
    modes : torch.Tensor
        int64 ``(n,)``: ``shape * 8 + colour``.

    Examples
    --------
    >>> x, y = make_shapes(48, seed=0)
    >>> x.shape, x.dtype, y.bincount().tolist() == [2] * 24
    (torch.Size([48, 3, 32, 32]), torch.uint8, True)
    >>> bool((decode_shapes(x).mode == y.numpy()).all())
    True
    """
    import torch

    n = check_n(n)
    smin, smax, margin = shape_sizes(size)
    allowed = _check_modes(modes)
    rng = np.random.default_rng(seed)
    mode = allowed[rng.permutation(np.arange(n) % allowed.size)]
    shape, colour = mode // len(COLOURS), mode % len(COLOURS)
    side = rng.integers(smin, smax + 1, size=n)
    left = rng.integers(margin, size - margin - side + 1)
    top = rng.integers(margin, size - margin - side + 1)
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    chunk = max(1, (1 << 22) // (size * size))
    for i in range(0, n, chunk):
        j = slice(i, i + chunk)
        mask = render_masks(shape[j], left[j], top[j], side[j], size)
        for ch in range(3):
            images[j, ch] = np.where(mask, PALETTE[colour[j], ch][:, None, None], np.uint8(BACKGROUND))
    out = torch.from_numpy(images), torch.from_numpy(mode)
    if attributes:
        return (*out, {"shape": shape, "colour": colour, "mode": mode, "left": left, "top": top, "side": side})
    return out


# ----------------------------------------------------------------------------- the decoder

#: Why an image is none of the modes, in the order the decoder checks.
REASONS: tuple[str, ...] = ("no shape", "size", "shape", "colour", "background")


@dataclass(frozen=True)
class Decoded:
    """What :func:`decode_shapes` read from ``n`` images; every array has shape ``(n,)``.

    Attributes
    ----------
    mode, shape, colour : int arrays
        ``shape * 8 + colour``, the shape (index into ``SHAPES``) and colour (into ``COLOURS``);
        -1 where the image is none of the modes.
    left, top, side : int arrays
        The fitted shape's box (as :func:`render_masks` takes it); -1 where no foreground was found.
    iou : float array
        Intersection over union of the foreground with the best-fitting shape (0 without foreground).
    reason : str array
        ``""`` for a decoded image, else the first check it failed (one of ``REASONS``).
    """

    mode: np.ndarray
    shape: np.ndarray
    colour: np.ndarray
    left: np.ndarray
    top: np.ndarray
    side: np.ndarray
    iou: np.ndarray = field(repr=False)
    reason: np.ndarray = field(repr=False)

    @property
    def ok(self) -> np.ndarray:
        """Boolean ``(n,)``: decoded as one of the modes (a high-quality image)."""
        return self.mode >= 0

    def rejected(self) -> dict[str, int]:
        """How many images failed each check, e.g. ``{"shape": 3, "colour": 1}`` (only non-zero counts)."""
        return {r: int(np.count_nonzero(self.reason == r)) for r in REASONS if np.any(self.reason == r)}


def _as_bytes(images) -> np.ndarray:
    """Images as uint8 ``(n, 3, H, W)``: bytes as they are, floats in [-1, 1] rounded as unscale_images does."""
    x = images
    if hasattr(x, "detach"):  # a torch tensor, on any device
        x = x.detach().cpu()
        x = x.float().numpy() if x.is_floating_point() else x.numpy()
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3] or x.shape[0] == 0:
        raise ValueError(f"expected colour images (N, 3, H, H) with N >= 1, got shape {x.shape}")
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"expected uint8 bytes or floats in [-1, 1], got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ValueError("the images contain NaN or inf")
    return np.clip(np.round((x.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _longest_run(on: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of the longest run of True along axis 1 of ``on`` ``(n, L)`` (first such run; 0, 0 if none)."""
    n, length = on.shape
    run = np.zeros(n, dtype=np.int64)
    best, start = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    for i in range(length):
        run = np.where(on[:, i], run + 1, 0)
        longer = run > best
        best = np.where(longer, run, best)
        start = np.where(longer, i - run + 1, start)
    return start, best


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``mask`` ``(n, H, W)`` moved by ``(dy, dx)`` pixels, False where it moved in from outside."""
    out = np.zeros_like(mask)
    h, w = mask.shape[1:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        mask[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def _decode_chunk(u: np.ndarray, tol: Tolerance) -> dict:
    n, _, size, _ = u.shape
    smin, smax, _ = shape_sizes(size)
    dist = np.abs(u.astype(np.int16) - BACKGROUND).max(axis=1)              # (n, H, W): distance from the grey
    fg = dist > tol.foreground
    top, height = _longest_run(fg.any(axis=2))
    left, side = _longest_run(fg.any(axis=1))
    # the three candidate shapes fitted to the box: width = side; circle and square hang from the box's
    # top, the triangle stands on its bottom (its apex row is empty when the side is even)
    tops = np.stack([top, top, top + height - side], axis=1)                  # (n, 3)
    ious = np.zeros((n, 3))
    templates = []
    for k in range(3):
        t = render_masks(np.full(n, k), left, tops[:, k], side, size)
        inter = np.count_nonzero(fg & t, axis=(1, 2))
        union = np.count_nonzero(fg | t, axis=(1, 2))
        ious[:, k] = inter / np.maximum(union, 1)
        templates.append(t)
    shape = np.argmax(ious, axis=1)
    iou = ious[np.arange(n), shape]
    t = np.where((shape == 0)[:, None, None], templates[0], np.where((shape == 1)[:, None, None], templates[1],
                                                                       templates[2]))
    # colour: the template's inner pixels (all four neighbours inside too)
    core = t & _shift(t, 1, 0) & _shift(t, -1, 0) & _shift(t, 0, 1) & _shift(t, 0, -1)
    core = np.where(np.any(core, axis=(1, 2))[:, None, None], core, t)
    count = np.maximum(np.count_nonzero(core, axis=(1, 2)), 1)
    mean = (u * core[:, None]).sum(axis=(2, 3)) / count[:, None]               # (n, 3)
    to_palette = np.abs(mean[:, None, :] - PALETTE[None].astype(np.float64)).max(axis=2)   # (n, 8)
    colour = np.argmin(to_palette, axis=1)
    near = np.abs(u.astype(np.int16) - PALETTE[colour].astype(np.int16)[:, :, None, None]).max(axis=1) <= tol.colour
    colour_ok = (to_palette[np.arange(n), colour] <= tol.colour) & \
        (np.count_nonzero(near & core, axis=(1, 2)) >= tol.colour_fraction * count)
    # background: away from the shape (beyond one pixel of its edge), nearly every pixel is clean grey
    hull = t.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            hull |= _shift(t, dy, dx)
    away = ~hull
    dirty = np.count_nonzero(away & (dist > tol.background), axis=(1, 2))
    background_ok = dirty <= tol.background_fraction * np.count_nonzero(away, axis=(1, 2))
    reason = np.full(n, "", dtype=object)
    checks = [("no shape", side == 0),
              ("size", (side < smin - tol.size_slack) | (side > smax + tol.size_slack)),
              ("shape", iou < tol.iou),
              ("colour", ~colour_ok),
              ("background", ~background_ok)]
    for name, failed in reversed(checks):      # the first failed check is the one reported
        reason[failed] = name
    good = reason == ""
    found = side > 0
    return {"mode": np.where(good, shape * len(COLOURS) + colour, -1), "shape": np.where(good, shape, -1),
            "colour": np.where(good, colour, -1), "left": np.where(found, left, -1),
            "top": np.where(found, tops[np.arange(n), shape], -1), "side": np.where(found, side, -1),
            "iou": np.where(found, iou, 0.0), "reason": reason.astype(str)}


def decode_shapes(images, tolerance: Tolerance = TOLERANCE) -> Decoded:
    """Read shape, colour, position and size back from images, or say why an image is none of the modes.

    The rules, for each image (pixel values in bytes; "distance" is the largest of the three
    channel differences; the thresholds are ``tolerance``'s):

    1. **Foreground**: pixels more than ``foreground`` (64) from the background grey. None: "no shape".
    2. **Box**: the longest run of consecutive rows holding foreground, and of columns; its width
       is the shape's side, which must lie in :func:`shape_sizes` widened by ``size_slack``, else "size".
    3. **Shape**: circle, square and triangle are drawn (:func:`render_masks`) in that box, the
       circle and square from its top, the triangle on its bottom; the one with the largest
       intersection over union (IoU) with the whole image's foreground wins, and needs IoU >=
       ``iou`` (0.85), else "shape". A second shape, a noise image or a half-and-half mix lowers it.
    4. **Colour**: over the winning shape's inner pixels (all four neighbours inside), the mean
       colour must be within ``colour`` (48) of its nearest palette colour, and at least
       ``colour_fraction`` (90 %) of those pixels too, else "colour" (a blend of two colours, a
       two-coloured shape, an off colour).
    5. **Background**: of the pixels more than one pixel away from the shape, at most
       ``background_fraction`` (2 %) may be more than ``background`` (32) from the grey, else
       "background" (the ghost of a second image in a blend, speckle noise).

    On images from :func:`make_shapes` every check passes and the box is the drawn one (tested
    for every shape, side and position at sizes 28 and 32, and every side and position at 64),
    and noise of 10 grey levels per pixel is tolerated. A blend ``w a + (1 - w) b`` of two images in different colours fails for
    ``0.3 <= w <= 0.7`` (the tests check it); at ``w = 0.25`` the weaker image's ghost is 32 from
    the grey, just within the tolerance, and the blend may be read as its main image.

    Parameters
    ----------
    images : uint8 array or tensor ``(n, 3, H, H)``, or floats in ``[-1, 1]``
    tolerance : Tolerance

    Returns
    -------
    Decoded

    Examples
    --------
    >>> x, y = make_shapes(4, seed=1)
    >>> d = decode_shapes(x)
    >>> [mode_name(m) for m in d.mode] == [mode_name(m) for m in y]
    True
    >>> noise = np.random.default_rng(0).integers(0, 256, (1, 3, 32, 32), dtype=np.uint8)
    >>> decode_shapes(noise).reason.tolist()       # foreground everywhere: a box as wide as the image
    ['size']
    """
    u = _as_bytes(images)
    shape_sizes(u.shape[2])   # checks the size
    chunk = 2048
    parts = [_decode_chunk(u[i:i + chunk], tolerance) for i in range(0, u.shape[0], chunk)]
    return Decoded(**{k: np.concatenate([p[k] for p in parts]) for k in parts[0]})


def shape_coverage(images, tolerance: Tolerance = TOLERANCE) -> "ModeCoverage":
    """Chapter 06's metrics on coloured shapes, exactly: modes captured, high quality, reverse KL.

    An image is **high quality** if :func:`decode_shapes` reads it as one of the 24 modes; a mode
    is **captured** if at least one image is read as it; the **reverse KL** compares the histogram
    of the high-quality images over the 24 modes with the uniform one,
    ``KL(p || u) = sum_m p_m log(24 p_m)`` (0 when balanced, ``log 24 = 3.18`` for a single mode;
    :func:`ganlib.metrics.reverse_kl_uniform`). ``counts / n`` are the per-mode frequencies.

    Parameters
    ----------
    images : uint8 ``(n, 3, H, H)`` or floats in ``[-1, 1]``, array or tensor
    tolerance : Tolerance

    Returns
    -------
    ganlib.metrics.ModeCoverage
        ``modes``, ``high_quality``, ``reverse_kl``, ``counts`` (shape ``(24,)``).

    Examples
    --------
    >>> x, _ = make_shapes(240, seed=0, modes=[0, 5, 9, 13, 20])
    >>> print(shape_coverage(x))
    5/24 modes, 100.0% high quality, reverse KL 1.57
    >>> round(float(np.log(24 / 5)), 2)
    1.57
    """
    from ganlib.metrics import ModeCoverage, reverse_kl_uniform

    d = decode_shapes(images, tolerance)
    counts = np.bincount(d.mode[d.ok], minlength=NUM_MODES)
    return ModeCoverage(modes=int(np.count_nonzero(counts)), high_quality=float(d.ok.mean()),
                        reverse_kl=reverse_kl_uniform(counts), counts=counts)


# --------------------------------------------------------------------------- the coloured-shapes classifier

#: Training configuration of the coloured-shapes classifier (:func:`shapes_classifier`): the MNIST
#: recipe with 3 input channels and 24 classes, trained on ``train_size`` shapes drawn with seed
#: ``data_seed`` and tested on ``test_size`` more drawn with ``data_seed + 1``.
SHAPES_CLASSIFIER_CONFIG: dict = {
    "arch": "LeNet", "channels": 3, "classes": 24, "image_size": 32, "width": 16, "hidden": 128,
    "batchnorm": False, "epochs": 1, "batch_size": 32, "max_lr": 3e-3, "weight_decay": 0.0, "seed": 0,
    "train_size": 24000, "test_size": 4800, "data_seed": 1000,
}


def _shapes_data(cfg: dict):
    from ganlib.classifier import _resize
    from ganlib.images import scale_images

    x, y = make_shapes(int(cfg["train_size"]), seed=int(cfg["data_seed"]), size=int(cfg["image_size"]))
    xt, yt = make_shapes(int(cfg["test_size"]), seed=int(cfg["data_seed"]) + 1, size=int(cfg["image_size"]))
    # resized to the classifier's input size here, as _extract resizes the images it measures
    return _resize(scale_images(x)), y, _resize(scale_images(xt)), yt


def shapes_classifier(cache: bool = True, *, config: dict | None = None, device=None,
                      verbose: bool | None = None) -> "torch.nn.Module":
    """The coloured shapes' classifier, trained once and cached: the feature extractor of FID on the shapes.

    The recipe of :func:`ganlib.classifier.mnist_classifier` (the same LeNet, loop and cache) with 3 input channels
    and 24 classes, the modes of :func:`ganlib.shapes.make_shapes`: one epoch over 24,000 shapes
    in batches of 32 (750 steps, under a minute on two CPU cores); on 4,800 fresh shapes it is
    right for nearly every image (``.info["test_accuracy"]``; the tests check at least 99 %). Images of
    32 x 32 are resized to 28 x 28 as for MNIST. Its penultimate layer gives the features of
    :func:`ganlib.shapes.shape_metrics`.

    Parameters
    ----------
    cache : bool
        Read and write the cache (:func:`ganlib.classifier.cache_dir`, ``classifiers/shapes-lenet-<hash>.pt``).
    config : dict, optional
        Overrides of :data:`SHAPES_CLASSIFIER_CONFIG`.
    device : torch device, optional
    verbose : bool or None
        As for :func:`ganlib.classifier.mnist_classifier`; ``True`` also prints the test accuracy after training.

    Returns
    -------
    LeNet
        In eval mode, on ``device``, taking ``(n, 3, H, W)`` images in ``[-1, 1]``; ``.info`` as
        for :func:`ganlib.classifier.mnist_classifier`.

    Examples
    --------
    >>> net = shapes_classifier(device="cpu", verbose=False)      # doctest: +SKIP
    >>> net.info["test_accuracy"] > 0.99                          # doctest: +SKIP
    True
    """
    from ganlib.classifier import _cached_classifier

    return _cached_classifier("shapes", SHAPES_CLASSIFIER_CONFIG, config, _shapes_data, cache=cache,
                              device=device, verbose=verbose, what="coloured-shapes")


def _as_floats(images) -> "torch.Tensor":
    """Images as float32 ``(n, 3, H, H)`` in ``[-1, 1]``: bytes scaled, floats as they are (checked later)."""
    import torch

    from ganlib.images import scale_images

    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if isinstance(images, torch.Tensor) and images.dtype == torch.uint8:
        return scale_images(images)
    return torch.as_tensor(images).detach().cpu().float()


def shape_metrics(images, *, k: int = 3, seed: int = 0, classifier=None, tolerance: Tolerance = TOLERANCE,
                  batch_size: int = 500, device=None) -> dict:
    """Exact mode counts and FID, precision and recall, all on the same ``n`` images of coloured shapes.

    The exact numbers are :func:`shape_coverage`'s. FID and improved precision/recall (k-NN
    balls, chapter 09) compare the images with ``n`` real shapes, ``make_shapes(n, seed=seed)``,
    in the penultimate-layer features of the shapes classifier
    (:func:`shapes_classifier`, trained once and cached). Like FID on MNIST, the
    estimates are biased at small ``n``: compare them only at the same ``n``, next to real shapes
    measured the same way (``shape_metrics(make_shapes(n, seed=seed + 1)[0], seed=seed)``).

    Parameters
    ----------
    images : uint8 ``(n, 3, H, H)`` or floats in ``[-1, 1]``, array or tensor; n >= 2
    k : int
        Neighbourhood size of precision and recall (``1 <= k < n``).
    seed : int
        Seed of the real shapes compared with.
    classifier : module, optional
        Feature extractor taking 3-channel images; default :func:`shapes_classifier`.
    tolerance : Tolerance
    batch_size : int
    device : torch device, optional

    Returns
    -------
    dict
        ``n``, ``k``, ``modes``, ``num_modes`` (24), ``high_quality``, ``reverse_kl``, ``counts``
        (list of 24 ints), ``rejected`` (:meth:`Decoded.rejected`), ``fid``, ``precision``, ``recall``.

    Examples
    --------
    >>> import torch
    >>> x, _ = make_shapes(48, seed=1)
    >>> r = shape_metrics(x, classifier=torch.nn.Conv2d(3, 2, 28), seed=0)   # any 3-channel extractor (28 x 28 in)
    >>> r["modes"], r["high_quality"], r["fid"] >= 0
    (24, 1.0, True)
    """
    from ganlib.classifier import _extract
    from ganlib.metrics import fid_from_features, precision_recall, reverse_kl_uniform

    x = _as_floats(images)
    decoded = decode_shapes(x, tolerance)
    n = int(decoded.mode.size)
    if n < 2 or not 1 <= int(k) < n:
        raise ValueError(f"FID and precision/recall need n >= 2 images and 1 <= k < n; got n = {n}, k = {k}")
    counts = np.bincount(decoded.mode[decoded.ok], minlength=NUM_MODES)
    real = _as_floats(make_shapes(n, seed=seed, size=int(x.shape[-1]))[0])
    net = shapes_classifier(device=device) if classifier is None else classifier
    real_feats = _extract(real, net, batch_size, device, name="real shapes")
    fake_feats = _extract(x, net, batch_size, device, name="images")
    pr = precision_recall(real_feats, fake_feats, int(k), device=device)
    return {"n": n, "k": int(k), "modes": int(np.count_nonzero(counts)), "num_modes": NUM_MODES,
            "high_quality": float(decoded.ok.mean()), "reverse_kl": reverse_kl_uniform(counts),
            "counts": counts.tolist(), "rejected": decoded.rejected(),
            "fid": fid_from_features(real_feats, fake_feats), "precision": pr.precision, "recall": pr.recall}
