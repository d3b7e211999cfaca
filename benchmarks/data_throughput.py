"""How fast does ganlib.data feed MNIST, compared with how fast an MLP GAN trains on it?

Prints the loader's images/s (``ganlib.data.Batches`` over ``mnist_images``, batch 128) and the
images/s of ``ganlib.train.train_gan`` training chapter 07's MLP GAN (``ganlib train --model mlp``:
one discriminator and one generator step per batch, Adam, non-saturating loss) on the same
data, and their ratio. The loader should be at least 10x
faster, so that data never limits training.

Usage: ``python benchmarks/data_throughput.py [--batch-size 128] [--seconds 5] [--threads N]``
(MNIST is found as by ``ganlib.data.mnist_dir``: ``$GANLIB_DATA``, the user cache, or a download).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ganlib import data, train


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
    G, D = train.build_models({"model": "mlp", "image_size": 28, "channels": 1, "latent_dim": 64, "width": 256})
    steps = max(int(args.seconds * 20), 20)
    history = train.train_gan(G, D, data.Batches(x, bs, seed=1),
                              train.TrainConfig(steps=steps, minutes=args.seconds / 60, batch_size=bs, device="cpu"),
                              latent_dim=64)
    train_rate = float(np.median(history["samples_per_s"][3:]))   # the trainer's own per-step figure
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {bs}")
    print(f"load + scale MNIST train (60000 images): {load_s:.2f} s")
    print(f"loader (Batches, next batch):  {loader:12,.0f} images/s")
    print(f"MLP GAN training (train_gan, chapter 07's MLP, D + G step): {train_rate:12,.0f} images/s "
          f"({len(history)} steps)")
    print(f"loader / training:             {loader / train_rate:12,.1f} x")


if __name__ == "__main__":
    main()
