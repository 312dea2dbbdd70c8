"""One image of any size and mode to a square ``uint8`` RGB array (private).

:func:`prepare_image` is what every loader of :mod:`cytoviz.data.loaders` applies to each
file; :class:`ImageLoadError` names the file that cannot be read. Both are public as
``cytoviz.data.prepare_image`` and ``cytoviz.data.ImageLoadError``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["ImageLoadError", "prepare_image"]


class ImageLoadError(ValueError):
    """An image file that cannot be read (corrupt, truncated, empty, too large, unreadable)."""


# --------------------------------------------------------------------------------------------
# one image


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """Any PIL mode to ``(H, W, 3)`` uint8: alpha composited on white, 16/32-bit scaled to 8-bit."""
    from PIL import Image

    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        return _grey_to_rgb(_scale_to_8bit(arr, mode))
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def _scale_to_8bit(arr: np.ndarray, mode: str) -> np.ndarray:
    finite = arr[np.isfinite(arr)]
    top = float(finite.max()) if finite.size else 0.0
    if mode.startswith("I;16") or 255.0 < top <= 65535.0:
        scaled = arr / 257.0  # 16-bit range onto 8-bit
    elif mode == "F" and top <= 1.0:
        scaled = arr * 255.0  # float images in [0, 1]
    elif top > 65535.0:
        scaled = arr * (255.0 / top)
    else:
        scaled = arr
    return np.clip(np.nan_to_num(scaled), 0, 255).round().astype(np.uint8)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=-1)


def _array_to_rgb(arr: np.ndarray, name: str) -> np.ndarray:
    """A numpy image (grey, RGB or RGBA; uint8, uint16, bool or float in [0, 1]) to uint8 RGB."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ImageLoadError(
            f"{name}: expected an image array (H, W), (H, W, 3) or (H, W, 4), got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageLoadError(f"{name}: the image is empty (shape {arr.shape})")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = (arr.astype(np.float64) / 257.0).round().astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        top = float(np.nanmax(arr)) if arr.size else 0.0
        arr = np.clip(np.nan_to_num(arr) * (255.0 if top <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        return _grey_to_rgb(arr)
    if arr.shape[-1] == 4:
        alpha = arr[..., 3:4].astype(np.float64) / 255.0
        rgb = arr[..., :3] * alpha + 255.0 * (1.0 - alpha)
        return rgb.round().astype(np.uint8)
    return arr


#: Held while PIL's global pixel limit is changed for one file (``max_image_pixels``).
_PIXEL_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _pixel_limit(max_image_pixels: int | None) -> Iterator[None]:
    """PIL's decompression-bomb limit set to ``max_image_pixels`` for one file, then restored."""
    from PIL import Image

    if max_image_pixels is None:
        yield
        return
    if isinstance(max_image_pixels, bool) or int(max_image_pixels) < 1:
        raise ValueError(f"max_image_pixels must be a positive number of pixels, got "
                         f"{max_image_pixels!r}")
    with _PIXEL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = int(max_image_pixels)
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _open(path: Path, max_image_pixels: int | None = None) -> Image.Image:
    """Open and fully decode an image file, turning every failure into an ImageLoadError."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not path.exists():
        raise ImageLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageLoadError(f"{path}: is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{path}: the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings(), _pixel_limit(max_image_pixels):
            # Keep PIL's decompression-bomb protection, and make its warning an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                n_frames = int(getattr(im, "n_frames", 1))
                im.load()
                img = ImageOps.exif_transpose(im)
                img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(
            f"{path}: the image is too large to load safely ({exc}). If you trust this file, "
            "raise the limit: max_image_pixels=N (--max-image-pixels N on the command line; "
            "PIL.Image.MAX_IMAGE_PIXELS is the default), or crop the cells out of it first."
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(
            f"{path}: not a readable image (unknown format or corrupt file)"
        ) from exc
    except PermissionError as exc:
        raise ImageLoadError(f"{path}: permission denied; check the file's access rights") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageLoadError(
            f"{path}: the image could not be decoded ({exc}); the file may be truncated or corrupt"
        ) from exc
    if img.width < 1 or img.height < 1:
        raise ImageLoadError(f"{path}: the image is empty ({img.width}x{img.height} px)")
    if n_frames > 1:
        warnings.warn(f"{path}: an animated or multi-page image of {n_frames} frames; using its "
                      "first frame", UserWarning, stacklevel=4)
    return img


def prepare_image(
    image: str | os.PathLike[str] | Image.Image | np.ndarray,
    image_size: int = 64,
    *,
    crop: Literal["center", "none"] = "center",
    max_image_pixels: int | None = None,
) -> np.ndarray:
    """Read one image and bring it to the model's size.

    Parameters
    ----------
    image
        A file path, a PIL image or a numpy array. Every PIL mode is accepted: RGB, RGBA and
        other modes with transparency (composited on white), greyscale, palette, CMYK, 16-bit
        (``I;16``) and 32-bit (``I``, ``F``) images (scaled to 8-bit). EXIF orientation is
        applied.
    image_size
        Side length ``S`` of the square output.
    crop
        ``"center"``: scale the shorter side to ``S`` and keep the centre square (cells are
        centred); ``"none"``: squash the whole image to ``S x S``.
    max_image_pixels
        PIL's decompression-bomb limit for this file (default: ``PIL.Image.MAX_IMAGE_PIXELS``,
        about 89 million pixels); raise it for a trusted large image. The global setting is
        left unchanged.

    Returns
    -------
    numpy.ndarray
        ``(S, S, 3)`` uint8 RGB.

    Raises
    ------
    ImageLoadError
        For a missing, empty, corrupt, truncated, unreadable or oversized file (PIL's
        decompression-bomb limit stays on); the message names the file.

    Warns
    -----
    UserWarning
        For an animated or multi-page file (GIF, TIFF ...), naming it: its first frame is used.
    """
    from PIL import Image

    if int(image_size) < 1:
        raise ValueError(f"image_size must be at least 1, got {image_size}")
    size = int(image_size)
    if isinstance(image, str | os.PathLike):
        rgb = _to_rgb_array(_open(Path(image), max_image_pixels))
    elif isinstance(image, Image.Image):
        if image.width < 1 or image.height < 1:
            raise ImageLoadError(f"the image is empty ({image.width}x{image.height} px)")
        rgb = _to_rgb_array(image)
    elif isinstance(image, np.ndarray):
        rgb = _array_to_rgb(image, "array")
    else:
        raise TypeError(
            f"image must be a path, a PIL image or a numpy array, got {type(image).__name__}"
        )
    h, w = rgb.shape[:2]
    if (h, w) == (size, size):
        return np.ascontiguousarray(rgb)
    pil = Image.fromarray(np.ascontiguousarray(rgb))
    if crop == "center":
        side = min(h, w)
        left, top = (w - side) / 2.0, (h - side) / 2.0
        box = (left, top, left + side, top + side)
    elif crop == "none":
        box = (0.0, 0.0, float(w), float(h))
    else:
        raise ValueError(f"crop must be 'center' or 'none', got {crop!r}")
    # Lanczos for both directions; reducing_gap makes large reductions fast and still sharp.
    out = pil.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    return np.asarray(out, dtype=np.uint8)
