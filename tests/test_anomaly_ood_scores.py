"""The extra anomaly scores (MSP, energy, likelihood), the bootstrap AUC interval and their plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cytoviz.anomaly import (
    anomaly_auc,
    certainty_kde,
    energy_certainty,
    error_certainty,
    msp_certainty,
    roc_auc,
)


def test_msp_and_energy_against_hand_computed_values() -> None:
    logits = np.array([[0.0, 0.0], [np.log(3.0), 0.0]])
    np.testing.assert_allclose(msp_certainty(logits), [0.5, 0.75])
    np.testing.assert_allclose(energy_certainty(logits), [np.log(2.0), np.log(4.0)])
    # T log sum exp(x / T) at T = 2
    np.testing.assert_allclose(energy_certainty(logits, temperature=2.0),
                               2 * np.log(np.exp(logits / 2).sum(1)))
    # numerically stable for large logits
    assert np.isfinite(energy_certainty(np.array([[1000.0, 999.0]]))).all()
    with pytest.raises(ValueError, match="temperature"):
        energy_certainty(logits, temperature=0)
    with pytest.raises(ValueError, match="2-D"):
        msp_certainty(np.zeros(3))


def test_error_certainty_is_minus_the_smallest_evaluated_error() -> None:
    e = np.array([[0.3, np.nan, 0.1], [2.0, 1.5, np.nan]])
    np.testing.assert_allclose(error_certainty(e), [-0.1, -1.5])
    with pytest.raises(ValueError, match="no evaluated class"):
        error_certainty(np.array([[np.nan, np.nan]]))


def _table(rng: np.random.Generator, shift: float) -> pd.DataFrame:
    rows = []
    for score, s in (("zeta", shift), ("msp", -shift)):
        normal = rng.normal(s, 1, 200)
        abnormal = rng.normal(0, 1, 40)
        for v, ab in [(x, False) for x in normal] + [(x, True) for x in abnormal]:
            rows.append({"model": "baseline", "held_out": "blast", "score": score,
                         "is_abnormal": ab, "certainty": v, "certainty_norm": v})
    return pd.DataFrame(rows)


def test_bootstrap_interval_brackets_the_auc_and_shrinks_with_separation(rng) -> None:
    t = _table(rng, 1.0)
    auc = anomaly_auc(t, n_boot=500)
    assert list(auc["score"]) == ["zeta", "msp"]
    for r in auc.itertuples():
        assert r.auc_low < r.auc < r.auc_high
    g = t[t["score"] == "zeta"]
    exact = roc_auc(g.loc[~g.is_abnormal, "certainty"].to_numpy(),
                    g.loc[g.is_abnormal, "certainty"].to_numpy())
    assert auc["auc"].iloc[0] == pytest.approx(exact)
    assert auc["auc"].iloc[0] > 0.7 > auc["auc"].iloc[1]
    # the same seed gives the same interval; a wider ci is wider
    again = anomaly_auc(t, n_boot=500)
    assert auc["auc_low"].iloc[0] == again["auc_low"].iloc[0]
    wide = anomaly_auc(t, n_boot=500, ci=0.99)
    assert wide["auc_high"].iloc[0] - wide["auc_low"].iloc[0] > (
        auc["auc_high"].iloc[0] - auc["auc_low"].iloc[0])
    # a perfect separation has a degenerate interval at exactly 1
    perfect = _table(rng, 50.0)
    p = anomaly_auc(perfect[perfect["score"] == "zeta"], n_boot=100)
    assert p["auc"].iloc[0] == p["auc_low"].iloc[0] == p["auc_high"].iloc[0] == 1.0
    with pytest.raises(ValueError, match="n_boot"):
        anomaly_auc(t, n_boot=0)
    with pytest.raises(ValueError, match="ci"):
        anomaly_auc(t, ci=1.5)


def test_bootstrap_matches_a_literal_resampling(rng) -> None:
    """The count-based bootstrap gives the AUC of the resampled images, replicate by replicate."""
    from cytoviz.anomaly import _bootstrap_auc

    normal, abnormal = rng.normal(1, 1, 30).round(1), rng.normal(0, 1, 12).round(1)
    fast = _bootstrap_auc(normal, abnormal, n_boot=50, rng=np.random.default_rng(3))
    g = np.random.default_rng(3)
    # the same draws, applied literally
    ni = g.integers(0, normal.size, (50, normal.size))
    ai = g.integers(0, abnormal.size, (50, abnormal.size))
    slow = [roc_auc(normal[a], abnormal[b]) for a, b in zip(ni, ai, strict=True)]
    np.testing.assert_allclose(fast, slow, atol=1e-12)


def test_old_tables_without_a_score_column_are_zeta() -> None:
    t = pd.DataFrame({"model": "diffusion", "held_out": "blast",
                      "is_abnormal": [False, False, True], "certainty": [0.9, 0.8, 0.1],
                      "certainty_norm": [1.0, 0.9, 0.1]})
    assert anomaly_auc(t, n_boot=20)["score"].tolist() == ["zeta"]
    assert set(certainty_kde(t)["score"]) == {"zeta"}


def test_the_figure_draws_one_score_with_its_interval(rng) -> None:
    from cytoviz import pl

    t = _table(rng, 1.0)
    fig = pl.anomaly_kde(certainty_kde(t), anomaly_auc(t, n_boot=100))
    assert len(fig.data) == 2
    text = [a.text for a in fig.layout.annotations if a.text.startswith("AUC")]
    assert len(text) == 1 and "[" in text[0]
    msp = pl.anomaly_kde(certainty_kde(t), anomaly_auc(t, n_boot=100), score="msp")
    assert "msp" in msp.layout.title.text
    assert not np.allclose(msp.data[0].y, fig.data[0].y)
    with pytest.raises(ValueError, match="unknown score"):
        pl.anomaly_kde(certainty_kde(t), score="energy")


def test_the_widget_switches_scores(rng) -> None:
    from cytoviz.widgets import AnomalyExplorer

    t = _table(rng, 1.0).assign(seed=0, image=lambda d: np.arange(len(d)) % 240,
                                true_class="x")
    w = AnomalyExplorer(t)
    assert w.scores == ["zeta", "msp"] and w.score == "zeta"
    zeta = w.rates()
    w.set_score("msp")
    assert len(w.current) == 240 and set(w.current["score"]) == {"msp"}
    assert w.rates() != zeta and "score msp" in w.readout()
    with pytest.raises(ValueError, match="unknown score"):
        w.set_score("likelihood")
