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

With ``num_processes=N > 1`` the unfinished chunks are shared out over N worker processes
(``spawn``) on this machine: worker k takes every N-th of them, loads the model from a copy that
the parent writes once into the partial folder, runs with ``max(1, cpu_count // N)`` torch
threads and writes its chunks with the same atomic writer; the parent then joins them as a
single-process run does. The chunks, their images and random streams are the same, so the
result is the same image by image; a killed run resumes with any ``num_processes``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import queue
import shutil
import threading
import traceback
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
#: Stem of the model copy that the worker processes of a multi-process run load.
_WORKER_MODEL = "workers-model"


def classify_to_folder(model: DiffusionModel, data: CellDataset | np.ndarray,
                       out: str | os.PathLike[str], *, config: ClassifyConfig | None = None,
                       chunk_size: int = 256, progress: bool = True, overwrite: bool = False,
                       paths: Sequence[str] | None = None,
                       num_processes: int = 1) -> ClassificationResult:
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
    num_processes
        Worker processes on this machine (default 1: classify in this process). With N > 1
        the unfinished chunks are shared out over N spawned processes, each with
        ``max(1, os.cpu_count() // N)`` torch threads, and the result is the same, image by
        image, as with one process. With ``config.device="cuda"`` (no index) worker k runs on
        ``cuda:{k % torch.cuda.device_count()}``; an explicit ``cuda:I`` puts every worker on
        it. The calling script must guard its top level with ``if __name__ == "__main__":``
        (spawned workers import it). The workers load the model from a temporary model folder
        (:meth:`DiffusionModel.save_pretrained`, safetensors) in ``result.partial``.

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
        does not know, ``out/result.partial`` is a symbolic link, or ``num_processes`` is not
        a positive integer.
    RuntimeError
        When a worker process died without reporting (killed, out of memory); the chunks it
        finished are kept, and the same call again resumes.

    Notes
    -----
    A run that resumes prints one line saying how many chunks were already done. A worker
    that raises stops the run (the other workers are terminated) and its exception is raised
    here, with the worker's traceback as a note.

    Examples
    --------
    >>> result = classify_to_folder(model, cells, "runs/cls", config=ClassifyConfig(max_trials=200))  # doctest: +SKIP
    >>> # killed part-way? the same call again resumes from runs/cls/result.partial/
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if (isinstance(num_processes, bool) or not isinstance(num_processes, int)
            or num_processes < 1):
        raise ValueError(f"num_processes must be a positive integer, got {num_processes!r}")
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
    _remove_temporaries(partial, (*(p.stem for p in chunk_paths), _WORKER_MODEL))
    _remove_temporaries(out, ("result", "predictions"))
    done = [p.is_file() for p in chunk_paths]
    if any(done):
        print(f"classify_to_folder: resuming {partial}: {sum(done)} of {n_chunks} chunks done")

    bar = None
    if progress:
        from tqdm.auto import tqdm

        n_done = sum(hi - lo for (lo, hi), d in zip(bounds, done, strict=True) if d)
        bar = tqdm(total=n_img, initial=n_done, desc="classify", unit="img")
    todo = [i for i, d in enumerate(done) if not d]
    if num_processes > 1 and len(todo) > 1:
        _classify_in_processes(model, images, labels, config, [(i, bounds[i], chunk_paths[i])
                               for i in todo], partial, num_processes, bar)
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


def _classify_in_processes(model: DiffusionModel, images: np.ndarray, labels: np.ndarray | None,
                           config: ClassifyConfig,
                           chunks: list[tuple[int, tuple[int, int], Path]], partial: Path,
                           num_processes: int, bar: Any) -> None:
    """Classify ``chunks`` (index, image bounds, file) in worker processes into their files.

    Worker k gets chunks k, k + n, ... (n workers: at most one per chunk) through its own queue,
    two at a time so that at most two chunks of images per worker are in flight.
    """
    import multiprocessing as mp


    ctx = mp.get_context("spawn")
    n = min(num_processes, len(chunks))
    threads = max(1, (os.cpu_count() or 1) // num_processes)
    devices = _worker_devices(model, config, n)
    # The workers load the model from a model folder (safetensors through save_pretrained):
    # nothing cytoviz writes is ever unpickled.
    model_file = partial / _WORKER_MODEL
    shutil.rmtree(model_file, ignore_errors=True)  # left by a killed run
    model.save_pretrained(model_file)
    shards = [list(chunks[k::n]) for k in range(n)]
    inboxes = [ctx.Queue() for _ in range(n)]
    reports = ctx.Queue()
    procs = [ctx.Process(target=_worker, name=f"cytoviz-classify-{k}", daemon=True,
                         args=(k, str(model_file), devices[k], threads, config, inboxes[k],
                               reports))
             for k in range(n)]
    closed = [False] * n

    def feed(k: int) -> None:
        if closed[k]:
            return
        if not shards[k]:
            inboxes[k].put(None)
            closed[k] = True
            return
        i, (lo, hi), path = shards[k].pop(0)
        inboxes[k].put((i, lo, images[lo:hi], None if labels is None else labels[lo:hi],
                        str(path)))

    try:
        for p in procs:
            p.start()
        for k in range(n):
            feed(k)
            feed(k)
        left = len(chunks)
        while left:
            try:
                kind, k, i, payload = reports.get(timeout=1.0)
            except queue.Empty:
                failed = any(p.exitcode not in (None, 0) for p in procs)
                if not failed and any(p.exitcode is None for p in procs):
                    continue
                try:  # a worker died, or all have ended: take what they reported before
                    kind, k, i, payload = reports.get(timeout=1.0)
                except queue.Empty:
                    codes = ", ".join(f"worker {k} exit code {p.exitcode}"
                                      for k, p in enumerate(procs) if p.exitcode is not None)
                    raise RuntimeError(
                        f"classify_to_folder: a worker process ended with chunks left ({codes}); "
                        f"the finished chunks are kept in {partial}: run again to resume"
                    ) from None
            if kind == "error":
                exc, tb = payload
                where = "while starting" if i is None else f"on chunk {i}"
                exc.add_note(f"raised in classify_to_folder's worker {k} {where}:\n{tb}")
                raise exc
            left -= 1
            if bar is not None:
                bar.update(payload)
            feed(k)
        for p in procs:
            p.join(timeout=60)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            if p.pid is not None:
                p.join()
        for q in (*inboxes, reports):
            q.cancel_join_thread()
            q.close()
        shutil.rmtree(model_file, ignore_errors=True)


def _worker_devices(model: DiffusionModel, config: ClassifyConfig, n: int) -> list[str]:
    """The device of each of ``n`` workers: ``cuda`` (no index) spreads them over the GPUs."""
    import torch

    target = torch.device(config.device) if config.device is not None else model.device
    if (target.type == "cuda" and config.device is not None
            and torch.device(config.device).index is None):
        count = torch.cuda.device_count()
        if count == 0:
            raise ValueError(f"device {config.device!r}: torch sees no CUDA device")
        return [f"cuda:{k % count}" for k in range(n)]
    return [str(target)] * n


def _worker(k: int, model_file: str, device: str, threads: int, config: ClassifyConfig,
            inbox: Any, reports: Any) -> None:
    """A worker process: classify the chunks that arrive in ``inbox``, each into its file."""
    import multiprocessing as mp
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the workers
    parent = mp.parent_process()
    if parent is not None:  # the parent killed (SIGKILL): stop at once, not after the chunk
        def watch() -> None:
            parent.join()
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    i = None
    try:
        import torch

        torch.set_num_threads(threads)
        if torch.device(device).type == "cuda":
            torch.cuda.set_device(torch.device(device))
        from cytoviz.diffusion.model import DiffusionModel  # a spawned process: load it here

        model = DiffusionModel.from_pretrained(model_file, device=device).eval()
        while (task := inbox.get()) is not None:
            i, lo, imgs, labs, path = task
            r = classify(model, imgs, config, labels=labs, progress=False, first_index=lo)
            r.save(path)
            reports.put(("done", k, i, len(imgs)))
    except BaseException as exc:
        tb = traceback.format_exc()
        try:
            pickle.dumps(exc)
        except Exception:
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        reports.put(("error", k, i, (exc, tb)))


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
