"""The training objective's pieces: min-SNR eps loss, mixup, class dropout, validation loss.

Plain functions of tensors (METHOD.md section 4), shared by :func:`~cytoviz.diffusion.train`
and the prototype fine-tuning of :mod:`cytoviz.evaluation`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cytoviz.augment import to_tensor

if TYPE_CHECKING:
    import torch

    from cytoviz.data import CellDataset
    from cytoviz.diffusion.model import DiffusionModel

__all__ = ["class_dropout", "diffusion_loss", "min_snr_weights", "mixup", "validation_loss"]


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
            x = to_tensor(data.images[sl]).to(model.device)
            z = model.encode(x, sample=False).float()
            noise = torch.randn(z.shape, generator=g).to(model.device)
            labels = torch.from_numpy(data.labels[sl]).to(model.device)
            cond = model.conditioning(labels)
            losses = diffusion_loss(model, z, cond, t_all[sl].to(model.device), noise,
                                    gamma=gamma, reduce=False)
            total += float(losses.sum())
    return total / n
