"""``UncertaintyBinsExplorer``: how binning choices change the psychometric fit.

Thin (STYLE.md principle 3): the controls pick an observer, a stimulus axis, the number of
bins, the binning scheme and a percent-correct level; :meth:`UncertaintyBinsExplorer.update`
bins with :func:`cytoviz.psychometric.bin_confidence`, fits with
:func:`cytoviz.psychometric.fit_observers` (fits cached by their inputs; the widget owns a
:class:`~cytoviz.psychometric.CompiledModels`, so only its first fit compiles the model), and
redraws a ``FigureWidget`` from :func:`cytoviz.pl.psychometric_curve`. Every callback is a plain
method.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from cytoviz.pl._style import TEMPLATE_NAME
from cytoviz.pl.psychometric import psychometric_curve
from cytoviz.psychometric.binning import SCHEMES, bin_confidence
from cytoviz.psychometric.model import CompiledModels, PsychometricConfig, fit_observers
from cytoviz.psychometric.summary import goodness_of_fit, threshold_at

__all__ = ["UncertaintyBinsExplorer"]

#: Sampler settings for interactive use (one chain; about a second of sampling; fixed draws, so
#: the interval bounds' Monte-Carlo error is larger than a full fit's).
WIDGET_CONFIG = PsychometricConfig(draws=800, tune=500, chains=1, mcse_target=None)


def _normalise(data: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    if not isinstance(data, Mapping) or not data:
        raise ValueError("data must map observer -> (confidence, correct) or observer -> "
                         "{'correct': ..., '<axis name>': confidence, ...}")
    out: dict[str, dict[str, np.ndarray]] = {}
    for obs, value in data.items():
        if isinstance(value, Mapping):
            if "correct" not in value:
                raise ValueError(f"observer {obs!r}: mapping lacks the 'correct' entry "
                                 f"(has {sorted(value)})")
            axes = {str(k): np.asarray(v, float) for k, v in value.items() if k != "correct"}
            if not axes:
                raise ValueError(f"observer {obs!r}: no stimulus axis besides 'correct'")
            correct = np.asarray(value["correct"])
        elif isinstance(value, tuple | list) and len(value) == 2:
            axes = {"confidence": np.asarray(value[0], float)}
            correct = np.asarray(value[1])
        else:
            raise ValueError(f"observer {obs!r}: expected (confidence, correct) or a mapping "
                             f"with 'correct' and stimulus axes, got {type(value).__name__}")
        for axis, conf in axes.items():
            if len(conf) != len(correct):
                raise ValueError(f"observer {obs!r}: axis {axis!r} has {len(conf)} values but "
                                 f"'correct' has {len(correct)}")
        out[str(obs)] = {**axes, "correct": correct}
    return out


class UncertaintyBinsExplorer:
    """Explore binning choices for the psychometric fit of each observer.

    Parameters
    ----------
    data
        Observer -> ``(confidence, correct)``, or observer -> mapping with ``"correct"`` and
        one entry per stimulus axis (e.g. ``{"model confidence": ..., "consensus confidence":
        ..., "correct": ...}``). Confidence values lie in [0, 1].
    config
        Model and sampler settings (defaults to :data:`WIDGET_CONFIG`).
    n_bins
        Initial number of bins.
    scheme
        Initial binning scheme (``"equal-width"`` or ``"equal-count"``).
    percent_correct
        Initial percent correct (unscaled) for the threshold readout.
    auto_fit
        Fit and draw at construction (False leaves the figure empty until :meth:`update`).

    Attributes
    ----------
    figure : plotly.graph_objects.FigureWidget
        The curve, data, threshold interval and inset posteriors.
    readout : ipywidgets.HTML
        Goodness of fit (deviance, posterior predictive p) and thresholds at the chosen level.
    status : ipywidgets.HTML
        Progress indicator ("sampling ..." while a fit runs).
    widget : ipywidgets.VBox
        Everything, for display.
    """

    def __init__(
        self,
        data: Mapping[str, Any],
        *,
        config: PsychometricConfig | None = None,
        n_bins: int = 12,
        scheme: str = "equal-width",
        percent_correct: float = 0.8,
        auto_fit: bool = True,
    ) -> None:
        import ipywidgets as widgets
        import plotly.graph_objects as go

        self.data = _normalise(data)
        self.config = config or WIDGET_CONFIG
        if scheme not in SCHEMES:
            raise ValueError(f"unknown binning scheme {scheme!r}; use one of {list(SCHEMES)}")
        observers = list(self.data)
        first = self.data[observers[0]]
        self.observer = widgets.Dropdown(options=observers, value=observers[0],
                                         description="observer")
        self.axis = widgets.Dropdown(options=[a for a in first if a != "correct"],
                                     description="stimulus")
        self.n_bins = widgets.IntSlider(value=n_bins, min=3, max=40, description="bins",
                                        continuous_update=False)
        self.scheme = widgets.ToggleButtons(options=list(SCHEMES), value=scheme,
                                            description="scheme")
        self.percent_correct = widgets.FloatSlider(
            value=percent_correct, min=0.55, max=0.95, step=0.05, description="% correct",
            continuous_update=False, readout_format=".2f")
        self.status = widgets.HTML("")
        self.readout = widgets.HTML("")
        self.figure = go.FigureWidget(layout=dict(template=TEMPLATE_NAME, height=380))
        self._cache: dict[str, Any] = {}
        self._compiled = CompiledModels()  # the model is compiled once per widget
        self.idata: Any = None
        self.n_fits = 0

        self.observer.observe(self.on_observer_change, names="value")
        for control in (self.axis, self.n_bins, self.scheme):
            control.observe(self.on_binning_change, names="value")
        self.percent_correct.observe(self.on_percent_correct_change, names="value")
        self.widget = widgets.VBox([
            widgets.HBox([self.observer, self.axis]),
            widgets.HBox([self.n_bins, self.percent_correct]),
            self.scheme, self.status, self.figure, self.readout,
        ])
        if auto_fit:
            self.update()

    # -- callbacks (plain methods) -------------------------------------------------------------

    def on_observer_change(self, change: Any = None) -> None:
        """New observer: refresh its stimulus axes, then refit and redraw."""
        axes = [a for a in self.data[self.observer.value] if a != "correct"]
        if list(self.axis.options) != axes:
            # Swap the options without triggering a fit for the intermediate value; keep the
            # current axis when the new observer has it.
            keep = self.axis.value if self.axis.value in axes else axes[0]
            self.axis.unobserve(self.on_binning_change, names="value")
            try:
                self.axis.options = axes
                self.axis.value = keep
            finally:
                self.axis.observe(self.on_binning_change, names="value")
        self.update()

    def on_binning_change(self, change: Any = None) -> None:
        """Axis, bin count or scheme changed: refit (cached) and redraw."""
        self.update()

    def on_percent_correct_change(self, change: Any = None) -> None:
        """Only the readout depends on the percent correct: no refit."""
        if self.idata is not None:
            self.readout.value = self._readout_html(self.idata)

    # -- work ----------------------------------------------------------------------------------

    def cache_key(self) -> str:
        """The inputs that determine a fit (observer, axis, bins, scheme, config)."""
        return json.dumps([self.observer.value, self.axis.value, int(self.n_bins.value),
                           self.scheme.value, self.config.to_dict()])

    def fit_current(self) -> Any:
        """Bin the current observer's data and fit it (or return the cached fit)."""
        key = self.cache_key()
        if key not in self._cache:
            obs = self.observer.value
            d = self.data[obs]
            binned = bin_confidence(d[self.axis.value], d["correct"], n_bins=int(self.n_bins.value),
                                    scheme=self.scheme.value, name=obs)
            self.status.value = "<i>sampling ...</i>"
            try:
                self._cache[key] = fit_observers({obs: binned}, self.config,
                                                cache=self._compiled)
                self.n_fits += 1
            finally:
                self.status.value = ""
        return self._cache[key]

    def update(self) -> None:
        """Fit (cached) and redraw the figure and the readout; errors go to the status line."""
        try:
            idata = self.fit_current()
        except ValueError as exc:  # e.g. too few levels with these bins
            self.status.value = f"<span style='color:#D55E00'>{exc}</span>"
            return
        self.idata = idata
        fig = psychometric_curve(idata, self.observer.value, x_title=self.axis.value,
                                 title=f"{self.observer.value}: {self.n_bins.value} "
                                       f"{self.scheme.value} bins")
        with self.figure.batch_update():
            self.figure.data = []
            self.figure.add_traces(list(fig.data))
            self.figure.layout = fig.layout
            self.figure.layout.height = 380
        self.readout.value = self._readout_html(idata)

    def _readout_html(self, idata: Any) -> str:
        gof = goodness_of_fit(idata).iloc[0]
        th = threshold_at(idata, float(self.percent_correct.value))
        rows = "".join(
            f"<tr><td>{r.method}</td><td>{r.point:.3f}</td><td>[{r.lower:.3f}, {r.upper:.3f}]"
            "</td></tr>" for r in th.itertuples())
        return (f"<b>goodness of fit</b>: deviance {gof.deviance:.2f} over {gof.n_levels} levels,"
                f" posterior predictive p = {gof.ppc_p:.3f}<br>"
                f"<b>threshold at {self.percent_correct.value:.0%} correct (unscaled)</b>"
                f"<table>{rows}</table>")

    def _ipython_display_(self) -> None:  # pragma: no cover - needs a front end
        from IPython.display import display

        display(self.widget)
