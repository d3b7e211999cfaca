"""The course's evaluation classifiers: trained once, cached, and what they compute on images (chapter 09).

:func:`mnist_classifier` trains a small LeNet (:class:`ganlib.models.LeNet`) on MNIST, or
reads it from the cache (:func:`cache_dir`); it is the feature extractor of the image metrics
in :mod:`ganlib.metrics` (Inception weights are not available offline and fit 28x28 digits
badly). :func:`extract_features` gives its penultimate layer, :func:`predict_proba` its
softmax, both on batches checked by :func:`check_images`. Every name here is also importable
from :mod:`ganlib.metrics`, as the chapters do.

:func:`ganlib.shapes.shapes_classifier` is the same recipe, with 3 input channels and 24 classes,
trained on the coloured shapes (their modes are the labels): the feature extractor of FID and
precision/recall on the shapes. It uses this module's training loop and cache
(:func:`_cached_classifier`), so this module never imports :mod:`ganlib.shapes`.

Shapes: images ``(n, C, H, W)`` float in ``[-1, 1]`` (the range of a tanh generator), C = 1 for
digits and 3 for the coloured shapes; features ``(n, d)``; class probabilities ``(n, classes)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

IMAGE_SIZE = 28  # the classifier's input size; other sizes are resized to it


def check_images(x, name: str = "images", tol: float = 1e-3, channels: int = 1) -> "torch.Tensor":
    """Validate a batch of generated or real images and return it as float32 ``(n, channels, H, W)`` on the CPU.

    Accepts ``(n, channels, H, W)``, or ``(n, H, W)`` for one channel (a channel axis is added),
    NumPy or torch, values in ``[-1, 1]`` (a tanh generator's range). Every problem gets a message
    that says what to do: a wrong shape, NaN or inf, pixel values in ``[0, 255]`` or in ``[0, 1]``.

    Examples
    --------
    >>> check_images(np.zeros((2, 28, 28)) - 1).shape
    torch.Size([2, 1, 28, 28])
    >>> check_images(np.full((2, 1, 28, 28), 255.0))
    Traceback (most recent call last):
    ...
    ValueError: images have values in [255, 255], outside [-1, 1]; they look like pixel values in [0, 255]: scale them with x / 127.5 - 1
    """
    import torch

    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
    else:
        arr = np.asarray(x)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ValueError(f"{name} should be a numeric array, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.ndim == 3 and channels == 1:
        t = t.unsqueeze(1)
    if t.ndim != 4 or t.shape[1] != channels or t.shape[0] == 0 or min(t.shape[2:]) < 1:
        if channels == 1:
            raise ValueError(f"{name} should have shape (N, 1, H, W) (or (N, H, W)) with N >= 1: single-channel "
                             f"digits; got shape {tuple(t.shape)}")
        raise ValueError(f"{name} should have shape (N, {channels}, H, W) with N >= 1: {channels}-channel images; "
                         f"got shape {tuple(t.shape)}")
    t = t.float()
    bad = int((~torch.isfinite(t)).sum())
    if bad:
        raise ValueError(f"{name} contain {bad} NaN or inf values (in {int((~torch.isfinite(t)).flatten(1).any(1).sum())} "
                         f"of {t.shape[0]} images): the generator probably diverged; check its training run")
    lo, hi = float(t.min()), float(t.max())
    if lo < -1 - tol or hi > 1 + tol:
        hint = ""
        if lo >= 0 and hi <= 255 and hi > 1 + tol:
            hint = "; they look like pixel values in [0, 255]: scale them with x / 127.5 - 1"
        raise ValueError(f"{name} have values in [{lo:.4g}, {hi:.4g}], outside [-1, 1]{hint}")
    if lo >= 0:
        raise ValueError(f"{name} have values in [{lo:.4g}, {hi:.4g}]: they look like images in [0, 1], but "
                         "the course's images are in [-1, 1] (background -1): scale them with 2 * x - 1")
    return t.clamp_(-1.0, 1.0)


def _resize(t: "torch.Tensor", size: int = IMAGE_SIZE) -> "torch.Tensor":
    import torch.nn.functional as F

    if tuple(t.shape[-2:]) == (size, size):
        return t
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp_(-1, 1)


def _in_channels(model) -> int:
    """Input channels of an extractor: its first convolution's, else 1 (a module without one takes digits)."""
    for m in (model.modules() if hasattr(model, "modules") else ()):
        if hasattr(m, "in_channels"):
            return int(m.in_channels)
    return 1


def _extract(images, model, batch_size: int = 500, device=None, with_logits: bool = False, name: str = "images"):
    """The one feature-extraction path: batched, no gradients, eval mode, on ``device``.

    Images must have the channels of the model's first convolution (1 without one).
    Returns features ``(n, d)`` float64 (and logits ``(n, C)`` when ``with_logits``) as NumPy arrays.
    """
    import torch

    from ganlib.utils import default_device

    x = check_images(images, name, channels=_in_channels(model))
    params = list(model.parameters()) if hasattr(model, "parameters") else []
    if device is not None:
        device = torch.device(device)
        if params:
            model.to(device)
    else:  # where the model already is; a model without parameters runs on the best device
        device = params[0].device if params else default_device()
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    feats, logits = [], []
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                xb = _resize(x[start:start + batch_size]).to(device)
                if hasattr(model, "features_and_logits"):
                    f, lg = model.features_and_logits(xb)
                elif hasattr(model, "features"):
                    f, lg = model.features(xb), None
                else:
                    f, lg = model(xb), None
                feats.append(f.reshape(f.shape[0], -1).cpu().double())
                if with_logits:
                    if lg is None:
                        raise ValueError("this extractor gives no logits: use the classifier from mnist_classifier()")
                    logits.append(lg.cpu().double())
    finally:
        if was_training:
            model.train()
    f = torch.cat(feats).numpy()
    return (f, torch.cat(logits).numpy()) if with_logits else f


def extract_features(images, extractor=None, *, batch_size: int = 500, device=None) -> np.ndarray:
    """Features ``(n, d)`` of images ``(n, C, H, W)`` in ``[-1, 1]``, batched on any device.

    ``extractor`` is a module with a ``features`` method (the classifier of
    :func:`mnist_classifier`, the default, or of :func:`ganlib.shapes.shapes_classifier` for 3-channel images),
    or any module mapping images to ``(n, d)``; C is its first convolution's input channels (1 without one).
    Images of another size than 28x28 are resized to 28x28 (bilinear, antialiased) first.

    Examples
    --------
    >>> import torch
    >>> flat = torch.nn.Flatten()
    >>> extract_features(-torch.ones(3, 1, 28, 28), flat).shape
    (3, 784)
    """
    if extractor is None:
        extractor = mnist_classifier()
    return _extract(images, extractor, batch_size, device)


def predict_proba(images, classifier=None, *, batch_size: int = 500, device=None) -> np.ndarray:
    """Class probabilities ``(n, classes)`` from a classifier (softmax of its logits; the MNIST one by default), float64."""
    if classifier is None:
        classifier = mnist_classifier()
    _, logits = _extract(images, classifier, batch_size, device, with_logits=True)
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- the MNIST classifier

#: Training configuration of the evaluation classifier; its hash names the cached weights, so
#: changing any entry trains (and caches) a new classifier.
CLASSIFIER_CONFIG: dict[str, Any] = {
    "arch": "LeNet", "width": 16, "hidden": 128, "batchnorm": False,
    "epochs": 2, "batch_size": 128, "max_lr": 3e-3, "weight_decay": 0.0, "seed": 0,
    "train_size": 60000,
}


def cache_dir() -> Path:
    """Where the trained classifier is cached: ``$GANLIB_CACHE`` when set, else ganlib's user cache
    (``ganlib.data.cache_dir()``: ``$XDG_CACHE_HOME/ganlib`` or the platform's cache folder).

    Examples
    --------
    >>> import os; os.environ["GANLIB_CACHE"] = "/tmp/ganlib-cache"; str(cache_dir())
    '/tmp/ganlib-cache'
    >>> del os.environ["GANLIB_CACHE"]; cache_dir().name
    'ganlib'
    """
    from ganlib.images import cache_dir as user_cache

    override = os.environ.get("GANLIB_CACHE", "").strip()
    return Path(override).expanduser() if override else user_cache()


def config_hash(config: dict) -> str:
    """A short, stable hash of a JSON-serialisable configuration.

    Examples
    --------
    >>> config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    True
    """
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def _mnist(split: str, root=None):
    """MNIST images as float32 ``(N, 1, 28, 28)`` in ``[-1, 1]`` and int64 labels, from ``ganlib.data``."""
    from ganlib.images import load_mnist, scale_images

    x, y = load_mnist(split, root=root)
    return scale_images(x), y


def classifier_accuracy(classifier, images, labels, *, batch_size: int = 1000, device=None) -> float:
    """Fraction of ``images`` whose predicted class (argmax of the logits) equals ``labels``."""
    import torch

    probs = predict_proba(images, classifier, batch_size=batch_size, device=device)
    labels = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    return float((probs.argmax(axis=1) == labels).mean())


def _lenet(config: dict) -> "nn.Module":
    """The evaluation LeNet of ``config``: :class:`ganlib.models.LeNet`, its first convolution taking
    ``config["channels"]`` input channels (1 when absent), ``config["classes"]`` outputs (10 when absent)."""
    from torch import nn

    from ganlib.models import LeNet

    net = LeNet(config["width"], config["hidden"], config.get("classes", 10), config["batchnorm"])
    channels = int(config.get("channels", 1))
    if channels != 1:  # the same recipe on colour images: only the first layer's input changes
        net.body[0] = nn.Conv2d(channels, config["width"], 5, padding=2, bias=not config["batchnorm"])
    return net


def _train_classifier(config: dict, data, device=None, verbose: bool | None = False, what: str = "MNIST"):
    """Supervised training of an evaluation classifier (cross-entropy, Adam, one-cycle learning rate).

    This is an ordinary classifier loop, not a GAN loop: one network, one loss, labelled data.
    It lives here, next to the metric that needs it, and is small on purpose. ``data()`` returns
    ``(x_train, y_train, x_test, y_test)``, images float32 in ``[-1, 1]`` and int64 labels; the
    network is :func:`_lenet` of ``config``.
    """
    import torch
    import torch.nn.functional as F

    from ganlib.utils import default_device, progress

    device = default_device() if device is None else torch.device(device)
    x, y, xt, yt = data()
    n = min(int(config["train_size"]), x.shape[0])
    gen = torch.Generator().manual_seed(int(config["seed"]))
    if n < x.shape[0]:
        keep = torch.randperm(x.shape[0], generator=gen)[:n]
        x, y = x[keep], y[keep]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(config["seed"]))
        net = _lenet(config).to(device)
    bs = int(config["batch_size"])
    per_epoch = n // bs
    steps = int(config["epochs"]) * per_epoch
    opt = torch.optim.Adam(net.parameters(), lr=config["max_lr"] / 25, weight_decay=config["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config["max_lr"], total_steps=steps)
    net.train()
    start = time.perf_counter()
    perm = None
    # verbose None: the bar shows unless GANLIB_SMOKE or CI silence it (ganlib.utils.progress decides)
    bar_options = {} if verbose is None else {"disable": not verbose}
    for step in progress(range(steps), desc=f"training the {what} classifier once (cached for later runs)",
                         unit="step", **bar_options):
        if step % per_epoch == 0:
            perm = torch.randperm(n, generator=gen)
        idx = perm[(step % per_epoch) * bs:(step % per_epoch + 1) * bs]
        loss = F.cross_entropy(net(x[idx].to(device)), y[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    seconds = time.perf_counter() - start
    net.eval()
    acc = classifier_accuracy(net, xt, yt, device=device)
    return net, {"test_accuracy": acc, "train_seconds": seconds}


def mnist_classifier(root=None, cache: bool = True, *, config: dict | None = None, device=None,
                     verbose: bool | None = None) -> "nn.Module":
    """The course's MNIST classifier, trained once and cached: the feature extractor of chapter 09.

    A LeNet-style CNN (:class:`ganlib.models.LeNet`) trained with cross-entropy on the 60,000
    MNIST training digits for 2 epochs (Adam, one-cycle learning rate); it reaches at least
    99% test accuracy in about a minute on two CPU cores. Its penultimate layer gives the
    features of :func:`fid` and :func:`precision_recall`, its softmax the class
    probabilities of :func:`classifier_score` and :func:`class_coverage`.

    The weights are cached in :func:`cache_dir` under ``classifiers/``, in a file named by a hash
    of the training configuration; a missing or unreadable file is retrained. The training
    loop is a supervised classifier loop (not a GAN loop) and lives in this module.

    Parameters
    ----------
    root : path, optional
        MNIST folder, passed to ``ganlib.data.load_mnist``.
    cache : bool
        Read and write the cache; ``False`` always trains and writes nothing.
    config : dict, optional
        Overrides of :data:`CLASSIFIER_CONFIG` (a different hash, a different cache file).
    device : torch device, optional
    verbose : bool or None
        Show a progress bar while training (it only trains when the cache lacks it). ``None``
        (default): a bar unless ``GANLIB_SMOKE`` or ``CI`` is set; ``True`` also prints a line
        saying that it trains; ``False``: silent.

    Returns
    -------
    LeNet
        In eval mode, on ``device``; ``.info`` holds the configuration, its hash, the test
        accuracy and the training time.
    """
    return _cached_classifier("mnist", CLASSIFIER_CONFIG, config, lambda cfg: (*_mnist("train", root), *_mnist("test", root)),
                              cache=cache, device=device, verbose=verbose, what="MNIST")


def _cached_classifier(name: str, defaults: dict, config: dict | None, load, *, cache: bool, device,
                       verbose: bool | None, what: str) -> "nn.Module":
    """Read the classifier ``name`` of configuration ``{**defaults, **config}`` from the cache, or train and cache it.

    ``load(cfg)`` returns the training and test data of :func:`_train_classifier`. The file is
    ``cache_dir() / "classifiers" / f"{name}-lenet-{config_hash(cfg)}.pt"``, written atomically.
    """
    import torch

    from ganlib.utils import default_device

    cfg = {**defaults, **(config or {})}
    unknown = set(cfg) - set(defaults)
    if unknown:
        raise ValueError(f"unknown classifier config keys {sorted(unknown)}; known: {sorted(defaults)}")
    key = config_hash(cfg)
    device = default_device() if device is None else torch.device(device)
    path = cache_dir() / "classifiers" / f"{name}-lenet-{key}.pt"
    if cache and path.exists():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            net = _lenet(cfg)
            net.load_state_dict(blob["state_dict"])
            net.info = {**blob["info"], "config": cfg, "hash": key, "path": str(path), "cached": True}
            return net.to(device).eval()
        except Exception as exc:  # a truncated or foreign file: train again rather than fail
            warnings.warn(f"could not read the cached classifier {path} ({type(exc).__name__}: {exc}); retraining it",
                          stacklevel=3)
    if verbose:
        print(f"training the {what} classifier (config {key}); cached afterwards", file=sys.stderr)
    net, info = _train_classifier(cfg, lambda: load(cfg), device, verbose, what)
    if verbose:
        print(f"{what} classifier: test accuracy {100 * info['test_accuracy']:.2f}%", file=sys.stderr)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({"state_dict": {k: v.cpu() for k, v in net.state_dict().items()}, "info": info}, tmp)
        os.replace(tmp, path)  # atomic: a crash never leaves half a file under the real name
    net.info = {**info, "config": cfg, "hash": key, "path": str(path), "cached": False}
    return net.eval()
