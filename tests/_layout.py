"""Structural layout checks of plotly figures (legends, insets, titles), not pixels."""

from __future__ import annotations

import plotly.graph_objects as go


def _shows_legend(fig: go.Figure) -> bool:
    if fig.layout.showlegend is False:
        return False
    shown = [t for t in fig.data
             if getattr(t, "showlegend", False) is not False and getattr(t, "name", None)]
    return len(shown) >= (1 if fig.layout.showlegend else 2)


def _axes(fig: go.Figure, letter: str) -> dict[str, tuple[float, float]]:
    out = {}
    for key in fig.layout:
        if key.startswith(f"{letter}axis"):
            domain = fig.layout[key].domain
            out[key[len(f"{letter}axis"):] or "1"] = tuple(domain) if domain else (0.0, 1.0)
    return out


def _plot_height(fig: go.Figure) -> float:
    """Height of the plotting area in layout pixels (plotly's defaults where unset)."""
    height = fig.layout.height or 450
    margin = fig.layout.margin
    top = margin.t if margin.t is not None else 35
    bottom = margin.b if margin.b is not None else 45
    return float(height - top - bottom)


#: Pixels below the plotting area taken by an x axis's tick labels and title.
X_AXIS_BAND_PX = 48
#: Pixels an inset needs under it for its own tick labels and title.
INSET_LABELS_PX = 40


def layout_problems(fig: go.Figure) -> list[str]:
    """Why ``fig`` would be sent back by a reviewer, as far as its structure tells.

    - a visible legend must lie outside the plotting area (right of it, above, or below and
      then beneath the x axis's tick labels and title);
    - an inset (axes inside another's domain) must sit high enough above the main axes'
      bottom that its own ticks and title clear the main x axis;
    - a figure title over panel titles needs a top margin that holds both.
    """
    problems = []
    plot_h = _plot_height(fig)
    if _shows_legend(fig):
        lg = fig.layout.legend
        x = 1.02 if lg.x is None else lg.x
        y = 1.0 if lg.y is None else lg.y
        yanchor = lg.yanchor or "auto"
        outside = (x >= 1.0 or (y <= 0.0 and yanchor in ("top", "auto"))
                   or (y >= 1.0 and yanchor == "bottom"))
        if not outside:
            problems.append(f"legend at ({x}, {y}) lies inside the plotting area")
        elif y <= 0.0 and x < 1.0 and -y * plot_h < X_AXIS_BAND_PX:
            problems.append(f"legend at y={y} ({-y * plot_h:.0f} px below the plot) sits on the "
                            f"x axis's labels (needs {X_AXIS_BAND_PX} px)")
    xs, ys = _axes(fig, "x"), _axes(fig, "y")
    for name, (x0, x1) in xs.items():
        if name not in ys:
            continue
        y0, _ = ys[name]
        for other, (ox0, ox1) in xs.items():
            if other == name or other not in ys:
                continue
            oy0, oy1 = ys[other]
            inside = ox0 <= x0 and x1 <= ox1 and oy0 <= y0 <= oy1 and (x1 - x0) < (ox1 - ox0)
            if inside and (y0 - oy0) * plot_h < INSET_LABELS_PX:
                problems.append(f"inset axes {name} start {(y0 - oy0) * plot_h:.0f} px above "
                                f"axes {other}: its labels sit on that x axis (needs "
                                f"{INSET_LABELS_PX} px)")
    for i, t in enumerate(fig.data):
        # a shaded band drawn as a closed polygon must not mark its corners (plotly's default
        # mode for fewer than 20 points is lines+markers)
        if getattr(t, "fill", None) == "toself":
            n = len(t.x) if getattr(t, "x", None) is not None else 0
            mode = t.mode or ("lines+markers" if n < 20 else "lines")
            if "markers" in mode:
                problems.append(f"trace {i} ({t.name or t.type}) is a band that draws markers "
                                "at its corners")
    problems += _data_outside_ranges(fig)
    problems += _panel_titles_on_panels(fig, plot_h)
    panel_titles = [a for a in fig.layout.annotations or ()
                    if a.yref == "paper" and a.y is not None and a.y >= 0.99]
    title = fig.layout.title.text if fig.layout.title else None
    if title and panel_titles:
        top = fig.layout.margin.t if fig.layout.margin.t is not None else 35
        if top < 70:
            problems.append(f"the figure title and {len(panel_titles)} panel titles share a "
                            f"top margin of {top} px")
    return problems


def _data_outside_ranges(fig: go.Figure) -> list[str]:
    """Traces with numeric data beyond an explicitly set (linear) axis range: axes must span
    the data (error bars included)."""
    import numpy as np

    problems = []
    for i, t in enumerate(fig.data):
        if t.type not in ("scatter", "bar"):
            continue
        for letter in ("x", "y"):
            ref = getattr(t, f"{letter}axis", None) or letter
            axis = fig.layout[f"{letter}axis{ref[1:]}"]
            if axis.range is None or axis.type in ("log", "category", "multicategory", "date"):
                continue
            try:
                values = np.asarray(getattr(t, letter), dtype=float)
            except (TypeError, ValueError):
                continue  # categories
            if values.size == 0:
                continue
            err = getattr(t, f"error_{letter}", None)
            if err is not None and err.visible and err.array is not None:
                values = values + np.nan_to_num(np.asarray(err.array, dtype=float))
            lo, hi = sorted(float(v) for v in axis.range)
            pad = 1e-9 + 1e-6 * (hi - lo)
            finite = values[np.isfinite(values)]
            if finite.size and (finite.min() < lo - pad or finite.max() > hi + pad):
                problems.append(f"trace {i} ({t.name or t.type}) spans {letter} "
                                f"[{finite.min():.3g}, {finite.max():.3g}] beyond the axis "
                                f"range [{lo:.3g}, {hi:.3g}]")
    return problems


def _panel_titles_on_panels(fig: go.Figure, plot_h: float) -> list[str]:
    """Panel titles (annotations standing on a panel's top edge, as ``make_subplots`` places
    them) must clear the bottom of the panel above them by their font's height."""
    xs, ys = _axes(fig, "x"), _axes(fig, "y")
    problems = []
    for ann in fig.layout.annotations or ():
        if (ann.yref != "paper" or ann.xref != "paper" or ann.yanchor != "bottom"
                or ann.y is None or ann.x is None or not 0.0 < ann.y < 0.99):
            continue
        size = (ann.font.size if ann.font and ann.font.size else None) or 12
        above = [ys[n][0] for n, (x0, x1) in xs.items()
                 if n in ys and x0 <= ann.x <= x1 and ys[n][0] >= ann.y - 1e-9]
        if above and (min(above) - ann.y) * plot_h < size + 2:
            problems.append(f"panel title {ann.text!r} has {(min(above) - ann.y) * plot_h:.0f} px "
                            f"below the panel above it (its font needs {size + 2})")
    return problems
