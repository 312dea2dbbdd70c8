"""Training of the class-conditional latent diffusion model (METHOD.md section 4).

Two stages, one loop:

1. **VAE** (``tiny``/``custom`` presets only): the small AutoencoderKL is trained on the training
   images with a reconstruction loss plus a small KL term; afterwards
   ``vae.config.scaling_factor`` is set to ``1 / std`` of the training-set latents so that the
   diffusion model sees latents of unit variance. For ``sd15`` the VAE is frozen (scaling factor
   0.18215) and this stage is skipped.
2. **UNet**: eps-prediction MSE with min-SNR weighting (gamma 5), noise offset 0.1, AdamW
   (0.9, 0.999, 1e-8, weight decay 0.01) with linear learning-rate warm-up, an exponential moving
   average (EMA) of the UNet weights (the EMA weights are what is saved and used), mixup on the
   conditioning (two images and their one-hot labels mixed, the soft label written into the
   conditioning slots), class dropout to the null condition (for classifier-free guidance), and the
   augmentations of :mod:`cytoviz.augment`.

The loop runs on :class:`accelerate.Accelerator`, so the same code runs single-process on a CPU and
on several GPUs with ``accelerate launch -m cytoviz.diffusion.train --data ... --out ...``.
Checkpoints (weights, EMA, optimizer, learning-rate schedule, step, RNG states and data order; in
safetensors + JSON, no pickles) are written atomically to ``out_dir/checkpoints/`` and resume
exactly: an interrupted and resumed run ends with bit-identical weights to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cytoviz._config import Config
from cytoviz._io import load_json, save_json
from cytoviz.augment import AugmentConfig

if TYPE_CHECKING:
    import torch

    from cytoviz.data import CellDataset
    from cytoviz.diffusion.model import DiffusionModel

__all__ = [
    "TrainConfig",
    "class_dropout",
    "diffusion_loss",
    "latest_checkpoint",
    "min_snr_weights",
    "mixup",
    "train",
    "validation_loss",
]

#: Format version of the checkpoint folders written by :func:`train`.
CHECKPOINT_VERSION = 1

#: TrainConfig fields that may change when a run is resumed (they do not change the trajectory
#: of the steps already taken).
_RESUMABLE_CHANGES = frozenset({
    "steps", "checkpoint_every", "keep_checkpoints", "val_every", "val_images",
    "val_accuracy_images", "val_accuracy_trials", "log_every", "max_minutes",
})


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    """Hyper-parameters of :func:`train`.

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
        :func:`cytoviz.diffusion.classify.classify` (``0`` images: skip).
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


# ---------------------------------------------------------------------------- loss pieces
def min_snr_weights(timesteps: torch.Tensor, alphas_cumprod: torch.Tensor,
                    gamma: float | None) -> torch.Tensor:
    """Min-SNR loss weights for eps prediction: ``min(SNR_t, gamma) / SNR_t``.

    ``SNR_t = abar_t / (1 - abar_t)``. With ``gamma=None`` all weights are 1.
    """
    import torch

    abar = alphas_cumprod.to(timesteps.device)[timesteps].float()
    if gamma is None:
        return torch.ones_like(abar)
    snr = abar / (1 - abar)
    return torch.clamp(snr, max=gamma) / snr


def mixup(labels: torch.Tensor, n_classes: int, *, alpha: float, prob: float,
          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw mixup partners and weights for a batch.

    Parameters
    ----------
    labels
        ``(B,)`` integer labels.
    n_classes
        Number of classes ``K``.
    alpha
        ``lambda ~ Beta(alpha, alpha)``.
    prob
        Probability that an image is mixed (the others keep ``lambda = 1``).
    generator
        Source of randomness (CPU).

    Returns
    -------
    partner : torch.Tensor
        ``(B,)`` index of each image's partner within the batch.
    lam : torch.Tensor
        ``(B,)`` weight of the image itself; the mixed image is
        ``lam * x + (1 - lam) * x[partner]``.
    soft : torch.Tensor
        ``(B, K)`` soft labels ``lam * onehot(y) + (1 - lam) * onehot(y[partner])`` (rows sum
        to 1).
    """
    import torch

    b = labels.shape[0]
    labels = labels.cpu().long()
    partner = torch.randperm(b, generator=generator)
    # Beta(a, a) from two Gammas: torch's samplers take no generator, so draw via uniforms.
    lam = torch.ones(b)
    if alpha > 0 and prob > 0:
        u = torch.rand(b, generator=generator)
        draw = _beta_sample(alpha, b, generator)
        lam = torch.where(u < prob, draw, lam)
    onehot = torch.nn.functional.one_hot(labels, n_classes).float()
    soft = lam[:, None] * onehot + (1 - lam[:, None]) * onehot[partner]
    return partner, lam, soft


def _beta_sample(alpha: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` draws of ``Beta(alpha, alpha)`` from ``generator`` (inverse-CDF via SciPy)."""
    import torch
    from scipy.special import betaincinv

    u = torch.rand(n, generator=generator, dtype=torch.float64).numpy()
    return torch.from_numpy(betaincinv(alpha, alpha, u)).float()


def class_dropout(soft_labels: torch.Tensor, p: float, *, generator: torch.Generator) -> torch.Tensor:
    """Replace each row of ``soft_labels`` by the null condition (zeros) with probability ``p``."""
    import torch

    drop = torch.rand(soft_labels.shape[0], generator=generator) < p
    return torch.where(drop[:, None].to(soft_labels.device), torch.zeros_like(soft_labels), soft_labels)


def diffusion_loss(model: DiffusionModel, latents: torch.Tensor, cond: torch.Tensor,
                   timesteps: torch.Tensor, noise: torch.Tensor, *, gamma: float | None,
                   unet: Any = None, reduce: bool = True) -> torch.Tensor:
    """The min-SNR-weighted eps-prediction loss.

    Parameters
    ----------
    model
        Supplies the noise schedule (and the UNet unless ``unet`` is given).
    latents
        ``(B, C, h, w)`` scaled clean latents ``z0``.
    cond
        ``(B, n_tokens, token_dim)`` conditioning.
    timesteps
        ``(B,)`` integer timesteps.
    noise
        ``(B, C, h, w)`` the noise ``eps`` (with any noise offset already added).
    gamma
        Min-SNR gamma (``None``: plain MSE).
    unet
        The (possibly accelerate-wrapped) UNet to call; defaults to ``model.unet``.
    reduce
        Return the batch mean (default) or the ``(B,)`` per-image weighted losses.
    """
    unet = model.unet if unet is None else unet
    noisy = model.scheduler.add_noise(latents, noise, timesteps)
    pred = unet(noisy, timesteps, encoder_hidden_states=cond, **model.unet_kwargs(cond)).sample
    per_image = (pred.float() - noise.float()).pow(2).mean(dim=(1, 2, 3))
    weighted = per_image * min_snr_weights(timesteps, model.scheduler.alphas_cumprod, gamma)
    return weighted.mean() if reduce else weighted


# ---------------------------------------------------------------------------- helpers
def _check_data(model: DiffusionModel, data: CellDataset, what: str) -> CellDataset:
    """``data`` as the model sees it (``model.crop_input``), after checking classes and size."""
    if tuple(data.class_names) != tuple(model.class_names):
        raise ValueError(
            f"the {what} data has classes {list(data.class_names)} but the model was built for "
            f"{list(model.class_names)}; select or reorder the classes with "
            "CellDataset.select_classes"
        )
    if len(data) == 0:
        raise ValueError(f"the {what} data set is empty")
    try:
        return model.crop_input(data)
    except ValueError as exc:
        raise ValueError(
            f"the {what} data: {exc}; or build the model with "
            f"ModelConfig(image_size={data.image_size})"
        ) from None


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1] (through cytoviz.augment)."""
    from cytoviz.augment import to_tensor

    return to_tensor(images)


def _lr_factor(step: int, warmup: int, total: int | None = None) -> float:
    """Learning-rate factor at ``step``: linear warm-up, then constant or (``total`` given) a
    half-cosine decay that reaches 0 at step ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if total is None or total <= warmup:
        return 1.0
    frac = min(1.0, (step - warmup) / (total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * frac))


def _ema_decay(n_updates: int, decay: float) -> float:
    return min(decay, (1 + n_updates) / (10 + n_updates))


class _DataOrder:
    """Epoch-wise shuffled order of the training images, determined by (seed, stage, epoch).

    The state is just ``(epoch, position)``, so it checkpoints as two integers.
    """

    def __init__(self, n: int, seed: int, stage: int, epoch: int = 0, position: int = 0) -> None:
        self.n, self.seed, self.stage = n, seed, stage
        self.epoch, self.position = epoch, position
        self._perm = self._permutation(epoch)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, self.stage, epoch]).permutation(self.n)

    def next(self, count: int) -> np.ndarray:
        out: list[np.ndarray] = []
        while count > 0:
            if self.position >= self.n:
                self.epoch += 1
                self.position = 0
                self._perm = self._permutation(self.epoch)
            take = min(count, self.n - self.position)
            out.append(self._perm[self.position:self.position + take])
            self.position += take
            count -= take
        return np.concatenate(out)

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}


def _fingerprint(data: CellDataset) -> str:
    """SHA-1 of the images, labels and class names (to refuse resuming on different data)."""
    import hashlib

    h = hashlib.sha1()
    h.update(np.ascontiguousarray(data.images).tobytes())
    h.update(np.ascontiguousarray(data.labels).tobytes())
    h.update("\n".join(data.class_names).encode())
    return h.hexdigest()


def latest_checkpoint(out_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint folder under ``out_dir/checkpoints``, or ``None``."""
    ckpt_root = Path(out_dir) / "checkpoints"
    pointer = ckpt_root / "latest.json"
    if not pointer.is_file():
        return None
    path = ckpt_root / load_json(pointer)["name"]
    if not (path / "state.json").is_file():
        raise FileNotFoundError(
            f"{pointer} points to {path}, which is missing or incomplete; delete {ckpt_root} "
            "or pass resume=False (--no-resume) to start afresh"
        )
    return path


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    from cytoviz._io import atomic_path

    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint file missing; the checkpoint is incomplete")
    return load_file(str(path))


def _optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    import torch

    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_from_files(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                          meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for key, value in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _rng_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    import torch

    out = {"generator": generator.get_state(), "torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"torch_cuda_{i}"] = s
    return out


def _set_rng_state(generator: torch.Generator, tensors: dict[str, torch.Tensor]) -> None:
    import torch

    generator.set_state(tensors["generator"])
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


# ---------------------------------------------------------------------------- the trainer
class _Trainer:
    """Holds the state of one run; :func:`train` is its public face."""

    def __init__(self, model: DiffusionModel, train_data: CellDataset, val_data: CellDataset | None,
                 config: TrainConfig, out_dir: Path, progress: bool) -> None:
        import torch
        from accelerate import Accelerator

        self.model, self.data, self.val, self.config = model, train_data, val_data, config
        self.out_dir = out_dir
        self.ckpt_root = out_dir / "checkpoints"
        self.progress = progress
        self.acc = Accelerator(mixed_precision=config.mixed_precision)
        self.device = self.acc.device
        self.rank, self.world = self.acc.process_index, self.acc.num_processes
        model.to(self.device)
        self.generator = torch.Generator().manual_seed(config.seed * 1009 + self.rank)
        self.step = 0  # global step over both stages
        self.history: list[dict[str, Any]] = []
        self.ema: dict[str, torch.Tensor] | None = None
        self.ema_updates = 0
        self.order: _DataOrder | None = None
        self.opt: torch.optim.Optimizer | None = None
        self.sched: torch.optim.lr_scheduler.LambdaLR | None = None
        self.wrapped: Any = None
        self.stage: str | None = None
        self._val_accuracy_disabled = False
        self._train_seconds = 0.0

    # ---------------------------------------------------------------- stages
    @property
    def is_main(self) -> bool:
        return self.acc.is_main_process

    def _setup_stage(self, stage: str) -> None:
        import torch

        cfg = self.config
        self.stage = stage
        vae, unet = self.model.vae, self.model.unet
        if stage == "vae":
            module, lr, warmup = vae, cfg.vae_lr, min(cfg.warmup_steps, max(cfg.vae_steps // 10, 1))
            total = None
            vae.train().requires_grad_(True)
            unet.eval().requires_grad_(False)
        else:
            module, lr, warmup = unet, cfg.lr, cfg.warmup_steps
            total = cfg.steps if cfg.lr_schedule == "cosine" else None
            vae.eval().requires_grad_(False)
            unet.train().requires_grad_(True)
        params = [p for p in module.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=lr, betas=(cfg.adam_beta1, cfg.adam_beta2),
                                eps=cfg.adam_eps, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, warmup, total))
        self.wrapped, self.opt = self.acc.prepare(module, opt)
        self.order = _DataOrder(len(self.data), cfg.seed, 0 if stage == "vae" else 1)
        if stage == "unet" and self.ema is None:
            self.ema = {k: v.detach().clone().float() for k, v in unet.state_dict().items()}
            self.ema_updates = 0

    def _batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's share of the next global batch: augmented images and labels."""
        assert self.order is not None
        idx = self.order.next(batch_size * self.world)
        idx = idx[self.rank * batch_size:(self.rank + 1) * batch_size]
        import torch

        x = _to_tensor(self.data.images[idx])
        if self.config.augment is not None:
            from cytoviz.augment import augment

            x = augment(x, self.config.augment, generator=self.generator)
        return x.to(self.device), torch.from_numpy(self.data.labels[idx])

    def _vae_step(self) -> float:
        cfg = self.config
        x, _ = self._batch(cfg.vae_batch_size)
        with self.acc.autocast():
            posterior = self.wrapped.encode(x).latent_dist
            z = posterior.sample(generator=self.generator)
            recon = self.wrapped.decode(z).sample
            diff = recon.float() - x.float()
            rec = diff.abs().mean() if cfg.vae_loss == "l1" else diff.pow(2).mean()
            # KL summed over the latent of each image, averaged over the batch (as in SD's VAE).
            loss = rec + cfg.vae_kl_weight * posterior.kl().mean()
        self._optimise(loss)
        return float(rec.detach())

    def _unet_step(self) -> float:
        import torch

        cfg, model = self.config, self.model
        x, labels = self._batch(cfg.batch_size)
        g = self.generator
        partner, lam, soft = mixup(labels, model.n_classes, alpha=cfg.mixup_alpha,
                                   prob=cfg.mixup_prob, generator=g)
        lam_d = lam.to(self.device)[:, None, None, None]
        x = lam_d * x + (1 - lam_d) * x[partner.to(self.device)]
        soft = class_dropout(soft, cfg.class_dropout, generator=g)
        with torch.no_grad():
            latents = model.encode(x, sample=True, generator=g).float()
        b = latents.shape[0]
        noise = torch.randn(latents.shape, generator=g)
        if cfg.noise_offset > 0:
            noise = noise + cfg.noise_offset * torch.randn(b, latents.shape[1], 1, 1, generator=g)
        t = torch.randint(0, model.scheduler.config.num_train_timesteps, (b,), generator=g)
        cond = model.conditioning(soft.to(self.device))
        with self.acc.autocast():
            loss = diffusion_loss(model, latents, cond, t.to(self.device), noise.to(self.device),
                                  gamma=cfg.min_snr_gamma, unet=self.wrapped)
        self._optimise(loss)
        self._update_ema()
        return float(loss.detach())

    def _optimise(self, loss: torch.Tensor) -> None:
        assert self.opt is not None and self.sched is not None
        self.acc.backward(loss)
        if self.config.max_grad_norm > 0 and self.acc.sync_gradients:
            self.acc.clip_grad_norm_(self.wrapped.parameters(), self.config.max_grad_norm)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)

    def _update_ema(self) -> None:
        import torch

        assert self.ema is not None
        decay = _ema_decay(self.ema_updates, self.config.ema_decay)
        with torch.no_grad():
            for k, v in self.model.unet.state_dict().items():
                e = self.ema[k]
                if v.dtype.is_floating_point:
                    e.mul_(decay).add_(v.float(), alpha=1 - decay)
                else:
                    e.copy_(v)
        self.ema_updates += 1

    def _set_scaling_factor(self) -> None:
        """Scaling factor = 1 / std of the (sampled) latents of the training images."""
        import torch

        vae = self.model.vae
        vae.eval()
        g = torch.Generator().manual_seed(self.config.seed + 7)
        values = []
        with torch.no_grad():
            for start in range(0, len(self.data), 64):
                x = _to_tensor(self.data.images[start:start + 64]).to(self.device)
                z = vae.encode(x).latent_dist.sample(generator=g)
                values.append(z.float().flatten().cpu())
        std = float(torch.cat(values).std())
        if not math.isfinite(std) or std <= 0:
            raise RuntimeError(f"the trained VAE gives latents with std {std}; cannot scale them")
        vae.register_to_config(scaling_factor=1.0 / std)

    # ---------------------------------------------------------------- validation
    def _with_ema(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` with the EMA weights in the UNet, then restore the training weights."""
        import torch

        unet = self.model.unet
        if self.ema is None:
            return fn()
        backup = {k: v.detach().clone() for k, v in unet.state_dict().items()}
        was_training = unet.training
        try:
            with torch.no_grad():
                unet.load_state_dict({k: v.to(backup[k].dtype) for k, v in self.ema.items()})
            unet.eval()
            return fn()
        finally:
            with torch.no_grad():
                unet.load_state_dict(backup)
            unet.train(was_training)

    def _validate(self) -> dict[str, Any]:
        cfg = self.config
        entry: dict[str, Any] = {"step": self.step, "kind": "val"}
        if self.val is None or not self.is_main:
            return entry
        n = min(cfg.val_images, len(self.val))
        if n > 0:
            # evenly spread over the (often class-sorted) validation set
            sub = self.val.subset(np.linspace(0, len(self.val) - 1, n).round().astype(int))
            entry["val_loss"] = self._with_ema(
                lambda: validation_loss(self.model, sub, gamma=cfg.min_snr_gamma, seed=cfg.seed)
            )
        entry.update(self._with_ema(self._val_accuracy))
        return entry

    def _val_accuracy(self) -> dict[str, Any]:
        cfg = self.config
        if cfg.val_accuracy_images == 0 or self._val_accuracy_disabled or self.val is None:
            return {}
        try:
            from cytoviz.diffusion.classify import ClassifyConfig, classify
        except ImportError:
            return {}
        n = min(cfg.val_accuracy_images, len(self.val))
        # A fixed, class-balanced-ish subset: every (len/n)-th image.
        idx = np.linspace(0, len(self.val) - 1, n).round().astype(int)
        sub = self.val.subset(idx)
        try:
            cc = ClassifyConfig(max_trials=cfg.val_accuracy_trials,
                                min_trials=max(2, min(cfg.val_accuracy_trials, 20)),
                                seed=cfg.seed, keep_error_maps=False)
            result = classify(self.model, sub.images, config=cc, progress=False)
            pred = np.asarray(result.prediction)
        except Exception as exc:  # validation accuracy is auxiliary: warn once, keep training
            print(f"cytoviz train: validation accuracy disabled ({type(exc).__name__}: {exc})",
                  file=sys.stderr)
            self._val_accuracy_disabled = True
            return {}
        if pred.dtype.kind in "US":
            pred = np.asarray([self.model.class_index(str(p)) for p in pred])
        return {"val_accuracy": float(np.mean(pred == sub.labels)), "val_accuracy_images": n}

    # ---------------------------------------------------------------- checkpoints
    def _checkpoint(self) -> None:
        import torch

        name = f"step-{self.step:07d}"
        tmp = self.ckpt_root / f".tmp-{name}"
        if self.is_main:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        self.acc.wait_for_everyone()
        _save_tensors(_rng_state(self.generator), tmp / f"rng_{self.rank}.safetensors")
        if self.is_main:
            assert self.opt is not None and self.sched is not None and self.order is not None
            if self.config.train_vae:
                _save_tensors(self.model.vae.state_dict(), tmp / "vae.safetensors")
            _save_tensors(self.model.unet.state_dict(), tmp / "unet.safetensors")
            if self.ema is not None:
                _save_tensors(self.ema, tmp / "ema.safetensors")
            opt_tensors, opt_meta = _optimizer_to_files(self.opt.optimizer
                                                        if hasattr(self.opt, "optimizer") else self.opt)
            _save_tensors(opt_tensors or {"_empty": torch.zeros(0)}, tmp / "optimizer.safetensors")
            scaler = self.acc.scaler.state_dict() if self.acc.scaler is not None else None
            state = {
                "format_version": CHECKPOINT_VERSION,
                "step": self.step,
                "stage": self.stage,
                "num_processes": self.world,
                "class_names": list(self.model.class_names),
                "data_fingerprint": _fingerprint(self.data),
                "scaling_factor": self.model.scaling_factor,
                "data_order": self.order.state(),
                "lr_scheduler": self.sched.state_dict(),
                "optimizer": opt_meta,
                "grad_scaler": scaler,
                "ema_updates": self.ema_updates,
                "history": self.history,
                "train_seconds": self._train_seconds,
                "train_config": self.config.to_dict(),
            }
            save_json(state, tmp / "state.json")
            final = self.ckpt_root / name
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            save_json({"name": name, "step": self.step}, self.ckpt_root / "latest.json")
            self._prune_checkpoints()
        self.acc.wait_for_everyone()

    def _prune_checkpoints(self) -> None:
        ckpts = sorted(p for p in self.ckpt_root.glob("step-*") if p.is_dir())
        for old in ckpts[:-self.config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    def _restore(self, path: Path) -> None:
        import torch

        state = load_json(path / "state.json")
        if int(state.get("format_version", -1)) != CHECKPOINT_VERSION:
            raise ValueError(f"{path}: checkpoint format {state.get('format_version')} is not "
                             f"{CHECKPOINT_VERSION}; start afresh with --no-resume")
        if tuple(state["class_names"]) != tuple(self.model.class_names):
            raise ValueError(f"{path}: checkpoint classes {state['class_names']} differ from the "
                             f"model's {list(self.model.class_names)}; use another --out or --no-resume")
        if state.get("data_fingerprint") != _fingerprint(self.data):
            raise ValueError(f"{path}: the checkpoint was trained on different training images; "
                             "use the same data, another --out, or --no-resume")
        if int(state["num_processes"]) != self.world:
            raise ValueError(f"{path}: written by {state['num_processes']} processes, now "
                             f"{self.world}; resume with the same number of processes")
        saved = TrainConfig.from_dict(state["train_config"]).to_dict()
        now = self.config.to_dict()
        saved.setdefault("lr_schedule", "constant")  # checkpoints from before the option
        resumable = _RESUMABLE_CHANGES - ({"steps"} if now["lr_schedule"] == "cosine" else set())
        changed = sorted(k for k in now if now[k] != saved[k] and k not in resumable)
        if changed:
            raise ValueError(
                f"{path}: the checkpoint was trained with different settings for {changed} "
                f"(saved {[saved[k] for k in changed]}, now {[now[k] for k in changed]}); use the "
                "same settings, another --out, or --no-resume"
            )
        step = int(state["step"])
        if step > self.config.total_steps:
            raise ValueError(f"{path}: checkpoint is at step {step}, beyond the {self.config.total_steps} "
                             "steps asked for; raise --steps or start afresh")
        if self.config.train_vae:
            self.model.vae.load_state_dict(_load_tensors(path / "vae.safetensors"))
        self.model.vae.register_to_config(scaling_factor=float(state["scaling_factor"]))
        self.model.unet.load_state_dict(_load_tensors(path / "unet.safetensors"))
        self.step = step
        self.history = list(state["history"])
        self._train_seconds = float(state.get("train_seconds", 0.0))
        stage = state["stage"]
        ema_path = path / "ema.safetensors"
        if ema_path.is_file():
            self.ema = {k: v.to(self.device) for k, v in _load_tensors(ema_path).items()}
            self.ema_updates = int(state["ema_updates"])
        # A checkpoint written at the last VAE step resumes into the UNet stage.
        if stage == "vae" and step >= self.config.n_vae_steps:
            stage = "unet-fresh"
        if stage != "unet-fresh":
            self._setup_stage(stage)
            assert self.opt is not None and self.sched is not None and self.order is not None
            raw = self.opt.optimizer if hasattr(self.opt, "optimizer") else self.opt
            opt_tensors = {k: v for k, v in _load_tensors(path / "optimizer.safetensors").items()
                           if k != "_empty"}
            _optimizer_from_files(raw, opt_tensors, state["optimizer"])
            self.sched.load_state_dict(state["lr_scheduler"])
            order = state["data_order"]
            self.order = _DataOrder(len(self.data), self.config.seed, 0 if stage == "vae" else 1,
                                    epoch=int(order["epoch"]), position=int(order["position"]))
            if state.get("grad_scaler") is not None and self.acc.scaler is not None:
                self.acc.scaler.load_state_dict(state["grad_scaler"])
        else:
            self.stage = None
        _set_rng_state(self.generator, _load_tensors(path / f"rng_{self.rank}.safetensors"))
        del torch

    # ---------------------------------------------------------------- the loop
    def run(self, resume: bool, stop_at: int | None) -> bool:
        """Train to the end (or ``stop_at`` / ``max_minutes``); True when all steps are done."""
        from tqdm.auto import tqdm

        cfg = self.config
        ckpt = latest_checkpoint(self.out_dir) if resume else None
        if ckpt is None and not resume and self.ckpt_root.exists() and self.is_main:
            shutil.rmtree(self.ckpt_root)
        self.acc.wait_for_everyone()
        if ckpt is not None:
            self._restore(ckpt)
            if self.is_main and self.progress:
                print(f"cytoviz train: resuming from {ckpt} (step {self.step})", file=sys.stderr)
        total = cfg.total_steps
        end = total if stop_at is None else min(stop_at, total)
        t0 = time.monotonic()
        seconds0 = self._train_seconds
        bar = tqdm(total=total, initial=self.step, disable=not (self.progress and self.is_main),
                   desc="train", dynamic_ncols=True)
        window: list[float] = []
        timed_out = False
        try:
            while self.step < end:
                stage = "vae" if self.step < cfg.n_vae_steps else "unet"
                if self.stage != stage:
                    self._setup_stage(stage)
                loss = self._vae_step() if stage == "vae" else self._unet_step()
                self.step += 1
                self._train_seconds = seconds0 + time.monotonic() - t0
                window.append(loss)
                bar.update(1)
                if stage == "vae" and self.step == cfg.n_vae_steps:
                    self._set_scaling_factor()
                if len(window) == cfg.log_every or self.step == end or (
                        stage == "vae" and self.step == cfg.n_vae_steps):
                    assert self.opt is not None
                    entry = {"step": self.step, "kind": f"train_{stage}",
                             "loss": float(np.mean(window)),
                             "lr": float(self.opt.param_groups[0]["lr"]),
                             "seconds": round(self._train_seconds, 2)}
                    self.history.append(entry)
                    bar.set_postfix(stage=stage, loss=f"{entry['loss']:.4f}")
                    window = []
                    self._write_history()
                unet_step = self.step - cfg.n_vae_steps
                if stage == "unet" and cfg.val_every and unet_step % cfg.val_every == 0 \
                        and self.step < total:
                    self._log_val()
                timed_out = (cfg.max_minutes is not None
                             and time.monotonic() - t0 > cfg.max_minutes * 60)
                if self.step % cfg.checkpoint_every == 0 or self.step == end or timed_out:
                    self._checkpoint()
                if timed_out:
                    if self.is_main:
                        print(f"cytoviz train: stopped after {cfg.max_minutes} minutes at step "
                              f"{self.step}/{total}; run again with resume to continue",
                              file=sys.stderr)
                    break
        finally:
            bar.close()
        done = self.step >= total
        if done and (not self.history or self.history[-1].get("kind") != "val"):
            self._log_val()
        return done

    def _log_val(self) -> None:
        if self.val is None:
            return
        entry = self._validate()
        if self.is_main and len(entry) > 2:
            self.history.append(entry)
            self._write_history()
            if self.progress:
                shown = {k: round(v, 4) if isinstance(v, float) else v
                         for k, v in entry.items() if k != "kind"}
                print(f"cytoviz train: validation {shown}", file=sys.stderr)

    def _write_history(self) -> None:
        if self.is_main:
            save_json({"history": self.history}, self.out_dir / "history.json")

    def finish(self, done: bool) -> DiffusionModel:
        """Put the EMA weights into the model and write ``out_dir/model``."""
        import torch

        model = self.model
        if self.ema is not None:
            with torch.no_grad():
                model.unet.load_state_dict(
                    {k: v.to(p.dtype) for (k, v), p in
                     zip(self.ema.items(), model.unet.state_dict().values(), strict=True)}
                )
        model.unet.requires_grad_(False)
        model.vae.requires_grad_(False)
        model.eval()
        if self.is_main:
            model_dir = self.out_dir / "model"
            model.save_pretrained(model_dir)
            self.config.save(model_dir / "train_config.json")
            train_losses = [h["loss"] for h in self.history if h["kind"] == "train_unet"]
            vals = [h for h in self.history if h["kind"] == "val"]
            save_json(
                {
                    "completed": done,
                    "step": self.step,
                    "total_steps": self.config.total_steps,
                    "class_names": list(model.class_names),
                    "scaling_factor": model.scaling_factor,
                    "train_seconds": round(self._train_seconds, 1),
                    "final_train_loss": train_losses[-1] if train_losses else None,
                    "final_validation": vals[-1] if vals else None,
                },
                model_dir / "train_summary.json",
            )
        self.acc.wait_for_everyone()
        return model


def train(model: DiffusionModel, train: CellDataset, val: CellDataset | None = None,
          config: TrainConfig | None = None, *, out_dir: str | os.PathLike[str],
          resume: bool = True, progress: bool = True, stop_at: int | None = None) -> DiffusionModel:
    """Train a diffusion model (VAE stage for small models, then the UNet) and save it.

    Parameters
    ----------
    model
        A model from :meth:`DiffusionModel.build` (random weights) or
        :meth:`DiffusionModel.from_sd15`. It is trained in place.
    train
        Training images; their class names and size must match the model (its ``input_crop``,
        if any, is applied once here, before augmentation).
    val
        Validation images for the periodic validation loss (and accuracy through the classifier
        when :mod:`cytoviz.diffusion.classify` is available), or ``None``.
    config
        Hyper-parameters (default :class:`TrainConfig`; use ``TrainConfig.sd15()`` for SD-1.5).
        For a model whose VAE is frozen (``preset="sd15"``) ``train_vae`` must be ``False``.
    out_dir
        Run folder: ``checkpoints/`` (resumable state), ``history.json`` (losses and
        validation) and, at the end, ``model/`` (``save_pretrained`` folder with the EMA weights,
        ``train_config.json`` and ``train_summary.json``).
    resume
        Continue from the newest checkpoint in ``out_dir`` if there is one (settings that change
        the trajectory must match). ``False`` deletes old checkpoints and starts afresh.
    progress
        Show a tqdm progress bar and validation lines on stderr.
    stop_at
        Stop after this global step (VAE steps count first), writing a checkpoint; for budgeted
        or interrupted runs.

    Returns
    -------
    DiffusionModel
        The model with the EMA weights of the UNet, in eval mode.
    """
    config = config or TrainConfig()
    if model.config.preset == "sd15" and config.train_vae:
        raise ValueError("an sd15 model keeps its VAE frozen; use TrainConfig.sd15() or "
                         "TrainConfig(train_vae=False)")
    train = _check_data(model, train, "training")
    if val is not None:
        val = _check_data(model, val, "validation")
    if stop_at is not None and stop_at < 0:
        raise ValueError(f"stop_at must be >= 0, got {stop_at}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trainer = _Trainer(model, train, val, config, out, progress)
    done = trainer.run(resume, stop_at)
    return trainer.finish(done)


def validation_loss(model: DiffusionModel, data: CellDataset, *, gamma: float | None = 5.0,
                    seed: int = 0, batch_size: int = 32) -> float:
    """Mean (min-SNR-weighted) eps-prediction loss on ``data`` with fixed noise and timesteps.

    Deterministic for a given ``seed``: every image gets a fixed timestep (a stratified grid
    over ``[0, T)``) and fixed noise; the VAE posterior mean is used; no augmentation, true labels.
    The images are cropped as the model sees them (``model.crop_input``).
    """
    import torch

    data = model.crop_input(data)
    g = torch.Generator().manual_seed(seed + 104729)
    n = len(data)
    T = int(model.scheduler.config.num_train_timesteps)
    t_all = torch.linspace(0, T - 1, n).round().long()[torch.randperm(n, generator=g)]
    total = 0.0
    with torch.no_grad():
        for start in range(0, n, batch_size):
            sl = slice(start, start + batch_size)
            x = _to_tensor(data.images[sl]).to(model.device)
            z = model.encode(x, sample=False).float()
            noise = torch.randn(z.shape, generator=g).to(model.device)
            labels = torch.from_numpy(data.labels[sl]).to(model.device)
            cond = model.conditioning(labels)
            losses = diffusion_loss(model, z, cond, t_all[sl].to(model.device), noise,
                                    gamma=gamma, reduce=False)
            total += float(losses.sum())
    return total / n


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cytoviz.diffusion.train`` (also under ``accelerate launch``): the CLI command."""
    from cytoviz.cli import main as cli_main

    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
