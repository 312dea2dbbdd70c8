"""Figures 5 and 6: counterfactual heatmaps and the class-transition grid."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cytoviz.pl._style import COLUMN_WIDTH_PX, TEMPLATE_NAME

if TYPE_CHECKING:
    from cytoviz.heatmaps import CounterfactualHeatmaps

__all__ = ["heatmap_panel", "transition_grid"]


def _image(img: np.ndarray, name: str) -> go.Image:
    return go.Image(z=img, name=name, hovertemplate=f"{name}<extra></extra>")


def heatmap_panel(
    heatmaps: CounterfactualHeatmaps,
    i: int = 0,
    targets: Sequence[str | int] | None = None,
    *,
    threshold_k: float | None = None,
) -> go.Figure:
    """Figure 5: original, heatmap and thresholded overlay for one image and target classes.

    Parameters
    ----------
    heatmaps
        Decoded heatmaps (:func:`cytoviz.heatmaps.counterfactual_heatmaps`).
    i
        Position of the source image in ``heatmaps``.
    targets
        Target classes, one row each (default: every class other than the prediction).
    threshold_k
        Overlay threshold (default: the heatmaps' config).

    Returns
    -------
    plotly.graph_objects.Figure
        One row per target class with three image panels.
    """
    names = heatmaps.class_names
    pred = int(heatmaps.predicted[i])
    if targets is None:
        targets = [c for c in range(len(names)) if c != pred]
    tidx = [heatmaps._target(t) for t in targets]
    if not tidx:
        raise ValueError("no target classes to show")
    titles = []
    for c in tidx:
        titles += ["original", f"heatmap: {names[pred]} \u2192 {names[c]}", "overlay"]
    rows = len(tidx)
    # square panels a third of the column wide, with a band above each for its title
    width, hspace, title_px, margin = COLUMN_WIDTH_PX["single"], 0.02, 14, dict(l=5, r=5, t=30, b=5)
    panel_px = (width - margin["l"] - margin["r"]) * (1 - 2 * hspace) / 3
    plot_h = rows * panel_px + (rows - 1) * title_px
    fig = make_subplots(rows=rows, cols=3, subplot_titles=titles, horizontal_spacing=hspace,
                        vertical_spacing=title_px / plot_h if rows > 1 else 0.0)
    for r, c in enumerate(tidx, start=1):
        fig.add_trace(_image(heatmaps.images[i], "original"), row=r, col=1)
        fig.add_trace(_image(heatmaps.heatmap_uint8(i, c), f"heatmap {names[c]}"), row=r, col=2)
        fig.add_trace(_image(heatmaps.overlay(i, c, threshold_k), f"overlay {names[c]}"), row=r, col=3)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    fig.update_layout(template=TEMPLATE_NAME, width=width,
                      height=round(plot_h) + margin["t"] + margin["b"], margin=margin,
                      showlegend=False)
    for ann in fig.layout.annotations:
        ann.font.size = 8
    return fig


def transition_grid(
    heatmaps: CounterfactualHeatmaps,
    sources: Sequence[int] | None = None,
    *,
    kind: str = "heatmap",
    threshold_k: float | None = None,
) -> go.Figure:
    """Figure 6: the K x K class-transition grid.

    The diagonal shows one source image per class; in column ``j`` (source class ``j``) the cell
    of row ``i`` shows the heatmap of the transition ``j -> i``.

    Parameters
    ----------
    heatmaps
        Decoded heatmaps containing one source image per class.
    sources
        For each class in order, the position in ``heatmaps`` of its source image (default:
        the position whose true label, or else prediction, is that class).
    kind
        ``"heatmap"`` or ``"overlay"`` for the off-diagonal cells.
    threshold_k
        Overlay threshold when ``kind="overlay"``.
    """
    if kind not in ("heatmap", "overlay"):
        raise ValueError(f"kind must be 'heatmap' or 'overlay', got {kind!r}")
    names = heatmaps.class_names
    k = len(names)
    if sources is None:
        ref = np.where(heatmaps.true >= 0, heatmaps.true, heatmaps.predicted)
        sources = []
        for c in range(k):
            pos = np.flatnonzero(ref == c)
            sources.append(int(pos[0]) if pos.size else -1)
    sources = list(sources)
    if len(sources) != k:
        raise ValueError(f"need one source per class ({k}), got {len(sources)}")
    fig = make_subplots(rows=k, cols=k, horizontal_spacing=0.004, vertical_spacing=0.004,
                        column_titles=[n.replace(" ", "<br>") for n in names])
    for j, pos in enumerate(sources):  # column: source class
        if pos < 0:
            continue
        for i in range(k):  # row: target class
            if i == j:
                img, label = heatmaps.images[pos], f"source: {names[j]}"
            elif kind == "heatmap":
                img, label = heatmaps.heatmap_uint8(pos, i), f"{names[j]} \u2192 {names[i]}"
            else:
                img, label = heatmaps.overlay(pos, i, threshold_k), f"{names[j]} \u2192 {names[i]}"
            fig.add_trace(_image(img, label), row=i + 1, col=j + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    for i, n in enumerate(names):
        fig.update_yaxes(visible=True, showticklabels=False, showline=False, ticks="",
                         title=dict(text=n.replace(" ", "<br>"), font=dict(size=7)),
                         row=i + 1, col=1)
    width = COLUMN_WIDTH_PX["double"]
    fig.update_layout(template=TEMPLATE_NAME, width=width, height=width + 40,
                      margin=dict(l=60, r=5, t=50, b=5), showlegend=False)
    for ann in fig.layout.annotations:
        ann.font.size = 7
    return fig
