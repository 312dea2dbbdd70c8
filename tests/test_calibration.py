"""cytoviz.calibration: temperature scaling and the calibration metrics, against literal sums."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cytoviz import calibration as cal

REPO = Path(__file__).resolve().parents[1]
STORED = REPO / "eval_runs" / "domain_shift" / "outputs" / "diffusion-seed0-pretrained" / "test_result.npz"


def _sample(n: int, k: int, temperature: float, seed: int = 0):
    """Logits and labels drawn from softmax(logits / temperature)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, (n, k))
    p = np.exp(z / temperature)
    p /= p.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in p])
    return z, y


def test_fit_temperature_recovers_the_generating_temperature():
    z, y = _sample(6000, 5, temperature=2.5)
    fitted = cal.fit_temperature(z, y, fitted_on="simulated")
    assert fitted.temperature == pytest.approx(2.5, rel=0.08)
    assert fitted.fitted_on == "simulated"
    # calibrated probabilities have a smaller ECE and NLL than the raw softmax
    raw = cal.calibration_metrics(cal.TemperatureScaling(1.0).probabilities(z), y)
    scaled = cal.calibration_metrics(fitted.probabilities(z), y)
    assert scaled["ece"] < raw["ece"] and scaled["nll"] < raw["nll"]
    assert scaled["accuracy"] == raw["accuracy"]  # the prediction does not change


def test_metrics_match_literal_sums():
    p = np.array([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.1, 0.1, 0.8], [0.55, 0.45, 0.0]])
    y = np.array([0, 0, 2, 1])
    m = cal.calibration_metrics(p, y, n_bins=2)
    # bins [0, 0.5] and (0.5, 1]: tops 0.7, 0.5, 0.8, 0.55 -> bin 1 has 0.5; bin 2 the rest
    ece = 1 / 4 * abs(0 - 0.5) + 3 / 4 * abs(2 / 3 - (0.7 + 0.8 + 0.55) / 3)
    assert m["ece"] == pytest.approx(ece)
    assert m["nll"] == pytest.approx(-np.mean(np.log([0.7, 0.4, 0.8, 0.45])))
    brier = np.mean([0.09 + 0.04 + 0.01, 0.36 + 0.25 + 0.01, 0.01 + 0.01 + 0.04,
                     0.3025 + 0.3025 + 0.0])
    assert m["brier"] == pytest.approx(brier)
    assert m["accuracy"] == pytest.approx(0.5)
    curve = cal.reliability_curve(p, y, n_bins=2)
    assert curve["n"].tolist() == [1, 3]


def test_bad_input_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="sum to 1"):
        cal.calibration_metrics(np.array([[0.5, 0.6]]), np.array([0]))
    with pytest.raises(ValueError, match="lie in"):
        cal.calibration_metrics(np.array([[0.5, 0.5]]), np.array([2]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        cal.fit_temperature(np.array([[np.nan, 1.0], [0.0, 1.0]]), np.array([0, 1]))
    with pytest.raises(ValueError, match="temperature must be"):
        cal.TemperatureScaling(temperature=0.0)
    with pytest.raises(ValueError, match="n_bins"):
        cal.reliability_curve(np.array([[0.5, 0.5]]), np.array([0]), n_bins=0)


def test_diffusion_logits_are_the_negative_normalised_errors():
    if not STORED.is_file():
        pytest.skip(f"no stored classification at {STORED}")
    from cytoviz.diffusion import ClassificationResult

    res = ClassificationResult.load(STORED)
    z = cal.logits_of(res)
    assert z.shape == res.scores.shape and np.all(np.isfinite(z))
    ok = ~np.isnan(res.scores)
    np.testing.assert_allclose(z[ok], -res.scores[ok])
    probs = cal.TemperatureScaling(0.1).probabilities(res)
    np.testing.assert_array_equal(probs.argmax(axis=1), np.argmin(np.where(ok, res.scores, np.inf), axis=1))


def test_reliability_diagram_draws_each_curve():
    from cytoviz import pl

    z, y = _sample(500, 4, temperature=1.0, seed=1)
    curve = cal.reliability_curve(cal.TemperatureScaling().probabilities(z), y)
    fig = pl.reliability_diagram({"model": curve})
    assert [t.name for t in fig.data] == ["perfectly calibrated", "model"]
    np.testing.assert_allclose(np.asarray(fig.data[1].y), curve["accuracy"])
    with pytest.raises(ValueError, match="lacks column"):
        pl.reliability_diagram({"bad": curve.drop(columns="n")})


@pytest.mark.slow
def test_calibration_benchmark_from_the_stored_passes(tmp_path):
    from _scripts import load_script

    mod = load_script(REPO / "benchmarks" / "calibration.py")
    if not (mod.VAL_DIR / "result.npz").is_file() or not STORED.is_file():
        pytest.skip("the stored classification passes are not in this checkout")
    out = mod.main(["--out", str(tmp_path / "c.json")])
    assert (tmp_path / "c.json").is_file()
    diff = out["models"]["CytoDiffusion (tiny, CPU)"]
    assert diff["fitted_on"].startswith("val")
    test = diff["splits"]["test"]
    assert test["scaled"]["nll"] <= test["raw"]["nll"]
    assert test["scaled"]["accuracy"] == test["raw"]["accuracy"]
