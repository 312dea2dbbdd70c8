"""Per-expert psychometric data from an expert-panel table (the paper's Figure 2 B-E).

The consensus (majority vote, ties to the most experienced expert; confidence words mapped to
1, 2/3, 1/3, 0 and averaged) and the per-label correctness come from
:mod:`cytoviz.data.panel`; this module only turns them into binned ``(x, k, n)`` rows per
expert, on the common images, against either the consensus expert confidence or the model's
confidence.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

import pandas as pd

from cytoviz.psychometric.binning import PsychometricData, Scheme, bin_confidence

__all__ = ["correct_counts", "expert_psychometric_data", "read_expert_table"]

Axis = Literal["consensus", "model"]


def read_expert_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate a user's expert-panel CSV.

    The CSV needs columns ``image``, ``expert``, ``years``, ``label`` and ``confidence``
    (High / Moderate / Low / No, any case). Errors name the missing columns or the unknown
    confidence words and the file.
    """
    from cytoviz.data.panel import load_panel

    return load_panel(path)


def _model_confidence_series(model_confidence: Any) -> pd.Series:
    if isinstance(model_confidence, pd.DataFrame):
        missing = [c for c in ("image", "confidence") if c not in model_confidence.columns]
        if missing:
            raise ValueError(
                f"model_confidence DataFrame lacks column(s) {missing}; it needs image and "
                "confidence"
            )
        s = model_confidence.set_index("image")["confidence"]
    elif isinstance(model_confidence, pd.Series):
        s = model_confidence
    elif isinstance(model_confidence, Mapping):
        s = pd.Series(dict(model_confidence))
    else:
        raise TypeError(
            "model_confidence must map image -> confidence (dict, Series indexed by image, or "
            f"DataFrame with columns image, confidence), got {type(model_confidence).__name__}"
        )
    return s.astype(float)


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
        The model's confidence in [0, 1] per image (dict, Series indexed by image, or DataFrame
        with columns image, confidence). Needed for ``axis="model"``.
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
    from cytoviz.data.panel import consensus, expert_correctness

    if axis not in ("consensus", "model"):
        raise ValueError(f"axis must be 'consensus' or 'model', got {axis!r}")
    cons = consensus(table)
    corr = expert_correctness(table, cons, common_only=common_only)
    if len(corr) == 0:
        raise ValueError("no images are labelled by every expert; pass common_only=False")
    if axis == "model":
        if model_confidence is None:
            raise ValueError("axis='model' needs model_confidence (image -> confidence in [0, 1])")
        mc = _model_confidence_series(model_confidence)
        missing = sorted(set(corr["image"]) - set(mc.index))
        if missing:
            raise ValueError(
                f"model_confidence lacks {len(missing)} image(s) of the panel, e.g. {missing[:5]}"
            )
        stim = mc.reindex(corr["image"]).to_numpy()
    else:
        stim = corr["consensus_confidence"].to_numpy(dtype=float)
    corr = corr.assign(_x=stim)
    order = corr.groupby("expert")["years"].first().sort_values(ascending=False, kind="stable")
    out: dict[str, PsychometricData] = {}
    for expert in order.index:
        sub = corr[corr["expert"] == expert]
        out[str(expert)] = bin_confidence(
            sub["_x"].to_numpy(), sub["correct"].to_numpy(), n_bins=n_bins, scheme=scheme,
            name=f"expert {expert}",
        )
    return out


def correct_counts(data: Mapping[str, PsychometricData]) -> pd.DataFrame:
    """Totals per observer (rows, trials, proportion correct), for quick checks."""
    rows = [{"observer": k, "levels": len(d), "n": int(d.n.sum()),
             "proportion_correct": float(d.k.sum() / d.n.sum())} for k, d in data.items()]
    return pd.DataFrame(rows)

