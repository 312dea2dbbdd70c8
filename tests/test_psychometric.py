"""Psychometric model: binning, validation, priors and density vs psignifit, fit and summaries."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from cytoviz.psychometric import (
    PsychometricConfig,
    bin_confidence,
    fit_observers,
    simulate_xkn,
    validate_xkn,
)
from cytoviz.psychometric.binning import PsychometricData, as_psychometric_data
from cytoviz.psychometric.experts import expert_psychometric_data, read_expert_table
from cytoviz.psychometric.model import (
    log_posterior,
    observer_data,
    prior_settings,
    sigmoid,
    threshold_prior,
    width_prior,
)
from cytoviz.psychometric.summary import (
    POSTERIOR_QUANTILES,
    PSIGNIFIT_WORST_CASE,
    goodness_of_fit,
    map_estimate,
    summarize,
    threshold_at,
    unscaled_threshold,
)

FAST = PsychometricConfig(draws=600, tune=400, chains=1, seed=3, mcse_target=None)

# --------------------------------------------------------------------------- binning


def test_bin_confidence_counts_and_centres(rng):
    conf = rng.uniform(0, 1, 500)
    correct = rng.uniform(0, 1, 500) < conf
    d = bin_confidence(conf, correct, n_bins=10)
    assert d.n.sum() == 500 and d.k.sum() == correct.sum()
    assert np.allclose(d.x, (np.arange(10) + 0.5) / 10)
    # k in a bin equals the correct cases whose confidence falls in it
    sel = (conf >= 0.3) & (conf < 0.4)
    assert d.k[3] == correct[sel].sum() and d.n[3] == sel.sum()


def test_bin_confidence_drops_empty_bins_and_equal_count(rng):
    conf = np.r_[rng.uniform(0, 0.2, 50), rng.uniform(0.8, 1.0, 50)]
    correct = conf > 0.5
    d = bin_confidence(conf, correct, n_bins=10)
    assert len(d) == 4 and (d.n > 0).all()
    eq = bin_confidence(rng.beta(5, 2, 300), rng.uniform(size=300) < 0.7, n_bins=6,
                        scheme="equal-count")
    assert len(eq) == 6 and eq.n.max() - eq.n.min() <= 2


@pytest.mark.parametrize(
    ("conf", "correct", "match"),
    [
        ([0.1, np.nan, 0.3], [1, 0, 1], "NaN"),
        ([0.1, 1.2, 0.3], [1, 0, 1], r"\[0, 1\]"),
        ([0.1, 0.2], [1, 0, 1], "lengths"),
        ([0.1, 0.2, 0.3], [1, 2, 1], "True/False"),
        ([0.51, 0.52, 0.53], [1, 0, 1], "single stimulus level"),
    ],
)
def test_bin_confidence_rejects_bad_input(conf, correct, match):
    with pytest.raises(ValueError, match=match):
        bin_confidence(conf, correct, n_bins=4)


def test_bin_confidence_rejects_unknown_scheme():
    with pytest.raises(ValueError, match="equal-width"):
        bin_confidence([0.1, 0.9], [1, 0], scheme="quantile")


@pytest.mark.parametrize(
    ("x", "k", "n", "match"),
    [
        ([0.1, 0.5], [3, 5], [2, 6], "k > n"),
        ([0.1, 0.5], [-1, 2], [3, 3], ">= 0"),
        ([0.1, 0.5], [1.5, 2], [3, 3], "whole counts"),
        ([0.1, 0.5], [0, 0], [0, 0], "no trials"),
        ([0.1, 0.5, 0.9], [1, 0, 0], [3, 0, 0], "single stimulus level"),
        ([0.1, np.inf], [1, 1], [2, 2], "NaN/infinite"),
    ],
)
def test_validate_xkn_errors(x, k, n, match):
    with pytest.raises(ValueError, match=match):
        validate_xkn(x, k, n, name="obs")


def test_validate_drops_zero_trial_rows_and_sorts():
    d = validate_xkn([0.9, 0.1, 0.5], [3, 1, 0], [4, 2, 0])
    assert d.x.tolist() == [0.1, 0.9] and d.n.tolist() == [2, 4]
    assert d.stimulus_range == (0.1, 0.9) and d.width_min == pytest.approx(0.8)


def test_as_psychometric_data_accepts_frames_arrays_and_rejects_missing_columns():
    df = pd.DataFrame({"x": [0.1, 0.2], "k": [1, 2], "n": [2, 2]})
    assert as_psychometric_data(df).k.tolist() == [1, 2]
    assert as_psychometric_data(df.to_numpy()).n.tolist() == [2, 2]
    with pytest.raises(ValueError, match=r"\['n'\]"):
        as_psychometric_data(df[["x", "k"]])


def test_all_correct_and_all_wrong_data_fit_without_error():
    # handled: the priors keep the posterior proper; thresholds move to the range's edges
    x = np.linspace(0.05, 0.95, 8)
    n = np.full(8, 10)
    idata = fit_observers({"all_right": (x, n, n), "all_wrong": (x, 0 * n, n)},
                          FAST.replace(draws=300, tune=300))
    s = summarize(idata, with_map=False).set_index(["observer", "parameter"])
    assert s.loc[("all_right", "threshold"), "mean"] < s.loc[("all_wrong", "threshold"), "mean"]


# --------------------------------------------------------------------------- config & pieces


def test_config_validation_and_roundtrip(tmp_path):
    with pytest.raises(ValueError, match="gamma"):
        PsychometricConfig(gamma=1.0)
    with pytest.raises(ValueError, match="draws"):
        PsychometricConfig(draws=0)
    cfg = PsychometricConfig(pc=0.8, eta=False)
    assert PsychometricConfig.load(cfg.save(tmp_path / "c.json")) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.pc = 0.5  # type: ignore[misc]


def test_sigmoid_conventions():
    assert sigmoid(0.4, 0.4, 0.5) == pytest.approx(0.5)
    assert sigmoid(0.4 + 0.25, 0.4, 0.5) - sigmoid(0.4 - 0.25, 0.4, 0.5) == pytest.approx(0.9)
    assert sigmoid(0.3, 0.3, 0.2, pc=0.8) == pytest.approx(0.8)
    # the 80 % point of the unscaled sigmoid is m + 0.23541 w (alpha 0.05, PC 0.5)
    x80 = unscaled_threshold(0.4, 0.5, 0.8)
    assert sigmoid(x80, 0.4, 0.5) == pytest.approx(0.8)
    assert (x80 - 0.4) / 0.5 == pytest.approx(0.23541, abs=1e-5)


def test_priors_match_psignifit_prior_functions():
    from psignifit import _priors

    x = np.array([0.02, 0.1, 0.1, 0.3, 0.7, 0.98])  # duplicates: wmin from unique levels
    d = validate_xkn(x, [1] * 6, [2] * 6)
    s = prior_settings(d)
    assert s["wmin"] == pytest.approx(0.08) and s["range"] == pytest.approx(0.96)
    m = np.linspace(s["threshold_lower"] - 0.1, s["threshold_upper"] + 0.1, 501)
    ref_m = _priors.threshold_prior(m, (s["s0"], s["s1"]))
    assert np.allclose(threshold_prior(m, s["s0"], s["s1"]), ref_m, atol=1e-12)
    w = np.linspace(0.0, s["width_upper"] + 0.2, 701)
    ref_w = _priors.width_prior(w, alpha=0.05, wmin=s["wmin"], wmax=s["range"])
    assert np.allclose(width_prior(w, s["wmin"], s["range"]), ref_w, atol=1e-12)


def test_log_posterior_matches_psignifit_up_to_a_constant(psignifit_ref_dir):
    psignifit = pytest.importorskip("psignifit")
    from psignifit._posterior import log_posterior as psig_lp
    from psignifit.sigmoids import sigmoid_by_name

    df = pd.read_csv(psignifit_ref_dir / "reference_25bins.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = psignifit.psignifit(df.to_numpy(float), sigmoid="logistic", experiment_type="10AFC",
                                  verbose=False, debug=True)
    sig = sigmoid_by_name("logistic", PC=0.5, alpha=0.05)
    data = as_psychometric_data(df)
    points = [(0.40, 0.55, 0.02, 0.05), (0.30, 0.80, 0.10, 0.20), (0.45, 0.30, 0.001, 0.01),
              (0.50, 0.95, 0.3, 0.5)]
    ours, theirs = [], []
    for m, w, lam, eta in points:
        grid = {"threshold": np.array([m]), "width": np.array([w]), "lambda": np.array([lam]),
                "gamma": np.array([0.1]), "eta": np.array([eta])}
        theirs.append(float(psig_lp(df.to_numpy(float), sig, res.debug["priors"], grid).ravel()[0]))
        ours.append(float(log_posterior(m, w, lam, eta, data)))
    diff = np.array(ours) - np.array(theirs)
    assert np.ptp(diff) < 1e-8, diff


# --------------------------------------------------------------------------- fit & summaries


@pytest.fixture(scope="module")
def three_observers():
    data = {
        "model": simulate_xkn(0.4, 0.5, 0.02, n_bins=25, n_per_level=40, seed=1),
        "E1": simulate_xkn(0.3, 0.3, 0.03, n_bins=12, n_per_level=(10, 25), seed=2),
        "E2": simulate_xkn(0.6, 0.6, 0.05, n_bins=12, n_per_level=(10, 25), seed=3),
    }
    data["E2"] = PsychometricData(data["E2"].x[1:], data["E2"].k[1:], data["E2"].n[1:])  # ragged
    return data, fit_observers(data, FAST)


def test_fit_observers_returns_inferencedata_with_observer_dim(three_observers):
    data, idata = three_observers
    post = idata.posterior
    assert list(post["observer"].values) == ["model", "E1", "E2"]
    for var in ("threshold", "width", "lambda", "eta"):
        assert post[var].dims == ("chain", "draw", "observer")
    assert post["threshold"].shape == (1, 600, 3)
    assert len(idata.observed_data["k"]) == 25 + 12 + 11
    assert json.loads(post.attrs["cytoviz_config"])["draws"] == 600
    # each observer's own prior bounds, from its own levels
    cd = idata.constant_data
    assert cd["wmin"].sel(observer="E1") == pytest.approx(1 / 12)
    assert cd["s0"].sel(observer="E2") == pytest.approx(1.5 / 12)
    assert cd["threshold_lower"].sel(observer="model") == pytest.approx(0.02 - 0.48)
    for name in data:
        back = observer_data(idata, name)
        assert np.array_equal(back.k, data[name].k) and np.allclose(back.x, data[name].x)


def test_posteriors_recover_the_simulated_parameters(three_observers):
    _, idata = three_observers
    s = summarize(idata).set_index(["observer", "parameter"])
    for obs, m in (("model", 0.4), ("E1", 0.3), ("E2", 0.6)):
        row = s.loc[(obs, "threshold")]
        assert row["lower"] < m < row["upper"]
        assert row["lower"] <= row["map"] <= row["upper"]
    assert (s["upper"] > s["lower"]).all()
    assert s.loc[("model", "threshold"), "sd"] < s.loc[("E2", "threshold"), "sd"]


def test_map_estimate_is_a_local_maximum(three_observers):
    _, idata = three_observers
    mp = map_estimate(idata, "model")
    data = observer_data(idata, "model")
    best = log_posterior(mp["threshold"], mp["width"], mp["lambda"], mp["eta"], data)
    for dm, dw in ((0.005, 0), (-0.005, 0), (0, 0.01), (0, -0.01)):
        assert best >= log_posterior(mp["threshold"] + dm, mp["width"] + dw, mp["lambda"],
                                     mp["eta"], data)


def test_threshold_at_both_methods_labelled(three_observers):
    _, idata = three_observers
    th = threshold_at(idata, 0.8)
    assert set(th["method"]) == {POSTERIOR_QUANTILES, PSIGNIFIT_WORST_CASE}
    for obs in ("model", "E1"):
        pq = th[(th.observer == obs) & (th.method == POSTERIOR_QUANTILES)].iloc[0]
        wc = th[(th.observer == obs) & (th.method == PSIGNIFIT_WORST_CASE)].iloc[0]
        # the worst-case bound is wider than the posterior interval (METHOD.md: ~40 %)
        assert wc.upper - wc.lower > pq.upper - pq.lower
        assert pq.lower < pq.point < pq.upper
    with pytest.raises(ValueError, match="percent_correct"):
        threshold_at(idata, 80)


def test_goodness_of_fit_flags_a_misfit():
    good = simulate_xkn(0.4, 0.3, 0.02, n_bins=12, n_per_level=60, seed=5)
    k_bad = good.k.copy()
    k_bad[::2] = good.n[::2] - k_bad[::2]  # flip every other level: not a sigmoid
    idata = fit_observers({"good": good, "bad": (good.x, k_bad, good.n)},
                          FAST.replace(eta=False))
    gof = goodness_of_fit(idata).set_index("observer")
    assert gof.loc["bad", "deviance"] > 3 * gof.loc["good", "deviance"]
    assert gof.loc["bad", "ppc_p"] < 0.01 < gof.loc["good", "ppc_p"]


# --------------------------------------------------------------------------- experts


def _panel() -> pd.DataFrame:
    rows = []
    experts = {"A": 30, "B": 20, "C": 10}
    rng = np.random.default_rng(0)
    for img in range(60):
        truth = "neutrophil" if img % 2 else "lymphocyte"
        for e, years in experts.items():
            wrong = rng.uniform() < 0.2 + 0.01 * (30 - years)
            label = ("monocyte" if wrong else truth)
            conf = ["High", "Moderate", "Low", "No"][int(rng.integers(0, 4)) if wrong else 0]
            rows.append({"image": f"im{img}", "expert": e, "years": years, "label": label,
                         "confidence": conf})
    return pd.DataFrame(rows)


def test_expert_psychometric_data_consensus_axis():
    from cytoviz.data.panel import consensus, expert_correctness

    table = _panel()
    data = expert_psychometric_data(table, axis="consensus", n_bins=12)
    assert list(data) == ["A", "B", "C"]  # most experienced first
    corr = expert_correctness(table, consensus(table))
    for e, d in data.items():
        sub = corr[corr.expert == e]
        assert d.n.sum() == len(sub) and d.k.sum() == sub["correct"].sum()


def test_expert_psychometric_data_model_axis_and_errors():
    table = _panel()
    images = sorted(table["image"].unique())
    mc = {im: (i + 0.5) / len(images) for i, im in enumerate(images)}
    data = expert_psychometric_data(table, mc, axis="model", n_bins=6)
    assert all(len(d) == 6 for d in data.values())
    with pytest.raises(ValueError, match="model_confidence"):
        expert_psychometric_data(table, axis="model")
    with pytest.raises(ValueError, match="lacks 1 image"):
        expert_psychometric_data(table, {k: v for k, v in mc.items() if k != "im3"}, axis="model")
    with pytest.raises(ValueError, match="axis"):
        expert_psychometric_data(table, axis="experts")


def test_observer_cases_feed_the_bins_explorer():
    from cytoviz.data.panel import consensus, expert_correctness
    from cytoviz.psychometric.experts import observer_cases
    from cytoviz.widgets.uncertainty import _normalise

    table = _panel()
    images = sorted(table["image"].unique())
    mc = {im: (i + 0.5) / len(images) for i, im in enumerate(images)}
    ok = {im: i % 3 > 0 for i, im in enumerate(images)}
    cases = observer_cases(table, mc, ok)
    assert list(cases) == ["model", "A", "B", "C"]  # the model, then most experienced first
    np.testing.assert_allclose(cases["model"]["model confidence"], list(mc.values()))
    np.testing.assert_array_equal(cases["model"]["correct"], list(ok.values()))
    assert list(cases["A"]) == ["consensus confidence", "model confidence", "correct"]
    corr = expert_correctness(table, consensus(table), common_only=True)
    for e in "ABC":
        sub = corr[corr.expert == e]
        np.testing.assert_array_equal(cases[e]["correct"], sub["correct"])
        np.testing.assert_allclose(cases[e]["model confidence"], sub["image"].map(mc))
        np.testing.assert_allclose(cases[e]["consensus confidence"], sub["consensus_confidence"])
    # binning the cases gives the rows of expert_psychometric_data
    binned = expert_psychometric_data(table, mc, axis="model", n_bins=6)
    again = bin_confidence(cases["B"]["model confidence"], cases["B"]["correct"], n_bins=6)
    np.testing.assert_array_equal(again.k, binned["B"].k)
    assert _normalise(cases).keys() == cases.keys()  # the explorer's input format
    # without the model: the consensus axis only; arrays index images by position
    assert list(observer_cases(table)["A"]) == ["consensus confidence", "correct"]
    table_int = table.assign(image=table["image"].str[2:].astype(int))
    conf = np.linspace(0, 1, 60)
    by_pos = observer_cases(table_int, conf, conf > 0.5)
    np.testing.assert_allclose(by_pos["A"]["model confidence"],
                               conf[table_int[table_int.expert == "A"]["image"]])
    with pytest.raises(ValueError, match="model_correct needs"):
        observer_cases(table, model_correct=ok)
    with pytest.raises(ValueError, match="same images"):
        observer_cases(table_int, conf, conf[:10] > 0.5)
    with pytest.raises(ValueError, match="named 'A'"):
        observer_cases(table, mc, ok, model_name="A")
    with pytest.raises(TypeError, match="model_confidence"):
        observer_cases(table, 0.5)


def test_read_expert_table_errors_name_the_problem(tmp_path):
    table = _panel()
    bad = table.copy()
    bad.loc[0, "confidence"] = "Certain"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="Certain"):
        read_expert_table(tmp_path / "bad.csv")
    table.drop(columns="years").to_csv(tmp_path / "nocol.csv", index=False)
    with pytest.raises(ValueError, match="years"):
        read_expert_table(tmp_path / "nocol.csv")
    table.to_csv(tmp_path / "ok.csv", index=False)
    assert len(read_expert_table(tmp_path / "ok.csv")) == len(table)


def test_mcse_target_draws_more_until_the_interval_bounds_are_precise():
    """A wide posterior (few trials per level) leaves the bounds imprecise at 150 draws; the
    default target asks for more draws and meets it, and None keeps the draws as given."""
    data = {"few": simulate_xkn(0.4, 0.7, 0.05, n_bins=12, n_per_level=8, seed=4)}
    fixed = fit_observers(data, FAST.replace(draws=150))
    assert fixed.posterior.attrs["draws_used"] == 150
    assert fixed.posterior.sizes["draw"] == 150
    loose = fixed.posterior.attrs["mcse_bounds_max"]
    assert loose > 0.02  # the premise: 150 draws are not enough here
    adaptive = fit_observers(data, FAST.replace(draws=150, mcse_target=0.02, max_draws=6000))
    used = adaptive.posterior.attrs["draws_used"]
    assert 150 < used <= 6000 and adaptive.posterior.sizes["draw"] == used
    assert adaptive.posterior.attrs["mcse_bounds_max"] < loose
    assert used == 6000 or adaptive.posterior.attrs["mcse_bounds_max"] <= 0.02
    table = summarize(adaptive, with_map=False)
    sampled = table[table["parameter"].isin(["threshold", "width"])]
    assert sampled[["mcse_lower", "mcse_upper"]].max().max() == pytest.approx(
        adaptive.posterior.attrs["mcse_bounds_max"])
    with pytest.raises(ValueError, match="mcse_target"):
        PsychometricConfig(mcse_target=0.0)
    with pytest.raises(ValueError, match="max_draws"):
        PsychometricConfig(draws=500, max_draws=100)


def test_mcse_target_resamples_again_when_the_first_resample_falls_short(monkeypatch):
    """The error estimated from a short run is noisy, so one resample can miss the target; the
    fit then resamples again with the draws the new estimate asks for."""
    from cytoviz.psychometric import model as model_module

    errors = iter([0.05, 0.03, 0.015, 0.001])
    monkeypatch.setattr(model_module, "_largest_bound_error", lambda idata: next(errors))
    data = {"few": simulate_xkn(0.4, 0.7, 0.05, n_bins=12, n_per_level=8, seed=4)}
    fit = fit_observers(data, FAST.replace(draws=20, tune=20, mcse_target=0.02, max_draws=400))
    # 20 -> ceil(1.2 * 20 * 6.25) = 150 -> ceil(1.2 * 150 * 2.25) = 405, capped at 400
    assert fit.posterior.attrs["draws_used"] == 400
    assert fit.posterior.attrs["mcse_bounds_max"] == 0.015
    assert fit.posterior.sizes["draw"] == 400


def test_gamma_is_data_per_observer_and_a_new_gamma_reuses_the_compiled_model():
    from cytoviz.psychometric import CompiledModels
    from cytoviz.psychometric.model import observer_config
    from cytoviz.psychometric.summary import map_estimate

    two_afc = simulate_xkn(0.5, 0.4, 0.02, n_bins=12, n_per_level=40, gamma=0.5, seed=7)
    ten_afc = simulate_xkn(0.5, 0.4, 0.02, n_bins=12, n_per_level=40, gamma=0.1, seed=8)
    cache = CompiledModels()
    both = fit_observers({"2afc": two_afc, "10afc": ten_afc}, FAST, cache=cache,
                         gamma={"2afc": 0.5})
    assert both.constant_data["gamma"].values.tolist() == [0.5, 0.1]
    assert observer_config(both, "2afc").gamma == 0.5
    assert observer_config(both, "10afc").gamma == FAST.gamma
    assert map_estimate(both, "2afc")["gamma"] == 0.5
    # each observer's threshold is recovered with its own guess rate
    s = summarize(both, with_map=False).set_index(["observer", "parameter"])
    for obs in ("2afc", "10afc"):
        assert abs(s.loc[(obs, "threshold"), "mean"] - 0.5) < 0.08
    # fitting the 2AFC observer alone under the wrong guess rate moves its threshold
    wrong = fit_observers({"2afc": two_afc, "10afc": ten_afc}, FAST, cache=cache)
    assert len(cache) == 1  # a new gamma: same compiled model
    w = summarize(wrong, with_map=False).set_index(["observer", "parameter"])
    assert w.loc[("2afc", "threshold"), "mean"] < s.loc[("2afc", "threshold"), "mean"] - 0.05
    with pytest.raises(ValueError, match="unknown observer"):
        fit_observers({"a": ten_afc}, FAST, gamma={"b": 0.5})
    with pytest.raises(ValueError, match=r"gamma of observer 'a'"):
        fit_observers({"a": ten_afc}, FAST, gamma=1.5)
