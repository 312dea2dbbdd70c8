"""Evaluation: the discriminative baseline and the evaluation protocols.

Names are imported lazily from their submodules (torch is loaded only when needed). To add a
public name, add one line to ``_EXPORTS``.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule of cytoviz.evaluation that defines it
_EXPORTS: dict[str, str] = {
    "BaselineClassifier": "baseline",
    "BaselineConfig": "baseline",
    "train_baseline": "baseline",
    "EvalBudget": "protocols",
    "anomaly_auc": "protocols",
    "anomaly_scores": "protocols",
    "anomaly_table": "protocols",
    "anomaly_test_set": "protocols",
    "certainty_kde": "protocols",
    "domain_shift": "protocols",
    "domain_shift_table": "protocols",
    "eval_data": "protocols",
    "few_shot": "protocols",
    "low_data": "protocols",
    "stored_results": "protocols",
    "augmentation_curve": "augmentation",
    "classification_scores": "augmentation",
    "PrototypeConfig": "prototypes",
    "compare_generators": "prototypes",
    "generated_class_agreement": "generation",
    "prototype_comparison": "generation",
    "synthetic_augmentation": "generation",
    "frechet_distance": "prototypes",
    "learn_prototypes": "prototypes",
    "train_prototype_conditioned": "prototypes",
    "lab_stats": "colour",
    "reinhard_transfer": "colour",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cytoviz.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cytoviz.evaluation.{module}"), name)


def __dir__() -> list[str]:
    return sorted({*__all__, *globals()})
