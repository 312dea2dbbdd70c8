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

This module is the public face; the pieces live in :mod:`~cytoviz.diffusion.train_config`
(:class:`TrainConfig`), :mod:`~cytoviz.diffusion.losses` (the objective), ``_trainer`` (the loop:
stages, EMA, validation, history) and ``_checkpoint`` (checkpoint files).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cytoviz._io import writable_folder
from cytoviz.cli import main as cli_main
from cytoviz.diffusion._checkpoint import latest_checkpoint
from cytoviz.diffusion._trainer import Trainer
from cytoviz.diffusion.losses import (
    class_dropout,
    diffusion_loss,
    min_snr_weights,
    mixup,
    validation_loss,
)
from cytoviz.diffusion.train_config import TrainConfig

if TYPE_CHECKING:
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


def train(model: DiffusionModel, train: CellDataset, val: CellDataset | None = None,
          *, config: TrainConfig | None = None, out_dir: str | os.PathLike[str],
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
        Validation images for the periodic validation loss and accuracy (through
        :func:`~cytoviz.diffusion.classify`), or ``None``.
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
    out = writable_folder(out_dir)  # fail now, not at the first history write
    trainer = Trainer(model, train, val, config, out, progress)
    done = trainer.run(resume, stop_at)
    return trainer.finish(done)


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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cytoviz.diffusion.train`` (also under ``accelerate launch``): the CLI command."""
    return cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
