"""The in-memory image data set that flows through cytoviz."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cytoviz._io import FORMAT_VERSION, load_npz, save_npz
from cytoviz.classes import check_class_names

__all__ = ["MASK_NAMES", "CellDataset"]

#: Order of the ground-truth masks in :attr:`CellDataset.masks`.
MASK_NAMES: tuple[str, ...] = ("nucleus", "cytoplasm", "granules")


@dataclasses.dataclass(frozen=True, eq=False)
class CellDataset:
    """Cell images with integer labels, the class names, and optional per-image metadata.

    Parameters
    ----------
    images
        ``(N, H, W, 3)`` ``uint8`` RGB images.
    labels
        ``(N,)`` integer labels, indices into ``class_names``.
    class_names
        Names of the classes, in label order.
    meta
        Optional per-image table with ``N`` rows (e.g. ``path``, ``domain``, ``mix_class``,
        ``mix_weight``).
    masks
        Optional ``(N, 3, H, W)`` boolean ground-truth masks in :data:`MASK_NAMES` order
        (known for synthetic data only).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    meta: pd.DataFrame | None = None
    masks: np.ndarray | None = None

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        labels = np.asarray(self.labels)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must have shape (N, H, W, 3), got {images.shape}")
        if images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 RGB, got dtype {images.dtype}")
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels must have shape ({images.shape[0]},) to match the images, got {labels.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
        # class names become folder names (write_dataset, cytoviz generate): no paths
        names = check_class_names(str(c) for c in self.class_names)
        if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
            raise ValueError(
                f"labels must lie in [0, {len(names) - 1}] for {len(names)} classes, "
                f"got range [{labels.min()}, {labels.max()}]"
            )
        if self.meta is not None and len(self.meta) != images.shape[0]:
            raise ValueError(f"meta has {len(self.meta)} rows for {images.shape[0]} images")
        if self.masks is not None:
            masks = np.asarray(self.masks, dtype=bool)
            expected = (images.shape[0], len(MASK_NAMES), *images.shape[1:3])
            if masks.shape != expected:
                raise ValueError(f"masks must have shape {expected}, got {masks.shape}")
            object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels.astype(np.int64))
        object.__setattr__(self, "class_names", names)
        if self.meta is not None:
            object.__setattr__(self, "meta", self.meta.reset_index(drop=True))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        counts = ", ".join(f"{c}: {n}" for c, n in self.class_counts().items())
        return (
            f"CellDataset({len(self)} images of {self.image_size}x{self.image_size}, "
            f"{len(self.class_names)} classes; {counts})"
        )

    @property
    def image_size(self) -> int:
        """Side length in pixels (images are square)."""
        return int(self.images.shape[1])

    @property
    def label_names(self) -> np.ndarray:
        """The class name of every image."""
        return np.asarray(self.class_names, dtype=str)[self.labels]

    def class_counts(self) -> dict[str, int]:
        """Number of images per class, in class order."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {c: int(n) for c, n in zip(self.class_names, counts, strict=True)}

    def subset(self, index: Sequence[int] | np.ndarray) -> CellDataset:
        """A new data set with the images at ``index`` (integer or boolean)."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64)  # an empty list arrives as float64
        return CellDataset(
            images=self.images[idx],
            labels=self.labels[idx],
            class_names=self.class_names,
            meta=None if self.meta is None else self.meta.iloc[idx].reset_index(drop=True),
            masks=None if self.masks is None else self.masks[idx],
        )

    def first_per_class(self, n: int) -> CellDataset:
        """The first ``n`` images of every class (fewer where a class has fewer), in data-set order.

        The deterministic class-balanced selection of the README's tables and the benchmarks.
        """
        if int(n) < 0:
            raise ValueError(f"n must be a non-negative number of images per class, got {n}")
        idx = [np.flatnonzero(self.labels == c)[: int(n)] for c in range(len(self.class_names))]
        return self.subset(np.sort(np.concatenate(idx)))

    def centre_crop(self, size: int) -> CellDataset:
        """The central ``size`` x ``size`` pixels of every image (and mask).

        The images are views into this data set's array (no copy). ``size`` must not exceed the
        image size; the crop starts at ``(image_size - size) // 2`` on both axes.
        """
        size = int(size)
        h = self.image_size
        if not 1 <= size <= h:
            raise ValueError(f"crop size {size} must lie in [1, {h}] for {h} x {h} px images")
        if size == h:
            return self
        lo = (h - size) // 2
        masks = None if self.masks is None else self.masks[..., lo:lo + size, lo:lo + size]
        return CellDataset(images=self.images[:, lo:lo + size, lo:lo + size], labels=self.labels,
                           class_names=self.class_names, meta=self.meta, masks=masks)

    def select_classes(self, names: Sequence[str]) -> CellDataset:
        """Keep only the images of ``names`` and relabel them ``0..len(names)-1``."""
        unknown = [n for n in names if n not in self.class_names]
        if unknown:
            raise ValueError(f"unknown class(es) {unknown}; this data set has {list(self.class_names)}")
        old = [self.class_names.index(n) for n in names]
        keep = np.isin(self.labels, old)
        sub = self.subset(keep)
        remap = np.full(len(self.class_names), -1, dtype=np.int64)
        remap[old] = np.arange(len(old))
        return dataclasses.replace(sub, labels=remap[sub.labels], class_names=tuple(names))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write to one ``.npz`` file (no pickles), atomically."""
        arrays: dict[str, np.ndarray] = {
            "format_version": np.asarray(FORMAT_VERSION),
            "kind": np.asarray("CellDataset"),
            "images": self.images,
            "labels": self.labels,
            "class_names": np.asarray(self.class_names, dtype=str),
        }
        if self.masks is not None:
            arrays["masks"] = np.packbits(self.masks, axis=-1)
            arrays["masks_width"] = np.asarray(self.masks.shape[-1])
        if self.meta is not None:
            arrays["meta_columns"] = np.asarray(list(self.meta.columns), dtype=str)
            for i, col in enumerate(self.meta.columns):
                values = self.meta[col].to_numpy()
                if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
                    values = np.asarray(self.meta[col].astype(str).to_numpy(), dtype=str)
                arrays[f"meta_{i}"] = values
        return save_npz(path, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CellDataset:
        """Read a data set written by :meth:`save`.

        Parameters
        ----------
        path
            The ``.npz`` file.

        Raises
        ------
        ValueError
            For a file that is not a cytoviz data set, lacks arrays or holds invalid ones
            (labels out of range, class names that are paths ...); the message names the file.
        """
        data = load_npz(path)
        if str(data.get("kind", "")) != "CellDataset":
            raise ValueError(f"{path}: not a cytoviz CellDataset file")
        need = ["format_version", "images", "labels", "class_names"]
        if "masks" in data:
            need.append("masks_width")
        if "meta_columns" in data:
            need += [f"meta_{i}" for i in range(len(data["meta_columns"]))]
        missing = [k for k in need if k not in data]
        if missing:
            raise ValueError(f"{path}: a CellDataset file lacks the array(s) {missing}; it may "
                             "be damaged or written by hand: save it again with CellDataset.save")
        try:
            return cls._from_arrays(data)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: {exc}") from exc

    @classmethod
    def _from_arrays(cls, data: dict[str, np.ndarray]) -> CellDataset:
        version = int(data["format_version"])
        if version != FORMAT_VERSION:
            raise ValueError(
                f"written with data format version {version}, this cytoviz reads version "
                f"{FORMAT_VERSION}; regenerate the file or install a matching cytoviz"
            )
        masks = None
        if "masks" in data:
            masks = np.unpackbits(data["masks"], axis=-1, count=int(data["masks_width"])).astype(bool)
        meta = None
        if "meta_columns" in data:
            meta = pd.DataFrame(
                {str(c): data[f"meta_{i}"] for i, c in enumerate(data["meta_columns"])}
            )
        return cls(
            images=data["images"],
            labels=data["labels"],
            class_names=tuple(str(c) for c in data["class_names"]),
            meta=meta,
            masks=masks,
        )
