"""How fast does ganlib.data feed MNIST, compared with how fast an MLP GAN trains on it?

Prints the loader's images/s (``ganlib.data.Batches`` over ``mnist_images``, batch 128) and the
images/s of MLP GAN training steps (one discriminator and one generator step per batch, Adam,
non-saturating loss) on the same batches, and their ratio. The loader should be at least 10x
faster, so that data never limits training.

Usage: ``python benchmarks/data_throughput.py [--batch-size 128] [--seconds 5] [--threads N]``
(MNIST is found as by ``ganlib.data.mnist_dir``: ``$GANLIB_DATA``, the user cache, or a download).
"""

from __future__ import annotations

import argparse
import time

import torch

from ganlib import data, losses, models


def rate(step, seconds: float, batch_size: int) -> float:
    """Images/s of ``step()`` measured over about ``seconds`` after a short warm-up."""
    for _ in range(3):
        step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n * batch_size / (time.perf_counter() - t0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bs = args.batch_size

    t0 = time.perf_counter()
    x, y = data.mnist_images("train")
    load_s = time.perf_counter() - t0
    batches = data.Batches(x, bs, labels=y, seed=0)
    loader = rate(lambda: next(batches), args.seconds, bs)

    torch.manual_seed(0)
    latent = 64
    G = models.generator(latent, 784, hidden=(256, 512), out_activation="tanh")
    D = models.discriminator(784, hidden=(512, 256))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    stream = data.Batches(x, bs, seed=1)

    def gan_step():  # the comparison workload only: the course's training loop is ganlib.train
        real = next(stream).flatten(1)
        fake = G(torch.randn(bs, latent))
        loss_d = losses.discriminator_loss_bce(D(real), D(fake.detach()))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = losses.generator_loss_nonsaturating(D(fake))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    train = rate(gan_step, args.seconds, bs)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {bs}")
    print(f"load + scale MNIST train (60000 images): {load_s:.2f} s")
    print(f"loader (Batches, next batch):  {loader:12,.0f} images/s")
    print(f"MLP GAN training (D + G step): {train:12,.0f} images/s")
    print(f"loader / training:             {loader / train:12,.1f} x")


if __name__ == "__main__":
    main()
