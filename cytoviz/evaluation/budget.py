"""How much work the evaluation protocols do: :class:`EvalBudget` and its presets.

One budget sets every protocol's training recipe, classifier trials, test images and seeds
(``cpu_fast`` for tests, ``cpu`` for a reduced CPU run, ``paper`` for the full protocol); every
table the protocols return names it in a ``budget`` column and ``table.attrs["budget"]``, so a
reduced run is never mistaken for the paper's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from cytoviz._config import Config
from cytoviz._io import load_json
from cytoviz.diffusion.model import DiffusionModel, ModelConfig
from cytoviz.diffusion.train import TrainConfig
from cytoviz.evaluation.baseline import BaselineConfig

__all__ = ["BUDGET_NAMES", "STEP_RULES", "EvalBudget", "resolve_budget", "scaled_steps"]

#: Names a budget may carry (optionally with a ``+suffix`` for a changed preset).
BUDGET_NAMES = ("fast", "cpu", "paper", "shipped", "custom")
#: How the training steps follow the training-set size (:func:`scaled_steps`).
STEP_RULES = ("fixed", "epochs")


def scaled_steps(n_train: int, *, reference_steps: int, reference_images: int, min_steps: int,
                 rule: str = "epochs") -> int:
    """Optimiser steps for ``n_train`` training images under a step rule.

    ``"fixed"``: ``reference_steps`` whatever the data. ``"epochs"``: as many passes over the
    data as ``reference_steps`` make over ``reference_images`` (the shipped recipe), but at
    least ``min_steps``::

        steps = max(min_steps, round(reference_steps * n_train / reference_images))

    Parameters
    ----------
    n_train
        Training images.
    reference_steps, reference_images
        The recipe's steps and the training-set size they were chosen for.
    min_steps
        Floor of the ``"epochs"`` rule (a very small set still gets enough updates).
    rule
        One of :data:`STEP_RULES`.

    Returns
    -------
    int
    """
    if rule not in STEP_RULES:
        raise ValueError(f"step rule must be one of {STEP_RULES}, got {rule!r}")
    if rule == "fixed":
        return int(reference_steps)
    if n_train < 1 or reference_images < 1:
        raise ValueError(f"need n_train >= 1 and reference_images >= 1, got {n_train}, {reference_images}")
    return max(int(min_steps), round(reference_steps * n_train / reference_images))


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
    step_rule
        How the training budgets follow the training-set size (:func:`scaled_steps`):
        ``"fixed"`` (``train.steps`` UNet steps and ``baseline.epochs`` epochs whatever the
        data) or ``"epochs"`` (both counted in optimiser steps, scaled to the data from
        ``train.steps`` resp. ``baseline.epochs`` over ``reference_images`` images).
    reference_images
        Training images the reference budgets were chosen for (the shipped model's 2,290).
    min_steps, baseline_min_steps
        Floors of the ``"epochs"`` rule for the diffusion UNet and the CNN.
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
    step_rule: str = "fixed"
    reference_images: int = 2290
    min_steps: int = 2000
    baseline_min_steps: int = 1000

    def validate(self) -> None:
        if self.name.split("+")[0] not in BUDGET_NAMES:
            raise ValueError(
                f"EvalBudget.name must be one of {BUDGET_NAMES} (optionally with a '+suffix' "
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
        if self.step_rule not in STEP_RULES:
            raise ValueError(f"step_rule must be one of {STEP_RULES}, got {self.step_rule!r}")
        for f in ("reference_images", "min_steps", "baseline_min_steps"):
            if int(getattr(self, f)) < 1:
                raise ValueError(f"EvalBudget.{f} must be >= 1, got {getattr(self, f)}")

    def train_config(self, n_train: int, *, seed: int) -> TrainConfig:
        """The diffusion recipe for ``n_train`` training images (UNet steps by :attr:`step_rule`).

        Parameters
        ----------
        n_train
            Training images.
        seed
            Training seed.

        Returns
        -------
        TrainConfig
        """
        if self.step_rule == "fixed":
            return self.train.replace(seed=seed)
        steps = scaled_steps(n_train, reference_steps=self.train.steps,
                             reference_images=self.reference_images, min_steps=self.min_steps,
                             rule=self.step_rule)
        return self.train.replace(seed=seed, steps=steps,
                                  warmup_steps=min(self.train.warmup_steps, max(steps // 10, 1)))

    def baseline_steps_per_epoch(self, n_train: int) -> int:
        """Optimiser steps of one CNN epoch over ``n_train`` images."""
        return max(1, math.ceil(n_train / self.baseline.batch_size))

    def baseline_config(self, n_train: int, *, seed: int) -> BaselineConfig:
        """The CNN recipe for ``n_train`` training images (epochs from steps by :attr:`step_rule`).

        Under ``"epochs"`` the reference is ``baseline.epochs`` epochs over
        :attr:`reference_images` images, counted in optimiser steps and rounded up to whole
        epochs; validation runs about 30 times per training.

        Parameters
        ----------
        n_train
            Training images.
        seed
            Training seed.

        Returns
        -------
        BaselineConfig
        """
        if self.step_rule == "fixed":
            return self.baseline.replace(seed=seed)
        ref = self.baseline.epochs * self.baseline_steps_per_epoch(self.reference_images)
        steps = scaled_steps(n_train, reference_steps=ref, reference_images=self.reference_images,
                             min_steps=self.baseline_min_steps, rule=self.step_rule)
        epochs = max(1, math.ceil(steps / self.baseline_steps_per_epoch(n_train)))
        return self.baseline.replace(seed=seed, epochs=epochs, val_every=max(1, epochs // 30))

    @classmethod
    def cpu_fast(cls, **changes: Any) -> EvalBudget:
        """Tests and CI: 16 px images, a very small model, a handful of steps (seconds)."""
        base: dict[str, Any] = dict(
            name="fast", image_size=16, model=ModelConfig.smallest(),
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

    @classmethod
    def shipped(cls, **changes: Any) -> EvalBudget:
        """The shipped models' recipe, for the protocols behind the stored tables (issue 19).

        The architecture and training recipe of the shipped diffusion model
        (``scripts/train_default_model.sh``: centre crop, zoom, cosine schedule, VAE settings)
        and of the shipped CNN baseline, read from their folders, with both budgets counted in
        optimiser steps and scaled to the training-set size (``step_rule="epochs"``: 11,000
        UNet steps and 30 CNN epochs for 2,290 images; at least 2,000 UNet and 1,000 CNN
        steps). The checkpoint is picked on validation (3 diffusion checkpoints on 5 images
        per class; the CNN's best validation epoch); every test image, 100 trials, 3 seeds,
        the whole synthetic benchmark.
        """
        from cytoviz._paths import default_baseline_dir, default_model_dir

        model_dir, baseline_dir = default_model_dir(), default_baseline_dir()
        model = ModelConfig.from_dict(load_json(model_dir / "cytoviz.json")["config"])
        saved = load_json(model_dir / "train_config.json")
        saved.pop("config_class", None)
        train = TrainConfig.from_dict(saved).replace(
            seed=0, val_every=0, val_accuracy_images=0, max_minutes=None)
        baseline = BaselineConfig.from_dict(load_json(baseline_dir / "config.json")["config"])
        base: dict[str, Any] = dict(
            name="shipped", image_size=model.image_size, model=model, train=train,
            baseline=baseline.replace(seed=0, max_minutes=None), max_trials=100, min_trials=20,
            test_per_class=None, seeds=3, data_scale=1.0, val_checkpoints=3, val_per_class=5,
            step_rule="epochs", reference_images=2290, min_steps=2000, baseline_min_steps=1000,
        )
        base.update(changes)
        return cls(**base)

    def build_model(self, class_names: Sequence[str], *, seed: int = 0) -> DiffusionModel:
        """A new diffusion model of this budget's architecture (random weights).

        Parameters
        ----------
        class_names
            Classes the model learns.
        seed
            Seed of the random initialisation.
        """
        return DiffusionModel.build(class_names, self.model, seed=seed)

    @classmethod
    def preset(cls, name: str, **changes: Any) -> EvalBudget:
        """The preset called ``"fast"``, ``"cpu"``, ``"paper"`` or ``"shipped"``."""
        presets = {"fast": cls.cpu_fast, "cpu": cls.cpu, "paper": cls.paper,
                   "shipped": cls.shipped}
        if name not in presets:
            raise ValueError(f"unknown budget {name!r}; choose one of {sorted(presets)}")
        return presets[name](**changes)


def resolve_budget(budget: EvalBudget | str | None) -> EvalBudget:
    """The budget a protocol runs with: an :class:`EvalBudget`, a preset name or ``None``.

    Parameters
    ----------
    budget
        An :class:`EvalBudget`, ``"fast"``, ``"cpu"`` or ``"paper"``; ``None`` means
        :meth:`EvalBudget.cpu`.

    Returns
    -------
    EvalBudget
    """
    if budget is None:
        return EvalBudget.cpu()
    if isinstance(budget, str):
        return EvalBudget.preset(budget)
    if not isinstance(budget, EvalBudget):
        raise TypeError(f"budget must be an EvalBudget or a preset name, got {type(budget).__name__}")
    return budget
