"""Sample quality per minute of training: the reference DCGAN, ``ganlib train``'s defaults and the chapters' recipes.

Each configuration trains for the same wall-clock budget (default 5 minutes) with the same number
of torch threads, one after the other, each in a fresh process, and is then scored with
``ganlib evaluate``'s code (``ganlib.metrics.evaluate``: FID, precision, recall and classes
covered, in the features of the course's MNIST classifier) on ``--n`` samples (default 10,000)
against the MNIST test set:

- ``reference``: pytorch/examples' ``dcgan/main.py`` training step at 28 px, as
  ``benchmarks/dcgan_throughput.py`` re-implements it (its networks, ``weights_init``, BCELoss on
  probabilities, Adam(2e-4, (0.5, 0.999)), batch 128, width 64, z in R^100, a ``DataLoader`` with
  ``--workers`` processes); imported from there, not copied;
- ``defaults``: ``ganlib train --model dcgan --data mnist --minutes M``, nothing else given
  (through ``ganlib.cli.train.main``, the command's own code path);
- ``chapter08``: ``ganlib train --recipe dcgan-guidelines`` (Radford et al.'s network, BatchNorm,
  no spectral norm, tuned for a 5-minute CPU budget: course/08_dcgan.ipynb);
- ``chapter10``: ``ganlib train --recipe sn-hinge`` (chapter 10's best unconditional recipe).

Samples are drawn as ``ganlib evaluate`` draws them (``metrics.generate``: eval mode, so
BatchNorm uses its running statistics). Reported per run: generator steps reached, images/s
(real images per second of training), FID, precision, recall, classes covered (of 10), the load
average before and after, and once the real-vs-real floor at the same n. A wall-clock budget
gives fewer steps on a busy machine: compare the steps as well as the scores. The JSON holds the
machine (CPU model, threads), torch's version and the date; it is rewritten after every run.

Usage::

    python benchmarks/quality_per_minute.py                           # 5 minutes each, 2 threads, seed 0
    python benchmarks/quality_per_minute.py --minutes 1 --only defaults chapter08 --n 2000
    python benchmarks/quality_per_minute.py --seeds 3 --json quality.json

MNIST is found as by ``ganlib.data.mnist_dir`` (``$GANLIB_DATA``, the user cache, or a download).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import dcgan_throughput as ref  # noqa: E402  (the reference step, the environment and the per-run subprocess)

CONFIGS = {  # name -> what trains (the ganlib ones are command lines of ganlib train)
    "reference": None,
    "defaults": ["--model", "dcgan"],
    "chapter08": ["--recipe", "dcgan-guidelines"],
    "chapter10": ["--recipe", "sn-hinge"],
}
LABELS = {"reference": "pytorch/examples DCGAN step, 28 px (width 64, batch 128)",
          "defaults": "ganlib train --model dcgan (defaults)",
          "chapter08": "ganlib train --recipe dcgan-guidelines (chapter 08)",
          "chapter10": "ganlib train --recipe sn-hinge (chapter 10)"}


class _OutOfTime(Exception):
    pass


def _reference(spec: dict, images, labels):
    """Train the reference for spec["minutes"]; returns (G as z -> images, latent, steps, batch, seconds)."""
    import torch

    made = {}
    build = ref.reference_networks

    def keep(*args, **kwargs):  # the reference step builds its networks itself: keep a handle on them
        made["G"], made["D"] = build(*args, **kwargs)
        return made["G"], made["D"]

    ref.reference_networks = keep
    start = time.perf_counter()
    deadline = start + 60 * spec["minutes"]
    count = {"steps": 0}

    def on_step(step, batch):
        count["steps"] = step
        if time.perf_counter() >= deadline:
            raise _OutOfTime

    rspec = {"seed": spec["seed"], "latent_dim": 100, "size": 28, "width": 64, "batch_size": 128,
             "workers": spec["workers"], "warmup": 0, "steps": 10**9}
    try:
        ref.reference_run(rspec, torch.device("cpu"), images, labels, on_step)
    except _OutOfTime:
        pass
    netG = made["G"]

    class Sampler(torch.nn.Module):  # z (n, 100) -> the reference G's images (it takes z as (n, 100, 1, 1))
        def __init__(self):
            super().__init__()
            self.net = netG

        def forward(self, z):
            return self.net(z[:, :, None, None])

    return Sampler(), 100, count["steps"], 128, time.perf_counter() - start


def _ganlib(spec: dict, folder: str):
    """``ganlib train`` with the configuration's flags for spec["minutes"]; returns (G, latent, steps, batch, seconds)."""
    from ganlib.checkpoints import build_models, load_checkpoint
    from ganlib.cli.train import main as train_main

    argv = [*CONFIGS[spec["config"]], "--data", "mnist", "--out", folder, "--minutes", str(spec["minutes"]),
            "--device", "cpu", "--seed", str(spec["seed"]), "--checkpoint-every", "1000000",
            "--sample-every", "1000000", "--overwrite"]
    if train_main(argv) != 0:
        raise RuntimeError("ganlib train " + " ".join(argv) + " failed")
    ckpt = load_checkpoint(Path(folder) / "checkpoint.pt")
    G, _ = build_models(ckpt["meta"])
    G.load_state_dict(ckpt["models"]["G"])
    return G, ckpt["latent_dim"], ckpt["step"], ckpt["config"]["batch_size"], ckpt["time"]


def worker(spec: dict) -> dict:
    """One configuration and seed, in this (fresh) process: train, then score."""
    import torch

    torch.set_num_threads(spec["threads"])
    from ganlib import metrics
    from ganlib.data import load_mnist

    load_before = os.getloadavg()
    if spec["config"] == "reference":
        images, labels = load_mnist("train")  # uint8, transformed per image as the reference's loader does
        G, latent, steps, batch, wall = _reference(spec, torch.as_tensor(images), torch.as_tensor(labels))
    else:
        G, latent, steps, batch, wall = _ganlib(spec, spec["folder"])
    load_after = os.getloadavg()
    scores = metrics.evaluate(G, spec["n"], latent_dim=latent, floor=spec["floor"], seed=0)
    out = {"steps": int(steps), "batch_size": int(batch), "train_s": round(wall, 1),
           "images_per_s": round(steps * batch / wall, 1), "load_average_before": load_before,
           "load_average_after_training": load_after, "fid": scores["fid"], "precision": scores["precision"],
           "recall": scores["recall"], "classes": scores["classes_covered"]}
    if "floor" in scores:
        out["floor"] = {k: scores["floor"][k] for k in ("fid", "precision", "recall", "classes_covered")}
    return out


def environment(threads: int) -> dict:
    env = ref.environment("cpu", threads)
    env["gpu"] = "not measured (CPU only)"
    return env


def table(rows: list[dict]) -> str:
    head = f"{'configuration':54s} {'seed':>4} {'steps':>6} {'images/s':>8} {'FID':>7} {'prec':>5} {'recall':>6} {'classes':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        res = r["result"]
        if "error" in res:
            lines.append(f"{LABELS[r['config']]:54s} {r['seed']:>4} error: {res['error']}")
            continue
        lines.append(f"{LABELS[r['config']]:54s} {r['seed']:>4} {res['steps']:>6} {res['images_per_s']:>8.0f} "
                     f"{res['fid']:>7.1f} {res['precision']:>5.2f} {res['recall']:>6.2f} {res['classes']:>7}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5.0, help="wall-clock training budget per run (default 5)")
    p.add_argument("--threads", type=int, default=2, help="torch threads per run (default 2)")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per configuration (default 1)")
    p.add_argument("--only", nargs="+", choices=list(CONFIGS), help="these configurations (default: all four)")
    p.add_argument("--n", type=int, default=10_000, help="samples scored per run (default 10,000, as ganlib evaluate)")
    p.add_argument("--workers", type=int, default=2, help="the reference's DataLoader workers (its default: 2)")
    p.add_argument("--keep", metavar="DIR", help="keep the ganlib runs' folders (checkpoints) under DIR")
    p.add_argument("--json", default="quality_per_minute.json", help="where to write the results")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.minutes <= 0 or args.threads < 1 or args.seeds < 1 or not 2 <= args.n <= 10_000:
        p.error("--minutes must be positive, --threads and --seeds at least 1, --n between 2 and 10000")
    env = environment(args.threads)
    print(f"quality per {args.minutes:g} minutes on {env['cpu']} ({env['threads']} threads), torch {env['torch']}, "
          f"{env['date']}; load average {env['load_average_start']}", flush=True)
    keep = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="quality_"))
    rows = []

    def write(done: bool) -> None:
        env["load_average_end"] = os.getloadavg()
        report = {"environment": env, "settings": {k: v for k, v in vars(args).items() if k != "worker"},
                  "complete": done, "runs": rows}
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")

    first = True
    for seed in range(args.seeds):
        for name in args.only or list(CONFIGS):
            spec = {"config": name, "seed": seed, "minutes": args.minutes, "threads": args.threads, "n": args.n,
                    "workers": args.workers, "floor": first, "folder": str(keep / f"{name}_seed{seed}")}
            t = time.perf_counter()
            result = ref.run_config(spec, timeout=None, script=__file__, env={**os.environ, "CI": "1"})
            if "error" not in result:
                first = first and "floor" not in result
            rows.append({"config": name, "label": LABELS[name], "seed": seed, "result": result})
            print(table(rows[-1:]).splitlines()[-1] + f"   ({time.perf_counter() - t:.0f} s)", flush=True)
            write(done=False)
    write(done=True)
    print()
    print(table(rows))
    floor = next((r["result"]["floor"] for r in rows if "floor" in r["result"]), None)
    if floor:
        print(f"\nreal-vs-real floor at n = {args.n}: FID {floor['fid']:.2f}, precision {floor['precision']:.2f}, "
              f"recall {floor['recall']:.2f}")
    print(f"GPU: not measured. Results written to {args.json}; load average at the end {env['load_average_end']} "
          f"(a wall-clock budget gives fewer steps on a busy machine).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
