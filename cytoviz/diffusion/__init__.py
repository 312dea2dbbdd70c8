"""The latent diffusion model: building and loading, training, classification, generation."""

from cytoviz.diffusion.classify import ClassifyConfig, classify
from cytoviz.diffusion.generate import GenerateConfig, generate
from cytoviz.diffusion.model import (
    DiffusionModel,
    ModelConfig,
    default_model_path,
    load_default_model,
)
from cytoviz.diffusion.result import ClassificationResult
from cytoviz.diffusion.train import TrainConfig, train
from cytoviz.diffusion.weighting import fit_logistic_weighting, fit_weighting

__all__ = [
    "ClassificationResult",
    "ClassifyConfig",
    "DiffusionModel",
    "GenerateConfig",
    "ModelConfig",
    "TrainConfig",
    "classify",
    "default_model_path",
    "fit_logistic_weighting",
    "fit_weighting",
    "generate",
    "load_default_model",
    "train",
]
