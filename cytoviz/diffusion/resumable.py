"""Resumable classification of a data set into a folder (kill-safe chunks).

:func:`classify_to_folder` classifies the images in chunks. Each finished chunk's result is
written atomically to ``OUT/result.partial/chunk-NNNNN.npz`` next to a ``manifest.json`` that
records the config and fingerprints of the model (its weights, classes and architecture) and of
the input images. A run that was killed resumes when started again with the same arguments:
finished chunks are skipped, and since every image draws from its own random stream
(``first_index``) and the chunks are the same, the final result equals that of an uninterrupted
run. At the end the chunks are joined (:meth:`~cytoviz.diffusion.ClassificationResult.concat`),
``result.npz`` and ``predictions.csv`` are written atomically, and the partial folder is removed.
A restart with other settings, another model or other input images is refused, naming what
differs; a folder that holds a finished result is refused unless ``overwrite=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cytoviz._io import load_json, save_csv, save_json, writable_folder
from cytoviz.data import CellDataset
from cytoviz.diffusion.classify import classify, model_labels
from cytoviz.diffusion.classify_config import ClassifyConfig
from cytoviz.diffusion.result import ClassificationResult

if TYPE_CHECKING:
    import torch

    from cytoviz.diffusion.model import DiffusionModel

__all__ = ["PARTIAL_DIR", "check_output_folder", "classify_to_folder"]

#: Name of the folder of finished chunks inside the output folder.
PARTIAL_DIR = "result.partial"
_PARTIAL_KIND = "cytoviz classify partial run"
#: The files of a finished run.
_FINAL_FILES = ("result.npz", "predictions.csv")
#: Version of the partial run's manifest (2: the model is fingerprinted by its weights).
_PARTIAL_VERSION = 2


def classify_to_folder(model: DiffusionModel, data: CellDataset | np.ndarray,
                       out: str | os.PathLike[str], *, config: ClassifyConfig | None = None,
                       chunk_size: int = 256, progress: bool = True, overwrite: bool = False,
                       paths: Sequence[str] | None = None) -> ClassificationResult:
    """Classify a data set in resumable chunks; write ``result.npz`` and ``predictions.csv``.

    Parameters
    ----------
    model
        The diffusion model (:class:`~cytoviz.diffusion.DiffusionModel`).
    data
        The images to classify: a :class:`~cytoviz.data.CellDataset` whose classes are the
        model's or some of them (its labels are matched to the model's classes by name and
        kept), or unlabelled ``uint8`` images ``(N, H, W, 3)``.
    out
        Output folder (created if needed). It receives ``result.npz`` (the whole
        :class:`~cytoviz.diffusion.ClassificationResult`) and ``predictions.csv`` (its
        :meth:`~cytoviz.diffusion.ClassificationResult.to_frame`, with a ``path`` column when
        the images' files are known); while the run is under way the finished chunks live in
        ``out/result.partial/``.
    config
        :class:`~cytoviz.diffusion.ClassifyConfig` (default: the paper's settings).
    chunk_size
        Images per chunk: a killed run loses at most the chunk in progress.
    progress
        Show a tqdm progress bar over images.
    overwrite
        Replace a finished result in ``out``; without it a folder that holds
        ``result.npz`` or ``predictions.csv`` (and no unfinished run) is refused, so that a
        rerun with other arguments cannot replace a finished result.
    paths
        The image file of each image, written as the ``path`` column of ``predictions.csv``
        (default: the data set's ``meta["path"]`` when it has one).

    Returns
    -------
    ClassificationResult
        The same result as one :func:`~cytoviz.diffusion.classify` call with ``config``, however
        often the run was interrupted and resumed (up to the floating-point rounding of
        batched convolutions, which depends on which images share a UNet batch).

    Raises
    ------
    FileExistsError
        When ``out`` holds a finished result and ``overwrite`` is false.
    ValueError
        When ``out`` holds an unfinished run with another config, chunk size, model or input
        images (naming what differs), or chunks without a manifest; delete
        ``out/result.partial`` to start over. Also when the data set has classes the model
        does not know, or ``out/result.partial`` is a symbolic link.

    Notes
    -----
    A run that resumes prints one line saying how many chunks were already done.

    Examples
    --------
    >>> result = classify_to_folder(model, cells, "runs/cls", config=ClassifyConfig(max_trials=200))  # doctest: +SKIP
    >>> # killed part-way? the same call again resumes from runs/cls/result.partial/
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    images, labels, paths = _inputs(data, model, paths)
    config = (config or ClassifyConfig()).resolved(model)
    out = writable_folder(out)
    check_output_folder(out, overwrite=overwrite)
    partial = out / PARTIAL_DIR
    n_img = len(images)
    n_chunks = max(1, -(-n_img // chunk_size))
    bounds = [(i * chunk_size, min((i + 1) * chunk_size, n_img)) for i in range(n_chunks)]
    chunk_paths = [partial / f"chunk-{i:05d}.npz" for i in range(n_chunks)]
    _open_partial(partial, {
        "kind": _PARTIAL_KIND, "format_version": _PARTIAL_VERSION,
        "model_sha256": _model_sha256(model), "class_names": list(model.class_names),
        "n_images": n_img, "input_sha256": _data_sha256(images, labels, model.class_names),
        "chunk_size": chunk_size, "n_chunks": n_chunks, "config": config.to_dict(),
    })
    _remove_temporaries(partial, tuple(p.stem for p in chunk_paths))
    _remove_temporaries(out, ("result", "predictions"))
    done = [p.is_file() for p in chunk_paths]
    if any(done):
        print(f"classify_to_folder: resuming {partial}: {sum(done)} of {n_chunks} chunks done")

    bar = None
    if progress:
        from tqdm.auto import tqdm

        n_done = sum(hi - lo for (lo, hi), d in zip(bounds, done, strict=True) if d)
        bar = tqdm(total=n_img, initial=n_done, desc="classify", unit="img")
    results = []
    for path, (lo, hi) in zip(chunk_paths, bounds, strict=True):
        if path.is_file():
            r = _load_chunk(path, hi - lo, config, partial)
        else:
            r = classify(model, images[lo:hi], config,
                         labels=None if labels is None else labels[lo:hi], progress=False,
                         first_index=lo,
                         image_callback=None if bar is None else lambda _: bar.update(1))
            r.save(path)
        results.append(r)
    if bar is not None:
        bar.close()
    result = ClassificationResult.concat(results)

    frame = result.to_frame()
    if paths is not None:
        frame.insert(1, "path", paths)
    save_csv(frame, out / "predictions.csv")
    result.save(out / "result.npz")
    shutil.rmtree(partial)
    return result


def check_output_folder(out: str | os.PathLike[str], *, overwrite: bool = False) -> None:
    """Check an output folder of :func:`classify_to_folder` before any work.

    Parameters
    ----------
    out
        The output folder (it need not exist).
    overwrite
        Allow a finished result in ``out`` (it is replaced).

    Raises
    ------
    FileExistsError
        When ``out`` holds ``result.npz`` or ``predictions.csv`` and no unfinished run (a run
        killed while writing them resumes), unless ``overwrite``.
    ValueError
        When ``out/result.partial`` is a symbolic link (the run would write through it, and
        could not remove it at the end).
    """
    out = Path(out)
    partial = out / PARTIAL_DIR
    if partial.is_symlink():
        raise ValueError(f"{partial} is a symbolic link; cytoviz keeps its unfinished runs in "
                         "a folder of the output folder: remove the link (or choose another "
                         "output folder)")
    finished = [n for n in _FINAL_FILES if (out / n).exists()]
    if finished and not overwrite and not (partial / "manifest.json").is_file():
        raise FileExistsError(
            f"{out} holds a finished result ({', '.join(finished)}); pass --overwrite "
            "(overwrite=True) to replace it, or choose another output folder"
        )


def _inputs(data: CellDataset | np.ndarray, model: DiffusionModel,
            paths: Sequence[str] | None
            ) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """The images, their labels in the model's classes (``None``: unlabelled) and files."""
    if isinstance(data, CellDataset):
        images, labels = data.images, model_labels(data, model.class_names)
        if paths is None and data.meta is not None and "path" in data.meta.columns:
            paths = data.meta["path"].astype(str).tolist()
    elif isinstance(data, np.ndarray):
        images, labels = data, None
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} "
                             f"{images.shape}")
    else:
        raise TypeError(f"data must be a CellDataset or a uint8 image array, got "
                        f"{type(data).__name__}")
    if paths is not None:
        paths = [str(p) for p in paths]
        if len(paths) != len(images):
            raise ValueError(f"paths has {len(paths)} entries for {len(images)} images")
    return images, labels, paths


def _open_partial(partial: Path, manifest: dict[str, Any]) -> None:
    """Start a partial run with ``manifest``, or check that the one in ``partial`` matches it."""
    if (partial / "manifest.json").is_file():
        try:
            old = load_json(partial / "manifest.json")
        except ValueError as exc:
            raise ValueError(
                f"{exc}. It records the settings of an unfinished run in {partial}: delete "
                f"{partial} to start over (its finished chunks are then classified again), "
                "or write to another folder"
            ) from exc
        diffs = _partial_mismatch(old if isinstance(old, dict) else {}, manifest)
        if diffs:
            raise ValueError(
                f"{partial} holds an unfinished run with other settings: " + "; ".join(diffs)
                + f". Delete {partial} to start over, or write to another folder."
            )
    elif partial.is_dir() and any(partial.glob("chunk-*.npz")):
        raise ValueError(f"{partial} holds chunks but no manifest.json; delete {partial} to "
                         "start over, or write to another folder")
    else:
        save_json(manifest, partial / "manifest.json")


def _load_chunk(path: Path, n: int, config: ClassifyConfig, partial: Path) -> ClassificationResult:
    """A finished chunk of ``n`` images, checked against this run's config."""
    try:
        r = ClassificationResult.load(path)
    except ValueError as exc:
        raise ValueError(f"{exc}; delete {path} to classify its images again") from exc
    if len(r) != n or r.config != config:
        raise ValueError(f"{path} does not hold the images of this chunk of the run; "
                         f"delete {partial} to start over")
    return r


def _partial_mismatch(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between a partial run's manifest and this run's (empty: may resume)."""
    if old.get("kind") != _PARTIAL_KIND or old.get("format_version") != _PARTIAL_VERSION:
        return [f"the manifest is not a version-{_PARTIAL_VERSION} cytoviz partial run"]
    diffs = []
    if old.get("model_sha256") != new["model_sha256"]:
        diffs.append(f"the model differs (its weights, classes or architecture; partial run: "
                     f"classes {old.get('class_names')}, this run: {new['class_names']})")
    if old.get("input_sha256") != new["input_sha256"] or old.get("n_images") != new["n_images"]:
        diffs.append(f"the input images differ (partial run: {old.get('n_images')} images, "
                     f"this run: {new['n_images']} images)")
    if old.get("chunk_size") != new["chunk_size"]:
        diffs.append(f"chunk size {old.get('chunk_size')} then, {new['chunk_size']} now")
    try:
        old_cfg = ClassifyConfig.from_dict(old.get("config", {}))
    except (TypeError, ValueError) as exc:
        return [*diffs, f"the partial run's config cannot be read ({exc})"]
    for name, value in ClassifyConfig.from_dict(new["config"]).to_dict().items():
        if getattr(old_cfg, name) != value:
            diffs.append(f"{name} {getattr(old_cfg, name)!r} then, {value!r} now")
    return diffs


def _remove_temporaries(folder: Path, stems: tuple[str, ...]) -> None:
    """Delete temporary files that a killed atomic write left behind (``.STEM.tmp-*``)."""
    for stem in stems:
        for tmp in folder.glob(f".{stem}.tmp-*"):
            tmp.unlink(missing_ok=True)


def _model_sha256(model: DiffusionModel) -> str:
    """SHA-256 of the model's weights, latent scaling, noise schedule, classes and config."""
    h = hashlib.sha256()
    h.update(json.dumps({"class_names": list(model.class_names),
                         "config": model.config.to_dict(),
                         "scaling_factor": model.scaling_factor}, sort_keys=True).encode())
    parts = (("unet", model.unet.state_dict()), ("vae", model.vae.state_dict()),
             ("schedule", {"alphas_cumprod": model.scheduler.alphas_cumprod}))
    for part, tensors in parts:
        for name, tensor in tensors.items():
            h.update(f"\0{part}.{name} {tensor.dtype} {tuple(tensor.shape)}\0".encode())
            h.update(_tensor_bytes(tensor))
    return h.hexdigest()


def _tensor_bytes(tensor: torch.Tensor) -> memoryview:
    import torch

    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


def _data_sha256(images: np.ndarray, labels: np.ndarray | None,
                 class_names: Sequence[str]) -> str:
    """SHA-256 of the images (shape and bytes), the labels (or "unlabelled") and the classes."""
    h = hashlib.sha256()
    images = np.ascontiguousarray(images)
    h.update(f"{images.dtype} {images.shape}\0".encode())
    h.update(memoryview(images).cast("B"))
    if labels is None:
        h.update(b"unlabelled\0")
    else:
        h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    h.update("\0".join(class_names).encode())
    return h.hexdigest()
