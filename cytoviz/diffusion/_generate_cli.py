"""``cytoviz generate`` (private CLI module): class-conditional images as PNGs.

Writes ``OUT/<class>/<id>.png`` (each PNG atomically), ``OUT/manifest.csv`` (path, class, seed,
sampler settings), ``OUT/dataset.npz`` (a :class:`~cytoviz.data.CellDataset` with the intended
classes as labels) and ``OUT/generate_config.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]

_EPILOG = """\
examples:
  cytoviz generate --model data/default_model --class eosinophil -n 16 --out runs/gen
  cytoviz generate --model data/default_model --class all -n 8 --steps 20 --scheduler dpm \\
      --out runs/gen_all
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``generate`` subcommand."""
    p = subparsers.add_parser(
        "generate",
        help="generate class-conditional images with classifier-free guidance (PNGs)",
        description="Sample images of one class, several classes or all classes from a trained "
        "model with classifier-free guidance (paper: 50 DDIM steps, guidance 5) and write them "
        "as PNGs in one folder per class, with manifest.csv and dataset.npz.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, metavar="DIR", help="model folder (save_pretrained)")
    p.add_argument("--class", dest="classes", required=True, action="append", metavar="NAME",
                   help="class to generate; repeat for several, or 'all' for every class")
    p.add_argument("-n", "--n-per-class", type=int, default=16, help="images per class (16)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--steps", type=int, default=50, help="denoising steps (50)")
    p.add_argument("--guidance", type=float, default=5.0, help="classifier-free guidance scale (5)")
    p.add_argument("--scheduler", choices=("ddim", "dpm"), default="ddim", help="sampler (ddim)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta (0: deterministic)")
    p.add_argument("--batch-size", type=int, default=16, help="images per batch (16)")
    p.add_argument("--seed", type=int, default=0, help="seed (0); the same seed gives the same images")
    p.add_argument("--device", help="torch device (default: cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing manifest in OUT")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_generate)


def _run_generate(args: argparse.Namespace) -> int:
    from cytoviz.data.synth import write_dataset
    from cytoviz.diffusion.generate import GenerateConfig, generate, resolve_classes
    from cytoviz.diffusion.model import DiffusionModel

    out = Path(args.out)
    if (out / "manifest.csv").exists() and not args.overwrite:
        raise FileExistsError(f"{out / 'manifest.csv'} exists; choose another --out or pass --overwrite")
    config = GenerateConfig(
        num_inference_steps=args.steps, guidance_scale=args.guidance, scheduler=args.scheduler,
        eta=args.eta, batch_size=args.batch_size, seed=args.seed, device=args.device,
    )
    model = DiffusionModel.from_pretrained(args.model)
    classes: list[str] | str = "all" if "all" in args.classes else list(args.classes)
    resolve_classes(model.class_names, classes)  # fail before loading anything heavy
    ds = generate(model, classes, args.n_per_class, config, progress=not args.quiet)
    write_dataset(ds, out, overwrite=args.overwrite)
    config.save(out / "generate_config.json")
    counts = ", ".join(f"{c}: {n}" for c, n in ds.class_counts().items() if n)
    print(f"wrote {len(ds)} images ({counts}) -> {out}")
    return 0
