"""Partial pooling (cytoviz.psychometric.hierarchical), LOO comparison and deviance residuals."""

from __future__ import annotations

import numpy as np
import pytest

from cytoviz.psychometric import (
    PsychometricConfig,
    compare_pooling,
    fit_hierarchical,
    simulate_xkn,
)
from cytoviz.psychometric.hierarchical import build_hierarchical_model
from cytoviz.psychometric.summary import (
    deviance_residuals,
    goodness_of_fit,
    map_estimate,
    summarize,
)

FAST = PsychometricConfig(draws=400, tune=400, chains=2, seed=5, mcse_target=None)


@pytest.fixture(scope="module")
def panel_data():
    """Four informative observers near threshold 0.5 and one with two trials per level."""
    data = {f"o{i}": simulate_xkn(0.5, 0.4, 0.02, n_bins=12, n_per_level=40, seed=i)
            for i in range(4)}
    data["sparse"] = simulate_xkn(0.5, 0.4, 0.02, n_bins=12, n_per_level=2, seed=11)
    return data


@pytest.fixture(scope="module")
def fits(panel_data):
    table, fits = compare_pooling(panel_data, FAST)
    return table, fits


def test_pooling_pulls_a_sparse_observer_towards_the_group(fits):
    _, f = fits
    ind = summarize(f["independent"], with_map=False).set_index(["observer", "parameter"])
    pool = summarize(f["partial pooling"], with_map=False).set_index(["observer", "parameter"])
    group = np.mean([pool.loc[(f"o{i}", "threshold"), "mean"] for i in range(4)])
    width_ind = ind.loc[("sparse", "threshold"), "upper"] - ind.loc[("sparse", "threshold"), "lower"]
    width_pool = pool.loc[("sparse", "threshold"), "upper"] - pool.loc[("sparse", "threshold"), "lower"]
    assert width_pool < width_ind  # borrowing strength narrows the sparse observer's interval
    assert (abs(pool.loc[("sparse", "threshold"), "mean"] - group)
            <= abs(ind.loc[("sparse", "threshold"), "mean"] - group) + 1e-9)
    # informative observers barely move
    for i in range(4):
        assert abs(pool.loc[(f"o{i}", "threshold"), "mean"]
                   - ind.loc[(f"o{i}", "threshold"), "mean"]) < 0.05
    assert np.isnan(pool["map"]).all()


def test_compare_pooling_ranks_both_models_by_loo(fits):
    table, f = fits
    assert set(table.index) == {"independent", "partial pooling"}
    assert {"elpd_loo", "p_loo", "elpd_diff", "warning"} <= set(table.columns)
    assert table["elpd_diff"].min() == 0.0
    for idata in f.values():
        assert "log_likelihood" in idata.groups()
    assert f["partial pooling"].posterior.attrs["cytoviz_pooling"] == "partial"


def test_deviance_residuals_square_to_the_deviance(fits):
    _, f = fits
    for idata in f.values():
        res = deviance_residuals(idata)
        gof = goodness_of_fit(idata, max_draws=200).set_index("observer")
        for obs, g in res.groupby("observer"):
            assert np.sum(g["residual"] ** 2) == pytest.approx(gof.loc[obs, "deviance"], rel=1e-6)
        assert set(res.columns) == {"observer", "x", "k", "n", "psi", "residual"}


def test_pooled_fit_has_no_psignifit_map_and_needs_two_observers(fits, panel_data):
    _, f = fits
    with pytest.raises(ValueError, match="posterior mean"):
        map_estimate(f["partial pooling"], "o0")
    with pytest.raises(ValueError, match="at least two observers"):
        build_hierarchical_model({"o0": panel_data["o0"]}, FAST)


def test_deviance_residual_plot_has_a_panel_per_observer(fits):
    from cytoviz import pl

    res = deviance_residuals(fits[1]["independent"])
    fig = pl.deviance_residual_plot(res)
    markers = [t for t in fig.data if t.mode == "markers"]
    assert len(markers) == res["observer"].nunique()
    np.testing.assert_allclose(np.asarray(markers[0].y), res[res.observer == "o0"]["residual"])
    with pytest.raises(ValueError, match="lacks column"):
        pl.deviance_residual_plot(res.drop(columns="residual"))


def test_fit_hierarchical_alone_matches_the_compare_shape(panel_data):
    idata = fit_hierarchical({k: panel_data[k] for k in ("o0", "o1")},
                             FAST.replace(draws=150, tune=150, chains=1))
    assert set(idata.posterior["observer"].values) == {"o0", "o1"}
    for p in ("threshold", "width", "lambda", "eta", "threshold_mu", "log_width_sigma"):
        assert p in idata.posterior
    assert "log_likelihood" not in idata.groups()
