"""ganlib: the companion library of the course *Generative Adversarial Networks from the math up*.

Importing ``ganlib`` is cheap: it does not import torch or matplotlib. Import the
topic module you need, e.g. ``from ganlib import games`` or ``from ganlib.plot import plot_game``.

Modules
-------
utils     seeding, device choice, training budgets (``GANLIB_SMOKE``), progress bars
games     two-player zero-sum games, update rules (GDA, alternating, extragradient, optimistic),
          the Dirac-GAN and its regularisers
theory    the GAN objective on grids, KL/JSD, numerically stable losses from logits (NumPy)
numpy_nn  layers with hand-written backward passes, gradient checks, SGD/Adam, a NumPy GAN loop
data      toy distributions (1-D and 2-D mixtures), sample distances, and images: MNIST from
          its original files (downloaded, md5-verified, cached), image folders, seeded batches
losses    GAN losses and gradient penalties in PyTorch (imports torch)
models    MLP and DCGAN generators and discriminators (conditional, spectrally normalised),
          the MNIST classifier behind the metrics (imports torch)
train     the course's one GAN training loop, its checkpoints, and ``ganlib train`` / ``ganlib sample``
distributed  data-parallel training with torch.distributed (used by ``train``)
metrics   mode coverage, FID, precision and recall, classifier score; ``ganlib evaluate``
plot      vector fields of 2-D games, samples over modes, training curves, image grids
grading   the offline grader behind ``python -m ganlib grade``
authoring exercise notebooks generated from solution notebooks
checks    the graded questions, one module per chapter
"""

__version__ = "0.1.0"

from ganlib.utils import budget, default_device, is_smoke, progress, seed_everything

__all__ = ["budget", "default_device", "is_smoke", "progress", "seed_everything", "__version__"]
