"""Reinhard colour transfer in CIELAB (few-shot domain adaptation, Chossegros et al.).

Each image is converted from sRGB to CIELAB (D65 white point), its per-channel mean and standard
deviation are moved to those of a reference style, and it is converted back (Reinhard et al.,
"Color transfer between images", 2001, applied in CIELAB as in Chossegros et al.). NumPy only.

Examples
--------
>>> import numpy as np
>>> from cytoviz.evaluation.colour import lab_stats, reinhard_transfer
>>> rng = np.random.default_rng(0)
>>> src = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
>>> ref = lab_stats(rng.integers(100, 200, (4, 8, 8, 3), dtype=np.uint8))
>>> reinhard_transfer(src, ref).shape
(2, 8, 8, 3)
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["LabStats", "lab_stats", "lab_to_rgb", "reinhard_transfer", "rgb_to_lab"]

# sRGB (D65) <-> XYZ matrices (IEC 61966-2-1) and the D65 reference white.
_RGB_TO_XYZ = np.array([
    [0.4124564, 0.3575761, 0.1804375],
    [0.2126729, 0.7151522, 0.0721750],
    [0.0193339, 0.1191920, 0.9503041],
])
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE = _RGB_TO_XYZ @ np.ones(3)
_EPS = (6.0 / 29.0) ** 3
_KAPPA = (29.0 / 6.0) ** 2 / 3.0


def _as_float_rgb(images: np.ndarray) -> np.ndarray:
    arr = np.asarray(images)
    if arr.shape[-1:] != (3,):
        raise ValueError(f"images must end in an RGB axis of length 3, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and (np.nanmin(arr) < -1e-6 or np.nanmax(arr) > 1 + 1e-6):
            raise ValueError(
                "float images must lie in [0, 1]; pass uint8 images or divide by 255 first"
            )
        return arr.astype(np.float64)
    raise ValueError(f"images must be uint8 or float in [0, 1], got dtype {arr.dtype}")


def rgb_to_lab(images: np.ndarray) -> np.ndarray:
    """sRGB (``uint8`` or float in [0, 1], last axis RGB) to CIELAB (D65), float64.

    L lies in [0, 100]; a and b roughly in [-128, 127].
    """
    rgb = _as_float_rgb(images)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > _EPS, np.cbrt(xyz), xyz * _KAPPA + 4.0 / 29.0)
    L = 116.0 * f[..., 1] - 16.0
    a = 500.0 * (f[..., 0] - f[..., 1])
    b = 200.0 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1)


def lab_to_rgb(lab: np.ndarray, *, as_uint8: bool = True) -> np.ndarray:
    """CIELAB (D65) back to sRGB, clipped to the gamut; ``uint8`` by default, else float [0, 1]."""
    lab = np.asarray(lab, dtype=np.float64)
    if lab.shape[-1:] != (3,):
        raise ValueError(f"lab must end in an axis of length 3, got shape {lab.shape}")
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = np.where(f > 6.0 / 29.0, f**3, (f - 4.0 / 29.0) / _KAPPA) * _WHITE
    linear = np.clip(xyz @ _XYZ_TO_RGB.T, 0.0, 1.0)
    rgb = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    rgb = np.clip(rgb, 0.0, 1.0)
    return np.rint(rgb * 255.0).astype(np.uint8) if as_uint8 else rgb


@dataclasses.dataclass(frozen=True)
class LabStats:
    """Per-channel CIELAB mean and standard deviation of a colour style.

    Attributes
    ----------
    mean, std
        Arrays of length 3 (L, a, b).
    """

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        std = np.asarray(self.std, dtype=np.float64).reshape(-1)
        if mean.shape != (3,) or std.shape != (3,):
            raise ValueError(f"mean and std must have 3 values (L, a, b), got {mean} and {std}")
        if not np.all(np.isfinite(mean)) or not np.all(std > 0):
            raise ValueError(f"need finite means and positive standard deviations, got {mean}, {std}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def to_dict(self) -> dict[str, list[float]]:
        """Plain lists, for JSON."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


def lab_stats(images: np.ndarray) -> LabStats:
    """The reference style: CIELAB mean and std over all pixels of ``images``.

    Parameters
    ----------
    images
        ``(..., 3)`` RGB images, ``uint8`` or float in [0, 1] (one image or a stack).
    """
    lab = rgb_to_lab(images).reshape(-1, 3)
    if lab.shape[0] < 2:
        raise ValueError("lab_stats needs at least 2 pixels")
    std = lab.std(axis=0)
    return LabStats(lab.mean(axis=0), np.maximum(std, 1e-6))


def reinhard_transfer(
    images: np.ndarray, reference_stats: LabStats, *, per_image: bool = True
) -> np.ndarray:
    """Move each image's CIELAB mean and std onto the reference style (Reinhard transfer).

    Parameters
    ----------
    images
        ``(N, H, W, 3)`` or ``(H, W, 3)`` ``uint8`` RGB images.
    reference_stats
        Target style, e.g. ``lab_stats(source_training_images)``.
    per_image
        Match the statistics of every image separately (default, as in Chossegros et al.);
        ``False`` uses the statistics of the whole stack (one shift for all images).

    Returns
    -------
    numpy.ndarray
        ``uint8`` images of the same shape. Per channel ``l' = (l - mu_s) * sd_r / sd_s + mu_r``;
        out-of-gamut colours are clipped, so the match is close, not exact, for extreme shifts.
    """
    if not isinstance(reference_stats, LabStats):
        raise TypeError(
            f"reference_stats must be a LabStats (from lab_stats(...)), got "
            f"{type(reference_stats).__name__}"
        )
    arr = np.asarray(images)
    single = arr.ndim == 3
    if single:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"images must have shape (N, H, W, 3) or (H, W, 3), got {arr.shape}")
    lab = rgb_to_lab(arr)
    axes = (1, 2) if per_image else (0, 1, 2)
    mu = lab.mean(axis=axes, keepdims=True)
    sd = np.maximum(lab.std(axis=axes, keepdims=True), 1e-6)
    out = (lab - mu) / sd * reference_stats.std + reference_stats.mean
    rgb = lab_to_rgb(out)
    return rgb[0] if single else rgb
