"""Domain-shift presets that imitate other laboratories (stain, camera, magnification).

A :class:`DomainShift` changes how a synthetic smear is *rendered* (stain hue and intensity,
illumination, magnification) and how it is *recorded* (camera resolution, blur, noise, JPEG
compression). The stain and magnification parts act at generation time inside
:func:`cytoviz.data.synthesize`, so the ground-truth masks stay aligned with the image; the camera
part (:func:`apply_camera`) never moves a pixel, so masks stay valid as they are.

The named presets in :data:`DOMAINS` follow the paper's domain-shift protocol (METHOD.md section 7):
``"mild"`` imitates Raabin-WBC Test-B (same kind of stain, another microscope and camera) and
``"strong"`` imitates LISC (another stain, camera and magnification).
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np

from cytoviz._config import Config

__all__ = ["DOMAINS", "DomainShift", "apply_camera", "get_domain", "rotate_hue"]


@dataclasses.dataclass(frozen=True)
class DomainShift(Config):
    """How another laboratory's smears differ from the reference domain.

    Parameters
    ----------
    name
        Label stored in the ``domain`` metadata column.
    hue_shift_deg
        Rotation of every stain's optical-density vector about the grey axis, in degrees
        (a different stain batch or protocol).
    stain_intensity
        Multiplier of all stain optical densities (1 = unchanged; > 1 darker).
    stain_saturation
        Multiplier of the colour part of each stain's optical density (1 = unchanged;
        < 1 greyer stains).
    illumination
        Multiplier of the (R, G, B) illumination, i.e. of the background colour.
    scale
        Magnification relative to the reference (cells appear ``scale`` times larger).
    resolution
        Camera resolution relative to the image size: the image is resampled to
        ``resolution * size`` and back (< 1 loses detail, > 1 is a no-op on detail).
    blur_px
        Standard deviation of a Gaussian defocus blur, in output pixels.
    noise_std
        Standard deviation of additive Gaussian sensor noise (intensities in [0, 1]).
    jpeg_quality
        JPEG quality (1-95) of a lossy compression round trip; ``None`` for none.
    """

    name: str = "custom"
    hue_shift_deg: float = 0.0
    stain_intensity: float = 1.0
    stain_saturation: float = 1.0
    illumination: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0
    resolution: float = 1.0
    blur_px: float = 0.0
    noise_std: float = 0.0
    jpeg_quality: int | None = None

    def validate(self) -> None:
        if not self.name:
            raise ValueError("DomainShift.name must be a non-empty string")
        if not -180.0 <= self.hue_shift_deg <= 180.0:
            raise ValueError(f"hue_shift_deg must lie in [-180, 180], got {self.hue_shift_deg}")
        for field in ("stain_intensity", "stain_saturation"):
            value = getattr(self, field)
            if not 0.1 <= value <= 5.0:
                raise ValueError(f"{field} must lie in [0.1, 5], got {value}")
        if len(self.illumination) != 3 or not all(0.3 <= v <= 1.5 for v in self.illumination):
            raise ValueError(
                f"illumination must be three multipliers in [0.3, 1.5], got {self.illumination}"
            )
        if not 0.5 <= self.scale <= 2.0:
            raise ValueError(f"scale must lie in [0.5, 2], got {self.scale}")
        if not 0.1 <= self.resolution <= 4.0:
            raise ValueError(f"resolution must lie in [0.1, 4], got {self.resolution}")
        if not 0.0 <= self.blur_px <= 10.0:
            raise ValueError(f"blur_px must lie in [0, 10], got {self.blur_px}")
        if not 0.0 <= self.noise_std <= 0.5:
            raise ValueError(f"noise_std must lie in [0, 0.5], got {self.noise_std}")
        if self.jpeg_quality is not None and not 1 <= int(self.jpeg_quality) <= 95:
            raise ValueError(f"jpeg_quality must lie in [1, 95] or be None, got {self.jpeg_quality}")


#: Named presets. ``"reference"`` is the training domain (no shift).
DOMAINS: dict[str, DomainShift] = {
    "reference": DomainShift(name="reference"),
    # Raabin-WBC Test-B: same stain family, another microscope/camera; slightly cooler light,
    # a touch of defocus and JPEG.
    "mild": DomainShift(
        name="mild", hue_shift_deg=-8.0, stain_intensity=0.9, stain_saturation=0.95,
        illumination=(0.96, 0.99, 1.04), scale=1.08, resolution=0.8, blur_px=0.4,
        noise_std=0.012, jpeg_quality=85,
    ),
    # LISC: a different stain (bluer nuclei, greyer red cells), another camera with lower
    # resolution, stronger blur and compression, and a lower magnification.
    "strong": DomainShift(
        name="strong", hue_shift_deg=-25.0, stain_intensity=1.25, stain_saturation=0.8,
        illumination=(0.92, 0.97, 1.06), scale=0.85, resolution=0.6, blur_px=0.7,
        noise_std=0.025, jpeg_quality=60,
    ),
}


def get_domain(domain: str | DomainShift | None) -> DomainShift:
    """Resolve a preset name (or ``None`` for the reference domain) to a :class:`DomainShift`."""
    if domain is None:
        return DOMAINS["reference"]
    if isinstance(domain, DomainShift):
        return domain
    if isinstance(domain, str) and domain in DOMAINS:
        return DOMAINS[domain]
    raise ValueError(
        f"unknown domain {domain!r}; use one of {sorted(DOMAINS)} or a DomainShift(...)"
    )


def rotate_hue(vectors: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate RGB vectors (last axis) about the grey axis (1, 1, 1) by ``degrees``.

    Applied to optical-density vectors this changes the hue of a stain and keeps its
    overall darkness (the projection on the grey axis).
    """
    theta = np.deg2rad(degrees)
    k = np.full(3, 1.0 / np.sqrt(3.0))
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    rot = np.eye(3) + np.sin(theta) * kx + (1.0 - np.cos(theta)) * (kx @ kx)
    return np.asarray(vectors, dtype=float) @ rot.T


def apply_camera(
    image: np.ndarray, shift: DomainShift, rng: np.random.Generator
) -> np.ndarray:
    """Record one float RGB image in [0, 1] with the camera of ``shift``; returns uint8.

    Resolution loss, defocus blur, sensor noise and JPEG compression in that order. Nothing
    moves, so ground-truth masks stay aligned.
    """
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    img = np.clip(np.asarray(image, dtype=float), 0.0, 1.0)
    size = img.shape[0]
    if shift.resolution < 0.999:
        low = max(4, round(size * shift.resolution))
        pil = Image.fromarray(np.round(img * 255).astype(np.uint8))
        pil = pil.resize((low, low), Image.BILINEAR).resize((size, size), Image.BILINEAR)
        img = np.asarray(pil, dtype=float) / 255.0
    if shift.blur_px > 0:
        img = gaussian_filter(img, sigma=(shift.blur_px, shift.blur_px, 0), mode="nearest")
    if shift.noise_std > 0:
        img = img + rng.normal(0.0, shift.noise_std, img.shape)
    out = np.round(np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)
    if shift.jpeg_quality is not None:
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=int(shift.jpeg_quality))
        buf.seek(0)
        out = np.asarray(Image.open(buf).convert("RGB"), dtype=np.uint8)
    return out
