"""Counterfactual heatmaps: views of a classification result (METHOD.md section 3).

For each class ``c`` the classifier accumulates ``Delta_c``, the mean over its trials of the latent
noise-prediction difference ``eps - eps_theta(z_t, t, c)`` inside the centre disc, with each trial's
augmentation undone (:attr:`ClassificationResult.error_maps`). With ``c_hat`` the predicted class,
``delta_c = Delta_c - Delta_c_hat`` and the heatmap is the VAE decode
``H_c = D(gain * delta_c / scaling_factor)`` (the reference code's gain of 28). Nothing here runs the
UNet: a K x K transition grid costs the K classification passes that produced the result, plus
the decodes.

Overlay (Figure 5): the pixels of the heatmap whose colour lies within mean +/- k std (k = 3.5) of
the heatmap's background colour are neutral and the rest are painted over the original image.
cytoviz estimates the background colour from the heatmap pixels outside the (upsampled) latent
disc, where ``delta_c`` is zero by construction; the standard deviation is floored at 1e-3 of the
colour range so that a perfectly flat background does not turn every decoding ripple into signal
(a deviation from the reference code, which takes the statistics of the whole heatmap image).

The *magnitude* is what the energy checks use: the change that ``delta_c`` makes to the decode,
``H_c - D(0)``, minus its mean over the background pixels (outside the latent disc, where
``delta_c`` is zero), as an absolute value summed over the colour channels. Decoding a scaled
``delta_c`` shifts the colour of the whole image, far outside the disc (the decoder's group
normalisation and attention are global); the overlay already treats the heatmap's background
colour as neutral, and the magnitude does the same. It is zero for the transition to the
predicted class (``delta = 0``). ``background_shift`` keeps the removed colour shift, and
``|H_c - D(0)|`` is ``magnitude_raw`` (a choice of cytoviz for a quantitative check; METHOD.md
defines the heatmap and the overlay, not an energy).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cytoviz._config import Config
from cytoviz.diffusion.classify import classify
from cytoviz.diffusion.classify_config import ClassifyConfig

if TYPE_CHECKING:
    import pandas as pd

    from cytoviz.data import CellDataset
    from cytoviz.diffusion import ClassificationResult, DiffusionModel

__all__ = [
    "CounterfactualHeatmaps",
    "HeatmapConfig",
    "classify_for_heatmaps",
    "counterfactual_heatmaps",
    "grid_sources",
    "heatmap_energy",
]


@dataclasses.dataclass(frozen=True)
class HeatmapConfig(Config):
    """Settings of the heatmap decode and overlay.

    Parameters
    ----------
    gain
        Multiplier of ``delta_c`` before decoding, in units of ``1 / scaling_factor`` (the
        reference code's 28).
    threshold_k
        Overlay threshold: pixels within mean +/- ``threshold_k`` std of the background colour
        are neutral.
    batch_size
        Latents decoded per VAE call.
    """

    gain: float = 28.0
    threshold_k: float = 3.5
    batch_size: int = 64

    def validate(self) -> None:
        if not np.isfinite(self.gain) or self.gain <= 0:
            raise ValueError(f"gain must be a positive number, got {self.gain}")
        if not np.isfinite(self.threshold_k) or self.threshold_k < 0:
            raise ValueError(f"threshold_k must be >= 0, got {self.threshold_k}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclasses.dataclass(frozen=True, eq=False)
class CounterfactualHeatmaps:
    """Decoded counterfactual heatmaps for some images of a classification result.

    Attributes
    ----------
    images
        ``(n, H, W, 3)`` uint8 source images.
    heatmaps
        ``(n, K, H, W, 3)`` float32 decoded heatmaps ``H_c`` in ``[0, 1]`` (clipped).
    magnitude
        ``(n, K, H, W)`` float32 ``|H_c - D(0) - s_c|`` summed over channels (before clipping),
        where ``s_c`` is the mean of ``H_c - D(0)`` over the background pixels: the change the
        counterfactual makes to the decode, without the decoder's uniform colour shift.
    magnitude_raw
        ``(n, K, H, W)`` float32 ``|H_c - D(0)|`` summed over channels (with the shift).
    background_shift
        ``(n, K, 3)`` float32 ``s_c`` in the decoder's ``[-1, 1]`` colour scale.
    background
        ``(n, K, H, W)`` bool: the pixels used for the background colour statistics.
    source_index
        ``(n,)`` indices of the images in the classification result.
    predicted, true
        ``(n,)`` predicted class indices and true labels (``-1`` when unknown).
    class_names
        The classes, in the result's order (``heatmaps[:, c]`` is the transition to class c).
    config
        The :class:`HeatmapConfig` used.
    """

    images: np.ndarray
    heatmaps: np.ndarray
    magnitude: np.ndarray
    background: np.ndarray
    source_index: np.ndarray
    predicted: np.ndarray
    true: np.ndarray
    class_names: tuple[str, ...]
    config: HeatmapConfig
    magnitude_raw: np.ndarray | None = None
    background_shift: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        return (
            f"CounterfactualHeatmaps({len(self)} source images x {len(self.class_names)} target "
            f"classes, {self.images.shape[1]} px, gain {self.config.gain})"
        )

    def _pos(self, i: int) -> int:
        if not -len(self) <= i < len(self):
            raise IndexError(f"source position {i} out of range for {len(self)} heatmap sources")
        return i % len(self)

    def _target(self, target: int | str) -> int:
        if isinstance(target, str):
            if target not in self.class_names:
                raise ValueError(f"unknown class {target!r}; classes are {list(self.class_names)}")
            return self.class_names.index(target)
        if not 0 <= int(target) < len(self.class_names):
            raise IndexError(f"target class {target} out of range for {len(self.class_names)} classes")
        return int(target)

    def neutral(self, i: int, target: int | str, threshold_k: float | None = None) -> np.ndarray:
        """``(H, W)`` bool: heatmap pixels within mean +/- k std of the background colour."""
        i, c = self._pos(i), self._target(target)
        k = self.config.threshold_k if threshold_k is None else float(threshold_k)
        if k < 0:
            raise ValueError(f"threshold_k must be >= 0, got {k}")
        h = self.heatmaps[i, c]
        bg = h[self.background[i, c]]
        if bg.size == 0:  # no background pixels (mask covers the image): use the whole image
            bg = h.reshape(-1, 3)
        mean = bg.mean(axis=0)
        std = np.maximum(bg.std(axis=0), 1e-3)
        return np.all(np.abs(h - mean) <= k * std, axis=-1)

    def overlay(self, i: int, target: int | str, threshold_k: float | None = None,
                *, alpha: float = 0.85) -> np.ndarray:
        """``(H, W, 3)`` uint8: the original image with the non-neutral heatmap pixels over it."""
        i, c = self._pos(i), self._target(target)
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        keep = ~self.neutral(i, c, threshold_k)
        out = self.images[i].astype(np.float32) / 255.0
        heat = self.heatmaps[i, c]
        out[keep] = (1 - alpha) * out[keep] + alpha * heat[keep]
        return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)

    def heatmap_uint8(self, i: int, target: int | str) -> np.ndarray:
        """``(H, W, 3)`` uint8 heatmap image."""
        i, c = self._pos(i), self._target(target)
        return np.clip(np.rint(self.heatmaps[i, c] * 255), 0, 255).astype(np.uint8)


#: ClassifyConfig fields that :func:`classify_for_heatmaps` sets itself.
_HEATMAP_RUN_FIELDS = ("pruning", "keep_error_maps", "min_trials", "max_trials")


def classify_for_heatmaps(
    model: DiffusionModel,
    images: CellDataset | np.ndarray,
    *,
    trials: int = 200,
    seed: int = 0,
    labels: np.ndarray | None = None,
    progress: bool = True,
    **config_changes: Any,
) -> ClassificationResult:
    """Classify for heatmaps as the reference code does: pruning off, error maps kept.

    Every class of every image is evaluated on the same ``trials`` trials (no class is dropped
    early), so every ``Delta_c`` averages the same noise draws and the heatmaps of all target
    classes are equally reliable. With pruning on, a class dropped after 20 trials has a much
    noisier ``Delta_c`` than the prediction's.

    Parameters
    ----------
    model
        The diffusion model.
    images
        A :class:`~cytoviz.data.CellDataset` (its labels are kept, so :func:`grid_sources`
        works on the result) or ``uint8`` images ``(N, H, W, 3)``.
    trials
        Trials per image, each evaluating every class (``K * trials`` UNet evaluations per
        image; the notebooks use 200, the paper's classification budget is 2000). At least 2.
    seed
        Seed of the timestep shuffle and of every image's noise and augmentation.
    labels
        Optional true labels ``(N,)`` (overrides the data set's).
    progress
        Show a progress bar over images.
    **config_changes
        Any other :class:`~cytoviz.diffusion.ClassifyConfig` field (``weighting``, ``tta``,
        ``batch_size``, ``device``, ...). ``pruning``, ``keep_error_maps``, ``min_trials`` and
        ``max_trials`` are set here and refused.

    Returns
    -------
    ClassificationResult
        ``n_trials == trials`` and ``class_trials == trials`` for every image and class, with
        the per-class error maps; its :attr:`~ClassificationResult.config` records
        ``pruning=False``.

    See Also
    --------
    grid_sources : one source image per class from this result.
    counterfactual_heatmaps : decode the heatmaps of the chosen images.

    Examples
    --------
    The Figure 6 grid: classify, pick one source per class, decode (no second UNet pass).

    >>> result = classify_for_heatmaps(model, cells, trials=50)  # doctest: +SKIP
    >>> sources = grid_sources(result)  # doctest: +SKIP
    >>> heatmaps = counterfactual_heatmaps(result, model, cells, indices=sources)  # doctest: +SKIP

    To spend the full budget only on the sources, pick them from a cheaper (pruned) pass and
    classify just those cells again: ``cells.subset(grid_sources(first_pass))``.
    """
    fixed = sorted(set(config_changes) & set(_HEATMAP_RUN_FIELDS))
    if fixed:
        raise ValueError(
            f"classify_for_heatmaps sets {fixed} itself (pruning off, error maps kept, "
            "trials= per image); use cytoviz.diffusion.classify for other settings"
        )
    if int(trials) < 2:
        raise ValueError(f"trials must be >= 2, got {trials}")
    config = ClassifyConfig.from_dict({
        **config_changes, "min_trials": int(trials), "max_trials": int(trials),
        "pruning": False, "keep_error_maps": True, "seed": int(seed),
    })
    return classify(model, images, config, labels=labels, progress=progress)


def counterfactual_heatmaps(
    result: ClassificationResult,
    model: DiffusionModel,
    images: CellDataset | np.ndarray,
    *,
    indices: Sequence[int] | np.ndarray | None = None,
    config: HeatmapConfig | None = None,
) -> CounterfactualHeatmaps:
    """Decode the counterfactual heatmaps of some images of a classification result.

    Parameters
    ----------
    result
        A result of :func:`cytoviz.diffusion.classify` run with ``keep_error_maps=True``,
        ideally from :func:`classify_for_heatmaps` (pruning off, so every class has the same
        number of trials, as in the reference heatmap runs).
    model
        The model that produced ``result`` (only its VAE decoder is used).
    images
        The images that were classified (a :class:`~cytoviz.data.CellDataset` or a uint8
        ``(N, H, W, 3)`` array in the result's order). A model with an ``input_crop`` decodes
        heatmaps of its crop, so the returned ``images`` are cropped the same way.
    indices
        Which images of the result to decode (default: all).
    config
        Gain and overlay threshold.

    Returns
    -------
    CounterfactualHeatmaps
    """
    import torch

    config = config or HeatmapConfig()
    if result.error_maps is None:
        raise ValueError(
            "this classification result has no error maps; classify with "
            "ClassifyConfig(keep_error_maps=True) to get heatmaps"
        )
    if tuple(result.class_names) != tuple(model.class_names):
        raise ValueError(
            f"the result's classes {list(result.class_names)} differ from the model's "
            f"{list(model.class_names)}; use the model that produced the result"
        )
    arr = images.images if hasattr(images, "images") else np.asarray(images)
    labels = getattr(images, "labels", None)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {arr.dtype} {arr.shape}")
    arr = model.crop_input(arr)  # what the model saw (its input_crop, if any)
    if arr.shape[0] != len(result):
        raise ValueError(
            f"{arr.shape[0]} images for a result of {len(result)} images; pass the images that "
            "were classified, in the same order"
        )
    idx = np.arange(len(result)) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx.size == 0:
        raise ValueError("no images selected for heatmaps")
    if idx.min() < 0 or idx.max() >= len(result):
        raise IndexError(f"indices must lie in [0, {len(result) - 1}]")

    maps = result.error_maps[idx]  # (n, K, C, h, w)
    pred = result.prediction[idx]
    delta = maps - maps[np.arange(len(idx)), pred][:, None]  # delta_c = Delta_c - Delta_c_hat
    n, k = delta.shape[:2]
    flat = delta.reshape(n * k, *delta.shape[2:])
    dev = model.device
    dtype = next(model.vae.parameters()).dtype
    scale = config.gain / model.scaling_factor
    outs: list[np.ndarray] = []
    with torch.inference_mode():
        zero = torch.zeros((1, *flat.shape[1:]), device=dev, dtype=dtype)
        base = model.vae.decode(zero).sample.float().cpu().numpy()[0]  # D(0)
        for s in range(0, flat.shape[0], config.batch_size):
            z = torch.from_numpy(flat[s : s + config.batch_size]).to(dev, dtype) * scale
            outs.append(model.vae.decode(z).sample.float().cpu().numpy())
    dec = np.concatenate(outs).reshape(n, k, 3, *outs[0].shape[-2:])  # [-1, 1] image space
    size = arr.shape[1]
    if dec.shape[-1] != size:
        raise ValueError(
            f"decoded heatmaps are {dec.shape[-1]} px but the images are {size} px; the images "
            "must be those the model classified (resized to the model's image size)"
        )
    heat = np.clip((dec.transpose(0, 1, 3, 4, 2) + 1) / 2, 0, 1).astype(np.float32)
    # Background: image pixels whose latent cell lies outside the disc (delta is zero there).
    mask = result.mask  # (h, w)
    up = np.kron(mask, np.ones((size // mask.shape[0], size // mask.shape[1]), dtype=bool))
    background = np.broadcast_to(~up, (n, k, size, size)).copy()
    change = dec - base[None, None]  # (n, K, 3, H, W)
    shift = (change[..., ~up].mean(axis=-1) if (~up).any()
             else np.zeros(change.shape[:3], dtype=change.dtype))  # (n, K, 3)
    magnitude_raw = np.abs(change).sum(axis=2).astype(np.float32)
    magnitude = np.abs(change - shift[..., None, None]).sum(axis=2).astype(np.float32)
    true = labels[idx] if labels is not None else (
        result.labels[idx] if result.labels is not None else np.full(n, -1)
    )
    return CounterfactualHeatmaps(
        images=arr[idx],
        heatmaps=heat,
        magnitude=magnitude,
        background=background,
        magnitude_raw=magnitude_raw,
        background_shift=shift.astype(np.float32),
        source_index=idx,
        predicted=pred.astype(np.int64),
        true=np.asarray(true, dtype=np.int64),
        class_names=tuple(result.class_names),
        config=config,
    )


def grid_sources(result: ClassificationResult, *, labels: np.ndarray | None = None,
                 prefer: str = "confident") -> np.ndarray:
    """Pick one source image per class for the Figure 6 grid.

    Parameters
    ----------
    result
        The classification result.
    labels
        True labels (default: the result's labels).
    prefer
        ``"confident"``: the correctly classified image of each class with the highest
        confidence (falls back to any image of the class); ``"first"``: the first image.

    Returns
    -------
    numpy.ndarray
        ``(K,)`` indices into the result, in class order; ``-1`` for a class with no image.
    """
    y = result.labels if labels is None else np.asarray(labels)
    if y is None:
        raise ValueError("grid_sources needs true labels (pass labels= or classify with labels)")
    if prefer not in ("confident", "first"):
        raise ValueError(f"prefer must be 'confident' or 'first', got {prefer!r}")
    conf = result.confidence
    pred = result.prediction
    out = np.full(result.n_classes, -1, dtype=np.int64)
    for c in range(result.n_classes):
        cand = np.flatnonzero(y == c)
        if cand.size == 0:
            continue
        if prefer == "first":
            out[c] = cand[0]
            continue
        good = cand[pred[cand] == c]
        pool = good if good.size else cand
        out[c] = pool[np.argmax(conf[pool])]
    return out


def heatmap_energy(
    heatmaps: CounterfactualHeatmaps,
    masks: np.ndarray,
    *,
    pairs: Sequence[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """Where the heatmap energy lies, per source image and transition.

    Parameters
    ----------
    heatmaps
        Decoded heatmaps.
    masks
        ``(n, 3, H, W)`` ground-truth masks (nucleus, cytoplasm, granules) of the source images,
        as the synthetic generator provides (:attr:`CellDataset.masks`, same order as
        ``heatmaps.source_index``). Masks of the images as they were classified are
        centre-cropped to the heatmaps' size, as :func:`counterfactual_heatmaps` cropped the
        images for a model with an ``input_crop``.
    pairs
        ``(source class, target class)`` transitions to report (default: all off-diagonal
        transitions from each image's true class).

    Returns
    -------
    pandas.DataFrame
        One row per (image, target): ``source``, ``target``, ``inside`` / ``outside`` (mean
        magnitude inside / outside the cell), ``ratio`` (inside / outside), ``cytoplasm_share``
        and ``nucleus_share`` (shares of the in-cell energy).
    """
    import pandas as pd

    masks = np.asarray(masks, dtype=bool)
    n = len(heatmaps)
    size = heatmaps.magnitude.shape[-1]
    if (masks.ndim == 4 and masks.shape[2] == masks.shape[3] > size
            and (masks.shape[2] - size) % 2 == 0):
        lo = (masks.shape[2] - size) // 2  # the crop counterfactual_heatmaps applied
        masks = masks[..., lo:lo + size, lo:lo + size]
    if masks.shape[:2] != (n, 3) or masks.shape[2:] != heatmaps.magnitude.shape[2:]:
        raise ValueError(f"masks must have shape ({n}, 3, {size}, {size}) (or that of the "
                         f"classified images), got {masks.shape}")
    names = heatmaps.class_names
    rows = []
    for i in range(n):
        src = int(heatmaps.true[i]) if heatmaps.true[i] >= 0 else int(heatmaps.predicted[i])
        nucleus, cytoplasm = masks[i, 0], masks[i, 1]
        cell = nucleus | cytoplasm
        for c in range(len(names)):
            if c == src:
                continue
            if pairs is not None and (names[src], names[c]) not in pairs:
                continue
            mag = heatmaps.magnitude[i, c]
            inside = float(mag[cell].mean()) if cell.any() else float("nan")
            outside = float(mag[~cell].mean()) if (~cell).any() else float("nan")
            total = float(mag[cell].sum())
            rows.append(
                {
                    "image": int(heatmaps.source_index[i]),
                    "source": names[src],
                    "target": names[c],
                    "inside": inside,
                    "outside": outside,
                    "ratio": inside / outside if outside > 0 else float("inf"),
                    "cytoplasm_share": float(mag[cytoplasm & ~nucleus].sum()) / total
                    if total > 0 else float("nan"),
                    "nucleus_share": float(mag[nucleus].sum()) / total if total > 0 else float("nan"),
                }
            )
    return pd.DataFrame(rows)
