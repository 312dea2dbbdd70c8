"""Every psychometric and calibration figure passes the structural layout checks (issue 21)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from _layout import layout_problems

from cytoviz import pl
from cytoviz.psychometric import PsychometricConfig, fit_observers, simulate_xkn
from cytoviz.psychometric.summary import deviance_residuals, summarize

FAST = PsychometricConfig(draws=150, tune=150, chains=1, seed=0, mcse_target=None)


@pytest.fixture(scope="module")
def fits():
    data = {"model": simulate_xkn(0.4, 0.5, 0.02, n_bins=12, n_per_level=30, seed=1),
            "E1": simulate_xkn(0.5, 0.4, 0.05, n_bins=12, n_per_level=20, seed=2)}
    a = fit_observers(data, FAST)
    b = fit_observers(data, FAST.replace(seed=1))
    return a, b


def test_the_checker_catches_what_the_issue_reported():
    bad = go.Figure([go.Scatter(x=[0, 1], y=[0, 1], name="a"), go.Scatter(x=[0], y=[1], name="b")])
    bad.update_layout(legend=dict(x=0.01, y=0.99), title="t", height=360,
                      xaxis2=dict(domain=[0.6, 0.8], anchor="y2"),
                      yaxis2=dict(domain=[0.12, 0.38], anchor="x2"),
                      annotations=[dict(text="panel", x=0.5, y=1.0, xref="paper", yref="paper")])
    problems = layout_problems(bad)
    assert any("legend" in p for p in problems)
    assert any("inset" in p for p in problems)
    assert any("top margin" in p for p in problems)


def test_figure2a_curve(fits):
    assert layout_problems(pl.psychometric_curve(fits[0], "model", x_title="model confidence")) == []


def test_figure2bc_comparison(fits):
    fig = pl.psychometric_comparison({"model confidence": fits[0],
                                      "consensus expert confidence": fits[1]}, "E1")
    assert layout_problems(fig) == []


def test_figure2de_forest(fits):
    groups = {"a": summarize(fits[0], with_map=False), "b": summarize(fits[1], with_map=False)}
    assert layout_problems(pl.psychometric_forest(groups["a"], "threshold", groups=groups)) == []


def test_residuals_agreement_and_reliability():
    from cytoviz.calibration import reliability_curve

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), 200)
    y = np.array([rng.choice(4, p=row) for row in p])
    fig = pl.reliability_diagram({"model": reliability_curve(p, y), "cnn": reliability_curve(p, y)})
    assert layout_problems(fig) == []
    pairs = pd.DataFrame(np.array([[10, 2], [2, 1]]), index=["High", "No"], columns=["High", "No"])
    assert layout_problems(pl.confidence_agreement(pairs)) == []


def test_deviance_residual_plot(fits):
    assert layout_problems(pl.deviance_residual_plot(deviance_residuals(fits[0]))) == []
