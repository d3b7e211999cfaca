"""ganlib: the companion library of the course *Generative Adversarial Networks from the math up* (chapters 00-B).

Importing ``ganlib`` is cheap: it does not import torch or matplotlib. Import the
topic module you need, e.g. ``from ganlib import games`` or ``from ganlib.plot import plot_game``.

Public API
----------
The names below are importable from ``ganlib`` itself; everything else from its module, as
the chapters do (``from ganlib import metrics``, ``from ganlib.train import train_gan``).
Each module's public names are those in its ``__all__`` (or, without one, those not starting
with ``_``). The chapter that introduces each module is in brackets.

``budget``, ``default_device``, ``is_smoke``, ``progress``, ``seed_everything`` (from ``utils``)

Modules
-------
utils        seeding, device choice, training budgets (``GANLIB_SMOKE``), progress bars [00]
games        two-player zero-sum games, update rules (GDA, alternating, extragradient,
             optimistic), the Dirac-GAN and its regularisers [01, 04]
theory       the GAN objective on grids, KL/JSD, numerically stable losses from logits (NumPy) [02]
numpy_nn     layers with hand-written backward passes, gradient checks, SGD/Adam, a NumPy GAN loop [03]
data         toy distributions (1-D and 2-D mixtures), sample distances; re-exports ``images`` [03, 06]
images       MNIST from its original files (downloaded, md5-verified, cached), CIFAR-10, image folders,
             synthetic images, seeded and resumable ``Batches`` [07]
shapes       coloured shapes: a colour-image benchmark with 24 known modes, its exact decoder and
             mode coverage [08]
losses       GAN losses and gradient penalties in PyTorch (imports torch) [05]
models       MLP, DCGAN, conditional and spectrally normalised networks, the LeNet classifier [05-10]
train        the course's one GAN training loop: config, history, ``train_gan`` [06]
recipes      the chapters' named training recipes (``ganlib train --recipe``) [07, 08, 10]
checkpoints  checkpoint files: atomic save, load, resume checks, RNG states, models from metadata [07]
distributed  data-parallel training with torch.distributed (used by ``train``) [B]
metrics      mode coverage, FID, precision and recall, classifier score, ``evaluate`` [06, 09]
classifier   the MNIST classifier behind the image metrics: training, cache, features [09]
plot         vector fields of 2-D games, samples over modes, training curves, image grids [01]
grading      the offline grader (a package: questions, notebook, worker, judge, report) [00]
checks       the graded questions, one module per chapter [01-A]
authoring    exercise notebooks generated from solution notebooks [00]
cli          the ``ganlib`` commands, one module each: grade, exercises, train, sample, evaluate;
             ``python -m ganlib`` (``__main__``) dispatches to them; no library module imports them [00]

The README's "Inside ganlib" section draws the arrows between them.
"""

__version__ = "0.1.0"

from ganlib.utils import budget, default_device, is_smoke, progress, seed_everything

__all__ = ["budget", "default_device", "is_smoke", "progress", "seed_everything", "__version__"]
