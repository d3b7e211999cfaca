"""``ganlib sample``: draw samples or an image grid from a checkpoint of ``ganlib train`` (chapter 07)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ganlib.checkpoints import build_models, load_checkpoint
from ganlib.cli.common import CLIError, device_name, nonnegative_int, positive, run_cli
from ganlib.train import class_rows, resolve_device

SAMPLE_EXAMPLES = """examples:
  ganlib sample --checkpoint runs/mlp/checkpoint.pt --n 64 --out grid.png      # 8 x 8 digits, each 4x enlarged
  ganlib sample --checkpoint runs/dcgan/checkpoint.pt --n 1000 --out samples.npy   # float32 (N, C, H, W) in [-1, 1]
  ganlib sample --checkpoint runs/cond/checkpoint.pt --n 16 --label 3 --out threes.png   # a conditional model"""


READABLE_PX = 112  # a grid's images are enlarged to at least this size by default: 28 px digits 4x


def readable_scale(size: int) -> int:
    """The default ``--scale``: the smallest whole factor that shows a ``size``-pixel image at >= 112 px.

    Examples
    --------
    >>> readable_scale(28), readable_scale(32), readable_scale(64), readable_scale(256)
    (4, 4, 2, 1)
    """
    return max(1, -(-READABLE_PX // int(size)))


def _parser_sample():
    import argparse

    p = argparse.ArgumentParser(prog="ganlib sample", usage="ganlib sample --checkpoint FILE --out grid.png|samples.npy "
                                "[--n 64] [options]", description="Draw samples from a trained generator.",
                                epilog=SAMPLE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by ganlib train")
    p.add_argument("--n", type=positive(int), default=64, help="how many samples (default 64)")
    p.add_argument("--out", required=True, help="grid.png (an image grid) or samples.npy (float32 N x C x H x W)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the latent noise (default 0)")
    p.add_argument("--device", default="auto", type=device_name, help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--ema", action="store_true", help="use the EMA generator (runs trained with --ema)")
    p.add_argument("--nrow", type=positive(int), help="images per row of the grid (default: a square; "
                   "one row per class for a conditional model)")
    p.add_argument("--scale", type=positive(int), help="grid.png: pixels per image pixel, nearest-neighbour "
                   f"(default: enough for images of at least {READABLE_PX} px, e.g. 4 for 28 px digits)")
    p.add_argument("--label", type=nonnegative_int, help="conditional models: draw every sample of this class "
                   "(default: the classes in turn, one row each)")
    return p


def _sample_body(args, parser) -> int:
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".npy"):
        parser.error(f"--out must end in .png (an image grid) or .npy (an array), got {args.out!r}")
    if args.scale is not None and out.suffix.lower() == ".npy":
        parser.error("--scale enlarges a .png grid; a .npy file holds the samples at their own size")
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.checkpoint)
    meta = ckpt["meta"]
    if not meta.get("model"):
        raise CLIError(f"{args.checkpoint} was written by train_gan from Python with your own models; "
                        "load it with ganlib.train.load_checkpoint and call your generator")
    state = ckpt["models"]["G_ema"] if args.ema else ckpt["models"]["G"]
    if state is None:
        raise CLIError(f"{args.checkpoint} holds no EMA generator: it was trained without --ema")
    k = meta.get("num_classes")
    if args.label is not None and not k:
        raise CLIError(f"--label needs a conditional model; {args.checkpoint} was trained without --conditional")
    if args.label is not None and args.label >= k:
        raise CLIError(f"--label must be a class in 0..{k - 1}, got {args.label}")
    G, _ = build_models(meta)
    G.load_state_dict(state)
    G.to(device).eval()
    z = torch.randn(args.n, ckpt["latent_dim"], generator=torch.Generator().manual_seed(args.seed)).to(device)
    y = [None] * len(z.split(1024))
    if k:  # one class (--label), or the classes in turn, one row each
        per_row = -(-args.n // k)
        labels = (torch.full((args.n,), args.label) if args.label is not None
                  else class_rows(k, per_row)[0][0][:args.n])
        y = labels.to(device).split(1024)
        args.nrow = args.nrow or (per_row if args.label is None else None)
    with torch.no_grad():
        x = torch.cat([G(zb, yb).float().cpu() if k else G(zb).float().cpu()
                       for zb, yb in zip(z.split(1024), y)]).clamp_(-1, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    what = ""
    if out.suffix.lower() == ".npy":
        np.save(out, x.numpy().astype(np.float32))
    else:
        from PIL import Image

        from ganlib.plot import save_image_grid

        scale = args.scale or readable_scale(max(x.shape[2:]))
        save_image_grid(x, out, nrow=args.nrow, scale=scale)
        with Image.open(out) as im:
            what = f" ({im.width} x {im.height} px, each pixel shown as {scale} x {scale})"
    print(f"ganlib sample: {args.n} samples of shape {tuple(x.shape[1:])} from step {ckpt['step']} -> {out}{what}")
    return 0


def main(argv: list[str]) -> int:
    """``ganlib sample ...`` (see ``ganlib sample --help``); returns the exit code (0, 1 or 2 as ``ganlib train``).

    Examples
    --------
    >>> main(["--checkpoint", "runs/none/checkpoint.pt", "--out", "grid.jpg"])   # .png or .npy only
    2
    """
    return run_cli("sample", _parser_sample(), _sample_body, argv)
