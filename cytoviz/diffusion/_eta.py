"""The expected wall time of a classification run, printed by ``cytoviz classify`` at its start.

A short probe times one batch of UNet evaluations and one batch of VAE encodes on the model's
device, and the run's bounds follow from the decision rule: with pruning every image costs at
least ``K x min_trials`` UNet evaluations (no class can be dropped before the first test) and at
most ``K x max_trials`` (no class dropped); without pruning exactly the latter. The probe is
not part of the result and uses its own random numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from cytoviz.diffusion.classify_config import ClassifyConfig
from cytoviz.diffusion.model import DiffusionModel


@dataclass(frozen=True)
class TimeEstimate:
    """Bounds on a run's wall time, from the probe's per-evaluation costs.

    Attributes
    ----------
    n_images
        Images to classify.
    unet_seconds, encode_seconds
        Measured seconds per UNet evaluation and per VAE encode of one image.
    low_seconds, high_seconds
        The run's time if every image is decided at the first pruning test, and if no class is
        ever pruned (equal without pruning).
    """

    n_images: int
    unet_seconds: float
    encode_seconds: float
    low_seconds: float
    high_seconds: float

    def message(self) -> str:
        """One line for the log."""
        lo, hi = _human(self.low_seconds), _human(self.high_seconds)
        per = f"{1e3 * self.unet_seconds:.2f} ms per UNet evaluation"
        if self.high_seconds <= self.low_seconds * 1.001:
            return f"expected time: about {lo} for {self.n_images} images ({per})"
        return (f"expected time: {lo} to {hi} for {self.n_images} images ({per}; the low end if "
                "pruning decides every image at its first test, the high end if it never "
                "prunes; the progress bar's estimate refines it as images finish)")


def estimate_time(model: DiffusionModel, n_images: int, config: ClassifyConfig,
                  *, repeats: int = 2) -> TimeEstimate:
    """Probe the model and bound the wall time of classifying ``n_images`` with ``config``.

    Parameters
    ----------
    model
        The classifier.
    n_images
        How many images the run classifies.
    config
        The run's configuration (``batch_size``, ``min_trials``, ``max_trials``, pruning).
    repeats
        Timed probe batches after one warm-up batch; the fastest is used.

    Returns
    -------
    TimeEstimate
        The bounds and the measured per-evaluation costs.
    """
    import torch

    k, b = model.n_classes, config.batch_size
    size, ch, lat = model.config.image_size, model.config.latent_channels, model.config.latent_size
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(min(b, 8), 3, size, size, generator=gen) * 2 - 1
    zt = torch.randn(b, ch, lat, lat, generator=gen).to(model.device)
    tt = torch.randint(0, model.scheduler.config.num_train_timesteps, (b,), generator=gen)
    labels = torch.arange(b) % k

    def unet() -> None:
        cond = model.conditioning(labels.to(model.device))
        model.unet(zt.to(model.unet.dtype), tt.to(model.device), encoder_hidden_states=cond,
                   **model.unet_kwargs(cond))

    def encode() -> None:
        model.encode(x.to(model.device), sample=config.stochastic_encode, generator=gen,
                     precision=config.encode_precision)

    with torch.no_grad():
        unet_s = _fastest(unet, repeats) / b
        encode_s = _fastest(encode, repeats) / len(x)
    per_trial = encode_s + k * unet_s  # one encode and K evaluations per image and trial
    high = n_images * config.max_trials * per_trial
    low = n_images * config.min_trials * per_trial if config.pruning else high
    return TimeEstimate(n_images=n_images, unet_seconds=unet_s, encode_seconds=encode_s,
                        low_seconds=low, high_seconds=high)


def _fastest(fn: object, repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()  # type: ignore[operator]
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return float(np.min(times))


def _human(seconds: float) -> str:
    """``42 s``, ``7.5 min`` or ``3.2 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
