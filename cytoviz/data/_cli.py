"""``cytoviz data``: generate the synthetic data sets and the real-vs-synthetic preview."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from cytoviz._paths import PBC_ENV, pbc_example_dir
from cytoviz.data._resolve import parse_class_map, resolve_one
from cytoviz.data.panel import save_panel, simulate_panel
from cytoviz.data.scale import SCALE_TOLERANCE
from cytoviz.data.synth import SynthConfig, default_splits, synthesize, write_dataset

# cytoviz.pl (plotly) is imported in the preview handler, so that ``cytoviz --help`` stays fast.

__all__ = ["add_cell_scale_option", "add_loader_options", "apply_cell_scale", "loader_options",
           "register"]

_SYNTH_HELP = """\
Write the default synthetic benchmark to OUT:
  OUT/<split>/<class>/<id>.png, OUT/<split>/manifest.csv, masks.npz, dataset.npz
for the splits train, val, test, test_mild and test_strong, plus OUT/experts.csv (a simulated
six-expert panel labelling the test split; 'image' indexes test/dataset.npz) and
OUT/synth_config.json."""

_PREVIEW_HELP = """\
Write a figure with real and synthetic cells side by side, one row per class (PNG, SVG or PDF
from the suffix of OUT; all three without a suffix). The real cells are shown as a model will
see them: with --cell-scale X (or auto) rescaled exactly as `cytoviz train` and `classify` would
rescale them, so the two blocks should show cells of the same size. The real images come from --real PATH, or
else from $CYTOVIZ_PBC_EXAMPLE; without either the figure shows synthetic cells only, and its
title says so."""


def add_loader_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add ``--class-map``, ``--max-image-pixels`` and ``--allow-outside-root`` to a command
    that reads image folders or manifests (``train``, ``classify``); see :func:`loader_options`."""
    parser.add_argument("--class-map", metavar="FOLDER=CLASS,...|FILE",
                        help="name folders or labels that the aliases do not cover, e.g. "
                        "'Seg=neutrophil,junk=none' (none leaves a folder out), or a .json / "
                        ".csv file of name, class")
    parser.add_argument("--max-image-pixels", type=int, metavar="N",
                        help="decompression-bomb limit per image in pixels (default PIL's, "
                        "about 89 million); raise it for trusted large images")
    parser.add_argument("--allow-outside-root", action="store_true",
                        help="read manifest paths and symlinked files that lie outside the "
                        "data folder (refused by default)")
    add_cell_scale_option(parser)


def add_cell_scale_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add ``--cell-scale X|auto`` (see :mod:`cytoviz.data.scale`)."""
    parser.add_argument("--cell-scale", type=_cell_scale, default=1.0, metavar="X|auto",
                        help="how many times larger the cells appear than the model's "
                        "training cells (e.g. 2 for crops at twice the magnification); the "
                        "images are rescaled to the model's scale. 'auto' estimates it from "
                        "the nucleus size. Default 1, with a warning when the estimate "
                        f"differs by more than {SCALE_TOLERANCE}x")


def _cell_scale(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0.25, 4] or 'auto', got "
                                         f"{text!r}") from None
    if not 0.25 <= value <= 4.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0.25, 4] or 'auto', got {text!r}")
    return value


def loader_options(args: argparse.Namespace) -> dict[str, object]:
    """The ``class_map``, ``contain`` and ``max_image_pixels`` keywords of
    :func:`cytoviz.data.resolve` from the flags of :func:`add_loader_options`."""
    return {
        "class_map": parse_class_map(args.class_map) if args.class_map else None,
        "contain": not args.allow_outside_root,
        "max_image_pixels": args.max_image_pixels,
    }


def apply_cell_scale(data: Any, args: argparse.Namespace, source: object) -> Any:
    """``data`` (a CellDataset or images) at the model's scale, as ``--cell-scale`` asks.

    A number rescales by it; ``auto`` estimates the scale and rescales (printing it); the
    default 1 leaves the images as read and warns (one line on stderr) when their estimated
    scale is off by more than :data:`~cytoviz.data.scale.SCALE_TOLERANCE`. Synthetic data
    is at the model's scale and is never measured.
    """
    from cytoviz.data.scale import check_cell_scale, estimate_cell_scale, rescale_cells

    wanted = getattr(args, "cell_scale", 1.0)
    if str(source) == "synthetic" and wanted == 1.0:
        return data
    if wanted == "auto":
        scale = estimate_cell_scale(data)
        print(f"{source}: estimated cell scale {scale:.2f} (the cells appear {scale:.2f} times "
              "the model's training cells); rescaling to the model's scale")
        return rescale_cells(data, scale)
    if wanted != 1.0:
        return rescale_cells(data, float(wanted))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_cell_scale(data, source=str(source))
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return data


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
    v.add_argument("--real", type=Path, default=None, metavar="PATH",
                   help=f"folder of real images, one sub-folder per class (default: "
                        f"${PBC_ENV}; without either, synthetic cells only)")
    v.add_argument("--n-per-class", type=int, default=4, help="images per class and block")
    v.add_argument("--image-size", type=int, default=64, help="synthetic image size (default 64)")
    v.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_cell_scale_option(v)
    v.set_defaults(func=_run_preview)


def _run_synth(args: argparse.Namespace) -> int:
    kwargs = {"seed": args.seed, "image_size": args.image_size}
    if args.hard_fraction is not None:
        kwargs["hard_fraction"] = args.hard_fraction
    config = SynthConfig(**kwargs)
    out = Path(args.out)
    splits = default_splits(config=config, scale=args.scale)
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


def _run_preview(args: argparse.Namespace) -> int:
    from cytoviz.pl import save_figure
    from cytoviz.pl.data import real_vs_synthetic

    real_dir = args.real if args.real is not None else pbc_example_dir()
    real = None
    if real_dir is not None:
        if not Path(real_dir).exists():
            raise FileNotFoundError(
                f"{real_dir}: no such folder of real images (one sub-folder per class)"
            )
        real = resolve_one(real_dir, image_size=args.image_size).first_per_class(args.n_per_class)
        real = apply_cell_scale(real, args, real_dir)
        print(f"real images: {len(real)} from {real_dir}, shown as the model sees them")
    else:
        print(f"no real images given (pass --real PATH or set {PBC_ENV}); the figure shows "
              "synthetic cells only")
    config = SynthConfig(image_size=args.image_size, seed=args.seed, hard_fraction=0.0)
    synthetic = synthesize(args.n_per_class, config=config)
    fig = real_vs_synthetic(real, synthetic, n_per_class=args.n_per_class)
    out = Path(args.out)
    formats = [out.suffix.lstrip(".")] if out.suffix else ["png", "svg", "pdf"]
    for path in save_figure(fig, out, formats=formats):
        print(f"wrote {path}")
    return 0
