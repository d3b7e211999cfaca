"""Named training recipes: the one place where the chapters' GAN settings live (chapters 07, 08 and 10).

A recipe is what a chapter trains with: the model (``mlp`` or ``dcgan``), its size, the loss,
Adam's learning rates and betas, the batch size and the budget. The chapters import them (chapter
08 its own, chapter 09 the ones of chapters 07 and 08, so that its table scores exactly those
runs), ``ganlib train --recipe NAME`` fills its defaults from them, and
``benchmarks/quality_per_minute.py`` trains them side by side.

==================  =======  =================================================================
name                chapter  what
==================  =======  =================================================================
mlp-gan             07       the fully connected GAN: width 256, z in R^64, Adam(1e-3, (0.5, 0.999))
dcgan-guidelines    08       Radford et al.'s guidelines (BatchNorm in G and D, no spectral norm),
                             with what they leave open tuned for a 5-minute CPU budget
sn-hinge            10       spectrally normalised D, hinge loss, Adam(1e-3, (0, 0.9)): the best
                             unconditional recipe of chapter 10, and ``ganlib train``'s DCGAN default
==================  =======  =================================================================

Examples
--------
>>> r = get("sn-hinge")
>>> r.loss, r.betas, r.spectral_norm
('hinge', (0.0, 0.9), True)
>>> r.meta()["width"], r.config(steps=10).lr_d
(16, 0.001)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["Recipe", "RECIPES", "get", "names", "DEFAULT_DCGAN"]


@dataclass(frozen=True)
class Recipe:
    """A named GAN training recipe (all the settings that a chapter chooses).

    Attributes
    ----------
    name, chapter, summary : str
        What it is called, the chapter that teaches it, one line on what it is.
    model : "mlp" or "dcgan"
        The architecture family of :func:`ganlib.checkpoints.build_models`.
    width, latent_dim : int
        Hidden width (DCGAN: the channels of G's last and D's first layer) and the size of z.
    spectral_norm : bool
        Spectrally normalised D (DCGAN; its BatchNorm is then dropped).
    loss : str
        A name of :data:`ganlib.losses.LOSSES`.
    batch_size : int
    lr_g, lr_d : float
    betas : (float, float)
        Adam's betas for both networks.
    steps, minutes : int or None, float or None
        The chapter's budget: at most ``steps`` generator steps and at most ``minutes`` of wall clock.
    """

    name: str
    chapter: str
    summary: str
    model: str
    width: int
    latent_dim: int
    loss: str = "nonsaturating"
    spectral_norm: bool = False
    batch_size: int = 128
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    steps: int | None = None
    minutes: float | None = None

    def meta(self, image_size: int = 28, channels: int = 1) -> dict:
        """The ``meta`` dict from which :func:`ganlib.checkpoints.build_models` builds G and D.

        Examples
        --------
        >>> get("mlp-gan").meta()
        {'model': 'mlp', 'image_size': 28, 'channels': 1, 'latent_dim': 64, 'width': 256}
        """
        meta = {"model": self.model, "image_size": image_size, "channels": channels,
                "latent_dim": self.latent_dim, "width": self.width}
        if self.model == "dcgan":
            meta.update(spectral_norm=self.spectral_norm, norm=None, num_classes=None)
        return meta

    def config(self, **overrides):
        """A :class:`ganlib.train.TrainConfig` with this recipe's settings; keyword arguments win.

        Examples
        --------
        >>> c = get("dcgan-guidelines").config(minutes=None, steps=5, seed=1)
        >>> c.steps, c.minutes, c.seed, c.loss
        (5, None, 1, 'nonsaturating')
        """
        from ganlib.train import TrainConfig

        options = {"steps": self.steps, "minutes": self.minutes, "batch_size": self.batch_size, "loss": self.loss,
                   "lr_g": self.lr_g, "lr_d": self.lr_d, "betas": self.betas}
        options.update(overrides)
        return TrainConfig(**options)

    def options(self) -> dict:
        """The settings as ``ganlib train``'s option names (``batch_size``, ``lr_g``, ..., ``betas``)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("name", "chapter", "summary")}


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("mlp-gan", "07", "chapter 07's fully connected GAN on MNIST", model="mlp", width=256, latent_dim=64,
           batch_size=64, lr_g=1e-3, lr_d=1e-3, steps=3000, minutes=3.0),
    Recipe("dcgan-guidelines", "08", "Radford et al.'s DCGAN (BatchNorm, no spectral norm), tuned for 5 CPU-minutes",
           model="dcgan", width=16, latent_dim=64, batch_size=64, lr_g=2e-3, lr_d=2e-3, steps=100_000, minutes=5.0),
    Recipe("sn-hinge", "10", "spectrally normalised D and hinge loss (Miyato et al. 2018)", model="dcgan", width=16,
           latent_dim=64, loss="hinge", spectral_norm=True, batch_size=64, lr_g=1e-3, lr_d=1e-3, betas=(0.0, 0.9),
           steps=100_000, minutes=5.0),
)}
DEFAULT_DCGAN = "sn-hinge"  # ganlib train --model dcgan without --recipe (README: "Training defaults")


def names() -> list[str]:
    """The recipes' names, sorted.

    Examples
    --------
    >>> names()
    ['dcgan-guidelines', 'mlp-gan', 'sn-hinge']
    """
    return sorted(RECIPES)


def get(name: str) -> Recipe:
    """The recipe called ``name``; a ``ValueError`` that lists the names for any other string.

    Examples
    --------
    >>> get("dcgan").name
    Traceback (most recent call last):
    ...
    ValueError: unknown recipe 'dcgan': choose one of dcgan-guidelines, mlp-gan, sn-hinge
    """
    try:
        return RECIPES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown recipe {name!r}: choose one of {', '.join(names())}") from None
