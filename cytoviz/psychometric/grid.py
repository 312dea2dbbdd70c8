"""The grid engine: the posterior summed on a grid, as psignifit does, instead of NUTS.

psignifit 4 does not sample. It evaluates the posterior on a grid of (threshold, width,
lambda, eta), narrowed to where the mass is, and sums. ``PsychometricConfig(engine="grid")``
does the same with cytoviz's density (the priors of METHOD.md section 5 and
:func:`~cytoviz.psychometric.model.log_likelihood_rows`), then draws independent samples from
the grid, so every summary, plot and check that reads posterior draws works unchanged. It is
deterministic for a given seed, needs no compilation and is an opt-in: the default engine is
PyMC's NUTS, and ``benchmarks/psychometric_vs_psignifit.py`` measures both against psignifit.

How the grid is placed, per observer:

1. a coarse grid of :data:`COARSE_STEPS` cells over the priors' supports;
2. the box of cells whose marginal mass exceeds :data:`BORDER_MASS` on each axis, one cell
   wider on each side; a coarse grid on that box, and its box again, until no axis shrinks
   below :data:`SETTLED` of its width (at most :data:`MAX_NARROWING` passes: a posterior
   concentrated in a few coarse cells, as with thousands of trials per level, needs several);
3. the final grid of ``config.grid_steps`` cells on that box.

The posterior is taken as constant inside a cell (its value at the centre: the midpoint
rule). A draw picks a cell by its mass and a uniform point inside it.

Differences from psignifit 4.3 (read from its source): psignifit narrows its grid once, from
its own coarse steps, keeps cells above 1e-5 of the mass, spaces some axes unevenly and reads
interval bounds from the cumulative sum of the marginal on its grid's points (biased by about
half a grid step); here the box is narrowed until it settles and the bounds are quantiles of
draws from the piecewise-constant posterior. With thousands of trials per level a single
narrowing can leave the posterior inside a few cells; ``tests/test_psychometric_grid.py``
checks such a case against NUTS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cytoviz.psychometric.binning import PsychometricData
from cytoviz.psychometric.model import (
    PARAMETERS,
    _model_inputs,
    eta_prior,
    lambda_prior,
    log_likelihood_rows,
    prior_settings,
    psychometric_function,
    threshold_prior,
    width_prior,
)

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az

    from cytoviz.psychometric.model import PsychometricConfig

__all__ = ["AXES", "BORDER_MASS", "COARSE_STEPS", "MAX_NARROWING", "SETTLED", "GridPosterior",
           "grid_draws", "grid_posterior", "pointwise_log_likelihood"]

#: The grid's axes, in order: the model's parameters (``model.PARAMETERS``).
AXES = PARAMETERS
#: Cells per axis of the coarse grids that place the final one.
COARSE_STEPS = (20, 20, 8, 8)
#: A cell of a coarse grid whose marginal mass on some axis is above this is inside the box.
BORDER_MASS = 1e-6
#: The box is settled when no axis shrank below this fraction of its width in the last pass.
SETTLED = 0.8
#: Most coarse passes (a very peaked posterior needs several to be resolved).
MAX_NARROWING = 10
#: Largest number of (cell, row) terms evaluated at once (bounds the memory to about 100 MB).
_CHUNK = 1_000_000


@dataclasses.dataclass(frozen=True)
class GridPosterior:
    """One observer's posterior on a regular grid of cells.

    Parameters
    ----------
    lower, upper
        The box: lower and upper bound of each axis of :data:`AXES` (equal for an axis that
        is fixed, as ``eta`` without overdispersion).
    log_mass
        Log of each cell's posterior mass (normalised: the masses sum to 1), shape
        ``(threshold, width, lambda, eta)`` cells.
    """

    lower: np.ndarray
    upper: np.ndarray
    log_mass: np.ndarray

    @property
    def steps(self) -> tuple[int, ...]:
        """Cells per axis."""
        return tuple(self.log_mass.shape)

    def edges(self, axis: int) -> np.ndarray:
        """The cell edges along ``axis`` (``steps[axis] + 1`` values)."""
        return np.linspace(self.lower[axis], self.upper[axis], self.steps[axis] + 1)

    def marginal(self, axis: int) -> np.ndarray:
        """Posterior mass of each cell along ``axis``."""
        others = tuple(i for i in range(len(AXES)) if i != axis)
        return np.exp(self.log_mass).sum(axis=others)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` independent draws, shape ``(n, 4)`` in the order of :data:`AXES`."""
        p = np.exp(self.log_mass.ravel())
        cells = rng.choice(p.size, size=n, p=p / p.sum())
        index = np.stack(np.unravel_index(cells, self.steps), axis=-1)
        step = (self.upper - self.lower) / np.asarray(self.steps)
        return self.lower + (index + rng.random((n, len(AXES)))) * step


def _centres(lower: np.ndarray, upper: np.ndarray, steps: Sequence[int]) -> list[np.ndarray]:
    return [lo + (np.arange(s) + 0.5) * (hi - lo) / s
            for lo, hi, s in zip(lower, upper, steps, strict=True)]


def _log_density(lower: np.ndarray, upper: np.ndarray, steps: Sequence[int],
                 data: PsychometricData, config: PsychometricConfig) -> np.ndarray:
    """The unnormalised log posterior at every cell centre, shape ``steps``."""
    s = prior_settings(data)
    m, w, lam, eta = _centres(lower, upper, steps)
    x, k, n = data.x, data.k, data.n
    with np.errstate(divide="ignore", invalid="ignore"):
        log_prior = (np.log(threshold_prior(m, s["s0"], s["s1"]))[:, None, None, None]
                     + np.log(width_prior(w, s["wmin"], s["range"]))[None, :, None, None]
                     + np.log(lambda_prior(lam))[None, None, :, None])
        if config.eta:
            log_prior = log_prior + np.log(eta_prior(eta))[None, None, None, :]
    out = np.empty(tuple(steps))
    per_threshold = int(np.prod(steps[1:])) * len(x)
    chunk = max(1, _CHUNK // per_threshold)
    eta_axis = eta[None, None, None, :, None]
    for i in range(0, len(m), chunk):
        mm = m[i:i + chunk, None, None, None, None]
        psi = psychometric_function(x, mm, w[None, :, None, None, None],
                                    lam=lam[None, None, :, None, None], gamma=config.gamma,
                                    alpha=config.alpha, pc=config.pc)
        out[i:i + chunk] = log_likelihood_rows(psi, k, n, eta_axis,
                                               overdispersed=config.eta).sum(-1)
    out = out + log_prior
    return np.where(np.isnan(out), -np.inf, out)


def _normalised(log_density: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                data_name: str) -> GridPosterior:
    top = np.max(log_density)
    if not np.isfinite(top):
        raise ValueError(f"observer {data_name!r}: the posterior is zero on the whole grid "
                         "(check that k <= n and that the stimulus levels are finite)")
    log_mass = log_density - top
    log_mass = log_mass - np.log(np.exp(log_mass).sum())
    return GridPosterior(lower=lower, upper=upper, log_mass=log_mass)


def _box(post: GridPosterior) -> tuple[np.ndarray, np.ndarray]:
    """The cells holding the mass on each axis, one cell wider on each side."""
    lower, upper = post.lower.copy(), post.upper.copy()
    for axis, steps in enumerate(post.steps):
        if steps == 1:
            continue
        inside = np.flatnonzero(post.marginal(axis) > BORDER_MASS)
        edges = post.edges(axis)
        lower[axis] = edges[max(inside[0] - 1, 0)]
        upper[axis] = edges[min(inside[-1] + 2, steps)]
    return lower, upper


def grid_posterior(data: PsychometricData, config: PsychometricConfig, *,
                   name: str = "observer") -> GridPosterior:
    """One observer's posterior on the final grid (``config.grid_steps`` cells per axis).

    Parameters
    ----------
    data
        The observer's ``(x, k, n)`` rows (non-empty).
    config
        Model settings; ``config.gamma`` is this observer's guess rate.
    name
        The observer's name, for error messages.
    """
    s = prior_settings(data)
    lower = np.array([s["threshold_lower"], s["width_lower"], 0.0, 0.0])
    upper = np.array([s["threshold_upper"], s["width_upper"], 0.5, 1.0 if config.eta else 0.0])
    fixed_eta = (1,) if not config.eta else ()

    def steps_of(steps: Sequence[int]) -> tuple[int, ...]:
        return tuple(steps[:3]) + (fixed_eta or (steps[3],))

    coarse = steps_of(COARSE_STEPS)
    for _ in range(MAX_NARROWING):
        post = _normalised(_log_density(lower, upper, coarse, data, config), lower, upper, name)
        new_lower, new_upper = _box(post)
        width = upper - lower
        shrink = np.where(width > 0, (new_upper - new_lower) / np.where(width > 0, width, 1.0),
                          1.0)  # a fixed axis (eta without overdispersion) is settled
        lower, upper = new_lower, new_upper
        if np.all(shrink > SETTLED):
            break
    final = steps_of(config.grid_steps)
    return _normalised(_log_density(lower, upper, final, data, config), lower, upper, name)


def grid_draws(observers: dict[str, PsychometricData], gammas: np.ndarray,
               config: PsychometricConfig) -> Any:
    """A function ``draws -> InferenceData`` that samples every observer's grid posterior.

    The grids are computed once; each call draws ``config.chains x draws`` independent samples
    per observer (seeded by ``config.seed`` and ``draws``) and returns ``posterior``,
    ``observed_data`` and ``constant_data`` shaped as a NUTS fit's.
    """
    import arviz as az

    posts = [grid_posterior(d, config.replace(gamma=float(g)), name=name)
             for (name, d), g in zip(observers.items(), gammas, strict=True)]
    names = list(observers)
    # the same pm.Data arrays a NUTS fit stores: per row, then per observer
    _, arrays = _model_inputs(observers, gammas)
    k = arrays["k_observed"]
    row_keys = ("x", "n", "observer_index", "k_observed")
    per_observer = {key: v for key, v in arrays.items() if key not in row_keys}

    def run(draws: int) -> az.InferenceData:
        rng = np.random.default_rng([config.seed, draws])
        samples = np.stack([p.sample(config.chains * draws, rng) for p in posts], axis=-1)
        samples = samples.reshape(config.chains, draws, len(AXES), len(posts))
        posterior = {axis: samples[:, :, i, :] for i, axis in enumerate(AXES)}
        if not config.eta:
            del posterior["eta"]
        return az.from_dict(
            posterior=posterior,
            observed_data={"k": k},
            constant_data=arrays,
            coords={"observer": names, "row": np.arange(len(k))},
            dims={**{axis: ["observer"] for axis in AXES}, "k": ["row"],
                  **{key: ["row"] for key in row_keys},
                  **{key: ["observer"] for key in per_observer}},
        )

    return run


def pointwise_log_likelihood(idata: az.InferenceData, config: PsychometricConfig) -> Any:
    """Each row's log-likelihood at every draw (the ``log_likelihood`` group of a fit)."""
    import xarray as xr

    post, cd = idata.posterior, idata.constant_data
    idx = cd["observer_index"].values
    params = {p: post[p].values[:, :, idx] for p in ("threshold", "width", "lambda")}
    eta = post["eta"].values[:, :, idx] if "eta" in post else 0.0
    gamma = cd["gamma"].values[idx]
    psi = psychometric_function(cd["x"].values, params["threshold"], params["width"],
                                lam=params["lambda"], gamma=gamma, alpha=config.alpha,
                                pc=config.pc)
    ll = log_likelihood_rows(psi, idata.observed_data["k"].values, cd["n"].values, eta,
                             overdispersed=config.eta)
    return xr.Dataset({"k": (("chain", "draw", "row"), ll)},
                      coords={"chain": post["chain"], "draw": post["draw"],
                              "row": cd["row"]})
