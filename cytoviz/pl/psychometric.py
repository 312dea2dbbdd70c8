"""Figure 2: psychometric curves of the model and the experts, and per-expert forest plots.

Every function takes a fit (``InferenceData`` from :func:`cytoviz.psychometric.fit_observers`)
or a summary table (from :func:`cytoviz.psychometric.summary.summarize`) and returns a
``plotly.graph_objects.Figure`` with the ``cytoviz`` template. Nothing here samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cytoviz.pl._style import TEMPLATE_NAME
from cytoviz.psychometric.model import observer_config, observer_data, psychometric_function
from cytoviz.psychometric.summary import observers, posterior_draws

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az

__all__ = ["confidence_agreement", "deviance_residual_plot", "psychometric_comparison", "psychometric_curve", "psychometric_forest"]

_CURVE = "#0072B2"
_DATA = "#222222"
_CI = "#D55E00"


def _kde(values: np.ndarray, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    from scipy.stats import gaussian_kde

    values = np.asarray(values, float)
    if np.ptp(values) == 0:
        return np.array([values[0]]), np.array([1.0])
    grid = np.linspace(values.min(), values.max(), n)
    return grid, gaussian_kde(values)(grid)


def _curve_traces(
    idata: az.InferenceData, observer: str, *, ci_prob: float, max_draws: int,
    color: str = _CURVE, showlegend: bool = True,
) -> tuple[list[go.BaseTraceType], dict[str, Any]]:
    config = observer_config(idata, observer)
    data = observer_data(idata, observer)
    d = posterior_draws(idata, observer)
    step = max(1, len(d["threshold"]) // max_draws)
    m, w, lam = (d[p][::step, None] for p in ("threshold", "width", "lambda"))
    lo_x = min(0.0, float(data.x.min()))
    hi_x = max(1.0, float(data.x.max()))
    xs = np.linspace(lo_x, hi_x, 200)
    psi = psychometric_function(xs[None], m, w, lam=lam, gamma=config.gamma, alpha=config.alpha,
                                pc=config.pc)
    q = [(1 - ci_prob) / 2, (1 + ci_prob) / 2]
    band_lo, band_hi = np.quantile(psi, q, axis=0)
    mean = psi.mean(axis=0)
    size = 5 + 15 * np.sqrt(data.n / data.n.max())
    traces: list[go.BaseTraceType] = [
        go.Scatter(x=np.r_[xs, xs[::-1]], y=np.r_[band_hi, band_lo[::-1]], fill="toself", mode="lines",
                   fillcolor="rgba(0,114,178,0.15)", line=dict(width=0), hoverinfo="skip",
                   name=f"{ci_prob:.0%} band", showlegend=showlegend),
        go.Scatter(x=xs, y=mean, mode="lines", line=dict(color=color, width=2),
                   name="posterior mean curve", showlegend=showlegend),
        go.Scatter(x=data.x, y=data.k / data.n, mode="markers",
                   marker=dict(size=size, color=_DATA, opacity=0.75, line=dict(width=0)),
                   customdata=np.column_stack([data.k, data.n]),
                   hovertemplate="x=%{x:.3f}<br>%{customdata[0]}/%{customdata[1]} correct"
                                 "<extra></extra>",
                   name="binned data (size ~ n)", showlegend=showlegend),
    ]
    thr = d["threshold"]
    t_lo, t_hi = np.quantile(thr, q)
    t_mean = float(thr.mean())
    # psi at the threshold: S(m) = pc by definition
    y_thr = config.gamma + (1 - float(np.mean(lam)) - config.gamma) * config.pc
    traces.append(go.Scatter(
        x=[t_mean], y=[y_thr], mode="markers",
        marker=dict(color=_CI, size=8, symbol="diamond"),
        error_x=dict(type="data", symmetric=False, array=[t_hi - t_mean],
                     arrayminus=[t_mean - t_lo], color=_CI, thickness=1.5, width=4),
        name=f"threshold ({ci_prob:.0%} interval)", showlegend=showlegend,
    ))
    pad = 0.02 * (hi_x - lo_x)
    x_range = (min(lo_x, float(t_lo)) - pad, max(hi_x, float(t_hi)) + pad)
    info = {"threshold": t_mean, "interval": (float(t_lo), float(t_hi)),
            "draws": d, "config": config, "x_range": x_range}
    return traces, info


def psychometric_curve(
    idata: az.InferenceData,
    observer: str | None = None,
    *,
    ci_prob: float = 0.95,
    inset: bool = True,
    x_title: str = "stimulus level",
    title: str | None = None,
    max_draws: int = 400,
) -> go.Figure:
    """Figure 2 A: the fitted curve with the binned data and the threshold's interval.

    Parameters
    ----------
    idata
        A fit from :func:`cytoviz.psychometric.fit_observers`.
    observer
        Which observer (defaults to the first).
    ci_prob
        Mass of the curve's band and of the threshold's equal-tailed interval.
    inset
        Add inset posterior densities (Gaussian KDE) of the threshold and the width.
    x_title, title
        Axis and figure titles (name the stimulus, e.g. ``"model confidence"``).
    max_draws
        Posterior draws used for the curve and its band.

    Returns
    -------
    plotly.graph_objects.Figure
        The x axis spans the data, ``[0, 1]`` and the threshold's interval, whichever is widest.
        Traces: band, mean curve, data (marker area grows with n), threshold with error bar,
        and (with ``inset``) two KDE lines on the inset axes ``x2/y2`` and ``x3/y3``.
    """
    observer = observer if observer is not None else observers(idata)[0]
    traces, info = _curve_traces(idata, observer, ci_prob=ci_prob, max_draws=max_draws)
    fig = go.Figure(traces)
    fig.update_layout(
        template=TEMPLATE_NAME, title=title or f"{observer}: psychometric function",
        xaxis=dict(title=x_title, range=list(info["x_range"])),
        yaxis=dict(title="proportion correct", range=[0, 1.05]),
        # below the plot, clear of the data and of the x-axis title
        legend=dict(orientation="h", x=0.0, y=-0.2, xanchor="left", yanchor="top"),
        margin=dict(b=130), height=460,
    )
    if inset:
        for j, (param, label) in enumerate((("threshold", "threshold"), ("width", "width"))):
            g, dens = _kde(info["draws"][param])
            ax = j + 2
            fig.add_trace(go.Scatter(x=g, y=dens, mode="lines", fill="tozeroy",
                                     line=dict(color=_CURVE if j == 0 else _CI, width=1.2),
                                     name=f"posterior of {label}", showlegend=False,
                                     xaxis=f"x{ax}", yaxis=f"y{ax}"))
            x0 = 0.62 if j == 0 else 0.83
            fig.update_layout({
                f"xaxis{ax}": dict(domain=[x0, x0 + 0.16], anchor=f"y{ax}",
                                   title=dict(text=label, font=dict(size=8), standoff=2),
                                   tickfont=dict(size=7), nticks=3),
                # lower right (a rising curve leaves it empty), high enough that the inset's
                # tick labels and title clear the main x axis
                f"yaxis{ax}": dict(domain=[0.3, 0.52], anchor=f"x{ax}", showticklabels=False,
                                   ticks=""),
            })
    return fig


def psychometric_comparison(
    fits: Mapping[str, az.InferenceData],
    observer: str,
    *,
    ci_prob: float = 0.95,
    x_titles: Sequence[str] | None = None,
    max_draws: int = 400,
) -> go.Figure:
    """Figure 2 B / C: one observer's curve on several stimulus axes, side by side.

    Parameters
    ----------
    fits
        Panel title -> fit, e.g. ``{"vs model confidence": fit_b, "vs consensus
        confidence": fit_c}``; each must contain ``observer``.
    observer
        The expert (or model) to show.
    x_titles
        One x-axis title per panel (default: the panel titles).

    Returns
    -------
    plotly.graph_objects.Figure
        One subplot per fit, each with band, curve, data and threshold interval.
    """
    titles = list(fits)
    if not titles:
        raise ValueError("fits is empty; pass title -> InferenceData")
    x_titles = list(x_titles) if x_titles is not None else titles
    if len(x_titles) != len(titles):
        raise ValueError(f"x_titles has {len(x_titles)} entries for {len(titles)} fits")
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, shared_yaxes=True)
    for j, idata in enumerate(fits.values()):
        traces, info = _curve_traces(idata, observer, ci_prob=ci_prob, max_draws=max_draws,
                                     showlegend=j == 0)
        for tr in traces:
            fig.add_trace(tr, row=1, col=j + 1)
        fig.update_xaxes(title_text=x_titles[j], range=list(info["x_range"]), row=1, col=j + 1)
    fig.update_yaxes(title_text="proportion correct", range=[0, 1.05], row=1, col=1)
    # the figure title above the panel titles, the legend below the x-axis titles
    fig.update_layout(template=TEMPLATE_NAME,
                      title=dict(text=f"{observer}: psychometric functions", y=0.98,
                                 yref="container", yanchor="top"),
                      margin=dict(t=80, b=95),
                      legend=dict(orientation="h", x=0.0, y=-0.22, xanchor="left",
                                  yanchor="top"))
    fig.update_annotations(font_size=11)  # panel titles in the size of the figure title
    return fig


def psychometric_forest(
    summary: pd.DataFrame,
    parameter: str = "threshold",
    *,
    observers: Sequence[str] | None = None,
    groups: Mapping[str, pd.DataFrame] | None = None,
    point: str = "mean",
    title: str | None = None,
) -> go.Figure:
    """Figure 2 D / E: a parameter with its interval for every observer (forest plot).

    Parameters
    ----------
    summary
        Output of :func:`cytoviz.psychometric.summary.summarize` (columns observer, parameter,
        mean, map, lower, upper). Ignored when ``groups`` is given.
    parameter
        ``"threshold"``, ``"width"``, ``"lambda"``, ``"eta"``, or a threshold at a percent
        correct that :func:`~cytoviz.psychometric.summary.summarize` was asked for
        (``"threshold_80"``: the paper's Figure 2 D).
    observers
        Order (top to bottom) and selection of observers; defaults to the table's order.
    groups
        Several summaries to overlay, label -> table (e.g. model axis vs consensus axis).
    point
        Column for the point estimate: ``"mean"`` or ``"map"``.

    Returns
    -------
    plotly.graph_objects.Figure
        One scatter trace with horizontal error bars per group. For the threshold, when the
        tables carry ``stimulus_lower`` / ``stimulus_upper`` (as :func:`summarize` writes
        them), a light bar in the group's colour behind each observer's interval spans its
        stimulus levels, so a threshold outside its data's range shows as such.
    """
    tables = dict(groups) if groups else {parameter: summary}
    fig = go.Figure()
    ranges_drawn = False
    colors = (_CURVE, _CI, "#009E73", "#CC79A7")
    for i, (label, table) in enumerate(tables.items()):
        need = {"observer", "parameter", point, "lower", "upper"}
        missing = sorted(need - set(table.columns))
        if missing:
            raise ValueError(f"summary table {label!r} lacks column(s) {missing}; pass the "
                             "output of cytoviz.psychometric.summary.summarize")
        sub = table[table["parameter"] == parameter]
        if sub.empty:
            raise ValueError(f"no rows for parameter {parameter!r}; parameters are "
                             f"{sorted(table['parameter'].unique())}")
        if observers is not None:
            unknown = sorted(set(observers) - set(sub["observer"]))
            if unknown:
                raise ValueError(f"observer(s) {unknown} not in the summary table")
            sub = sub.set_index("observer").loc[list(observers)].reset_index()
        offset = (i - (len(tables) - 1) / 2) * 0.15
        y = np.arange(len(sub))[::-1] + offset
        if (parameter.startswith("threshold")
                and {"stimulus_lower", "stimulus_upper"} <= set(sub.columns)):
            xs = np.column_stack([sub["stimulus_lower"], sub["stimulus_upper"],
                                  np.full(len(sub), np.nan)]).ravel()
            fig.add_trace(go.Scatter(
                x=xs, y=np.repeat(y, 3), mode="lines", hoverinfo="skip", showlegend=False,
                name=f"{label}: stimulus range", legendgroup=label,
                line=dict(color=colors[i % len(colors)], width=7), opacity=0.2,
            ))
            ranges_drawn = True
        fig.add_trace(go.Scatter(
            x=sub[point], y=y, mode="markers", name=label, legendgroup=label,
            marker=dict(color=colors[i % len(colors)], size=7),
            error_x=dict(type="data", symmetric=False, array=sub["upper"] - sub[point],
                         arrayminus=sub[point] - sub["lower"], thickness=1.5, width=3),
            customdata=sub["observer"], hovertemplate="%{customdata}: %{x:.3f}<extra></extra>",
        ))
        labels = list(sub["observer"])
    name = _parameter_title(parameter)
    fig.update_layout(
        template=TEMPLATE_NAME, title=title or f"{name} (95 % interval)",
        xaxis=dict(title=name),
        yaxis=dict(title="observer", tickvals=list(range(len(labels)))[::-1], ticktext=labels),
        showlegend=len(tables) > 1 or ranges_drawn,
    )
    if ranges_drawn:  # one legend entry for the bars of every group
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="stimulus range (data)",
                                 line=dict(color="#7f7f7f", width=7), opacity=0.35,
                                 hoverinfo="skip"))
    return fig


def _parameter_title(parameter: str) -> str:
    """Axis title of a summary parameter (``threshold_80``: the threshold at 80 % correct)."""
    head, _, percent = parameter.partition("_")
    if head == "threshold" and percent:
        return f"threshold at {percent} % correct"
    return parameter


def confidence_agreement(pairs: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Heat map of ordered expert pairs by confidence word (the paper's supplementary Fig. 10).

    Parameters
    ----------
    pairs
        Counts from :func:`cytoviz.data.panel_agreement.pairwise_confidence` (index: the first
        expert's word, columns: the second's).
    title
        Figure title (default: the share of High/High pairs).

    Returns
    -------
    plotly.graph_objects.Figure
        Cells coloured by count and labelled with count and share of all pairs.
    """
    if not isinstance(pairs, pd.DataFrame) or pairs.shape[0] != pairs.shape[1] or pairs.empty:
        raise ValueError("pairs must be the square DataFrame of pairwise_confidence()")
    counts = pairs.to_numpy(dtype=float)
    total = counts.sum()
    if not total > 0:
        raise ValueError("pairs has no pair to draw (all counts are zero)")
    share = counts / total
    text = [[f"{int(c)}<br>{s:.1%}" for c, s in zip(row, srow, strict=True)]
            for row, srow in zip(counts, share, strict=True)]
    rows, cols = [str(i) for i in pairs.index], [str(c) for c in pairs.columns]
    fig = go.Figure(go.Heatmap(
        z=counts, x=cols, y=rows, text=text, texttemplate="%{text}", colorscale="Blues",
        colorbar=dict(title="pairs"),
        hovertemplate="%{y} / %{x}: %{z} pairs<extra></extra>",
    ))
    hh = f"{share[0, 0]:.0%} of {int(total):,} ordered pairs are {rows[0]}/{cols[0]}"
    fig.update_layout(
        template=TEMPLATE_NAME, title=title if title is not None else f"Pairwise confidence: {hh}",
        xaxis=dict(title=pairs.columns.name or "second expert", side="bottom"),
        yaxis=dict(title=pairs.index.name or "first expert", autorange="reversed"),
        width=480, height=420,
    )
    return fig


def deviance_residual_plot(residuals: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Deviance residuals against the stimulus, one panel row per observer.

    Parameters
    ----------
    residuals
        Table from :func:`cytoviz.psychometric.summary.deviance_residuals`.
    title
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        Markers sized by the level's trials, a zero line and +-2 guides.
    """
    missing = [c for c in ("observer", "x", "n", "residual") if c not in residuals]
    if missing:
        raise ValueError(f"residuals lacks column(s) {missing}; pass deviance_residuals()")
    names = list(dict.fromkeys(residuals["observer"]))
    if not names:
        raise ValueError("residuals has no rows")
    height = max(300, 170 * len(names))
    plot_h = height - 80 - 45  # the top margin below and plotly's default bottom margin
    # a band of 28 px between panels holds each panel's title
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, subplot_titles=names,
                        vertical_spacing=28 / plot_h if len(names) > 1 else 0.0)
    n_max = float(residuals["n"].max())
    for i, obs in enumerate(names, start=1):
        sub = residuals[residuals["observer"] == obs]
        fig.add_trace(go.Scatter(
            x=sub["x"], y=sub["residual"], mode="markers", name=str(obs), showlegend=False,
            marker=dict(color=_DATA, size=5 + 10 * np.sqrt(sub["n"] / max(n_max, 1))),
            customdata=sub["n"], hovertemplate="x=%{x:.3f}<br>residual %{y:.2f}<br>"
                                               "n=%{customdata}<extra></extra>"), row=i, col=1)
        for level, dash in ((0.0, "solid"), (2.0, "dot"), (-2.0, "dot")):
            fig.add_hline(y=level, line=dict(color="#888888", width=1, dash=dash), row=i, col=1)
        fig.update_yaxes(title_text="residual", row=i, col=1)
    fig.update_xaxes(title_text="stimulus", row=len(names), col=1)
    fig.update_layout(template=TEMPLATE_NAME,
                      title=dict(text=title or "Deviance residuals", y=0.99, yref="container",
                                 yanchor="top"),
                      margin=dict(t=80), width=560, height=height)
    return fig
