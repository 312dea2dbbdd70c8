"""The latent diffusion model: building and loading, training, classification, generation."""

from cytoviz.diffusion.classify import ClassifyConfig, classify
from cytoviz.diffusion.generate import GenerateConfig, generate
from cytoviz.diffusion.model import DiffusionModel, ModelConfig
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
    "fit_logistic_weighting",
    "fit_weighting",
    "generate",
    "train",
]
