"""The low-data regime (Figure 4): 10, 20, 50, 150 training images per class, repeated."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

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

__all__ = ["low_data"]


def low_data(
    data: str | os.PathLike[str] | Splits = "synthetic",
    *,
    sizes: Sequence[int] | None = None,
    repeats: int | Sequence[int] | None = None,
    models: Sequence[str] = MODELS,
    budget: EvalBudget | str | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """The low-data regime (Figure 4): train on ``n`` images per class, repeat with fresh draws.

    Parameters
    ----------
    data
        ``"synthetic"``, a folder (e.g. ``../shared/data/pbc_example``: 10 per class for
        training, 10 for testing) or a mapping of splits (see
        :func:`~cytoviz.evaluation.eval_data`).
    sizes
        Training images per class (default ``budget.low_data_sizes``; the paper's 10, 20, 50,
        150). A class with fewer images uses all it has (``n_train`` records the count).
    repeats
        Number of repeats or a list of repeat seeds (default ``budget.seeds``; 5 in the paper).
        Each repeat draws a fresh subsample and trains fresh models.
    models
        Any of ``"diffusion"``, ``"baseline"``.
    budget
        An :class:`EvalBudget` or a preset name (default ``"cpu"``). The checkpoint is picked on
        validation accuracy where the data has a ``val`` split.
    out
        Output folder for resume.
    progress
        Show tqdm progress bars.

    Returns
    -------
    pandas.DataFrame
        One row per (model, size, repeat): ``model``, ``n_per_class``, ``repeat``,
        ``n_train``, ``train_steps`` (UNet or CNN optimiser steps, :meth:`EvalBudget.train_config`
        and :meth:`EvalBudget.baseline_config`), ``accuracy``, ``balanced_accuracy``,
        ``n_images`` (test), ``model_sha256`` (fingerprint of the trained model), ``budget``.
    """
    budget = resolve_budget(budget)
    models = check_models(models)
    sizes = [int(n) for n in (sizes if sizes is not None else budget.low_data_sizes)]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sizes must be positive integers, got {sizes}")
    reps = seed_list(repeats, budget.seeds)
    splits = eval_data(data, budget=budget)
    test = per_class(splits["test"], budget.test_per_class, 0)
    val = splits.get("val")
    units = [(m, n, r) for m in models for n in sizes for r in reps]
    frames = []
    with open_store(out, budget, "low_data") as store:
        for m, n, r in progress_units(units, "low data", progress):
            key = f"{m}-n{n}-rep{r}"
            cached = store.load(key)
            if cached is None:
                train = per_class(splits["train"], n, 10_000 + 97 * r + n)
                folder = store.model_dir(key)
                fitted = runner.fit(m, train, val, budget=budget, seed=r, folder=folder,
                                    progress=progress)
                if m == "diffusion":
                    pred = runner.cached_classification(
                        fitted, test.images, budget, seed=r, progress=progress,
                        path=store.output_path(key, "test_result.npz") if store.cache else None,
                    ).prediction_names
                    scores = runner.accuracies(test.label_names, pred)
                else:
                    scores = runner.score(m, fitted, test, budget=budget, seed=r, progress=progress)
                cached = pd.DataFrame([{"model": m, "n_per_class": n, "repeat": r,
                                        "n_train": len(train),
                                        "train_steps": runner.train_steps(m, len(train), budget),
                                        **scores,
                                        "model_sha256": runner.model_fingerprint(folder)}])
                store.save(key, cached)
            frames.append(cached)
    return finish_table(pd.concat(frames, ignore_index=True), budget)
