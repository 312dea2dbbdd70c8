"""``cytoviz classify`` and ``cytoviz refit-weighting`` (private CLI module).

``classify`` runs the diffusion classifier on a data set and writes ``predictions.csv`` (one row per
image: true and predicted class, confidence, certainty, trials, per-class scores) and
``result.npz`` (the full :class:`~cytoviz.diffusion.ClassificationResult`, reloadable with
``ClassificationResult.load``) through :func:`~cytoviz.diffusion.classify_to_folder`: the images
are classified in resumable chunks (``--chunk-size``), so a killed run started again with the same
arguments resumes from ``OUT/result.partial/`` and ends with the same result.
``--num-processes N`` shares the chunks out over N worker processes (``--device cuda``: worker k
on ``cuda:k``) with the same result, image by image. A restart with other
settings, another model or other input images is refused, naming what differs, and so is a
folder that holds a finished result, unless ``--overwrite``. The output folder is checked
(writable, not below a file) before the model and the data are read.

``--data`` may hold all of the model's classes or some of them (labels are matched by name), or
no labels at all: a folder of image files without class folders, or a manifest CSV without a
``label`` column. ``predictions.csv`` names each image's file in a ``path`` column when the
files are known.

Every classifier flag defaults to ``None``, meaning the value of :class:`ClassifyConfig` (the
paper's settings), so the config is the one source of defaults.

``refit-weighting`` refits the polynomial timestep weighting (METHOD.md section 1) on a saved
result of a validation set and writes its coefficients as JSON; pass that file back to
``classify --weighting-file``. Classify the validation set with ``--no-pruning`` first so that
every trial has every class.
"""

from __future__ import annotations

import argparse
import csv
import inspect
from pathlib import Path

import numpy as np

from cytoviz._io import load_json, save_json, writable_folder
from cytoviz._paths import model_dir
from cytoviz._threads import add_threads_option
from cytoviz.data import CellDataset, load_images, resolve_one
from cytoviz.data._cli import add_loader_options, apply_cell_scale, loader_options
from cytoviz.data._resolve import SPLIT_NAMES
from cytoviz.data.loaders import IMAGE_EXTENSIONS
from cytoviz.diffusion._eta import estimate_time
from cytoviz.diffusion.classify_config import DECISION_RULES, ENCODE_PRECISIONS, ClassifyConfig
from cytoviz.diffusion.model import DiffusionModel
from cytoviz.diffusion.result import ClassificationResult
from cytoviz.diffusion.resumable import PARTIAL_DIR, check_output_folder, classify_to_folder
from cytoviz.diffusion.weighting import WEIGHTINGS, fit_logistic_weighting, fit_weighting

__all__ = ["register"]

_EPILOG = """\
examples:
  cytoviz classify --model default --data synthetic --split test --out runs/cls
  cytoviz classify --model runs/demo/model --data cells.npz --out runs/cls --max-trials 200
  # killed part-way? the same command again resumes from runs/cls/result.partial/
  # four worker processes (on a 4-GPU node: --device cuda puts worker k on cuda:k):
  cytoviz classify --model M --data cells.npz --out runs/cls --num-processes 4
  # refit the weighting on a validation set, then use it:
  cytoviz classify --model M --data synthetic --split val --no-pruning --max-trials 200 --out runs/val
  cytoviz refit-weighting --result runs/val/result.npz --out runs/val/weighting.json
  cytoviz classify --model M --data synthetic --split test --weighting-file runs/val/weighting.json \\
      --out runs/test
"""

#: The defaults shown in the help: the config's and classify_to_folder's own.
_DEFAULT = ClassifyConfig()
_CHUNK_SIZE = inspect.signature(classify_to_folder).parameters["chunk_size"].default

#: ClassifyConfig fields set by a flag of the same name (``None``: the config's default).
_CONFIG_FLAGS = ("max_trials", "min_trials", "prune_every", "p_threshold", "keep_top", "pruning", "tta",
                 "stochastic_encode",
                 "mask_radius", "encode_precision", "weighting", "keep_error_maps", "batch_size",
                 "seed", "device")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``classify`` and ``refit-weighting`` subcommands."""
    d = _DEFAULT
    p = subparsers.add_parser(
        "classify",
        help="classify images with the diffusion classifier (predictions.csv + result.npz)",
        description="Run the CytoDiffusion decision rule (adaptive trials with paired t-test "
        "pruning, timestep weighting, test-time augmentation) and write predictions.csv and "
        "result.npz to --out.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, metavar="DIR", type=model_dir,
                   help="model folder (save_pretrained), or 'default' for the shipped model")
    p.add_argument("--data", required=True, metavar="DIR|FILE.npz|synthetic",
                   help="a CellDataset .npz, a manifest .csv, a folder holding SPLIT.npz, split "
                   "folders or class folders, or 'synthetic' for the built-in generator's "
                   "splits; it may hold only some of the model's classes. Unlabelled: a folder "
                   "of images without class folders, or a .csv with a path and no label column")
    p.add_argument("--split", type=str.lower, choices=SPLIT_NAMES,
                   help="split to classify when --data holds several (default: test); a folder "
                   "of class folders, an .npz or a manifest has none")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished result in --out (refused otherwise)")
    p.add_argument("--limit", type=int, help="classify only the first N images")
    add_loader_options(p)
    c = p.add_argument_group("classifier (defaults: the paper's, ClassifyConfig())")
    c.add_argument("--max-trials", type=int,
                   help=f"trials per image at most (default {d.max_trials}, the paper's; "
                   "pruning stops most classes far earlier, but expect roughly 20 times the "
                   "time of --max-trials 100 on a CPU)")
    c.add_argument("--rule", choices=list(DECISION_RULES),
                   help="decision rule: 'paper' (the default, METHOD.md) or the opt-in 'fast' "
                        "(a top-k cut after a few trials, then the paper's t-test after every "
                        "trial, at most 100 trials: benchmarks/fast_rule.py measures both); "
                        "--min-trials, --prune-every, --p-threshold, --keep-top and "
                        "--max-trials override it")
    c.add_argument("--min-trials", type=int,
                   help=f"trials before pruning starts (default {d.min_trials})")
    c.add_argument("--prune-every", type=int,
                   help=f"trials between pruning tests (default {d.prune_every})")
    c.add_argument("--p-threshold", type=float,
                   help=f"pruning p threshold (default {d.p_threshold:g})")
    c.add_argument("--keep-top", type=int, nargs="+", metavar="TRIAL K",
                   help="after trial TRIAL keep only the K classes with the lowest mean error; "
                        "more pairs give a schedule of cuts, e.g. 3 5 8 2 (default: no such "
                        "cut, the paper's)")
    c.add_argument("--no-pruning", dest="pruning", action="store_false", default=None,
                   help="every class gets every trial (heatmap runs, weighting refits)")
    c.add_argument("--no-tta", dest="tta", action="store_false", default=None,
                   help="no test-time augmentation")
    c.add_argument("--deterministic-encode", dest="stochastic_encode", action="store_false",
                   default=None, help="use the VAE posterior mean instead of a sample")
    c.add_argument("--mask-radius", type=int, metavar="R",
                   help="radius in latent pixels of the centre disc where errors count (default: "
                        "the paper's 20 of 45 scaled to the latent, 7 for 16 x 16)")
    c.add_argument("--encode-precision", choices=ENCODE_PRECISIONS,
                   help=f"arithmetic of the per-trial VAE encode (default {d.encode_precision}; "
                        "bfloat16 is faster on a CPU with native bfloat16, which auto picks; not "
                        "in METHOD.md, see ClassifyConfig)")
    c.add_argument("--weighting", choices=WEIGHTINGS,
                   help=f"timestep weighting (default {d.weighting})")
    c.add_argument("--weighting-file", metavar="JSON",
                   help="coefficients written by refit-weighting (sets the weighting too)")
    c.add_argument("--no-error-maps", dest="keep_error_maps", action="store_false", default=None,
                   help="do not keep the per-class error maps (smaller result.npz, no heatmaps)")
    c.add_argument("--batch-size", type=int,
                   help=f"(image, class) pairs per UNet pass (default {d.batch_size})")
    p.add_argument("--chunk-size", type=int,
                   help=f"images per resumable chunk (default {_CHUNK_SIZE}): finished chunks are "
                   "kept in OUT/result.partial/ and skipped when a killed run is started again")
    p.add_argument("--num-processes", type=int, metavar="N",
                   help="worker processes on this machine (default 1): the chunks are shared "
                   "out over N processes with cpu_count // N torch threads each, same result; "
                   "with --device cuda worker k runs on cuda:k (modulo the GPU count)")
    c.add_argument("--seed", type=int, help=f"seed (default {d.seed})")
    c.add_argument("--device", help="torch device (default: cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_option(p)
    p.set_defaults(func=_run_classify, interrupt_hint=_interrupt_hint)

    r = subparsers.add_parser(
        "refit-weighting",
        help="refit the polynomial timestep weighting on a saved validation result",
        description="Fit f(s) (the weight is 1/f) to the median over images of the across-class "
        "standard deviation of the error, per timestep (paper, supplement G). The result should "
        "come from `cytoviz classify --no-pruning` on a validation split.",
    )
    r.add_argument("--result", required=True, metavar="RESULT.npz", help="a saved result")
    r.add_argument("--out", required=True, metavar="FILE.json", help="coefficients file to write")
    r.add_argument("--degree", type=int, default=4, help="polynomial degree (default 4)")
    r.add_argument("--logistic", action="store_true",
                   help="fit the 20-bucket logistic-regression weighting instead (needs labels)")
    r.set_defaults(func=_run_refit)


def _config(args: argparse.Namespace) -> ClassifyConfig:
    """The ClassifyConfig of the flags given (the others keep the config's defaults)."""
    changes = {name: getattr(args, name) for name in _CONFIG_FLAGS
               if getattr(args, name) is not None}
    if "keep_top" in changes:
        changes["keep_top"] = tuple(changes["keep_top"])
    if args.weighting_file:
        w = load_json(args.weighting_file)
        changes["weighting"] = w.get("weighting", "polynomial")
        if "poly_coeffs" in w:
            changes["poly_coeffs"] = tuple(w["poly_coeffs"])
        if "bucket_weights" in w:
            changes["bucket_weights"] = tuple(w["bucket_weights"])
    base = ClassifyConfig() if args.rule is None else ClassifyConfig().with_rule(args.rule)
    return base.replace(**changes)


def _interrupt_hint(args: argparse.Namespace) -> str:
    """What the interrupt message adds: the same command resumes."""
    return (f"the finished chunks are kept in {Path(args.out) / PARTIAL_DIR}; run the same "
            "command again to resume")


def _is_unlabelled(spec: str) -> bool:
    """Whether ``--data`` names unlabelled images: a folder that holds image files but no
    subfolders (no class or split folders, no SPLIT.npz), or a CSV with a ``path`` column
    and no ``label`` column."""
    path = Path(spec)
    if path.is_dir():
        entries = [p for p in path.iterdir() if not p.name.startswith((".", "__"))]
        return (not any(p.is_dir() for p in entries)
                and not any(p.suffix.lower() == ".npz" for p in entries)
                and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in entries))
    if path.is_file() and path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh, skipinitialspace=True), [])
        header = [c.strip() for c in header]
        return "path" in header and "label" not in header
    return False


def _read_data(args: argparse.Namespace, model: DiffusionModel
               ) -> tuple[CellDataset | np.ndarray, list[str] | None]:
    """The images of ``--data`` (labelled, in the model's classes, or unlabelled) and their
    files (``None``: the data set's own ``meta["path"]``, if any), cut to ``--limit``."""
    options = loader_options(args)
    if _is_unlabelled(args.data):
        if args.split is not None:
            raise ValueError(f"{args.data}: unlabelled images have no splits; omit --split")
        options.pop("class_map")
        images, paths = load_images(args.data, image_size=model.config.image_size, **options)
        n = len(images) if args.limit is None else min(args.limit, len(images))
        return apply_cell_scale(images[:n], args, args.data), paths[:n]
    data = resolve_one(args.data, args.split, image_size=model.config.image_size,
                       classes=model.class_names, **options)
    if args.limit is not None:
        data = data.subset(np.arange(min(args.limit, len(data))))
    return apply_cell_scale(data, args, args.data), None


def _run_classify(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be positive, got {args.limit}")
    if args.chunk_size is not None and args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be positive, got {args.chunk_size}")
    if args.num_processes is not None and args.num_processes < 1:
        raise ValueError(f"--num-processes must be a positive integer (worker processes), got "
                         f"{args.num_processes}")
    out = writable_folder(args.out)  # before loading anything heavy
    check_output_folder(out, overwrite=args.overwrite)
    model = DiffusionModel.from_pretrained(args.model, device=args.device)
    data, paths = _read_data(args, model)
    if not args.quiet:
        eta = estimate_time(model, len(data), config).message()
        if args.num_processes is not None and args.num_processes > 1:
            eta += f"; measured in one process, {args.num_processes} processes share the machine"
        print(f"cytoviz classify: {eta}", flush=True)
    chunks = {} if args.chunk_size is None else {"chunk_size": args.chunk_size}
    if args.num_processes is not None:
        chunks["num_processes"] = args.num_processes
    result = classify_to_folder(model, data, out, config=config, progress=not args.quiet,
                                overwrite=args.overwrite, paths=paths, **chunks)
    summary = f"{len(result)} images, {result.n_evals.mean():.1f} UNet evaluations per image"
    if result.labels is not None:
        summary += (f", accuracy {result.accuracy:.4f}, balanced accuracy "
                    f"{result.balanced_accuracy:.4f}")
    print(f"cytoviz classify: {summary}; wrote {out / 'predictions.csv'} and {out / 'result.npz'}")
    return 0


def _run_refit(args: argparse.Namespace) -> int:
    result = ClassificationResult.load(args.result)
    raw = result.raw_errors
    t_total = result.num_train_timesteps
    if args.logistic:
        if result.labels is None:
            raise ValueError(f"{args.result}: has no labels; the logistic weighting needs them")
        weights = fit_logistic_weighting(raw, result.timesteps, result.labels,
                                         num_train_timesteps=t_total)
        payload: dict[str, object] = {"weighting": "logistic", "bucket_weights": list(weights)}
    else:
        coeffs = fit_weighting(raw, result.timesteps, result.labels, degree=args.degree,
                               num_train_timesteps=t_total)
        payload = {"weighting": "polynomial", "poly_coeffs": list(coeffs)}
    payload["source"] = str(args.result)
    payload["n_images"] = len(result)
    save_json(payload, args.out)
    print(f"cytoviz refit-weighting: wrote {args.out}")
    return 0
