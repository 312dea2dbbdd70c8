"""Per-expert psychometric data from an expert-panel table (the paper's Figure 2 B-E).

The consensus (majority vote, ties to the most experienced expert; confidence words mapped to
1, 2/3, 1/3, 0 and averaged) and the per-label correctness come from
:mod:`cytoviz.data.panel`; this module only turns them into binned ``(x, k, n)`` rows per
expert, on the common images, against either the consensus expert confidence or the model's
confidence (:func:`expert_psychometric_data`), or into the unbinned cases per observer that
:class:`~cytoviz.widgets.UncertaintyBinsExplorer` bins interactively (:func:`observer_cases`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd

from cytoviz.data.panel import consensus, expert_correctness, load_panel
from cytoviz.psychometric.binning import PsychometricData, Scheme, bin_confidence

__all__ = ["correct_counts", "expert_psychometric_data", "observer_cases", "read_expert_table"]

Axis = Literal["consensus", "model"]


def read_expert_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate a user's expert-panel CSV.

    The CSV needs columns ``image``, ``expert``, ``years``, ``label`` and ``confidence``
    (High / Moderate / Low / No, any case). Errors name the missing columns or the unknown
    confidence words and the file.
    """
    return load_panel(path)


def _per_image(values: Any, what: str) -> pd.Series:
    """``values`` as a Series indexed by image (a 1-D array: image id = position)."""
    if isinstance(values, pd.Series):
        return values
    if isinstance(values, Mapping):
        return pd.Series(dict(values))
    if isinstance(values, np.ndarray | list | tuple) and np.ndim(values) == 1:
        return pd.Series(np.asarray(values))
    raise TypeError(
        f"{what} must map image -> value (dict, Series indexed by image, or a 1-D array indexed "
        f"by image), got {type(values).__name__}"
    )


def _model_confidence_series(model_confidence: Any) -> pd.Series:
    if isinstance(model_confidence, pd.DataFrame):
        missing = [c for c in ("image", "confidence") if c not in model_confidence.columns]
        if missing:
            raise ValueError(
                f"model_confidence DataFrame lacks column(s) {missing}; it needs image and "
                "confidence"
            )
        return model_confidence.set_index("image")["confidence"].astype(float)
    return _per_image(model_confidence, "model_confidence").astype(float)


def _panel_correctness(table: pd.DataFrame, common_only: bool) -> pd.DataFrame:
    corr = expert_correctness(table, consensus(table), common_only=common_only)
    if len(corr) == 0:
        raise ValueError("no images are labelled by every expert; pass common_only=False")
    return corr


def _by_experience(corr: pd.DataFrame) -> list:
    return list(corr.groupby("expert")["years"].first()
                .sort_values(ascending=False, kind="stable").index)


def _model_stimulus(corr: pd.DataFrame, mc: pd.Series) -> np.ndarray:
    missing = sorted(set(corr["image"]) - set(mc.index))
    if missing:
        raise ValueError(
            f"model_confidence lacks {len(missing)} image(s) of the panel, e.g. {missing[:5]}"
        )
    return mc.reindex(corr["image"]).to_numpy()


def expert_psychometric_data(
    table: pd.DataFrame,
    model_confidence: Any = None,
    *,
    axis: Axis = "consensus",
    n_bins: int = 12,
    scheme: Scheme = "equal-width",
    common_only: bool = True,
) -> dict[str, PsychometricData]:
    """Binned ``(x, k, n)`` per expert: correct vs the consensus label, on the common images.

    Parameters
    ----------
    table
        The tidy panel table (columns image, expert, years, label, confidence), e.g. from
        :func:`cytoviz.data.panel.simulate_panel` or :func:`read_expert_table`.
    model_confidence
        The model's confidence in [0, 1] per image (dict, Series indexed by image, DataFrame
        with columns image, confidence, or a 1-D array whose position is the image id, such as
        ``result.confidence``). Needed for ``axis="model"``.
    axis
        Stimulus axis: ``"consensus"`` (the consensus expert confidence, Figure 2 C/E) or
        ``"model"`` (the model's confidence, Figure 2 B/D).
    n_bins, scheme
        Binning (12 equal-width bins in the paper).
    common_only
        Use only the images every expert labelled (the paper's 200 cases).

    Returns
    -------
    dict
        Expert id -> :class:`~cytoviz.psychometric.binning.PsychometricData`, experts ordered
        by decreasing experience.
    """
    if axis not in ("consensus", "model"):
        raise ValueError(f"axis must be 'consensus' or 'model', got {axis!r}")
    corr = _panel_correctness(table, common_only)
    if axis == "model":
        if model_confidence is None:
            raise ValueError("axis='model' needs model_confidence (image -> confidence in [0, 1])")
        stim = _model_stimulus(corr, _model_confidence_series(model_confidence))
    else:
        stim = corr["consensus_confidence"].to_numpy(dtype=float)
    corr = corr.assign(_x=stim)
    out: dict[str, PsychometricData] = {}
    for expert in _by_experience(corr):
        sub = corr[corr["expert"] == expert]
        out[str(expert)] = bin_confidence(
            sub["_x"].to_numpy(), sub["correct"].to_numpy(), n_bins=n_bins, scheme=scheme,
            name=f"expert {expert}",
        )
    return out


def observer_cases(
    table: pd.DataFrame,
    model_confidence: Any = None,
    model_correct: Any = None,
    *,
    common_only: bool = True,
    model_name: str = "model",
) -> dict[str, dict[str, np.ndarray]]:
    """Unbinned cases per observer (the model and every expert), on every stimulus axis.

    The input of :class:`~cytoviz.widgets.UncertaintyBinsExplorer`, which bins and fits them
    interactively (:func:`expert_psychometric_data` gives the binned rows for fixed choices).

    Parameters
    ----------
    table
        The tidy panel table (columns image, expert, years, label, confidence), e.g. from
        :func:`cytoviz.data.panel.simulate_panel` or :func:`read_expert_table`.
    model_confidence
        The model's confidence in [0, 1] per image: a 1-D array whose position is the image id
        (``result.confidence``), a dict, a Series indexed by image, or a DataFrame with columns
        image, confidence. Adds the ``"model confidence"`` axis to every expert.
    model_correct
        Whether the model classified each image correctly, in the same form and for the same
        images as ``model_confidence`` (``result.correct``). Adds the observer ``model_name``
        (all its images, not only the panel's).
    common_only
        Use only the images every expert labelled (the paper's 200 cases).
    model_name
        The model observer's name.

    Returns
    -------
    dict
        Observer -> ``{"model confidence": ..., "correct": ...}`` for the model (first), then
        expert id -> ``{"consensus confidence": ..., "model confidence": ..., "correct": ...}``,
        experts ordered by decreasing experience; an expert's correctness is against the
        consensus label.

    Examples
    --------
    >>> observers = observer_cases(panel, result.confidence, result.correct)  # doctest: +SKIP
    >>> UncertaintyBinsExplorer(observers)  # doctest: +SKIP
    """
    if model_correct is not None and model_confidence is None:
        raise ValueError("model_correct needs model_confidence (the model observer's stimulus)")
    corr = _panel_correctness(table, common_only)
    experts = [str(e) for e in _by_experience(corr)]
    out: dict[str, dict[str, np.ndarray]] = {}
    mc = None if model_confidence is None else _model_confidence_series(model_confidence)
    if mc is not None and model_correct is not None:
        if str(model_name) in experts:
            raise ValueError(f"an expert is named {model_name!r}; pass another model_name")
        ok = _per_image(model_correct, "model_correct")
        if len(ok) != len(mc) or set(ok.index) != set(mc.index):
            raise ValueError(
                f"model_correct ({len(ok)} images) must cover the same images as "
                f"model_confidence ({len(mc)} images)"
            )
        out[str(model_name)] = {"model confidence": mc.to_numpy(dtype=float),
                                "correct": ok.reindex(mc.index).to_numpy(dtype=bool)}
    model_axis = None if mc is None else _model_stimulus(corr, mc)
    for expert in _by_experience(corr):
        rows = (corr["expert"] == expert).to_numpy()
        cases = {"consensus confidence": corr.loc[rows, "consensus_confidence"].to_numpy(float)}
        if model_axis is not None:
            cases["model confidence"] = model_axis[rows].astype(float)
        cases["correct"] = corr.loc[rows, "correct"].to_numpy(dtype=bool)
        out[str(expert)] = cases
    return out


def correct_counts(data: Mapping[str, PsychometricData]) -> pd.DataFrame:
    """Totals per observer (rows, trials, proportion correct), for quick checks."""
    rows = [{"observer": k, "levels": len(d), "n": int(d.n.sum()),
             "proportion_correct": float(d.k.sum() / d.n.sum())} for k, d in data.items()]
    return pd.DataFrame(rows)

