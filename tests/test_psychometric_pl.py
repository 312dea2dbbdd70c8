"""Figure 2 plots (by structure) and the ``cytoviz psychometric`` command."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from cytoviz.cli import main
from cytoviz.pl import psychometric_comparison, psychometric_curve, psychometric_forest
from cytoviz.psychometric import PsychometricConfig, fit_observers, simulate_xkn
from cytoviz.psychometric.model import observer_data
from cytoviz.psychometric.summary import summarize

FAST = PsychometricConfig(draws=300, tune=300, chains=1, seed=2, mcse_target=None)


@pytest.fixture(scope="module")
def fit():
    data = {"model": simulate_xkn(0.4, 0.5, n_bins=25, n_per_level=30, seed=1),
            "E1": simulate_xkn(0.3, 0.4, n_bins=12, n_per_level=(5, 40), seed=2),
            "E2": simulate_xkn(0.5, 0.3, n_bins=12, n_per_level=20, seed=3)}
    return fit_observers(data, FAST)


def test_curve_structure(fit):
    fig = psychometric_curve(fit, "model", x_title="model confidence")
    assert isinstance(fig, go.Figure) and fig.layout.template.layout.font.size == 10
    kinds = [t.type for t in fig.data]
    assert kinds == ["scatter"] * 6  # band, curve, data, threshold, 2 inset KDEs
    band, curve, data, thr = fig.data[:4]
    assert band.fill == "toself" and curve.mode == "lines"
    assert len(data.x) == 25
    # marker size follows n: of any two levels, the one with more trials has the bigger marker
    e1 = psychometric_curve(fit, "E1").data[2]
    n, size = np.asarray(e1.customdata)[:, 1], np.asarray(e1.marker.size)
    assert np.ptp(n) > 0
    np.testing.assert_array_equal(np.sign(np.subtract.outer(size, size)),
                                  np.sign(np.subtract.outer(n, n)))
    assert thr.error_x.array[0] > 0 and thr.error_x.arrayminus[0] > 0
    lo, hi = thr.x[0] - thr.error_x.arrayminus[0], thr.x[0] + thr.error_x.array[0]
    assert lo < 0.4 < hi
    assert fig.data[4].xaxis == "x2" and fig.data[5].xaxis == "x3"
    assert fig.layout.xaxis.title.text == "model confidence"
    assert fig.layout.yaxis.title.text == "proportion correct"
    assert len(psychometric_curve(fit, "E1", inset=False).data) == 4


def test_comparison_has_one_panel_per_fit(fit):
    fig = psychometric_comparison({"vs model confidence": fit, "vs consensus": fit}, "E1")
    assert len(fig.data) == 8
    assert {t.xaxis for t in fig.data} == {"x", "x2"}
    assert [a.text for a in fig.layout.annotations] == ["vs model confidence", "vs consensus"]
    with pytest.raises(ValueError, match="x_titles"):
        psychometric_comparison({"a": fit}, "E1", x_titles=["a", "b"])


def test_forest_rows_match_the_summary(fit):
    table = summarize(fit, with_map=False)
    fig = psychometric_forest(table, "width", observers=["E2", "E1"])
    (tr,) = fig.data
    w = table[table.parameter == "width"].set_index("observer")
    assert list(fig.layout.yaxis.ticktext) == ["E2", "E1"]
    assert tr.x[0] == pytest.approx(w.loc["E2", "mean"])
    assert tr.error_x.array[1] == pytest.approx(w.loc["E1", "upper"] - w.loc["E1", "mean"])
    assert fig.layout.xaxis.title.text == "width"
    two = psychometric_forest(table, "threshold", groups={"model axis": table, "consensus": table})
    # per group: the ranges and the intervals; then the ranges' one legend entry
    assert len(two.data) == 5 and two.layout.showlegend
    assert two.data[0].name == "model axis: stimulus range" and two.data[0].showlegend is False
    with pytest.raises(ValueError, match="slope"):
        psychometric_forest(table, "slope")


def test_forest_draws_each_observers_stimulus_range_behind_its_threshold(fit):
    table = summarize(fit, with_map=False)
    rows = table[table.parameter == "threshold"].set_index("observer")
    for name in rows.index:  # the range is the observer's lowest and highest level
        x = observer_data(fit, name).x
        assert rows.loc[name, "stimulus_lower"] == x.min()
        assert rows.loc[name, "stimulus_upper"] == x.max()
    ranges, intervals, entry = psychometric_forest(table, "threshold").data
    assert entry.name == "stimulus range (data)" and entry.x == (None,)
    first = rows.index[0]
    assert list(ranges.x[:2]) == [rows.loc[first, "stimulus_lower"],
                                  rows.loc[first, "stimulus_upper"]]
    assert ranges.y[0] == intervals.y[0]  # on the observer's row
    # a table without the range columns (an older summary) draws the intervals only
    old = table.drop(columns=["stimulus_lower", "stimulus_upper"])
    assert len(psychometric_forest(old, "threshold").data) == 1


def test_summary_rows_of_the_threshold_at_80_percent_correct(fit):
    from cytoviz.psychometric.summary import threshold_at, threshold_parameter

    assert threshold_parameter(0.8) == "threshold_80"
    table = summarize(fit, percent_correct=(0.8,))
    rows = table[table.parameter == "threshold_80"].set_index("observer")
    assert list(rows.index) == ["model", "E1", "E2"]
    ref = threshold_at(fit, 0.8, method="posterior quantiles").set_index("observer")
    m = table[table.parameter == "threshold"].set_index("observer")
    w = table[table.parameter == "width"].set_index("observer")
    for obs in rows.index:  # the posterior of m + 0.23541 w, as threshold_at computes it
        assert rows.loc[obs, "mean"] == pytest.approx(ref.loc[obs, "point"])
        assert rows.loc[obs, "lower"] == pytest.approx(ref.loc[obs, "lower"])
        assert rows.loc[obs, "upper"] == pytest.approx(ref.loc[obs, "upper"])
        assert rows.loc[obs, "mean"] == pytest.approx(
            m.loc[obs, "mean"] + 0.23541 * w.loc[obs, "mean"], abs=1e-4)
        assert rows.loc[obs, "map"] == pytest.approx(
            m.loc[obs, "map"] + 0.23541 * w.loc[obs, "map"], abs=1e-4)
        assert 0 < rows.loc[obs, "mcse_lower"] < 0.1 and rows.loc[obs, "ess"] > 10
        assert rows.loc[obs, "stimulus_lower"] == m.loc[obs, "stimulus_lower"]
    assert "threshold_80" not in set(summarize(fit, with_map=False).parameter)
    with pytest.raises(ValueError, match=r"1\.5"):
        summarize(fit, percent_correct=(1.5,))
    fig = psychometric_forest(table, "threshold_80")
    ranges, intervals, _ = fig.data  # the stimulus ranges are drawn behind it, too
    assert ranges.x[0] == rows.iloc[0]["stimulus_lower"]
    assert intervals.x[0] == pytest.approx(rows.iloc[0]["mean"])
    assert fig.layout.xaxis.title.text == "threshold at 80 % correct"


def test_cli_raw_confidence_csv(tmp_path, capsys):
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 400)
    p = 0.1 + 0.88 / (1 + np.exp(-2 * np.log(19) * (conf - 0.4) / 0.5))
    df = pd.DataFrame({"confidence": conf, "correct": rng.uniform(size=400) < p,
                       "observer": np.where(np.arange(400) % 2, "A", "B")})
    df.to_csv(tmp_path / "raw.csv", index=False)
    rc = main(["psychometric", "--csv", str(tmp_path / "raw.csv"), "--out", str(tmp_path / "o"),
               "--bins", "10", "--pc", "0.8", "--no-eta", "--draws", "200", "--tune", "200",
               "--chains", "1", "--mcse-target", "none", "--formats", "html"])
    assert rc == 0
    summary = pd.read_csv(tmp_path / "o" / "summary.csv")
    assert set(summary.observer) == {"A", "B"} and "eta" in set(summary.parameter)
    assert {"mcse_lower", "mcse_upper", "ess"} <= set(summary.columns)
    thr = pd.read_csv(tmp_path / "o" / "thresholds.csv")
    assert set(thr.method) == {"posterior quantiles", "psignifit worst-case"}
    assert (tmp_path / "o" / "figures" / "curve_A.html").is_file()
    assert (tmp_path / "o" / "figures" / "forest_width.html").is_file()
    assert (tmp_path / "o" / "figures" / "forest_threshold_80.html").is_file()
    assert (tmp_path / "o" / "fit.nc").is_file()
    # the summary's threshold at --pc is the thresholds table's posterior-quantile one
    t80 = summary[summary.parameter == "threshold_80"].set_index("observer")["mean"]
    ref = thr[thr.method == "posterior quantiles"].set_index("observer")["point"]
    np.testing.assert_allclose(t80.loc[ref.index], ref)


def test_cli_errors_are_one_line(tmp_path, capsys):
    pd.DataFrame({"a": [1], "b": [2]}).to_csv(tmp_path / "bad.csv", index=False)
    rc = main(["psychometric", "--csv", str(tmp_path / "bad.csv"), "--out", str(tmp_path)])
    assert rc == 2 and "unrecognised columns" in capsys.readouterr().err
    rc = main(["psychometric", "--csv", str(tmp_path / "none.csv"), "--out", str(tmp_path)])
    assert rc == 2
    with pytest.raises(SystemExit) as stop:
        main(["psychometric", "--csv", str(tmp_path / "bad.csv"), "--out", str(tmp_path),
              "--mcse-target", "-1"])
    assert stop.value.code == 2 and "positive number or 'none'" in capsys.readouterr().err


def test_cli_reads_all_three_layouts(tmp_path):
    from cytoviz.psychometric._cli import read_observers

    pd.DataFrame({"observer": ["a"] * 3 + ["b"] * 3, "x": [0.1, 0.5, 0.9] * 2,
                  "k": [1, 5, 9, 0, 4, 8], "n": [10] * 6}).to_csv(tmp_path / "xkn.csv", index=False)
    xkn = read_observers(tmp_path / "xkn.csv", bins=12, scheme="equal-width")
    assert list(xkn) == ["a", "b"] and xkn["b"].k.tolist() == [0, 4, 8]
    rows = [{"image": f"i{i}", "expert": e, "years": y, "label": "neutrophil" if (i + y) % 7 else "lymphocyte",
             "confidence": ["High", "Low"][i % 2]}
            for i in range(30) for e, y in (("A", 20), ("B", 10), ("C", 5))]
    pd.DataFrame(rows).to_csv(tmp_path / "panel.csv", index=False)
    panel = read_observers(tmp_path / "panel.csv", bins=6, scheme="equal-width")
    assert list(panel) == ["A", "B", "C"] and all(d.n.sum() == 30 for d in panel.values())
    pd.DataFrame(rows).assign(confidence="Sure").to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="Sure"):
        read_observers(tmp_path / "bad.csv", bins=6, scheme="equal-width")


def test_curve_x_axis_spans_the_data_beyond_one():
    """A 0..3 stimulus axis is drawn whole (the range used to be fixed to [0, 1])."""
    d = simulate_xkn(0.4, 0.5, n_bins=10, n_per_level=20, seed=4)
    wide = fit_observers({"E": (3 * d.x, d.k, d.n)}, FAST)
    fig = psychometric_curve(wide, "E", inset=False)
    lo, hi = fig.layout.xaxis.range
    assert lo <= 0 and hi >= 3 * d.x.max()
    assert max(fig.data[1].x) >= 3 * d.x.max()
    assert fig.layout.xaxis.title.text == "stimulus level"


def test_threshold_below_is_a_probability_that_follows_the_true_thresholds(fit):
    """model (true threshold 0.4), E1 (0.3), E2 (0.5): P(model below E2) high, below E1 low."""
    from cytoviz.psychometric.summary import posterior_draws, threshold_below

    t = threshold_below(fit, "model").set_index("observer")
    assert list(t.index) == ["E1", "E2"]
    assert t["p_reference_below"].between(0, 1).all()
    assert t.loc["E2", "p_reference_below"] > 0.8 > 0.2 > t.loc["E1", "p_reference_below"]
    # the exact pair count agrees with a literal comparison of all pairs of draws
    m = posterior_draws(fit, "model")["threshold"]
    e = posterior_draws(fit, "E2")["threshold"]
    literal = (m[:, None] < e[None, :]).mean()
    assert t.loc["E2", "p_reference_below"] == pytest.approx(literal, abs=1e-12)
    assert threshold_below(fit, "E1", parameter="width")["parameter"].eq("width").all()
    with pytest.raises(KeyError, match="reference"):
        threshold_below(fit, "nobody")
    with pytest.raises(ValueError, match="parameter"):
        threshold_below(fit, parameter="lambda")
