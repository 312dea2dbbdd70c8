"""``cytoviz train``: train a diffusion model on a data set (private CLI module).

Heavy imports (torch, diffusers, accelerate) happen inside the library functions, so that
``cytoviz --help`` stays fast. The training flags default to ``None``: the value of
``TrainConfig.tiny()`` or ``TrainConfig.sd15()``, so the config is the one source of defaults.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from cytoviz._io import writable_folder
from cytoviz._threads import add_threads_option
from cytoviz.augment import AugmentConfig
from cytoviz.data import SINGLE, CellDataset, resolve
from cytoviz.data._cli import add_loader_options, apply_cell_scale, loader_options
from cytoviz.diffusion.model import DiffusionModel, ModelConfig
from cytoviz.diffusion.train import TrainConfig, train

__all__ = ["register"]

#: The defaults shown in the help (read from the configs).
_TINY, _SD15 = TrainConfig.tiny(), TrainConfig.sd15()
#: Side of the images read from folders for the sd15 preset (the paper's 360 px).
SD15_IMAGE_SIZE = 360

#: TrainConfig fields set by a flag of the same name (``None``: the preset's default).
_CONFIG_FLAGS = ("steps", "vae_steps", "batch_size", "vae_batch_size", "lr", "warmup_steps",
                 "lr_schedule", "ema_decay", "seed", "mixed_precision", "checkpoint_every",
                 "val_every", "val_accuracy_images", "max_minutes")


def _default(name: str) -> str:
    """``"tiny X, sd15 Y"`` (or ``"X"`` when they agree): a TrainConfig field's defaults."""
    tiny, sd15 = getattr(_TINY, name), getattr(_SD15, name)
    return f"{tiny:g}" if tiny == sd15 else f"tiny {tiny:g}, sd15 {sd15:g}"

_EPILOG = """\
examples:
  cytoviz train --data synthetic --out runs/demo --steps 200 --vae-steps 100
  cytoviz train --data cells.npz --val val.npz --out runs/cells
  cytoviz train --data path/to/folder --out runs/sd --preset sd15 --sd15-path ~/sd-v1-5
  accelerate launch -m cytoviz.diffusion.train --data cells.npz --out runs/gpu \\
      --preset sd15 --sd15-path ~/sd-v1-5 --mixed-precision fp16

The run folder gets checkpoints/ (resumable: running the same command again continues where it
stopped), history.json (losses, validation) and, at the end, model/ (load it with
cytoviz.diffusion.DiffusionModel.from_pretrained).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    p = subparsers.add_parser(
        "train",
        help="train a class-conditional latent diffusion model (the classifier)",
        description="Train the CytoDiffusion model: for the tiny preset first the VAE, then the "
        "UNet (min-SNR eps loss, EMA, mixup on the conditioning, class dropout, augmentation). "
        "Runs single-process on a CPU, or on several GPUs under `accelerate launch`.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = p.add_argument_group("data")
    data.add_argument("--data", required=True, metavar="DIR|FILE.npz|synthetic",
                      help="training images: an image folder (one subfolder per class), a "
                      "CellDataset .npz, or 'synthetic' for the built-in synthetic smear generator")
    data.add_argument("--val", metavar="DIR|FILE.npz",
                      help="validation images (default: the generator's val split for "
                      "'synthetic', otherwise --val-fraction of --data held out)")
    data.add_argument("--val-fraction", type=float, default=0.1,
                      help="fraction held out for validation when --val is not given (default 0.1; "
                      "0 disables validation)")
    data.add_argument("--synthetic-scale", type=float,
                      help="size multiplier of the synthetic splits (default 1)")
    data.add_argument("--image-size", type=int,
                      help="side length images from a folder are resized to (default "
                      f"{ModelConfig.tiny().image_size} for tiny, {SD15_IMAGE_SIZE} for sd15 as "
                      "in the paper); .npz data keeps its size")
    add_loader_options(data)
    p.add_argument("--out", required=True, metavar="DIR", help="run folder (created if needed)")
    model = p.add_argument_group("model")
    model.add_argument("--preset", choices=("tiny", "sd15"), default="tiny",
                       help="tiny: small VAE + UNet trained from scratch (CPU); sd15: fine-tune a "
                       "local Stable Diffusion 1.5 UNet with its VAE frozen (default tiny)")
    model.add_argument("--input-crop", type=int, metavar="PX",
                       help="the model sees only the centre PX x PX pixels of each image "
                       "(ModelConfig.input_crop; not in METHOD.md; the shipped default model "
                       "uses 32 of 64); default: the whole image")
    model.add_argument("--vae-channels", metavar="C1,C2,...",
                       help="tiny preset: block_out_channels of the VAE, one per level; the "
                       "latent is (crop or image size) / 2**(levels - 1) wide (default 32,64,64)")
    model.add_argument("--class-embedding", action="store_true",
                       help="tiny preset: also feed the one-hot label into the UNet's timestep "
                       "embedding (ModelConfig.class_embedding; not in METHOD.md)")
    model.add_argument("--sd15-path", metavar="DIR",
                       help="local diffusers folder of Stable Diffusion 1.5 (unet/, vae/, "
                       "scheduler/); required with --preset sd15, nothing is downloaded")
    hp = p.add_argument_group("training (defaults: TrainConfig.tiny() / TrainConfig.sd15())")
    hp.add_argument("--steps", type=int, help=f"UNet optimiser steps ({_default('steps')})")
    hp.add_argument("--vae-steps", type=int,
                    help=f"VAE steps before the UNet (tiny preset only; {_TINY.vae_steps})")
    hp.add_argument("--batch-size", type=int,
                    help=f"images per step and per process ({_default('batch_size')})")
    hp.add_argument("--vae-batch-size", type=int,
                    help=f"images per VAE step (tiny preset only; {_TINY.vae_batch_size})")
    hp.add_argument("--lr", type=float, help=f"peak UNet learning rate ({_default('lr')})")
    hp.add_argument("--warmup-steps", type=int,
                    help=f"linear learning-rate warm-up steps ({_default('warmup_steps')})")
    hp.add_argument("--lr-schedule", choices=("constant", "cosine"),
                    help="UNet learning rate after the warm-up: constant (the paper's) or a "
                         f"cosine decay to 0 at the last step (default {_TINY.lr_schedule})")
    hp.add_argument("--ema-decay", type=float,
                    help=f"EMA decay of the UNet weights ({_default('ema_decay')})")
    hp.add_argument("--no-augment", action="store_true", help="switch augmentations off")
    hp.add_argument("--randaugment", action="store_true", help="add RandAugment to the augmentations")
    hp.add_argument("--zoom", metavar="LO,HI",
                    help="add a random magnification drawn log-uniformly from [LO, HI] (e.g. "
                         "0.8,1.25; not in METHOD.md: robustness to another microscope's "
                         "magnification)")
    hp.add_argument("--seed", type=int,
                    help=f"seed of the model and the run (default {_TINY.seed})")
    hp.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"),
                    help=f"mixed precision on GPUs (default {_TINY.mixed_precision})")
    run = p.add_argument_group("run control")
    run.add_argument("--checkpoint-every", type=int,
                     help=f"steps between checkpoints ({_default('checkpoint_every')})")
    run.add_argument("--val-every", type=int,
                     help=f"UNet steps between validations (0: at the end; {_default('val_every')})")
    run.add_argument("--val-accuracy-images", type=int,
                     help="validation images classified for the validation accuracy (0: skip; "
                          f"{_TINY.val_accuracy_images})")
    run.add_argument("--resume", dest="resume", action="store_true", default=True,
                     help="continue from the newest checkpoint in --out (default)")
    run.add_argument("--no-resume", dest="resume", action="store_false",
                     help="delete old checkpoints in --out and start afresh")
    run.add_argument("--max-minutes", type=float,
                     help="stop after this many minutes (checkpoint + model written); run the "
                     "same command again to continue")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_option(run)
    p.set_defaults(func=_run, interrupt_hint=_interrupt_hint)


def _interrupt_hint(args: argparse.Namespace) -> str:
    """What the interrupt message adds: the same command resumes from the newest checkpoint."""
    return (f"run the same command again to resume from the newest checkpoint in "
            f"{Path(args.out) / 'checkpoints'} (--checkpoint-every sets how often one is "
            "written)")


def _config(args: argparse.Namespace) -> TrainConfig:
    """The preset's TrainConfig with the flags given (the others keep the preset's defaults)."""
    changes: dict[str, object] = {name: getattr(args, name) for name in _CONFIG_FLAGS
                                  if getattr(args, name) is not None}
    if args.no_augment:
        if args.randaugment or args.zoom:
            raise ValueError("--no-augment cannot be combined with --randaugment or --zoom")
        changes["augment"] = None
    elif args.randaugment or args.zoom:
        changes["augment"] = AugmentConfig(randaugment=args.randaugment,
                                           zoom=_parse_zoom(args.zoom))
    if args.preset == "sd15":
        if not args.sd15_path:
            raise ValueError("--preset sd15 needs --sd15-path pointing to a local diffusers folder "
                             "of Stable Diffusion 1.5 (unet/, vae/, scheduler/)")
        if args.class_embedding or args.vae_channels:
            raise ValueError("--class-embedding and --vae-channels are for the tiny preset: a "
                             "pretrained Stable Diffusion 1.5 model keeps its architecture")
        changes.pop("vae_steps", None)
        changes.pop("vae_batch_size", None)
        return TrainConfig.sd15().replace(**changes)
    return TrainConfig.tiny().replace(**changes)


def _datasets(args: argparse.Namespace, image_size: int, seed: int
              ) -> tuple[CellDataset, CellDataset | None]:
    """Training and validation data: --data's train split (or its only data set) and --val,
    --data's val split, or --val-fraction of the training data held out."""
    opts = loader_options(args)
    train_data, sets = _split_or_only(args.data, "train", image_size, args.synthetic_scale, opts)
    train_data = apply_cell_scale(train_data, args, args.data)
    if args.val:
        val = _split_or_only(args.val, "val", image_size, args.synthetic_scale, opts)[0]
        return train_data, apply_cell_scale(val, args, args.val)
    if "val" in sets:
        return train_data, apply_cell_scale(sets["val"], args, args.data)
    if not 0 <= args.val_fraction < 1:
        raise ValueError(f"--val-fraction must lie in [0, 1), got {args.val_fraction}")
    n_val = round(len(train_data) * args.val_fraction)
    if n_val == 0:
        return train_data, None
    perm = np.random.default_rng(seed).permutation(len(train_data))
    return train_data.subset(np.sort(perm[n_val:])), train_data.subset(np.sort(perm[:n_val]))


def _split_or_only(spec: str, split: str, image_size: int, scale: float | None,
                   options: dict[str, object] | None = None
                   ) -> tuple[CellDataset, dict[str, CellDataset]]:
    """The data set ``spec`` holds (or its ``split``), and all that :func:`resolve` read."""
    wanted = list(dict.fromkeys([split, "val"])) if spec == "synthetic" else None
    sets = resolve(spec, splits=wanted, **(options or {}),
                   image_size=image_size, **({} if scale is None else {"scale": scale}))
    for key in (split, SINGLE):
        if key in sets:
            return sets[key], sets
    raise ValueError(f"{spec}: holds the splits {sorted(sets)} but no {split!r} split")


def _run(args: argparse.Namespace) -> int:
    config = _config(args)
    image_size = args.image_size or (
        SD15_IMAGE_SIZE if args.preset == "sd15" else ModelConfig.tiny().image_size)
    writable_folder(args.out)  # before reading or generating the data
    train_data, val_data = _datasets(args, image_size, config.seed)
    if args.preset == "sd15":
        model = DiffusionModel.from_sd15(args.sd15_path, train_data.class_names)
        # The SD UNet is size-agnostic: record the training image size (and crop) in the
        # model config, which checks them against the VAE's downsampling.
        model.config = model.config.replace(image_size=train_data.image_size,
                                            input_crop=args.input_crop)
    else:
        arch: dict[str, object] = {}
        if args.vae_channels:
            try:
                arch["vae_channels"] = tuple(int(c) for c in args.vae_channels.split(","))
            except ValueError:
                raise ValueError(f"--vae-channels must be comma-separated integers such as "
                                 f"32,64, got {args.vae_channels!r}") from None
        model = DiffusionModel.build(
            train_data.class_names,
            ModelConfig.tiny(image_size=train_data.image_size, input_crop=args.input_crop,
                             class_embedding=args.class_embedding, **arch),
            seed=config.seed,
        )
    print(f"cytoviz train: {model}\n  train: {train_data}\n  val: {val_data}", file=sys.stderr)
    out = Path(args.out)
    model = train(model, train_data, val_data, config=config, out_dir=out, resume=args.resume,
                  progress=not args.quiet)
    print(f"cytoviz train: model written to {out / 'model'}", file=sys.stderr)
    return 0


def _parse_zoom(text: str | None) -> tuple[float, float]:
    """``"0.8,1.25"`` -> ``(0.8, 1.25)``; ``None`` -> no zoom."""
    if text is None:
        return (1.0, 1.0)
    parts = text.split(",")
    try:
        lo, hi = (float(v) for v in parts)
    except ValueError:
        raise ValueError(
            f"--zoom expects two numbers LO,HI such as 0.8,1.25, got {text!r}"
        ) from None
    return (lo, hi)
