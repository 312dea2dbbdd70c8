"""Summaries of a psychometric fit: estimates, intervals, thresholds, goodness of fit.

Every function takes the ``InferenceData`` returned by :func:`~cytoviz.psychometric.fit` /
:func:`~cytoviz.psychometric.fit_observers` and returns a ``pandas.DataFrame`` (one row per
observer, or per observer and parameter). Nothing here samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cytoviz.psychometric.model import (
    PARAMETERS,
    config_from_idata,
    log_posterior,
    observer_config,
    observer_data,
    psychometric_function,
)

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az

__all__ = [
    "POSTERIOR_QUANTILES",
    "PSIGNIFIT_WORST_CASE",
    "deviance_residuals",
    "goodness_of_fit",
    "map_estimate",
    "monte_carlo_errors",
    "observers",
    "posterior_draws",
    "summarize",
    "threshold_at",
    "threshold_below",
    "threshold_parameter",
    "unscaled_threshold",
]

POSTERIOR_QUANTILES = "posterior quantiles"
PSIGNIFIT_WORST_CASE = "psignifit worst-case"


def observers(idata: az.InferenceData) -> list[str]:
    """Observer names of a fit, in order."""
    return [str(v) for v in idata.posterior["observer"].values]


def posterior_draws(idata: az.InferenceData, observer: str) -> dict[str, np.ndarray]:
    """Flattened posterior draws (chains stacked) of one observer's parameters."""
    names = observers(idata)
    if observer not in names:
        raise KeyError(f"observer {observer!r} not in this fit; observers are {names}")
    post = idata.posterior.sel(observer=observer)
    out = {p: post[p].values.reshape(-1) for p in PARAMETERS if p in post}
    if "eta" not in out:
        out["eta"] = np.zeros_like(out["threshold"])
    return out


def map_estimate(idata: az.InferenceData, observer: str) -> dict[str, float]:
    """MAP of one observer's parameters (psignifit's point estimate).

    Maximises the NumPy log posterior (the model's density, untransformed) with Nelder-Mead
    (as psignifit's ``fmin``), started from the best of up to 400 posterior draws.
    """
    from scipy import optimize

    if idata.posterior.attrs.get("cytoviz_pooling") == "partial":
        raise ValueError("a partially pooled fit has no per-observer MAP under psignifit's "
                         "priors; use the posterior mean (summarize(..., with_map=False))")
    config = observer_config(idata, observer)
    data = observer_data(idata, observer)
    draws = posterior_draws(idata, observer)
    step = max(1, len(draws["threshold"]) // 400)
    cand = {p: v[::step] for p, v in draws.items()}
    lp = log_posterior(cand["threshold"], cand["width"], cand["lambda"], cand["eta"], data, config)
    i = int(np.argmax(lp))
    names = ["threshold", "width", "lambda"] + (["eta"] if config.eta else [])
    start = np.array([cand[p][i] for p in names])

    def objective(theta: np.ndarray) -> float:
        eta = theta[3] if config.eta else 0.0
        value = log_posterior(theta[0], theta[1], theta[2], eta, data, config)
        return -float(value) if np.isfinite(value) else np.inf

    res = optimize.minimize(objective, start, method="Nelder-Mead",
                            options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 4000})
    theta = res.x if res.fun <= objective(start) else start
    out = dict(zip(names, map(float, theta), strict=True))
    out.setdefault("eta", 0.0)
    out["gamma"] = config.gamma
    return out


def threshold_parameter(percent_correct: float) -> str:
    """Name of the summary row of the threshold at ``percent_correct`` (0.8: ``"threshold_80"``)."""
    if not 0 < percent_correct < 1:
        raise ValueError(f"percent_correct must be a proportion in (0, 1), got {percent_correct}")
    return f"threshold_{100 * percent_correct:g}"


def _derived(idata: az.InferenceData, percent_correct: Sequence[float]) -> Any:
    """The posterior's sampled parameters plus the draws of each threshold at a percent correct
    (an ``xarray.Dataset``; the one place where those draws are computed for summaries)."""
    names = [p for p in PARAMETERS if p in idata.posterior]
    post = idata.posterior[names]
    if percent_correct:
        config = config_from_idata(idata)
        for p in percent_correct:
            c = _threshold_coefficient(p, config.alpha, config.pc)
            post[threshold_parameter(p)] = post["threshold"] + c * post["width"]
    return post


def summarize(idata: az.InferenceData, *, ci_prob: float = 0.95, with_map: bool = True,
              percent_correct: Sequence[float] = ()) -> pd.DataFrame:
    """MAP, posterior mean and equal-tailed interval of every parameter of every observer.

    Parameters
    ----------
    idata
        A fit from :func:`~cytoviz.psychometric.fit_observers`.
    ci_prob
        Mass of the equal-tailed credible interval (psignifit's default 0.95).
    with_map
        Also compute the MAP (a short optimisation per observer).
    percent_correct
        Also summarise the threshold at each of these percents correct of the unscaled sigmoid
        (METHOD.md: the paper's Figure 2 reports 0.8), as rows named by
        :func:`threshold_parameter` (``"threshold_80"``): the posterior of ``m + c w``, as
        :func:`threshold_at`'s ``"posterior quantiles"`` method; its ``map`` is that of
        ``(m, w)`` carried through.

    Returns
    -------
    pandas.DataFrame
        Columns ``observer``, ``parameter``, ``map``, ``mean``, ``sd``, ``lower``, ``upper``
        (``lower``/``upper``: the (1 - ci_prob)/2 and (1 + ci_prob)/2 quantiles of the draws),
        ``mcse_lower``, ``mcse_upper`` (Monte-Carlo standard errors of those two quantiles,
        ArviZ's ``mcse(method="quantile")``, which accounts for autocorrelation; NaN for a
        fixed parameter), ``ess`` (bulk effective sample size), and ``stimulus_lower``,
        ``stimulus_upper``: the observer's lowest and highest stimulus level (a threshold
        outside them is an extrapolation; :func:`cytoviz.pl.psychometric_forest` draws them).
    """
    if not 0 < ci_prob < 1:
        raise ValueError(f"ci_prob must be in (0, 1), got {ci_prob}")
    q = [(1 - ci_prob) / 2, (1 + ci_prob) / 2]
    rows: list[dict[str, Any]] = []
    mcse = monte_carlo_errors(idata, ci_prob=ci_prob, percent_correct=percent_correct)
    config = config_from_idata(idata)
    derived = [(threshold_parameter(pc), pc) for pc in percent_correct]
    post = _derived(idata, percent_correct)
    for obs in observers(idata):
        draws = posterior_draws(idata, obs)
        pooled = idata.posterior.attrs.get("cytoviz_pooling") == "partial"
        mp = map_estimate(idata, obs) if with_map and not pooled else {}
        for name, pc in derived:
            draws[name] = post[name].sel(observer=obs).values.reshape(-1)
            if mp:
                mp[name] = float(unscaled_threshold(mp["threshold"], mp["width"], pc,
                                                    alpha=config.alpha, pc=config.pc))
        x = observer_data(idata, obs).x
        for p in (*PARAMETERS, *(name for name, _ in derived)):
            v = draws[p]
            lo, hi = np.quantile(v, q)
            err = mcse.get((obs, p), (np.nan, np.nan, np.nan))
            rows.append({"observer": obs, "parameter": p, "map": mp.get(p, np.nan),
                         "mean": float(v.mean()), "sd": float(v.std(ddof=1)),
                         "lower": float(lo), "upper": float(hi),
                         "mcse_lower": err[0], "mcse_upper": err[1], "ess": err[2],
                         "stimulus_lower": float(x.min()), "stimulus_upper": float(x.max())})
    return pd.DataFrame(rows)


def monte_carlo_errors(idata: az.InferenceData, *, ci_prob: float = 0.95,
                       percent_correct: Sequence[float] = ()
                       ) -> dict[tuple[str, str], tuple[float, float, float]]:
    """Monte-Carlo standard errors of the interval bounds, and the bulk ESS, of every parameter.

    Parameters
    ----------
    idata
        A fit from :func:`~cytoviz.psychometric.fit_observers`.
    ci_prob
        Mass of the equal-tailed interval whose bounds are assessed.
    percent_correct
        Also assess the thresholds at these percents correct (see :func:`summarize`).

    Returns
    -------
    dict
        ``(observer, parameter)`` -> ``(mcse of the lower bound, mcse of the upper bound,
        bulk effective sample size)``, for the sampled parameters (``eta`` only when fitted)
        and the thresholds asked for.
    """
    import arviz as az

    if not 0 < ci_prob < 1:
        raise ValueError(f"ci_prob must be in (0, 1), got {ci_prob}")
    post = _derived(idata, percent_correct)
    names = list(post.data_vars)
    lo = az.mcse(post, method="quantile", prob=(1 - ci_prob) / 2)
    hi = az.mcse(post, method="quantile", prob=(1 + ci_prob) / 2)
    ess = az.ess(post, method="bulk")
    out: dict[tuple[str, str], tuple[float, float, float]] = {}
    for obs in observers(idata):
        for p in names:
            out[(obs, p)] = (float(lo[p].sel(observer=obs)), float(hi[p].sel(observer=obs)),
                             float(ess[p].sel(observer=obs)))
    return out


def unscaled_threshold(m: Any, w: Any, percent_correct: float, *, alpha: float = 0.05,
                       pc: float = 0.5) -> np.ndarray:
    """x where the unscaled sigmoid S equals ``percent_correct``.

    x = m + w (ln(1/pc - 1) - ln(1/p - 1)) / (2 ln(1/alpha - 1)); for p = 0.8, alpha = 0.05,
    pc = 0.5 this is m + 0.23541 w.
    """
    c = _threshold_coefficient(percent_correct, alpha, pc)
    return np.asarray(m, float) + c * np.asarray(w, float)


def _threshold_coefficient(percent_correct: float, alpha: float, pc: float) -> float:
    """``c`` of the threshold at ``percent_correct``, ``m + c w`` (see :func:`unscaled_threshold`)."""
    if not 0 < percent_correct < 1:
        raise ValueError(f"percent_correct must be a proportion in (0, 1), got {percent_correct}")
    return (math.log(1 / pc - 1) - math.log(1 / percent_correct - 1)) / (2 * math.log(1 / alpha - 1))


def threshold_at(idata: az.InferenceData, percent_correct: float = 0.8, *,
                 ci_prob: float = 0.95, method: str = "both") -> pd.DataFrame:
    """Threshold at a percent correct of the unscaled sigmoid, with its interval.

    Two methods, labelled in the ``method`` column:

    ``"posterior quantiles"``
        The (proper) posterior of x_p = m + c w: mean and equal-tailed quantiles of
        the draws of m + c w (as refitting psignifit with ``thresh_PC = p`` would give).
    ``"psignifit worst-case"``
        What psignifit 4's ``Result.threshold(p, unscaled=True)`` reports: the point from the
        MAP of (m, w) and the interval [x(m_lo, w_lo), x(m_hi, w_hi)] from the marginal
        interval bounds of m and w. It is an upper bound on the width of the interval (about
        40 % wider for the paper's data).

    Returns
    -------
    pandas.DataFrame
        Columns ``observer``, ``method``, ``percent_correct``, ``point``, ``lower``, ``upper``.
    """
    if method not in ("both", POSTERIOR_QUANTILES, PSIGNIFIT_WORST_CASE):
        raise ValueError(f"method must be 'both', {POSTERIOR_QUANTILES!r} or "
                         f"{PSIGNIFIT_WORST_CASE!r}, got {method!r}")
    config = config_from_idata(idata)
    kw = {"alpha": config.alpha, "pc": config.pc}
    q = [(1 - ci_prob) / 2, (1 + ci_prob) / 2]
    rows: list[dict[str, Any]] = []
    for obs in observers(idata):
        d = posterior_draws(idata, obs)
        if method in ("both", POSTERIOR_QUANTILES):
            xp = unscaled_threshold(d["threshold"], d["width"], percent_correct, **kw)
            lo, hi = np.quantile(xp, q)
            rows.append({"observer": obs, "method": POSTERIOR_QUANTILES,
                         "percent_correct": percent_correct, "point": float(xp.mean()),
                         "lower": float(lo), "upper": float(hi)})
        if method in ("both", PSIGNIFIT_WORST_CASE):
            mp = map_estimate(idata, obs)
            m_lo, m_hi = np.quantile(d["threshold"], q)
            w_lo, w_hi = np.quantile(d["width"], q)
            rows.append({
                "observer": obs, "method": PSIGNIFIT_WORST_CASE, "percent_correct": percent_correct,
                "point": float(unscaled_threshold(mp["threshold"], mp["width"], percent_correct, **kw)),
                "lower": float(unscaled_threshold(m_lo, w_lo, percent_correct, **kw)),
                "upper": float(unscaled_threshold(m_hi, w_hi, percent_correct, **kw)),
            })
    return pd.DataFrame(rows)


def threshold_below(idata: az.InferenceData, reference: str = "model", *,
                    parameter: str = "threshold") -> pd.DataFrame:
    """Posterior probability that the reference observer's threshold lies below each other's.

    The paper's Figure 2 question ("is the model's threshold lower than the experts'?") as a
    probability rather than overlapping intervals. The observers are fitted independently, so
    their posteriors are independent and ``P(m_ref < m_obs)`` is the fraction of all pairs of
    draws (one of each) in which it holds; with equal numbers of draws the pairs are the
    ``S x S`` grid, computed exactly from the sorted draws. Not in psignifit.

    Parameters
    ----------
    idata
        A fit from :func:`cytoviz.psychometric.fit_observers` with ``reference`` among its
        observers (all fitted on the same stimulus axis).
    reference
        The observer compared with every other.
    parameter
        ``"threshold"`` (default) or ``"width"``.

    Returns
    -------
    pandas.DataFrame
        One row per other observer: ``observer``, ``reference``, ``parameter``,
        ``p_reference_below`` (in ``[0, 1]``), ``difference_mean`` (mean of observer minus
        reference).
    """
    if parameter not in ("threshold", "width"):
        raise ValueError(f"parameter must be 'threshold' or 'width', got {parameter!r}")
    names = observers(idata)
    if reference not in names:
        raise KeyError(f"reference {reference!r} not in this fit; observers are {names}")
    ref = np.sort(posterior_draws(idata, reference)[parameter])
    rows = []
    for obs in names:
        if obs == reference:
            continue
        other = posterior_draws(idata, obs)[parameter]
        # for each draw of the other observer: how many reference draws lie strictly below
        below = np.searchsorted(ref, other, side="left")
        rows.append({"observer": obs, "reference": reference, "parameter": parameter,
                     "p_reference_below": float(below.sum() / (ref.size * other.size)),
                     "difference_mean": float(other.mean() - ref.mean())})
    return pd.DataFrame(rows, columns=["observer", "reference", "parameter",
                                       "p_reference_below", "difference_mean"])


def _deviance(k: np.ndarray, n: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Binomial deviance against the saturated model (summed over the last axis)."""
    from scipy.special import xlogy

    phat = k / n
    with np.errstate(divide="ignore", invalid="ignore"):
        d = 2 * (xlogy(k, phat) - xlogy(k, psi) + xlogy(n - k, 1 - phat) - xlogy(n - k, 1 - psi))
    return d.sum(-1)


def goodness_of_fit(idata: az.InferenceData, *, max_draws: int = 2000,
                    seed: int = 0) -> pd.DataFrame:
    """Deviance at the MAP and a posterior predictive p-value, per observer.

    For a partially pooled fit the deviance is taken at the posterior mean.

    The p-value compares, draw by draw, the deviance of data simulated from the posterior
    (beta-binomial with the draw's eta, or binomial) with the deviance of the observed data
    under the same draw: p = P(D_rep >= D_obs). Small p (< 0.05) flags a poor fit.

    Returns
    -------
    pandas.DataFrame
        Columns ``observer``, ``deviance`` (binomial deviance at the MAP), ``n_levels``,
        ``ppc_p``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for obs in observers(idata):
        config = observer_config(idata, obs)
        data = observer_data(idata, obs)
        d = posterior_draws(idata, obs)
        step = max(1, len(d["threshold"]) // max_draws)
        m, w, lam, eta = (d[p][::step, None] for p in ("threshold", "width", "lambda", "eta"))
        psi = psychometric_function(data.x[None], m, w, lam=lam, gamma=config.gamma,
                                    alpha=config.alpha, pc=config.pc)
        n = np.broadcast_to(data.n[None], psi.shape)
        if config.eta:
            eta2 = eta**2
            nu = 1.0 / np.maximum(eta2, 1e-9) - 1.0
            p = np.where(eta2 <= 1e-9, psi,
                         rng.beta(np.maximum(psi * nu, 1e-12), np.maximum((1 - psi) * nu, 1e-12)))
        else:
            p = psi
        k_rep = rng.binomial(n, np.clip(p, 0, 1))
        d_rep = _deviance(k_rep, n, psi)
        d_obs = _deviance(np.broadcast_to(data.k[None], psi.shape), n, psi)
        psi_point = _point_psi(idata, obs)
        rows.append({"observer": obs, "deviance": float(_deviance(data.k, data.n, psi_point)),
                     "n_levels": len(data), "ppc_p": float(np.mean(d_rep >= d_obs))})
    return pd.DataFrame(rows)


def _point_psi(idata: az.InferenceData, observer: str) -> np.ndarray:
    """psi at the observer's levels, at the MAP (at the posterior mean for a pooled fit)."""
    config = observer_config(idata, observer)
    data = observer_data(idata, observer)
    if idata.posterior.attrs.get("cytoviz_pooling") == "partial":
        d = posterior_draws(idata, observer)
        point = {p: float(v.mean()) for p, v in d.items()}
    else:
        point = map_estimate(idata, observer)
    return psychometric_function(data.x, point["threshold"], point["width"],
                                 lam=point["lambda"], gamma=config.gamma, alpha=config.alpha,
                                 pc=config.pc)


def deviance_residuals(idata: az.InferenceData) -> pd.DataFrame:
    """Signed deviance residual of every stimulus level of every observer.

    ``sign(k - n psi) * sqrt(d)`` with ``d`` the level's binomial deviance contribution, at the
    MAP (the posterior mean for a partially pooled fit); their squares sum to the
    ``deviance`` of :func:`goodness_of_fit`. Residuals beyond about +-2 mark levels the curve
    does not explain; a run of same-signed residuals marks a wrong shape.

    Parameters
    ----------
    idata
        A fit from :func:`~cytoviz.psychometric.fit_observers` or
        :func:`~cytoviz.psychometric.hierarchical.fit_hierarchical`.

    Returns
    -------
    pandas.DataFrame
        Columns ``observer``, ``x``, ``k``, ``n``, ``psi`` (the fitted proportion correct)
        and ``residual``.
    """
    rows = []
    for obs in observers(idata):
        data = observer_data(idata, obs)
        psi = _point_psi(idata, obs)
        d = np.array([_deviance(data.k[i:i + 1], data.n[i:i + 1], psi[i:i + 1])
                      for i in range(len(data))])
        res = np.sign(data.k - data.n * psi) * np.sqrt(np.maximum(d, 0.0))
        rows.append(pd.DataFrame({"observer": obs, "x": data.x, "k": data.k, "n": data.n,
                                  "psi": psi, "residual": res}))
    return pd.concat(rows, ignore_index=True)
