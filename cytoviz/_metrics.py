"""Classification metrics: the one place accuracy and balanced accuracy are computed (private).

Every table and result in cytoviz (classification results, the CNN baseline, the protocols)
scores predictions through :func:`classification_metrics`, so that the numbers of the
diffusion classifier and of the baselines are computed by the same rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["balanced_accuracy", "classification_metrics"]


def balanced_accuracy(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray
                      ) -> float:
    """Mean over the true classes present of the per-class recall (NaN without images).

    Parameters
    ----------
    y_true, y_pred
        Integer class indices (or any comparable labels) of the same length.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred {y_pred.shape}")
    if y_true.size == 0:
        return float("nan")
    ok = y_true == y_pred
    return float(np.mean([ok[y_true == c].mean() for c in np.unique(y_true)]))


def classification_metrics(y_true: Sequence[int] | np.ndarray,
                           y_pred: Sequence[int] | np.ndarray) -> dict[str, float | int]:
    """``accuracy``, ``balanced_accuracy`` (mean per-class recall) and ``n_images``.

    Parameters
    ----------
    y_true, y_pred
        Integer class indices of the same length.

    Returns
    -------
    dict
        ``{"accuracy": float, "balanced_accuracy": float, "n_images": int}``; the two
        accuracies are NaN for an empty input.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    bal = balanced_accuracy(y_true, y_pred)
    acc = float(np.mean(y_true == y_pred)) if y_true.size else float("nan")
    return {"accuracy": acc, "balanced_accuracy": bal, "n_images": int(y_true.size)}
