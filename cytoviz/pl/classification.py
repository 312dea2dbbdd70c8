"""The classifier's behaviour: how pruning eliminates classes for one cell, and reliability."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cytoviz.pl._style import COLUMN_WIDTH_PX, TEMPLATE_NAME, class_colors

if TYPE_CHECKING:
    from cytoviz.diffusion import ClassificationResult

__all__ = ["pruning_trace", "reliability_diagram", "rule_curve"]


def _running_means(errors: np.ndarray, relative: bool) -> np.ndarray:
    """``(T, K)`` running mean over the trials in which each class was evaluated (NaN after)."""
    e = errors.astype(np.float64)
    if relative and e.shape[0]:
        with np.errstate(invalid="ignore"):
            e = e - np.nanmin(np.where(np.isnan(e), np.inf, e), axis=1, keepdims=True)
    seen = ~np.isnan(e)
    counts = np.cumsum(seen, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.cumsum(np.where(seen, e, 0.0), axis=0) / counts
    out[~seen] = np.nan  # a pruned class: the line stops
    return out


def pruning_trace(
    result: ClassificationResult,
    index: int,
    *,
    relative: bool = True,
    title: str | None = None,
) -> go.Figure:
    """Classes eliminated trial by trial for one image: running mean error per class.

    Each line is a class's mean weighted error over the trials so far. A class dropped by the
    pruning test stops, and a cross marks the last trial it took part in; the vertical line marks
    the first pruning test (``min_trials``). With ``relative=True`` each trial's minimum over the
    classes in play is subtracted first, as in :attr:`ClassificationResult.mean_errors`, so each
    line ends at the value that decides the prediction (the lowest line among the classes still
    in play).

    Parameters
    ----------
    result
        A classification result (any config; with ``pruning=False`` no line stops).
    index
        The image, a position in ``result``.
    relative
        Subtract each trial's minimum before averaging (the paired comparison the classifier
        makes); ``False`` shows the raw running mean weighted error, which jumps with each
        trial's noise level.
    title
        Figure title (default: the image, its true and predicted class, its trials).

    Returns
    -------
    plotly.graph_objects.Figure
        One line per class (named by class) and, when a class was pruned, a ``"pruned"``
        marker trace with one cross per pruned class at ``(trial, running mean)``.

    Examples
    --------
    >>> i = int(np.argmax(result.n_trials))  # doctest: +SKIP
    >>> cv.pl.pruning_trace(result, i)  # doctest: +SKIP
    """
    n = len(result)
    if not -n <= int(index) < n:
        raise IndexError(f"image index {index} out of range for a result of {n} images")
    i = int(index) % n
    errors = result.image_errors(i)
    if errors.shape[0] == 0:
        raise ValueError(f"image {i} has no trials to plot")
    names = result.class_names
    colors = class_colors(names)
    trials = np.arange(1, errors.shape[0] + 1)
    running = _running_means(errors, relative)
    pred = int(result.prediction[i])
    y_title = "running mean error<br>minus the trial's best" if relative else "running mean error"

    fig = go.Figure()
    for k, name in enumerate(names):
        fig.add_trace(go.Scatter(
            x=trials, y=running[:, k], name=name, mode="lines", legendgroup=name,
            line=dict(color=colors[name], width=2.2 if k == pred else 1.2),
            hovertemplate=f"{name}<br>trial %{{x}}<br>mean %{{y:.4g}}<extra></extra>",
        ))
    evaluated = ~np.isnan(errors)
    pruned = [k for k in range(len(names)) if not result.remaining[i, k] and evaluated[:, k].any()]
    if pruned:
        last = [int(np.flatnonzero(evaluated[:, k])[-1]) for k in pruned]
        fig.add_trace(go.Scatter(
            x=[trials[t] for t in last], y=[running[t, k] for t, k in zip(last, pruned, strict=True)],
            name="pruned", mode="markers", text=[names[k] for k in pruned],
            marker=dict(symbol="x-thin", size=9, line=dict(width=2, color="#222")),
            hovertemplate="%{text} pruned after trial %{x}<extra></extra>",
        ))
    cfg = result.config
    if cfg.pruning and trials[-1] >= cfg.min_trials:
        fig.add_vline(x=cfg.min_trials, line=dict(color="#999", width=0.8, dash="dot"))
    if title is None:
        true = f"true {names[int(result.labels[i])]}, " if result.labels is not None else ""
        title = f"image {i}: {true}predicted {names[pred]}, {int(result.n_trials[i])} trials"
    fig.update_layout(template=TEMPLATE_NAME, width=COLUMN_WIDTH_PX["double"], height=340,
                      title=title, xaxis_title="trial", yaxis_title=y_title)
    return fig


def reliability_diagram(curves: Mapping[str, pd.DataFrame], *, title: str | None = None
                        ) -> go.Figure:
    """Accuracy against confidence, one line per model, with the diagonal of perfect calibration.

    Parameters
    ----------
    curves
        Name -> table from :func:`cytoviz.calibration.reliability_curve` (columns
        ``confidence``, ``accuracy``, ``n``).
    title
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        Marker size follows the number of images in each bin.
    """
    if not curves:
        raise ValueError("curves must name at least one reliability curve")
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                               line=dict(color="#888888", dash="dash")))
    for name, curve in curves.items():
        missing = [c for c in ("confidence", "accuracy", "n") if c not in curve]
        if missing:
            raise ValueError(f"curve {name!r} lacks column(s) {missing}; pass reliability_curve()")
        n = np.asarray(curve["n"], dtype=float)
        fig.add_trace(go.Scatter(
            x=curve["confidence"], y=curve["accuracy"], mode="lines+markers", name=str(name),
            marker=dict(size=5 + 12 * np.sqrt(n / max(n.max(), 1))), customdata=n,
            hovertemplate="confidence %{x:.2f}<br>accuracy %{y:.2f}<br>%{customdata} images"
                          "<extra></extra>"))
    fig.update_layout(template=TEMPLATE_NAME, title=title or "Reliability diagram",
                      xaxis=dict(title="confidence (top class probability)", range=[0, 1]),
                      yaxis=dict(title="accuracy", range=[0, 1.02]), width=480, height=420)
    return fig


def rule_curve(sweeps: Mapping[str, pd.DataFrame], *, highlight: list[str] | None = None,
               references: Mapping[str, Mapping[str, float]] | None = None,
               reference_label: str = "reference", title: str | None = None) -> go.Figure:
    """Balanced accuracy against UNet evaluations per image, one point per decision rule.

    Parameters
    ----------
    sweeps
        Test set -> table from :func:`cytoviz.diffusion.replay.rule_sweep` (columns ``rule``,
        ``mean_evals``, ``balanced_accuracy``, ``min_trials``).
    highlight
        Rules drawn as large labelled markers (e.g. ``["unpruned", "paper", "fast"]``); the
        others are the sweep's small grey points.
    references
        Test set -> ``{"mean_evals": ..., "balanced_accuracy": ...}`` of a reference run
        measured apart from the sweep (e.g. the unpruned pass at more trials), drawn as a star
        and a dashed line at its accuracy; sets without one are drawn without.
    reference_label
        Legend name of the references.
    title
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        One panel column per test set; the x axis is logarithmic.
    """
    from plotly.subplots import make_subplots

    if not sweeps:
        raise ValueError("sweeps must hold at least one test set's rule_sweep table")
    highlight = list(highlight or [])
    names = list(sweeps)
    fig = make_subplots(rows=1, cols=len(names), shared_yaxes=True, subplot_titles=names,
                        horizontal_spacing=0.08)
    fig.update_annotations(font_size=11)
    colours = ("#000000", "#D55E00", "#0072B2", "#009E73", "#CC79A7")
    for j, name in enumerate(names, start=1):
        t = sweeps[name]
        missing = [c for c in ("rule", "mean_evals", "balanced_accuracy") if c not in t]
        if missing:
            raise ValueError(f"sweep {name!r} lacks column(s) {missing}; pass rule_sweep()")
        rest = t[~t["rule"].isin(highlight)]
        fig.add_trace(go.Scatter(
            x=rest["mean_evals"], y=100 * rest["balanced_accuracy"], mode="markers",
            marker=dict(size=5, color="#BBBBBB"), name="other settings (sweep)",
            legendgroup="sweep", showlegend=j == 1, text=rest["rule"],
            hovertemplate="%{text}<br>%{x:.0f} evaluations<br>%{y:.1f} %<extra></extra>"),
            row=1, col=j)
        for i, rule in enumerate(highlight):
            row = t[t["rule"] == rule]
            if row.empty:
                continue
            fig.add_trace(go.Scatter(
                x=row["mean_evals"], y=100 * row["balanced_accuracy"], mode="markers",
                marker=dict(size=10, color=colours[i % len(colours)],
                            symbol=("diamond", "circle", "square", "triangle-up")[i % 4]),
                name=rule, legendgroup=rule, showlegend=j == 1,
                hovertemplate=f"{rule}<br>%{{x:.0f}} evaluations<br>%{{y:.1f}} %<extra></extra>"),
                row=1, col=j)
        ref = (references or {}).get(name)
        if ref is not None:
            y = 100 * float(ref["balanced_accuracy"])
            fig.add_hline(y=y, line=dict(color="#555555", dash="dash", width=1), row=1, col=j)
            fig.add_trace(go.Scatter(
                x=[float(ref["mean_evals"])], y=[y], mode="markers",
                marker=dict(size=12, color="#555555", symbol="star"), name=reference_label,
                legendgroup="reference",
                showlegend=not any(t.name == reference_label for t in fig.data),
                hovertemplate=f"{reference_label}<br>%{{x:.0f}} evaluations<br>%{{y:.1f}} %"
                              "<extra></extra>"),
                row=1, col=j)
        # round numbers only: plotly's log axis labels every minor tick (6 7 8 9 100 2 3 ...)
        fig.update_xaxes(type="log", title_text="UNet evaluations per image",
                         tickvals=[10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000],
                         row=1, col=j)
    fig.update_yaxes(title_text="balanced accuracy (%)", row=1, col=1)
    fig.update_layout(template=TEMPLATE_NAME, width=360 * len(names) + 160, height=360,
                      title=title or "Decision rules: accuracy against cost",
                      margin=dict(t=80))
    return fig
