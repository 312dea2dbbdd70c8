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
    "logit_certainty",
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


def _check_anomaly_table(table: pd.DataFrame) -> None:
    missing = [c for c in ("model", "held_out", "is_abnormal", "certainty") if c not in table]
    if missing:
        raise ValueError(
            f"the anomaly table lacks column(s) {missing}; build it with anomaly_scores or "
            "anomaly_table"
        )


def anomaly_auc(table: pd.DataFrame) -> pd.DataFrame:
    """ROC AUC of normal vs abnormal by certainty, per model and held-out class.

    Parameters
    ----------
    table
        Output of :func:`cytoviz.evaluation.anomaly_scores` (or
        :func:`cytoviz.evaluation.anomaly_table`). Several seeds are pooled.

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``held_out``, ``auc`` (:func:`roc_auc`: the probability that a normal
        image is more certain than an abnormal one, ties count one half), ``n_normal``,
        ``n_abnormal``. A group without both kinds of image gets ``NaN``.
    """
    import pandas as pd

    _check_anomaly_table(table)
    rows = []
    for (m, h), g in table.groupby(["model", "held_out"], sort=False):
        abnormal = g["is_abnormal"].to_numpy(dtype=bool)
        scores = g["certainty"].to_numpy(dtype=float)
        n_ab = int(abnormal.sum())
        n_no = int((~abnormal).sum())
        auc = roc_auc(scores[~abnormal], scores[abnormal]) if n_ab and n_no else float("nan")
        rows.append({"model": m, "held_out": h, "auc": auc, "n_normal": n_no, "n_abnormal": n_ab})
    out = pd.DataFrame(rows, columns=["model", "held_out", "auc", "n_normal", "n_abnormal"])
    out.attrs.update(table.attrs)
    return out


def _bandwidth(x: np.ndarray) -> float:
    """Scott's rule for a Gaussian kernel, with a floor for (nearly) constant data."""
    sd = float(np.std(x, ddof=1)) if x.size > 1 else 0.0
    bw = 1.06 * sd * x.size ** (-1 / 5) if x.size else 0.0
    return max(bw, 0.02)


def certainty_kde(
    table: pd.DataFrame,
    *,
    bandwidth: float | None = None,
    grid: int = 200,
    column: str = "certainty_norm",
) -> pd.DataFrame:
    """Gaussian KDEs of the normalised certainty, normal vs abnormal, per model and held-out class.

    Parameters
    ----------
    table
        Output of :func:`cytoviz.evaluation.anomaly_scores`.
    bandwidth
        Kernel standard deviation in units of ``column``; ``None``: Scott's rule per curve.
    grid
        Points of the evaluation grid (shared by the curves of one panel).
    column
        The score to smooth (``"certainty_norm"``: certainty divided by its maximum).

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``held_out``, ``group`` (``"normal"``/``"abnormal"``), ``x``,
        ``density`` (each curve integrates to about 1), ``bandwidth``, ``n``; the input for
        :func:`cytoviz.pl.anomaly_kde`. ``attrs`` keeps the table's (``budget``, from the
        ``budget`` column where ``attrs`` lacks it) and adds ``score_range``: the smallest and
        largest score, widened to contain ``[0, 1]``.
    """
    import pandas as pd

    _check_anomaly_table(table)
    if column not in table:
        raise ValueError(f"the table has no column {column!r}")
    if bandwidth is not None and not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive or None, got {bandwidth}")
    if grid < 10:
        raise ValueError(f"grid must be >= 10 points, got {grid}")
    frames = []
    for (m, h), g in table.groupby(["model", "held_out"], sort=False):
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
            frames.append(pd.DataFrame({"model": m, "held_out": h, "group": name, "x": x,
                                        "density": dens, "bandwidth": bw, "n": v.size}))
    out = pd.concat(frames, ignore_index=True)
    out.attrs.update(table.attrs)
    if "budget" not in out.attrs and "budget" in table and len(table):
        out.attrs["budget"] = str(table["budget"].iloc[0])
    scores = table[column].to_numpy(dtype=float)
    out.attrs["score_range"] = (min(0.0, float(scores.min())), max(1.0, float(scores.max())))
    return out
