"""Partial pooling across observers, and its comparison with independent fits by LOO.

Not in psignifit (an opt-in addition, see the method page): every observer keeps its own
threshold, width, lapse rate and overdispersion, but the thresholds and the log widths are drawn
from shared normal distributions whose centre and spread are learnt from all observers
together. Observers with few or uninformative trials borrow strength from the others; with
informative data each fit stays close to its independent one.

Priors (non-centred): the centre of the thresholds has psignifit's threshold prior on the pooled
stimulus range ``r`` (flat over the range, cosine flanks of ``r/2``); their spread is
``HalfNormal(r/2)``. The centre of the log widths is uniform between the log of the smallest
observer ``wmin`` and ``log(3 r)``; their spread is ``HalfNormal(1)``. Lapse rates (Beta(1, 10)
shape on [0, 0.5]) and ``eta`` (Beta(1, 10)) are per observer, as in the independent model.

:func:`fit_hierarchical` returns ``InferenceData`` shaped like
:func:`~cytoviz.psychometric.fit_observers`'s, so every summary and plot reads it;
:func:`compare_pooling` fits both and ranks them by ArviZ's PSIS-LOO.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cytoviz.psychometric.model import (
    PsychometricConfig,
    _coerce_observers,
    _gammas,
    _likelihood,
    _model_inputs,
    _sample,
    fit_observers,
)

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az
    import pymc as pm

__all__ = ["POOLED", "build_hierarchical_model", "compare_pooling", "fit_hierarchical"]

#: ``posterior.attrs["cytoviz_pooling"]`` of a partially pooled fit.
POOLED = "partial"


def build_hierarchical_model(data: Mapping[str, Any], config: PsychometricConfig | None = None,
                             *, gamma: float | Mapping[str, float] | None = None) -> pm.Model:
    """Build the partially pooled model (not sampled); see the module docstring for the priors.

    Parameters
    ----------
    data
        Observer name -> ``(x, k, n)``; at least two observers.
    config
        Model settings (``gamma``, ``alpha``, ``pc``, ``eta``; defaults
        :class:`~cytoviz.psychometric.PsychometricConfig`).
    gamma
        Guess rate of every observer, or observer -> guess rate (default ``config.gamma``).

    Returns
    -------
    pymc.Model
        Deterministic ``threshold`` and ``width`` and free ``lambda`` (and ``eta``) with
        dimension ``observer``; hyperparameters ``threshold_mu``, ``threshold_sigma``,
        ``log_width_mu``, ``log_width_sigma``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    config = config or PsychometricConfig()
    observers = _coerce_observers(data)
    if len(observers) < 2:
        raise ValueError(f"partial pooling needs at least two observers, got {list(observers)}")
    settings, arrays = _model_inputs(observers, _gammas(observers, config, gamma))
    s0 = float(min(s["s0"] for s in settings))
    s1 = float(max(s["s1"] for s in settings))
    r = s1 - s0
    wmin = float(min(s["wmin"] for s in settings))
    a_scale = 2.0 * math.log(1.0 / config.alpha - 1.0)
    a_shift = math.log(1.0 / config.pc - 1.0)
    coords = {"observer": list(observers), "row": np.arange(len(arrays["x"]))}
    with pm.Model(coords=coords) as model:
        x_d = pm.Data("x", arrays["x"], dims="row")
        n_d = pm.Data("n", arrays["n"], dims="row")
        idx_d = pm.Data("observer_index", arrays["observer_index"], dims="row")
        k_d = pm.Data("k_observed", arrays["k_observed"], dims="row")
        gamma_d = pm.Data("gamma", arrays["gamma"], dims="observer")[idx_d]

        mu_m = pm.Uniform("threshold_mu", lower=s0 - r / 2, upper=s1 + r / 2)
        d = pt.maximum(s0 - mu_m, 0.0) + pt.maximum(mu_m - s1, 0.0)
        pm.Potential("threshold_mu_prior", pt.log(0.5 + 0.5 * pt.cos(2 * np.pi * d / r)))
        sigma_m = pm.HalfNormal("threshold_sigma", sigma=r / 2)
        z_m = pm.Normal("threshold_z", 0.0, 1.0, dims="observer")
        m = pm.Deterministic("threshold", mu_m + sigma_m * z_m, dims="observer")

        mu_w = pm.Uniform("log_width_mu", lower=math.log(wmin), upper=math.log(3 * r))
        sigma_w = pm.HalfNormal("log_width_sigma", sigma=1.0)
        z_w = pm.Normal("log_width_z", 0.0, 1.0, dims="observer")
        w = pm.Deterministic("width", pt.exp(mu_w + sigma_w * z_w), dims="observer")

        lam = pm.Uniform("lambda", lower=0.0, upper=0.5, dims="observer")
        pm.Potential("lambda_prior", 9.0 * pt.log1p(-lam))  # Beta(1, 10) shape

        z = a_scale * (x_d - m[idx_d]) / w[idx_d] - a_shift
        psi = gamma_d + (1.0 - lam[idx_d] - gamma_d) * pt.sigmoid(z)
        _likelihood(psi, idx_d, n_d, k_d, config)
    return model


def fit_hierarchical(data: Mapping[str, Any], config: PsychometricConfig | None = None, *,
                     gamma: float | Mapping[str, float] | None = None,
                     log_likelihood: bool = False) -> az.InferenceData:
    """Fit all observers with partial pooling of threshold and width.

    Parameters
    ----------
    data
        Observer name -> ``(x, k, n)``; at least two observers.
    config
        Model and sampler settings (draws adapt to ``config.mcse_target`` as in
        :func:`~cytoviz.psychometric.fit_observers`).
    gamma
        Guess rate of every observer, or observer -> guess rate.
    log_likelihood
        Also store the pointwise log-likelihood (for LOO).

    Returns
    -------
    arviz.InferenceData
        As :func:`~cytoviz.psychometric.fit_observers`, plus the hyperparameters;
        ``posterior.attrs["cytoviz_pooling"]`` is :data:`POOLED`. Its MAP is not computed
        (:func:`~cytoviz.psychometric.summary.summarize` leaves ``map`` empty).
    """
    import pymc as pm

    config = config or PsychometricConfig()
    t0 = time.perf_counter()
    model = build_hierarchical_model(data, config, gamma=gamma)
    with model:
        step = pm.NUTS(target_accept=max(config.target_accept, 0.95))
    idata, draws, error = _sample(model, step, config, log_likelihood=log_likelihood)
    idata.posterior.attrs.update({
        "cytoviz_model": "psychometric (psignifit 4 conventions, logistic), partially pooled",
        "cytoviz_pooling": POOLED,
        "cytoviz_config": json.dumps(config.to_dict()),
        "gamma": config.gamma, "alpha": config.alpha, "pc": config.pc, "eta": int(config.eta),
        "sampling_wall_s": time.perf_counter() - t0, "draws_used": draws,
        "mcse_bounds_max": error,
    })
    return idata


def compare_pooling(data: Mapping[str, Any], config: PsychometricConfig | None = None, *,
                    gamma: float | Mapping[str, float] | None = None
                    ) -> tuple[pd.DataFrame, dict[str, az.InferenceData]]:
    """Fit the observers independently and with partial pooling; compare by PSIS-LOO.

    Parameters
    ----------
    data
        Observer name -> ``(x, k, n)``; at least two observers.
    config
        Model and sampler settings of both fits.
    gamma
        Guess rate of every observer, or observer -> guess rate.

    Returns
    -------
    table : pandas.DataFrame
        ArviZ's ``compare`` table (``elpd_loo``, ``p_loo``, ``elpd_diff``, ``dse``,
        ``warning`` ...), one row per model (``independent``, ``partial pooling``), best
        first. A ``warning`` of True means some Pareto k > 0.7: LOO is unreliable for those
        rows (binned levels with many trials are influential).
    fits : dict
        ``"independent"`` and ``"partial pooling"`` -> the fits, with log-likelihoods.
    """
    import arviz as az

    fits = {"independent": fit_observers(data, config, gamma=gamma, log_likelihood=True),
            "partial pooling": fit_hierarchical(data, config, gamma=gamma, log_likelihood=True)}
    return az.compare(fits, ic="loo"), fits
