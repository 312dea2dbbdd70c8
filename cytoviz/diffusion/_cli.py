"""``cytoviz train``: train a diffusion model on a data set (private CLI module).

Heavy imports (torch, diffusers, accelerate) happen inside the handler so that ``cytoviz --help``
stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cytoviz.data import CellDataset

__all__ = ["register"]

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
    data.add_argument("--synthetic-scale", type=float, default=1.0,
                      help="size multiplier of the synthetic splits (default 1.0)")
    data.add_argument("--image-size", type=int,
                      help="side length images from a folder are resized to (default 64 for "
                      "tiny, 360 for sd15 as in the paper); .npz data keeps its size")
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
    hp.add_argument("--steps", type=int, help="UNet optimiser steps")
    hp.add_argument("--vae-steps", type=int, help="VAE steps before the UNet (tiny preset only)")
    hp.add_argument("--batch-size", type=int, help="images per step and per process")
    hp.add_argument("--vae-batch-size", type=int, help="images per VAE step (tiny preset only)")
    hp.add_argument("--lr", type=float, help="peak UNet learning rate")
    hp.add_argument("--warmup-steps", type=int, help="linear learning-rate warm-up steps")
    hp.add_argument("--lr-schedule", choices=("constant", "cosine"),
                    help="UNet learning rate after the warm-up: constant (the paper's) or a "
                         "cosine decay to 0 at the last step")
    hp.add_argument("--ema-decay", type=float, help="EMA decay of the UNet weights")
    hp.add_argument("--no-augment", action="store_true", help="switch augmentations off")
    hp.add_argument("--randaugment", action="store_true", help="add RandAugment to the augmentations")
    hp.add_argument("--zoom", metavar="LO,HI",
                    help="add a random magnification drawn log-uniformly from [LO, HI] (e.g. "
                         "0.8,1.25; not in METHOD.md: robustness to another microscope's "
                         "magnification)")
    hp.add_argument("--seed", type=int, default=0, help="seed of the model and the run (default 0)")
    hp.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no",
                    help="mixed precision on GPUs (default no)")
    run = p.add_argument_group("run control")
    run.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    run.add_argument("--val-every", type=int, help="UNet steps between validations (0: at the end)")
    run.add_argument("--val-accuracy-images", type=int,
                     help="validation images classified for the validation accuracy (0: skip)")
    run.add_argument("--resume", dest="resume", action="store_true", default=True,
                     help="continue from the newest checkpoint in --out (default)")
    run.add_argument("--no-resume", dest="resume", action="store_false",
                     help="delete old checkpoints in --out and start afresh")
    run.add_argument("--max-minutes", type=float,
                     help="stop after this many minutes (checkpoint + model written); run the "
                     "same command again to continue")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _load(spec: str, image_size: int) -> CellDataset:
    from cytoviz.data import CellDataset

    path = Path(spec)
    if path.is_file() and path.suffix == ".npz":
        return CellDataset.load(path)
    if path.is_dir():
        try:
            from cytoviz.data.loaders import load_folder
        except ImportError as exc:
            raise RuntimeError(
                f"{path}: loading image folders needs cytoviz.data.loaders, which is not "
                "available in this installation; save the data as a CellDataset .npz instead"
            ) from exc
        return load_folder(path, image_size=image_size)
    raise FileNotFoundError(
        f"{spec}: not a CellDataset .npz file, an image folder, or 'synthetic'"
    )


def _datasets(args: argparse.Namespace) -> tuple[CellDataset, CellDataset | None]:
    import numpy as np

    if args.data == "synthetic":
        try:
            from cytoviz.data.synth import SynthConfig, default_splits
        except ImportError as exc:
            raise RuntimeError("--data synthetic needs cytoviz.data.synth, which is not "
                               "available in this installation") from exc
        splits = default_splits(SynthConfig(image_size=args.image_size), scale=args.synthetic_scale)
        val = _load(args.val, args.image_size) if args.val else splits["val"]
        return splits["train"], val
    train = _load(args.data, args.image_size)
    if args.val:
        return train, _load(args.val, args.image_size)
    if not 0 <= args.val_fraction < 1:
        raise ValueError(f"--val-fraction must lie in [0, 1), got {args.val_fraction}")
    n_val = round(len(train) * args.val_fraction)
    if n_val == 0:
        return train, None
    perm = np.random.default_rng(args.seed).permutation(len(train))
    return train.subset(np.sort(perm[n_val:])), train.subset(np.sort(perm[:n_val]))


def _run(args: argparse.Namespace) -> int:
    from cytoviz.augment import AugmentConfig
    from cytoviz.diffusion.model import DiffusionModel, ModelConfig
    from cytoviz.diffusion.train import TrainConfig, train

    if args.image_size is None:
        args.image_size = 360 if args.preset == "sd15" else 64
    train_data, val_data = _datasets(args)
    changes = {
        "steps": args.steps, "vae_steps": args.vae_steps, "batch_size": args.batch_size,
        "vae_batch_size": args.vae_batch_size,
        "lr": args.lr, "warmup_steps": args.warmup_steps,
        "lr_schedule": args.lr_schedule, "ema_decay": args.ema_decay,
        "checkpoint_every": args.checkpoint_every, "val_every": args.val_every,
        "val_accuracy_images": args.val_accuracy_images, "max_minutes": args.max_minutes,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    changes["seed"] = args.seed
    changes["mixed_precision"] = args.mixed_precision
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
        config = TrainConfig.sd15(**changes)
        model = DiffusionModel.from_sd15(args.sd15_path, train_data.class_names)
        # The SD UNet is size-agnostic: record the training image size (and crop) in the
        # model config, which checks them against the VAE's downsampling.
        model.config = model.config.replace(image_size=train_data.image_size,
                                            input_crop=args.input_crop)
    else:
        config = TrainConfig.tiny(**changes)
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
            seed=args.seed,
        )
    print(f"cytoviz train: {model}\n  train: {train_data}\n  val: {val_data}", file=sys.stderr)
    out = Path(args.out)
    model = train(model, train_data, val_data, config, out_dir=out, resume=args.resume,
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
