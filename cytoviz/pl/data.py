"""Figures of image data sets: a class-by-class preview and real-vs-synthetic comparisons."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from cytoviz.data._dataset import CellDataset
from cytoviz.pl._style import TEMPLATE_NAME

__all__ = ["data_preview", "real_vs_synthetic"]

#: Title of :func:`real_vs_synthetic` without real images (unless another title is given).
NO_REAL_TITLE = "Synthetic cells only: no real images given"

_GAP = 2  # white pixels between tiles
_BLOCK_GAP = 12  # between the real and the synthetic block


def _tile(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[0] == size and img.shape[1] == size:
        return img
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), Image.LANCZOS))


def _class_tiles(ds: CellDataset | None, cls: str, n: int, size: int) -> list[np.ndarray | None]:
    if ds is None or cls not in ds.class_names:
        return [None] * n
    idx = np.flatnonzero(ds.labels == ds.class_names.index(cls))[:n]
    tiles: list[np.ndarray | None] = [_tile(ds.images[i], size) for i in idx]
    return tiles + [None] * (n - len(tiles))


def _montage(
    blocks: Sequence[tuple[CellDataset | None, int]], classes: Sequence[str], size: int
) -> tuple[np.ndarray, list[float], list[tuple[float, float]]]:
    """Rows = classes; blocks of columns side by side. Returns the image, the block centres and
    the centres of the rows of a block that hold no image of their class."""
    widths = [n * size + (n - 1) * _GAP for _, n in blocks]
    total_w = sum(widths) + _BLOCK_GAP * (len(blocks) - 1)
    total_h = len(classes) * size + (len(classes) - 1) * _GAP
    out = np.full((total_h, total_w, 3), 255, dtype=np.uint8)
    centres: list[float] = []
    empty: list[tuple[float, float]] = []
    x0 = 0
    for (ds, n), width in zip(blocks, widths, strict=True):
        centres.append(x0 + width / 2)
        for r, cls in enumerate(classes):
            y = r * (size + _GAP)
            tiles = _class_tiles(ds, cls, n, size)
            if all(tile is None for tile in tiles):
                empty.append((x0 + width / 2, y + size / 2))
            for c, tile in enumerate(tiles):
                x = x0 + c * (size + _GAP)
                if tile is None:
                    out[y:y + size, x:x + size] = 235  # light grey: no image of this class
                else:
                    out[y:y + size, x:x + size] = tile
        x0 += width + _BLOCK_GAP
    return out, centres, empty


def _figure(
    montage: np.ndarray, classes: Sequence[str], size: int, headers: Sequence[tuple[float, str]],
    title: str | None, empty: Sequence[tuple[float, float]] = (),
) -> go.Figure:
    h, w = montage.shape[:2]
    fig = go.Figure(go.Image(z=montage, hoverinfo="skip"))
    annotations = [
        dict(x=-0.01, y=r * (size + _GAP) + size / 2, text=cls, xref="paper", yref="y",
             xanchor="right", yanchor="middle", showarrow=False, font=dict(size=10))
        for r, cls in enumerate(classes)
    ]
    annotations += [
        dict(x=x, y=1.0, text=f"<b>{text}</b>", xref="x", yref="paper", xanchor="center",
             yanchor="bottom", showarrow=False, font=dict(size=11))
        for x, text in headers
    ]
    annotations += [
        dict(x=x, y=y, text="no image of this class", xref="x", yref="y", xanchor="center",
             yanchor="middle", showarrow=False, font=dict(size=9, color="#666666"))
        for x, y in empty
    ]
    scale = max(1.0, 110.0 / size)  # display tiles at least ~110 layout px
    # the top margin holds the title and, above the tiles, the block headers
    top = (35 + (25 if headers else 0)) if not title else (60 + (25 if headers else 0))
    fig.update_layout(
        template=TEMPLATE_NAME,
        title=dict(text=title, y=1.0, yanchor="top", yref="container", pad=dict(t=8)),
        annotations=annotations,
        width=int(w * scale) + 140,
        height=int(h * scale) + top + 10,
        margin=dict(l=130, r=10, t=top, b=10),
    )
    fig.update_xaxes(visible=False, range=[-0.5, w - 0.5])
    fig.update_yaxes(visible=False, range=[h - 0.5, -0.5], scaleanchor="x")
    return fig


def data_preview(
    dataset: CellDataset,
    *,
    n_per_class: int = 6,
    classes: Sequence[str] | None = None,
    tile_size: int | None = None,
    title: str | None = None,
) -> go.Figure:
    """A grid of example images: one row per class, the first ``n_per_class`` of each.

    Parameters
    ----------
    dataset
        The images.
    n_per_class
        Images per row; classes with fewer show grey tiles.
    classes
        Rows, in order; defaults to ``dataset.class_names``.
    tile_size
        Display size of a tile in image pixels (images are resized); defaults to the
        data set's image size.
    title
        Figure title.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``go.Image`` trace holding the montage; class names and headers as annotations.
    """
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be at least 1, got {n_per_class}")
    classes = list(dataset.class_names if classes is None else classes)
    size = int(tile_size or dataset.image_size)
    montage, _, empty = _montage([(dataset, n_per_class)], classes, size)
    return _figure(montage, classes, size, [], title, empty)


def real_vs_synthetic(
    real: CellDataset | None,
    synthetic: CellDataset,
    *,
    n_per_class: int = 4,
    classes: Sequence[str] | None = None,
    tile_size: int | None = None,
    labels: tuple[str, str] = ("real (PBC)", "synthetic"),
    title: str | None = None,
) -> go.Figure:
    """Real and synthetic images side by side, one row per class.

    Parameters
    ----------
    real
        Real images (any size; resized to ``tile_size``), or ``None`` to show synthetic
        images only (the title then says so: :data:`NO_REAL_TITLE`). Classes missing from
        ``real`` show grey tiles.
    synthetic
        Synthetic images (e.g. from :func:`cytoviz.data.synthesize`).
    n_per_class
        Images per class in each block.
    classes
        Rows, in order; defaults to the synthetic data set's classes.
    tile_size
        Display size of a tile in image pixels; defaults to the synthetic image size, so real
        images are shown at the synthetic resolution.
    labels
        Headers of the real and the synthetic block.
    title
        Figure title (default: none with real images, :data:`NO_REAL_TITLE` without).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``go.Image`` trace holding the montage; class names and block headers as
        annotations.
    """
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be at least 1, got {n_per_class}")
    classes = list(synthetic.class_names if classes is None else classes)
    size = int(tile_size or synthetic.image_size)
    blocks: list[tuple[CellDataset | None, int]] = []
    names: list[str] = []
    if real is not None:
        blocks.append((real, n_per_class))
        names.append(labels[0])
    elif title is None:
        title = NO_REAL_TITLE
    blocks.append((synthetic, n_per_class))
    names.append(labels[1])
    montage, centres, empty = _montage(blocks, classes, size)
    return _figure(montage, classes, size, list(zip(centres, names, strict=True)), title, empty)
