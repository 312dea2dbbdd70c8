"""``cytoviz generate`` (private CLI module): class-conditional images as PNGs.

Writes ``OUT/<class>/<id>.png`` (each PNG atomically), ``OUT/manifest.csv`` (path, class, seed,
sampler settings), ``OUT/dataset.npz`` (a :class:`~cytoviz.data.CellDataset` with the intended
classes as labels) and ``OUT/generate_config.json``. The sampler flags default to ``None``: the
value of :class:`~cytoviz.diffusion.GenerateConfig`, the one source of defaults.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cytoviz._paths import model_dir
from cytoviz._threads import add_threads_option
from cytoviz.data import write_dataset
from cytoviz.diffusion.generate import SCHEDULERS, GenerateConfig, generate, resolve_classes
from cytoviz.diffusion.model import DiffusionModel

__all__ = ["register"]

#: The defaults shown in the help.
_DEFAULT = GenerateConfig()

#: GenerateConfig fields set by a flag (``None``: the config's default).
_CONFIG_FLAGS = {"steps": "num_inference_steps", "guidance": "guidance_scale",
                 "scheduler": "scheduler", "eta": "eta", "batch_size": "batch_size",
                 "seed": "seed", "device": "device"}

_EPILOG = """\
examples:
  cytoviz generate --model default --class eosinophil -n 16 --out runs/gen
  cytoviz generate --model default --class all -n 8 --steps 20 --scheduler dpm \\
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
    p.add_argument("--model", required=True, metavar="DIR", type=model_dir,
                   help="model folder (save_pretrained), or 'default' for the shipped model")
    p.add_argument("--class", dest="classes", required=True, action="append", metavar="NAME",
                   help="class to generate; repeat for several, or 'all' for every class")
    d = _DEFAULT
    p.add_argument("-n", "--n-per-class", type=int, default=16,
                   help="images per class (default 16)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--steps", type=int, help=f"denoising steps (default {d.num_inference_steps})")
    p.add_argument("--guidance", type=float,
                   help=f"classifier-free guidance scale (default {d.guidance_scale:g})")
    p.add_argument("--scheduler", choices=SCHEDULERS, help=f"sampler (default {d.scheduler})")
    p.add_argument("--eta", type=float, help=f"DDIM eta (default {d.eta:g}: deterministic)")
    p.add_argument("--batch-size", type=int, help=f"images per batch (default {d.batch_size})")
    p.add_argument("--seed", type=int,
                   help=f"seed (default {d.seed}); the same seed gives the same images")
    p.add_argument("--device", help="torch device (default: cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing manifest in OUT")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_option(p)
    p.set_defaults(func=_run_generate)


def _run_generate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if (out / "manifest.csv").exists() and not args.overwrite:
        raise FileExistsError(f"{out / 'manifest.csv'} exists; choose another --out or pass --overwrite")
    config = GenerateConfig().replace(**{field: getattr(args, flag)
                                         for flag, field in _CONFIG_FLAGS.items()
                                         if getattr(args, flag) is not None})
    model = DiffusionModel.from_pretrained(args.model)
    classes: list[str] | str = "all" if "all" in args.classes else list(args.classes)
    resolve_classes(model.class_names, classes)  # fail before loading anything heavy
    ds = generate(model, classes, args.n_per_class, config=config, progress=not args.quiet)
    write_dataset(ds, out, overwrite=args.overwrite)
    config.save(out / "generate_config.json")
    counts = ", ".join(f"{c}: {n}" for c, n in ds.class_counts().items() if n)
    print(f"wrote {len(ds)} images ({counts}) -> {out}")
    return 0
