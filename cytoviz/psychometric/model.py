"""The Bayesian psychometric function (psignifit 4 conventions) as one vectorised PyMC model.

psi(x) = gamma + (1 - lambda - gamma) S(x; m, w), with the logistic S of psignifit
(METHOD.md section 5): S(m) = PC and ``w`` is the distance between the alpha and 1 - alpha
points of S. Any number of observers are fitted in ONE model (one compile, one NUTS run); each
has its own priors, computed from its own stimulus levels.

Priors (per observer, from its non-empty levels x: s0 = min x, s1 = max x, r = s1 - s0,
wmin = smallest gap between sorted unique x):

- threshold m: 1 on [s0, s1], cosine fall-offs to 0 over r/2 on both sides;
- width w: 0.5 - 0.5 cos(pi (w - wmin) / wmin) on [wmin, 2 wmin], 1 on [2 wmin, r],
  0.5 + 0.5 cos(pi (w - r) / (2 r)) on [r, 3 r];
- lambda: Beta(1, 10) renormalised on [0, 0.5];
- eta: Beta(1, 10) on [0, 1); beta-binomial likelihood with nu = 1 / eta^2 - 1, binomial
  where eta^2 <= 1e-9;
- gamma fixed (1/K).

Each bounded prior is a ``pm.Uniform`` on its support plus a ``pm.Potential`` holding the log
of its shape, so NUTS works on the usual interval (logit) transform.

Differences from psignifit 4.3 (Python), read from its source:

- psignifit rescales the width prior by (z(.95) - z(.05)) / (z(1 - alpha) - z(alpha)) (normal
  quantiles) when ``width_alpha`` is not 0.05; cytoviz follows METHOD.md (no rescaling). For
  the default alpha = 0.05 the two are identical.
- psignifit takes the stimulus range and ``width_min`` from every row it is given, including
  rows with zero trials; cytoviz drops empty rows first (so the two agree when psignifit is
  given the same non-empty rows, as the binning here always produces).
- psignifit integrates the posterior on a grid whose bounds it first narrows to the cells
  holding more than 1e-5 of the mass, and reads interval bounds from the cumulative sum of the
  marginal on that grid (biased by about half a grid step); cytoviz samples the continuous
  posterior with NUTS and reports sample quantiles.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from cytoviz._config import Config
from cytoviz.psychometric.binning import PsychometricData, as_psychometric_data

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az
    import pymc as pm

__all__ = [
    "CompiledModels",
    "PsychometricConfig",
    "build_model",
    "config_from_idata",
    "eta_prior",
    "fit",
    "fit_observers",
    "lambda_prior",
    "log_likelihood_rows",
    "log_posterior",
    "observer_data",
    "prior_settings",
    "psychometric_function",
    "sigmoid",
    "simulate_xkn",
    "threshold_prior",
    "width_prior",
]

ETA_BINOMIAL = 1e-9  # eta^2 at or below which the likelihood is binomial (as psignifit)
#: The posterior engines of :class:`PsychometricConfig` (``engine``).
ENGINES = ("nuts", "grid")
#: The model's parameters per observer, in order (``eta`` only sampled with overdispersion).
PARAMETERS: tuple[str, ...] = ("threshold", "width", "lambda", "eta")


@dataclasses.dataclass(frozen=True)
class PsychometricConfig(Config):
    """Settings of the psychometric model and its sampler.

    Parameters
    ----------
    gamma
        Fixed guess rate (1/K for K classes; 0.1 in the paper).
    alpha
        Width convention: ``w`` spans the alpha .. 1 - alpha points of S.
    pc
        S(m) = pc: the threshold's percent correct on the unscaled sigmoid.
    eta
        Beta-binomial overdispersion (psignifit's default); False for a binomial likelihood.
    draws, tune, chains
        NUTS draws kept and tuning steps per chain, and the number of chains.
    cores
        Processes for the chains (1 keeps CPU use modest; chains then run one after another).
    target_accept
        NUTS target acceptance rate.
    seed
        Random seed (sampling is reproducible for a given seed).
    progressbar
        Show PyMC's progress bar.
    mcse_target
        Largest Monte-Carlo standard error allowed for the bounds of the 95 % intervals of the
        threshold and the width. When the first ``draws`` leave a larger one, the fit is
        sampled again with ``draws * (error / target)^2`` (times 1.2, at most ``max_draws``)
        draws per chain, and again (up to three resamples) while the error estimated from the
        new draws still misses the target; the draws used and the error reached are in
        ``posterior.attrs``.
        ``None`` keeps ``draws`` as given (quick looks, widgets, tests).
    max_draws
        Cap of the draws per chain that ``mcse_target`` may ask for.
    reuse_compiled
        Reuse a compiled model and NUTS step (via ``pm.set_data``) from the
        :class:`CompiledModels` passed to :func:`fit_observers` as ``cache=``: only the first
        fit with the same number of observers and model settings pays for compilation.
        ``False`` compiles every fit afresh even when a cache is given.
    engine
        ``"nuts"`` (default): PyMC's NUTS samples the posterior. ``"grid"`` (opt-in): the
        posterior is summed on a grid as psignifit does (:mod:`cytoviz.psychometric.grid`),
        then sampled independently; no compilation, and ``tune``, ``target_accept`` and
        ``reuse_compiled`` do not apply. The hierarchical fit always uses NUTS.
    grid_steps
        Cells per axis (threshold, width, lambda, eta) of the grid engine's final grid. The
        default was chosen among five sizes by their largest difference from psignifit's fine
        grid and their time, on six simulated data sets that no test and no other benchmark
        uses (``benchmarks/psychometric_grid_steps.py``).
    """

    gamma: float = 0.1
    alpha: float = 0.05
    pc: float = 0.5
    eta: bool = True
    draws: int = 1000
    tune: int = 1000
    chains: int = 2
    cores: int = 1
    target_accept: float = 0.9
    seed: int = 0
    progressbar: bool = False
    mcse_target: float | None = 0.01
    max_draws: int = 20000
    reuse_compiled: bool = True
    engine: str = "nuts"
    grid_steps: tuple[int, int, int, int] = (40, 40, 10, 10)

    def validate(self) -> None:
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma must be in [0, 1) (1/K for K classes), got {self.gamma}")
        if not 0.0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5) (psignifit uses 0.05), got {self.alpha}")
        if not 0.0 < self.pc < 1.0:
            raise ValueError(f"pc must be in (0, 1), got {self.pc}")
        for name in ("draws", "tune", "chains", "cores"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "tune" else 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.mcse_target is not None and not self.mcse_target > 0:
            raise ValueError(f"mcse_target must be > 0 or None, got {self.mcse_target}")
        if not isinstance(self.max_draws, int) or self.max_draws < self.draws:
            raise ValueError(f"max_draws must be an integer >= draws ({self.draws}), got "
                             f"{self.max_draws!r}")
        if not 0.5 <= self.target_accept < 1.0:
            raise ValueError(f"target_accept must be in [0.5, 1), got {self.target_accept}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if len(self.grid_steps) != 4 or not all(isinstance(s, int) and s >= 2
                                                for s in self.grid_steps):
            raise ValueError("grid_steps must be 4 integers >= 2 (cells of threshold, width, "
                             f"lambda, eta), got {self.grid_steps!r}")


# ---------------------------------------------------------------------------------------------
# NumPy versions of the model's pieces (used by summaries, plots and tests)


def sigmoid(x: Any, m: Any, w: Any, *, alpha: float = 0.05, pc: float = 0.5) -> np.ndarray:
    """psignifit's logistic S(x; m, w): S(m) = pc, w spans the alpha .. 1 - alpha points.

    Parameters
    ----------
    x
        Stimulus levels.
    m, w
        Threshold and width (broadcast against ``x``).
    alpha
        The width ``w`` spans the ``alpha`` to ``1 - alpha`` points of the sigmoid.
    pc
        The sigmoid's value at the threshold ``m``.
    """
    x, m, w = np.asarray(x, float), np.asarray(m, float), np.asarray(w, float)
    z = 2.0 * math.log(1.0 / alpha - 1.0) * (x - m) / w - math.log(1.0 / pc - 1.0)
    return 1.0 / (1.0 + np.exp(-z))


def psychometric_function(
    x: Any, m: Any, w: Any, *, lam: Any, gamma: float, alpha: float = 0.05, pc: float = 0.5
) -> np.ndarray:
    """psi = gamma + (1 - lambda - gamma) S(x; m, w).

    Parameters
    ----------
    x
        Stimulus levels.
    m, w
        Threshold and width of the sigmoid :func:`sigmoid` (broadcast against ``x``).
    lam
        Lapse rate ``lambda`` (the upper asymptote is ``1 - lam``).
    gamma
        Guess rate (the lower asymptote).
    alpha, pc
        The sigmoid's width convention and value at the threshold (see :func:`sigmoid`).
    """
    return gamma + (1.0 - np.asarray(lam) - gamma) * sigmoid(x, m, w, alpha=alpha, pc=pc)


def prior_settings(data: PsychometricData) -> dict[str, float]:
    """Stimulus range and prior bounds of one observer (from its non-empty levels)."""
    s0, s1 = data.stimulus_range
    r = s1 - s0
    wmin = data.width_min
    return {
        "s0": s0, "s1": s1, "range": r, "wmin": wmin,
        "threshold_lower": s0 - r / 2, "threshold_upper": s1 + r / 2,
        "width_lower": wmin, "width_upper": 3 * r,
    }


def threshold_prior(m: Any, s0: float, s1: float) -> np.ndarray:
    """Unnormalised threshold prior density (METHOD.md section 5)."""
    m = np.asarray(m, float)
    r = s1 - s0
    d = np.maximum(s0 - m, 0.0) + np.maximum(m - s1, 0.0)
    p = 0.5 + 0.5 * np.cos(2 * np.pi * np.minimum(d, r / 2) / r)
    return np.where(d <= r / 2, p, 0.0)


def width_prior(w: Any, wmin: float, r: float) -> np.ndarray:
    """Unnormalised width prior density (METHOD.md section 5)."""
    w = np.asarray(w, float)
    left = 0.5 - 0.5 * np.cos(np.pi * np.clip(w - wmin, 0.0, wmin) / wmin)
    right = 0.5 + 0.5 * np.cos(np.pi * np.clip(w - r, 0.0, 2 * r) / (2 * r))
    p = np.where(w >= r, right, left)
    return np.where((w >= wmin) & (w <= 3 * r), p, 0.0)


def lambda_prior(lam: Any) -> np.ndarray:
    """Lapse prior: Beta(1, 10) renormalised on [0, 0.5]."""
    from scipy import stats

    lam = np.asarray(lam, float)
    z = stats.beta.cdf(0.5, 1, 10)
    return np.where((lam >= 0) & (lam <= 0.5), stats.beta.pdf(lam, 1, 10) / z, 0.0)


# ---------------------------------------------------------------------------------------------
# The PyMC model


def _likelihood(psi: Any, idx_d: Any, n_d: Any, k_d: Any, config: PsychometricConfig) -> None:
    """The observed ``k``: beta-binomial with per-observer ``eta`` (psignifit), or binomial.

    Called inside a model context; adds ``eta`` (dimension ``observer``) when ``config.eta``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    if config.eta:
        eta = pm.Beta("eta", alpha=1.0, beta=10.0, dims="observer")
        eta2 = eta[idx_d] ** 2
        nu = 1.0 / pt.maximum(eta2, ETA_BINOMIAL) - 1.0

        def logp(value, psi, nu, eta2, n):
            binom = value * pt.log(psi) + (n - value) * pt.log1p(-psi)
            a, b = psi * nu, (1.0 - psi) * nu
            bb = (pt.gammaln(value + a) + pt.gammaln(n - value + b) - pt.gammaln(n + nu)
                  - pt.gammaln(a) - pt.gammaln(b) + pt.gammaln(nu))
            comb = pt.gammaln(n + 1) - pt.gammaln(value + 1) - pt.gammaln(n - value + 1)
            return comb + pt.switch(eta2 <= ETA_BINOMIAL, binom, bb)

        pm.CustomDist("k", psi, nu, eta2, n_d, logp=logp, observed=k_d, dims="row")
    else:
        pm.Binomial("k", n=n_d, p=psi, observed=k_d, dims="row")


#: How often :func:`_sample` may resample to reach ``PsychometricConfig.mcse_target``.
MAX_RESAMPLES = 3


def _sample(model: Any, step: Any, config: PsychometricConfig, *,
            log_likelihood: bool = False) -> tuple[az.InferenceData, int, float]:
    """Sample ``model`` with NUTS; see :func:`_sample_to_target`."""
    import pymc as pm

    def run(draws: int) -> az.InferenceData:
        with model:
            idata = pm.sample(
                step=step, draws=draws, tune=config.tune, chains=config.chains,
                cores=config.cores, random_seed=config.seed,
                progressbar=config.progressbar, compute_convergence_checks=False,
                idata_kwargs={"log_likelihood": False},
            )
            if log_likelihood:
                pm.compute_log_likelihood(idata, var_names=["k"], progressbar=False)
        return idata

    return _sample_to_target(run, config)


def _sample_to_target(run: Any, config: PsychometricConfig) -> tuple[az.InferenceData, int,
                                                                       float]:
    """``run(draws)``; with ``config.mcse_target``, again with enough draws to meet it.

    Returns the fit, the draws per chain used and the largest Monte-Carlo error of the 95 %
    interval bounds of threshold and width.
    """
    draws = config.draws
    idata = run(draws)
    error = _largest_bound_error(idata)
    # The error falls as 1 / sqrt(draws), but its estimate from the first run is noisy: when
    # the resampled fit still misses the target, ask again (at most MAX_RESAMPLES times).
    for _ in range(MAX_RESAMPLES):
        if config.mcse_target is None or not error > config.mcse_target or draws >= config.max_draws:
            break
        draws = min(config.max_draws,
                    max(draws + 1, math.ceil(1.2 * draws * (error / config.mcse_target) ** 2)))
        idata = run(draws)
        error = _largest_bound_error(idata)
    return idata, draws, error


def _coerce_observers(data: Mapping[str, Any]) -> dict[str, PsychometricData]:
    if not isinstance(data, Mapping) or len(data) == 0:
        raise ValueError("data must be a non-empty mapping observer name -> (x, k, n)")
    return {str(name): as_psychometric_data(d, name=str(name)) for name, d in data.items()}


def _gammas(observers: Mapping[str, Any], config: PsychometricConfig,
            gamma: float | Mapping[str, float] | None) -> np.ndarray:
    """The guess rate of each observer: ``gamma`` (one value or observer -> value), else the
    config's."""
    if gamma is None:
        values = [config.gamma] * len(observers)
    elif isinstance(gamma, Mapping):
        unknown = sorted(set(map(str, gamma)) - set(observers))
        if unknown:
            raise ValueError(f"gamma names unknown observer(s) {unknown}; observers are "
                             f"{list(observers)}")
        values = [float(gamma.get(name, config.gamma)) for name in observers]
    else:
        values = [float(gamma)] * len(observers)
    for name, g in zip(observers, values, strict=True):
        if not 0.0 <= g < 1.0:
            raise ValueError(f"gamma of observer {name!r} must be in [0, 1) (1/K for K "
                             f"classes), got {g}")
    return np.asarray(values, dtype=float)


def _model_inputs(
    observers: dict[str, PsychometricData], gammas: np.ndarray | None = None,
) -> tuple[list[dict[str, float]], dict[str, np.ndarray]]:
    """Per-observer prior settings and the pm.Data arrays of the model."""
    settings = [prior_settings(d) for d in observers.values()]
    if gammas is None:
        gammas = np.full(len(observers), PsychometricConfig().gamma)
    arrays = {
        "x": np.concatenate([d.x for d in observers.values()]),
        "k_observed": np.concatenate([d.k for d in observers.values()]),
        "n": np.concatenate([d.n for d in observers.values()]),
        "observer_index": np.concatenate(
            [np.full(len(d), i) for i, d in enumerate(observers.values())]),
        "s0": np.array([s["s0"] for s in settings]),
        "s1": np.array([s["s1"] for s in settings]),
        "stimulus_range": np.array([s["range"] for s in settings]),
        "wmin": np.array([s["wmin"] for s in settings]),
        "gamma": np.asarray(gammas, dtype=float),
    }
    return settings, arrays


class CompiledModels:
    """Compiled psychometric models and their NUTS steps, kept for reuse across fits.

    Compiling the model and its NUTS step costs more than sampling a small fit. Pass one
    instance as ``cache=`` to :func:`fit_observers` (a notebook, a widget or a benchmark owns
    one) and every later fit with the same number of observers and the same model settings
    (``eta``, ``alpha``, ``pc``, ``target_accept``) reuses the compiled model: new data, and
    new guess rates, enter through ``pm.set_data``. Drop the instance to forget them.

    Examples
    --------
    >>> cache = CompiledModels()
    >>> len(cache)
    0
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[Any, ...], tuple[pm.Model, Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"CompiledModels({len(self)} compiled)"

    def model_and_step(
        self, data: Mapping[str, Any], config: PsychometricConfig | None = None, *,
        gamma: float | Mapping[str, float] | None = None,
    ) -> tuple[pm.Model, Any]:
        """The model holding ``data`` and its NUTS step: reused when compiled before, else built.

        Parameters
        ----------
        data
            Observer name -> ``(x, k, n)``, as for :func:`fit_observers`.
        config
            Model settings (defaults: :class:`PsychometricConfig`).
        gamma
            Guess rate of every observer, or observer -> guess rate (default
            ``config.gamma``).
        """
        import pymc as pm

        config = config or PsychometricConfig()
        observers = _coerce_observers(data)
        gammas = _gammas(observers, config, gamma)
        # What a compiled model depends on besides the data (the guess rates are data).
        key = (len(observers), config.eta, config.alpha, config.pc, config.target_accept)
        if key in self._entries:
            model, step = self._entries[key]
            _, arrays = _model_inputs(observers, gammas)
            with model:
                pm.set_data(arrays, coords={"observer": list(observers),
                                            "row": np.arange(len(arrays["x"]))})
            return model, step
        model, step = _build_with_step(observers, config, gammas)
        self._entries[key] = (model, step)
        return model, step


def _build_with_step(observers: dict[str, PsychometricData], config: PsychometricConfig,
                     gammas: np.ndarray) -> tuple[pm.Model, Any]:
    import pymc as pm

    model = build_model(observers, config, gamma=dict(zip(observers, gammas, strict=True)))
    with model:
        step = pm.NUTS(target_accept=config.target_accept)
    return model, step


def build_model(data: Mapping[str, Any], config: PsychometricConfig | None = None, *,
                gamma: float | Mapping[str, float] | None = None) -> pm.Model:
    """Build the vectorised PyMC model for one or more observers (not sampled).

    Parameters
    ----------
    data
        Observer name -> ``(x, k, n)`` (tuple, DataFrame with columns x, k, n, or
        :class:`~cytoviz.psychometric.binning.PsychometricData`).
    config
        Model settings (defaults: :class:`PsychometricConfig`).
    gamma
        Guess rate of every observer, or observer -> guess rate (default ``config.gamma``);
        held as data (``pm.Data("gamma")``), so a new guess rate needs no recompilation.

    Returns
    -------
    pymc.Model
        Free variables ``threshold``, ``width``, ``lambda`` and (if ``config.eta``) ``eta``,
        each with dimension ``observer``; observed ``k`` over the concatenated rows (dimension
        ``row``), with ``observer_index``, ``x`` and ``n`` as data.
    """
    import pymc as pm
    import pytensor.tensor as pt

    config = config or PsychometricConfig()
    observers = _coerce_observers(data)
    names = list(observers)
    settings, arrays = _model_inputs(observers, _gammas(observers, config, gamma))
    x, k, n, idx = arrays["x"], arrays["k_observed"], arrays["n"], arrays["observer_index"]
    col = {key: np.array([s[key] for s in settings]) for key in settings[0]}

    coords = {"observer": names, "row": np.arange(len(x))}
    a_scale = 2.0 * math.log(1.0 / config.alpha - 1.0)
    a_shift = math.log(1.0 / config.pc - 1.0)
    with pm.Model(coords=coords) as model:
        x_d = pm.Data("x", x, dims="row")
        n_d = pm.Data("n", n, dims="row")
        idx_d = pm.Data("observer_index", idx, dims="row")
        k_d = pm.Data("k_observed", k, dims="row")
        # Every number that depends on the data is pm.Data (a shared variable), so the
        # compiled C code is reused from pytensor's cache for any data of any size.
        s0 = pm.Data("s0", col["s0"], dims="observer")
        s1 = pm.Data("s1", col["s1"], dims="observer")
        r = pm.Data("stimulus_range", col["range"], dims="observer")
        wmin = pm.Data("wmin", col["wmin"], dims="observer")
        gamma = pm.Data("gamma", arrays["gamma"], dims="observer")[idx_d]

        m = pm.Uniform("threshold", lower=s0 - r / 2, upper=s1 + r / 2, dims="observer")
        w = pm.Uniform("width", lower=wmin, upper=3 * r, dims="observer")
        lam = pm.Uniform("lambda", lower=0.0, upper=0.5, dims="observer")

        # Prior shapes (the Uniforms' supports are the priors' supports).
        d = pt.maximum(s0 - m, 0.0) + pt.maximum(m - s1, 0.0)
        pm.Potential("threshold_prior", pt.log(0.5 + 0.5 * pt.cos(2 * np.pi * d / r)))
        left = 0.5 - 0.5 * pt.cos(np.pi * pt.clip(w - wmin, 0.0, wmin) / wmin)
        right = 0.5 + 0.5 * pt.cos(np.pi * pt.clip(w - r, 0.0, 2 * r) / (2 * r))
        pm.Potential("width_prior", pt.log(pt.switch(w >= r, right, left)))
        pm.Potential("lambda_prior", 9.0 * pt.log1p(-lam))  # Beta(1, 10) shape

        z = a_scale * (x_d - m[idx_d]) / w[idx_d] - a_shift
        psi = gamma + (1.0 - lam[idx_d] - gamma) * pt.sigmoid(z)
        _likelihood(psi, idx_d, n_d, k_d, config)
    return model


def fit_observers(
    data: Mapping[str, Any], config: PsychometricConfig | None = None, *,
    cache: CompiledModels | None = None, gamma: float | Mapping[str, float] | None = None,
    log_likelihood: bool = False,
) -> az.InferenceData:
    """Fit the psychometric function to several observers in one vectorised PyMC model.

    Parameters
    ----------
    data
        Observer name -> ``(x, k, n)`` (tuple, DataFrame with columns x, k, n, or
        :class:`~cytoviz.psychometric.binning.PsychometricData`). Rows with ``n = 0`` are
        dropped; each observer's priors come from its own remaining levels.
    config
        Model and sampler settings; ``config.engine`` picks PyMC's NUTS (default) or the grid
        posterior of :mod:`cytoviz.psychometric.grid`.
    cache
        Compiled models to reuse and to add to (see :class:`CompiledModels`); without one,
        or with ``config.reuse_compiled=False``, the model is compiled for this fit only.
    gamma
        Guess rate of every observer, or observer -> guess rate (observers not named keep
        ``config.gamma``): observers with different numbers of response options fit in one
        call, and a new guess rate reuses the compiled model.
    log_likelihood
        Also store the pointwise log-likelihood of every row (for ArviZ LOO, as in
        :func:`cytoviz.psychometric.hierarchical.compare_pooling`).

    Returns
    -------
    arviz.InferenceData
        ``posterior`` (threshold, width, lambda, eta with dimension ``observer``),
        ``observed_data`` (k per row), ``constant_data`` (x, n, observer_index per row, and
        the prior bounds per observer), ``sample_stats``; ``posterior.attrs`` hold the config
        (JSON), the model convention and the sampling wall time.
    """
    import xarray as xr

    config = config or PsychometricConfig()
    observers = _coerce_observers(data)
    gammas = _gammas(observers, config, gamma)
    t0 = time.perf_counter()
    if config.engine == "grid":
        from cytoviz.psychometric.grid import grid_draws, pointwise_log_likelihood

        idata, draws, error = _sample_to_target(grid_draws(observers, gammas, config), config)
        if log_likelihood:
            idata.add_groups(log_likelihood=pointwise_log_likelihood(idata, config))
    else:
        if cache is not None and config.reuse_compiled:
            per_observer = dict(zip(observers, gammas, strict=True))
            model, step = cache.model_and_step(observers, config, gamma=per_observer)
        else:
            model, step = _build_with_step(observers, config, gammas)
        idata, draws, error = _sample(model, step, config, log_likelihood=log_likelihood)
    wall = time.perf_counter() - t0
    settings, _ = _model_inputs(observers, gammas)
    names = list(observers)
    skip = {"s0", "s1", "range", "wmin"}  # already in constant_data from pm.Data
    prior_ds = xr.Dataset(
        {key: ("observer", np.array([s[key] for s in settings]))
         for key in settings[0] if key not in skip},
        coords={"observer": names},
    )
    idata.constant_data = xr.merge([idata.constant_data, prior_ds])
    attrs = {
        "cytoviz_model": "psychometric (psignifit 4 conventions, logistic)",
        "cytoviz_config": json.dumps(config.to_dict()),
        "gamma": config.gamma, "alpha": config.alpha, "pc": config.pc, "eta": int(config.eta),
        "sampling_wall_s": wall, "draws_used": draws, "mcse_bounds_max": error,
    }
    idata.posterior.attrs.update(attrs)
    return idata


def _largest_bound_error(idata: az.InferenceData) -> float:
    """The largest Monte-Carlo error of the 95 % interval bounds of threshold and width."""
    from cytoviz.psychometric.summary import monte_carlo_errors

    errors = [max(lo, hi) for (_, p), (lo, hi, _) in monte_carlo_errors(idata).items()
              if p in ("threshold", "width")]
    return float(np.nanmax(errors)) if errors else float("nan")


def fit(x: Any, k: Any, n: Any, *, config: PsychometricConfig | None = None,
        name: str = "observer", cache: CompiledModels | None = None) -> az.InferenceData:
    """Fit one observer's ``(x, k, n)`` rows; see :func:`fit_observers`.

    Parameters
    ----------
    x, k, n
        Stimulus levels, number correct and number of trials (equal lengths).
    config
        Model and sampler settings (default :class:`PsychometricConfig`).
    name
        The observer's name (its coordinate in the posterior).
    cache
        Compiled models to reuse and to add to (see :class:`CompiledModels`).

    Returns
    -------
    arviz.InferenceData
        As :func:`fit_observers`, with one observer.
    """
    return fit_observers({name: (x, k, n)}, config, cache=cache)


def config_from_idata(idata: az.InferenceData) -> PsychometricConfig:
    """The :class:`PsychometricConfig` a fit was made with."""
    return PsychometricConfig.from_dict(json.loads(idata.posterior.attrs["cytoviz_config"]))


def observer_config(idata: az.InferenceData, observer: str) -> PsychometricConfig:
    """The config of a fit with ``gamma`` set to this observer's guess rate.

    Fits made before the guess rate became data carry only the config's ``gamma``.
    """
    config = config_from_idata(idata)
    cd = idata.constant_data
    if "gamma" not in cd:
        return config
    names = [str(v) for v in idata.posterior["observer"].values]
    if observer not in names:
        raise KeyError(f"observer {observer!r} not in this fit; observers are {names}")
    gamma = cd["gamma"].values
    return config.replace(gamma=float(gamma[names.index(observer)]))


def observer_data(idata: az.InferenceData, observer: str) -> PsychometricData:
    """The ``(x, k, n)`` rows of one observer, read back from a fit."""
    names = [str(v) for v in idata.posterior["observer"].values]
    if observer not in names:
        raise KeyError(f"observer {observer!r} not in this fit; observers are {names}")
    i = names.index(observer)
    cd = idata.constant_data
    sel = cd["observer_index"].values == i
    return PsychometricData(x=cd["x"].values[sel], k=idata.observed_data["k"].values[sel],
                            n=cd["n"].values[sel])


def log_likelihood_rows(psi: Any, k: Any, n: Any, eta: Any = 0.0, *,
                        overdispersed: bool = True) -> np.ndarray:
    """Log-likelihood of each row's ``k`` of ``n`` at ``psi``, in NumPy (broadcasting).

    Beta-binomial with overdispersion ``eta`` (psignifit: nu = 1 / eta^2 - 1), binomial where
    ``eta^2 <= 1e-9`` or when ``overdispersed`` is False; binomial coefficient included. The
    arguments broadcast, and each term is computed at the shape of the arguments it needs (the
    grid engine passes ``eta`` on its own axis).
    """
    from scipy.special import gammaln

    psi, k, n, eta = (np.asarray(v, float) for v in (psi, k, n, eta))
    comb = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta2 = eta**2
        binomial = eta2 <= ETA_BINOMIAL
        if not overdispersed or np.all(binomial):
            return comb + k * np.log(psi) + (n - k) * np.log1p(-psi)
        nu = 1.0 / np.maximum(eta2, ETA_BINOMIAL) - 1.0
        a, b = psi * nu, (1 - psi) * nu
        bb = (gammaln(k + a) - gammaln(a) + gammaln(n - k + b) - gammaln(b)
              - (gammaln(n + nu) - gammaln(nu)))
        if not np.any(binomial):
            return comb + bb
        binom = k * np.log(psi) + (n - k) * np.log1p(-psi)
        return comb + np.where(binomial, binom, bb)


def eta_prior(eta: Any) -> np.ndarray:
    """Overdispersion prior: Beta(1, 10) on [0, 1)."""
    eta = np.asarray(eta, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((eta >= 0) & (eta < 1), 10.0 * (1.0 - eta) ** 9, 0.0)


def log_posterior(
    m: Any, w: Any, lam: Any, eta: Any, data: PsychometricData,
    config: PsychometricConfig | None = None,
) -> np.ndarray:
    """Unnormalised log posterior of one observer, in NumPy (vectorised over parameters).

    The same density as :func:`build_model` (untransformed, so its maximum is the MAP).
    ``eta`` is ignored when ``config.eta`` is False. Outside the priors' supports it is -inf.
    """
    config = config or PsychometricConfig()
    s = prior_settings(data)
    m, w, lam, eta = np.broadcast_arrays(*(np.asarray(v, float) for v in (m, w, lam, eta)))
    shape = m.shape
    m, w, lam, eta = (v.reshape(-1, 1) for v in (m, w, lam, eta))
    with np.errstate(divide="ignore", invalid="ignore"):
        psi = psychometric_function(data.x[None], m, w, lam=lam, gamma=config.gamma,
                                    alpha=config.alpha, pc=config.pc)
        ll = log_likelihood_rows(psi, data.k[None], data.n[None], eta,
                                 overdispersed=config.eta).sum(-1)
        if config.eta:
            ll = ll + np.log(eta_prior(eta[:, 0]))
        lp = (ll + np.log(threshold_prior(m[:, 0], s["s0"], s["s1"]))
              + np.log(width_prior(w[:, 0], s["wmin"], s["range"]))
              + np.log(lambda_prior(lam[:, 0])))
    lp = np.where(np.isnan(lp), -np.inf, lp)
    return lp.reshape(shape)


def simulate_xkn(
    threshold: float, width: float, lam: float = 0.02, *, gamma: float = 0.1, n_bins: int = 25,
    n_per_level: int | tuple[int, int] = 40, eta: float = 0.0, alpha: float = 0.05,
    pc: float = 0.5, seed: int = 0,
) -> PsychometricData:
    """Simulated ``(x, k, n)`` at ``n_bins`` equal-width bin centres on [0, 1].

    Parameters
    ----------
    threshold, width, lam
        The true threshold ``m``, width ``w`` and lapse rate ``lambda``.
    gamma
        Guess rate.
    n_bins
        Number of stimulus levels (bin centres on [0, 1]).
    n_per_level
        A fixed number of trials per level, or a ``(low, high)`` range drawn uniformly per
        level.
    eta
        ``eta > 0`` adds beta-binomial overdispersion (psignifit's parameterisation).
    alpha, pc
        The sigmoid's width convention and value at the threshold (see :func:`sigmoid`).
    seed
        Seed of the trial counts and the responses.
    """
    rng = np.random.default_rng(seed)
    x = (np.arange(n_bins) + 0.5) / n_bins
    if isinstance(n_per_level, tuple):
        n = rng.integers(n_per_level[0], n_per_level[1] + 1, n_bins)
    else:
        n = np.full(n_bins, int(n_per_level))
    p = psychometric_function(x, threshold, width, lam=lam, gamma=gamma, alpha=alpha, pc=pc)
    if eta > 0:
        nu = 1 / eta**2 - 1
        p = rng.beta(p * nu, (1 - p) * nu)
    return PsychometricData(x=x, k=rng.binomial(n, p).astype(np.int64), n=n.astype(np.int64))
