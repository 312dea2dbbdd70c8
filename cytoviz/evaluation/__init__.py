"""Evaluation: the discriminative baseline and the evaluation protocols.

Layout: :mod:`.budget` (:class:`EvalBudget`), :mod:`.splits` (:func:`eval_data` and subsets),
:mod:`.runner` (unit store, fit and score helpers shared by every protocol), one module per
protocol family (:mod:`.anomaly_detection`, :mod:`.shift` for domain shift and few-shot
adaptation, :mod:`.low_data_regime`, :mod:`.generation` for generated images), :mod:`.tables`
(summaries, Table 2, the shipped result tables), and the building blocks :mod:`.baseline`,
:mod:`.augmentation`, :mod:`.prototypes`, :mod:`.colour`. The anomaly statistics
(:func:`anomaly_auc`, :func:`certainty_kde`) live in :mod:`cytoviz.anomaly`.

Names are imported lazily from their modules (torch is loaded only when needed). To add a
public name, add one line to ``_EXPORTS``.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it (relative names are submodules of cytoviz.evaluation)
_EXPORTS: dict[str, str] = {
    "BaselineClassifier": ".baseline",
    "BaselineConfig": ".baseline",
    "train_baseline": ".baseline",
    "EvalBudget": ".budget",
    "eval_data": ".splits",
    "anomaly_scores": ".anomaly_detection",
    "anomaly_table": ".anomaly_detection",
    "anomaly_test_set": ".anomaly_detection",
    "anomaly_auc": "cytoviz.anomaly",
    "certainty_kde": "cytoviz.anomaly",
    "domain_shift": ".shift",
    "few_shot": ".shift",
    "low_data": ".low_data_regime",
    "domain_shift_table": ".tables",
    "stored_results": ".tables",
    "stale_reason": ".tables",
    "augmentation_curve": ".augmentation",
    "classification_scores": ".augmentation",
    "PrototypeConfig": ".prototypes",
    "compare_generators": ".prototypes",
    "generated_class_agreement": ".generation",
    "prototype_comparison": ".generation",
    "synthetic_augmentation": ".generation",
    "frechet_distance": ".prototypes",
    "learn_prototypes": ".prototypes",
    "train_prototype_conditioned": ".prototypes",
    "lab_stats": ".colour",
    "reinhard_transfer": ".colour",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cytoviz.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


def __dir__() -> list[str]:
    return sorted({*__all__, *globals()})
