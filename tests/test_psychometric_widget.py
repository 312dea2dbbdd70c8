"""UncertaintyBinsExplorer: callbacks are plain methods, tested without a browser."""

from __future__ import annotations

import numpy as np
import pytest

from cytoviz.psychometric import PsychometricConfig

pytest.importorskip("ipywidgets")

FAST = PsychometricConfig(draws=200, tune=200, chains=1, seed=0, mcse_target=None)


@pytest.fixture(scope="module")
def explorer():
    from cytoviz.widgets import UncertaintyBinsExplorer

    rng = np.random.default_rng(0)
    data = {}
    for name, m in (("model", 0.4), ("E1", 0.55)):
        conf = rng.uniform(0, 1, 300)
        p = 0.1 + 0.88 / (1 + np.exp(-2 * np.log(19) * (conf - m) / 0.4))
        data[name] = {"model confidence": conf, "consensus confidence": rng.uniform(0, 1, 300),
                      "correct": rng.uniform(size=300) < p}
    return UncertaintyBinsExplorer(data, config=FAST, n_bins=8)


def test_initial_fit_draws_figure_and_readout(explorer):
    assert explorer.n_fits == 1
    assert len(explorer.figure.data) == 6
    assert len(explorer.figure.data[2].x) == 8  # 8 bins
    assert "deviance" in explorer.readout.value and "posterior predictive p" in explorer.readout.value
    assert explorer.status.value == ""


def test_bins_and_scheme_change_refit_and_redraw(explorer):
    before = np.array(explorer.figure.data[2].x)
    explorer.n_bins.value = 5  # observe -> on_binning_change
    assert explorer.n_fits == 2 and len(explorer.figure.data[2].x) == 5
    assert not np.array_equal(before, explorer.figure.data[2].x)
    explorer.scheme.value = "equal-count"
    assert explorer.n_fits == 3
    explorer.scheme.value = "equal-width"  # cached: no new fit
    assert explorer.n_fits == 3 and len(explorer.figure.data[2].x) == 5


def test_percent_correct_only_updates_readout(explorer):
    fits = explorer.n_fits
    explorer.percent_correct.value = 0.9
    explorer.on_percent_correct_change()
    assert "90%" in explorer.readout.value and explorer.n_fits == fits


def test_observer_and_axis_change(explorer):
    explorer.observer.value = "E1"
    assert "E1" in explorer.figure.layout.title.text
    explorer.axis.value = "consensus confidence"
    assert explorer.figure.layout.xaxis.title.text == "consensus confidence"


def test_bad_data_is_rejected_clearly():
    from cytoviz.widgets import UncertaintyBinsExplorer

    with pytest.raises(ValueError, match="correct"):
        UncertaintyBinsExplorer({"a": {"conf": [0.1, 0.2]}}, auto_fit=False)
    with pytest.raises(ValueError, match="has 2 values"):
        UncertaintyBinsExplorer({"a": {"conf": [0.1, 0.2], "correct": [1]}}, auto_fit=False)


def test_switching_between_observers_with_different_axes():
    import numpy as np

    from cytoviz.widgets import UncertaintyBinsExplorer

    rng = np.random.default_rng(0)
    data = {"model": {"model confidence": rng.random(40), "correct": rng.random(40) < 0.6},
            "E1": {"consensus confidence": rng.random(40), "model confidence": rng.random(40),
                   "correct": rng.random(40) < 0.7}}
    ex = UncertaintyBinsExplorer(data, n_bins=5)
    ex.observer.value = "E1"  # E1 has an extra axis; the model's axis is kept
    assert list(ex.axis.options) == ["consensus confidence", "model confidence"]
    assert ex.axis.value == "model confidence"
    assert ex.figure.layout.title.text.startswith("E1")
    ex.observer.value = "model"
    assert list(ex.axis.options) == ["model confidence"]
    assert ex.figure.layout.title.text.startswith("model")


def test_the_widget_fits_with_the_grid_engine():
    from cytoviz.widgets import UncertaintyBinsExplorer

    rng = np.random.default_rng(1)
    conf = rng.uniform(0, 1, 300)
    correct = rng.uniform(size=300) < 0.1 + 0.88 / (1 + np.exp(-2 * np.log(19) * (conf - 0.4) / 0.4))
    explorer = UncertaintyBinsExplorer({"model": (conf, correct)},
                                       config=FAST.replace(engine="grid"), n_bins=8)
    assert explorer.n_fits == 1 and explorer.status.value == ""
    assert len(explorer.figure.data[2].x) == 8
    assert "deviance" in explorer.readout.value
