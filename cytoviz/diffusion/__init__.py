"""The latent diffusion model: building and loading, training, classification, generation.

Modules, in the order data flows: :mod:`~cytoviz.diffusion.model_config` and
:mod:`~cytoviz.diffusion.model` (the model), :mod:`~cytoviz.diffusion.train` (training; its
pieces in ``train_config``, ``losses``, ``_trainer`` and ``_checkpoint``),
:mod:`~cytoviz.diffusion.classify_config` (the classifier's settings and mask),
:mod:`~cytoviz.diffusion.classify` (the classifier), :mod:`~cytoviz.diffusion.result` (its
result), :mod:`~cytoviz.diffusion.resumable` (resumable runs into a folder),
:mod:`~cytoviz.diffusion.weighting` (timestep weightings) and
:mod:`~cytoviz.diffusion.generate` (sampling).
"""

from cytoviz.diffusion.classify import classify
from cytoviz.diffusion.classify_config import ClassifyConfig
from cytoviz.diffusion.generate import GenerateConfig, generate
from cytoviz.diffusion.model import (
    DiffusionModel,
    ModelConfig,
    default_model_path,
    load_default_model,
)
from cytoviz.diffusion.result import ClassificationResult
from cytoviz.diffusion.resumable import classify_to_folder
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
    "classify_to_folder",
    "default_model_path",
    "fit_logistic_weighting",
    "fit_weighting",
    "generate",
    "load_default_model",
    "train",
]
