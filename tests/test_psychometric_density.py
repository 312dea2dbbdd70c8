"""The psychometric log-density exists twice: the PyMC model and NumPy's ``log_posterior``.

They must agree, up to the terms the NumPy version leaves out because they do not depend on the
parameters (the Uniforms' normalisers and the lapse prior's normaliser), on
a grid of parameters that covers the priors' fall-offs, the lapse rate, the guess rate and both
branches of the beta-binomial likelihood. The compiled-model cache must give the same density
after new data have been swapped in.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pymc.model.transform.conditioning import remove_value_transforms
from scipy import stats

from cytoviz.psychometric import CompiledModels, PsychometricConfig, simulate_xkn
from cytoviz.psychometric.model import build_model, log_posterior, prior_settings

DATA = {
    "a": simulate_xkn(0.4, 0.5, 0.03, n_bins=10, n_per_level=(5, 30), eta=0.1, seed=1),
    "b": simulate_xkn(0.6, 0.3, 0.0, gamma=0.2, n_bins=7, n_per_level=12, seed=2),
}


def _parameter_grid(data, n_points: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Points inside every observer's prior support; eta includes the binomial branch."""
    rng = np.random.default_rng(seed)
    points = []
    for i in range(n_points):
        point: dict[str, list[float]] = {"threshold": [], "width": [], "lambda": [], "eta": []}
        for d in data.values():
            s = prior_settings(d)
            pad = 1e-3 * s["range"]  # the priors are 0 (log -inf) on their bounds
            point["threshold"].append(rng.uniform(s["threshold_lower"] + pad,
                                                  s["threshold_upper"] - pad))
            point["width"].append(rng.uniform(s["width_lower"] + pad, s["width_upper"] - pad))
            point["lambda"].append(rng.uniform(0.0, 0.49))
            # eta^2 <= 1e-9 is binomial, otherwise beta-binomial (up to eta near 1)
            point["eta"].append([1e-6, 0.02, rng.uniform(0.05, 0.95)][i % 3])
        points.append({k: np.asarray(v) for k, v in point.items()})
    return points


def _dropped_constant(data, config: PsychometricConfig) -> float:
    """The parameter-free terms that are in the PyMC model and not in ``log_posterior``."""
    total = 0.0
    beta_norm = math.log(10.0)  # -log B(1, 10)
    for d in data.values():
        s = prior_settings(d)
        # the PyMC Uniforms' log densities (the prior shapes are Potentials)
        total -= math.log(s["threshold_upper"] - s["threshold_lower"])
        total -= math.log(s["width_upper"] - s["width_lower"])
        total -= math.log(0.5)
        # NumPy's lapse prior is the normalised Beta(1, 10) on [0, 0.5]; PyMC keeps its shape
        total -= beta_norm - math.log(stats.beta.cdf(0.5, 1, 10))
    return total


def _numpy_density(point, data, config: PsychometricConfig) -> float:
    return float(sum(
        log_posterior(point["threshold"][i], point["width"][i], point["lambda"][i],
                      point["eta"][i], d, config)
        for i, d in enumerate(data.values())))


def _pymc_density(model, config: PsychometricConfig):
    """The model's log density (priors, Potentials, likelihood) on untransformed values."""
    logp = remove_value_transforms(model).compile_logp()
    keys = ("threshold", "width", "lambda", "eta") if config.eta else ("threshold", "width",
                                                                      "lambda")
    return lambda p: float(logp({k: p[k] for k in keys}))


@pytest.mark.parametrize(
    "config",
    [PsychometricConfig(),
     PsychometricConfig(eta=False),
     PsychometricConfig(gamma=0.25, alpha=0.1, pc=0.6)],
    ids=["default", "binomial", "other-gamma-alpha-pc"],
)
def test_pymc_and_numpy_log_densities_agree(config):
    model = build_model(DATA, config)
    points = _parameter_grid(DATA, 9, seed=0)
    density = _pymc_density(model, config)
    pymc_lp = np.array([density(p) for p in points])
    numpy_lp = np.array([_numpy_density(p, DATA, config) for p in points])
    assert np.isfinite(pymc_lp).all() and np.isfinite(numpy_lp).all()
    # the same function of the parameters: differences between grid points agree exactly ...
    np.testing.assert_allclose(np.diff(pymc_lp), np.diff(numpy_lp), rtol=1e-9, atol=1e-8)
    # ... and the offset is exactly the parameter-free terms NumPy leaves out
    np.testing.assert_allclose(pymc_lp - numpy_lp, _dropped_constant(DATA, config), atol=1e-5)


def test_numpy_density_is_minus_inf_outside_the_priors():
    d = DATA["a"]
    s = prior_settings(d)
    inside = dict(m=0.5, w=0.5 * (s["width_lower"] + s["width_upper"]), lam=0.05, eta=0.1)
    assert np.isfinite(log_posterior(**inside, data=d))
    for change in ({"m": s["threshold_upper"] + 0.01}, {"w": s["width_lower"] / 2},
                   {"lam": 0.6}, {"eta": 1.0}):
        assert log_posterior(**{**inside, **change}, data=d) == -np.inf, change


def test_compiled_models_reuse_the_model_with_new_data():
    config = PsychometricConfig()
    cache = CompiledModels()
    model, step = cache.model_and_step(DATA, config)
    assert len(cache) == 1
    # other data of another size, same number of observers: the same compiled model ...
    other = {"c": simulate_xkn(0.5, 0.4, 0.02, n_bins=14, n_per_level=25, seed=5),
             "d": simulate_xkn(0.3, 0.6, 0.05, n_bins=5, n_per_level=(3, 9), seed=6)}
    again, step_again = cache.model_and_step(other, config)
    assert again is model and step_again is step and len(cache) == 1
    # ... now holding the new data: its density is the NumPy one on the new data
    points = _parameter_grid(other, 3, seed=1)
    density = _pymc_density(again, config)
    pymc_lp = np.array([density(p) for p in points])
    numpy_lp = np.array([_numpy_density(p, other, config) for p in points])
    np.testing.assert_allclose(pymc_lp - numpy_lp, _dropped_constant(other, config), atol=1e-5)
    # other model settings or another number of observers compile a new model
    assert cache.model_and_step(other, config.replace(eta=False))[0] is not model
    assert cache.model_and_step({"c": other["c"]}, config)[0] is not model
    assert len(cache) == 3
