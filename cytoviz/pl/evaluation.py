"""Figures of the evaluation protocols (Figure 3, Table 2, Figure 4, few-shot adaptation).

Every function takes a table of a protocol of :mod:`cytoviz.evaluation` (or statistics of it from
:mod:`cytoviz.anomaly`) and returns a ``plotly.graph_objects.Figure`` with the ``cytoviz``
template; nothing runs a model or computes a statistic beyond a mean. The budget
of the run (``table.attrs["budget"]`` or the ``budget`` column) is named in the title so a
reduced CPU run is never mistaken for the paper's protocol.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cytoviz.evaluation.tables import MODEL_LABELS, summarise
from cytoviz.pl._style import TEMPLATE_NAME

__all__ = ["anomaly_kde", "domain_shift_bars", "few_shot_bars", "low_data_curve"]

#: Colours of the two models and of the normal / abnormal groups.
MODEL_COLORS = {"diffusion": "#0072B2", "baseline": "#D55E00"}
GROUP_COLORS = {"normal": "#009E73", "abnormal": "#CC79A7"}


def _labels() -> dict[str, str]:
    return MODEL_LABELS


def _budget_note(table: pd.DataFrame) -> str:
    name = table.attrs.get("budget")
    if name is None and "budget" in table and len(table):
        name = str(table["budget"].iloc[0])
    return f" (budget: {name})" if name else ""


def _need(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{what} takes a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in columns if c not in table]
    if missing:
        raise ValueError(f"{what}: the table lacks column(s) {missing}")
    if len(table) == 0:
        raise ValueError(f"{what}: the table is empty")


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def anomaly_kde(
    kde: pd.DataFrame,
    auc: pd.DataFrame | None = None,
    *,
    models: Sequence[str] | None = None,
    held_out: Sequence[str] | None = None,
    score: str = "zeta",
    title: str | None = None,
) -> go.Figure:
    """Figure 3: KDEs of the normalised certainty, normal vs abnormal, one panel per
    (model, held-out class), with the ROC AUC and its interval.

    The figure draws precomputed statistics only:
    ``anomaly_kde(certainty_kde(table), anomaly_auc(table))``.

    Parameters
    ----------
    kde
        Output of :func:`cytoviz.anomaly.certainty_kde` (columns ``model``, ``held_out``,
        ``group``, ``x``, ``density``); set the bandwidth there.
    auc
        Output of :func:`cytoviz.anomaly.anomaly_auc` (columns ``model``, ``held_out``,
        ``auc``; ``auc_low``/``auc_high`` where present), written into each panel; ``None``:
        no AUC.
    models, held_out
        Rows (models) and columns (held-out classes) of the grid, in order; default: all in
        ``kde`` (2 x 2 for the paper's setting).
    score
        The score drawn, where the tables hold several (a ``score`` column): ``"zeta"``, the
        paper's, for both models; ``"likelihood"`` (diffusion), ``"msp"`` or ``"energy"``
        (CNN) draw only the models that have it.
    title
        Figure title (default names the budget).

    Returns
    -------
    plotly.graph_objects.Figure
        ``len(models) x len(held_out)`` subplots with two ``Scatter`` traces each (normal first,
        then abnormal; ``meta`` holds ``model``, ``held_out``, ``group``).
    """
    from plotly.subplots import make_subplots

    _need(kde, ["model", "held_out", "group", "x", "density"], "anomaly_kde")
    if auc is not None:
        _need(auc, ["model", "held_out", "auc"], "anomaly_kde (auc)")
    if "score" in kde:
        if score not in set(kde["score"]):
            raise ValueError(f"unknown score {score!r}; the table has "
                             f"{list(dict.fromkeys(kde['score']))}")
        kde = kde[kde["score"] == score]
    if auc is not None and "score" in auc:
        auc = auc[auc["score"] == score]
    models = list(models) if models is not None else list(dict.fromkeys(kde["model"]))
    held = list(held_out) if held_out is not None else list(dict.fromkeys(kde["held_out"]))
    sub = kde[kde["model"].isin(models) & kde["held_out"].isin(held)]
    if sub.empty:
        raise ValueError(f"no rows for models {models} and held-out classes {held}")
    auc_by = (auc.set_index(["model", "held_out"]) if auc is not None
              else pd.DataFrame(columns=["auc"]))
    # the lowest score (certainty_kde's attrs), else where the curves start
    ranges = kde.attrs.get("score_ranges", {})
    lo = (float(ranges[score][0]) if score in ranges
          else float(kde.attrs["score_range"][0]) if "score_range" in kde.attrs and not ranges
          else min(0.0, float(sub["x"].min())))
    # the axis spans the whole smoothed curve (a Gaussian KDE spills past the score's support)
    x_lo, x_hi = float(sub["x"].min()), float(sub["x"].max())
    labels = _labels()
    fig = make_subplots(
        rows=len(models), cols=len(held), shared_xaxes=True, horizontal_spacing=0.08,
        vertical_spacing=0.12,
        subplot_titles=[f"{labels.get(m, m)}: {h} held out" for m in models for h in held],
    )
    fig.update_annotations(font_size=10)
    for i, m in enumerate(models, start=1):
        for j, h in enumerate(held, start=1):
            for group in ("normal", "abnormal"):
                curve = sub[(sub["model"] == m) & (sub["held_out"] == h) & (sub["group"] == group)]
                colour = GROUP_COLORS[group]
                fig.add_trace(
                    go.Scatter(
                        x=curve["x"], y=curve["density"], mode="lines", name=group,
                        line=dict(color=colour, width=1.5), fill="tozeroy",
                        fillcolor=_rgba(colour, 0.25), legendgroup=group,
                        showlegend=(i == 1 and j == 1),
                        meta={"model": m, "held_out": h, "group": group},
                        hovertemplate=f"{group}<br>certainty %{{x:.2f}}<br>density %{{y:.2f}}"
                        "<extra></extra>",
                    ),
                    row=i, col=j,
                )
            if (m, h) in auc_by.index and np.isfinite(auc_by.loc[(m, h), "auc"]):
                r = auc_by.loc[(m, h)]
                ci = (f" [{r['auc_low']:.2f}, {r['auc_high']:.2f}]"
                      if "auc_low" in r and np.isfinite(r["auc_low"]) else "")
                fig.add_annotation(
                    text=f"AUC = {r['auc']:.3f}{ci}", xref="x domain", yref="y domain",
                    x=0.02, y=0.95, showarrow=False, xanchor="left", font=dict(size=9),
                    row=i, col=j,
                )
            fig.update_xaxes(title_text="normalised certainty" if i == len(models) else None,
                             range=[min(lo - 0.05, x_lo), max(1.05, x_hi)], row=i, col=j)
            fig.update_yaxes(title_text="density" if j == 1 else None, row=i, col=j)
    fig.update_layout(
        template=TEMPLATE_NAME, height=260 * len(models) + 60, width=360 * len(held) + 80,
        title=title if title is not None else (
            "Anomaly detection" + ("" if score == "zeta" else f" ({score} score)")
            + _budget_note(kde)),
        legend=dict(orientation="h", y=-0.12 if len(models) > 1 else -0.25),
        margin=dict(t=70),
    )
    return fig


def _bars_from_summary(s: pd.DataFrame, x: str, hue: str, order_hue: Sequence[str],
                       labels: dict[str, str], colours: dict[str, str], k: float) -> list[go.Bar]:
    bars = []
    for h in order_hue:
        part = s[s[hue] == h]
        bars.append(go.Bar(
            x=part[x], y=part["mean"] * k, name=labels.get(h, h),
            marker_color=colours.get(h), meta={hue: h},
            error_y=dict(type="data", array=part["sd"] * k, visible=True, thickness=1, width=3),
            customdata=np.c_[part["sd"] * k, part["n"]],
            hovertemplate="%{x}: %{y:.2f} ± %{customdata[0]:.2f} (n = %{customdata[1]})"
            "<extra></extra>",
        ))
    return bars


#: A horizontal legend above the plot, under the title: at a single journal column a legend at
#: the right would take a third of the width.
_LEGEND_ABOVE = dict(orientation="h", x=0.0, xanchor="left", y=1.02, yanchor="bottom")


def domain_shift_bars(
    table: pd.DataFrame,
    *,
    metric: str = "balanced_accuracy",
    percent: bool = True,
    title: str | None = None,
) -> go.Figure:
    """Table 2 as bars: mean +/- sd of the metric per test set (x) and model (colour).

    Parameters
    ----------
    table
        Output of :func:`cytoviz.evaluation.domain_shift`.
    metric
        ``"balanced_accuracy"`` (default, the paper's) or ``"accuracy"``.
    percent
        Plot percentages.
    title
        Figure title (default names the budget).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``Bar`` trace per model with ``error_y`` = standard deviation over seeds.
    """
    _need(table, ["model", "test_set", metric], "domain_shift_bars")
    s = summarise(table, ["model", "test_set"], metric)
    k = 100.0 if percent else 1.0
    fig = go.Figure(_bars_from_summary(s, "test_set", "model", list(dict.fromkeys(s["model"])),
                                       _labels(), MODEL_COLORS, k))
    fig.update_layout(
        template=TEMPLATE_NAME, barmode="group", width=480, height=360,
        title=title if title is not None else "Domain shift" + _budget_note(table),
        legend=_LEGEND_ABOVE, margin=dict(t=80),
        xaxis_title="test set",
        yaxis=dict(title=f"{metric.replace('_', ' ')}{' (%)' if percent else ''}",
                   range=[0, 100 * 1.05 if percent else 1.05]),
    )
    return fig


def low_data_curve(
    table: pd.DataFrame,
    *,
    metric: str = "balanced_accuracy",
    percent: bool = True,
    log_x: bool = True,
    title: str | None = None,
) -> go.Figure:
    """Figure 4: mean +/- sd of the metric against training images per class, per model.

    Parameters
    ----------
    table
        Output of :func:`cytoviz.evaluation.low_data`.
    metric
        ``"balanced_accuracy"`` or ``"accuracy"`` (default balanced accuracy).
    percent
        Plot percentages.
    log_x
        Logarithmic x axis (10, 20, 50, 150 spread evenly).
    title
        Figure title (default names the budget).

    Returns
    -------
    plotly.graph_objects.Figure
        Per model a shaded band (mean +/- sd, ``fill="toself"``) and a line with markers.
    """
    _need(table, ["model", "n_per_class", metric], "low_data_curve")
    s = summarise(table, ["model", "n_per_class"], metric).sort_values(["model", "n_per_class"])
    k = 100.0 if percent else 1.0
    labels = _labels()
    fig = go.Figure()
    for m in dict.fromkeys(table["model"]):
        part = s[s["model"] == m]
        x = part["n_per_class"].to_numpy(dtype=float)
        mean, sd = part["mean"].to_numpy() * k, part["sd"].to_numpy() * k
        colour = MODEL_COLORS.get(m, "#444")
        fig.add_trace(go.Scatter(
            x=np.r_[x, x[::-1]], y=np.r_[mean + sd, (mean - sd)[::-1]], fill="toself", mode="lines",
            fillcolor=_rgba(colour, 0.18), line=dict(width=0), hoverinfo="skip",
            showlegend=False, meta={"model": m, "kind": "band"},
        ))
        fig.add_trace(go.Scatter(
            x=x, y=mean, mode="lines+markers", name=labels.get(m, m),
            line=dict(color=colour, width=1.5), marker=dict(size=6),
            meta={"model": m, "kind": "mean"},
            customdata=np.c_[sd, part["n"]],
            hovertemplate="%{x} per class: %{y:.2f} ± %{customdata[0]:.2f} (n = %{customdata[1]})"
            "<extra></extra>",
        ))
    fig.update_layout(
        template=TEMPLATE_NAME, width=460, height=360,
        title=title if title is not None else "Low-data regime" + _budget_note(table),
        legend=_LEGEND_ABOVE, margin=dict(t=80),
        xaxis=dict(title="training images per class", type="log" if log_x else "linear",
                   tickvals=sorted(table["n_per_class"].unique().tolist())),
        yaxis_title=f"{metric.replace('_', ' ')}{' (%)' if percent else ''}",
    )
    return fig


def few_shot_bars(
    table: pd.DataFrame,
    *,
    metric: str = "accuracy",
    percent: bool = True,
    title: str | None = None,
) -> go.Figure:
    """Few-shot domain adaptation: accuracy before / after fine-tuning, with and without
    colour transfer, one panel per target set.

    Parameters
    ----------
    table
        Output of :func:`cytoviz.evaluation.few_shot`.
    metric
        ``"accuracy"`` (default, as in Chossegros et al.) or ``"balanced_accuracy"``.
    percent
        Plot percentages.
    title
        Figure title (default names the budget).

    Returns
    -------
    plotly.graph_objects.Figure
        One column per target; in each, a ``Bar`` trace per colour-transfer setting over the
        categories (model, stage) (plotly multi-category x axis), error bars = sd over seeds.
    """
    from plotly.subplots import make_subplots

    _need(table, ["model", "target", "colour_transfer", "stage", metric], "few_shot_bars")
    targets = list(dict.fromkeys(table["target"]))
    s = summarise(table, ["target", "model", "colour_transfer", "stage"], metric)
    k = 100.0 if percent else 1.0
    labels = _labels()
    names = {"test_mild": "mild shift", "test_strong": "strong shift"}
    fig = make_subplots(rows=1, cols=len(targets), shared_yaxes=True,
                        subplot_titles=[names.get(t, t) for t in targets],
                        horizontal_spacing=0.06)
    fig.update_annotations(font_size=11)  # panel titles the size of the axis titles
    colours = {False: "#999999", True: "#0072B2"}
    stages = {"before": "before", "after": "fine-tuned"}
    for j, t in enumerate(targets, start=1):
        for ct in (False, True):
            part = s[(s["target"] == t) & (s["colour_transfer"] == ct)]
            if part.empty:
                continue
            x = [[labels.get(m, m) for m in part["model"]],
                 [stages.get(st, st) for st in part["stage"]]]
            fig.add_trace(go.Bar(
                x=x, y=part["mean"] * k, name="colour transfer" if ct else "raw colours",
                marker_color=colours[ct], legendgroup=str(ct), showlegend=(j == 1),
                # one run per bar has no spread to show
                error_y=dict(type="data", array=part["sd"].fillna(0) * k,
                             visible=bool((part["sd"].fillna(0) > 0).any()), thickness=1,
                             width=3),
                meta={"target": t, "colour_transfer": ct},
            ), row=1, col=j)
    fig.update_yaxes(title_text=f"{metric.replace('_', ' ')}{' (%)' if percent else ''}",
                     range=[0, 105 if percent else 1.05], row=1, col=1)
    fig.update_layout(
        template=TEMPLATE_NAME, barmode="group", width=340 * len(targets) + 80, height=380,
        title=title if title is not None else "Few-shot domain adaptation" + _budget_note(table),
        margin=dict(t=80),  # the figure title above the panel titles
    )
    return fig
