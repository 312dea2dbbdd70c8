"""Calibrated class probabilities: temperature scaling, ECE, NLL, Brier and reliability curves.

The diffusion classifier's per-class errors are not probabilities. cytoviz turns them into
probabilities by a softmax of the negative normalised errors
(:attr:`cytoviz.diffusion.ClassificationResult.scores`) divided by a temperature fitted on a
validation split (Guo et al., 2017); the CNN baseline's logits get their own temperature the
same way. This is an addition to the paper's method (METHOD.md defines no probabilities); the
predicted class is unchanged by it.

Compute here (:func:`fit_temperature`, :func:`calibration_metrics`, :func:`reliability_curve`);
draw with :func:`cytoviz.pl.reliability_diagram`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from cytoviz._config import Config

__all__ = [
    "TemperatureScaling",
    "calibration_metrics",
    "fit_temperature",
    "logits_of",
    "reliability_curve",
]


def logits_of(source: Any) -> np.ndarray:
    """``(N, K)`` logits: ``-scores`` of a ClassificationResult, or an array of logits as given.

    A class the diffusion classifier never evaluated for an image (``NaN`` score) gets the
    worst score of that image, so that it keeps a small, finite probability.

    Parameters
    ----------
    source
        A :class:`~cytoviz.diffusion.ClassificationResult` or ``(N, K)`` finite logits (e.g. the
        CNN baseline's ``predict_logits``).
    """
    scores = getattr(source, "scores", None)
    if scores is not None:
        s = np.asarray(scores, dtype=np.float64)
        worst = np.nanmax(np.where(np.isnan(s), -np.inf, s), axis=1, keepdims=True)
        return -np.where(np.isnan(s), worst, s)
    z = np.asarray(source, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"logits must be an (N, K) array with K >= 2, got shape {z.shape}")
    if not np.all(np.isfinite(z)):
        raise ValueError("logits contain NaN or infinite values")
    return z


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _labels(labels: Any, n: int, k: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be {n} integer class indices, got shape {y.shape} "
                         f"and dtype {y.dtype}")
    if n and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"labels must lie in [0, {k - 1}], got {y.min()}..{y.max()}")
    return y


@dataclasses.dataclass(frozen=True)
class TemperatureScaling(Config):
    """A fitted temperature: probabilities are ``softmax(logits / temperature)``.

    Parameters
    ----------
    temperature
        Above 1 softens over-confident probabilities, below 1 sharpens them.
    fitted_on
        What it was fitted on (free text saved with it, e.g. ``"val, 300 images"``).
    """

    temperature: float = 1.0
    fitted_on: str = ""

    def validate(self) -> None:
        if not (np.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be a positive number, got {self.temperature}")

    def probabilities(self, source: Any) -> np.ndarray:
        """``(N, K)`` calibrated probabilities of a ClassificationResult or of logits."""
        return _softmax(logits_of(source) / self.temperature)


def fit_temperature(source: Any, labels: Any, *, fitted_on: str = "",
                    bounds: tuple[float, float] = (1e-3, 1e3)) -> TemperatureScaling:
    """The temperature that minimises the negative log-likelihood of the true labels.

    Parameters
    ----------
    source
        A :class:`~cytoviz.diffusion.ClassificationResult` or ``(N, K)`` logits of the
        validation images.
    labels
        Their true class indices.
    fitted_on
        Stored with the result.
    bounds
        Search range of the temperature (log-spaced bounded search).

    Returns
    -------
    TemperatureScaling
    """
    from scipy.optimize import minimize_scalar

    z = logits_of(source)
    y = _labels(labels, *z.shape)
    if len(y) < 2:
        raise ValueError(f"fitting a temperature needs at least 2 labelled images, got {len(y)}")

    def nll(log_t: float) -> float:
        zt = z / np.exp(log_t)
        zt = zt - zt.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(zt).sum(axis=1)) - zt[np.arange(len(y)), y]))

    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    best = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    return TemperatureScaling(temperature=float(np.exp(best.x)), fitted_on=fitted_on)


def _check_probs(probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probabilities must be an (N, K) array with K >= 2, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or p.min() < 0 or not np.allclose(p.sum(axis=1), 1, atol=1e-6):
        raise ValueError("probabilities must be finite, non-negative, and sum to 1 per row")
    return p, _labels(labels, *p.shape)


def reliability_curve(probs: Any, labels: Any, *, n_bins: int = 15) -> pd.DataFrame:
    """Accuracy against confidence (the top probability) in equal-width bins.

    Parameters
    ----------
    probs
        ``(N, K)`` class probabilities.
    labels
        True class indices.
    n_bins
        Equal-width bins over [0, 1].

    Returns
    -------
    pandas.DataFrame
        One row per non-empty bin: ``lower``, ``upper``, ``confidence`` (mean top
        probability), ``accuracy`` and ``n``.
    """
    if int(n_bins) < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    p, y = _check_probs(probs, labels)
    top = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    idx = np.clip(np.digitize(top, edges[1:-1], right=True), 0, int(n_bins) - 1)
    rows = [{"lower": edges[b], "upper": edges[b + 1], "confidence": float(top[idx == b].mean()),
             "accuracy": float(correct[idx == b].mean()), "n": int((idx == b).sum())}
            for b in range(int(n_bins)) if np.any(idx == b)]
    return pd.DataFrame(rows, columns=["lower", "upper", "confidence", "accuracy", "n"])


def calibration_metrics(probs: Any, labels: Any, *, n_bins: int = 15) -> dict[str, float]:
    """Expected calibration error, negative log-likelihood, Brier score and accuracy.

    Parameters
    ----------
    probs
        ``(N, K)`` class probabilities.
    labels
        True class indices.
    n_bins
        Equal-width confidence bins of the ECE (15, as in Guo et al., 2017).

    Returns
    -------
    dict
        ``ece`` (sum over bins of the share of images times the gap between accuracy and
        mean confidence), ``nll`` (mean of ``-log p(true class)``), ``brier`` (mean over
        images of the squared distance to the one-hot label, summed over classes),
        ``accuracy`` and ``n_images``.
    """
    p, y = _check_probs(probs, labels)
    curve = reliability_curve(p, y, n_bins=n_bins)
    n = len(y)
    ece = float(np.sum(curve["n"] / n * np.abs(curve["accuracy"] - curve["confidence"])))
    onehot = np.eye(p.shape[1])[y]
    return {"ece": ece,
            "nll": float(-np.mean(np.log(np.clip(p[np.arange(n), y], 1e-12, None)))),
            "brier": float(np.mean(np.sum((p - onehot) ** 2, axis=1))),
            "accuracy": float(np.mean(p.argmax(axis=1) == y)),
            "n_images": float(n)}
