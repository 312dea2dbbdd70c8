"""The grid engine (``PsychometricConfig(engine="grid")``): psignifit's way of integrating.

It must agree with psignifit 4.3 (within the targets the NUTS engine meets), with an
independent beta-binomial implementation (scipy), and fill the same InferenceData slots as a
NUTS fit, so summaries, MAP, thresholds and LOO work on it unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from test_psychometric_psignifit import MEDIUM, assert_within, compare, psignifit_fit

from cytoviz.psychometric import PsychometricConfig, fit_observers, simulate_xkn
from cytoviz.psychometric.grid import AXES, BORDER_MASS, grid_posterior
from cytoviz.psychometric.model import psychometric_function
from cytoviz.psychometric.summary import map_estimate, summarize, threshold_below

GRID = PsychometricConfig(engine="grid", seed=3)
DATA = {
    "steep": simulate_xkn(0.55, 0.25, 0.02, n_bins=25, n_per_level=(30, 50), seed=41),
    "few": simulate_xkn(0.35, 0.50, 0.05, n_bins=12, n_per_level=(8, 20), seed=42),
    "overdispersed": simulate_xkn(0.5, 0.4, 0.03, n_bins=15, n_per_level=(20, 40), eta=0.2,
                                  seed=43),
}


@pytest.fixture(scope="module")
def grid_fit():
    return fit_observers(DATA, GRID)


@pytest.mark.parametrize("name", list(DATA))
def test_grid_engine_matches_psignifit(grid_fit, name):
    pytest.importorskip("psignifit")
    diff = compare(summarize(grid_fit, with_map=False), name, psignifit_fit(DATA[name], MEDIUM))
    assert_within(diff, f"grid engine, {name}")


def test_grid_fit_has_the_slots_of_a_nuts_fit(grid_fit):
    assert set(grid_fit.groups()) >= {"posterior", "observed_data", "constant_data"}
    post = grid_fit.posterior
    assert set(post.data_vars) == set(AXES)
    assert post.sizes["chain"] == GRID.chains and list(post["observer"].values) == list(DATA)
    cd = grid_fit.constant_data
    for key in ("x", "n", "observer_index", "s0", "s1", "wmin", "gamma", "threshold_lower",
                "width_upper"):
        assert key in cd, key
    assert post.attrs["mcse_bounds_max"] <= GRID.mcse_target
    # the point estimate and the statistics read from the draws work on a grid fit
    mp = map_estimate(grid_fit, "steep")
    assert abs(mp["threshold"] - 0.55) < 0.05
    assert set(threshold_below(grid_fit, "steep")["observer"]) == {"few", "overdispersed"}


def test_grid_engine_is_deterministic_for_a_seed(grid_fit):
    again = fit_observers(DATA, GRID)
    assert np.array_equal(again.posterior["width"].values, grid_fit.posterior["width"].values)
    other = fit_observers(DATA, GRID.replace(seed=4))
    assert not np.array_equal(other.posterior["width"].values,
                              grid_fit.posterior["width"].values)


def test_final_grid_holds_the_mass():
    """The box narrowed from the coarse grids leaves no mass at its edges (except where an
    edge is a prior bound, as lambda = 0)."""
    post = grid_posterior(DATA["steep"], GRID)
    assert post.steps == GRID.grid_steps
    assert np.isclose(np.exp(post.log_mass).sum(), 1.0)
    for axis in range(len(AXES)):
        marginal = post.marginal(axis)
        if post.lower[axis] > 0:
            assert marginal[0] < 100 * BORDER_MASS, AXES[axis]
        assert marginal[-1] < 100 * BORDER_MASS, AXES[axis]
    # the steep curve's threshold is resolved: the box is far narrower than the prior
    assert post.upper[0] - post.lower[0] < 0.2


def test_draws_follow_the_grid_masses():
    post = grid_posterior(DATA["few"], GRID)
    draws = post.sample(40_000, np.random.default_rng(0))
    assert np.all(draws >= post.lower) and np.all(draws <= post.upper)
    for axis in (0, 1):
        edges = post.edges(axis)
        counts = np.histogram(draws[:, axis], bins=edges)[0] / len(draws)
        assert np.abs(counts - post.marginal(axis)).max() < 0.01


def test_binomial_grid_and_per_observer_guess_rates():
    data = {"a": DATA["few"], "b": DATA["few"]}
    fit = fit_observers(data, GRID.replace(eta=False), gamma={"b": 0.5})
    assert "eta" not in fit.posterior
    assert list(fit.constant_data["gamma"].values) == [0.1, 0.5]
    # a guess rate of 0.5 puts the floor above the low levels' 10 % correct, so the rise of
    # the curve moves to higher levels
    m = fit.posterior["threshold"].mean(("chain", "draw")).values
    assert m[1] > m[0] + 0.05


def test_pointwise_log_likelihood_is_the_beta_binomial():
    fit = fit_observers({"o": DATA["overdispersed"]}, GRID.replace(draws=50, mcse_target=None),
                        log_likelihood=True)
    ll = fit.log_likelihood["k"].values
    assert ll.shape == (GRID.chains, 50, len(DATA["overdispersed"]))
    d = DATA["overdispersed"]
    p = {a: fit.posterior[a].values[0, 7, 0] for a in AXES}
    psi = psychometric_function(d.x, p["threshold"], p["width"], lam=p["lambda"], gamma=0.1)
    nu = 1 / p["eta"] ** 2 - 1
    expected = stats.betabinom.logpmf(d.k, d.n, psi * nu, (1 - psi) * nu)
    assert np.allclose(ll[0, 7], expected)


@pytest.mark.parametrize("change, match", [
    ({"engine": "laplace"}, "engine must be one of"),
    ({"grid_steps": (40, 40, 10)}, "grid_steps must be 4 integers"),
    ({"grid_steps": (40, 1, 10, 10)}, "grid_steps must be 4 integers"),
])
def test_bad_engine_settings_are_named(change, match):
    with pytest.raises(ValueError, match=match):
        PsychometricConfig(**change)


def test_cli_fits_with_the_grid_engine(tmp_path):
    import arviz as az
    import pandas as pd

    from cytoviz.cli import main
    from cytoviz.psychometric.model import config_from_idata

    d = DATA["few"]
    pd.DataFrame({"x": d.x, "k": d.k, "n": d.n}).to_csv(tmp_path / "xkn.csv", index=False)
    rc = main(["psychometric", "--csv", str(tmp_path / "xkn.csv"), "--out", str(tmp_path / "o"),
               "--engine", "grid", "--formats", "html"])
    assert rc == 0
    fit = az.from_netcdf(tmp_path / "o" / "fit.nc")
    assert config_from_idata(fit).engine == "grid"
    assert fit.posterior.attrs["mcse_bounds_max"] <= PsychometricConfig().mcse_target
    summary = pd.read_csv(tmp_path / "o" / "summary.csv")
    assert set(summary.parameter) == {*AXES, "threshold_80"}


#: Thousands of trials per level: the posterior fits in a few cells of a coarse grid.
HUGE = simulate_xkn(0.5, 0.1, 0.01, n_bins=12, n_per_level=5000, seed=3)


def test_a_peaked_posterior_is_resolved_by_the_final_grid():
    post = grid_posterior(HUGE, GRID)
    for axis in (0, 1):  # threshold and width spread over many final cells, not two or three
        assert np.sum(post.marginal(axis) > 1e-3) >= 10, AXES[axis]


@pytest.mark.slow
def test_a_peaked_posterior_matches_nuts():
    grid = summarize(fit_observers({"huge": HUGE}, GRID), with_map=False)
    nuts = summarize(fit_observers({"huge": HUGE}, PsychometricConfig(seed=3)), with_map=False)
    for p in ("threshold", "width"):
        g, n = (t[t.parameter == p].iloc[0] for t in (grid, nuts))
        spread = n["upper"] - n["lower"]
        assert abs(g["lower"] - n["lower"]) < 0.1 * spread, p
        assert abs(g["upper"] - n["upper"]) < 0.1 * spread, p


@pytest.mark.parametrize("eta", [True, False])
def test_narrowing_stops_when_the_box_settles(monkeypatch, eta):
    """A posterior of ordinary width settles in a few coarse passes (a fixed eta axis counts
    as settled, not as an axis that never shrinks)."""
    from cytoviz.psychometric import grid

    calls = []
    original = grid._log_density

    def counting(*args, **kwargs):
        calls.append(args[2])
        return original(*args, **kwargs)

    monkeypatch.setattr(grid, "_log_density", counting)
    grid.grid_posterior(DATA["few"], GRID.replace(eta=eta))
    assert 2 <= len(calls) - 1 <= 5  # coarse passes, then the final grid
