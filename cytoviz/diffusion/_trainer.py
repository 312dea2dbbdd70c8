"""The training loop behind :func:`~cytoviz.diffusion.train` (private).

:class:`Trainer` holds one run's state: the two stages (VAE, then UNet) and their steps, the EMA of
the UNet weights, validation, the history and the checkpoints (:mod:`._checkpoint`).
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cytoviz._io import load_json, save_json
from cytoviz._metrics import classification_metrics
from cytoviz.augment import augment, to_tensor
from cytoviz.diffusion._checkpoint import (
    CHECKPOINT_VERSION,
    RESUMABLE_CHANGES,
    DataOrder,
    fingerprint,
    latest_checkpoint,
    load_tensors,
    optimizer_from_files,
    optimizer_to_files,
    rng_state,
    save_tensors,
    set_rng_state,
)
from cytoviz.diffusion.classify import classify
from cytoviz.diffusion.classify_config import ClassifyConfig
from cytoviz.diffusion.losses import class_dropout, diffusion_loss, mixup, validation_loss
from cytoviz.diffusion.train_config import TrainConfig

if TYPE_CHECKING:
    import torch

    from cytoviz.data import CellDataset
    from cytoviz.diffusion.model import DiffusionModel

__all__ = ["Trainer"]


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


class Trainer:
    """Holds the state of one run; :func:`~cytoviz.diffusion.train` is its public face."""

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
        self.order: DataOrder | None = None
        self.opt: torch.optim.Optimizer | None = None
        self.sched: torch.optim.lr_scheduler.LambdaLR | None = None
        self.wrapped: Any = None
        self.stage: str | None = None
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
        self.order = DataOrder(len(self.data), cfg.seed, 0 if stage == "vae" else 1)
        if stage == "unet" and self.ema is None:
            self.ema = {k: v.detach().clone().float() for k, v in unet.state_dict().items()}
            self.ema_updates = 0

    def _batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's share of the next global batch: augmented images and labels."""
        assert self.order is not None
        idx = self.order.next(batch_size * self.world)
        idx = idx[self.rank * batch_size:(self.rank + 1) * batch_size]
        import torch

        x = to_tensor(self.data.images[idx])
        if self.config.augment is not None:
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
                x = to_tensor(self.data.images[start:start + 64]).to(self.device)
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
        if cfg.val_accuracy_images == 0 or self.val is None:
            return {}
        n = min(cfg.val_accuracy_images, len(self.val))
        # A fixed, class-balanced-ish subset: every (len/n)-th image.
        idx = np.linspace(0, len(self.val) - 1, n).round().astype(int)
        sub = self.val.subset(idx)
        cc = ClassifyConfig(max_trials=cfg.val_accuracy_trials,
                            min_trials=max(2, min(cfg.val_accuracy_trials, 20)),
                            seed=cfg.seed, keep_error_maps=False)
        result = classify(self.model, sub.images, config=cc, progress=False)
        accuracy = classification_metrics(sub.labels, result.prediction)["accuracy"]
        return {"val_accuracy": accuracy, "val_accuracy_images": n}

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
        save_tensors(rng_state(self.generator), tmp / f"rng_{self.rank}.safetensors")
        if self.is_main:
            assert self.opt is not None and self.sched is not None and self.order is not None
            if self.config.train_vae:
                save_tensors(self.model.vae.state_dict(), tmp / "vae.safetensors")
            save_tensors(self.model.unet.state_dict(), tmp / "unet.safetensors")
            if self.ema is not None:
                save_tensors(self.ema, tmp / "ema.safetensors")
            opt_tensors, opt_meta = optimizer_to_files(self.opt.optimizer
                                                        if hasattr(self.opt, "optimizer") else self.opt)
            save_tensors(opt_tensors or {"_empty": torch.zeros(0)}, tmp / "optimizer.safetensors")
            scaler = self.acc.scaler.state_dict() if self.acc.scaler is not None else None
            state = {
                "format_version": CHECKPOINT_VERSION,
                "step": self.step,
                "stage": self.stage,
                "num_processes": self.world,
                "class_names": list(self.model.class_names),
                "data_fingerprint": fingerprint(self.data),
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
        if state.get("data_fingerprint") != fingerprint(self.data):
            raise ValueError(f"{path}: the checkpoint was trained on different training images; "
                             "use the same data, another --out, or --no-resume")
        if int(state["num_processes"]) != self.world:
            raise ValueError(f"{path}: written by {state['num_processes']} processes, now "
                             f"{self.world}; resume with the same number of processes")
        saved = TrainConfig.from_dict(state["train_config"]).to_dict()
        now = self.config.to_dict()
        saved.setdefault("lr_schedule", "constant")  # checkpoints from before the option
        resumable = RESUMABLE_CHANGES - ({"steps"} if now["lr_schedule"] == "cosine" else set())
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
            self.model.vae.load_state_dict(load_tensors(path / "vae.safetensors"))
        self.model.vae.register_to_config(scaling_factor=float(state["scaling_factor"]))
        self.model.unet.load_state_dict(load_tensors(path / "unet.safetensors"))
        self.step = step
        self.history = list(state["history"])
        self._train_seconds = float(state.get("train_seconds", 0.0))
        stage = state["stage"]
        ema_path = path / "ema.safetensors"
        if ema_path.is_file():
            self.ema = {k: v.to(self.device) for k, v in load_tensors(ema_path).items()}
            self.ema_updates = int(state["ema_updates"])
        # A checkpoint written at the last VAE step resumes into the UNet stage.
        if stage == "vae" and step >= self.config.n_vae_steps:
            stage = "unet-fresh"
        if stage != "unet-fresh":
            self._setup_stage(stage)
            assert self.opt is not None and self.sched is not None and self.order is not None
            raw = self.opt.optimizer if hasattr(self.opt, "optimizer") else self.opt
            opt_tensors = {k: v for k, v in load_tensors(path / "optimizer.safetensors").items()
                           if k != "_empty"}
            optimizer_from_files(raw, opt_tensors, state["optimizer"])
            self.sched.load_state_dict(state["lr_scheduler"])
            order = state["data_order"]
            self.order = DataOrder(len(self.data), self.config.seed, 0 if stage == "vae" else 1,
                                    epoch=int(order["epoch"]), position=int(order["position"]))
            if state.get("grad_scaler") is not None and self.acc.scaler is not None:
                self.acc.scaler.load_state_dict(state["grad_scaler"])
        else:
            self.stage = None
        set_rng_state(self.generator, load_tensors(path / f"rng_{self.rank}.safetensors"))
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
