"""``cytoviz classify`` and ``cytoviz refit-weighting`` (private CLI module).

``classify`` runs the diffusion classifier on a data set and writes ``predictions.csv`` (one row per
image: true and predicted class, confidence, certainty, trials, per-class scores) and
``result.npz`` (the full :class:`~cytoviz.diffusion.ClassificationResult`, reloadable with
``ClassificationResult.load``).

The images are classified in chunks (``--chunk-size``, 256 by default). Each finished chunk's
result is written atomically to ``OUT/result.partial/chunk-NNNNN.npz`` next to a
``manifest.json`` that records the config, the model and fingerprints of the model files and the
input images. A run that was killed resumes when started again with the same arguments: finished
chunks are skipped, and since every image draws from its own random stream (``first_index``)
and the chunks are the same, the final result equals that of an uninterrupted run. At the end the
chunks are joined (:meth:`~cytoviz.diffusion.ClassificationResult.concat`), ``result.npz`` and
``predictions.csv`` are written atomically, and the partial folder is removed. A restart with
other settings, another model or other input images is refused, naming what differs.

``refit-weighting`` refits the polynomial timestep weighting (METHOD.md section 1) on a saved
result of a validation set and writes its coefficients as JSON; pass that file back to
``classify --weighting-file``. Classify the validation set with ``--no-pruning`` first so that
every trial has every class.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cytoviz.data import CellDataset

__all__ = ["register"]

_EPILOG = """\
examples:
  cytoviz classify --model data/default_model --data synthetic --split test --out runs/cls
  cytoviz classify --model runs/demo/model --data cells.npz --out runs/cls --max-trials 200
  # killed part-way? the same command again resumes from runs/cls/result.partial/
  # refit the weighting on a validation set, then use it:
  cytoviz classify --model M --data synthetic --split val --no-pruning --max-trials 200 --out runs/val
  cytoviz refit-weighting --result runs/val/result.npz --out runs/val/weighting.json
  cytoviz classify --model M --data synthetic --split test --weighting-file runs/val/weighting.json \\
      --out runs/test
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``classify`` and ``refit-weighting`` subcommands."""
    from cytoviz.diffusion.classify import ENCODE_PRECISIONS
    from cytoviz.diffusion.weighting import WEIGHTINGS

    p = subparsers.add_parser(
        "classify",
        help="classify images with the diffusion classifier (predictions.csv + result.npz)",
        description="Run the CytoDiffusion decision rule (adaptive trials with paired t-test "
        "pruning, timestep weighting, test-time augmentation) and write predictions.csv and "
        "result.npz to --out.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, metavar="DIR", help="model folder (save_pretrained)")
    p.add_argument("--data", required=True, metavar="DIR|FILE.npz|synthetic",
                   help="a CellDataset .npz, a folder holding SPLIT.npz or class subfolders, or "
                   "'synthetic' for the built-in generator's splits")
    p.add_argument("--split", default="test",
                   help="split to classify for 'synthetic' or a folder of SPLIT.npz (default test)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    p.add_argument("--limit", type=int, help="classify only the first N images")
    c = p.add_argument_group("classifier (defaults: the paper's, ClassifyConfig())")
    c.add_argument("--max-trials", type=int, default=2000, help="trials per image at most (2000)")
    c.add_argument("--min-trials", type=int, default=20, help="trials before pruning starts (20)")
    c.add_argument("--p-threshold", type=float, default=2e-3, help="pruning p threshold (2e-3)")
    c.add_argument("--no-pruning", action="store_true",
                   help="every class gets every trial (heatmap runs, weighting refits)")
    c.add_argument("--no-tta", action="store_true", help="no test-time augmentation")
    c.add_argument("--deterministic-encode", action="store_true",
                   help="use the VAE posterior mean instead of a sample")
    c.add_argument("--mask-radius", type=int, default=None, metavar="R",
                   help="radius in latent pixels of the centre disc where errors count (default: "
                        "the paper's 20 of 45 scaled to the latent, 7 for 16 x 16)")
    c.add_argument("--encode-precision", choices=ENCODE_PRECISIONS, default="float32",
                   help="arithmetic of the per-trial VAE encode (default float32; bfloat16 is "
                        "faster on a CPU with native bfloat16, which auto picks; not in "
                        "METHOD.md, see ClassifyConfig)")
    c.add_argument("--weighting", choices=WEIGHTINGS, default="polynomial",
                   help="timestep weighting (default polynomial)")
    c.add_argument("--weighting-file", metavar="JSON",
                   help="coefficients written by refit-weighting (sets the weighting too)")
    c.add_argument("--no-error-maps", action="store_true",
                   help="do not keep the per-class error maps (smaller result.npz, no heatmaps)")
    c.add_argument("--batch-size", type=int, default=64, help="(image, class) pairs per UNet pass")
    p.add_argument("--chunk-size", type=int, default=256,
                   help="images per resumable chunk (default 256): finished chunks are kept in "
                   "OUT/result.partial/ and skipped when a killed run is started again")
    c.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    c.add_argument("--device", help="torch device (default: cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_classify)

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


def _load_data(spec: str, split: str) -> CellDataset:
    from cytoviz.data import CellDataset

    if spec == "synthetic":
        try:
            from cytoviz.data.synth import default_splits
        except ImportError as exc:
            raise RuntimeError(
                "--data synthetic needs cytoviz.data.synth.default_splits, which is not "
                "available in this installation"
            ) from exc
        splits = default_splits()
        if split not in splits:
            raise ValueError(f"unknown split {split!r}; the synthetic splits are {sorted(splits)}")
        return splits[split]
    path = Path(spec)
    if path.is_file() and path.suffix == ".npz":
        return CellDataset.load(path)
    if path.is_dir():
        if (path / f"{split}.npz").is_file():
            return CellDataset.load(path / f"{split}.npz")
        try:
            from cytoviz.data.loaders import load_folder
        except ImportError as exc:
            raise RuntimeError(
                f"{path}: has no {split}.npz, and loading image folders needs "
                "cytoviz.data.loaders, which is not available; save a CellDataset .npz instead"
            ) from exc
        return load_folder(path)
    raise FileNotFoundError(f"{spec}: not a CellDataset .npz, a folder, or 'synthetic'")


#: Name of the folder of finished chunks inside --out, and the version of its manifest.
PARTIAL_DIR = "result.partial"
_PARTIAL_KIND = "cytoviz classify partial run"
_PARTIAL_VERSION = 1


def _sha256_files(folder: Path) -> str:
    """SHA-256 over the relative names and contents of every file below ``folder``."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.relative_to(folder).as_posix().encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def _sha256_data(data: CellDataset) -> str:
    """SHA-256 of the images (shape and bytes), the labels and the class names."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    images = np.ascontiguousarray(data.images)
    h.update(f"{images.dtype} {images.shape}\0".encode())
    h.update(memoryview(images).cast("B"))
    h.update(np.ascontiguousarray(data.labels, dtype=np.int64).tobytes())
    h.update("\0".join(data.class_names).encode())
    return h.hexdigest()


def _partial_mismatch(old: dict, new: dict) -> list[str]:
    """What differs between a partial run's manifest and this run's (empty: may resume)."""
    from cytoviz.diffusion import ClassifyConfig

    if old.get("kind") != _PARTIAL_KIND or old.get("format_version") != _PARTIAL_VERSION:
        return [f"the manifest is not a version-{_PARTIAL_VERSION} cytoviz partial run"]
    diffs = []
    if old.get("model_sha256") != new["model_sha256"]:
        diffs.append(f"the model files differ (partial run: {old.get('model')}, this run: "
                     f"{new['model']})")
    if old.get("input_sha256") != new["input_sha256"] or old.get("n_images") != new["n_images"]:
        diffs.append(f"the input images differ (partial run: {old.get('n_images')} images from "
                     f"{old.get('data')}, this run: {new['n_images']} images from {new['data']})")
    if old.get("chunk_size") != new["chunk_size"]:
        diffs.append(f"--chunk-size {old.get('chunk_size')} then, {new['chunk_size']} now")
    try:
        old_cfg = ClassifyConfig.from_dict(old.get("config", {}))
    except (TypeError, ValueError) as exc:
        return [*diffs, f"the partial run's config cannot be read ({exc})"]
    new_cfg = ClassifyConfig.from_dict(new["config"])
    for name, value in new_cfg.to_dict().items():
        if getattr(old_cfg, name) != value:
            diffs.append(f"{name} {getattr(old_cfg, name)!r} then, {value!r} now")
    return diffs


def _remove_temporaries(folder: Path, stems: tuple[str, ...]) -> None:
    """Delete temporary files that a killed atomic write left behind (``.STEM.tmp-*``)."""
    for stem in stems:
        for tmp in folder.glob(f".{stem}.tmp-*"):
            tmp.unlink(missing_ok=True)


def _run_classify(args: argparse.Namespace) -> int:
    import shutil

    import numpy as np

    from cytoviz._io import atomic_path, load_json, save_json
    from cytoviz.diffusion import ClassificationResult, ClassifyConfig, DiffusionModel, classify

    if args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be positive, got {args.chunk_size}")
    model = DiffusionModel.from_pretrained(args.model, device=args.device)
    data = _load_data(args.data, args.split)
    if tuple(data.class_names) != model.class_names:
        missing = sorted(set(model.class_names) - set(data.class_names))
        if missing:
            raise ValueError(
                f"the data lacks the model's classes {missing}; the model knows "
                f"{list(model.class_names)}"
            )
        data = data.select_classes(model.class_names)
    if args.limit is not None:
        if args.limit < 1:
            raise ValueError(f"--limit must be positive, got {args.limit}")
        data = data.subset(np.arange(min(args.limit, len(data))))
    extra: dict[str, object] = {"weighting": args.weighting}
    if args.weighting_file:
        w = load_json(args.weighting_file)
        extra["weighting"] = w.get("weighting", "polynomial")
        if "poly_coeffs" in w:
            extra["poly_coeffs"] = tuple(w["poly_coeffs"])
        if "bucket_weights" in w:
            extra["bucket_weights"] = tuple(w["bucket_weights"])
    config = ClassifyConfig(
        min_trials=args.min_trials, max_trials=args.max_trials, p_threshold=args.p_threshold,
        pruning=not args.no_pruning, tta=not args.no_tta,
        stochastic_encode=not args.deterministic_encode, keep_error_maps=not args.no_error_maps,
        batch_size=args.batch_size, seed=args.seed, device=args.device,
        encode_precision=args.encode_precision, mask_radius=args.mask_radius, **extra,  # type: ignore[arg-type]
    ).resolved(model)

    # -- resumable chunks ------------------------------------------------------------------
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / PARTIAL_DIR
    n_img = len(data)
    n_chunks = max(1, -(-n_img // args.chunk_size))
    manifest = {
        "kind": _PARTIAL_KIND, "format_version": _PARTIAL_VERSION,
        "model": str(Path(args.model).resolve()), "model_sha256": _sha256_files(Path(args.model)),
        "data": {"data": args.data, "split": args.split, "limit": args.limit},
        "n_images": n_img, "input_sha256": _sha256_data(data),
        "chunk_size": args.chunk_size, "n_chunks": n_chunks, "config": config.to_dict(),
    }
    chunk_paths = [partial / f"chunk-{i:05d}.npz" for i in range(n_chunks)]
    if (partial / "manifest.json").is_file():
        diffs = _partial_mismatch(load_json(partial / "manifest.json"), manifest)
        if diffs:
            raise ValueError(
                f"{partial} holds an unfinished run with other settings: " + "; ".join(diffs)
                + f". Delete {partial} to start over, or pass another --out."
            )
    elif partial.is_dir() and any(partial.glob("chunk-*.npz")):
        raise ValueError(f"{partial} holds chunks but no manifest.json; delete {partial} to "
                         "start over, or pass another --out")
    else:
        save_json(manifest, partial / "manifest.json")
    _remove_temporaries(partial, tuple(p.stem for p in chunk_paths))
    _remove_temporaries(out, ("result", "predictions"))
    done = sum(p.is_file() for p in chunk_paths)
    if done:
        print(f"cytoviz classify: resuming {partial}: {done} of {n_chunks} chunks done")

    bar = None
    if not args.quiet:
        from tqdm.auto import tqdm

        n_done = sum(min(args.chunk_size, n_img - i * args.chunk_size)
                     for i, p in enumerate(chunk_paths) if p.is_file())
        bar = tqdm(total=n_img, initial=n_done, desc="classify", unit="img")
    results = []
    for i, path in enumerate(chunk_paths):
        lo, hi = i * args.chunk_size, min((i + 1) * args.chunk_size, n_img)
        if path.is_file():
            try:
                r = ClassificationResult.load(path)
            except ValueError as exc:
                raise ValueError(f"{exc}; delete {path} to classify its images again") from exc
            if len(r) != hi - lo or r.config != config:
                raise ValueError(f"{path} does not hold images {lo}..{hi - 1} of this run; "
                                 f"delete {partial} to start over")
        else:
            r = classify(model, data.subset(np.arange(lo, hi)), config, progress=False,
                         first_index=lo,
                         image_callback=None if bar is None else lambda _: bar.update(1))
            r.save(path)
        results.append(r)
    if bar is not None:
        bar.close()
    result = ClassificationResult.concat(results)

    frame = result.to_frame()
    with atomic_path(out / "predictions.csv") as tmp:
        frame.to_csv(tmp, index=False)
    result.save(out / "result.npz")
    shutil.rmtree(partial)
    summary = f"{len(result)} images, {result.n_evals.mean():.1f} UNet evaluations per image"
    if result.labels is not None:
        summary += (f", accuracy {result.accuracy:.4f}, balanced accuracy "
                    f"{result.balanced_accuracy:.4f}")
    print(f"cytoviz classify: {summary}; wrote {out / 'predictions.csv'} and {out / 'result.npz'}")
    return 0


def _run_refit(args: argparse.Namespace) -> int:
    from cytoviz._io import save_json
    from cytoviz.diffusion import ClassificationResult
    from cytoviz.diffusion.weighting import fit_logistic_weighting, fit_weighting

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
        coeffs = fit_weighting(raw, result.timesteps, result.labels, args.degree,
                               num_train_timesteps=t_total)
        payload = {"weighting": "polynomial", "poly_coeffs": list(coeffs)}
    payload["source"] = str(args.result)
    payload["n_images"] = len(result)
    save_json(payload, args.out)
    print(f"cytoviz refit-weighting: wrote {args.out}")
    return 0
