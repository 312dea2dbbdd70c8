"""The machinery every protocol shares: the unit store, training, scoring, tidy tables.

A protocol is a loop over *units* (one model x one seed x one setting). With ``out=DIR`` every
finished unit is cached as a CSV under ``DIR/units/PROTOCOL/`` and every trained model under
``DIR/models/``, so a rerun skips them; ``DIR/budget.json`` records the budget and a rerun with
another budget is refused (:class:`UnitStore`).

:func:`fit`, :func:`score` and :func:`classify_images` are looked up on this module at call time
(``runner.fit(...)``), so tests can count or replace them with ``monkeypatch``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cytoviz._io import load_json, load_npz, save_csv, save_npz, sha256_files
from cytoviz._metrics import classification_metrics
from cytoviz.data._dataset import CellDataset
from cytoviz.diffusion import ClassificationResult, ClassifyConfig, DiffusionModel, classify
from cytoviz.diffusion import train as diffusion_train
from cytoviz.evaluation.baseline import BaselineClassifier, train_baseline
from cytoviz.evaluation.budget import EvalBudget
from cytoviz.evaluation.splits import per_class

__all__ = [
    "MODELS",
    "UnitStore",
    "accuracies",
    "baseline_logits",
    "cached_classification",
    "check_models",
    "classify_images",
    "finish_table",
    "fit",
    "fit_baseline",
    "fit_diffusion",
    "model_fingerprint",
    "open_store",
    "progress_units",
    "resolve_device",
    "score",
    "score_diffusion",
    "seed_list",
    "slug",
    "train_steps",
]

#: The two models every protocol compares (display names: ``tables.MODEL_LABELS``).
MODELS: tuple[str, ...] = ("diffusion", "baseline")


# --------------------------------------------------------------------------------------------
# the unit store


class UnitStore:
    """Unit cache (CSV per unit) and model folders below ``out``; a temp folder without ``out``.

    Parameters
    ----------
    out
        Output folder (created), or ``None`` for a temporary folder that caches nothing and is
        removed by :meth:`close`.
    budget
        The budget of the run: written to ``out/budget.json``, or compared with the one there.
    protocol
        Name of the protocol (the subfolder of ``units/``).

    Raises
    ------
    ValueError
        When ``out`` holds results of another budget.
    """

    def __init__(self, out: str | os.PathLike[str] | None, budget: EvalBudget, protocol: str) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if out is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="cytoviz-eval-")
            self.root = Path(self._tmp.name)
            self.cache = False
        else:
            self.root = Path(out)
            self.cache = True
        self.root.mkdir(parents=True, exist_ok=True)
        self.protocol = protocol
        self._check_budget(budget)

    def _check_budget(self, budget: EvalBudget) -> None:
        path = self.root / "budget.json"
        if path.is_file():
            saved = load_json(path)
            saved.pop("config_class", None)
            try:  # fields added since the folder was written take their defaults
                same = EvalBudget.from_dict(saved) == budget
            except (ValueError, TypeError):
                same = False
            if not same:
                raise ValueError(
                    f"{self.root} holds results of another budget ({saved.get('name')!r}); use "
                    "another output folder or the same budget to resume"
                )
        else:
            budget.save(path)

    def unit_path(self, key: str) -> Path:
        """The CSV file of the unit ``key``."""
        return self.root / "units" / self.protocol / f"{slug(key)}.csv"

    def load(self, key: str) -> pd.DataFrame | None:
        """The cached table of the unit ``key``, or ``None`` when it has not finished."""
        path = self.unit_path(key)
        if self.cache and path.is_file():
            return pd.read_csv(path, keep_default_na=False, na_values=[""])
        return None

    def save(self, key: str, frame: pd.DataFrame) -> None:
        """Cache the table of the finished unit ``key`` (nothing without ``out``)."""
        if self.cache:
            save_csv(frame, self.unit_path(key))

    def model_dir(self, key: str) -> Path:
        """The folder of the model trained for ``key``."""
        return self.root / "models" / slug(key)

    def output_path(self, key: str, name: str) -> Path:
        """A file of the unit ``key``'s raw outputs (classification results, logits).

        Kept beside, not inside, the model folder, so the model's fingerprint stays that of
        its weights.
        """
        return self.root / "outputs" / slug(key) / name

    def close(self) -> None:
        """Remove the temporary folder (if any)."""
        if self._tmp is not None:
            self._tmp.cleanup()


@contextlib.contextmanager
def open_store(out: str | os.PathLike[str] | None, budget: EvalBudget, protocol: str
               ) -> Iterator[UnitStore]:
    """A :class:`UnitStore` that is closed (its temporary folder removed) on exit.

    Parameters
    ----------
    out, budget, protocol
        As for :class:`UnitStore`.

    Yields
    ------
    UnitStore
    """
    store = UnitStore(out, budget, protocol)
    try:
        yield store
    finally:
        store.close()


def slug(text: str) -> str:
    """``text`` as a safe file name (runs of other characters become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_")


# --------------------------------------------------------------------------------------------
# arguments of the protocols


def seed_list(seeds: int | Sequence[int] | None, default: int) -> list[int]:
    """Seeds from a count, a list or ``None`` (``default`` seeds ``0 .. default - 1``).

    Parameters
    ----------
    seeds
        A number of seeds (``0 .. seeds - 1``), a list of seeds or ``None``.
    default
        The number of seeds for ``None``.

    Returns
    -------
    list of int
    """
    if seeds is None:
        return list(range(default))
    if isinstance(seeds, int | np.integer):
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1 (a count) or a list of seeds, got {seeds}")
        return list(range(int(seeds)))
    out = [int(s) for s in seeds]
    if not out:
        raise ValueError("seeds is an empty list")
    return out


def check_models(models: Sequence[str]) -> list[str]:
    """``models`` as a list, refused unless it is a non-empty subset of :data:`MODELS`."""
    models = list(models)
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        raise ValueError(f"models must be a non-empty subset of {list(MODELS)}, got {models}")
    return models


def progress_units(units: list[Any], desc: str, progress: bool) -> Any:
    """Iterate over ``units`` with a tqdm bar (hidden with ``progress=False``)."""
    from tqdm.auto import tqdm

    return tqdm(units, desc=desc, disable=not progress, leave=False)


def resolve_device(budget: EvalBudget) -> str:
    """The torch device of the budget: ``budget.device``, else CUDA where available, else CPU."""
    if budget.device is not None:
        return budget.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def finish_table(frame: pd.DataFrame, budget: EvalBudget) -> pd.DataFrame:
    """A protocol's table with a fresh index, a ``budget`` column and the budget in ``attrs``.

    Parameters
    ----------
    frame
        The rows of the protocol.
    budget
        The budget of the run (``attrs["budget"]`` its name, ``attrs["budget_config"]`` every
        field).

    Returns
    -------
    pandas.DataFrame
    """
    frame = frame.reset_index(drop=True)
    frame["budget"] = budget.name
    frame.attrs["budget"] = budget.name
    frame.attrs["budget_config"] = budget.to_dict()
    return frame


# --------------------------------------------------------------------------------------------
# training


def fit_diffusion(
    train: CellDataset,
    val: CellDataset | None,
    budget: EvalBudget,
    *,
    seed: int,
    folder: Path,
    progress: bool,
) -> DiffusionModel:
    """Train (or load the finished) diffusion model in ``folder``.

    Parameters
    ----------
    train, val
        Training and (optional) validation images. With ``val`` and
        ``budget.val_checkpoints > 1``, the checkpoint with the best validation balanced
        accuracy (on ``budget.val_per_class`` images per class) is kept.
    budget
        Architecture and training recipe.
    seed
        Training seed.
    folder
        Where the run and the selected model (``folder/selected``) are written; a finished
        model there is loaded instead of trained.
    progress
        Show progress bars.

    Returns
    -------
    DiffusionModel
    """
    final = folder / "selected"
    if (final / "cytoviz.json").is_file():
        return DiffusionModel.from_pretrained(final)
    cfg = budget.train_config(len(train), seed=seed)
    n_ckpt = budget.val_checkpoints if val is not None else 1
    if n_ckpt == 1:
        model = budget.build_model(train.class_names, seed=seed)
        model = diffusion_train(model, train, None, config=cfg, out_dir=folder / "run",
                                progress=progress)
        _copy_model(folder / "run" / "model", final)
        return model
    # Checkpoint selection on validation balanced accuracy.
    assert val is not None
    val_small = per_class(val, budget.val_per_class, seed)
    stops = np.unique(np.rint(np.linspace(0, cfg.steps, n_ckpt + 1)[1:]).astype(int))
    best = -1.0
    for stop in stops:
        model = budget.build_model(train.class_names, seed=seed)
        model = diffusion_train(model, train, None, config=cfg, out_dir=folder / "run",
                                progress=progress, stop_at=cfg.n_vae_steps + int(stop))
        value = score_diffusion(model, val_small, budget, seed=seed,
                                progress=progress)["balanced_accuracy"]
        if value >= best:
            best = value
            _copy_model(folder / "run" / "model", folder / "best")
    _copy_model(folder / "best", final)
    return DiffusionModel.from_pretrained(final)


def _copy_model(src: Path, dst: Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp)
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)


def fit_baseline(
    train: CellDataset,
    val: CellDataset | None,
    budget: EvalBudget,
    *,
    seed: int,
    folder: Path,
    progress: bool,
) -> BaselineClassifier:
    """Train (or load the finished) CNN baseline in ``folder``.

    Parameters
    ----------
    train, val
        Training and (optional) validation images (the best validation epoch is kept).
    budget
        The baseline recipe (``budget.baseline``) and the device.
    seed
        Training seed.
    folder
        Where the classifier is saved; a saved one there is loaded instead of trained.
    progress
        Show a progress bar.

    Returns
    -------
    BaselineClassifier
    """
    device = resolve_device(budget)
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return BaselineClassifier.load(folder, device=device)
    clf = train_baseline(train, val, budget.baseline_config(len(train), seed=seed), progress=progress,
                         device=device)
    clf.save(folder)
    return clf


def fit(
    model: str,
    train: CellDataset,
    val: CellDataset | None,
    *,
    budget: EvalBudget,
    seed: int,
    folder: Path,
    progress: bool,
) -> Any:
    """Train (or load) the model called ``model`` (``"diffusion"`` or ``"baseline"``).

    Parameters
    ----------
    model
        One of :data:`MODELS`.
    train, val, budget, seed, folder, progress
        As for :func:`fit_diffusion` and :func:`fit_baseline`.

    Returns
    -------
    DiffusionModel or BaselineClassifier
    """
    if model == "diffusion":
        return fit_diffusion(train, val, budget, seed=seed, folder=folder, progress=progress)
    return fit_baseline(train, val, budget, seed=seed, folder=folder, progress=progress)


# --------------------------------------------------------------------------------------------
# scoring


def classify_images(model: DiffusionModel, images: np.ndarray, budget: EvalBudget, *, seed: int,
                    progress: bool) -> ClassificationResult:
    """Run the diffusion classifier with the budget's trials, batch size and device.

    Parameters
    ----------
    model
        The diffusion model.
    images
        ``uint8`` images ``(N, H, W, 3)``.
    budget
        Sets ``max_trials``, ``min_trials``, the batch size and the device.
    seed
        Seed of the classifier's random draws.
    progress
        Show a progress bar.

    Returns
    -------
    ClassificationResult
        Without error maps (``keep_error_maps=False``).
    """
    cfg = ClassifyConfig(max_trials=budget.max_trials, min_trials=budget.min_trials,
                         batch_size=budget.classify_batch_size, seed=seed, keep_error_maps=False,
                         device=resolve_device(budget))
    return classify(model, images, cfg, progress=progress)


def cached_classification(model: DiffusionModel, images: np.ndarray, budget: EvalBudget, *,
                          seed: int, path: Path | None, progress: bool) -> ClassificationResult:
    """:func:`classify_images`, read from ``path`` when a finished result is there, else saved there.

    Parameters
    ----------
    model, images, budget, seed, progress
        As for :func:`classify_images`.
    path
        ``.npz`` file of the result (``None``: not cached).

    Returns
    -------
    ClassificationResult
    """
    if path is not None and path.is_file():
        result = ClassificationResult.load(path)
        if len(result) == len(images):
            return result
    result = classify_images(model, images, budget, seed=seed, progress=progress)
    if path is not None:
        result.save(path)
    return result


def baseline_logits(clf: BaselineClassifier, images: np.ndarray, *, path: Path | None
                    ) -> np.ndarray:
    """The baseline's ``(N, K)`` logits, read from or saved to the ``.npz`` file ``path``."""
    if path is not None and path.is_file():
        logits = load_npz(path)["logits"]
        if len(logits) == len(images):
            return np.asarray(logits)
    logits = np.asarray(clf.predict_logits(images), dtype=np.float64)
    if path is not None:
        save_npz(path, logits=logits)
    return logits


def train_steps(model: str, n_train: int, budget: EvalBudget) -> int:
    """Optimiser steps the budget gives ``model`` for ``n_train`` images (UNet or CNN steps)."""
    if model == "diffusion":
        return int(budget.train_config(n_train, seed=0).steps)
    cfg = budget.baseline_config(n_train, seed=0)
    return int(cfg.epochs * budget.baseline_steps_per_epoch(n_train))


def model_fingerprint(folder: Path) -> str:
    """SHA-256 of a trained model's folder (:func:`cytoviz._io.sha256_files`), recorded per row."""
    final = folder / "selected"
    return sha256_files(final if final.is_dir() else folder)


def accuracies(true_names: np.ndarray, pred_names: np.ndarray) -> dict[str, float]:
    """:func:`cytoviz._metrics.classification_metrics` of names, refused for an empty test set."""
    true_names = np.asarray(true_names, dtype=str)
    if true_names.size == 0:
        raise ValueError("cannot score an empty test set")
    return classification_metrics(true_names, np.asarray(pred_names, dtype=str))


def score_diffusion(model: DiffusionModel, ds: CellDataset, budget: EvalBudget, *, seed: int,
                    progress: bool) -> dict[str, float]:
    """Accuracy, balanced accuracy and image count of the diffusion classifier on ``ds``.

    Parameters
    ----------
    model, budget, seed, progress
        As for :func:`classify_images`.
    ds
        Labelled test images (classes matched by name).

    Returns
    -------
    dict
        ``accuracy``, ``balanced_accuracy``, ``n_images``
        (:func:`cytoviz._metrics.classification_metrics`).
    """
    result = classify_images(model, ds.images, budget, seed=seed, progress=progress)
    return accuracies(ds.label_names, result.prediction_names)


def score(model_name: str, model: Any, ds: CellDataset, *, budget: EvalBudget, seed: int,
          progress: bool) -> dict[str, float]:
    """Accuracy, balanced accuracy and image count of a fitted model on ``ds``.

    Parameters
    ----------
    model_name
        ``"diffusion"`` or ``"baseline"``.
    model
        The fitted model (:func:`fit`).
    ds
        Labelled test images (classes matched by name).
    budget, seed, progress
        As for :func:`classify_images` (the baseline uses none of them).

    Returns
    -------
    dict
        ``accuracy``, ``balanced_accuracy``, ``n_images``.
    """
    if model_name == "diffusion":
        return score_diffusion(model, ds, budget, seed=seed, progress=progress)
    pred = np.asarray(model.class_names, dtype=str)[model.predict(ds)]
    return accuracies(ds.label_names, pred)
