"""Cells at another scale: measure how large the cells of a data set appear, and rescale them.

A model sees cells at the scale of its training images. Another lab's crops often show the cell
filling the frame (a higher magnification, or a tighter crop), and both classifiers then fall to
about chance. :func:`estimate_cell_scale` measures the scale from a simple nucleus segmentation
(the purple haematoxylin stain: pixels whose red-blue mean exceeds green by half the image's
99th percentile, at least 0.12), relative to the embedded synthetic cells, which match the PBC
data set's 360 px crops; :func:`rescale_cells` brings images to the model's scale by shrinking
them onto a canvas of their own border colour (cells larger than the model's) or by taking the
central part (smaller). ``cytoviz train``, ``classify`` and ``baseline`` apply the same rescale
with ``--cell-scale`` (a number, or ``auto`` to estimate it), and warn when a data set's
estimated scale lies outside :data:`SCALE_TOLERANCE`.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from cytoviz.data._dataset import CellDataset

__all__ = [
    "SCALE_TOLERANCE",
    "check_cell_scale",
    "estimate_cell_scale",
    "nucleus_radius",
    "rescale_cells",
]

#: A data set whose estimated cell scale lies outside ``[1 / t, t]`` gets a warning.
SCALE_TOLERANCE = 1.4


def _images(data: CellDataset | np.ndarray) -> np.ndarray:
    images = data.images if isinstance(data, CellDataset) else np.asarray(data)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 RGB of shape (N, H, W, 3), got {images.shape} "
                         f"{images.dtype}")
    return images


def nucleus_radius(data: CellDataset | np.ndarray) -> np.ndarray:
    """Equivalent radius of the stained nucleus of every image, as a fraction of its width.

    Parameters
    ----------
    data
        A :class:`~cytoviz.data.CellDataset` or ``uint8`` images ``(N, H, W, 3)``.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` ``sqrt(area / pi) / width`` of the pixels classed as nucleus (0 without any).
    """
    x = _images(data).astype(np.float32) / 255.0
    purple = (x[..., 0] + x[..., 2]) / 2.0 - x[..., 1]
    flat = purple.reshape(len(x), -1)
    if flat.shape[1] == 0:
        return np.zeros(len(x))
    thr = np.maximum(0.12, 0.5 * np.percentile(flat, 99, axis=1))
    area = (flat > thr[:, None]).sum(axis=1)
    return np.sqrt(area / np.pi) / x.shape[2]


@functools.lru_cache(maxsize=4)
def _reference_radius(image_size: int) -> float:
    from cytoviz.data.synth import SynthConfig, synthesize

    ref = synthesize(10, config=SynthConfig(image_size=int(image_size), hard_fraction=0.0))
    return float(np.median(nucleus_radius(ref)))


def estimate_cell_scale(data: CellDataset | np.ndarray,
                        reference: CellDataset | np.ndarray | None = None) -> float:
    """How many times larger the cells of ``data`` appear than those of ``reference``.

    Parameters
    ----------
    data
        The images to measure (at the size the model will see them).
    reference
        Images at the model's scale (default: the embedded synthetic cells at the same size,
        the scale of the shipped model and of the PBC data set).

    Returns
    -------
    float
        The ratio of the median nucleus radii (1: the same scale; 2: cells twice as large).

    Raises
    ------
    ValueError
        For an empty data set, or one in which no nucleus stain is found.
    """
    images = _images(data)
    if len(images) == 0:
        raise ValueError("estimate_cell_scale needs at least one image")
    r = float(np.median(nucleus_radius(images)))
    if r <= 0:
        raise ValueError("no stained nucleus found in these images; the cell scale cannot be "
                         "estimated (pass the scale yourself, e.g. --cell-scale 1.5)")
    ref = (_reference_radius(images.shape[2]) if reference is None
           else float(np.median(nucleus_radius(reference))))
    if ref <= 0:
        raise ValueError("no stained nucleus found in the reference images")
    return r / ref


def _rescale_one(image: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    pil = Image.fromarray(image)
    if scale > 1.0:  # cells too large: shrink the whole image onto a border-coloured canvas
        nw, nh = max(1, round(w / scale)), max(1, round(h / scale))
        ring = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
        canvas = Image.new("RGB", (w, h), tuple(int(v) for v in np.median(ring, axis=0)))
        canvas.paste(pil.resize((nw, nh), Image.Resampling.LANCZOS),
                     ((w - nw) // 2, (h - nh) // 2))
        return np.asarray(canvas, dtype=np.uint8)
    cw, ch = w * scale, h * scale  # cells too small: enlarge the centre
    box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
    return np.asarray(pil.resize((w, h), Image.Resampling.LANCZOS, box=box), dtype=np.uint8)


def rescale_cells(data: CellDataset | np.ndarray, cell_scale: float
                  ) -> CellDataset | np.ndarray:
    """Bring images whose cells appear ``cell_scale`` times the model's size to its scale.

    Parameters
    ----------
    data
        A :class:`~cytoviz.data.CellDataset` or ``uint8`` images ``(N, H, W, 3)``.
    cell_scale
        How much larger the cells appear than the model's (from
        :func:`estimate_cell_scale`, or known from the microscopes: the ratio of the pixel
        sizes). Above 1 the image is shrunk about its centre onto its own border colour;
        below 1 its centre is enlarged (from the already resized image, so some detail is
        lost; load at a larger ``image_size`` to avoid that).

    Returns
    -------
    CellDataset or numpy.ndarray
        The same kind as ``data``, images replaced, same size; a data set's masks are dropped
        (they no longer match) and its ``meta`` gains a ``cell_scale`` column.
    """
    scale = float(cell_scale)
    if not (np.isfinite(scale) and 0.25 <= scale <= 4.0):
        raise ValueError(f"cell_scale must be a number in [0.25, 4] (how many times larger the "
                         f"cells appear than the model's), got {cell_scale!r}")
    images = _images(data)
    out = images if scale == 1.0 else (
        np.stack([_rescale_one(im, scale) for im in images]) if len(images) else images.copy())
    if not isinstance(data, CellDataset):
        return out
    if scale == 1.0:
        return data
    meta = None if data.meta is None else data.meta.assign(cell_scale=scale)
    return CellDataset(images=out, labels=data.labels, class_names=data.class_names, meta=meta)


def check_cell_scale(data: CellDataset | np.ndarray, *, source: str = "the images",
                     tolerance: float = SCALE_TOLERANCE) -> float | None:
    """Estimate the cell scale and warn when it lies outside ``[1 / tolerance, tolerance]``.

    Parameters
    ----------
    data
        The images as the model will see them.
    source
        How the warning names them (a folder or file).
    tolerance
        Largest factor accepted silently.

    Returns
    -------
    float or None
        The estimated scale, or ``None`` when it cannot be estimated (no nucleus found).

    Warns
    -----
    UserWarning
        Naming the estimate and the ``--cell-scale`` (or :func:`rescale_cells`) to use.
    """
    try:
        scale = estimate_cell_scale(data)
    except ValueError:
        return None
    if not 1.0 / tolerance <= scale <= tolerance:
        warnings.warn(
            f"{source}: the cells appear {scale:.2f} times the size of the model's training "
            f"cells (nucleus radius against the embedded synthetic cells); accuracy may fall "
            f"to chance. Pass --cell-scale {scale:.2f} (or --cell-scale auto; in Python "
            f"cv.data.rescale_cells(data, {scale:.2f})) and check `cytoviz data preview "
            f"--real {source} --cell-scale {scale:.2f}`", UserWarning, stacklevel=2)
    return scale
