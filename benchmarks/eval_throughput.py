"""How long do chapter 09's metrics take at n = 10,000, and how much memory do they need?

Measures, each in a fresh process (so that its peak memory is its own):

- FID at n: features of n MNIST test digits and n training digits from the course's classifier
  (feature extraction included), then the Frechet distance. Target: under 30 s on 2 CPU cores.
- Precision and recall (k = 3) at n x n on those features, with ganlib's chunked k-NN.
  Target: under 60 s on 2 CPU cores, memory bounded (a few hundred MB, whatever n).
- With ``--reference``: the same precision/recall from full n x n distance matrices in NumPy
  (the textbook implementation), to check the numbers agree and to show the memory it needs.

The classifier is trained and cached first if needed (not timed).

Usage: ``python benchmarks/eval_throughput.py [--n 10000] [--threads 2] [--reference]``
(MNIST is found as by ``ganlib.data.mnist_dir``: ``$GANLIB_DATA``, the user cache, or a download).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


class _PeakMemory:
    """Peak resident memory above the level at entry, sampled every 5 ms from /proc (Linux);
    elsewhere the process's peak RSS (``getrusage``) above the peak at entry."""

    def __enter__(self):
        self.proc = Path("/proc/self/statm")
        self.base = self._now()
        self.peak = self.base
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _now(self) -> float:
        if self.proc.exists():
            return int(self.proc.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kb / 1024 if sys.platform != "darwin" else kb / 2**20  # macOS reports bytes

    def _watch(self):
        while not self.stop.wait(0.005):
            self.peak = max(self.peak, self._now())

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, self._now())
        self.mb = self.peak - self.base
        return False


def _fid(n: int, threads: int, out: str, queue) -> None:
    import torch

    from ganlib import metrics

    torch.set_num_threads(threads)
    net = metrics.mnist_classifier(device="cpu")
    test, _ = metrics._mnist("test")
    train, _ = metrics._mnist("train")
    with _PeakMemory() as mem:
        t0 = time.perf_counter()
        real = metrics._subset(test, n, 0, "the test set")
        other = metrics._subset(train, n, 1, "the training set")
        f_real = metrics.extract_features(real, net, device="cpu")
        f_other = metrics.extract_features(other, net, device="cpu")
        t_feat = time.perf_counter() - t0
        value = metrics.fid_from_features(f_real, f_other)
        seconds = time.perf_counter() - t0
    np.save(Path(out) / "real.npy", f_real)
    np.save(Path(out) / "other.npy", f_other)
    queue.put({"fid": value, "seconds": seconds, "features_seconds": t_feat, "peak_mb": mem.mb})


def _pr(threads: int, out: str, queue) -> None:
    import torch

    from ganlib import metrics

    torch.set_num_threads(threads)
    a, b = np.load(Path(out) / "real.npy"), np.load(Path(out) / "other.npy")
    with _PeakMemory() as mem:
        t0 = time.perf_counter()
        pr = metrics.precision_recall(a, b, k=3, device="cpu")
        seconds = time.perf_counter() - t0
    queue.put({"precision": pr.precision, "recall": pr.recall, "seconds": seconds, "peak_mb": mem.mb})


def _reference(threads: int, out: str, queue) -> None:
    """The textbook version: full distance matrices, then sort (NumPy, float64)."""
    a, b = np.load(Path(out) / "real.npy"), np.load(Path(out) / "other.npy")

    def dist(x, y):
        return np.sqrt(np.maximum((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T, 0))

    with _PeakMemory() as mem:
        t0 = time.perf_counter()
        r_a = np.partition(dist(a, a), 3, axis=1)[:, 3]
        r_b = np.partition(dist(b, b), 3, axis=1)[:, 3]
        d_ba = dist(b, a)
        precision = float((d_ba <= r_a[None, :]).any(1).mean())
        recall = float((d_ba <= r_b[:, None]).any(0).mean())
        seconds = time.perf_counter() - t0
    queue.put({"precision": precision, "recall": recall, "seconds": seconds, "peak_mb": mem.mb})


def _run(target, *args):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2: the course's CPU budget)")
    parser.add_argument("--reference", action="store_true", help="also run the full-matrix NumPy precision/recall")
    args = parser.parse_args(argv)

    from ganlib import metrics

    net = metrics.mnist_classifier(device="cpu", verbose=True)  # train and cache first: not timed
    print(f"classifier: test accuracy {net.info['test_accuracy']:.4f}, config {net.info['hash']}")
    with tempfile.TemporaryDirectory() as out:
        f = _run(_fid, args.n, args.threads, out)
        print(f"FID at n = {args.n} (train vs test digits): {f['fid']:.3f} in {f['seconds']:.1f} s "
              f"({f['features_seconds']:.1f} s of it feature extraction), peak memory +{f['peak_mb']:.0f} MB")
        p = _run(_pr, args.threads, out)
        print(f"precision/recall at {args.n} x {args.n}, k = 3: {p['precision']:.4f} / {p['recall']:.4f} "
              f"in {p['seconds']:.1f} s, peak memory +{p['peak_mb']:.0f} MB")
        if args.reference:
            r = _run(_reference, args.threads, out)
            same = abs(r["precision"] - p["precision"]) <= 1 / args.n and abs(r["recall"] - p["recall"]) <= 1 / args.n
            print(f"full-matrix reference: {r['precision']:.4f} / {r['recall']:.4f} in {r['seconds']:.1f} s, "
                  f"peak memory +{r['peak_mb']:.0f} MB; agrees (to one sample): {same}")


if __name__ == "__main__":
    main()
