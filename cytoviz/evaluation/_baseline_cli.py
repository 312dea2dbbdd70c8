"""``cytoviz baseline train`` and ``cytoviz baseline predict``: the CNN baseline on the command
line (private CLI module).

``train`` trains :class:`~cytoviz.evaluation.BaselineClassifier` on a data spec (read through
:func:`cytoviz.data.resolve`, as ``cytoviz train`` reads it: ``synthetic``, a folder of class
folders or split folders, a manifest, an ``.npz``) and saves it with
:meth:`~cytoviz.evaluation.BaselineClassifier.save`, plus ``train_summary.json`` (the data, the
input crop, the kept epoch and its validation scores). With a validation set (``--val``, or the
spec's own ``val`` split) the epoch with the best validation balanced accuracy is kept; without
one, the last epoch's weights.

``predict`` classifies a data spec (labelled, or unlabelled images as for ``cytoviz classify``)
and writes ``predictions.csv`` (one row per image: ``image``, ``path`` when the files are known,
``true``, ``predicted``, ``confidence`` (the top softmax probability), ``correct`` with labels,
and ``prob_<class>`` for every class) and ``metrics.json``.

The training flags default to ``None``: the value of :class:`BaselineConfig`, the one source of
defaults.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from cytoviz._io import load_json, save_csv, save_json, writable_folder
from cytoviz._metrics import classification_metrics
from cytoviz._paths import default_baseline_dir
from cytoviz._threads import add_threads_option
from cytoviz.data import CellDataset, load_images, resolve_one
from cytoviz.data._cli import add_loader_options, apply_cell_scale, loader_options
from cytoviz.data._resolve import SPLIT_NAMES
from cytoviz.data.synth import SynthConfig
from cytoviz.diffusion._classify_cli import _is_unlabelled
from cytoviz.diffusion._cli import _split_or_only
from cytoviz.evaluation.baseline import BaselineClassifier, BaselineConfig, train_baseline

__all__ = ["register"]

#: The defaults shown in the help (read from the config).
_DEFAULT = BaselineConfig()
#: Side of the images read from folders and generated for ``synthetic`` (the shipped baseline's).
_IMAGE_SIZE = SynthConfig().image_size
#: The file next to the weights that records the training data and the input crop.
SUMMARY = "train_summary.json"
#: The files ``predict`` writes (an existing one is replaced only with ``--overwrite``).
_PREDICT_FILES = ("predictions.csv", "metrics.json")

#: BaselineConfig fields set by a flag of the same name (``None``: the config's default).
_CONFIG_FLAGS = ("epochs", "batch_size", "lr", "seed", "max_minutes")

_EPILOG = """\
examples:
  cytoviz baseline train --data path/to/cells --out runs/cnn
  cytoviz baseline train --data synthetic --out runs/cnn_syn --epochs 30 --zoom 0.8 1.25
  cytoviz baseline predict --model runs/cnn --data path/to/test_cells --out runs/cnn_pred
  cytoviz baseline predict --model default --data synthetic --split test_mild --out runs/cnn_mild
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``baseline`` command and its ``train`` and ``predict`` subcommands."""
    p = subparsers.add_parser(
        "baseline", help="the CNN baseline: train it on a data set, predict with it",
        description="Train the discriminative CNN baseline (a small residual CNN with group "
        "norm, BaselineConfig) on a data set, or classify a data set with a trained one "
        "(predictions.csv + metrics.json).",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="baseline_command", metavar="SUBCOMMAND", required=True)
    d = _DEFAULT

    t = sub.add_parser(
        "train", help="train the CNN baseline on a data set",
        description="Train the CNN baseline from scratch and save it to --out (model.safetensors, "
        "config.json, train_summary.json). With a validation set (--val, or the val split of "
        "--data) the epoch with the best validation balanced accuracy is kept, otherwise the "
        "last epoch.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = t.add_argument_group("data")
    data.add_argument("--data", required=True, metavar="DIR|FILE|synthetic",
                      help="training images: a folder of class folders, a folder of split "
                      "folders (its train split is used), a manifest .csv, a CellDataset .npz, or "
                      "'synthetic' for the built-in generator's splits")
    data.add_argument("--val", metavar="DIR|FILE",
                      help="validation images (default: the val split of --data when it has "
                      "one, otherwise no validation and the last epoch is kept)")
    data.add_argument("--synthetic-scale", type=float,
                      help="size multiplier of the synthetic splits (default 1)")
    data.add_argument("--image-size", type=int,
                      help=f"side length images from folders are resized to (default "
                      f"{_IMAGE_SIZE}); .npz data keeps its size")
    data.add_argument("--input-crop", type=int, metavar="PX",
                      help="train on the centre PX x PX pixels of each image (recorded in "
                      f"{SUMMARY}; predict crops the same way); default: the whole image")
    add_loader_options(data)
    t.add_argument("--out", required=True, metavar="DIR",
                   help="model folder (created; an existing non-empty one is refused)")
    t.add_argument("--overwrite", action="store_true",
                   help="replace a baseline saved in --out")
    hp = t.add_argument_group("training (defaults: BaselineConfig())")
    hp.add_argument("--epochs", type=int, help=f"passes over the training set (default {d.epochs})")
    hp.add_argument("--batch-size", type=int, help=f"images per step (default {d.batch_size})")
    hp.add_argument("--lr", type=float, help=f"peak AdamW learning rate (default {d.lr:g})")
    hp.add_argument("--zoom", nargs="+", metavar="LO HI",
                    help="add a random magnification drawn from [LO, HI] to the augmentations "
                    "(AugmentConfig.zoom, e.g. 0.8 1.25; LO,HI works too); default "
                    f"{d.augment.zoom[0]:g} {d.augment.zoom[1]:g}: none")
    hp.add_argument("--seed", type=int, help=f"seed of the run (default {d.seed})")
    hp.add_argument("--max-minutes", type=float,
                    help="stop after the epoch that passes this many minutes (default: "
                    + ("no limit" if d.max_minutes is None else f"{d.max_minutes:g}") + ")")
    hp.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_option(t)
    t.set_defaults(func=_run_train, interrupt_hint=_train_interrupt_hint)

    r = sub.add_parser(
        "predict", help="classify a data set with a trained CNN baseline",
        description="Classify images with a saved CNN baseline; write predictions.csv (image, "
        "path, true and predicted class, confidence, correct, prob_<class>) and metrics.json "
        "(accuracy and balanced accuracy when the images are labelled).",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("--model", required=True, metavar="DIR",
                   help="a folder written by `cytoviz baseline train`, or 'default' for the "
                   "shipped baseline")
    r.add_argument("--data", required=True, metavar="DIR|FILE|synthetic",
                   help="as for `cytoviz classify`: a folder of class folders or split folders, "
                   "a manifest .csv, a CellDataset .npz, 'synthetic', or unlabelled images (a "
                   "folder of image files, a .csv with a path and no label column); it may "
                   "hold only some of the model's classes")
    r.add_argument("--split", type=str.lower, choices=SPLIT_NAMES,
                   help="split to classify when --data holds several (default: test)")
    r.add_argument("--synthetic-scale", type=float,
                   help="size multiplier of the synthetic splits (default 1)")
    add_loader_options(r)
    r.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    r.add_argument("--overwrite", action="store_true",
                   help="replace predictions.csv and metrics.json in --out (refused otherwise)")
    r.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    add_threads_option(r)
    r.set_defaults(func=_run_predict)


# --------------------------------------------------------------------------------------------
# train


def _train_interrupt_hint(args: argparse.Namespace) -> str:
    return (f"no model was written to {args.out}; run the command again (--max-minutes stops "
            "training after the epoch that passes the budget, and saves the model)")


def _parse_zoom(values: list[str] | None) -> tuple[float, float] | None:
    """``["0.8", "1.25"]`` or ``["0.8,1.25"]`` -> ``(0.8, 1.25)``; ``None`` -> no zoom flag."""
    if values is None:
        return None
    parts = [v for text in values for v in text.split(",") if v.strip()]
    try:
        lo, hi = (float(v) for v in parts)
    except ValueError:
        raise ValueError(f"--zoom expects two numbers LO HI such as 0.8 1.25, got "
                         f"{' '.join(values)!r}") from None
    return (lo, hi)


def _config(args: argparse.Namespace) -> BaselineConfig:
    """BaselineConfig() with the flags given (the others keep the config's defaults)."""
    changes: dict[str, Any] = {name: getattr(args, name) for name in _CONFIG_FLAGS
                               if getattr(args, name) is not None}
    zoom = _parse_zoom(args.zoom)
    if zoom is not None:
        changes["augment"] = _DEFAULT.augment.replace(zoom=zoom)
    return BaselineConfig().replace(**changes)


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty --out (unless --overwrite), and overwriting anything but a baseline."""
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"{out}: the folder is not empty; pass --overwrite to replace the "
                              "baseline saved there, or choose another --out")
    config = out / "config.json"
    if config.is_file():
        try:
            kind = load_json(config).get("kind")
        except (ValueError, OSError, AttributeError):
            kind = None
        if kind != "BaselineClassifier":
            raise FileExistsError(f"{config}: not a CNN baseline's config (kind {kind!r}); "
                                  "--overwrite replaces only a baseline, choose another --out")


def _crop(data: CellDataset, crop: int | None, what: str) -> CellDataset:
    if crop is None:
        return data
    if not 1 <= crop <= data.image_size:
        raise ValueError(f"--input-crop {crop}: must lie in [1, {data.image_size}] for the "
                         f"{data.image_size} px images of {what}")
    return data.centre_crop(crop)


def _unknown_classes(data: CellDataset, known: tuple[str, ...]) -> list[str]:
    """The classes of ``data`` that have images and are not in ``known``."""
    counts = np.bincount(data.labels, minlength=len(data.class_names)) if len(data) else []
    return [c for c, n in zip(data.class_names, counts, strict=False) if n and c not in known]


def _run_train(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.image_size is not None and args.image_size < 1:
        raise ValueError(f"--image-size must be a positive integer, got {args.image_size}")
    out = Path(args.out)
    _check_out(out, args.overwrite)
    writable_folder(out)  # before reading or generating the data
    image_size = args.image_size or _IMAGE_SIZE
    opts = loader_options(args)
    train, sets = _split_or_only(args.data, "train", image_size, args.synthetic_scale, opts)
    train = apply_cell_scale(train, args, args.data)
    if args.val:
        val, val_from = _split_or_only(args.val, "val", image_size, args.synthetic_scale,
                                       opts)[0], args.val
    elif "val" in sets:
        val, val_from = sets["val"], f"the val split of {args.data}"
    else:
        val, val_from = None, None
    if val is not None:
        val = apply_cell_scale(val, args, args.val or args.data)
    data_size = train.image_size
    train = _crop(train, args.input_crop, args.data)
    if val is not None:
        unknown = _unknown_classes(val, train.class_names)
        if unknown:
            raise ValueError(f"{val_from}: has class(es) {unknown} that the training data "
                             f"{args.data} lacks (it has {list(train.class_names)}); leave them "
                             "out (--class-map NAME=none for folders) or add them to the "
                             "training data")
        if val.image_size != data_size:
            raise ValueError(f"{val_from}: images are {val.image_size} px, the training images "
                             f"of {args.data} {data_size} px; give both at one size")
        val = _crop(val, args.input_crop, val_from)
    print(f"cytoviz baseline train: {len(train)} training images of {args.data} "
          f"({len(train.class_names)} classes, {train.image_size} px)", file=sys.stderr)
    if val is None:
        print("cytoviz baseline train: no validation set (no --val, and --data has no val "
              "split): the last epoch's weights are kept", file=sys.stderr)
    else:
        print(f"cytoviz baseline train: validation on {len(val)} images of {val_from}; the "
              "epoch with the best balanced accuracy is kept", file=sys.stderr)
    start = time.monotonic()
    clf = train_baseline(train, val, config, progress=not args.quiet, device=args.device)
    seconds = time.monotonic() - start
    best = [h["epoch"] for h in clf.history if h.get("best")]
    summary: dict[str, Any] = {
        "data": str(args.data), "val": val_from, "input_crop": args.input_crop,
        "data_image_size": data_size, "image_size": clf.image_size,
        "class_names": list(clf.class_names), "n_train": len(train),
        "n_val": 0 if val is None else len(val), "epochs_run": len(clf.history),
        "kept_epoch": best[-1] if best else len(clf.history), "seconds": seconds,
    }
    if val is not None:
        summary["val_scores"] = clf.evaluate(val)
    clf.save(out)
    save_json(summary, out / SUMMARY)
    kept = f"kept epoch {summary['kept_epoch']} of {len(clf.history)}"
    if val is not None:
        kept += (f", validation accuracy {summary['val_scores']['accuracy']:.4f}, balanced "
                 f"accuracy {summary['val_scores']['balanced_accuracy']:.4f}")
    print(f"cytoviz baseline train: {kept}; wrote {out} ({seconds:.0f} s)")
    return 0


# --------------------------------------------------------------------------------------------
# predict


def _model_path(spec: str) -> Path:
    path = default_baseline_dir() if spec == "default" else Path(spec)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such model folder; pass a folder written by "
                                "`cytoviz baseline train`, or 'default' for the shipped baseline")
    return path


def _geometry(path: Path, clf: BaselineClassifier) -> tuple[int, int | None]:
    """The side the model's images are read at, and its input crop (from ``train_summary.json``;
    without one, the model's own size and no crop)."""
    summary = path / SUMMARY
    meta = load_json(summary) if summary.is_file() else {}
    crop = meta.get("input_crop") if isinstance(meta, dict) else None
    if crop is None:
        return clf.image_size, None
    return int(meta.get("data_image_size") or clf.image_size), int(crop)


def _read(args: argparse.Namespace, clf: BaselineClassifier, size: int, crop: int | None
          ) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """The images of --data (cropped like the training images), their labels in the model's
    classes (``None``: unlabelled) and their files (``None``: not known)."""
    options = loader_options(args)
    if _is_unlabelled(args.data):
        if args.split is not None:
            raise ValueError(f"{args.data}: unlabelled images have no splits; omit --split")
        options.pop("class_map")
        images, paths = load_images(args.data, image_size=size, **options)
        images = apply_cell_scale(images, args, args.data)
        labels = None
    else:
        scale = {} if args.synthetic_scale is None else {"scale": args.synthetic_scale}
        data = resolve_one(args.data, args.split, image_size=size, classes=clf.class_names,
                           **scale, **options)
        data = apply_cell_scale(data, args, args.data)
        unknown = _unknown_classes(data, clf.class_names)
        if unknown:
            raise ValueError(f"{args.data}: has class(es) {unknown} that the model {args.model} "
                             f"does not know (its classes: {list(clf.class_names)}); leave them "
                             "out (--class-map NAME=none for folders and manifests) or train a "
                             "baseline on these classes")
        keep = np.isin(data.labels, [data.class_names.index(c) for c in data.class_names
                                     if c in clf.class_names])
        data = data.subset(np.flatnonzero(keep)) if not keep.all() else data
        images, labels = data.images, clf.labels_for(data)
        paths = (data.meta["path"].astype(str).tolist()
                 if data.meta is not None and "path" in data.meta.columns else None)
    if crop is not None and images.shape[1] != clf.image_size and images.shape[1] >= crop:
        lo = (images.shape[1] - crop) // 2
        images = images[:, lo:lo + crop, lo:lo + crop]
    if images.shape[1:3] != (clf.image_size, clf.image_size):
        expected = (f"{clf.image_size} px" if crop is None
                    else f"{size} px (it sees their centre {crop} px)")
        raise ValueError(f"{args.data}: images are {images.shape[1]}x{images.shape[2]} px but "
                         f"the model {args.model} expects {expected}; resize them, or pass a "
                         "folder or manifest (read at the model's size)")
    return images, labels, paths


def _run_predict(args: argparse.Namespace) -> int:
    out = writable_folder(args.out)  # before loading anything
    existing = [n for n in _PREDICT_FILES if (out / n).exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{out} holds {', '.join(existing)}; pass --overwrite to replace "
                              "them, or choose another --out")
    path = _model_path(args.model)
    clf = BaselineClassifier.load(path, device=args.device)
    size, crop = _geometry(path, clf)
    images, labels, paths = _read(args, clf, size, crop)
    if len(images) == 0:
        raise ValueError(f"{args.data}: holds no images to classify")
    proba = clf.predict_proba(images)
    pred = proba.argmax(axis=1)
    frame = _predictions_frame(proba, clf.class_names, labels, paths)
    metrics: dict[str, Any] = {
        "model": str(path), "data": str(args.data), "split": args.split,
        "class_names": list(clf.class_names), "n_images": len(images),
    }
    if labels is not None:
        metrics.update(classification_metrics(labels, pred))
    save_csv(frame, out / "predictions.csv")
    save_json(metrics, out / "metrics.json")
    summary = f"{len(images)} images"
    if labels is not None:
        summary += (f", accuracy {metrics['accuracy']:.4f}, balanced accuracy "
                    f"{metrics['balanced_accuracy']:.4f}")
    print(f"cytoviz baseline predict: {summary}; wrote {out / 'predictions.csv'} and "
          f"{out / 'metrics.json'}")
    return 0


def _predictions_frame(proba: np.ndarray, class_names: tuple[str, ...],
                       labels: np.ndarray | None, paths: list[str] | None) -> Any:
    """One row per image: ``image``, ``path``, ``true``, ``predicted``, ``confidence``,
    ``correct`` (with labels) and ``prob_<class>``."""
    import pandas as pd

    names = np.asarray(class_names, dtype=object)
    pred = proba.argmax(axis=1)
    data: dict[str, Any] = {"image": np.arange(len(proba))}
    if paths is not None:
        data["path"] = paths
    data["true"] = names[labels] if labels is not None else [None] * len(proba)
    data["predicted"] = names[pred]
    data["confidence"] = proba.max(axis=1)
    if labels is not None:
        data["correct"] = pred == labels
    for j, c in enumerate(class_names):
        data[f"prob_{c}"] = proba[:, j]
    return pd.DataFrame(data)
