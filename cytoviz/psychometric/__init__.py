"""The Bayesian psychometric function (psignifit 4 conventions) in PyMC.

Compute: :func:`fit` / :func:`fit_observers` return ArviZ ``InferenceData``; :mod:`.summary`
turns it into tables (MAP, means, intervals, thresholds at any percent correct, goodness of
fit); :mod:`.binning` makes ``(x, k, n)`` rows from confidence and correctness; :mod:`.experts`
builds the per-expert data of the paper's Figure 2 B-E; :mod:`.hierarchical` fits all observers
with partial pooling and compares it with independent fits by LOO; :mod:`.grid` is the opt-in
engine that sums the posterior on a grid as psignifit does (``PsychometricConfig(engine="grid")``).
PyMC is imported only when a model is built or fitted with NUTS.
"""

from cytoviz.psychometric.binning import (
    PsychometricData,
    as_psychometric_data,
    bin_confidence,
    validate_xkn,
)
from cytoviz.psychometric.hierarchical import compare_pooling, fit_hierarchical
from cytoviz.psychometric.model import (
    CompiledModels,
    PsychometricConfig,
    build_model,
    fit,
    fit_observers,
    psychometric_function,
    sigmoid,
    simulate_xkn,
)

__all__ = [
    "CompiledModels",
    "PsychometricConfig",
    "PsychometricData",
    "as_psychometric_data",
    "bin_confidence",
    "build_model",
    "compare_pooling",
    "fit",
    "fit_hierarchical",
    "fit_observers",
    "psychometric_function",
    "sigmoid",
    "simulate_xkn",
    "validate_xkn",
]
