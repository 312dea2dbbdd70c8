"""Anomaly detection with a held-out class (Figure 3 of the paper).

For each held-out class (blast, then erythroblast) both models are trained without it and every
test image gets certainty scores (:data:`ANOMALY_SCORES`): the paper's ``zeta`` of the diffusion
classification result and a likelihood-style score (minus its smallest unnormalised class
error); for the baseline, ``zeta`` on its negated logits (the paper's), the maximum softmax
probability and the negative energy (the standard out-of-distribution baselines). The statistics of the resulting table (ROC AUC, KDEs) live in
:mod:`cytoviz.anomaly` (:func:`~cytoviz.anomaly.anomaly_auc`,
:func:`~cytoviz.anomaly.certainty_kde`); :func:`cytoviz.pl.anomaly_kde` draws them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cytoviz.anomaly import (
    energy_certainty,
    error_certainty,
    logit_certainty,
    msp_certainty,
    normalise_certainty,
)
from cytoviz.data._dataset import CellDataset
from cytoviz.evaluation import runner
from cytoviz.evaluation.budget import EvalBudget, resolve_budget
from cytoviz.evaluation.runner import (
    MODELS,
    check_models,
    finish_table,
    open_store,
    progress_units,
    seed_list,
)
from cytoviz.evaluation.splits import Splits, eval_data, per_class

__all__ = ["ANOMALY_COLUMNS", "ANOMALY_SCORES", "PAPER_SCORE", "anomaly_scores", "anomaly_table",
           "anomaly_test_set"]

#: Columns of an anomaly table (:func:`anomaly_table`, :func:`anomaly_scores`).
ANOMALY_COLUMNS = ("model", "held_out", "seed", "score", "image", "true_class", "is_abnormal",
                   "certainty", "certainty_norm")
#: The certainty scores of each model (``score`` column), the paper's first.
ANOMALY_SCORES: dict[str, tuple[str, ...]] = {
    "diffusion": ("zeta", "likelihood"),
    "baseline": ("zeta", "msp", "energy"),
}
#: The paper's score (Figure 3).
PAPER_SCORE = "zeta"


def anomaly_table(
    certainty: np.ndarray,
    is_abnormal: np.ndarray,
    *,
    model: str,
    held_out: str,
    true_class: Sequence[str] | None = None,
    seed: int = 0,
    score: str = PAPER_SCORE,
) -> pd.DataFrame:
    """The tidy anomaly table of one model and one held-out class from precomputed scores.

    Parameters
    ----------
    certainty
        ``(N,)`` certainty scores (larger = more normal), e.g. ``result.zeta`` or
        :func:`cytoviz.anomaly.logit_certainty` of a baseline's logits.
    is_abnormal
        ``(N,)`` booleans: the image shows the held-out class.
    model, held_out
        Labels of the rows.
    true_class
        Optional true class names.
    seed
        Training seed.
    score
        Name of the score (``"zeta"``, ``"likelihood"``, ``"msp"``, ``"energy"`` ...).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ANOMALY_COLUMNS`; ``certainty_norm`` is ``zeta`` divided by its
        maximum (:func:`cytoviz.anomaly.normalise_certainty`, the paper's scaling) and any other
        score rescaled to ``[0, 1]`` by its minimum and maximum.
    """
    c = np.asarray(certainty, dtype=np.float64).ravel()
    a = np.asarray(is_abnormal, dtype=bool).ravel()
    if c.shape != a.shape:
        raise ValueError(f"certainty has {c.size} values but is_abnormal has {a.size}")
    if not np.all(np.isfinite(c)):
        raise ValueError("certainty contains NaN or inf; check the classification result")
    if score == PAPER_SCORE:
        norm = normalise_certainty(c)
    else:
        span = float(c.max() - c.min()) if c.size else 0.0
        norm = (c - c.min()) / span if span > 0 else np.ones_like(c)
    return pd.DataFrame({
        "model": model, "held_out": held_out, "seed": int(seed), "score": score,
        "image": np.arange(c.size),
        "true_class": (np.asarray(true_class, dtype=str) if true_class is not None
                       else np.where(a, held_out, "")),
        "is_abnormal": a, "certainty": c, "certainty_norm": norm,
    })


def anomaly_test_set(
    data: str | os.PathLike[str] | Splits = "synthetic",
    *,
    budget: EvalBudget | str | None = None,
) -> CellDataset:
    """The test images of :func:`anomaly_scores`, in the order of its ``image`` column.

    Pass them to :class:`cytoviz.widgets.AnomalyExplorer` to see the flagged cells.

    Parameters
    ----------
    data
        As for :func:`anomaly_scores`.
    budget
        Sets the number of test images per class (``budget.test_per_class``).

    Returns
    -------
    CellDataset
    """
    budget = resolve_budget(budget)
    return per_class(eval_data(data, budget=budget)["test"], budget.test_per_class, 0)


def anomaly_scores(
    data: str | os.PathLike[str] | Splits = "synthetic",
    *,
    held_out: Sequence[str] = ("blast", "erythroblast"),
    models: Sequence[str] = MODELS,
    budget: EvalBudget | str | None = None,
    seeds: int | Sequence[int] | None = 1,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Anomaly detection with a held-out class (Figure 3 of the paper).

    For each held-out class, both models are trained on the other classes (training and
    validation splits without it); the held-out class appears only in the test set. Every test
    image gets the certainty scores of :data:`ANOMALY_SCORES`: for the diffusion model ``zeta``
    of its classification result (the paper's) and ``likelihood``
    (:func:`cytoviz.anomaly.error_certainty`); for the baseline ``zeta`` on its negated logits
    (the paper's), ``msp`` and ``energy``. The classification results and logits are kept in
    ``out/outputs/`` so that scores are derived from them without another pass.

    Parameters
    ----------
    data
        ``"synthetic"``, a folder, or a mapping of splits (see
        :func:`~cytoviz.evaluation.eval_data`).
    held_out
        Classes to hold out, one experiment each (blast, then erythroblast, as in the paper).
    models
        Any of ``"diffusion"``, ``"baseline"``.
    budget
        An :class:`EvalBudget` or a preset name (default ``"cpu"``).
    seeds
        Number of training seeds or a list of seeds (default one, as in the paper).
    out
        Output folder for resume (finished units and models are cached there).
    progress
        Show tqdm progress bars.

    Returns
    -------
    pandas.DataFrame
        One row per (model, held-out class, seed, score, test image), columns
        :data:`ANOMALY_COLUMNS` plus ``model_sha256`` (the trained model's fingerprint) and
        ``budget``; ``certainty_norm`` is rescaled per model, held-out class, seed and score.
        ``attrs["budget"]`` names the budget.
    """
    budget = resolve_budget(budget)
    models = check_models(models)
    seed_values = seed_list(seeds, 1)
    splits = eval_data(data, budget=budget)
    classes = splits["train"].class_names
    unknown = [h for h in held_out if h not in classes]
    if unknown or not held_out:
        raise ValueError(f"held_out must name classes of the data {list(classes)}, got {list(held_out)}")
    test = anomaly_test_set(splits, budget=budget)
    units = [(h, m, s) for h in held_out for m in models for s in seed_values]
    frames: list[pd.DataFrame] = []
    with open_store(out, budget, "anomaly") as store:
        for h, m, s in progress_units(units, "anomaly", progress):
            key = f"{m}-without-{h}-seed{s}"
            cached = store.load(key)
            if cached is None:
                keep = [c for c in classes if c != h]
                train = splits["train"].select_classes(keep)
                val = splits["val"].select_classes(keep) if "val" in splits else None
                folder = store.model_dir(key)
                fitted = runner.fit(m, train, val, budget=budget, seed=s, folder=folder,
                                    progress=progress)
                if m == "diffusion":
                    result = runner.cached_classification(
                        fitted, test.images, budget, seed=s, progress=progress,
                        path=store.output_path(key, "test_result.npz") if store.cache else None)
                    certs = {"zeta": result.zeta, "likelihood": error_certainty(result.class_errors)}
                else:
                    logits = runner.baseline_logits(
                        fitted, test.images,
                        path=store.output_path(key, "test_logits.npz") if store.cache else None)
                    certs = {"zeta": logit_certainty(logits), "msp": msp_certainty(logits),
                             "energy": energy_certainty(logits)}
                cached = pd.concat(
                    [anomaly_table(certs[name], test.label_names == h, model=m, held_out=h,
                                   true_class=test.label_names, seed=s, score=name)
                     for name in ANOMALY_SCORES[m]], ignore_index=True)
                cached["train_steps"] = runner.train_steps(m, len(train), budget)
                cached["model_sha256"] = runner.model_fingerprint(folder)
                store.save(key, cached)
            frames.append(cached)
    table = pd.concat(frames, ignore_index=True)
    table["is_abnormal"] = table["is_abnormal"].astype(bool)
    table["true_class"] = table["true_class"].astype(str)
    return finish_table(table, budget)
