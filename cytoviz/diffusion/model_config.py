"""Architecture of a cytoviz diffusion model (:class:`ModelConfig`), saved with its weights."""

from __future__ import annotations

import dataclasses
from typing import Any

from cytoviz._config import Config

__all__ = ["PRESETS", "SD_SCALING_FACTOR", "ModelConfig"]

#: The architecture presets.
PRESETS = ("tiny", "sd15", "custom")
#: SD-1.5's VAE latent scaling factor (METHOD.md section 1).
SD_SCALING_FACTOR = 0.18215


@dataclasses.dataclass(frozen=True)
class ModelConfig(Config):
    """Architecture of a cytoviz diffusion model.

    Parameters
    ----------
    preset
        ``"tiny"`` (the CPU default: 64 px, small VAE and UNet), ``"sd15"`` (a local Stable
        Diffusion 1.5 folder: 77 x 768 conditioning) or ``"custom"``.
    image_size
        Side length of the (square) images the model takes, in pixels.
    input_crop
        Side length of the centre crop of those images that the VAE sees (``None``: the whole
        image). **Not in METHOD.md** (the paper's model sees the whole 360 px image): the
        ``tiny`` default model crops its 64 px images to the central 32 px, where the white
        cell lies, so that the cell covers a quarter of the 16 x 16 latent instead of a
        sixteenth (see the README). Every entry point (training,
        :func:`~cytoviz.diffusion.classify`, heatmaps, prototypes) crops through
        :meth:`~cytoviz.diffusion.DiffusionModel.crop_input`; decoded heatmaps and generated
        cells are ``input_crop`` pixels wide. Must be even-centred (``image_size - input_crop``
        even) and divisible by the VAE's downsampling.
    latent_channels
        Channels of the VAE latent.
    vae_channels
        ``block_out_channels`` of the VAE; the latent is ``vae_size / 2**(len - 1)`` wide.
    unet_channels
        ``block_out_channels`` of the UNet (the first block has no attention).
    layers_per_block
        ResNet layers per UNet block.
    n_tokens, token_dim
        Shape of the conditioning tensor (tokens x width); ``token_dim`` must be at least the
        number of classes.
    attention_head_dim
        Channels per attention head.
    norm_num_groups
        Group-norm groups in the VAE and UNet.
    beta_schedule, beta_start, beta_end, num_train_timesteps
        The DDPM noise schedule (SD-1.5's ``scaled_linear`` 0.00085..0.012 over 1000 steps).
    class_embedding
        Also feed the conditioning row (the one-hot or soft label vector) through a learned
        projection into the UNet's timestep embedding (diffusers
        ``class_embed_type="projection"``), so that the class reaches every ResNet block at
        every resolution. **Not in METHOD.md** (SD-1.5 has no such input; the ``sd15`` path
        never uses it): with identical token rows, cross-attention adds only a per-class
        constant in the attention blocks, which in the ``tiny`` UNet exist at the two coarsest
        resolutions only. Off by default. The decision rule is unchanged.
    """

    preset: str = "tiny"
    image_size: int = 64
    input_crop: int | None = None
    latent_channels: int = 4
    vae_channels: tuple[int, ...] = (32, 64, 64)
    unet_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    n_tokens: int = 2
    token_dim: int = 32
    attention_head_dim: int = 8
    norm_num_groups: int = 8
    beta_schedule: str = "scaled_linear"
    beta_start: float = 0.00085
    beta_end: float = 0.012
    num_train_timesteps: int = 1000
    class_embedding: bool = False

    @classmethod
    def smallest(cls, **changes: Any) -> ModelConfig:
        """The smallest working architecture (16 px, two-level VAE and UNet), for tests and
        smoke runs on random weights; ``changes`` override any field.

        Examples
        --------
        >>> ModelConfig.smallest().image_size
        16
        """
        fields = {"preset": "custom", "image_size": 16, "vae_channels": (8, 16),
                  "unet_channels": (16, 16), "token_dim": 16, "n_tokens": 1,
                  "norm_num_groups": 4, "attention_head_dim": 4}
        return cls(**{**fields, **changes})

    def validate(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {self.preset!r}")
        down = 2 ** (len(self.vae_channels) - 1)
        if self.input_crop is not None:
            if not 8 <= self.input_crop <= self.image_size or (self.image_size - self.input_crop) % 2:
                raise ValueError(
                    f"input_crop {self.input_crop} must lie in [8, image_size={self.image_size}] "
                    "and leave an even margin (image_size - input_crop even), so that the crop "
                    "is centred; or be None (no crop)"
                )
        name = "image_size" if self.input_crop is None else "input_crop"
        if self.vae_size < 8 or self.vae_size % down:
            raise ValueError(
                f"{name} {self.vae_size} must be >= 8 and divisible by {down} (the VAE's "
                "downsampling)"
            )
        if self.n_tokens < 1 or self.token_dim < 1:
            raise ValueError("n_tokens and token_dim must be positive")
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ValueError(f"need 0 < beta_start < beta_end < 1, got {self.beta_start}, {self.beta_end}")

    @property
    def vae_size(self) -> int:
        """Side length of what the VAE encodes and decodes (``input_crop`` or ``image_size``)."""
        return self.image_size if self.input_crop is None else int(self.input_crop)

    @property
    def latent_size(self) -> int:
        """Side length of the latent."""
        return self.vae_size // 2 ** (len(self.vae_channels) - 1)

    @classmethod
    def tiny(cls, **changes: object) -> ModelConfig:
        """The CPU default (64 px images, 16 x 16 x 4 latent, about 2.6 M parameters)."""
        return cls(preset="tiny", **changes)  # type: ignore[arg-type]
