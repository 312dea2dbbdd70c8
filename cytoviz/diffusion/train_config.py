"""Hyper-parameters of diffusion-model training (:class:`TrainConfig`, METHOD.md section 4)."""

from __future__ import annotations

import dataclasses
from typing import Any

from cytoviz._config import Config
from cytoviz.augment import AugmentConfig

__all__ = ["TrainConfig"]


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    """Hyper-parameters of :func:`~cytoviz.diffusion.train`.

    Parameters
    ----------
    steps
        Optimiser steps of the UNet stage.
    batch_size
        Images per step and per process (the global batch is ``batch_size * num_processes``).
    lr
        Peak learning rate of the UNet (reached after ``warmup_steps``).
    warmup_steps
        Steps of linear learning-rate warm-up (UNet and VAE stages).
    lr_schedule
        After the warm-up, ``"constant"`` keeps the UNet learning rate at ``lr``; ``"cosine"``
        decays it to 0 at the last UNet step (half a cosine). The paper uses a constant rate;
        the shipped CPU model uses the cosine decay, which reaches a lower loss in a short run.
        With ``"cosine"`` the number of steps shapes the schedule, so a resumed run must keep
        ``steps``.
    adam_beta1, adam_beta2, adam_eps, weight_decay
        AdamW settings (METHOD.md section 4: 0.9, 0.999, 1e-8, 0.01).
    max_grad_norm
        Gradient-norm clipping (``0`` disables it).
    ema_decay
        Decay of the EMA of the UNet weights. The effective decay is
        ``min(ema_decay, (1 + n) / (10 + n))`` after ``n`` updates, so short runs are not stuck
        at the initial weights.
    min_snr_gamma
        Min-SNR weighting of the eps-prediction loss, weight ``min(SNR, gamma) / SNR``; ``None``
        gives the plain MSE.
    noise_offset
        Scale of the per-image, per-channel constant added to the noise.
    mixup_alpha
        Mixup ``lambda ~ Beta(alpha, alpha)``; ``0`` disables mixup.
    mixup_prob
        Fraction of the images of a batch that are mixed with a partner from the same batch.
    class_dropout
        Probability of replacing an image's condition with the null (all-zero) condition.
    augment
        Training augmentations (:class:`cytoviz.augment.AugmentConfig`); ``None`` disables them.
    vae_steps, vae_batch_size, vae_lr, vae_kl_weight, vae_loss
        The VAE stage (``tiny``/``custom`` presets; ignored when the VAE is frozen): steps,
        batch size, learning rate, weight of the KL term, reconstruction loss ``"l1"`` or
        ``"mse"``.
    train_vae
        Train the VAE (``False`` for ``sd15``: the VAE is frozen and only the UNet trains).
    seed
        Seed of all randomness of the run (data order, noise, timesteps, mixup, augmentation).
    mixed_precision
        ``"no"``, ``"fp16"`` or ``"bf16"`` (passed to :class:`accelerate.Accelerator`).
    checkpoint_every, keep_checkpoints
        Write a checkpoint every N steps (of either stage); keep the newest N checkpoints.
    val_every
        Validate every N UNet steps and at the end (``0``: only at the end).
    val_images
        Validation images used for the validation loss.
    val_accuracy_images, val_accuracy_trials
        Validation images and trials per image for the validation accuracy through
        :func:`~cytoviz.diffusion.classify` (``0`` images: skip).
    log_every
        Average the training loss over N steps for the history and the progress bar.
    max_minutes
        Stop after this many minutes of training (writing a checkpoint and the model so far);
        run again with resume to continue.
    """

    steps: int = 6000
    batch_size: int = 16
    lr: float = 2e-4
    warmup_steps: int = 200
    lr_schedule: str = "constant"
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    ema_decay: float = 0.999
    min_snr_gamma: float | None = 5.0
    noise_offset: float = 0.1
    mixup_alpha: float = 0.3
    mixup_prob: float = 0.5
    class_dropout: float = 0.1
    augment: AugmentConfig | None = dataclasses.field(default_factory=AugmentConfig)
    vae_steps: int = 300
    vae_batch_size: int = 8
    vae_lr: float = 1e-3
    vae_kl_weight: float = 1e-6
    vae_loss: str = "l1"
    train_vae: bool = True
    seed: int = 0
    mixed_precision: str = "no"
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    val_every: int = 1500
    val_images: int = 64
    val_accuracy_images: int = 50
    val_accuracy_trials: int = 20
    log_every: int = 20
    max_minutes: float | None = None

    def validate(self) -> None:
        positive = ("steps", "batch_size", "vae_batch_size", "checkpoint_every",
                    "keep_checkpoints", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "vae_steps", "val_every", "val_images",
                     "val_accuracy_images", "val_accuracy_trials", "max_grad_norm",
                     "weight_decay", "noise_offset", "mixup_alpha", "vae_kl_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "vae_lr", "adam_eps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TrainConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in ("adam_beta1", "adam_beta2", "ema_decay", "mixup_prob", "class_dropout"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"TrainConfig.{name} must lie in [0, 1], got {value}")
        if self.min_snr_gamma is not None and self.min_snr_gamma <= 0:
            raise ValueError(f"TrainConfig.min_snr_gamma must be > 0 or None, got {self.min_snr_gamma}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(
                f"TrainConfig.lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}"
            )
        if self.vae_loss not in ("l1", "mse"):
            raise ValueError(f"TrainConfig.vae_loss must be 'l1' or 'mse', got {self.vae_loss!r}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError(
                f"TrainConfig.mixed_precision must be 'no', 'fp16' or 'bf16', got {self.mixed_precision!r}"
            )
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"TrainConfig.max_minutes must be > 0 or None, got {self.max_minutes}")

    @property
    def total_steps(self) -> int:
        """Steps of both stages (the VAE stage counts only when the VAE is trained)."""
        return self.n_vae_steps + self.steps

    @property
    def n_vae_steps(self) -> int:
        """VAE fine-tuning steps actually run: ``vae_steps`` when ``train_vae``, else 0."""
        return self.vae_steps if self.train_vae else 0

    @classmethod
    def tiny(cls, **changes: Any) -> TrainConfig:
        """The CPU recipe for the ``tiny`` preset (VAE stage, then the UNet)."""
        return cls(**changes)

    @classmethod
    def sd15(cls, **changes: Any) -> TrainConfig:
        """The paper's recipe for Stable Diffusion 1.5 (frozen VAE; batch 10, lr 1e-5 with
        1000 warm-up steps, EMA 0.9999)."""
        base: dict[str, Any] = dict(
            train_vae=False, vae_steps=0, batch_size=10, lr=1e-5, warmup_steps=1000,
            ema_decay=0.9999, steps=20000, checkpoint_every=1000, val_every=2000,
        )
        base.update(changes)
        return cls(**base)
