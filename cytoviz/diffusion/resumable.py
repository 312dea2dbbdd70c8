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
differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cytoviz._io import load_json, save_csv, save_json
from cytoviz.data import CellDataset
from cytoviz.diffusion.classify import classify
from cytoviz.diffusion.classify_config import ClassifyConfig
from cytoviz.diffusion.result import ClassificationResult

if TYPE_CHECKING:
    import torch

    from cytoviz.diffusion.model import DiffusionModel

__all__ = ["PARTIAL_DIR", "classify_to_folder"]

#: Name of the folder of finished chunks inside the output folder.
PARTIAL_DIR = "result.partial"
_PARTIAL_KIND = "cytoviz classify partial run"
#: Version of the partial run's manifest (2: the model is fingerprinted by its weights).
_PARTIAL_VERSION = 2


def classify_to_folder(model: DiffusionModel, data: CellDataset, out: str | os.PathLike[str], *,
                       config: ClassifyConfig | None = None, chunk_size: int = 256,
                       progress: bool = True) -> ClassificationResult:
    """Classify a data set in resumable chunks; write ``result.npz`` and ``predictions.csv``.

    Parameters
    ----------
    model
        The diffusion model (:class:`~cytoviz.diffusion.DiffusionModel`).
    data
        The images to classify, with the model's classes in the model's order (see
        :meth:`~cytoviz.data.CellDataset.select_classes`); its labels are kept.
    out
        Output folder (created if needed). It receives ``result.npz`` (the whole
        :class:`~cytoviz.diffusion.ClassificationResult`) and ``predictions.csv`` (its
        :meth:`~cytoviz.diffusion.ClassificationResult.to_frame`); while the run is under way
        the finished chunks live in ``out/result.partial/``.
    config
        :class:`~cytoviz.diffusion.ClassifyConfig` (default: the paper's settings).
    chunk_size
        Images per chunk: a killed run loses at most the chunk in progress.
    progress
        Show a tqdm progress bar over images.

    Returns
    -------
    ClassificationResult
        The same result as one :func:`~cytoviz.diffusion.classify` call with ``config``, however
        often the run was interrupted and resumed (up to the floating-point rounding of
        batched convolutions, which depends on which images share a UNet batch).

    Raises
    ------
    ValueError
        When ``out`` holds an unfinished run with another config, chunk size, model or input
        images (naming what differs), or chunks without a manifest; delete
        ``out/result.partial`` to start over.

    Notes
    -----
    A run that resumes prints one line saying how many chunks were already done.

    Examples
    --------
    >>> result = classify_to_folder(model, cells, "runs/cls", config=ClassifyConfig(max_trials=200))  # doctest: +SKIP
    >>> # killed part-way? the same call again resumes from runs/cls/result.partial/
    """
    if not isinstance(data, CellDataset):
        raise TypeError(f"data must be a CellDataset, got {type(data).__name__}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if tuple(data.class_names) != tuple(model.class_names):
        raise ValueError(
            f"the data set's classes {list(data.class_names)} differ from the model's "
            f"{list(model.class_names)}; relabel it with dataset.select_classes(model.class_names)"
        )
    config = (config or ClassifyConfig()).resolved(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / PARTIAL_DIR
    n_img = len(data)
    n_chunks = max(1, -(-n_img // chunk_size))
    bounds = [(i * chunk_size, min((i + 1) * chunk_size, n_img)) for i in range(n_chunks)]
    chunk_paths = [partial / f"chunk-{i:05d}.npz" for i in range(n_chunks)]
    _open_partial(partial, {
        "kind": _PARTIAL_KIND, "format_version": _PARTIAL_VERSION,
        "model_sha256": _model_sha256(model), "class_names": list(model.class_names),
        "n_images": n_img, "input_sha256": _data_sha256(data),
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
            r = classify(model, data.subset(np.arange(lo, hi)), config, progress=False,
                         first_index=lo,
                         image_callback=None if bar is None else lambda _: bar.update(1))
            r.save(path)
        results.append(r)
    if bar is not None:
        bar.close()
    result = ClassificationResult.concat(results)

    save_csv(result.to_frame(), out / "predictions.csv")
    result.save(out / "result.npz")
    shutil.rmtree(partial)
    return result


def _open_partial(partial: Path, manifest: dict[str, Any]) -> None:
    """Start a partial run with ``manifest``, or check that the one in ``partial`` matches it."""
    if (partial / "manifest.json").is_file():
        diffs = _partial_mismatch(load_json(partial / "manifest.json"), manifest)
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


def _data_sha256(data: CellDataset) -> str:
    """SHA-256 of the images (shape and bytes), the labels and the class names."""
    h = hashlib.sha256()
    images = np.ascontiguousarray(data.images)
    h.update(f"{images.dtype} {images.shape}\0".encode())
    h.update(memoryview(images).cast("B"))
    h.update(np.ascontiguousarray(data.labels, dtype=np.int64).tobytes())
    h.update("\0".join(data.class_names).encode())
    return h.hexdigest()
