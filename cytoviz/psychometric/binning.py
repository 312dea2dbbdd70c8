"""From per-case confidence and correctness to binned psychometric data ``(x, k, n)``.

The psychometric model sees one row per stimulus level: the bin centre ``x``, the number of
correct answers ``k`` and the number of cases ``n``. Empty bins are dropped, as psignifit only
sees the levels that were tested (and computes its priors from those levels alone).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = ["PsychometricData", "as_psychometric_data", "bin_confidence", "validate_xkn"]

Scheme = Literal["equal-width", "equal-count"]
SCHEMES: tuple[str, ...] = ("equal-width", "equal-count")


@dataclass(frozen=True)
class PsychometricData:
    """Binned data of one observer: stimulus levels ``x``, correct ``k`` and trials ``n``.

    Build it with :func:`bin_confidence` or :func:`as_psychometric_data`; both validate.

    Attributes
    ----------
    x
        Stimulus level of each row.
    k
        Number of correct responses of each row.
    n
        Number of trials of each row.
    """

    x: np.ndarray
    k: np.ndarray
    n: np.ndarray

    def __iter__(self):  # unpack as x, k, n
        return iter((self.x, self.k, self.n))

    def __len__(self) -> int:
        return len(self.x)

    def to_frame(self) -> pd.DataFrame:
        """The rows as a DataFrame with columns ``x``, ``k``, ``n``."""
        return pd.DataFrame({"x": self.x, "k": self.k, "n": self.n})

    @property
    def stimulus_range(self) -> tuple[float, float]:
        """``(min x, max x)`` over the (non-empty) levels."""
        return float(self.x.min()), float(self.x.max())

    @property
    def width_min(self) -> float:
        """Smallest gap between sorted unique stimulus levels (psignifit's ``width_min``)."""
        return float(np.diff(np.unique(self.x)).min())


def validate_xkn(
    x: Any, k: Any, n: Any, *, name: str = "data", drop_empty: bool = True
) -> PsychometricData:
    """Check ``(x, k, n)`` rows and return them as :class:`PsychometricData`.

    Parameters
    ----------
    x, k, n
        Stimulus levels, number correct and number of trials (equal lengths).
    name
        Name of the observer, used in error messages.
    drop_empty
        Drop rows with ``n == 0`` (psignifit ignores them in the likelihood; cytoviz also
        leaves them out of the stimulus range). If False, such rows raise an error.

    Raises
    ------
    ValueError
        On NaN or infinite values, negative or non-integer counts, ``k > n``, fewer than two
        distinct stimulus levels, or no trials at all.
    """
    x = np.asarray(x, dtype=float).ravel()
    k_f = np.asarray(k, dtype=float).ravel()
    n_f = np.asarray(n, dtype=float).ravel()
    if not (len(x) == len(k_f) == len(n_f)):
        raise ValueError(
            f"{name}: x, k and n must have equal lengths, got {len(x)}, {len(k_f)} and {len(n_f)}"
        )
    for label, arr in (("x", x), ("k", k_f), ("n", n_f)):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(
                f"{name}: column {label} has {int(bad.sum())} NaN/infinite value(s) at rows "
                f"{np.flatnonzero(bad)[:5].tolist()}; remove or fill them first"
            )
    for label, arr in (("k", k_f), ("n", n_f)):
        if (arr < 0).any():
            i = int(np.flatnonzero(arr < 0)[0])
            raise ValueError(f"{name}: {label} must be >= 0, got {label}={arr[i]} at row {i}")
        if not np.allclose(arr, np.round(arr)):
            i = int(np.flatnonzero(~np.isclose(arr, np.round(arr)))[0])
            raise ValueError(f"{name}: {label} must be whole counts, got {label}={arr[i]} at row {i}")
    if (k_f > n_f).any():
        i = int(np.flatnonzero(k_f > n_f)[0])
        raise ValueError(f"{name}: k > n at row {i} (k={k_f[i]:g}, n={n_f[i]:g}); k counts the "
                         "correct trials among n")
    keep = n_f > 0
    if not drop_empty and not keep.all():
        raise ValueError(f"{name}: rows {np.flatnonzero(~keep)[:5].tolist()} have zero trials")
    x, k_i, n_i = x[keep], np.round(k_f[keep]).astype(np.int64), np.round(n_f[keep]).astype(np.int64)
    if len(x) == 0:
        raise ValueError(f"{name}: no trials (all rows have n = 0)")
    if len(np.unique(x)) < 2:
        raise ValueError(
            f"{name}: all trials are at a single stimulus level x={x[0]:g}; a psychometric "
            "function needs at least two distinct levels (use more bins or more data)"
        )
    order = np.argsort(x, kind="stable")
    return PsychometricData(x=x[order], k=k_i[order], n=n_i[order])


def as_psychometric_data(data: Any, *, name: str = "data") -> PsychometricData:
    """Coerce ``(x, k, n)`` tuples, DataFrames with columns x, k, n, or an ``n x 3`` array.

    Parameters
    ----------
    data
        A :class:`PsychometricData`, an ``(x, k, n)`` tuple or list, a DataFrame or mapping
        with keys ``x``, ``k``, ``n``, or an ``n x 3`` array.
    name
        Name of the observer, used in error messages.

    Returns
    -------
    PsychometricData
        The validated rows (see :func:`validate_xkn`).
    """
    if isinstance(data, PsychometricData):
        return validate_xkn(data.x, data.k, data.n, name=name)
    if isinstance(data, pd.DataFrame):
        missing = [c for c in ("x", "k", "n") if c not in data.columns]
        if missing:
            raise ValueError(
                f"{name}: DataFrame lacks column(s) {missing}; expected columns x, k, n "
                f"(got {list(data.columns)})"
            )
        return validate_xkn(data["x"], data["k"], data["n"], name=name)
    if isinstance(data, Mapping):
        return validate_xkn(data["x"], data["k"], data["n"], name=name)
    if isinstance(data, np.ndarray) and data.ndim == 2 and data.shape[1] == 3:
        return validate_xkn(data[:, 0], data[:, 1], data[:, 2], name=name)
    if isinstance(data, tuple | list) and len(data) == 3:
        return validate_xkn(*data, name=name)
    raise TypeError(
        f"{name}: expected (x, k, n), a DataFrame with columns x, k, n, or an n x 3 array; "
        f"got {type(data).__name__}"
    )


def bin_edges(values: np.ndarray, n_bins: int, scheme: Scheme = "equal-width") -> np.ndarray:
    """Bin edges on [0, 1] (equal-width) or at quantiles of ``values`` (equal-count)."""
    if scheme == "equal-width":
        return np.linspace(0.0, 1.0, n_bins + 1)
    if scheme == "equal-count":
        edges = np.quantile(values, np.linspace(0.0, 1.0, n_bins + 1))
        edges[0], edges[-1] = min(edges[0], 0.0), max(edges[-1], 1.0)
        return edges
    raise ValueError(f"unknown binning scheme {scheme!r}; use one of {list(SCHEMES)}")


def bin_confidence(
    confidence: Any,
    correct: Any,
    *,
    n_bins: int = 25,
    scheme: Scheme = "equal-width",
    name: str = "data",
) -> PsychometricData:
    """Bin per-case confidence values in [0, 1] and correctness into ``(x, k, n)`` rows.

    Parameters
    ----------
    confidence
        Confidence (the stimulus axis) of each case, in [0, 1].
    correct
        Whether each case was answered correctly (bool or 0/1).
    n_bins
        Number of bins (25 for the model, 12 for experts in the paper).
    scheme
        ``"equal-width"``: bins of width 1/n_bins on [0, 1], ``x`` is the bin centre.
        ``"equal-count"``: edges at quantiles of the confidence (about equal counts); ``x``
        is the mean confidence in the bin (bin centres would be uneven). Tied values can
        leave fewer, fuller bins.
    name
        Observer name for error messages.

    Returns
    -------
    PsychometricData
        Non-empty bins only, sorted by ``x``.
    """
    conf = np.asarray(confidence, dtype=float).ravel()
    corr_raw = np.asarray(correct).ravel()
    if len(conf) != len(corr_raw):
        raise ValueError(
            f"{name}: confidence and correct have different lengths ({len(conf)} vs {len(corr_raw)})"
        )
    if len(conf) == 0:
        raise ValueError(f"{name}: no cases to bin")
    if not isinstance(n_bins, int | np.integer) or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
    if scheme not in SCHEMES:
        raise ValueError(f"unknown binning scheme {scheme!r}; use one of {list(SCHEMES)}")
    bad = ~np.isfinite(conf)
    if bad.any():
        raise ValueError(
            f"{name}: {int(bad.sum())} confidence value(s) are NaN/infinite (first at case "
            f"{int(np.flatnonzero(bad)[0])}); drop those cases first"
        )
    out = (conf < 0) | (conf > 1)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise ValueError(
            f"{name}: confidence must lie in [0, 1], got {conf[i]:g} at case {i} "
            f"({int(out.sum())} value(s) outside); rescale it to [0, 1] first"
        )
    corr_f = pd.to_numeric(pd.Series(corr_raw), errors="coerce").to_numpy(dtype=float)
    if np.isnan(corr_f).any() or not np.isin(corr_f, (0.0, 1.0)).all():
        i = int(np.flatnonzero(np.isnan(corr_f) | ~np.isin(corr_f, (0.0, 1.0)))[0])
        raise ValueError(
            f"{name}: correct must be True/False or 0/1, got {corr_raw[i]!r} at case {i}"
        )
    edges = bin_edges(conf, n_bins, scheme)
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, len(edges) - 2)
    n = np.bincount(idx, minlength=len(edges) - 1)
    k = np.bincount(idx, weights=corr_f, minlength=len(edges) - 1)
    if scheme == "equal-width":
        x = 0.5 * (edges[:-1] + edges[1:])
    else:
        sums = np.bincount(idx, weights=conf, minlength=len(edges) - 1)
        x = np.divide(sums, n, out=np.full(len(n), np.nan), where=n > 0)
    keep = n > 0
    return validate_xkn(x[keep], k[keep], n[keep], name=name)
