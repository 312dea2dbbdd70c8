"""The result of one classification pass (STYLE.md principle 1).

:class:`ClassificationResult` holds the raw material of the diffusion classifier, per image: every
trial's weighted per-class errors, the trials' timesteps and weights, the trial and UNet-evaluation
counts, the classes still in play, and the per-class mean latent error maps. Predictions,
confidence, anomaly certainty and heatmaps are views of it; nothing here calls the model.

The per-trial errors are ragged (easy images stop early), so they are stored flat: row ``j`` of
:attr:`~ClassificationResult.trial_errors` belongs to image ``i`` when
``offsets[i] <= j < offsets[i + 1]``. :attr:`~ClassificationResult.errors` gives the padded
``(N, T, K)`` view.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cytoviz._io import FORMAT_VERSION, load_npz, save_npz
from cytoviz._metrics import balanced_accuracy
from cytoviz.anomaly import certainty
from cytoviz.diffusion.classify_config import ClassifyConfig, latent_mask
from cytoviz.diffusion.weighting import MULTIPLICATIVE

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ClassificationResult"]

_KIND = "ClassificationResult"


@dataclasses.dataclass(frozen=True, eq=False)
class ClassificationResult:
    """Everything one pass of :func:`~cytoviz.diffusion.classify` measured.

    Parameters
    ----------
    class_names
        The model's classes, in conditioning order.
    config
        The :class:`~cytoviz.diffusion.ClassifyConfig` of the run.
    trial_errors
        ``(sum(n_trials), K)`` float32 weighted errors of every trial of every image, images in
        order; NaN where a class was no longer in play.
    trial_timesteps
        ``(sum(n_trials),)`` timestep of each trial.
    trial_weights
        ``(sum(n_trials),)`` weight ``w(t)`` of each trial (NaN for the row-wise weightings
        ``"normalise"`` and ``"ranking"``).
    n_trials
        ``(N,)`` trials run per image.
    n_evals
        ``(N,)`` UNet evaluations spent per image (one per class in play per trial).
    remaining
        ``(N, K)`` classes still in play at the end.
    labels
        Optional ``(N,)`` true labels.
    error_maps
        Optional ``(N, K, C, h, w)`` float32: per class, the mean over its trials of the latent
        ``eps - eps_theta`` inside the mask with the augmentation undone (zeros outside the
        mask and for a class never evaluated).
    mask_radius
        Radius of the centre disc in latent pixels.
    num_train_timesteps
        ``T`` of the model's noise schedule (for the weighting's ``s = (T - t) / T``).
    """

    class_names: tuple[str, ...]
    config: ClassifyConfig
    trial_errors: np.ndarray
    trial_timesteps: np.ndarray
    trial_weights: np.ndarray
    n_trials: np.ndarray
    n_evals: np.ndarray
    remaining: np.ndarray
    labels: np.ndarray | None = None
    error_maps: np.ndarray | None = None
    mask_radius: int = 0
    num_train_timesteps: int = 1000

    def __post_init__(self) -> None:
        names = tuple(str(c) for c in self.class_names)
        k = len(names)
        n_trials = np.asarray(self.n_trials, dtype=np.int64)
        n = n_trials.shape[0]
        total = int(n_trials.sum())
        errors = np.asarray(self.trial_errors, dtype=np.float32)
        if errors.shape != (total, k):
            raise ValueError(
                f"trial_errors must have shape (sum(n_trials), K) = ({total}, {k}), got {errors.shape}"
            )
        for name in ("trial_timesteps", "trial_weights"):
            if np.shape(getattr(self, name)) != (total,):
                raise ValueError(f"{name} must have shape ({total},), got {np.shape(getattr(self, name))}")
        remaining = np.asarray(self.remaining, dtype=bool)
        if remaining.shape != (n, k):
            raise ValueError(f"remaining must have shape ({n}, {k}), got {remaining.shape}")
        if np.shape(self.n_evals) != (n,):
            raise ValueError(f"n_evals must have shape ({n},), got {np.shape(self.n_evals)}")
        labels = None
        if self.labels is not None:
            labels = np.asarray(self.labels, dtype=np.int64)
            if labels.shape != (n,):
                raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
        maps = None
        if self.error_maps is not None:
            maps = np.asarray(self.error_maps, dtype=np.float32)
            if maps.ndim != 5 or maps.shape[:2] != (n, k):
                raise ValueError(f"error_maps must have shape ({n}, {k}, C, h, w), got {maps.shape}")
        if not isinstance(self.config, ClassifyConfig):
            raise TypeError(f"config must be a ClassifyConfig, got {type(self.config).__name__}")
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "trial_errors", errors)
        object.__setattr__(self, "trial_timesteps", np.asarray(self.trial_timesteps, dtype=np.int32))
        object.__setattr__(self, "trial_weights", np.asarray(self.trial_weights, dtype=np.float32))
        object.__setattr__(self, "n_trials", n_trials)
        object.__setattr__(self, "n_evals", np.asarray(self.n_evals, dtype=np.int64))
        object.__setattr__(self, "remaining", remaining)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "error_maps", maps)
        object.__setattr__(self, "mask_radius", int(self.mask_radius))

    # ------------------------------------------------------------------ basic shape
    def __len__(self) -> int:
        return int(self.n_trials.shape[0])

    def __repr__(self) -> str:
        acc = f", accuracy {self.accuracy:.3f}" if self.labels is not None and len(self) else ""
        return (
            f"ClassificationResult({len(self)} images, {self.n_classes} classes, "
            f"{self.n_trials.mean() if len(self) else 0:.1f} trials and "
            f"{self.n_evals.mean() if len(self) else 0:.1f} UNet evaluations per image{acc})"
        )

    @property
    def n_classes(self) -> int:
        """Number of classes scored (``len(class_names)``)."""
        return len(self.class_names)

    @functools.cached_property
    def offsets(self) -> np.ndarray:
        """``(N + 1,)`` start of each image's trials in the flat trial arrays."""
        return np.r_[0, np.cumsum(self.n_trials)].astype(np.int64)

    def image_errors(self, i: int) -> np.ndarray:
        """``(n_trials[i], K)`` weighted errors of image ``i`` (NaN: class not in play)."""
        return self.trial_errors[self.offsets[i]: self.offsets[i + 1]]

    def image_timesteps(self, i: int) -> np.ndarray:
        """``(n_trials[i],)`` timesteps of image ``i``'s trials."""
        return self.trial_timesteps[self.offsets[i]: self.offsets[i + 1]]

    def _pad(self, flat: np.ndarray, fill: float) -> np.ndarray:
        n, t = len(self), int(self.n_trials.max()) if len(self) else 0
        out = np.full((n, t, *flat.shape[1:]), fill, dtype=flat.dtype)
        col = np.arange(flat.shape[0]) - np.repeat(self.offsets[:-1], self.n_trials)
        out[np.repeat(np.arange(n), self.n_trials), col] = flat
        return out

    @property
    def errors(self) -> np.ndarray:
        """``(N, T, K)`` float32 weighted errors padded with NaN (``T = max(n_trials)``)."""
        return self._pad(self.trial_errors, np.nan)

    @property
    def timesteps(self) -> np.ndarray:
        """``(N, T)`` timesteps per trial, ``-1`` for padding."""
        return self._pad(self.trial_timesteps, -1)

    @property
    def raw_errors(self) -> np.ndarray:
        """``(N, T, K)`` unweighted errors (``errors / w(t)``), for refitting the weighting.

        Only for the multiplicative weightings; ``"normalise"`` and ``"ranking"`` cannot be undone.
        """
        if self.config.weighting not in MULTIPLICATIVE:
            raise ValueError(
                f"the {self.config.weighting!r} weighting cannot be undone; rerun with "
                "weighting='uniform' (or 'polynomial') to get raw errors"
            )
        flat = self.trial_errors / self.trial_weights[:, None]
        return self._pad(flat.astype(np.float32), np.nan)

    @functools.cached_property
    def class_trials(self) -> np.ndarray:
        """``(N, K)`` number of trials in which each class was evaluated."""
        ok = (~np.isnan(self.trial_errors)).astype(np.int64)
        return np.rint(_segment_sum(ok, self.offsets)).astype(np.int64)

    @property
    def mask(self) -> np.ndarray:
        """``(h, w)`` boolean centre disc of the latent where errors were counted."""
        if self.error_maps is not None:
            size = self.error_maps.shape[-1]
        else:
            raise ValueError("the latent size is only known when error maps were kept")
        return latent_mask(size, self.mask_radius)

    # ------------------------------------------------------------------ views
    @functools.cached_property
    def mean_errors(self) -> np.ndarray:
        """``(N, K)`` per class, the mean over its trials of the error minus the trial's minimum.

        Each trial's row has its minimum over the classes evaluated in it subtracted (reference
        code); a dropped class keeps the mean of its trials.
        """
        e = self.trial_errors.astype(np.float64)
        if e.shape[0]:
            with np.errstate(invalid="ignore"):
                e = e - np.nanmin(np.where(np.isnan(e), np.inf, e), axis=1, keepdims=True)
        sums = _segment_sum(np.where(np.isnan(e), 0.0, e), self.offsets)
        cnt = self.class_trials
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(cnt > 0, sums / cnt, np.nan)

    @functools.cached_property
    def class_errors(self) -> np.ndarray:
        """``(N, K)`` per class, the mean over its trials of the weighted error, unnormalised.

        Unlike :attr:`mean_errors`, no per-trial minimum is subtracted: the model's own estimate
        of how well each class explains the image (lower = better; ``NaN`` for a class never
        evaluated). Its minimum over the classes is the likelihood-style anomaly score
        (:func:`cytoviz.anomaly.error_certainty`).
        """
        e = self.trial_errors.astype(np.float64)
        sums = _segment_sum(np.where(np.isnan(e), 0.0, e), self.offsets)
        cnt = self.class_trials
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(cnt > 0, sums / cnt, np.nan)

    @functools.cached_property
    def scores(self) -> np.ndarray:
        """``(N, K)`` normalised class errors (METHOD.md section 1; lower = better).

        :attr:`mean_errors` divided by their mean across classes; a row whose mean is 0 (all
        classes tied) stays 0.
        """
        m = self.mean_errors
        mean = np.nanmean(m, axis=1, keepdims=True) if m.size else m[:, :1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(mean > 0, m / np.where(mean > 0, mean, 1.0), m)

    @property
    def prediction(self) -> np.ndarray:
        """``(N,)`` predicted class index: the lowest score among the classes still in play."""
        s = np.where(self.remaining & ~np.isnan(self.scores), self.scores, np.inf)
        return np.argmin(s, axis=1) if len(self) else np.zeros(0, dtype=np.int64)

    @property
    def prediction_names(self) -> np.ndarray:
        """``(N,)`` predicted class names."""
        return np.asarray(self.class_names, dtype=str)[self.prediction]

    @property
    def margin(self) -> np.ndarray:
        """``(N,)`` gap between the two smallest scores (not rescaled)."""
        s = np.sort(np.where(np.isnan(self.scores), np.inf, self.scores), axis=1)
        return s[:, 1] - s[:, 0]

    @property
    def confidence(self) -> np.ndarray:
        """``(N,)`` model confidence for the psychometric analysis (METHOD.md section 2).

        The gap between the two smallest normalised errors (:attr:`margin`), rescaled to
        ``[0, 1]`` by the minimum and maximum over the images of this result (so a
        :meth:`subset` is rescaled over the subset). All-equal gaps give 1.
        """
        g = self.margin
        if g.size == 0:
            return g
        lo, hi = np.min(g), np.max(g)
        if hi - lo <= 0:
            return np.ones_like(g)
        return (g - lo) / (hi - lo)

    @property
    def zeta(self) -> np.ndarray:
        """``(N,)`` anomaly certainty of METHOD.md section 2 on the :attr:`scores` (K >= 3)."""
        return certainty(self.scores)

    def _need_labels(self) -> np.ndarray:
        if self.labels is None:
            raise ValueError("this result has no true labels; pass labels= to classify")
        return self.labels

    @property
    def correct(self) -> np.ndarray:
        """``(N,)`` booleans: prediction equals the true label."""
        return self.prediction == self._need_labels()

    @property
    def accuracy(self) -> float:
        """Fraction of images classified correctly."""
        return float(np.mean(self.correct)) if len(self) else float("nan")

    @property
    def balanced_accuracy(self) -> float:
        """Mean over the true classes present of the per-class recall."""
        return balanced_accuracy(self._need_labels(), self.prediction)

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: one row per image.

        Columns: ``image``, ``true`` (class name, or None without labels), ``predicted``,
        ``confidence``, ``zeta`` (NaN for fewer than 3 classes), ``n_trials``, ``n_evals``,
        ``correct`` (with labels), and ``score_<class>`` for every class.
        """
        import pandas as pd

        data: dict[str, object] = {"image": np.arange(len(self))}
        names = np.asarray(self.class_names, dtype=str)
        data["true"] = names[self.labels] if self.labels is not None else [None] * len(self)
        data["predicted"] = self.prediction_names
        data["confidence"] = self.confidence
        data["zeta"] = self.zeta if self.n_classes >= 3 and len(self) else np.full(len(self), np.nan)
        data["n_trials"] = self.n_trials
        data["n_evals"] = self.n_evals
        if self.labels is not None:
            data["correct"] = self.correct
        for j, c in enumerate(self.class_names):
            data[f"score_{c}"] = self.scores[:, j]
        return pd.DataFrame(data)

    def subset(self, index: Sequence[int] | np.ndarray) -> ClassificationResult:
        """A result with only the images at ``index`` (integers or booleans), in that order."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"boolean index must have shape ({len(self)},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"index out of range for a result of {len(self)} images")
        idx = idx % max(len(self), 1)
        rows = (np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in idx])
                if idx.size else np.zeros(0, dtype=np.int64))
        return dataclasses.replace(
            self,
            trial_errors=self.trial_errors[rows],
            trial_timesteps=self.trial_timesteps[rows],
            trial_weights=self.trial_weights[rows],
            n_trials=self.n_trials[idx],
            n_evals=self.n_evals[idx],
            remaining=self.remaining[idx],
            labels=None if self.labels is None else self.labels[idx],
            error_maps=None if self.error_maps is None else self.error_maps[idx],
        )

    @classmethod
    def concat(cls, results: Sequence[ClassificationResult]) -> ClassificationResult:
        """One result with the images of ``results``, in order (the inverse of :meth:`subset`).

        Parameters
        ----------
        results
            Results of the same classes, config, mask radius and noise schedule (for example
            the chunks of one data set classified with ``first_index`` set per chunk); either
            all or none with labels, and all or none with error maps of one shape.

        Returns
        -------
        ClassificationResult
            Views such as :attr:`confidence` are recomputed over all the images.

        Raises
        ------
        ValueError
            For an empty sequence, or results whose classes, config, radius, schedule, labels
            or error maps do not match (naming the first result that differs).
        """
        results = list(results)
        if not results:
            raise ValueError("concat needs at least one ClassificationResult")
        first = results[0]
        for j, r in enumerate(results[1:], start=1):
            if not isinstance(r, ClassificationResult):
                raise TypeError(f"results[{j}] is a {type(r).__name__}, not a ClassificationResult")
            checks = (
                ("class names", r.class_names, first.class_names),
                ("config", r.config, first.config),
                ("mask radius", r.mask_radius, first.mask_radius),
                ("num_train_timesteps", r.num_train_timesteps, first.num_train_timesteps),
                ("presence of labels", r.labels is None, first.labels is None),
                ("presence of error maps", r.error_maps is None, first.error_maps is None),
            )
            for what, mine, theirs in checks:
                if mine != theirs:
                    raise ValueError(
                        f"results[{j}] differs from results[0] in its {what} ({mine!r} vs "
                        f"{theirs!r}); only results of one classification run can be joined"
                    )
            if r.error_maps is not None and r.error_maps.shape[2:] != first.error_maps.shape[2:]:  # type: ignore[union-attr]
                raise ValueError(
                    f"results[{j}] has error maps of shape {r.error_maps.shape[2:]}, results[0] "
                    f"{first.error_maps.shape[2:]}"  # type: ignore[union-attr]
                )

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(r, name) for r in results])

        return cls(
            class_names=first.class_names,
            config=first.config,
            trial_errors=cat("trial_errors"),
            trial_timesteps=cat("trial_timesteps"),
            trial_weights=cat("trial_weights"),
            n_trials=cat("n_trials"),
            n_evals=cat("n_evals"),
            remaining=cat("remaining"),
            labels=None if first.labels is None else cat("labels"),
            error_maps=None if first.error_maps is None else cat("error_maps"),
            mask_radius=first.mask_radius,
            num_train_timesteps=first.num_train_timesteps,
        )

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write to one ``.npz`` (no pickles, atomically) with a ``format_version`` field."""
        arrays: dict[str, np.ndarray] = {
            "format_version": np.asarray(FORMAT_VERSION),
            "kind": np.asarray(_KIND),
            "class_names": np.asarray(self.class_names, dtype=str),
            "config_json": np.asarray(json.dumps(self.config.to_dict())),
            "trial_errors": self.trial_errors,
            "trial_timesteps": self.trial_timesteps,
            "trial_weights": self.trial_weights,
            "n_trials": self.n_trials,
            "n_evals": self.n_evals,
            "remaining": self.remaining,
            "mask_radius": np.asarray(self.mask_radius),
            "num_train_timesteps": np.asarray(self.num_train_timesteps),
        }
        if self.labels is not None:
            arrays["labels"] = self.labels
        if self.error_maps is not None:
            arrays["error_maps"] = self.error_maps
        return save_npz(path, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ClassificationResult:
        """Read a result written by :meth:`save`."""
        data = load_npz(path)
        if str(data.get("kind", "")) != _KIND:
            raise ValueError(f"{path}: not a cytoviz ClassificationResult file")
        version = int(data["format_version"])
        if version != FORMAT_VERSION:
            raise ValueError(
                f"{path}: written with result format version {version}, this cytoviz reads "
                f"version {FORMAT_VERSION}; rerun the classification or install a matching cytoviz"
            )
        return cls(
            class_names=tuple(str(c) for c in data["class_names"]),
            config=ClassifyConfig.from_dict(json.loads(str(data["config_json"]))),
            trial_errors=data["trial_errors"],
            trial_timesteps=data["trial_timesteps"],
            trial_weights=data["trial_weights"],
            n_trials=data["n_trials"],
            n_evals=data["n_evals"],
            remaining=data["remaining"],
            labels=data.get("labels"),
            error_maps=data.get("error_maps"),
            mask_radius=int(data["mask_radius"]),
            num_train_timesteps=int(data["num_train_timesteps"]),
        )


def _segment_sum(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum ``values`` rows within each ``[offsets[i], offsets[i+1])`` segment (empty -> 0)."""
    values = np.asarray(values, dtype=np.float64)
    cs = np.concatenate([np.zeros((1, *values.shape[1:])), np.cumsum(values, axis=0)])
    out = cs[offsets[1:]] - cs[offsets[:-1]]
    return out
