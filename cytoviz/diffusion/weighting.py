"""Timestep weighting of the classification error (METHOD.md section 1; paper supplement G).

The diffusion classifier compares ``w(t) * ||eps - eps_theta(z_t, t, c)||^2`` across classes. The
paper weights each trial by the reciprocal of a 4th-degree polynomial in ``s = (T - t) / T``
(``T = 1000``), fitted to the median over images of the across-class standard deviation of the
error. The alternatives of its ablation (Table 4) are offered as options:

``"polynomial"`` (default)
    ``w = 1 / f(s)`` with :data:`POLY_COEFFS` or coefficients refitted by :func:`fit_weighting`.
``"uniform"``
    ``w = 1``.
``"snr"``
    ``w = abar_t / (1 - abar_t)``, the signal-to-noise ratio of the forward process.
``"exp"``
    ``w = exp(-5.5 t / T)``.
``"normalise"``
    No weight; each trial's error row is standardised to mean 0, standard deviation 1 over the
    classes evaluated in that trial.
``"ranking"``
    No weight; each trial's error row is replaced by the ranks (0 = best) of the classes
    evaluated in that trial.
``"logistic"``
    ``w = beta_b`` for the bucket ``b`` of ``t`` among :data:`N_BUCKETS` equal buckets of
    ``[0, T)``, with ``beta`` fitted by logistic regression (:func:`fit_logistic_weighting`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "MULTIPLICATIVE",
    "N_BUCKETS",
    "POLY_COEFFS",
    "WEIGHTINGS",
    "fit_logistic_weighting",
    "fit_weighting",
    "poly_weight",
    "timestep_weights",
    "weight_errors",
]

#: The paper's polynomial f(s), coefficients in increasing order of the power of s.
POLY_COEFFS: tuple[float, ...] = (
    0.9270553940204841,
    9.836536887830196,
    -4.6840608002246205,
    6.018538389994896,
    -9.339786177681749,
)
#: Every weighting scheme, the default first.
WEIGHTINGS: tuple[str, ...] = (
    "polynomial", "uniform", "snr", "exp", "normalise", "ranking", "logistic"
)
#: Schemes that multiply the error by a per-trial weight w(t) (the others transform each trial row).
MULTIPLICATIVE: frozenset[str] = frozenset({"polynomial", "uniform", "snr", "exp", "logistic"})
#: Number of timestep buckets of the logistic-regression weighting.
N_BUCKETS = 20
#: Decay rate of the ``"exp"`` weighting, ``exp(-5.5 t)`` with ``t`` scaled to [0, 1].
EXP_RATE = 5.5


def _s(t: np.ndarray, num_train_timesteps: int) -> np.ndarray:
    return (num_train_timesteps - np.asarray(t, dtype=np.float64)) / num_train_timesteps


def poly_weight(t: np.ndarray | float, coeffs: Sequence[float] = POLY_COEFFS, *,
                num_train_timesteps: int = 1000) -> np.ndarray:
    """The polynomial weight ``w(t) = 1 / f(s)``, ``s = (T - t) / T``.

    Parameters
    ----------
    t
        Timesteps (``0 .. T-1``).
    coeffs
        Coefficients of ``f`` in increasing order of the power of ``s`` (the paper's by
        default).
    num_train_timesteps
        ``T``.
    """
    f = np.polynomial.polynomial.polyval(_s(t, num_train_timesteps), np.asarray(coeffs, float))
    return 1.0 / f


def timestep_weights(t: np.ndarray, scheme: str = "polynomial", *,
                     poly_coeffs: Sequence[float] = POLY_COEFFS,
                     bucket_weights: Sequence[float] | None = None,
                     alphas_cumprod: np.ndarray | None = None,
                     num_train_timesteps: int = 1000) -> np.ndarray:
    """Per-trial weights ``w(t)`` of a multiplicative scheme (see the module docstring).

    ``alphas_cumprod`` is needed for ``"snr"``; ``bucket_weights`` (length :data:`N_BUCKETS`)
    for ``"logistic"``. Raises a ``ValueError`` for ``"normalise"`` and ``"ranking"``, which
    have no weight; use :func:`weight_errors`.
    """
    t = np.asarray(t)
    if scheme == "polynomial":
        return poly_weight(t, poly_coeffs, num_train_timesteps=num_train_timesteps)
    if scheme == "uniform":
        return np.ones(t.shape)
    if scheme == "snr":
        if alphas_cumprod is None:
            raise ValueError("the 'snr' weighting needs the scheduler's alphas_cumprod")
        abar = np.asarray(alphas_cumprod, dtype=np.float64)[t.astype(np.int64)]
        return abar / (1.0 - abar)
    if scheme == "exp":
        return np.exp(-EXP_RATE * np.asarray(t, dtype=np.float64) / num_train_timesteps)
    if scheme == "logistic":
        if bucket_weights is None or len(bucket_weights) != N_BUCKETS:
            raise ValueError(
                f"the 'logistic' weighting needs {N_BUCKETS} bucket_weights (fit them with "
                f"fit_logistic_weighting), got {None if bucket_weights is None else len(bucket_weights)}"
            )
        return np.asarray(bucket_weights, dtype=np.float64)[_bucket(t, num_train_timesteps)]
    if scheme in WEIGHTINGS:
        raise ValueError(f"the {scheme!r} weighting transforms each trial row and has no w(t)")
    raise ValueError(f"unknown weighting {scheme!r}; choose one of {WEIGHTINGS}")


def _bucket(t: np.ndarray, num_train_timesteps: int) -> np.ndarray:
    b = (np.asarray(t, dtype=np.float64) / num_train_timesteps * N_BUCKETS).astype(np.int64)
    return np.clip(b, 0, N_BUCKETS - 1)


def weight_errors(errors: np.ndarray, t: np.ndarray, scheme: str = "polynomial",
                  **kwargs: object) -> tuple[np.ndarray, np.ndarray]:
    """Apply a weighting to per-trial error rows.

    Parameters
    ----------
    errors
        ``(B, K)`` raw errors of ``B`` trials; NaN where a class was not evaluated.
    t
        ``(B,)`` the trials' timesteps.
    scheme
        One of :data:`WEIGHTINGS`.
    **kwargs
        Passed to :func:`timestep_weights`.

    Returns
    -------
    weighted : numpy.ndarray
        ``(B, K)`` weighted errors (NaN stays NaN).
    weights : numpy.ndarray
        ``(B,)`` the weights ``w(t)``; NaN for the row-wise schemes.
    """
    errors = np.asarray(errors, dtype=np.float64)
    if errors.ndim != 2 or np.shape(t) != (errors.shape[0],):
        raise ValueError(
            f"errors must be (B, K) and t (B,), got {errors.shape} and {np.shape(t)}"
        )
    if scheme == "normalise":
        mean = np.nanmean(errors, axis=1, keepdims=True)
        std = np.nanstd(errors, axis=1, keepdims=True)
        out = (errors - mean) / np.where(std > 0, std, 1.0)
        return out, np.full(errors.shape[0], np.nan)
    if scheme == "ranking":
        from scipy.stats import rankdata

        out = rankdata(errors, axis=1, nan_policy="omit") - 1.0
        return np.where(np.isnan(errors), np.nan, out), np.full(errors.shape[0], np.nan)
    w = timestep_weights(np.asarray(t), scheme, **kwargs)  # type: ignore[arg-type]
    return errors * w[:, None], w


def _per_trial_std(errors: np.ndarray) -> np.ndarray:
    """Across-class standard deviation of each trial; NaN where fewer than 2 classes ran."""
    n_ok = np.sum(~np.isnan(errors), axis=-1)
    with np.errstate(invalid="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            std = np.nanstd(errors, axis=-1)
    return np.where(n_ok >= 2, std, np.nan)


def _errors_and_timesteps(errors: np.ndarray, timesteps: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(N, n_trials, K)`` errors and ``(N, n_trials)`` timesteps (float64) of a fit."""
    errors = np.asarray(errors, dtype=np.float64)
    if errors.ndim != 3:
        raise ValueError(f"errors must be (N, n_trials, K), got shape {errors.shape}")
    n, n_t, _ = errors.shape
    ts = np.asarray(timesteps, dtype=np.float64)
    if ts.ndim == 1:
        ts = np.broadcast_to(ts, (n, n_t))
    if ts.shape != (n, n_t):
        raise ValueError(f"timesteps must be ({n}, {n_t}) or ({n_t},), got {np.shape(timesteps)}")
    return errors, ts


def fit_weighting(errors: np.ndarray, timesteps: np.ndarray, labels: np.ndarray | None = None,
                  *, degree: int = 4, num_train_timesteps: int = 1000) -> tuple[float, ...]:
    """Refit the polynomial weighting on a validation set (paper, supplement G).

    The polynomial ``f(s)`` is fitted by least squares to the median over images of the
    across-class standard deviation (``ddof=0``) of the (unweighted) error at each timestep,
    as a function of ``s = (T - t) / T``; each timestep is one point, weighted by the square
    root of its number of trials. The weight is the reciprocal of ``f``.

    Parameters
    ----------
    errors
        ``(N, n_trials, K)`` unweighted per-trial, per-class errors (NaN where a class was not
        evaluated); best from a run with ``pruning=False`` so that every trial has every class.
        :meth:`ClassificationResult.raw_errors` gives them.
    timesteps
        ``(N, n_trials)`` or ``(n_trials,)`` timestep of each trial (NaN/negative for padding).
    labels
        Optional ``(N,)`` true labels: then the median is taken within each class and the
        class medians are averaged, so that an unbalanced validation set does not favour its
        largest class.
    degree
        Degree of the polynomial (4 in the paper).
    num_train_timesteps
        ``T``.

    Returns
    -------
    tuple of float
        ``degree + 1`` coefficients in increasing order of the power of ``s``, ready for
        ``ClassifyConfig(weighting="polynomial", poly_coeffs=...)``.
    """
    errors, ts = _errors_and_timesteps(errors, timesteps)
    n = errors.shape[0]
    if degree < 0:
        raise ValueError(f"degree must be >= 0, got {degree}")
    std = _per_trial_std(errors)  # (N, n_t)
    ok = np.isfinite(std) & np.isfinite(ts) & (ts >= 0)
    tt = np.where(ok, ts, -1).astype(np.int64)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
        groups = [labels == c for c in np.unique(labels)]
    else:
        groups = [np.ones(n, dtype=bool)]
    xs, ys, ws = [], [], []
    for t in np.unique(tt[ok]):
        at_t = tt == t
        meds = [np.median(std[at_t & g[:, None]]) for g in groups if np.any(at_t & g[:, None])]
        xs.append(float(_s(t, num_train_timesteps)))
        ys.append(float(np.mean(meds)))
        ws.append(int(at_t.sum()))
    if len(xs) < degree + 1:
        raise ValueError(
            f"only {len(xs)} timesteps have errors of at least 2 classes; a degree-{degree} "
            "fit needs at least degree + 1 (run more trials, or with pruning=False)"
        )
    coeffs = np.polynomial.polynomial.polyfit(xs, ys, degree, w=np.sqrt(ws))
    grid = np.polynomial.polynomial.polyval(np.linspace(0, 1, 1001), coeffs)
    if np.min(grid) <= 0:
        raise ValueError(
            f"the fitted polynomial is not positive on s in [0, 1] (min {np.min(grid):.3g}), so "
            "its reciprocal is no weight; use a lower degree or more validation images"
        )
    return tuple(float(c) for c in coeffs)


def fit_logistic_weighting(errors: np.ndarray, timesteps: np.ndarray, labels: np.ndarray, *,
                           num_train_timesteps: int = 1000, C: float = 1.0) -> tuple[float, ...]:
    """Fit the ``"logistic"`` weighting: one weight per timestep bucket (Table 4 ablation).

    For every image and every wrong class ``c`` the feature vector is the per-bucket mean of
    ``error_c - error_true`` (unweighted); a logistic regression without intercept learns to
    tell these pairs (target 1) from their negations (target 0). Its coefficients, clipped at
    0, are the bucket weights: a positive weight on bucket ``b`` means that errors at those
    timesteps separate the true class.

    Parameters
    ----------
    errors
        ``(N, n_trials, K)`` unweighted errors, every class evaluated (``pruning=False``).
    timesteps
        ``(N, n_trials)`` or ``(n_trials,)``.
    labels
        ``(N,)`` true labels.
    C
        Inverse regularisation strength of ``sklearn.linear_model.LogisticRegression``.

    Returns
    -------
    tuple of float
        :data:`N_BUCKETS` weights for ``ClassifyConfig(weighting="logistic", bucket_weights=...)``.
    """
    from sklearn.linear_model import LogisticRegression

    errors, ts = _errors_and_timesteps(errors, timesteps)
    n, _, k = errors.shape
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    bucket = _bucket(np.where(np.isfinite(ts), ts, 0), num_train_timesteps)
    feats = np.zeros((n, N_BUCKETS, k))
    for b in range(N_BUCKETS):
        sel = (bucket == b) & np.isfinite(ts)
        cnt = np.sum(sel[:, :, None] & ~np.isnan(errors), axis=1)
        tot = np.nansum(np.where(sel[:, :, None], errors, np.nan), axis=1)
        feats[:, b, :] = np.where(cnt > 0, tot / np.maximum(cnt, 1), 0.0)
    true = feats[np.arange(n), :, labels]  # (N, B)
    x = []
    for c in range(k):
        wrong = labels != c
        x.append(feats[wrong, :, c] - true[wrong])
    xx = np.concatenate(x)
    if xx.shape[0] == 0:
        raise ValueError("no (image, wrong class) pairs to fit; need labelled images and K >= 2")
    scale = np.std(xx) or 1.0
    xx = xx / scale
    model = LogisticRegression(fit_intercept=False, C=C, max_iter=1000)
    model.fit(np.r_[xx, -xx], np.r_[np.ones(len(xx)), np.zeros(len(xx))])
    beta = np.clip(model.coef_[0], 0.0, None)
    if not np.any(beta > 0):
        raise ValueError("every fitted bucket weight is <= 0: the errors do not separate the classes")
    beta = beta / beta.mean()
    return tuple(float(v) for v in beta)
