"""Figures of generated images and of what they are good for (Figure 8, authenticity, CytoDiff).

Every function takes precomputed results (a :class:`~cytoviz.data.CellDataset` of generated
images, a score table) and returns a ``plotly`` figure; nothing here runs a model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cytoviz.data._dataset import CellDataset
from cytoviz.pl._style import TEMPLATE_NAME
from cytoviz.pl.data import data_preview, real_vs_synthetic

__all__ = [
    "augmentation_curve",
    "authenticity_scores",
    "class_agreement_bars",
    "generated_grid",
    "prototype_comparison",
]

_METRIC_LABELS = {
    "accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "macro_f1": "macro-F1",
    "auc_ovr": "one-vs-rest AUC",
}


def generated_grid(
    ds: CellDataset,
    n_per_class: int = 8,
    *,
    real: CellDataset | None = None,
    classes: Sequence[str] | None = None,
    tile_size: int | None = None,
    title: str | None = "Generated cells",
) -> go.Figure:
    """Generated images in a grid, one row per class (the paper's Figure 8).

    Parameters
    ----------
    ds
        Generated images (labels = intended classes), e.g. from :func:`cytoviz.diffusion.generate`.
    n_per_class
        Images per row.
    real
        Optional real images shown in a block to the left, for comparison.
    classes
        Rows, in order; default the classes present in ``ds``.
    tile_size
        Display size of a tile in image pixels (default the image size).
    title
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``go.Image`` montage; class names as row annotations.
    """
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be at least 1, got {n_per_class}")
    if classes is None:
        classes = [c for c in ds.class_names if (ds.label_names == c).any()]
    unknown = [c for c in classes if c not in ds.class_names]
    if unknown:
        raise ValueError(f"unknown class(es) {unknown}; the data set has {list(ds.class_names)}")
    if real is not None:
        return real_vs_synthetic(real, ds, n_per_class=n_per_class, classes=classes,
                                 tile_size=tile_size, labels=("real", "generated"), title=title)
    return data_preview(ds, n_per_class=n_per_class, classes=classes, tile_size=tile_size,
                        title=title)


def augmentation_curve(
    table: pd.DataFrame,
    *,
    metrics: Sequence[str] = ("accuracy", "macro_f1", "auc_ovr"),
    title: str | None = "Synthetic augmentation",
) -> go.Figure:
    """Test scores against the number of generated images added per class (CytoDiff).

    Parameters
    ----------
    table
        From :func:`cytoviz.evaluation.augmentation.augmentation_curve` (columns ``k``,
        ``repeat`` and the metrics).
    metrics
        Columns to draw, one line each; mean over repeats with +/- 1 sd error bars.
    title
        Figure title.
    """
    missing = [c for c in ("k", *metrics) if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; pass the output of augmentation_curve")
    fig = go.Figure()
    stats = table.groupby("k")[list(metrics)].agg(["mean", "std", "count"])
    ks = stats.index.to_numpy()
    for m in metrics:
        sd = stats[(m, "std")].fillna(0.0).to_numpy()
        fig.add_trace(go.Scatter(
            x=ks, y=stats[(m, "mean")].to_numpy(), mode="lines+markers",
            name=_METRIC_LABELS.get(m, m),
            error_y=dict(type="data", array=sd, visible=bool(np.any(sd > 0))),
            hovertemplate="k=%{x}<br>%{y:.3f}<extra>" + _METRIC_LABELS.get(m, m) + "</extra>",
        ))
    fig.update_layout(template=TEMPLATE_NAME, title=title, width=420, height=300,
                      legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(title="generated images added per class")
    fig.update_yaxes(title="test score")
    return fig


def class_agreement_bars(table: pd.DataFrame, *, title: str | None = "Class agreement of "
                         "generated images", reference: float | None = 0.986) -> go.Figure:
    """Agreement with the intended class per class and classifier, with Wilson intervals.

    Parameters
    ----------
    table
        From :func:`cytoviz.authenticity.class_agreement`.
    reference
        A horizontal reference line (the paper's haematologists: 0.986); ``None`` for none.
    """
    need = ("classifier", "intended", "agreement", "agreement_low", "agreement_high")
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; pass the output of class_agreement")
    fig = go.Figure()
    for name, g in table.groupby("classifier", sort=False):
        fig.add_trace(go.Bar(
            x=g["intended"], y=g["agreement"], name=str(name),
            error_y=dict(type="data", symmetric=False,
                         array=(g["agreement_high"] - g["agreement"]).to_numpy(),
                         arrayminus=(g["agreement"] - g["agreement_low"]).to_numpy()),
        ))
    if reference is not None:
        # the line's label in the right margin, where it cannot cover a bar
        fig.add_hline(y=reference, line_dash="dash", line_color="#333", line_width=1.2)
        fig.add_annotation(text=f"haematologists<br>{reference:.1%}", xref="paper", yref="y",
                           x=1.01, y=reference, xanchor="left", yanchor="middle",
                           showarrow=False, align="left", font=dict(size=9))
    fig.update_layout(template=TEMPLATE_NAME, title=title, barmode="group", width=620, height=340,
                      margin=dict(t=80, r=90),
                      legend=dict(orientation="h", x=0.0, xanchor="left", y=1.02,
                                  yanchor="bottom"))
    fig.update_yaxes(title="agreement with intended class", range=[0, 1.05])
    return fig


def prototype_comparison(table: pd.DataFrame, *, title: str | None = "Prototype vs one-hot "
                         "conditioning") -> go.Figure:
    """Class agreement and Frechet distance per class for each generator (IMPROVE).

    Parameters
    ----------
    table
        From :func:`cytoviz.evaluation.prototypes.compare_generators` (or
        :func:`cytoviz.evaluation.generation.prototype_comparison`): ``generator``,
        ``intended`` (incl. ``"all"``), ``agreement``, ``frechet_baseline_features``.
    title
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        Two panels of grouped bars (one trace per generator and panel): baseline agreement with
        the intended class, and the Frechet distance to the real images on the baseline's
        features (not the Inception FID; lower is closer).
    """
    need = ("generator", "intended", "agreement", "frechet_baseline_features")
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; pass the output of compare_generators")
    if len(table) == 0:
        raise ValueError("the table is empty")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=(
        "baseline agreement with intended class",
        "Frechet distance on baseline features (not FID)"))
    colours = ("#0072B2", "#D55E00", "#009E73", "#CC79A7")
    for i, (name, g) in enumerate(table.groupby("generator", sort=False)):
        colour = colours[i % len(colours)]
        for col, column in ((1, "agreement"), (2, "frechet_baseline_features")):
            fig.add_trace(go.Bar(x=g["intended"].astype(str), y=g[column], name=str(name),
                                 legendgroup=str(name), showlegend=col == 1,
                                 marker_color=colour), row=1, col=col)
    fig.update_layout(template=TEMPLATE_NAME, title=title, barmode="group", width=900, height=380,
                      margin=dict(t=90), legend=dict(orientation="h", y=-0.45))
    fig.update_annotations(font_size=11)  # panel titles the size of the axis titles
    fig.update_yaxes(title="agreement", range=[0, 1.05], row=1, col=1)
    fig.update_yaxes(title="Frechet distance (lower = closer)", row=1, col=2)
    return fig


def authenticity_scores(scores: pd.DataFrame, *, title: str | None = "Real or synthetic?"
                        ) -> go.Figure:
    """Accuracy per participant and pooled, with 95 % Wilson intervals and the chance line.

    Parameters
    ----------
    scores
        From :func:`cytoviz.authenticity.score_answers`.
    """
    need = ("participant", "accuracy", "accuracy_low", "accuracy_high", "sensitivity",
            "specificity")
    missing = [c for c in need if c not in scores.columns]
    if missing:
        raise ValueError(f"scores lack column(s) {missing}; pass the output of score_answers")
    names = scores["participant"].astype(str).to_numpy()
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=scores["accuracy"], y=names, mode="markers", name="accuracy",
        marker=dict(size=8, color=["#D55E00" if n == "all" else "#0072B2" for n in names]),
        error_x=dict(type="data", symmetric=False,
                     array=(scores["accuracy_high"] - scores["accuracy"]).to_numpy(),
                     arrayminus=(scores["accuracy"] - scores["accuracy_low"]).to_numpy()),
    ))
    for col, symbol in (("sensitivity", "triangle-up"), ("specificity", "triangle-down")):
        fig.add_trace(go.Scatter(x=scores[col], y=names, mode="markers", name=col,
                                 marker=dict(symbol=symbol, size=7, opacity=0.6)))
    fig.add_vline(x=0.5, line_dash="dot", line_color="#555", annotation_text="chance")
    fig.update_layout(template=TEMPLATE_NAME, title=title, width=460,
                      height=140 + 22 * len(names), legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(title="fraction correct (positive = synthetic)", range=[0, 1])
    fig.update_yaxes(autorange="reversed")
    return fig
