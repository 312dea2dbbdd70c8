"""Certainty (anomaly) scores and their statistics: ROC AUC and KDEs (METHOD.md section 2).

The diffusion classifier's certainty ``zeta`` (supplement F of the paper, reference code) is large
when one class error stands clearly below all others, and small when several classes are about
equally good, as for a cell type the model never saw. The same score on negated logits gives the
discriminative baseline's certainty.

:func:`anomaly_auc` and :func:`certainty_kde` summarise an anomaly table (one row per model,
held-out class and test image, :func:`cytoviz.evaluation.anomaly_scores`);
:func:`cytoviz.pl.anomaly_kde` draws their output. The module imports NumPy only; pandas and
scikit-learn are loaded by the functions that need them.

Examples
--------
>>> import numpy as np
>>> from cytoviz.anomaly import certainty
>>> certainty(np.array([[1.0, 2.0, 3.0]])).round(4)
array([0.25])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "anomaly_auc",
    "certainty",
    "certainty_kde",
    "energy_certainty",
    "error_certainty",
    "logit_certainty",
    "msp_certainty",
    "normalise_certainty",
    "roc_auc",
]

#: Largest number of sorted errors that enter the score (k = min(K - 1, MAX_K)).
MAX_K = 10


def certainty(errors: np.ndarray) -> np.ndarray:
    """Anomaly certainty ``zeta`` of each image from its per-class errors.

    Parameters
    ----------
    errors
        ``(N, K)`` class errors (lower = better fit), ``K >= 3``; e.g. the normalised scores
        of a :class:`~cytoviz.diffusion.ClassificationResult`. Must be finite with a positive
        mean per row.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` certainty; larger means more certain (more "normal").

    Notes
    -----
    Each row is divided by its mean over classes and sorted, ``e_0 <= e_1 <= ...``; with
    ``k = min(K - 1, 10)``::

        zeta = (1/k) sum_{j=1}^{k-1} (e_j - e_0) - 1/(k (k-1)) sum_{j,l=1}^{k-1} |e_l - e_j|

    The first term rewards a large gap between the best class and the next ones; the second
    penalises spread among the runners-up.
    """
    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 2:
        raise ValueError(f"errors must be a 2-D (N, K) array, got shape {e.shape}")
    k_classes = e.shape[1]
    if k_classes < 3:
        raise ValueError(
            f"certainty needs at least 3 classes (k = min(K-1, 10) >= 2), got K = {k_classes}"
        )
    if not np.all(np.isfinite(e)):
        bad = np.flatnonzero(~np.all(np.isfinite(e), axis=1))
        raise ValueError(f"errors must be finite; rows {bad[:10].tolist()} contain NaN or inf")
    mean = e.mean(axis=1, keepdims=True)
    if np.any(mean <= 0):
        bad = np.flatnonzero(mean[:, 0] <= 0)
        raise ValueError(
            f"each row of errors needs a positive mean to be normalised; rows "
            f"{bad[:10].tolist()} do not (pass errors, not negated logits: see logit_certainty)"
        )
    e = np.sort(e / mean, axis=1)
    k = min(k_classes - 1, MAX_K)
    runners = e[:, 1:k]  # e_1 .. e_{k-1}
    gap = (runners - e[:, :1]).sum(axis=1) / k
    spread = np.abs(runners[:, :, None] - runners[:, None, :]).sum(axis=(1, 2)) / (k * (k - 1))
    return gap - spread


def logit_certainty(logits: np.ndarray, *, shift: bool = True) -> np.ndarray:
    """Certainty of a discriminative classifier: :func:`certainty` of the negated logits.

    Parameters
    ----------
    logits
        ``(N, K)`` pre-softmax logits (higher = more likely).
    shift
        :func:`certainty` divides each row by its mean, which needs positive errors; negated
        logits are often negative. With ``shift=True`` (default) each row of negated logits is
        first shifted so that its minimum is 1 (``e = -logits - min(-logits) + 1``), which keeps
        the order and the gaps of the classes. ``shift=False`` applies the formula to the negated
        logits literally and raises where a row's mean is not positive.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` certainty; larger means more certain.
    """
    x = -np.asarray(logits, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"logits must be a 2-D (N, K) array, got shape {x.shape}")
    if shift:
        x = x - x.min(axis=1, keepdims=True) + 1.0
    return certainty(x)


def msp_certainty(logits: np.ndarray) -> np.ndarray:
    """Maximum softmax probability of each image (Hendrycks & Gimpel 2017; higher = normal).

    Parameters
    ----------
    logits
        ``(N, K)`` pre-softmax logits.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` values in ``(0, 1]``.
    """
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"logits must be a 2-D (N, K) array, got shape {x.shape}")
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return z.max(axis=1) / z.sum(axis=1)


def energy_certainty(logits: np.ndarray, *, temperature: float = 1.0) -> np.ndarray:
    """Negative energy ``T log sum_k exp(logit_k / T)`` of each image (Liu et al. 2020; higher = normal).

    Parameters
    ----------
    logits
        ``(N, K)`` pre-softmax logits.
    temperature
        ``T`` (1 in Liu et al.).

    Returns
    -------
    numpy.ndarray
        ``(N,)`` scores.
    """
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"logits must be a 2-D (N, K) array, got shape {x.shape}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    y = x / temperature
    top = y.max(axis=1, keepdims=True)
    return temperature * (top[:, 0] + np.log(np.exp(y - top).sum(axis=1)))


def error_certainty(class_errors: np.ndarray) -> np.ndarray:
    """Likelihood-style certainty of the diffusion classifier: minus its smallest class error.

    The unnormalised weighted denoising error of the best-fitting class (the model's own
    estimate of how well it can explain the cell; a cell of an unseen type is explained
    worse by every class). Not in the paper (its score is :func:`certainty`).

    Parameters
    ----------
    class_errors
        ``(N, K)`` unnormalised class errors, e.g.
        :attr:`cytoviz.diffusion.ClassificationResult.class_errors` (``NaN``: class not
        evaluated).

    Returns
    -------
    numpy.ndarray
        ``(N,)`` scores; larger means better explained (more "normal").
    """
    e = np.asarray(class_errors, dtype=np.float64)
    if e.ndim != 2:
        raise ValueError(f"class_errors must be a 2-D (N, K) array, got shape {e.shape}")
    if e.shape[0] and np.any(np.all(np.isnan(e), axis=1)):
        raise ValueError("a row of class_errors has no evaluated class")
    return -np.nanmin(e, axis=1) if e.shape[0] else np.zeros(0)


def normalise_certainty(x: np.ndarray) -> np.ndarray:
    """Divide certainty scores by their maximum (the paper's per-model, per-data-set scaling).

    Parameters
    ----------
    x
        Certainty scores (NaN ignored when taking the maximum).

    Returns
    -------
    numpy.ndarray
        ``x / max(x)`` as float64.

    Raises
    ------
    ValueError
        When ``x`` is empty or its maximum is not positive (nothing to scale by).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        raise ValueError("normalise_certainty got an empty array")
    top = np.nanmax(x)
    if not top > 0:
        raise ValueError(f"the largest certainty is {top}; it must be positive to normalise by it")
    return x / top


def roc_auc(normal_scores: np.ndarray, abnormal_scores: np.ndarray) -> float:
    """ROC AUC of separating normal from abnormal images by certainty (higher = normal).

    Parameters
    ----------
    normal_scores, abnormal_scores
        Certainty scores of the in-distribution and the held-out (anomalous) images.

    Returns
    -------
    float
        The probability that a random normal image scores higher than a random abnormal one
        (``sklearn.metrics.roc_auc_score`` with normal as the positive class).
    """
    from sklearn.metrics import roc_auc_score

    normal = np.asarray(normal_scores, dtype=np.float64).ravel()
    abnormal = np.asarray(abnormal_scores, dtype=np.float64).ravel()
    if normal.size == 0 or abnormal.size == 0:
        raise ValueError(
            f"need at least one normal and one abnormal score, got {normal.size} and "
            f"{abnormal.size}"
        )
    y = np.r_[np.ones(normal.size), np.zeros(abnormal.size)]
    return float(roc_auc_score(y, np.r_[normal, abnormal]))


# --------------------------------------------------------------------------------------------
# statistics of an anomaly table (Figure 3)

#: The score of a table without a ``score`` column (tables stored before there were several).
DEFAULT_SCORE = "zeta"
#: Largest number of bootstrap replicates x images held in memory at once.
_BOOT_CHUNK = 4_000_000


def _check_anomaly_table(table: pd.DataFrame) -> None:
    missing = [c for c in ("model", "held_out", "is_abnormal", "certainty") if c not in table]
    if missing:
        raise ValueError(
            f"the anomaly table lacks column(s) {missing}; build it with anomaly_scores or "
            "anomaly_table"
        )


def _with_score(table: pd.DataFrame) -> pd.DataFrame:
    """The table with a ``score`` column (all :data:`DEFAULT_SCORE` where it has none)."""
    return table if "score" in table else table.assign(score=DEFAULT_SCORE)


def _bootstrap_auc(
    normal: np.ndarray, abnormal: np.ndarray, *, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """``n_boot`` AUCs of stratified bootstrap resamples (normal and abnormal apart).

    A resample is a count per image (how often it was drawn). With the abnormal scores sorted,
    the (doubled) number of abnormal draws below each normal score, ties counting one half, is
    a difference of cumulative counts; the AUC is its count-weighted sum over the normal
    images. Integer arithmetic, so a perfect separation gives exactly 1.
    """
    n1, n0 = normal.size, abnormal.size
    order = np.argsort(abnormal, kind="stable")
    y = abnormal[order]
    lo = np.searchsorted(y, normal, side="left")  # abnormal scores strictly below
    hi = np.searchsorted(y, normal, side="right")  # ... below or tied
    out = np.empty(n_boot)
    step = max(1, _BOOT_CHUNK // max(n1, n0))
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        rows = np.arange(b)[:, None]
        w = np.bincount((rows * n1 + rng.integers(0, n1, (b, n1))).ravel(),
                        minlength=b * n1).reshape(b, n1)
        v = np.bincount((rows * n0 + rng.integers(0, n0, (b, n0))).ravel(),
                        minlength=b * n0).reshape(b, n0)[:, order]  # counts in sorted order
        cum = np.zeros((b, n0 + 1), dtype=np.int64)
        np.cumsum(v, axis=1, out=cum[:, 1:])
        below2 = cum[:, lo] + cum[:, hi]  # 2 * (strictly below) + ties
        out[start : start + b] = (w * below2).sum(axis=1) / (2.0 * n1 * n0)
    return out


def anomaly_auc(
    table: pd.DataFrame, *, n_boot: int = 2000, ci: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """ROC AUC of normal vs abnormal by certainty, with a bootstrap interval, per model,
    held-out class and score.

    Parameters
    ----------
    table
        Output of :func:`cytoviz.evaluation.anomaly_scores` (or
        :func:`cytoviz.evaluation.anomaly_table`). Several seeds are pooled. A table without a
        ``score`` column (stored before there were several scores) holds the paper's score,
        ``"zeta"``, only.
    n_boot
        Number of bootstrap resamples.
    ci
        Coverage of the interval, in ``(0, 1)``.
    seed
        Seed of the resampling; every group is resampled with a fresh generator from it, so
        a group's interval does not depend on the other groups.

    Returns
    -------
    pandas.DataFrame
        One row per (model, held-out class, score) in the table's order, columns ``model``,
        ``held_out``, ``score``, ``auc`` (:func:`roc_auc`: the probability that a normal image
        is more certain than an abnormal one, ties count one half), ``auc_low``,
        ``auc_high``, ``n_normal``, ``n_abnormal``. A group without both kinds of image gets
        ``NaN``.

    Notes
    -----
    The interval is a percentile bootstrap stratified by group: the normal and the abnormal
    images are resampled separately with replacement (each resample keeps ``n_normal`` and
    ``n_abnormal``), the AUC is computed for each of the ``n_boot`` resamples, and
    ``auc_low``, ``auc_high`` are its ``(1 - ci) / 2`` and ``(1 + ci) / 2`` quantiles. Images
    (and seeds) are treated as independent; the interval says nothing about the variation
    between training runs.
    """
    import pandas as pd

    _check_anomaly_table(table)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    columns = ["model", "held_out", "score", "auc", "auc_low", "auc_high", "n_normal",
               "n_abnormal"]
    rows = []
    for (m, h, s), g in _with_score(table).groupby(["model", "held_out", "score"], sort=False):
        abnormal = g["is_abnormal"].to_numpy(dtype=bool)
        scores = g["certainty"].to_numpy(dtype=float)
        n_ab = int(abnormal.sum())
        n_no = int((~abnormal).sum())
        auc = low = high = float("nan")
        if n_ab and n_no:
            auc = roc_auc(scores[~abnormal], scores[abnormal])
            boot = _bootstrap_auc(scores[~abnormal], scores[abnormal], n_boot=int(n_boot),
                                  rng=np.random.default_rng(seed))
            low, high = (float(q) for q in np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2]))
        rows.append({"model": m, "held_out": h, "score": s, "auc": auc, "auc_low": low,
                     "auc_high": high, "n_normal": n_no, "n_abnormal": n_ab})
    out = pd.DataFrame(rows, columns=columns)
    out.attrs.update(table.attrs)
    out.attrs.update({"n_boot": int(n_boot), "ci": float(ci)})
    return out


def _bandwidth(x: np.ndarray) -> float:
    """Scott's rule for a Gaussian kernel, with a floor for (nearly) constant data."""
    sd = float(np.std(x, ddof=1)) if x.size > 1 else 0.0
    bw = 1.06 * sd * x.size ** (-1 / 5) if x.size else 0.0
    return max(bw, 0.02)


def _score_range(values: np.ndarray) -> tuple[float, float]:
    return (min(0.0, float(values.min())), max(1.0, float(values.max())))


def certainty_kde(
    table: pd.DataFrame,
    *,
    bandwidth: float | None = None,
    grid: int = 200,
    column: str = "certainty_norm",
) -> pd.DataFrame:
    """Gaussian KDEs of the normalised certainty, normal vs abnormal, per model, held-out class
    and score.

    Parameters
    ----------
    table
        Output of :func:`cytoviz.evaluation.anomaly_scores`. A table without a ``score``
        column holds the paper's score, ``"zeta"``, only.
    bandwidth
        Kernel standard deviation in units of ``column``; ``None``: Scott's rule per curve.
    grid
        Points of the evaluation grid (shared by the curves of one panel).
    column
        The score to smooth (``"certainty_norm"``: certainty divided by its maximum).

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``held_out``, ``score``, ``group`` (``"normal"``/``"abnormal"``),
        ``x``, ``density`` (each curve integrates to about 1), ``bandwidth``, ``n``; the input
        for :func:`cytoviz.pl.anomaly_kde`. ``attrs`` keeps the table's (``budget``, from the
        ``budget`` column where ``attrs`` lacks it) and adds ``score_range``: the smallest and
        largest value of ``column``, widened to contain ``[0, 1]``, and ``score_ranges``: the
        same per score.
    """
    import pandas as pd

    _check_anomaly_table(table)
    if column not in table:
        raise ValueError(f"the table has no column {column!r}")
    if bandwidth is not None and not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive or None, got {bandwidth}")
    if grid < 10:
        raise ValueError(f"grid must be >= 10 points, got {grid}")
    scored = _with_score(table)
    frames = []
    for (m, h, s), g in scored.groupby(["model", "held_out", "score"], sort=False):
        values = g[column].to_numpy(dtype=float)
        bws = {}
        for name, sel in (("normal", ~g["is_abnormal"].to_numpy(bool)),
                          ("abnormal", g["is_abnormal"].to_numpy(bool))):
            bws[name] = bandwidth if bandwidth is not None else _bandwidth(values[sel])
        pad = 3 * max(bws.values())
        x = np.linspace(min(values.min(), 0.0) - pad, max(values.max(), 1.0) + pad, grid)
        for name, sel in (("normal", ~g["is_abnormal"].to_numpy(bool)),
                          ("abnormal", g["is_abnormal"].to_numpy(bool))):
            v = values[sel]
            if v.size == 0:
                continue
            bw = bws[name]
            dens = np.exp(-0.5 * ((x[:, None] - v[None, :]) / bw) ** 2).sum(1)
            dens /= v.size * bw * np.sqrt(2 * np.pi)
            frames.append(pd.DataFrame({"model": m, "held_out": h, "score": s, "group": name,
                                        "x": x, "density": dens, "bandwidth": bw,
                                        "n": v.size}))
    out = pd.concat(frames, ignore_index=True)
    out.attrs.update(table.attrs)
    if "budget" not in out.attrs and "budget" in table and len(table):
        out.attrs["budget"] = str(table["budget"].iloc[0])
    out.attrs["score_range"] = _score_range(table[column].to_numpy(dtype=float))
    out.attrs["score_ranges"] = {
        str(s): _score_range(g[column].to_numpy(dtype=float))
        for s, g in scored.groupby("score", sort=False)
    }
    return out
