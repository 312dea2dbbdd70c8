"""Protocols on generated images: class agreement, synthetic augmentation, prototype conditioning.

Each protocol composes the building blocks of issue 7 with the budget, data and resume
conventions of :mod:`cytoviz.evaluation.runner` and returns a tidy table; ``cytoviz evaluate
{class-agreement,augmentation,prototypes}`` runs them and writes CSVs and figures.

* :func:`generated_class_agreement`: generate ``n`` images per class with classifier-free
  guidance (:func:`cytoviz.diffusion.generate`) and check them with the diffusion classifier and
  the CNN baseline (:func:`cytoviz.authenticity.class_agreement`).
* :func:`synthetic_augmentation`: the CytoDiff curve
  (:func:`cytoviz.evaluation.augmentation.augmentation_curve`): a baseline trained on a small
  real training set plus ``k`` generated images per class.
* :func:`prototype_comparison`: IMPROVE (:mod:`cytoviz.evaluation.prototypes`): learn class
  prototypes on embeddings, fine-tune a prototype-conditioned generator and a one-hot control
  for the same number of steps from the same model, and compare their samples by baseline class
  agreement and a Frechet distance on the baseline's features (not the Inception FID).

By default the generator is the shipped model (``cytoviz/_shipped/default_model``) and the baseline the
shipped CNN (``cytoviz/_shipped/default_baseline``). With ``out=DIR`` generated image sets are kept under
``DIR/generated/`` (:meth:`~cytoviz.data.CellDataset.save` files that other steps can reuse, e.g.
as the ``generated=`` pool of :func:`synthetic_augmentation`), fine-tuned generators under
``DIR/models/`` and finished tables under ``DIR/units/``; a rerun skips them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cytoviz._io import inside, load_json, save_json
from cytoviz._paths import default_baseline_dir, default_model_dir
from cytoviz.authenticity import class_agreement
from cytoviz.data import resolve
from cytoviz.data._dataset import CellDataset
from cytoviz.data.synth import DEFAULT_SPLIT_COUNTS
from cytoviz.diffusion.generate import GenerateConfig, generate
from cytoviz.diffusion.model import DiffusionModel
from cytoviz.evaluation import prototypes, runner
from cytoviz.evaluation.augmentation import augmentation_curve
from cytoviz.evaluation.baseline import BaselineClassifier
from cytoviz.evaluation.budget import EvalBudget, resolve_budget
from cytoviz.evaluation.prototypes import PrototypeConfig
from cytoviz.evaluation.runner import (
    MODELS,
    check_models,
    finish_table,
    open_store,
    resolve_device,
    slug,
)
from cytoviz.evaluation.splits import Splits, eval_data, per_class

__all__ = [
    "FRECHET_LABEL",
    "generated_class_agreement",
    "prototype_comparison",
    "synthetic_augmentation",
]

#: How the Frechet distance of :func:`prototype_comparison` is labelled in tables and figures.
FRECHET_LABEL = "Frechet distance on baseline penultimate features (not Inception FID)"


# --------------------------------------------------------------------------------------------
# shared pieces


def _model(model: Any, classes: Sequence[str] | None, budget: EvalBudget) -> DiffusionModel:
    """The generator: a model, a folder, or (``None``) the shipped model, on the budget's device."""
    if model is None:
        model = default_model_dir()
    if not isinstance(model, DiffusionModel):
        path = Path(model)
        if not (path / "cytoviz.json").is_file():
            raise FileNotFoundError(f"{path}: no cytoviz model there (cytoviz.json missing); pass "
                                    "a model folder written by save_pretrained")
        model = DiffusionModel.from_pretrained(path)
    if classes is not None and tuple(model.class_names) != tuple(classes):
        raise ValueError(f"the diffusion model has classes {list(model.class_names)}, the data "
                         f"{list(classes)}; use a model trained on these classes")
    return model.to(resolve_device(budget)).eval()


def _baseline(baseline: Any, classes: Sequence[str], budget: EvalBudget) -> BaselineClassifier:
    """A baseline classifier, a folder, or (``None``) the shipped baseline."""
    if isinstance(baseline, BaselineClassifier):
        clf = baseline
    else:
        path = Path(baseline) if baseline is not None else default_baseline_dir()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: no saved baseline there; pass a folder written by "
                                    "BaselineClassifier.save (e.g. cytoviz/_shipped/default_baseline)")
        clf = BaselineClassifier.load(path, device=resolve_device(budget))
    missing = [c for c in classes if c not in clf.class_names]
    if missing:
        raise ValueError(f"the baseline lacks class(es) {missing} (it has "
                         f"{list(clf.class_names)})")
    return clf


def _gen_config(config: GenerateConfig | None, seed: int) -> GenerateConfig:
    return config if config is not None else GenerateConfig(seed=seed)


def _gen_key(name: str, n: int, cfg: GenerateConfig) -> str:
    """Cache key of a generated set: generator, images per class and every sampler setting."""
    return (f"{name}-n{n}-{cfg.scheduler}{cfg.num_inference_steps}-g{cfg.guidance_scale:g}"
            f"-eta{cfg.eta:g}-seed{cfg.seed}")


def _gen_columns(cfg: GenerateConfig) -> dict[str, Any]:
    return {"scheduler": cfg.scheduler, "steps": int(cfg.num_inference_steps),
            "guidance_scale": float(cfg.guidance_scale), "generate_seed": int(cfg.seed)}


def _pool_columns(pool: CellDataset | None, cfg: GenerateConfig, tag: str) -> dict[str, Any]:
    """Sampler settings of a pool: ``cfg`` when generated here, else read from its ``meta``."""
    if tag.startswith("pool-n"):
        return _gen_columns(cfg)
    meta = pool.meta if pool is not None and pool.meta is not None else pd.DataFrame()

    def first(col: str) -> Any:
        return meta[col].iloc[0] if col in meta and len(meta) else np.nan

    return {"scheduler": first("scheduler"), "steps": first("steps"),
            "guidance_scale": first("guidance_scale"), "generate_seed": np.nan}


def _generated(store: Any, key: str, make: Callable[[], CellDataset]) -> tuple[CellDataset, Path]:
    """A generated set from ``store.root/generated/KEY.npz``, made and saved when missing."""
    path = inside(store.root / "generated", f"{slug(key)}.npz")
    if store.cache and path.is_file():
        return CellDataset.load(path), path
    ds = make()
    ds.save(path)
    return ds, path


def _splits(data: Any, budget: EvalBudget, n_per_class: int | None = None
            ) -> dict[str, CellDataset]:
    """``train`` and ``test`` splits; for synthetic data only those two, at a scale with at
    least ``n_per_class`` training images in every class."""
    if isinstance(data, str | os.PathLike) and str(data) == "synthetic":
        scale = budget.data_scale
        if n_per_class:
            scale = max(scale, n_per_class / min(DEFAULT_SPLIT_COUNTS["train"].values()))
        data = resolve("synthetic", splits=("train", "test"), image_size=budget.image_size,
                       scale=scale)
    return eval_data(data, budget=budget)


def _digest(ds: CellDataset) -> str:
    """Short content hash of a data set (cache key of a given pool)."""
    h = hashlib.sha1(ds.images.tobytes())
    h.update(ds.labels.tobytes())
    h.update("|".join(ds.class_names).encode())
    return h.hexdigest()[:12]


def _present(ds: CellDataset) -> list[str]:
    return [c for c in ds.class_names if (ds.label_names == c).any()]


# --------------------------------------------------------------------------------------------
# class agreement of generated images


def generated_class_agreement(
    model: DiffusionModel | str | os.PathLike[str] | None = None,
    baseline: BaselineClassifier | str | os.PathLike[str] | None = None,
    *,
    n_per_class: int = 16,
    generate_config: GenerateConfig | None = None,
    models: Sequence[str] = MODELS,
    budget: EvalBudget | str | None = None,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, CellDataset]:
    """Generate ``n_per_class`` images of every class and check them with both classifiers.

    Parameters
    ----------
    model
        The generator (and the diffusion classifier): a :class:`~cytoviz.diffusion.DiffusionModel`,
        a model folder, or ``None`` for the shipped model.
    baseline
        A :class:`~cytoviz.evaluation.BaselineClassifier`, a folder, or ``None`` for the shipped
        baseline (loaded only when ``"baseline"`` is in ``models``).
    n_per_class
        Images generated per class.
    generate_config
        Sampler settings (default :class:`~cytoviz.diffusion.GenerateConfig`: 50 DDIM steps,
        guidance 5, seeded with ``seed``).
    models
        Classifiers that check the images: ``"diffusion"`` (trials from the budget) and/or
        ``"baseline"``.
    budget
        An :class:`~cytoviz.evaluation.EvalBudget` or preset name (default ``"cpu"``: 100
        trials); sets the classifier's trials and the device.
    seed
        Seed of the classifier (and of generation when ``generate_config`` is ``None``).
    out
        Output folder for resume; the images are kept in ``out/generated/``.
    progress
        Progress bars.

    Returns
    -------
    (table, generated)
        ``table``: :func:`cytoviz.authenticity.class_agreement` rows (``classifier``,
        ``intended`` incl. ``"all"``, ``n``, ``n_agree``, ``agreement`` and its Wilson interval)
        plus ``max_trials`` (diffusion rows), the sampler settings and ``budget``.
        ``generated``: the images (labels = intended classes).
    """
    budget = resolve_budget(budget)
    models = check_models(models)
    if int(n_per_class) < 1:
        raise ValueError(f"n_per_class must be at least 1, got {n_per_class}")
    gen_model = _model(model, None, budget)
    cfg = _gen_config(generate_config, seed)
    key = _gen_key("generated", n_per_class, cfg)
    frames = []
    with open_store(out, budget, "class_agreement") as store:
        generated, _ = _generated(store, key, lambda: generate(
            gen_model, "all", n_per_class, config=cfg, progress=progress))
        for name in models:
            unit = f"{name}-{key}-classify{seed}"
            cached = store.load(unit)
            if cached is None:
                if name == "diffusion":
                    result = runner.classify_images(gen_model, generated.images, budget, seed=seed,
                                                    progress=progress)
                    cached = class_agreement(generated, diffusion=result)
                    cached["max_trials"] = budget.max_trials
                else:
                    clf = _baseline(baseline, gen_model.class_names, budget)
                    if clf.image_size != generated.image_size:
                        raise ValueError(
                            f"the baseline takes {clf.image_size} px images but the model "
                            f"generates {generated.image_size} px ones (its input_crop); pass "
                            "models=('diffusion',) (--models diffusion), or a baseline trained "
                            "on the crops: train_baseline(model.crop_input(train), ...)")
                    cached = class_agreement(generated, baseline=clf)
                    cached["max_trials"] = np.nan
                for col, value in _gen_columns(cfg).items():
                    cached[col] = value
                store.save(unit, cached)
            frames.append(cached)
    return finish_table(pd.concat(frames, ignore_index=True), budget), generated


# --------------------------------------------------------------------------------------------
# synthetic augmentation (CytoDiff)


def synthetic_augmentation(
    data: str | os.PathLike[str] | Splits = "synthetic",
    model: DiffusionModel | str | os.PathLike[str] | None = None,
    *,
    ks: Sequence[int] = (0, 10, 25, 50),
    n_real: int = 20,
    generated: CellDataset | str | os.PathLike[str] | None = None,
    generate_config: GenerateConfig | None = None,
    budget: EvalBudget | str | None = None,
    repeats: int = 1,
    seed: int = 0,
    equal_steps: bool = False,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """The CytoDiff curve: baseline test scores against ``k`` generated images added per class.

    Parameters
    ----------
    data
        ``"synthetic"`` (the ``train`` and ``test`` splits of the synthetic benchmark, at a scale
        with at least ``n_real`` training images in every class), a folder or a mapping of splits
        (see :func:`~cytoviz.evaluation.eval_data`).
    model
        The generator (a model, a folder, or ``None`` for the shipped model); not loaded when
        ``generated`` is given.
    ks
        Generated images per class to add.
    n_real
        Real training images per class (drawn with ``seed``).
    generated
        A pool of generated images (a :class:`~cytoviz.data.CellDataset` or its ``.npz``) with at
        least ``max(ks)`` per class, e.g. from :func:`generated_class_agreement`; otherwise
        ``max(ks)`` per class are generated (and kept in ``out/generated/``). Generated cells
        smaller than the real images (a model with an ``input_crop`` generates its crop) make
        the baseline train and test on the same centre crops of the real images.
    generate_config
        Sampler settings (default :class:`~cytoviz.diffusion.GenerateConfig`).
    budget
        Sets the baseline recipe (``budget.baseline``), the test images per class and the
        synthetic scale (default ``"cpu"``).
    repeats, seed, equal_steps
        Repeats per ``k`` and their seed; the same optimiser steps for every ``k`` (see
        :func:`~cytoviz.evaluation.augmentation.augmentation_curve`).
    out
        Output folder for resume.
    progress
        Progress output.

    Returns
    -------
    pandas.DataFrame
        The rows of :func:`~cytoviz.evaluation.augmentation.augmentation_curve` (``k``,
        ``repeat``, ``n_real``, ``n_synthetic``, ``accuracy``, ``balanced_accuracy``,
        ``epochs``, ``macro_f1``, ``auc_ovr``) plus ``equal_steps``, ``n_real_per_class``, ``n_test``, ``pool`` (where the
        generated images came from), the sampler settings and ``budget``.
    """
    budget = resolve_budget(budget)
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 0:
        raise ValueError(f"ks must be non-negative image counts, got {ks}")
    if int(n_real) < 1:
        raise ValueError(f"n_real must be at least 1, got {n_real}")
    splits = _splits(data, budget, n_real)
    train_small = per_class(splits["train"], n_real, seed)
    test = per_class(splits["test"], budget.test_per_class, 0)
    cfg = _gen_config(generate_config, seed)
    with open_store(out, budget, "augmentation") as store:
        if isinstance(generated, str | os.PathLike):
            pool_name = str(generated)
            generated = CellDataset.load(generated)
            pool_tag = f"pool-{_digest(generated)}"
        elif generated is not None:
            pool_name = "given"
            pool_tag = f"pool-{_digest(generated)}"
        elif max(ks) > 0:
            gen_model = _model(model, None, budget)
            present = _present(train_small)
            pool_tag = _gen_key("pool", max(ks), cfg)
            generated, path = _generated(store, pool_tag, lambda: generate(
                gen_model, present, max(ks), config=cfg, progress=progress))
            pool_name = str(path)
        else:
            pool_name = pool_tag = "none"
        unit = (f"curve-real{n_real}-k{'_'.join(map(str, ks))}-r{repeats}-seed{seed}"
                + ("-equalsteps" if equal_steps else "") + f"-{pool_tag}")
        if generated is not None and generated.image_size < train_small.image_size:
            # A generator with an input_crop makes cells of its crop: the baseline then learns
            # and is tested on the same centre crops of the real images.
            train_small = train_small.centre_crop(generated.image_size)
            test = test.centre_crop(generated.image_size)
            unit += f"-crop{generated.image_size}"
        table = store.load(unit)
        if table is None:
            table = augmentation_curve(None, train_small, test, ks=ks, generated=generated,
                                       baseline_config=budget.baseline, repeats=repeats,
                                       seed=seed, equal_steps=equal_steps, progress=progress)
            table["equal_steps"] = bool(equal_steps)
            table["n_real_per_class"] = int(n_real)
            table["n_test"] = len(test)
            table["pool"] = pool_name
            for col, value in _pool_columns(generated, cfg, pool_tag).items():
                table[col] = value
            store.save(unit, table)
    return finish_table(table, budget)


# --------------------------------------------------------------------------------------------
# prototype conditioning (IMPROVE)


def prototype_comparison(
    data: str | os.PathLike[str] | Splits = "synthetic",
    model: DiffusionModel | str | os.PathLike[str] | None = None,
    baseline: BaselineClassifier | str | os.PathLike[str] | None = None,
    *,
    embedding: str = "baseline",
    prototype_config: PrototypeConfig | None = None,
    projection: str = "orthogonal",
    n_per_class: int = 16,
    generate_config: GenerateConfig | None = None,
    budget: EvalBudget | str | None = None,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[str, CellDataset]]:
    """Prototype-conditioned generator vs the one-hot control, fine-tuned alike from ``model``.

    Steps: embed the training split (the baseline's penultimate layer or the VAE encoder),
    :func:`~cytoviz.evaluation.prototypes.learn_prototypes`,
    :func:`~cytoviz.evaluation.prototypes.prototype_conditioning`, then
    :func:`~cytoviz.evaluation.prototypes.train_prototype_conditioned` twice from the same model
    for ``budget.fine_tune_steps`` steps (the UNet recipe of ``budget.train``: batch size,
    learning rate, class dropout, min-SNR gamma), once with the prototype rows and once with the
    one-hot rows (the control); generate ``n_per_class`` images per class from each and compare
    them with :func:`~cytoviz.evaluation.prototypes.compare_generators` against the test split.

    Parameters
    ----------
    data
        ``"synthetic"`` (``train`` for prototypes and fine-tuning, ``test`` as the real
        reference), a folder or a mapping of splits.
    model
        The starting model (a model, a folder, or ``None`` for the shipped model); not modified.
    baseline
        Classifier and feature extractor of the comparison (``None``: the shipped baseline).
    embedding
        ``"baseline"`` (penultimate features) or ``"vae"`` (VAE latent means) for the prototypes.
    prototype_config
        :class:`~cytoviz.evaluation.PrototypeConfig` (default: one prototype per class).
    projection
        ``"orthogonal"`` or ``"pca"`` (see :func:`~cytoviz.evaluation.prototypes.prototype_conditioning`).
    n_per_class
        Images generated per class and generator.
    generate_config
        Sampler settings (default :class:`~cytoviz.diffusion.GenerateConfig`).
    budget
        Fine-tuning steps and recipe, real test images per class, synthetic scale and device.
    seed
        Seed of fine-tuning, of the projection and (by default) of generation.
    out
        Output folder for resume (prototypes, both fine-tuned generators, the samples).
    progress
        Progress bars.

    Returns
    -------
    (table, samples)
        ``table``: :func:`~cytoviz.evaluation.prototypes.compare_generators` rows
        (``generator``, ``intended`` incl. ``"all"``, ``n``, ``agreement``,
        ``frechet_baseline_features``) plus ``n_real``, ``embedding``, ``projection``,
        ``fine_tune_steps``, ``final_loss`` (mean of the last 10 % of fine-tuning losses),
        ``frechet_features`` (:data:`FRECHET_LABEL`), the sampler settings and ``budget``.
        ``samples``: generator name -> its generated images.
    """
    # the prototype steps are looked up on their module, so tests can replace them
    budget = resolve_budget(budget)
    if embedding not in ("baseline", "vae"):
        raise ValueError(f"embedding must be 'baseline' or 'vae', got {embedding!r}")
    if int(n_per_class) < 2:
        raise ValueError(f"n_per_class must be at least 2 (for the Frechet distance), got "
                         f"{n_per_class}")
    pcfg = prototype_config or PrototypeConfig(seed=seed)
    splits = _splits(data, budget)
    train = splits["train"]
    real = per_class(splits["test"], budget.test_per_class, 0)
    base_model = _model(model, train.class_names, budget)
    if base_model.config.image_size != train.image_size:
        raise ValueError(f"the model takes {base_model.config.image_size} px images, the data are "
                         f"{train.image_size} px; pass a budget with image_size="
                         f"{base_model.config.image_size}")
    clf = _baseline(baseline, train.class_names, budget)
    # A model with an input_crop generates cells of its crop: the baseline that embeds the
    # training cells and checks the generated ones must take that crop, and sees what the
    # model sees of the real images (model.crop_input).
    gen_size = base_model.config.vae_size
    if clf.image_size != gen_size:
        raise ValueError(f"the baseline takes {clf.image_size} px images but the model generates "
                         f"{gen_size} px ones; pass a baseline trained on {gen_size} px images "
                         f"(`cytoviz baseline train --input-crop {gen_size}`)")
    train_view, real_view = base_model.crop_input(train), base_model.crop_input(real)
    cfg = _gen_config(generate_config, seed)
    steps = budget.fine_tune_steps
    tag = f"{embedding}-{projection}-M{pcfg.n_prototypes}-steps{steps}-seed{seed}"
    samples: dict[str, CellDataset] = {}
    losses: dict[str, float] = {}
    with open_store(out, budget, "prototypes") as store:
        feats = (prototypes.embed(train_view, baseline=clf) if embedding == "baseline"
                 else prototypes.embed(train, model=base_model))
        ppath = store.root / "prototypes" / f"{slug(f'{embedding}-{pcfg.n_prototypes}-{seed}')}.npz"
        if store.cache and ppath.is_file() and prototypes.Prototypes.load(ppath).config == pcfg:
            protos = prototypes.Prototypes.load(ppath)
        else:
            protos = prototypes.learn_prototypes(feats, train.labels, train.class_names,
                                                 config=pcfg)
            protos.save(ppath)
        cond = prototypes.prototype_conditioning(protos, base_model, method=projection, seed=seed,
                                                 features=feats if projection == "pca" else None)
        for name, conditioning in (("one-hot", None), ("prototype", cond)):
            folder = store.model_dir(f"{name}-{tag}")
            # history.json is written last: a folder without it holds an unfinished run
            if store.cache and (folder / "history.json").is_file():
                gen = prototypes.PrototypeGenerator.load(folder)
                hist = load_json(folder / "history.json")["loss"]
            else:
                gen = prototypes.train_prototype_conditioned(
                    base_model, train, conditioning, steps=steps,
                    batch_size=min(budget.train.batch_size, len(train)), lr=budget.train.lr,
                    class_dropout=budget.train.class_dropout,
                    min_snr_gamma=budget.train.min_snr_gamma, seed=seed, progress=progress)
                hist = gen.history
                gen.save(folder)
                save_json({"loss": hist}, folder / "history.json")
            gen.model.to(resolve_device(budget))
            losses[name] = float(np.mean(hist[-max(1, len(hist) // 10):]))
            samples[name], _ = _generated(store, _gen_key(f"{name}-{tag}", n_per_class, cfg),
                                          lambda g=gen: g.generate("all", n_per_class, cfg,
                                                                   progress=progress))
        unit = f"compare-{tag}-{_gen_key('n', n_per_class, cfg)}-real{len(real)}"
        table = store.load(unit)
        if table is None:
            table = prototypes.compare_generators(samples, real_view, clf)
            counts = real.class_counts()
            table["n_real"] = [len(real) if c == "all" else counts.get(c, 0)
                               for c in table["intended"]]
            table["embedding"] = embedding
            table["projection"] = projection
            table["fine_tune_steps"] = steps
            table["final_loss"] = table["generator"].map(losses)
            table["frechet_features"] = FRECHET_LABEL
            for col, value in _gen_columns(cfg).items():
                table[col] = value
            store.save(unit, table)
    return finish_table(table, budget), samples
