"""``ganlib evaluate``: FID, precision/recall and classifier score of generated digits (chapter 09), and the
coloured shapes' exact mode counts beside FID and precision/recall of the same samples."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ganlib.checkpoints import build_models, load_checkpoint
from ganlib.images import load_mnist
from ganlib.metrics import check_images, evaluate, format_evaluation


def _generator_from_checkpoint(path: str, ema: bool, dataset: str = "mnist"):
    """The generator of a checkpoint written by ``ganlib train`` (rebuilt from its stored ``meta``)."""
    ckpt = load_checkpoint(path)
    meta = ckpt.get("meta") or {}
    if not meta.get("model"):
        raise ValueError(f"{path} was written by train_gan from Python with your own models: sample them with "
                         "ganlib.metrics.generate(G, n) and pass the images to ganlib.metrics.evaluate, or save "
                         "them with np.save and use --samples")
    if dataset == "mnist" and meta.get("channels", 1) != 1:
        raise ValueError(f"{path} holds a generator of {meta['channels']}-channel images; ganlib evaluate "
                         "measures single-channel MNIST digits, and the coloured shapes (--dataset shapes)")
    if dataset == "shapes" and meta.get("channels") != 3:
        raise ValueError(f"{path} holds a generator of {meta.get('channels', 1)}-channel images; the coloured "
                         "shapes have 3 channels (train with --data shapes)")
    state = ckpt["models"].get("G_ema") if ema else ckpt["models"]["G"]
    if state is None:
        raise ValueError(f"{path} holds no EMA generator: it was trained without --ema")
    G, _ = build_models(meta)
    G.load_state_dict(state)
    return G, int(ckpt["latent_dim"]), int(ckpt.get("step", 0))


EVALUATE_EXAMPLES = """examples:
  ganlib evaluate --checkpoint runs/dcgan/checkpoint.pt --n 10000
  ganlib evaluate --samples samples.npy --n 5000 --json > scores.json
  ganlib evaluate --checkpoint runs/shapes/checkpoint.pt     # trained on --data shapes: exact mode counts and FID

Samples are compared with n MNIST test digits (without --n: every sample given, up to 10000); the last column repeats the measurement with n
training digits in place of the samples: the real-vs-real floor at this n. Compare numbers only
at the same n. Exit code 0, 1 for unusable input (file, shape, range, NaN), 2 for bad arguments.
"""


def main(argv: list[str]) -> int:
    """``ganlib evaluate (--checkpoint FILE | --samples FILE.npy) [--n 10000] [--json]``; returns the exit code.

    Exit codes: 0 done, 1 unusable input (missing or unreadable file, wrong shape, values outside
    ``[-1, 1]``, NaN, n larger than the samples or the test set), 2 bad arguments (argparse).
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog="ganlib evaluate", epilog=EVALUATE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluate generated MNIST digits against the test set: FID, precision, recall, classifier "
                    "score and class coverage, next to the real-vs-real floor at the same n. Features come from "
                    "the course's own MNIST classifier (trained and cached on first use), so FID values are not "
                    "comparable with published Inception-FID numbers. For generators of the coloured shapes "
                    "(ganlib train --data shapes), the 24 modes captured, high quality and reverse KL, counted "
                    "exactly by decoding every sample, beside FID, precision and recall of the same samples against "
                    "real shapes (features of a classifier trained on the shapes, cached on first use).")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="FILE", help="a checkpoint.pt written by ganlib train")
    source.add_argument("--samples", metavar="FILE.npy",
                        help="a NumPy array (N, 1, H, W) or (N, H, W) of images in [-1, 1], from any generator; "
                             "sizes other than 28x28 are resized to 28x28 (bilinear, antialiased)")
    parser.add_argument("--ema", action="store_true", help="with --checkpoint: use the EMA generator")
    parser.add_argument("--n", type=int, default=None,
                        help="samples compared on each side, at most the 10000 test digits (default: 10000 with "
                             "--checkpoint; with --samples, all of them, up to 10000)")
    parser.add_argument("--k", type=int, default=3, help="neighbourhood size of precision/recall (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random subsets and the latent noise (default 0)")
    parser.add_argument("--no-floor", action="store_true", help="skip the real-vs-real floor")
    parser.add_argument("--device", default=None, help="torch device (default: CUDA, then MPS, then CPU)")
    parser.add_argument("--data", default=None, metavar="DIR", help="folder with the MNIST files "
                                                                     "(default: $GANLIB_DATA, then the user cache)")
    parser.add_argument("--dataset", choices=("mnist", "shapes"),
                        help="what the samples imitate: MNIST digits (FID and the rest), or the coloured shapes, "
                             "whose 24 modes are counted exactly next to FID, precision and recall (default: the "
                             "checkpoint's training data, else mnist)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    try:
        args = parser.parse_args(argv)
        if args.n is not None and args.n < 2:
            parser.error(f"--n must be at least 2, got {args.n}")
        if args.n is not None and not 1 <= args.k < args.n:
            parser.error(f"--k must be between 1 and n - 1 = {args.n - 1}, got {args.k}")
        if args.k < 1:
            parser.error(f"--k must be at least 1, got {args.k}")
        if args.ema and not args.checkpoint:
            parser.error("--ema goes with --checkpoint")
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return int(exc.code or 0)

    def fail(message: str) -> int:
        print(f"ganlib evaluate: error: {message}", file=sys.stderr)
        return 1

    if args.dataset is None and args.checkpoint:  # a checkpoint of ganlib train says what it learned
        try:
            args.dataset = "shapes" if (load_checkpoint(args.checkpoint).get("meta") or {}).get("data") == "shapes" \
                else "mnist"
        except (ValueError, TypeError, FileNotFoundError, RuntimeError, OSError) as exc:
            return fail(str(exc))
    if args.dataset == "shapes":
        return _evaluate_shapes(args, fail)
    try:
        n_test = load_mnist("test", root=args.data)[1].shape[0]
        if args.n is not None and args.n > n_test:
            return fail(f"--n {args.n} is larger than the MNIST test set ({n_test} digits): use --n {n_test} or less")
        note = None  # how n was chosen when --n is not given
        if args.checkpoint:
            if args.n is None:
                args.n = n_test
            fake, latent_dim, step = _generator_from_checkpoint(args.checkpoint, args.ema)
            what = f"{args.n} samples of {args.checkpoint} (step {step})"
        else:
            path = Path(args.samples)
            if not path.is_file():
                return fail(f"no such file: {path}")
            try:
                samples = np.load(path, allow_pickle=False)
            except Exception as exc:  # not an .npy file, truncated, or pickled objects
                return fail(f"{path} is not a readable NumPy .npy array ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); save samples with "
                            "np.save(path, x) where x has shape (N, 1, H, W)")
            if not isinstance(samples, np.ndarray):
                return fail(f"{path} holds several arrays (.npz): save one array with np.save")
            fake, latent_dim = check_images(samples, "samples"), None
            if args.n is None:  # all the samples given, up to the test set's size
                args.n = min(fake.shape[0], n_test)
                note = (f"--n not given: n = {args.n}, " + (f"all the samples in {path}" if args.n == fake.shape[0]
                        else f"the size of the MNIST test set ({fake.shape[0]} samples in {path})")
                        + "; compare results only at the same n")
                if args.n < 2:
                    return fail(f"{path} holds {fake.shape[0]} sample: evaluation needs at least 2")
                if args.k >= args.n:
                    return fail(f"--k {args.k} needs more than {args.k} samples; {path} holds {args.n}")
            elif args.n > fake.shape[0]:
                return fail(f"--n {args.n} is larger than the number of samples in {path} ({fake.shape[0]}): "
                            f"use --n {fake.shape[0]}, or leave --n out to use them all")
            what = f"{args.n} of the {fake.shape[0]} samples in {path}"
        result = evaluate(fake, args.n, k=args.k, floor=not args.no_floor, seed=args.seed, device=args.device,
                          root=args.data, latent_dim=latent_dim)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError, OSError) as exc:
        return fail(str(exc))
    if args.json:  # stdout holds the JSON only; the note goes to stderr
        if note:
            print(f"ganlib evaluate: {note}", file=sys.stderr)
        print(json.dumps({"source": args.checkpoint or args.samples, **result}, indent=2))
    else:
        print((f"{note}\n" if note else "") + f"{what}\n{format_evaluation(result)}")
    return 0



def _evaluate_shapes(args, fail) -> int:
    """The coloured shapes' exact metrics (:mod:`ganlib.shapes`) for ``ganlib evaluate --dataset shapes``."""
    from ganlib import shapes
    from ganlib.metrics import generate

    try:
        if args.checkpoint:
            G, latent_dim, step = _generator_from_checkpoint(args.checkpoint, args.ema, dataset="shapes")
            n = args.n or 10_000
            fake = generate(G, n, latent_dim, device=args.device, seed=args.seed)
            what = f"{n} samples of {args.checkpoint} (step {step})"
        else:
            path = Path(args.samples)
            if not path.is_file():
                return fail(f"no such file: {path}")
            try:
                fake = np.load(path, allow_pickle=False)
            except Exception as exc:  # not an .npy file, truncated, or pickled objects
                return fail(f"{path} is not a readable NumPy .npy array ({type(exc).__name__}); save samples with "
                            "np.save(path, x) where x has shape (N, 3, H, H)")
            total = len(fake) if fake.ndim else 0
            if args.n is not None and args.n > total:
                return fail(f"--n {args.n} is larger than the number of samples in {path} ({total})")
            n = args.n or total
            fake = fake[:n]
            what = f"{n} of the {total} samples in {path}"
        if n < 2 or not 1 <= args.k < n:
            return fail(f"FID and precision/recall need at least 2 samples and --k below their number; got {n} "
                        f"samples and --k {args.k}")
        # the samples and, with --no-floor left out, other real shapes, both against make_shapes(n, seed)
        result = _shapes_result(shapes.shape_metrics(fake, k=args.k, seed=args.seed, device=args.device))
        if not args.no_floor:
            real = shapes.make_shapes(n, seed=args.seed + 1, size=int(fake.shape[-1]))[0]
            data = shapes.shape_metrics(real, k=args.k, seed=args.seed, device=args.device)
            result["data"] = {k: data[k] for k in ("modes", "high_quality", "reverse_kl", "fid", "precision", "recall")}
    except (ValueError, TypeError, FileNotFoundError, RuntimeError, OSError) as exc:
        return fail(str(exc))
    result = {"source": args.checkpoint or args.samples, **result}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{what}\n{_format_shapes(result)}")
    return 0


def _shapes_result(metrics: dict) -> dict:
    """:func:`ganlib.shapes.shape_metrics`' result for the command line: counts by mode name, rejections as fractions."""
    from ganlib import shapes

    n = metrics["n"]
    return {"dataset": "shapes", **metrics,
            "counts": {shapes.mode_name(m): int(c) for m, c in enumerate(metrics["counts"])},
            "rejected": {k: v / n for k, v in metrics["rejected"].items()}}


def _format_shapes(r: dict) -> str:
    import math

    missed = [name for name, c in r["counts"].items() if c == 0]
    rejected = ", ".join(f"{k} {100 * v:.1f}%" for k, v in r["rejected"].items())
    d = r.get("data")
    data = (lambda text: f"   ({text})") if d else (lambda text: "")
    lines = [
        "coloured shapes: every sample decoded by fixed rules (ganlib.shapes), so these numbers are exact",
        f"  modes captured   {r['modes']} / {r['num_modes']}" + data(f"real shapes at the same n: {d['modes']}" if d else ""),
        f"  high quality     {100 * r['high_quality']:.1f}%" + data(f"real shapes: {100 * d['high_quality']:.1f}%" if d else ""),
        f"  reverse KL       {r['reverse_kl']:.3f} nats" + data(
            f"real shapes: {d['reverse_kl']:.3f}; a single mode: log {r['num_modes']} = {math.log(r['num_modes']):.3f}"
            if d else ""),
        f"  not decoded      {100 * (1 - r['high_quality']):.1f}%" + (f" ({rejected})" if rejected else ""),
        f"  modes missed     {', '.join(missed) if missed else 'none'}",
        f"estimated on the same {r['n']} samples vs {r['n']} real shapes (features of the shapes classifier; "
        "compare only at the same n)",
        f"  FID              {r['fid']:.2f}" + data(f"real shapes: {d['fid']:.2f}" if d else ""),
        f"  precision        {r['precision']:.3f}" + data(f"real shapes: {d['precision']:.3f}" if d else ""),
        f"  recall           {r['recall']:.3f}" + data(f"real shapes: {d['recall']:.3f}" if d else "")]
    return "\n".join(lines)
