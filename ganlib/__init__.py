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
data      toy distributions (1-D Gaussians and mixtures) and sample distances
losses    GAN losses and gradient penalties in PyTorch (imports torch)
models    small MLP generators and discriminators in PyTorch (imports torch)
plot      vector fields and trajectories of 2-D games
grading   the offline grader behind ``python -m ganlib grade``
authoring exercise notebooks generated from solution notebooks
checks    the graded questions, one module per chapter
"""

__version__ = "0.1.0"

from ganlib.utils import budget, default_device, is_smoke, progress, seed_everything

__all__ = ["budget", "default_device", "is_smoke", "progress", "seed_everything", "__version__"]
