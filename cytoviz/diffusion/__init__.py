"""The latent diffusion model: building and loading, training, classification, generation."""

from cytoviz.diffusion.model import DiffusionModel, ModelConfig

__all__ = ["DiffusionModel", "ModelConfig"]
