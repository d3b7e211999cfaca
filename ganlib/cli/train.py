"""``ganlib train``: train a GAN on images from the command line, with the course's one loop (chapter 07)."""

from __future__ import annotations

import os
from pathlib import Path

from ganlib import losses as _losses
from ganlib import recipes as _recipes
from ganlib.checkpoints import CHECKPOINT, build_models, load_checkpoint
from ganlib.cli.common import CLIError, device_name, nonnegative_int, positive, run_cli
from ganlib.train import HISTORY, TrainConfig, resolve_device, train_gan
from ganlib.utils import seed_everything


TRAIN_EXAMPLES = """examples:
  ganlib train --model mlp --data mnist --out runs/mlp --minutes 3
  ganlib train --model mlp --data mnist --out runs/mlp --steps 8000 --resume      # continue the same run
  ganlib train --model dcgan --data mnist --out runs/dcgan --minutes 5     # the default recipe, sn-hinge
  ganlib train --recipe dcgan-guidelines --data mnist --out runs/ch08     # chapter 08's run (5 minutes)
  ganlib train --recipe sn-hinge --data mnist --out runs/sn --betas 0.5 0.999 --steps 3000   # flags win
  ganlib train --model dcgan --data folder --path photos/ --image-size 64 --channels 3 --out runs/photos
  ganlib train --model dcgan --data shapes --out runs/shapes --minutes 10   # 24 modes: ganlib evaluate counts them
  ganlib train --model dcgan --data cifar10 --out runs/cifar10 --epochs 5
  ganlib train --model dcgan --data mnist --loss wgan-gp --out runs/wgan-gp --minutes 10
  ganlib train --model dcgan --data mnist --loss hinge --spectral-norm --conditional --ema 0.999 --lr-d 4e-4 --lr-g 1e-4 --out runs/cond
  ganlib train --model dcgan --data mnist --no-spectral-norm --loss ns --betas 0.5 0.999 --lr-g 2e-4 --lr-d 2e-4 --width 64 --latent-dim 100 --batch-size 128 --out runs/old   # before 2026-12
  ganlib sample --checkpoint runs/mlp/checkpoint.pt --n 64 --out grid.png
  torchrun --nproc-per-node 2 -m ganlib train --distributed --model mlp --data mnist --out runs/ddp --steps 2000

OUT receives checkpoint.pt (models, optimisers, RNG states: --resume continues exactly),
history.jsonl (one JSON line per step) and samples/step_NNNNNN.png (fixed-noise grids).
MNIST (and CIFAR-10's python archive) is read from --path, else $GANLIB_DATA, else the user cache,
else downloaded. The colour data (shapes, cifar10, folder) stay uint8 in memory, 4x smaller than
float32; each batch is scaled to [-1, 1] as it is drawn. --data shapes is 50,000 coloured shapes
drawn from --seed (ganlib.shapes), no download.
--model dcgan defaults to the recipe sn-hinge (spectrally normalised D, hinge loss, width 16, z in R^64,
batch 64, Adam(1e-3, betas (0, 0.9))): measured best per CPU-minute on MNIST (README, "Training defaults").
--recipe NAME (""" + ", ".join(_recipes.names()) + """) fills the model, sizes, loss, learning rates,
betas, batch size and, when no budget is given, the budget of that chapter's run; flags given explicitly win.
With --resume, settings not given on the command line are taken from the checkpoint (which names its recipe)."""


# Built-in defaults of the command line; with --resume the checkpoint's values come first.
# --model mlp: these; --model dcgan: the recipe DEFAULT_DCGAN fills its settings first (README, "Training defaults").
_CLI_DEFAULTS = {"batch_size": 128, "seed": 0, "loss": "nonsaturating", "penalty": None, "penalty_weight": 10.0,
                 "n_critic": 1, "lr_g": 2e-4, "lr_d": 2e-4, "betas": (0.5, 0.999), "checkpoint_every": 500,
                 "sample_every": 500, "ema": None}
_MODEL_DEFAULTS = {"mlp": {"latent_dim": 64, "width": 256}, "dcgan": {"latent_dim": 100, "width": 64}}
_RECIPE_OPTIONS = ("model", "width", "latent_dim", "loss", "spectral_norm", "batch_size", "lr_g", "lr_d", "betas")


def _recipe(name: str) -> str:
    """argparse type of --recipe: a recipe's name, or an error that lists the names."""
    import argparse

    try:
        return _recipes.get(name).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser_train():
    import argparse

    p = argparse.ArgumentParser(prog="ganlib train", usage="ganlib train --model mlp|dcgan --data mnist|shapes|cifar10|folder|synthetic "
                                "--out DIR [--steps N | --epochs E | --minutes M] [options]", description="Train a GAN on images with ganlib's one training loop.",
                                epilog=TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("mlp", "dcgan"), help="fully connected (chapter 07) or DCGAN (chapter 08)")
    p.add_argument("--recipe", type=_recipe, metavar="NAME",
                   help="a chapter's settings as defaults (explicit flags win): " + ", ".join(
                       f"{n} (chapter {_recipes.get(n).chapter})" for n in _recipes.names())
                   + f"; --model dcgan alone means {_recipes.DEFAULT_DCGAN}")
    p.add_argument("--data", choices=("mnist", "shapes", "cifar10", "folder", "synthetic"), help="the real images")
    p.add_argument("--path", help="folder of images (--data folder), or of the MNIST files or the CIFAR-10 archive")
    p.add_argument("--out", required=True, help="output folder")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive(int), help="total generator steps (default 1000)")
    budget.add_argument("--epochs", type=positive(float), help="passes over the data (fractions allowed)")
    budget.add_argument("--minutes", type=positive(float), help="wall-clock budget of this run (fractions allowed)")
    p.add_argument("--batch-size", type=positive(int), help="default 128 (mlp), 64 (dcgan)")
    p.add_argument("--seed", type=nonnegative_int, help="default 0")
    p.add_argument("--device", default="auto", type=device_name, help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--resume", action="store_true", help="continue OUT/checkpoint.pt")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an OUT that holds a checkpoint")
    p.add_argument("--loss", choices=sorted(_losses.LOSSES) + ["ns", "wgan-gp"],
                   help="default nonsaturating (ns) for mlp, hinge for dcgan; wgan-gp is wasserstein with --penalty "
                   "gp, and unless given: --n-critic 5, --lr-g/--lr-d 1e-4, --betas 0 0.9, --norm layer, no spectral norm")
    p.add_argument("--penalty", choices=("gp", "r1"), help="WGAN-GP or R1 gradient penalty")
    p.add_argument("--penalty-weight", type=positive(float), help="lambda or gamma (default 10)")
    p.add_argument("--n-critic", type=positive(int), help="D steps per G step (default 1)")
    p.add_argument("--lr-g", type=positive(float), help="default 2e-4 (mlp), 1e-3 (dcgan)")
    p.add_argument("--lr-d", type=positive(float), help="default 2e-4 (mlp), 1e-3 (dcgan)")
    p.add_argument("--betas", type=_beta, nargs=2, metavar=("B1", "B2"),
                   help="Adam's betas for both networks, each in [0, 1): default 0.5 0.999 (mlp), 0 0.9 (dcgan)")
    p.add_argument("--image-size", type=int, choices=(28, 32, 64), help="default 28 (32 for shapes and cifar10)")
    p.add_argument("--channels", type=int, choices=(1, 3), help="default 1 (3 for folder, shapes and cifar10)")
    p.add_argument("--latent-dim", type=positive(int), help="default 64")
    p.add_argument("--width", type=positive(int), help="hidden width: default 256 (mlp) or 16 (dcgan: ngf = ndf)")
    p.add_argument("--checkpoint-every", type=positive(int), help="steps between checkpoints (default 500)")
    p.add_argument("--sample-every", type=positive(int), help="steps between sample grids (default 500)")
    p.add_argument("--amp", nargs="?", const="bf16", choices=("bf16", "fp16"),
                   help="mixed precision: bf16 (default when given; CPU or CUDA) or fp16 (CUDA)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory layout")
    p.add_argument("--compile", action="store_true", help="torch.compile the models (eager fallback)")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="capture the D and G steps in CUDA graphs and replay them (CUDA; eager fallback, with the reason)")
    p.add_argument("--sync-every", type=positive(int),
                   help="steps between reads of the statistics from the device (default 1 on CPU, 50 on CUDA)")
    p.add_argument("--log-every", type=positive(int),
                   help="steps between gradient-norm entries of the history (default 1 on CPU, 10 on CUDA)")
    p.add_argument("--ema", type=float, help="keep an EMA of G's weights with this decay, e.g. 0.999")
    p.add_argument("--distributed", action="store_true", help="data-parallel over the processes torchrun starts: "
                   "torchrun --nproc-per-node 2 -m ganlib train --distributed ... (--batch-size is the global batch)")
    p.add_argument("--sync-batchnorm", action="store_true", help="with --distributed on GPUs: SyncBatchNorm")
    p.add_argument("--spectral-norm", action=argparse.BooleanOptionalAction, default=None,
                   help="spectrally normalise D's layers (dcgan; D then has no BatchNorm unless --norm batch); "
                   "default on for dcgan (recipe sn-hinge), --no-spectral-norm for a BatchNorm D")
    p.add_argument("--norm", choices=("batch", "layer", "instance", "none"),
                   help="D's normalisation (dcgan): default batch, none with --spectral-norm, layer with wgan-gp")
    p.add_argument("--conditional", action="store_true", default=None,
                   help="class-conditional G(z, y) and projection D(x, y) (dcgan on mnist, shapes, cifar10 or "
                   "synthetic)")
    return p


def _beta(text: str) -> float:
    """argparse type of one of Adam's betas: a number in [0, 1)."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a beta is a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"a beta is a number in [0, 1), got {text!r} (Adam's usual ones: 0.5 0.999 "
                                         "or 0 0.9)")
    return value


SHAPES_IMAGES = 50_000  # --data shapes: as many as CIFAR-10's training set
_NUM_CLASSES = {"shapes": 24}  # --conditional: classes per dataset (10 otherwise)


def _load_images(meta: dict):
    from ganlib import images

    kind, size, channels, path = meta["data"], meta["image_size"], meta["channels"], meta.get("path")
    if kind == "mnist":
        if channels != 1:
            raise CLIError("MNIST digits are grey: use --channels 1")
        return images.mnist_images("train", root=path, size=size)
    if kind in ("shapes", "cifar10") and channels != 3:
        raise CLIError(f"{'the shapes are' if kind == 'shapes' else 'CIFAR-10 is'} in colour: use --channels 3")
    if kind == "shapes":  # uint8, like cifar10 and folder: Batches(scale=True) scales each batch
        from ganlib.shapes import make_shapes

        return make_shapes(SHAPES_IMAGES, seed=meta["seed"], size=size)
    if kind == "cifar10":
        if size not in (32, 64):
            raise CLIError(f"CIFAR-10's images are 32x32: use --image-size 32 (or 64), not {size}")
        x, y = images.load_cifar10("train", root=path)
        return (x if size == 32 else images._resize_uint8(x, size)), y
    if kind == "folder":
        return images.image_folder(path, size=size, channels=channels, scaled=False), None
    return images.synthetic_images(2048, size=size, channels=channels, seed=meta["seed"])


def _check_resume(ckpt: dict, path: Path, config: TrainConfig, meta: dict, G, D, batches) -> None:
    """Raise what ``train_gan(..., resume=True)`` would raise for this checkpoint, before anything is announced.

    The same checks in the same order: config, latent size, architectures and optimisers
    (``ganlib.checkpoints._check_compatible``), then the data's position (``Batches.load_state_dict``,
    which train_gan repeats: loading a state twice is loading it once).
    """
    import torch

    from ganlib.checkpoints import _check_compatible

    opt_G = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=config.betas)  # train_gan's default optimisers
    opt_D = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=config.betas)
    _check_compatible(ckpt, path, config, meta["latent_dim"], G, D, opt_G, opt_D)
    if ckpt["rng"].get("data") is not None:
        batches.load_state_dict(ckpt["rng"]["data"])


def _train_body(args, parser) -> int:
    out = Path(args.out)
    ckpt = None
    if args.resume:
        if not (out / CHECKPOINT).is_file():
            raise CLIError(f"--resume: there is no checkpoint in {out} (expected {out / CHECKPOINT})")
        ckpt = load_checkpoint(out / CHECKPOINT)
        if not ckpt["meta"].get("model"):
            raise CLIError(f"{out / CHECKPOINT} was not written by ganlib train; resume it from Python with "
                            "train_gan(..., resume=path)")
    elif (out / CHECKPOINT).exists() and not args.overwrite:  # train_gan would refuse too: say so before any work
        raise CLIError(f"{out} already holds a checkpoint: continue that run with --resume, start afresh with "
                        "--overwrite (it replaces the checkpoint and history), or choose another --out")
    old_meta, old_cfg = (ckpt["meta"], ckpt["config"]) if ckpt else ({}, {})
    recipe_name = args.recipe or old_meta.get("recipe")
    if recipe_name is None and not ckpt and args.model == "dcgan":
        recipe_name = _recipes.DEFAULT_DCGAN
    recipe = _recipes.get(recipe_name).options() if recipe_name else {}
    if args.recipe and args.model and args.model != recipe["model"]:
        parser.error(f"--recipe {args.recipe} trains --model {recipe['model']}, not --model {args.model}: "
                     "leave --model out, or choose a recipe of that model")
    if ckpt and args.recipe and args.recipe != old_meta.get("recipe"):
        raise CLIError(f"--resume: {out / CHECKPOINT} was trained with recipe {old_meta.get('recipe')!r}, not "
                       f"{args.recipe!r}: leave --recipe out to continue it, or start a new run")

    def pick(name, fallback=None):  # the command line, the checkpoint, the recipe, then the default
        v = getattr(args, name, None)
        if v is not None:
            return v
        if name in old_meta:
            return old_meta[name]
        if name in old_cfg:
            return old_cfg[name]
        if name in recipe and name in _RECIPE_OPTIONS:
            return recipe[name]
        return _CLI_DEFAULTS.get(name, fallback)

    model, kind = pick("model"), pick("data")
    if model is None or kind is None:
        parser.error("--model (or --recipe) and --data are required (unless --resume finds them in the checkpoint)")
    if args.loss == "wgan-gp":  # Gulrajani et al. (2017): lambda 10, 5 critic steps, Adam(1e-4, (0, 0.9))
        args.loss = "wasserstein"
        for name, value in (("penalty", "gp"), ("n_critic", 5), ("lr_g", 1e-4), ("lr_d", 1e-4), ("norm", "layer"),
                            ("betas", (0.0, 0.9)), ("spectral_norm", False)):
            if getattr(args, name) is None:
                setattr(args, name, value)
    elif args.loss == "ns":
        args.loss = "nonsaturating"
    chapter10 = {"spectral_norm": bool(pick("spectral_norm", False)), "norm": pick("norm"),
                 "num_classes": _NUM_CLASSES.get(kind, 10) if args.conditional else old_meta.get("num_classes")}
    if model != "dcgan" and (chapter10["spectral_norm"] or chapter10["norm"] or chapter10["num_classes"]):
        parser.error("--spectral-norm, --norm and --conditional are options of --model dcgan")
    if chapter10["num_classes"] and kind == "folder":
        parser.error("--conditional needs labelled images: --data mnist, shapes, cifar10 or synthetic")
    path = pick("path")
    if kind == "folder" and not path:
        parser.error("--data folder needs --path DIR, the folder of images")
    meta = {"model": model, "data": kind, "path": path,
            "image_size": pick("image_size", 32 if kind in ("shapes", "cifar10") else 28),
            "channels": pick("channels", 3 if kind in ("folder", "shapes", "cifar10") else 1),
            "latent_dim": pick("latent_dim", _MODEL_DEFAULTS[model]["latent_dim"]),
            "width": pick("width", _MODEL_DEFAULTS[model]["width"]), "seed": pick("seed"), **chapter10}
    meta["recipe"] = recipe_name
    if args.steps is None and args.epochs is None and args.minutes is None:  # no budget given
        steps, epochs, minutes = ((old_cfg["steps"], old_cfg["epochs"], old_cfg["minutes"]) if ckpt
                                  else (recipe["steps"], None, recipe["minutes"]) if args.recipe
                                  else (1000, None, None))
    else:
        steps, epochs, minutes = args.steps, args.epochs, args.minutes
    device = resolve_device(args.device)  # before loading data: a missing GPU is reported at once
    rank, world = 0, 1
    if args.distributed:  # join torchrun's process group first: a missing torchrun is reported at once
        from ganlib import distributed as _dist

        if "WORLD_SIZE" not in os.environ:
            raise CLIError("--distributed runs in the processes that torchrun starts; on one machine with 2 "
                            "processes: "
                            + _dist.torchrun_command(["--model", model, "--data", kind, "--out", str(out), "..."]))
        rank, world, device = _dist.setup(pick("batch_size"), device)
    elif args.sync_batchnorm:
        parser.error("--sync-batchnorm needs --distributed")
    config = TrainConfig(steps=steps, epochs=epochs, minutes=minutes, batch_size=pick("batch_size"),
                         n_critic=pick("n_critic"), loss=pick("loss"), penalty=pick("penalty"),
                         penalty_weight=pick("penalty_weight"), lr_g=pick("lr_g"), lr_d=pick("lr_d"), betas=tuple(pick("betas")),
                         device=str(device), seed=meta["seed"], out=out, checkpoint_every=pick("checkpoint_every"),
                         sample_every=pick("sample_every"), amp=args.amp, channels_last=args.channels_last,
                         compile=args.compile, cuda_graphs=args.cuda_graphs, sync_every=args.sync_every,
                         log_every=args.log_every, ema=pick("ema"), num_classes=meta["num_classes"],
                         distributed=args.distributed, sync_batchnorm=args.sync_batchnorm)
    seed_everything(config.seed, torch=True)
    G, D = build_models(meta)
    from ganlib.images import Batches

    x, y = _load_images(meta)
    batches = Batches(x, config.batch_size, labels=y if config.num_classes else None, seed=config.seed,
                      device=device, rank=rank, world_size=world,
                      scale=not x.is_floating_point())  # the whole dataset on the device; uint8 scaled per batch
    # status on stdout (errors go to stderr): a notebook shows it as ordinary output
    say = (lambda *a: print(*a, flush=True)) if rank == 0 else (lambda *a: None)  # only rank 0 talks
    try:
        if ckpt is not None:  # every check of train_gan's resume, before announcing it
            _check_resume(ckpt, out / CHECKPOINT, config, meta, G, D, batches)
        say(f"ganlib train: {model} on {kind} ({x.shape[0]} images of {tuple(x.shape[1:])}), device {device}, "
            f"{'resuming at step ' + str(ckpt['step']) if ckpt else 'new run'} -> {out}"
            + (f", {world} processes of {config.batch_size // world} images per step" if args.distributed else ""))
        history = train_gan(G, D, batches, config, resume=bool(ckpt), overwrite=args.overwrite, meta=meta)
    finally:
        if args.distributed:
            _dist.teardown()
    last = history[-1] if len(history) else {"step": 0}
    say(f"ganlib train: done at step {last['step']}; checkpoint {out / CHECKPOINT}, history {out / HISTORY}, "
        f"samples {out / 'samples'}")
    return 0


def main(argv: list[str]) -> int:
    """``ganlib train ...`` (see ``ganlib train --help``); returns the exit code.

    0: trained; 1: a problem with the data, device, checkpoint or training (one ``error:`` line
    on stderr); 2: bad arguments (the usage line and one ``error:`` line); 130: Ctrl-C, after
    saving the checkpoint.

    Examples
    --------
    >>> main(["--model", "gan", "--data", "mnist", "--out", "runs/x"])   # 'gan' is no model
    2
    """
    return run_cli("train", _parser_train(), _train_body, argv)
