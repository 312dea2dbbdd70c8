"""How the experts of a panel agree: pairwise confidence and the calibration statistics.

:func:`pairwise_confidence` counts, over the images every expert labelled, the ordered expert
pairs by the two confidence words (the CytoDiffusion paper's supplementary Figure 10: 2,556 of
the 6,000 ordered pairs of CytoData's 200 common images are High/High). :func:`panel_calibration`
gathers the numbers :func:`cytoviz.data.panel.simulate_panel` is calibrated against. Both
compute; :func:`cytoviz.pl.confidence_agreement` draws the first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from cytoviz.data.panel import (
    CONFIDENCE_LEVELS,
    common_images,
    expert_correctness,
    validate_panel,
)

__all__ = ["pairwise_confidence", "panel_calibration"]


def pairwise_confidence(table: pd.DataFrame) -> pd.DataFrame:
    """Ordered expert pairs by confidence word on the images every expert labelled.

    Parameters
    ----------
    table
        A panel table (see :func:`cytoviz.data.panel.validate_panel`).

    Returns
    -------
    pandas.DataFrame
        4 x 4 counts, index the first expert's word and columns the second's (High, Moderate,
        Low, No). Every ordered pair of distinct experts counts once per common image, so the
        total is ``n_common * n_experts * (n_experts - 1)`` and the table is symmetric.

    Raises
    ------
    ValueError
        For a table with fewer than two experts or no image labelled by all of them.
    """
    table = validate_panel(table)
    experts = table["expert"].unique()
    if len(experts) < 2:
        raise ValueError(f"pairwise confidence needs at least two experts, got {list(experts)}")
    common = common_images(table)
    if len(common) == 0:
        raise ValueError("no image is labelled by every expert; pairwise confidence needs "
                         "common images")
    sub = table[table["image"].isin(common)]
    level = {w: i for i, w in enumerate(CONFIDENCE_LEVELS)}
    codes = sub.pivot(index="image", columns="expert", values="confidence").map(level.get)
    per_image = np.stack([np.bincount(row.astype(int), minlength=len(level))
                          for row in codes.to_numpy()])  # images x words
    # ordered pairs of distinct experts: c_a * c_b, minus the expert paired with itself
    counts = per_image.T @ per_image - np.diag(per_image.sum(axis=0))
    return pd.DataFrame(counts, index=pd.Index(CONFIDENCE_LEVELS, name="first expert"),
                        columns=pd.Index(CONFIDENCE_LEVELS, name="second expert"))


def panel_calibration(table: pd.DataFrame) -> dict[str, float]:
    """The statistics the simulated panel is calibrated against, on the common images.

    Parameters
    ----------
    table
        A panel table with the ``years`` of each expert.

    Returns
    -------
    dict
        ``n_common``; ``high_high`` and ``no_no`` (shares of the ordered expert pairs with
        both words High, both No); ``share_<word>`` (share of the labels with each word);
        ``accuracy_<expert>`` (agreement with the consensus label); ``min_accuracy``,
        ``max_accuracy``; and ``spearman_years`` (rank correlation of accuracy with years of
        experience; NaN with fewer than three experts).
    """
    table = validate_panel(table)
    pairs = pairwise_confidence(table)
    total = float(pairs.to_numpy().sum())
    common = common_images(table)
    sub = table[table["image"].isin(common)]
    out: dict[str, float] = {
        "n_common": float(len(common)),
        "high_high": float(pairs.loc["High", "High"]) / total,
        "no_no": float(pairs.loc["No", "No"]) / total,
    }
    shares = sub["confidence"].value_counts(normalize=True)
    for word in CONFIDENCE_LEVELS:
        out[f"share_{word.lower()}"] = float(shares.get(word, 0.0))
    corr = expert_correctness(table, common_only=True)
    acc = corr.groupby("expert")["correct"].mean()
    years = corr.groupby("expert")["years"].first()
    for expert in years.sort_values(ascending=False).index:
        out[f"accuracy_{expert}"] = float(acc[expert])
    out["min_accuracy"] = float(acc.min())
    out["max_accuracy"] = float(acc.max())
    out["spearman_years"] = (float(spearmanr(years[acc.index], acc).statistic)
                             if len(acc) >= 3 else float("nan"))
    return out
