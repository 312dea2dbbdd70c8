"""``cytoviz data``: generate the synthetic data sets and the real-vs-synthetic preview."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cytoviz.data._dataset import CellDataset

__all__ = ["register"]

_SYNTH_HELP = """\
Write the default synthetic benchmark to OUT:
  OUT/<split>/<class>/<id>.png, OUT/<split>/manifest.csv, masks.npz, dataset.npz
for the splits train, val, test, test_mild and test_strong, plus OUT/experts.csv (a simulated
six-expert panel labelling the test split; 'image' indexes test/dataset.npz) and
OUT/synth_config.json."""

_PREVIEW_HELP = """\
Write a figure with real and synthetic cells side by side, one row per class (PNG, SVG or PDF
from the suffix of OUT; all three without a suffix)."""


def _default_real() -> Path | None:
    here = Path(__file__).resolve().parents[2]
    for cand in (Path.cwd().parent / "shared/data/pbc_example", here.parent / "shared/data/pbc_example"):
        if cand.is_dir():
            return cand
    return None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` command and its subcommands."""
    p = subparsers.add_parser(
        "data", help="synthetic smears: generate data sets and previews",
        description="Synthetic peripheral-blood-smear data: the default splits with masks, "
        "blend metadata and a simulated expert panel, and a real-vs-synthetic preview.",
    )
    sub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    s = sub.add_parser(
        "synth", help="write the default synthetic splits and experts.csv",
        description=_SYNTH_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--out", type=Path, required=True, help="destination folder")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--image-size", type=int, default=64, help="image side in pixels (default 64)")
    s.add_argument("--scale", type=float, default=1.0,
                   help="multiplier of the split sizes (default 1: 2,290 training images)")
    s.add_argument("--hard-fraction", type=float, default=None,
                   help="share of blended (ambiguous) images (default 0.18)")
    s.add_argument("--overwrite", action="store_true", help="replace existing splits in OUT")
    s.set_defaults(func=_run_synth)

    v = sub.add_parser(
        "preview", help="write the real-vs-synthetic preview figure",
        description=_PREVIEW_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    v.add_argument("--out", type=Path, required=True, help="figure file (.png, .svg, .pdf)")
    v.add_argument("--real", type=Path, default=None,
                   help="folder of real images, one sub-folder per class (default: "
                        "../shared/data/pbc_example if present, else synthetic only)")
    v.add_argument("--n-per-class", type=int, default=4, help="images per class and block")
    v.add_argument("--image-size", type=int, default=64, help="synthetic image size (default 64)")
    v.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    v.set_defaults(func=_run_preview)


def _run_synth(args: argparse.Namespace) -> int:
    from cytoviz.data.panel import save_panel, simulate_panel
    from cytoviz.data.synth import SynthConfig, default_splits, write_dataset

    kwargs = {"seed": args.seed, "image_size": args.image_size}
    if args.hard_fraction is not None:
        kwargs["hard_fraction"] = args.hard_fraction
    config = SynthConfig(**kwargs)
    out = Path(args.out)
    splits = default_splits(config, scale=args.scale)
    for name, ds in splits.items():
        write_dataset(ds, out / name, overwrite=args.overwrite)
        print(f"{name}: {len(ds)} images -> {out / name}")
    test = splits["test"]
    n_common = min(200, len(test))
    per_expert = max(n_common, len(test) // 2)
    panel = simulate_panel(test, n_common=n_common, per_expert=per_expert, seed=args.seed)
    save_panel(panel, out / "experts.csv")
    config.save(out / "synth_config.json")
    print(f"experts.csv: {len(panel)} labels of {panel['image'].nunique()} test images "
          f"({n_common} common to all experts) -> {out / 'experts.csv'}")
    return 0


def _load_real(folder: Path, n: int, size: int) -> CellDataset:
    import numpy as np
    from PIL import Image

    from cytoviz.classes import CANONICAL_CLASSES, UnknownClassError, normalise_class_name
    from cytoviz.data._dataset import CellDataset

    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of real images (one sub-folder per class)")
    images, labels = [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        try:
            cls = normalise_class_name(sub.name)
        except UnknownClassError:
            continue
        files = sorted(p for p in sub.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg",
                                                                        ".bmp", ".tif", ".tiff"))
        for f in files[:n]:
            img = Image.open(f).convert("RGB").resize((size, size), Image.LANCZOS)
            images.append(np.asarray(img))
            labels.append(CANONICAL_CLASSES.index(cls))
    if not images:
        raise ValueError(
            f"{folder}: found no images in class sub-folders named like {list(CANONICAL_CLASSES)}"
        )
    return CellDataset(np.stack(images), np.asarray(labels), CANONICAL_CLASSES)


def _run_preview(args: argparse.Namespace) -> int:
    from cytoviz.data.synth import SynthConfig, synthesize
    from cytoviz.pl import save_figure
    from cytoviz.pl.data import real_vs_synthetic

    real_dir = args.real if args.real is not None else _default_real()
    real = _load_real(Path(real_dir), args.n_per_class, args.image_size) if real_dir else None
    config = SynthConfig(image_size=args.image_size, seed=args.seed, hard_fraction=0.0)
    synthetic = synthesize(args.n_per_class, config=config)
    fig = real_vs_synthetic(real, synthetic, n_per_class=args.n_per_class)
    out = Path(args.out)
    formats = [out.suffix.lstrip(".")] if out.suffix else ["png", "svg", "pdf"]
    for path in save_figure(fig, out, formats=formats):
        print(f"wrote {path}")
    if real is None:
        print("no real images found (pass --real DIR); the figure shows synthetic cells only")
    return 0
