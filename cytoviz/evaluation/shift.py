"""Domain shift (Table 2) and few-shot domain adaptation (Chossegros et al.).

* :func:`domain_shift`: train in-domain, score the in-domain test set and the mild and strong
  shifted sets; :func:`cytoviz.evaluation.tables.domain_shift_table` gives balanced accuracy
  mean +/- sd over seeds.
* :func:`few_shot`: fine-tune the source models on at most 100 class-proportional target
  images, with and without Reinhard colour transfer, and score them before and after.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cytoviz._io import load_json
from cytoviz.data._dataset import CellDataset
from cytoviz.diffusion import DiffusionModel
from cytoviz.diffusion import train as diffusion_train
from cytoviz.evaluation import runner
from cytoviz.evaluation.baseline import BaselineClassifier
from cytoviz.evaluation.budget import EvalBudget, resolve_budget
from cytoviz.evaluation.colour import lab_stats, reinhard_transfer
from cytoviz.evaluation.runner import (
    MODELS,
    check_models,
    finish_table,
    open_store,
    progress_units,
    resolve_device,
    seed_list,
)
from cytoviz.evaluation.splits import (
    Splits,
    class_proportional_split,
    eval_data,
    match_classes,
    per_class,
)

__all__ = ["FEW_SHOT_STAGES", "TEST_SETS", "domain_shift", "few_shot"]

#: Display names of the test sets of the domain-shift protocol.
TEST_SETS: dict[str, str] = {"test": "in-domain", "test_mild": "mild shift", "test_strong": "strong shift"}
#: Values of the ``stage`` column of :func:`few_shot`.
FEW_SHOT_STAGES = ("before", "after")


def _load_pretrained(path: str | os.PathLike[str], classes: Sequence[str], budget: EvalBudget
                     ) -> DiffusionModel:
    model = DiffusionModel.from_pretrained(path)
    if tuple(model.class_names) != tuple(classes):
        raise ValueError(
            f"the pretrained model {path} has classes {list(model.class_names)}, the data "
            f"{list(classes)}; pass pretrained=None to train instead"
        )
    if model.config.image_size != budget.image_size:
        raise ValueError(
            f"the pretrained model {path} takes {model.config.image_size} px images, the budget "
            f"{budget.image_size} px; pass pretrained=None or a matching budget"
        )
    return model


def _load_pretrained_baseline(path: str | os.PathLike[str], classes: Sequence[str],
                              budget: EvalBudget) -> BaselineClassifier:
    clf = BaselineClassifier.load(path, device=resolve_device(budget))
    if tuple(clf.class_names) != tuple(classes):
        raise ValueError(
            f"the pretrained baseline {path} has classes {list(clf.class_names)}, the data "
            f"{list(classes)}; pass pretrained_baseline=None to train instead"
        )
    return clf


def domain_shift(
    data: str | os.PathLike[str] | Splits = "synthetic",
    *,
    models: Sequence[str] = MODELS,
    budget: EvalBudget | str | None = None,
    seeds: int | Sequence[int] | None = None,
    pretrained: str | os.PathLike[str] | Mapping[int, str | os.PathLike[str]] | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Domain shift (Table 2): train in-domain, test in-domain and on shifted test sets.

    Parameters
    ----------
    data
        ``"synthetic"`` (test sets ``test``, ``test_mild``, ``test_strong``), a folder or a
        mapping of splits (see :func:`~cytoviz.evaluation.eval_data`); every ``test*`` split
        is scored.
    models
        Any of ``"diffusion"``, ``"baseline"``.
    budget
        An :class:`EvalBudget` or a preset name (default ``"cpu"``).
    seeds
        Number of seeds or a list (default ``budget.seeds``; 5 in the paper).
    pretrained
        A trained diffusion model folder (e.g. ``cytoviz/_shipped/default_model``) used as the
        diffusion model of every seed instead of training one: the seeds then vary only the
        classifier's random draws (timesteps, noise, test-time augmentation), not the training.
        A mapping ``{seed: folder}`` uses the folder for those seeds only and trains the others
        (``{0: default_model_dir()}``: the shipped model is seed 0 of its own recipe). Its rows
        have ``source`` naming it.
    out
        Output folder for resume. The classification results and the baseline's logits of
        every test set are kept in ``out/outputs/`` (for per-image comparisons of the two sides).
    progress
        Show tqdm progress bars.

    Returns
    -------
    pandas.DataFrame
        One row per (model, seed, test set): ``model``, ``seed``, ``split``, ``test_set``
        (display name), ``accuracy``, ``balanced_accuracy``, ``n_images``, ``source``
        (``"trained"`` or ``"pretrained: PATH"``), ``model_sha256`` (fingerprint of the model
        folder), ``budget``.
    """
    budget = resolve_budget(budget)
    models = check_models(models)
    seed_values = seed_list(seeds, budget.seeds)
    splits = eval_data(data, budget=budget)
    tests = [s for s in splits if s.startswith("test")]
    test_sets = {s: per_class(splits[s], budget.test_per_class, 0) for s in tests}
    units = [(m, s) for m in models for s in seed_values]
    frames = []
    with open_store(out, budget, "domain_shift") as store:
        for m, s in progress_units(units, "domain shift", progress):
            pre = _pretrained_for(pretrained, s) if m == "diffusion" else None
            key = f"{m}-seed{s}" + ("-pretrained" if pre is not None else "")
            cached = store.load(key)
            if cached is None:
                if pre is not None:
                    fitted = _load_pretrained(pre, splits["train"].class_names, budget)
                    source, folder = f"pretrained: {Path(pre).name}", Path(pre)
                else:
                    folder = store.model_dir(f"{m}-seed{s}")
                    fitted = runner.fit(m, splits["train"], splits.get("val"), budget=budget,
                                        seed=s, folder=folder, progress=progress)
                    source = "trained"
                rows = []
                for split, ds in test_sets.items():
                    pred = _predict(m, fitted, ds, budget, seed=s, progress=progress,
                                    path=store.output_path(key, split) if store.cache else None)
                    scores = runner.accuracies(ds.label_names, pred)
                    rows.append({"model": m, "seed": s, "split": split,
                                 "test_set": TEST_SETS.get(split, split), **scores,
                                 "source": source})
                cached = pd.DataFrame(rows)
                cached["train_steps"] = (0 if pre is not None else
                                         runner.train_steps(m, len(splits["train"]), budget))
                cached["model_sha256"] = runner.model_fingerprint(folder)
                store.save(key, cached)
            frames.append(cached)
    return finish_table(pd.concat(frames, ignore_index=True), budget)


def _pretrained_for(pretrained: str | os.PathLike[str] | Mapping[int, str | os.PathLike[str]] | None,
                    seed: int) -> str | os.PathLike[str] | None:
    if pretrained is None or isinstance(pretrained, str | os.PathLike):
        return pretrained
    return pretrained.get(seed)


def _predict(model_name: str, fitted: Any, ds: CellDataset, budget: EvalBudget, *, seed: int,
             progress: bool, path: Path | None) -> np.ndarray:
    """Predicted class names of ``ds``; the raw outputs cached below ``path`` (a prefix)."""
    if model_name == "diffusion":
        result = runner.cached_classification(
            fitted, ds.images, budget, seed=seed, progress=progress,
            path=None if path is None else path.with_name(path.name + "_result.npz"))
        return result.prediction_names
    logits = runner.baseline_logits(
        fitted, ds.images, path=None if path is None else path.with_name(path.name + "_logits.npz"))
    return np.asarray(fitted.class_names, dtype=str)[np.argmax(logits, axis=1)]


def _fine_tune_diffusion(model: DiffusionModel, ds: CellDataset, budget: EvalBudget, seed: int,
                         folder: Path, progress: bool) -> DiffusionModel:
    """Continue training from ``model`` on ``ds`` (VAE frozen); resumable in ``folder``."""
    done = folder / "model" / "train_summary.json"
    if done.is_file() and load_json(done).get("completed"):
        return DiffusionModel.from_pretrained(folder / "model")
    steps = budget.fine_tune_steps
    cfg = budget.train.replace(
        seed=seed, steps=steps, train_vae=False, vae_steps=0,
        warmup_steps=min(budget.train.warmup_steps, max(steps // 10, 1)),
        batch_size=min(budget.train.batch_size, len(ds)),
    )
    return diffusion_train(copy.deepcopy(model), ds, None, config=cfg, out_dir=folder,
                           progress=progress)


def few_shot(
    data: str | os.PathLike[str] | Splits = "synthetic",
    *,
    targets: Sequence[str] | None = None,
    colour_transfer: Sequence[bool] = (False, True),
    models: Sequence[str] = MODELS,
    budget: EvalBudget | str | None = None,
    seeds: int | Sequence[int] | None = 1,
    pretrained: str | os.PathLike[str] | None = None,
    pretrained_baseline: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Few-shot domain adaptation: fine-tune on at most 100 target images, with colour transfer.

    The models are trained on the source (training) split. For each target (shifted) set, at
    most ``budget.few_shot_images`` class-proportional images are picked for fine-tuning and the
    rest are scored (at most ``budget.test_per_class`` per class) before and after fine-tuning.
    With colour transfer, the target images are first moved to the CIELAB style of the source
    training images (:func:`cytoviz.evaluation.colour.reinhard_transfer`).

    Parameters
    ----------
    data
        ``"synthetic"`` (targets ``test_mild`` and ``test_strong``), a folder or a mapping of
        splits (see :func:`~cytoviz.evaluation.eval_data`).
    targets
        Split names of the target sets (default: every split whose name starts with
        ``test_``).
    colour_transfer
        Which settings to run (``False``: raw target images; ``True``: Reinhard transfer).
    models
        Any of ``"diffusion"`` (fine-tuned by continuing :func:`cytoviz.diffusion.train` with
        the VAE frozen), ``"baseline"`` (:meth:`BaselineClassifier.fine_tune`).
    budget
        An :class:`EvalBudget` or a preset name (default ``"cpu"``).
    seeds
        Number of seeds or a list (default one).
    pretrained
        A trained diffusion model folder (e.g. ``cytoviz/_shipped/default_model``) used as the source
        diffusion model of every seed instead of training one.
    pretrained_baseline
        A saved :class:`~cytoviz.evaluation.BaselineClassifier` folder (e.g.
        ``cytoviz/_shipped/default_baseline``) used as the source baseline of every seed.
    out
        Output folder for resume (source models are shared with :func:`domain_shift` when
        both run in the same folder).
    progress
        Show tqdm progress bars.

    Returns
    -------
    pandas.DataFrame
        One row per (model, seed, target, colour transfer, stage): ``model``, ``seed``,
        ``target``, ``colour_transfer``, ``stage`` (``"before"``/``"after"`` fine-tuning),
        ``accuracy``, ``balanced_accuracy``, ``n_images`` (scored), ``n_finetune``, ``budget``.
    """
    budget = resolve_budget(budget)
    models = check_models(models)
    seed_values = seed_list(seeds, 1)
    splits = eval_data(data, budget=budget)
    if targets is None:
        targets = [s for s in splits if s.startswith("test_")]
    missing = [t for t in targets if t not in splits]
    if missing or not targets:
        raise ValueError(
            f"target split(s) {missing or targets} not in the data (it has {sorted(splits)}); "
            "few-shot adaptation needs shifted test sets such as test_mild / test_strong"
        )
    cts = [bool(c) for c in colour_transfer]
    if not cts:
        raise ValueError("colour_transfer must list at least one of False, True")
    source = splits["train"]
    ref_idx = np.random.default_rng(0).permutation(len(source))[:256]
    reference = lab_stats(source.images[ref_idx])
    prepared: dict[tuple[str, bool], tuple[CellDataset, CellDataset]] = {}
    for t in targets:
        ds = splits[t]
        pick, rest = class_proportional_split(ds, budget.few_shot_images, seed=0)
        ft, ev = ds.subset(pick), per_class(ds.subset(rest), budget.test_per_class, 0)
        for ct in cts:
            if ct:
                prepared[(t, ct)] = (
                    dataclasses.replace(ft, images=reinhard_transfer(ft.images, reference)),
                    dataclasses.replace(ev, images=reinhard_transfer(ev.images, reference)),
                )
            else:
                prepared[(t, ct)] = (ft, ev)
    units = [(m, s, t, ct) for m in models for s in seed_values for t in targets for ct in cts]
    frames = []
    sources: dict[tuple[str, int], Any] = {}
    with open_store(out, budget, "few_shot") as store:
        for m, s, t, ct in progress_units(units, "few-shot", progress):
            key = f"{m}-seed{s}-{t}-colour{int(ct)}"
            cached = store.load(key)
            if cached is None:
                if (m, s) not in sources:
                    if m == "diffusion" and pretrained is not None:
                        sources[(m, s)] = _load_pretrained(pretrained, source.class_names, budget)
                    elif m == "baseline" and pretrained_baseline is not None:
                        sources[(m, s)] = _load_pretrained_baseline(
                            pretrained_baseline, source.class_names, budget)
                    else:
                        sources[(m, s)] = runner.fit(
                            m, source, splits.get("val"), budget=budget, seed=s,
                            folder=store.model_dir(f"{m}-seed{s}"), progress=progress)
                base = sources[(m, s)]
                ft, ev = prepared[(t, ct)]
                ft = match_classes(ft, base.class_names, t)
                before = runner.score(m, base, ev, budget=budget, seed=s, progress=progress)
                if m == "diffusion":
                    tuned = _fine_tune_diffusion(base, ft, budget, s,
                                                 store.model_dir(f"{key}-finetuned"), progress)
                else:
                    tuned = base.fine_tune(ft, epochs=budget.fine_tune_epochs,
                                           lr=budget.fine_tune_lr, seed=s, progress=progress)
                after = runner.score(m, tuned, ev, budget=budget, seed=s, progress=progress)
                cached = pd.DataFrame([
                    {"model": m, "seed": s, "target": t, "colour_transfer": ct, "stage": stage,
                     **sc, "n_finetune": len(ft)}
                    for stage, sc in (("before", before), ("after", after))
                ])
                store.save(key, cached)
            frames.append(cached)
    table = pd.concat(frames, ignore_index=True)
    table["colour_transfer"] = table["colour_transfer"].astype(bool)
    return finish_table(table, budget)
