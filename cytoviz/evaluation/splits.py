"""The data splits of the evaluation protocols, and the subsets they draw from them.

:func:`eval_data` reads a data spec through :func:`cytoviz.data.resolve` ("synthetic", a folder,
a mapping of splits ...) and adds the protocols' own rule for a folder of class folders only
(like the PBC examples): per class, the first half of the sorted files trains and the rest tests.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from cytoviz.data import SINGLE, CellDataset, resolve
from cytoviz.evaluation.budget import EvalBudget, resolve_budget

__all__ = [
    "Splits",
    "class_proportional_split",
    "eval_data",
    "half_split",
    "match_classes",
    "per_class",
]

#: A mapping of split name (``train``, ``val``, ``test``, ``test_mild`` ...) to its images.
Splits = Mapping[str, CellDataset]


def eval_data(
    data: str | os.PathLike[str] | Splits = "synthetic",
    *,
    budget: EvalBudget | str | None = None,
    seed: int = 0,
) -> dict[str, CellDataset]:
    """The splits the protocols use: ``train``, ``val``, ``test`` (and shifted test sets).

    Parameters
    ----------
    data
        ``"synthetic"``: :func:`cytoviz.data.default_splits` at the budget's image size and
        scale (``train``, ``val``, ``test``, ``test_mild``, ``test_strong``). A folder: split
        subfolders (``train/``, ``val/``, ``test/``, ``test_mild/`` ...) of class folders are
        read with :func:`cytoviz.data.load_folder` (or ``<split>.npz`` files, see
        :func:`cytoviz.data.resolve`); a folder of class folders only (like the PBC examples)
        is split per class, the first half of the sorted files for ``train`` and the rest for
        ``test`` (no ``val``). A mapping of split name to :class:`~cytoviz.data.CellDataset` is
        used as it is.
    budget
        Sets the image size and the synthetic scale.
    seed
        Seed of the synthetic generator.

    Returns
    -------
    dict of str to CellDataset
        The splits; those read from a folder have the classes of ``train`` (a split with a
        class that ``train`` lacks is refused).
    """
    budget = resolve_budget(budget)
    if isinstance(data, Mapping):
        splits = dict(data)
    elif isinstance(data, str) and data == "synthetic":
        splits = resolve(data, image_size=budget.image_size, scale=budget.data_scale, seed=seed)
    else:
        root = Path(data)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such folder; pass 'synthetic' or a data folder")
        splits = resolve(root, image_size=budget.image_size)
        if list(splits) == [SINGLE]:
            splits = half_split(splits[SINGLE])
        elif "train" in splits:
            classes = splits["train"].class_names
            splits = {s: ds if s == "train" else match_classes(ds, classes, s)
                      for s, ds in splits.items()}
    for need in ("train", "test"):
        if need not in splits:
            raise ValueError(f"the data has no {need!r} split (it has {sorted(splits)})")
    size = splits["train"].image_size
    if size != budget.image_size:
        raise ValueError(
            f"the images are {size} px but the budget's model takes {budget.image_size} px; "
            f"use budget.replace(image_size={size}, model=budget.model.replace(image_size={size}))"
        )
    return splits


def half_split(ds: CellDataset) -> dict[str, CellDataset]:
    """``train`` and ``test`` halves of every class: the first half of the sorted files trains.

    Parameters
    ----------
    ds
        One data set; its ``meta["path"]`` (as :func:`cytoviz.data.load_folder` writes it) sets
        the order, else the order of the images.

    Returns
    -------
    dict of str to CellDataset
        ``{"train": ..., "test": ...}``; a class with an odd count gives ``train`` one more.
    """
    if ds.meta is not None and "path" in ds.meta:
        order = np.argsort(ds.meta["path"].to_numpy().astype(str), kind="stable")
    else:
        order = np.arange(len(ds))
    first = np.zeros(len(ds), dtype=bool)
    for c in range(len(ds.class_names)):
        idx = order[ds.labels[order] == c]
        first[idx[: (len(idx) + 1) // 2]] = True
    return {"train": ds.subset(first), "test": ds.subset(~first)}


def match_classes(ds: CellDataset, classes: Sequence[str], split: str) -> CellDataset:
    """``ds`` relabelled into ``classes`` (those of the training split), for one ``split``.

    Parameters
    ----------
    ds
        The images of the split.
    classes
        The class names to index into; every class of ``ds`` must be among them.
    split
        Name of the split, for the error message.

    Returns
    -------
    CellDataset
        The same images with ``class_names == tuple(classes)``.
    """
    extra = [c for c in ds.class_names if c not in classes]
    if extra:
        raise ValueError(f"split {split!r} has classes {extra} that the training split lacks")
    keep = [c for c in classes if c in ds.class_names]
    sub = ds.select_classes(keep)
    remap = np.asarray([list(classes).index(c) for c in keep], dtype=np.int64)
    return dataclasses.replace(sub, labels=remap[sub.labels], class_names=tuple(classes))


def per_class(ds: CellDataset, n: int | None, seed: int) -> CellDataset:
    """At most ``n`` images of every class (random, seeded); all with ``n=None``.

    Parameters
    ----------
    ds
        The images to draw from.
    n
        Largest number of images per class, or ``None`` for all.
    seed
        Seed of the draw.

    Returns
    -------
    CellDataset
        The subset, in the original order.
    """
    if n is None:
        return ds
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for c in range(len(ds.class_names)):
        idx = np.flatnonzero(ds.labels == c)
        if len(idx) > n:
            idx = np.sort(rng.choice(idx, n, replace=False))
        keep.extend(idx.tolist())
    return ds.subset(np.sort(np.asarray(keep, dtype=np.int64)))


def class_proportional_split(
    ds: CellDataset, n: int, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Pick at most ``n`` images in proportion to the class sizes; return (picked, rest) indices.

    Every class present keeps at least one image in the rest where it has two or more. Quotas
    are ``n * share`` rounded by largest remainders.

    Parameters
    ----------
    ds
        The images to split.
    n
        Largest number of images to pick.
    seed
        Seed of the draw within each class.

    Returns
    -------
    (picked, rest)
        Sorted integer indices into ``ds``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    counts = np.bincount(ds.labels, minlength=len(ds.class_names))
    n = min(n, max(0, len(ds) - int(np.count_nonzero(counts))))
    if n <= 0:
        raise ValueError(
            f"the data set ({len(ds)} images) is too small to leave evaluation images after "
            "picking fine-tuning images"
        )
    exact = n * counts / counts.sum()
    quota = np.floor(exact).astype(int)
    for c in np.argsort(-(exact - quota), kind="stable")[: n - quota.sum()]:
        quota[c] += 1
    quota = np.minimum(quota, np.maximum(counts - 1, 0))
    picked: list[int] = []
    for c, q in enumerate(quota):
        idx = np.flatnonzero(ds.labels == c)
        if q > 0:
            picked.extend(rng.choice(idx, q, replace=False).tolist())
    pick = np.sort(np.asarray(picked, dtype=np.int64))
    rest = np.setdiff1d(np.arange(len(ds)), pick)
    return pick, rest
