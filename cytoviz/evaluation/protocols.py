"""The paper's holistic evaluation: anomaly detection, domain shift, low data, few-shot adaptation.

Every protocol (METHOD.md sections 2 and 7) is a function that trains what it needs, scores the
test images and returns a tidy :class:`pandas.DataFrame`; :mod:`cytoviz.pl.evaluation` draws the
tables and ``cytoviz evaluate`` runs them from the command line.

* :func:`anomaly_scores` / :func:`anomaly_auc` / :func:`certainty_kde`: train with one class
  held out (blast, then erythroblast), score the certainty ``zeta`` of every test image
  (Figure 3).
* :func:`domain_shift` / :func:`domain_shift_table`: train in-domain, test on the mild and strong
  shifted sets, balanced accuracy mean +/- sd over seeds (Table 2).
* :func:`low_data`: 10, 20, 50, 150 training images per class, repeats with fresh subsamples
  (Figure 4).
* :func:`few_shot`: fine-tune on at most 100 class-proportional target images, with and without
  Reinhard colour transfer (Chossegros et al.).

How much work is done is set by one :class:`EvalBudget` (``cpu_fast`` for tests, ``cpu`` for a
reduced CPU run, ``paper`` for the full protocol); every table has a ``budget`` column and
``table.attrs["budget"]`` so a reduced run is never mistaken for the paper's.

Resuming: with ``out=DIR`` every finished unit of work (one model x one seed x one setting) is
cached as a CSV under ``DIR/units/`` and every trained model under ``DIR/models/``; a rerun skips
them. ``DIR/budget.json`` records the budget; a rerun with another budget is refused.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cytoviz._config import Config
from cytoviz._io import atomic_path, load_json
from cytoviz.data._dataset import CellDataset
from cytoviz.diffusion.model import ModelConfig
from cytoviz.diffusion.train import TrainConfig
from cytoviz.evaluation.baseline import BaselineConfig

if TYPE_CHECKING:
    from cytoviz.diffusion import DiffusionModel
    from cytoviz.evaluation.baseline import BaselineClassifier

__all__ = [
    "MODELS",
    "MODEL_LABELS",
    "EvalBudget",
    "anomaly_auc",
    "anomaly_scores",
    "anomaly_table",
    "anomaly_test_set",
    "certainty_kde",
    "class_proportional_split",
    "domain_shift",
    "domain_shift_latex",
    "domain_shift_table",
    "eval_data",
    "few_shot",
    "low_data",
    "stored_results",
    "summarise",
]

#: The two models every protocol compares.
MODELS: tuple[str, ...] = ("diffusion", "baseline")
#: Display names of the models in tables and figures.
MODEL_LABELS: dict[str, str] = {"diffusion": "CytoDiffusion", "baseline": "CNN baseline"}
#: Display names of the test sets of the domain-shift protocol.
TEST_SETS: dict[str, str] = {"test": "in-domain", "test_mild": "mild shift", "test_strong": "strong shift"}

_BUDGET_NAMES = ("fast", "cpu", "paper", "custom")


# --------------------------------------------------------------------------------------------
# budget


def _tiny_test_model() -> ModelConfig:
    return ModelConfig(preset="custom", image_size=16, vae_channels=(8, 16), unet_channels=(16, 16),
                       token_dim=16, n_tokens=1, norm_num_groups=4, attention_head_dim=4)


@dataclasses.dataclass(frozen=True)
class EvalBudget(Config):
    """How much work the evaluation protocols do.

    Use a preset: :meth:`cpu_fast` (tests and CI, seconds), :meth:`cpu` (a reduced run on a few
    CPU cores) or :meth:`paper` (the full protocol of METHOD.md section 7, for a GPU), and
    :meth:`~cytoviz._config.Config.replace` to change single fields.

    Parameters
    ----------
    name
        ``"fast"``, ``"cpu"``, ``"paper"`` or ``"custom"``, optionally with a suffix for a
        changed preset (``"cpu+custom"``); written into every output table.
    image_size
        Side length of the synthetic images.
    model
        Architecture of the diffusion models trained by the protocols.
    train
        Diffusion training recipe (steps of the VAE and UNet stages, batch sizes ...).
    baseline
        Architecture and recipe of the CNN baseline (epochs ...).
    max_trials, min_trials
        Diffusion classifier trials per image (:class:`~cytoviz.diffusion.ClassifyConfig`).
    classify_batch_size
        (image, class) pairs per UNet pass in the classifier.
    test_per_class
        Test images per class (``None``: the whole test set).
    seeds
        Seeds (training runs) per model for domain shift and few-shot; repeats of the low-data
        protocol.
    data_scale
        Scale of the synthetic benchmark (:func:`cytoviz.data.default_splits`).
    low_data_sizes
        Training images per class of the low-data protocol.
    val_checkpoints
        Diffusion checkpoints compared on validation accuracy (evenly spaced over the UNet
        steps; ``1``: keep the final weights). The baseline keeps its best validation epoch.
    val_per_class
        Validation images per class used to pick the diffusion checkpoint.
    few_shot_images
        Largest number of target images for fine-tuning (100 in Chossegros et al.).
    fine_tune_steps
        UNet steps of diffusion fine-tuning (VAE frozen).
    fine_tune_epochs, fine_tune_lr
        Epochs and learning rate of baseline fine-tuning.
    device
        Torch device of the baseline and the classifier (``None``: CUDA where available, else
        the CPU; diffusion training picks its device through ``accelerate``).
    """

    name: str = "cpu"
    image_size: int = 64
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig.tiny)
    train: TrainConfig = dataclasses.field(
        default_factory=lambda: TrainConfig(steps=1000, vae_steps=300, val_every=0,
                                            val_accuracy_images=0, checkpoint_every=250)
    )
    baseline: BaselineConfig = dataclasses.field(
        default_factory=lambda: BaselineConfig(epochs=15)
    )
    max_trials: int = 100
    min_trials: int = 20
    classify_batch_size: int = 64
    test_per_class: int | None = 10
    seeds: int = 2
    data_scale: float = 0.25
    low_data_sizes: tuple[int, ...] = (10, 20, 50, 150)
    val_checkpoints: int = 1
    val_per_class: int = 5
    few_shot_images: int = 100
    fine_tune_steps: int = 200
    fine_tune_epochs: int = 20
    fine_tune_lr: float = 2e-4
    device: str | None = None

    def validate(self) -> None:
        if self.name.split("+")[0] not in _BUDGET_NAMES:
            raise ValueError(
                f"EvalBudget.name must be one of {_BUDGET_NAMES} (optionally with a '+suffix' "
                f"for a changed preset, e.g. 'cpu+custom'), got {self.name!r}"
            )
        if self.model.image_size != self.image_size:
            raise ValueError(
                f"EvalBudget.image_size ({self.image_size}) must equal model.image_size "
                f"({self.model.image_size}); change both"
            )
        for f in ("max_trials", "min_trials", "classify_batch_size", "seeds", "val_checkpoints",
                  "val_per_class", "few_shot_images", "fine_tune_steps", "fine_tune_epochs"):
            if int(getattr(self, f)) < 1:
                raise ValueError(f"EvalBudget.{f} must be >= 1, got {getattr(self, f)}")
        if self.min_trials < 2 or self.max_trials < self.min_trials:
            raise ValueError(
                f"need 2 <= min_trials <= max_trials, got {self.min_trials} and {self.max_trials}"
            )
        if self.test_per_class is not None and self.test_per_class < 1:
            raise ValueError(f"test_per_class must be >= 1 or None, got {self.test_per_class}")
        if not 0 < self.data_scale <= 100:
            raise ValueError(f"data_scale must lie in (0, 100], got {self.data_scale}")
        if not self.low_data_sizes or any(int(n) < 1 for n in self.low_data_sizes):
            raise ValueError(f"low_data_sizes must be positive integers, got {self.low_data_sizes}")
        if self.fine_tune_lr <= 0:
            raise ValueError(f"fine_tune_lr must be positive, got {self.fine_tune_lr}")

    @classmethod
    def cpu_fast(cls, **changes: Any) -> EvalBudget:
        """Tests and CI: 16 px images, a very small model, a handful of steps (seconds)."""
        base: dict[str, Any] = dict(
            name="fast", image_size=16, model=_tiny_test_model(),
            train=TrainConfig(steps=4, vae_steps=2, batch_size=4, vae_batch_size=4, warmup_steps=2,
                              checkpoint_every=100, val_every=0, val_accuracy_images=0,
                              log_every=1, augment=None),
            baseline=BaselineConfig(channels=(8, 16), norm_groups=4, stem_stride=1, epochs=2,
                                    batch_size=16, lr=5e-3, dropout=0.0),
            max_trials=6, min_trials=3, classify_batch_size=64, test_per_class=2, seeds=1,
            data_scale=0.04, low_data_sizes=(2, 4), val_per_class=1, few_shot_images=10,
            fine_tune_steps=2, fine_tune_epochs=1,
        )
        base.update(changes)
        return cls(**base)

    @classmethod
    def cpu(cls, **changes: Any) -> EvalBudget:
        """The reduced CPU budget: 64 px ``tiny`` model, 300 VAE + 1,000 UNet steps, 100 trials,
        2 seeds, 10 test images per class, a quarter of the synthetic benchmark.

        Roughly an hour of one CPU core per diffusion model; scale it down further with
        :meth:`~cytoviz._config.Config.replace` (or the ``cytoviz evaluate`` overrides)."""
        base: dict[str, Any] = dict(name="cpu")
        base.update(changes)
        return cls(**base)

    @classmethod
    def paper(cls, **changes: Any) -> EvalBudget:
        """The full protocol (for a GPU): 5 seeds, 10/20/50/150 per class, 2,000 trials,
        the whole test sets and benchmark, the full ``tiny`` training recipe, checkpoint picked
        on validation accuracy among 5."""
        base: dict[str, Any] = dict(
            name="paper", train=TrainConfig(val_every=0, val_accuracy_images=0),
            baseline=BaselineConfig(epochs=30), max_trials=2000, min_trials=20,
            test_per_class=None, seeds=5, data_scale=1.0, val_checkpoints=5, val_per_class=30,
            fine_tune_steps=500, fine_tune_epochs=30,
        )
        base.update(changes)
        return cls(**base)

    def build_model(self, class_names: Sequence[str], *, seed: int = 0) -> DiffusionModel:
        """A new diffusion model of this budget's architecture (random weights)."""
        from cytoviz.diffusion import DiffusionModel

        return DiffusionModel.build(class_names, self.model, seed=seed)

    @classmethod
    def preset(cls, name: str, **changes: Any) -> EvalBudget:
        """The preset called ``"fast"``, ``"cpu"`` or ``"paper"``."""
        presets = {"fast": cls.cpu_fast, "cpu": cls.cpu, "paper": cls.paper}
        if name not in presets:
            raise ValueError(f"unknown budget {name!r}; choose one of {sorted(presets)}")
        return presets[name](**changes)


def _budget(budget: EvalBudget | str | None) -> EvalBudget:
    if budget is None:
        return EvalBudget.cpu()
    if isinstance(budget, str):
        return EvalBudget.preset(budget)
    if not isinstance(budget, EvalBudget):
        raise TypeError(f"budget must be an EvalBudget or a preset name, got {type(budget).__name__}")
    return budget


# --------------------------------------------------------------------------------------------
# data

Splits = Mapping[str, CellDataset]


def eval_data(
    data: str | os.PathLike[str] | Splits = "synthetic",
    *,
    budget: EvalBudget | str | None = None,
    seed: int = 0,
) -> dict[str, CellDataset]:
    """The splits the protocols use: ``train``, ``val``, ``test`` (and shifted test sets).

    Parameters
    ----------
    data
        ``"synthetic"``: :func:`cytoviz.data.default_splits` at the budget's image size and
        scale (``train``, ``val``, ``test``, ``test_mild``, ``test_strong``). A folder: split
        subfolders (``train/``, ``val/``, ``test/``, ``test_mild/`` ...) of class folders are
        read with :func:`cytoviz.data.load_folder`; a folder of class folders only (like the
        PBC examples) is split per class, the first half of the sorted files for ``train`` and
        the rest for ``test`` (no ``val``). A mapping of split name to
        :class:`~cytoviz.data.CellDataset` is used as it is.
    budget
        Sets the image size and the synthetic scale.
    seed
        Seed of the synthetic generator.
    """
    budget = _budget(budget)
    if isinstance(data, Mapping):
        splits = dict(data)
    elif str(data) == "synthetic":
        from cytoviz.data.synth import SynthConfig, default_splits

        splits = default_splits(SynthConfig(image_size=budget.image_size, seed=seed),
                                scale=budget.data_scale)
    else:
        splits = _folder_splits(Path(data), budget.image_size)
    for need in ("train", "test"):
        if need not in splits:
            raise ValueError(f"the data has no {need!r} split (it has {sorted(splits)})")
    size = splits["train"].image_size
    if size != budget.image_size:
        raise ValueError(
            f"the images are {size} px but the budget's model takes {budget.image_size} px; "
            f"use budget.replace(image_size={size}, model=budget.model.replace(image_size={size}))"
        )
    return splits


def _folder_splits(root: Path, image_size: int) -> dict[str, CellDataset]:
    from cytoviz.data.loaders import load_folder

    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder; pass 'synthetic' or a data folder")
    names = {p.name.lower(): p.name for p in root.iterdir() if p.is_dir()}
    known = [s for s in ("train", "val", "test", "test_mild", "test_strong") if s in names]
    if "train" in known:
        full = {s: load_folder(root, image_size=image_size, split=names[s]) for s in known}
        classes = full["train"].class_names
        return {s: ds if s == "train" else _match_classes(ds, classes, s) for s, ds in full.items()}
    ds = load_folder(root, image_size=image_size)
    order = np.argsort(ds.meta["path"].to_numpy().astype(str), kind="stable")
    first = np.zeros(len(ds), dtype=bool)
    for c in range(len(ds.class_names)):
        idx = order[ds.labels[order] == c]
        first[idx[: (len(idx) + 1) // 2]] = True
    return {"train": ds.subset(first), "test": ds.subset(~first)}


def _match_classes(ds: CellDataset, classes: Sequence[str], split: str) -> CellDataset:
    extra = [c for c in ds.class_names if c not in classes]
    if extra:
        raise ValueError(f"split {split!r} has classes {extra} that the training split lacks")
    keep = [c for c in classes if c in ds.class_names]
    sub = ds.select_classes(keep)
    remap = np.asarray([list(classes).index(c) for c in keep], dtype=np.int64)
    return dataclasses.replace(sub, labels=remap[sub.labels], class_names=tuple(classes))


def _per_class(ds: CellDataset, n: int | None, seed: int) -> CellDataset:
    """At most ``n`` images of every class (random, seeded); all with ``n=None``."""
    if n is None:
        return ds
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for c in range(len(ds.class_names)):
        idx = np.flatnonzero(ds.labels == c)
        if len(idx) > n:
            idx = np.sort(rng.choice(idx, n, replace=False))
        keep.extend(idx.tolist())
    return ds.subset(np.sort(np.asarray(keep, dtype=np.int64)))


def class_proportional_split(
    ds: CellDataset, n: int, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Pick at most ``n`` images in proportion to the class sizes; return (picked, rest) indices.

    Every class present keeps at least one image in the rest where it has two or more. Quotas
    are ``n * share`` rounded by largest remainders.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    counts = np.bincount(ds.labels, minlength=len(ds.class_names))
    n = min(n, max(0, len(ds) - int(np.count_nonzero(counts))))
    if n <= 0:
        raise ValueError(
            f"the data set ({len(ds)} images) is too small to leave evaluation images after "
            "picking fine-tuning images"
        )
    exact = n * counts / counts.sum()
    quota = np.floor(exact).astype(int)
    for c in np.argsort(-(exact - quota), kind="stable")[: n - quota.sum()]:
        quota[c] += 1
    quota = np.minimum(quota, np.maximum(counts - 1, 0))
    picked: list[int] = []
    for c, q in enumerate(quota):
        idx = np.flatnonzero(ds.labels == c)
        if q > 0:
            picked.extend(rng.choice(idx, q, replace=False).tolist())
    pick = np.sort(np.asarray(picked, dtype=np.int64))
    rest = np.setdiff1d(np.arange(len(ds)), pick)
    return pick, rest


# --------------------------------------------------------------------------------------------
# caching of finished units


class _Store:
    """Unit cache (CSV per unit) and model folders below ``out``; a temp folder without ``out``."""

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
        return self.root / "units" / self.protocol / f"{_slug(key)}.csv"

    def load(self, key: str) -> pd.DataFrame | None:
        path = self.unit_path(key)
        if self.cache and path.is_file():
            return pd.read_csv(path, keep_default_na=False, na_values=[""])
        return None

    def save(self, key: str, frame: pd.DataFrame) -> None:
        if self.cache:
            write_csv(frame, self.unit_path(key))

    def model_dir(self, key: str) -> Path:
        return self.root / "models" / _slug(key)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


@contextlib.contextmanager
def _store(out: str | os.PathLike[str] | None, budget: EvalBudget, protocol: str) -> Iterator[_Store]:
    store = _Store(out, budget, protocol)
    try:
        yield store
    finally:
        store.close()


def json_roundtrip(obj: Any) -> Any:
    import json

    from cytoviz._io import _json_default

    return json.loads(json.dumps(obj, default=_json_default))


def write_csv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a table as CSV atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_")


def _seed_list(seeds: int | Sequence[int] | None, default: int) -> list[int]:
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


def _models(models: Sequence[str]) -> list[str]:
    models = list(models)
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        raise ValueError(f"models must be a non-empty subset of {list(MODELS)}, got {models}")
    return models


def _progress_units(units: list[Any], desc: str, progress: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(units, desc=desc, disable=not progress, leave=False)


# --------------------------------------------------------------------------------------------
# training and scoring (module-level so tests can count or replace them)


def _fit_diffusion(
    train: CellDataset,
    val: CellDataset | None,
    budget: EvalBudget,
    seed: int,
    folder: Path,
    progress: bool,
) -> DiffusionModel:
    """Train (or load the finished) diffusion model in ``folder``."""
    from cytoviz.diffusion import DiffusionModel
    from cytoviz.diffusion import train as diffusion_train

    final = folder / "selected"
    if (final / "cytoviz.json").is_file():
        return DiffusionModel.from_pretrained(final)
    cfg = budget.train.replace(seed=seed)
    n_ckpt = budget.val_checkpoints if val is not None else 1
    if n_ckpt == 1:
        model = budget.build_model(train.class_names, seed=seed)
        model = diffusion_train(model, train, None, cfg, out_dir=folder / "run", progress=progress)
        _copy_model(folder / "run" / "model", final)
        return model
    # Checkpoint selection on validation balanced accuracy.
    assert val is not None
    val_small = _per_class(val, budget.val_per_class, seed)
    stops = np.unique(np.rint(np.linspace(0, cfg.steps, n_ckpt + 1)[1:]).astype(int))
    best = -1.0
    for stop in stops:
        model = budget.build_model(train.class_names, seed=seed)
        model = diffusion_train(model, train, None, cfg, out_dir=folder / "run", progress=progress,
                                stop_at=cfg.n_vae_steps + int(stop))
        score = _score_diffusion(model, val_small, budget, seed, progress)["balanced_accuracy"]
        if score >= best:
            best = score
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


def _fit_baseline(
    train: CellDataset,
    val: CellDataset | None,
    budget: EvalBudget,
    seed: int,
    folder: Path,
    progress: bool,
) -> BaselineClassifier:
    """Train (or load the finished) CNN baseline in ``folder``."""
    from cytoviz.evaluation.baseline import BaselineClassifier, train_baseline

    device = _device(budget)
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return BaselineClassifier.load(folder, device=device)
    clf = train_baseline(train, val, budget.baseline.replace(seed=seed), progress=progress,
                         device=device)
    clf.save(folder)
    return clf


def _device(budget: EvalBudget) -> str:
    if budget.device is not None:
        return budget.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _fit(model: str, train: CellDataset, val: CellDataset | None, budget: EvalBudget, seed: int,
         folder: Path, progress: bool) -> Any:
    if model == "diffusion":
        return _fit_diffusion(train, val, budget, seed, folder, progress)
    return _fit_baseline(train, val, budget, seed, folder, progress)


def _classify(model: DiffusionModel, images: np.ndarray, budget: EvalBudget, seed: int,
              progress: bool) -> Any:
    from cytoviz.diffusion import ClassifyConfig, classify

    cfg = ClassifyConfig(max_trials=budget.max_trials, min_trials=budget.min_trials,
                         batch_size=budget.classify_batch_size, seed=seed, keep_error_maps=False,
                         device=_device(budget))
    return classify(model, images, cfg, progress=progress)


def _accuracies(true_names: np.ndarray, pred_names: np.ndarray) -> dict[str, float]:
    true_names = np.asarray(true_names, dtype=str)
    pred_names = np.asarray(pred_names, dtype=str)
    if true_names.size == 0:
        raise ValueError("cannot score an empty test set")
    ok = true_names == pred_names
    recalls = [ok[true_names == c].mean() for c in np.unique(true_names)]
    return {"accuracy": float(ok.mean()), "balanced_accuracy": float(np.mean(recalls)),
            "n_images": int(true_names.size)}


def _score_diffusion(model: DiffusionModel, ds: CellDataset, budget: EvalBudget, seed: int,
                     progress: bool) -> dict[str, float]:
    result = _classify(model, ds.images, budget, seed, progress)
    return _accuracies(ds.label_names, result.prediction_names)


def _score(model_name: str, model: Any, ds: CellDataset, budget: EvalBudget, seed: int,
           progress: bool) -> dict[str, float]:
    if model_name == "diffusion":
        return _score_diffusion(model, ds, budget, seed, progress)
    pred = np.asarray(model.class_names, dtype=str)[model.predict(ds)]
    return _accuracies(ds.label_names, pred)


def _finish(frame: pd.DataFrame, budget: EvalBudget) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    frame["budget"] = budget.name
    frame.attrs["budget"] = budget.name
    frame.attrs["budget_config"] = budget.to_dict()
    return frame


# --------------------------------------------------------------------------------------------
# anomaly detection (Figure 3)

ANOMALY_COLUMNS = ("model", "held_out", "seed", "image", "true_class", "is_abnormal", "certainty",
                   "certainty_norm")


def anomaly_table(
    certainty: np.ndarray,
    is_abnormal: np.ndarray,
    *,
    model: str,
    held_out: str,
    true_class: Sequence[str] | None = None,
    seed: int = 0,
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

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ANOMALY_COLUMNS`; ``certainty_norm`` is ``certainty`` divided by its
        maximum (:func:`cytoviz.anomaly.normalise_certainty`).
    """
    from cytoviz.anomaly import normalise_certainty

    c = np.asarray(certainty, dtype=np.float64).ravel()
    a = np.asarray(is_abnormal, dtype=bool).ravel()
    if c.shape != a.shape:
        raise ValueError(f"certainty has {c.size} values but is_abnormal has {a.size}")
    if not np.all(np.isfinite(c)):
        raise ValueError("certainty contains NaN or inf; check the classification result")
    return pd.DataFrame({
        "model": model, "held_out": held_out, "seed": int(seed), "image": np.arange(c.size),
        "true_class": (np.asarray(true_class, dtype=str) if true_class is not None
                       else np.where(a, held_out, "")),
        "is_abnormal": a, "certainty": c, "certainty_norm": normalise_certainty(c),
    })


def anomaly_test_set(
    data: str | os.PathLike[str] | Splits = "synthetic",
    *,
    budget: EvalBudget | str | None = None,
) -> CellDataset:
    """The test images of :func:`anomaly_scores`, in the order of its ``image`` column.

    Pass them to :class:`cytoviz.widgets.AnomalyExplorer` to see the flagged cells.
    """
    budget = _budget(budget)
    return _per_class(eval_data(data, budget=budget)["test"], budget.test_per_class, 0)


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
    image gets a certainty: ``zeta`` of the diffusion classification result, and the same score
    on the baseline's negated logits.

    Parameters
    ----------
    data
        ``"synthetic"``, a folder, or a mapping of splits (see :func:`eval_data`).
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
        One row per (model, held-out class, seed, test image), columns :data:`ANOMALY_COLUMNS`
        plus ``budget``; ``certainty_norm`` is divided by the maximum per model, held-out class
        and seed. ``attrs["budget"]`` names the budget.
    """
    budget = _budget(budget)
    models = _models(models)
    seed_list = _seed_list(seeds, 1)
    splits = eval_data(data, budget=budget)
    classes = splits["train"].class_names
    unknown = [h for h in held_out if h not in classes]
    if unknown or not held_out:
        raise ValueError(f"held_out must name classes of the data {list(classes)}, got {list(held_out)}")
    test = anomaly_test_set(splits, budget=budget)
    units = [(h, m, s) for h in held_out for m in models for s in seed_list]
    frames: list[pd.DataFrame] = []
    with _store(out, budget, "anomaly") as store:
        for h, m, s in _progress_units(units, "anomaly", progress):
            key = f"{m}-without-{h}-seed{s}"
            cached = store.load(key)
            if cached is None:
                keep = [c for c in classes if c != h]
                train = splits["train"].select_classes(keep)
                val = splits["val"].select_classes(keep) if "val" in splits else None
                fitted = _fit(m, train, val, budget, s, store.model_dir(key), progress)
                if m == "diffusion":
                    cert = _classify(fitted, test.images, budget, s, progress).zeta
                else:
                    from cytoviz.anomaly import logit_certainty

                    cert = logit_certainty(fitted.predict_logits(test.images))
                cached = anomaly_table(cert, test.label_names == h, model=m, held_out=h,
                                       true_class=test.label_names, seed=s)
                store.save(key, cached)
            frames.append(cached)
    table = pd.concat(frames, ignore_index=True)
    table["is_abnormal"] = table["is_abnormal"].astype(bool)
    table["true_class"] = table["true_class"].astype(str)
    return _finish(table, budget)


def _check_anomaly_table(table: pd.DataFrame) -> None:
    missing = [c for c in ("model", "held_out", "is_abnormal", "certainty") if c not in table]
    if missing:
        raise ValueError(
            f"the anomaly table lacks column(s) {missing}; build it with anomaly_scores or "
            "anomaly_table"
        )


def anomaly_auc(table: pd.DataFrame) -> pd.DataFrame:
    """ROC AUC of normal vs abnormal by certainty, per model and held-out class.

    Parameters
    ----------
    table
        Output of :func:`anomaly_scores` (or :func:`anomaly_table`). Several seeds are pooled.

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``held_out``, ``auc`` (probability that a normal image is more certain
        than an abnormal one, ties count one half; ``sklearn.metrics.roc_auc_score``),
        ``n_normal``, ``n_abnormal``. A group without both kinds of image gets ``NaN``.
    """
    from sklearn.metrics import roc_auc_score

    _check_anomaly_table(table)
    rows = []
    for (m, h), g in table.groupby(["model", "held_out"], sort=False):
        abnormal = g["is_abnormal"].to_numpy(dtype=bool)
        n_ab = int(abnormal.sum())
        n_no = int((~abnormal).sum())
        auc = (float(roc_auc_score(~abnormal, g["certainty"].to_numpy(dtype=float)))
               if n_ab and n_no else float("nan"))
        rows.append({"model": m, "held_out": h, "auc": auc, "n_normal": n_no, "n_abnormal": n_ab})
    out = pd.DataFrame(rows, columns=["model", "held_out", "auc", "n_normal", "n_abnormal"])
    out.attrs.update(table.attrs)
    return out


def _bandwidth(x: np.ndarray) -> float:
    """Scott's rule for a Gaussian kernel, with a floor for (nearly) constant data."""
    sd = float(np.std(x, ddof=1)) if x.size > 1 else 0.0
    bw = 1.06 * sd * x.size ** (-1 / 5) if x.size else 0.0
    return max(bw, 0.02)


def certainty_kde(
    table: pd.DataFrame,
    *,
    bandwidth: float | None = None,
    grid: int = 200,
    column: str = "certainty_norm",
) -> pd.DataFrame:
    """Gaussian KDEs of the normalised certainty, normal vs abnormal, per model and held-out class.

    Parameters
    ----------
    table
        Output of :func:`anomaly_scores`.
    bandwidth
        Kernel standard deviation in units of ``column``; ``None``: Scott's rule per curve.
    grid
        Points of the evaluation grid (shared by the curves of one panel).
    column
        The score to smooth (``"certainty_norm"``: certainty divided by its maximum).

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``held_out``, ``group`` (``"normal"``/``"abnormal"``), ``x``,
        ``density`` (each curve integrates to about 1), ``bandwidth``, ``n``.
    """
    _check_anomaly_table(table)
    if column not in table:
        raise ValueError(f"the table has no column {column!r}")
    if bandwidth is not None and not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive or None, got {bandwidth}")
    if grid < 10:
        raise ValueError(f"grid must be >= 10 points, got {grid}")
    frames = []
    for (m, h), g in table.groupby(["model", "held_out"], sort=False):
        values = g[column].to_numpy(dtype=float)
        bws = {}
        for name, sel in (("normal", ~g["is_abnormal"].to_numpy(bool)),
                          ("abnormal", g["is_abnormal"].to_numpy(bool))):
            bws[name] = bandwidth if bandwidth is not None else _bandwidth(values[sel])
        pad = 3 * max(bws.values())
        x = np.linspace(min(values.min(), 0.0) - pad, max(values.max(), 1.0) + pad, grid)
        for name, sel in (("normal", ~g["is_abnormal"].to_numpy(bool)),
                          ("abnormal", g["is_abnormal"].to_numpy(bool))):
            v = values[sel]
            if v.size == 0:
                continue
            bw = bws[name]
            dens = np.exp(-0.5 * ((x[:, None] - v[None, :]) / bw) ** 2).sum(1)
            dens /= v.size * bw * np.sqrt(2 * np.pi)
            frames.append(pd.DataFrame({"model": m, "held_out": h, "group": name, "x": x,
                                        "density": dens, "bandwidth": bw, "n": v.size}))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------
# domain shift (Table 2)


def _load_pretrained(path: str | os.PathLike[str], classes: Sequence[str], budget: EvalBudget
                     ) -> DiffusionModel:
    from cytoviz.diffusion import DiffusionModel

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
    from cytoviz.evaluation.baseline import BaselineClassifier

    clf = BaselineClassifier.load(path, device=_device(budget))
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
    pretrained: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Domain shift (Table 2): train in-domain, test in-domain and on shifted test sets.

    Parameters
    ----------
    data
        ``"synthetic"`` (test sets ``test``, ``test_mild``, ``test_strong``), a folder or a
        mapping of splits (see :func:`eval_data`); every ``test*`` split is scored.
    models
        Any of ``"diffusion"``, ``"baseline"``.
    budget
        An :class:`EvalBudget` or a preset name (default ``"cpu"``).
    seeds
        Number of seeds or a list (default ``budget.seeds``; 5 in the paper).
    pretrained
        A trained diffusion model folder (e.g. ``data/default_model``) used as the diffusion
        model of every seed instead of training one: the seeds then vary only the classifier's
        random draws (timesteps, noise, test-time augmentation), not the training. Its rows
        have ``source`` naming it.
    out
        Output folder for resume.
    progress
        Show tqdm progress bars.

    Returns
    -------
    pandas.DataFrame
        One row per (model, seed, test set): ``model``, ``seed``, ``split``, ``test_set``
        (display name), ``accuracy``, ``balanced_accuracy``, ``n_images``, ``source``
        (``"trained"`` or ``"pretrained: PATH"``), ``budget``.
    """
    budget = _budget(budget)
    models = _models(models)
    seed_list = _seed_list(seeds, budget.seeds)
    splits = eval_data(data, budget=budget)
    tests = [s for s in splits if s.startswith("test")]
    test_sets = {s: _per_class(splits[s], budget.test_per_class, 0) for s in tests}
    units = [(m, s) for m in models for s in seed_list]
    frames = []
    with _store(out, budget, "domain_shift") as store:
        for m, s in _progress_units(units, "domain shift", progress):
            use_pre = m == "diffusion" and pretrained is not None
            key = f"{m}-seed{s}" + ("-pretrained" if use_pre else "")
            cached = store.load(key)
            if cached is None:
                if use_pre:
                    fitted = _load_pretrained(pretrained, splits["train"].class_names, budget)
                    source = f"pretrained: {pretrained}"
                else:
                    fitted = _fit(m, splits["train"], splits.get("val"), budget, s,
                                  store.model_dir(f"{m}-seed{s}"), progress)
                    source = "trained"
                rows = []
                for split, ds in test_sets.items():
                    scores = _score(m, fitted, ds, budget, s, progress)
                    rows.append({"model": m, "seed": s, "split": split,
                                 "test_set": TEST_SETS.get(split, split), **scores,
                                 "source": source})
                cached = pd.DataFrame(rows)
                store.save(key, cached)
            frames.append(cached)
    return _finish(pd.concat(frames, ignore_index=True), budget)


def summarise(table: pd.DataFrame, by: Sequence[str], metric: str = "balanced_accuracy"
              ) -> pd.DataFrame:
    """Mean, standard deviation (ddof 1; 0 for one value) and count of ``metric`` per group."""
    missing = [c for c in (*by, metric) if c not in table]
    if missing:
        raise ValueError(f"the table lacks column(s) {missing}")
    g = table.groupby(list(by), sort=False)[metric]
    out = g.agg(mean="mean", sd=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                n="count").reset_index()
    return out


def domain_shift_table(
    table: pd.DataFrame, *, metric: str = "balanced_accuracy", percent: bool = True,
    decimals: int = 2,
) -> pd.DataFrame:
    """Table 2: ``mean ± sd`` of the metric per model (rows) and test set (columns).

    Parameters
    ----------
    table
        Output of :func:`domain_shift`.
    metric
        ``"balanced_accuracy"`` (the paper's) or ``"accuracy"``.
    percent
        Show percentages (as the paper does).
    decimals
        Decimal places.

    Returns
    -------
    pandas.DataFrame
        Strings ``"98.39 ± 0.34"`` indexed by model display name, one column per test set, a
        column ``runs`` (number of seeds) and, where a pretrained model stood in for a seed, a
        column ``note`` naming it; ``attrs["budget"]`` names the budget. Call
        ``.to_latex()`` for the LaTeX table.
    """
    s = summarise(table, ["model", "test_set"], metric)
    k = 100.0 if percent else 1.0
    s["cell"] = [f"{a * k:.{decimals}f} ± {b * k:.{decimals}f}" for a, b in zip(s["mean"], s["sd"],
                                                                                 strict=True)]
    wide = s.pivot(index="model", columns="test_set", values="cell")
    order = [t for t in dict.fromkeys(table["test_set"]) if t in wide.columns]
    wide = wide[order]
    wide["runs"] = s.groupby("model")["n"].max()
    if "source" in table:
        notes = {}
        for m, g in table.groupby("model", sort=False):
            pre = sorted({str(v) for v in g["source"] if str(v).startswith("pretrained")})
            if pre:
                seeds = sorted(set(g.loc[g["source"].astype(str).str.startswith("pretrained"),
                                         "seed"]))
                notes[m] = f"seed {', '.join(map(str, seeds))}: {'; '.join(pre)}"
        if notes:
            wide["note"] = [notes.get(m, "") for m in wide.index]
    wide.index = [MODEL_LABELS.get(m, m) for m in wide.index]
    wide.index.name = "model"
    wide.columns.name = None
    wide.attrs["budget"] = table.attrs.get("budget", table["budget"].iloc[0] if "budget" in table
                                           else None)
    wide.attrs["metric"] = metric
    return wide


def domain_shift_latex(wide: pd.DataFrame, *, caption: str | None = None) -> str:
    """LaTeX source of a :func:`domain_shift_table` (``±`` as ``$\\pm$``, ``%`` escaped).

    The caption defaults to the metric and the budget of the table.
    """
    if caption is None:
        metric = str(wide.attrs.get("metric", "balanced_accuracy")).replace("_", " ")
        caption = (f"{metric.capitalize()} (%), mean ± sd over seeds; evaluation budget "
                   f"{wide.attrs.get('budget')}.")
    text = wide.to_latex(caption=caption.replace("%", r"\%"))
    return text.replace("±", r"$\pm$")


# --------------------------------------------------------------------------------------------
# low data (Figure 4)


def _subsample(ds: CellDataset, n: int, seed: int) -> CellDataset:
    return _per_class(ds, n, seed)


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
        training, 10 for testing) or a mapping of splits (see :func:`eval_data`).
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
        ``n_train``, ``accuracy``, ``balanced_accuracy``, ``n_images`` (test), ``budget``.
    """
    budget = _budget(budget)
    models = _models(models)
    sizes = [int(n) for n in (sizes if sizes is not None else budget.low_data_sizes)]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sizes must be positive integers, got {sizes}")
    reps = _seed_list(repeats, budget.seeds)
    splits = eval_data(data, budget=budget)
    test = _per_class(splits["test"], budget.test_per_class, 0)
    val = splits.get("val")
    units = [(m, n, r) for m in models for n in sizes for r in reps]
    frames = []
    with _store(out, budget, "low_data") as store:
        for m, n, r in _progress_units(units, "low data", progress):
            key = f"{m}-n{n}-rep{r}"
            cached = store.load(key)
            if cached is None:
                train = _subsample(splits["train"], n, 10_000 + 97 * r + n)
                fitted = _fit(m, train, val, budget, r, store.model_dir(key), progress)
                scores = _score(m, fitted, test, budget, r, progress)
                cached = pd.DataFrame([{"model": m, "n_per_class": n, "repeat": r,
                                        "n_train": len(train), **scores}])
                store.save(key, cached)
            frames.append(cached)
    return _finish(pd.concat(frames, ignore_index=True), budget)


# --------------------------------------------------------------------------------------------
# few-shot domain adaptation (Chossegros et al.)


def _fine_tune_diffusion(model: DiffusionModel, ds: CellDataset, budget: EvalBudget, seed: int,
                         folder: Path, progress: bool) -> DiffusionModel:
    """Continue training from ``model`` on ``ds`` (VAE frozen); resumable in ``folder``."""
    from cytoviz.diffusion import DiffusionModel
    from cytoviz.diffusion import train as diffusion_train

    done = folder / "model" / "train_summary.json"
    if done.is_file() and load_json(done).get("completed"):
        return DiffusionModel.from_pretrained(folder / "model")
    steps = budget.fine_tune_steps
    cfg = budget.train.replace(
        seed=seed, steps=steps, train_vae=False, vae_steps=0,
        warmup_steps=min(budget.train.warmup_steps, max(steps // 10, 1)),
        batch_size=min(budget.train.batch_size, len(ds)),
    )
    return diffusion_train(copy.deepcopy(model), ds, None, cfg, out_dir=folder, progress=progress)


FEW_SHOT_STAGES = ("before", "after")


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
        splits (see :func:`eval_data`).
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
        A trained diffusion model folder (e.g. ``data/default_model``) used as the source
        diffusion model of every seed instead of training one.
    pretrained_baseline
        A saved :class:`~cytoviz.evaluation.BaselineClassifier` folder (e.g.
        ``data/default_baseline``) used as the source baseline of every seed.
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
    from cytoviz.evaluation.colour import lab_stats, reinhard_transfer

    budget = _budget(budget)
    models = _models(models)
    seed_list = _seed_list(seeds, 1)
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
        ft, ev = ds.subset(pick), _per_class(ds.subset(rest), budget.test_per_class, 0)
        for ct in cts:
            if ct:
                prepared[(t, ct)] = (
                    dataclasses.replace(ft, images=reinhard_transfer(ft.images, reference)),
                    dataclasses.replace(ev, images=reinhard_transfer(ev.images, reference)),
                )
            else:
                prepared[(t, ct)] = (ft, ev)
    units = [(m, s, t, ct) for m in models for s in seed_list for t in targets for ct in cts]
    frames = []
    sources: dict[tuple[str, int], Any] = {}
    with _store(out, budget, "few_shot") as store:
        for m, s, t, ct in _progress_units(units, "few-shot", progress):
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
                        sources[(m, s)] = _fit(m, source, splits.get("val"), budget, s,
                                               store.model_dir(f"{m}-seed{s}"), progress)
                base = sources[(m, s)]
                ft, ev = prepared[(t, ct)]
                ft = _match_classes(ft, base.class_names, t)
                before = _score(m, base, ev, budget, s, progress)
                if m == "diffusion":
                    tuned = _fine_tune_diffusion(base, ft, budget, s,
                                                 store.model_dir(f"{key}-finetuned"), progress)
                else:
                    tuned = base.fine_tune(ft, epochs=budget.fine_tune_epochs,
                                           lr=budget.fine_tune_lr, seed=s, progress=progress)
                after = _score(m, tuned, ev, budget, s, progress)
                cached = pd.DataFrame([
                    {"model": m, "seed": s, "target": t, "colour_transfer": ct, "stage": stage,
                     **sc, "n_finetune": len(ft)}
                    for stage, sc in (("before", before), ("after", after))
                ])
                store.save(key, cached)
            frames.append(cached)
    table = pd.concat(frames, ignore_index=True)
    table["colour_transfer"] = table["colour_transfer"].astype(bool)
    return _finish(table, budget)


#: Folder of the measured protocol tables shipped with the repository.
RESULTS_DIR = Path(__file__).resolve().parents[2] / "data" / "results"


def stored_results(name: str, *, folder: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """A measured protocol table shipped in ``data/results/`` (no training, no classification).

    The tables come from ``bash scripts/run_evaluations.sh`` (the reduced CPU budget; each
    table's ``budget`` column and ``NAME_budget.json`` record the settings) and from the
    generation protocols (``cytoviz evaluate class-agreement | augmentation | prototypes``).

    Parameters
    ----------
    name
        ``"anomaly"``, ``"domain_shift"``, ``"low_data"``, ``"few_shot"``,
        ``"generation_agreement"``, ``"augmentation"`` or ``"prototypes"`` (any CSV stem in
        the folder).
    folder
        Another folder of tables (default ``data/results`` of the repository).

    Returns
    -------
    pandas.DataFrame
        The table as the protocol returned it (e.g. :func:`domain_shift`'s rows), ready for
        :func:`domain_shift_table`, :func:`anomaly_auc` or the ``cytoviz.pl`` functions.

    Raises
    ------
    FileNotFoundError
        When the table is missing, naming the file and the command that writes it.
    """
    root = Path(folder) if folder is not None else RESULTS_DIR
    path = root / f"{name}.csv"
    if not path.is_file():
        have = sorted(p.stem for p in root.glob("*.csv")) if root.is_dir() else []
        raise FileNotFoundError(
            f"{path} is missing (tables there: {have or 'none'}); produce the evaluation tables "
            "with `bash scripts/run_evaluations.sh`"
        )
    frame = pd.read_csv(path)
    if "colour_transfer" in frame and frame["colour_transfer"].dtype != bool:
        flags = {"true": True, "false": False, "1": True, "0": False}
        frame["colour_transfer"] = [flags[str(v).strip().lower()] for v in frame["colour_transfer"]]
    return frame


#: Names of the protocols, for the command line.
PROTOCOLS: dict[str, Callable[..., pd.DataFrame]] = {
    "anomaly": anomaly_scores,
    "domain-shift": domain_shift,
    "low-data": low_data,
    "few-shot": few_shot,
}
