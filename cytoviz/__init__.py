"""cytoviz: CytoDiffusion for blood-cell morphology, in Jupyter.

``import cytoviz as cv`` gives the public API; submodules are imported lazily so that
``import cytoviz`` is fast and does not load torch or PyMC until they are needed.

Namespaces
----------
cv.data
    Synthetic smears, the simulated expert panel, loaders for real data sets.
cv.diffusion
    The latent diffusion model: building, loading, training, classification, generation.
cv.heatmaps, cv.anomaly, cv.calibration
    Views of a classification result: counterfactual heatmaps, certainty scores, calibrated
    class probabilities.
cv.psychometric
    The Bayesian psychometric function (psignifit 4 conventions) in PyMC.
cv.evaluation
    The discriminative baseline and the evaluation protocols.
cv.pl
    Plotly figures (one function per paper figure family) and export.
cv.widgets
    ipywidgets explorers for JupyterLab.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = (
    "anomaly",
    "authenticity",
    "calibration",
    "classes",
    "data",
    "diffusion",
    "evaluation",
    "heatmaps",
    "pl",
    "psychometric",
    "widgets",
)

# Top-level shortcuts: name -> module that defines it.
_SHORTCUTS: dict[str, str] = {
    "CANONICAL_CLASSES": "cytoviz.classes",
    "CellDataset": "cytoviz.data",
}

__all__ = ["__version__", "fast_mode", *_SUBMODULES, *_SHORTCUTS]


def fast_mode() -> bool:
    """Whether ``CYTOVIZ_FAST`` asks for shrunken budgets (CI, notebook smoke runs).

    Notebooks and ``cytoviz figures`` read it to pick small image counts and trial budgets;
    results computed in fast mode say so.
    """
    return os.environ.get("CYTOVIZ_FAST", "0").strip().lower() not in ("", "0", "false", "no")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"cytoviz.{name}")
    if name in _SHORTCUTS:
        return getattr(importlib.import_module(_SHORTCUTS[name]), name)
    raise AttributeError(f"module 'cytoviz' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
