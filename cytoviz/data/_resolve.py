"""One data-spec resolver: ``"synthetic"``, a folder, an ``.npz`` or a manifest CSV.

Every command and protocol that takes "a data set" reads it through :func:`resolve` (all the
splits a spec holds) or :func:`resolve_one` (one split), so that one spec means the same thing
everywhere.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cytoviz.data._dataset import CellDataset
from cytoviz.data.loaders import load_folder, load_manifest
from cytoviz.data.synth import SynthConfig, default_splits

__all__ = ["SINGLE", "SPLIT_NAMES", "parse_class_map", "resolve", "resolve_one"]

#: Key under which a spec that holds one data set (no splits) comes back.
SINGLE = "all"
#: The split names cytoviz recognises, in order (folders are matched case-insensitively).
SPLIT_NAMES = ("train", "val", "test", "test_mild", "test_strong")

DataSpec = str | os.PathLike[str] | CellDataset | Mapping[str, CellDataset]


def resolve(
    spec: DataSpec,
    *,
    splits: Sequence[str] | None = None,
    image_size: int | None = None,
    scale: float = 1.0,
    seed: int = 0,
    classes: Sequence[str] | None = None,
    class_map: Mapping[str, str | None] | None = None,
    contain: bool = True,
    max_image_pixels: int | None = None,
    cell_scale: float = 1.0,
) -> dict[str, CellDataset]:
    """Read a data spec into a mapping of split name to :class:`CellDataset`.

    Parameters
    ----------
    spec
        One of:

        - ``"synthetic"``: :func:`cytoviz.data.default_splits` (``train``, ``val``, ``test``,
          ``test_mild``, ``test_strong``) at ``image_size`` (default 64), ``scale`` and
          ``seed``; only the requested ``splits`` are generated.
        - a mapping of split name to :class:`CellDataset`, or one :class:`CellDataset`;
        - an ``.npz`` file written by :meth:`CellDataset.save`;
        - a ``.csv`` manifest (``path,label`` rows, :func:`cytoviz.data.load_manifest`);
        - a folder holding ``<split>.npz`` files;
        - a folder of split folders (``train/``, ``test/`` ...) of class folders (as
          ``cytoviz data synth`` writes);
        - a folder of class folders (:func:`cytoviz.data.load_folder`).

        A spec that holds one data set comes back under the key :data:`SINGLE` (``"all"``).
    splits
        The splits wanted. Unknown or missing names are refused before anything is built,
        and a single data set (which has no splits) refuses any.
    image_size
        Side of the images for image folders and synthetic data (default 64); saved data sets
        keep their own size.
    scale, seed
        Synthetic data only: the count multiplier and the generator's seed.
    classes
        Image folders and manifests only: the class list of the result (e.g. a model's
        ``class_names``): folder names and labels are mapped onto it (see
        :func:`cytoviz.data.load_folder`). Default: the canonical classes present.
    class_map, contain, max_image_pixels
        Image folders and manifests only: folder or label name -> class name (``None``
        leaves it out), whether files must lie inside the data folder (after symlinks;
        a manifest's inside its own folder), and PIL's pixel limit per image (see
        :func:`cytoviz.data.load_folder` and :func:`cytoviz.data.load_manifest`).
    cell_scale
        How many times larger the cells appear than the model's: every data set read is
        brought to the model's scale by :func:`cytoviz.data.scale.rescale_cells` (1: as read).

    Returns
    -------
    dict of str to CellDataset

    Raises
    ------
    FileNotFoundError
        When the path does not exist.
    TypeError
        When the spec is none of the above (or a mapping holds something else than
        :class:`CellDataset` values).
    ValueError
        When a requested split is not in the spec, naming the splits it has.
    """
    sets = _resolve(spec, splits, image_size, scale, seed, classes, class_map, contain,
                    max_image_pixels)
    if float(cell_scale) == 1.0:
        return sets
    from cytoviz.data.scale import rescale_cells

    return {name: rescale_cells(ds, cell_scale) for name, ds in sets.items()}


def _resolve(spec: DataSpec, splits: Sequence[str] | None, image_size: int | None,
             scale: float, seed: int, classes: Sequence[str] | None,
             class_map: Mapping[str, str | None] | None, contain: bool,
             max_image_pixels: int | None) -> dict[str, CellDataset]:
    wanted = None if splits is None else [str(s) for s in splits]
    if isinstance(spec, CellDataset):
        return _pick({SINGLE: spec}, wanted, "the data set")
    if isinstance(spec, Mapping):
        bad = {str(k): type(v).__name__ for k, v in spec.items() if not isinstance(v, CellDataset)}
        if bad:
            raise TypeError(f"a mapping spec maps split names to CellDataset, got {bad}")
        return _pick({str(k): v for k, v in spec.items()}, wanted, "the mapping")
    if not isinstance(spec, str | os.PathLike):
        raise TypeError(
            f"a data spec is 'synthetic', a path, a CellDataset or a mapping of split name to "
            f"CellDataset, got {type(spec).__name__}"
        )
    if isinstance(spec, str) and spec == "synthetic":
        unknown = [w for w in wanted or () if w not in SPLIT_NAMES]
        if unknown:
            raise ValueError(
                f"unknown split(s) {unknown} of 'synthetic'; choose from {list(SPLIT_NAMES)}"
            )
        config = SynthConfig(image_size=image_size or 64, seed=seed)
        return default_splits(config=config, scale=scale, splits=wanted)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such file or folder; pass 'synthetic', a folder of class folders, "
            "a CellDataset .npz or a manifest .csv"
        )
    loader = {"classes": classes, "class_map": class_map, "contain": contain,
              "max_image_pixels": max_image_pixels}
    if path.is_file():
        return _pick({SINGLE: _load_file(path, image_size, loader)}, wanted, str(path))
    return _pick_folder(path, wanted, image_size, loader)


def resolve_one(
    spec: DataSpec,
    split: str | None = None,
    *,
    image_size: int | None = None,
    scale: float = 1.0,
    seed: int = 0,
    classes: Sequence[str] | None = None,
    class_map: Mapping[str, str | None] | None = None,
    contain: bool = True,
    max_image_pixels: int | None = None,
    cell_scale: float = 1.0,
) -> CellDataset:
    """One data set from a spec: the named ``split``, or the spec's only (or ``test``) set.

    Parameters
    ----------
    spec
        As for :func:`resolve`.
    split
        The split to read. ``None`` takes the spec's only data set, or its ``test`` split
        when it has several (for ``"synthetic"``: ``test``).
    image_size, scale, seed, classes, class_map, contain, max_image_pixels, cell_scale
        As for :func:`resolve`.
    """
    if split is None and isinstance(spec, str) and spec == "synthetic":
        split = "test"
    kw = {"image_size": image_size, "scale": scale, "seed": seed, "classes": classes,
          "class_map": class_map, "contain": contain, "max_image_pixels": max_image_pixels,
          "cell_scale": cell_scale}
    if split is not None:
        return resolve(spec, splits=[split], **kw)[split]
    sets = resolve(spec, **kw)
    if len(sets) == 1:
        return next(iter(sets.values()))
    if "test" in sets:
        return sets["test"]
    raise ValueError(f"{spec}: holds the splits {sorted(sets)}; name the one to use")


def _load_file(path: Path, image_size: int | None, loader: dict[str, Any]) -> CellDataset:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return CellDataset.load(path)
    if suffix == ".csv":
        return load_manifest(path, image_size=image_size or 64, **loader)
    raise ValueError(
        f"{path}: not a CellDataset .npz or a manifest .csv; pass one of those, a folder "
        "or 'synthetic'"
    )


def _pick_folder(root: Path, wanted: list[str] | None, image_size: int | None,
                 loader: dict[str, Any]) -> dict[str, CellDataset]:
    npz = {p.stem: p for p in sorted(root.glob("*.npz")) if p.stem in SPLIT_NAMES}
    if npz:
        names = wanted if wanted is not None else list(npz)
        _check(names, list(npz), str(root))
        return {n: CellDataset.load(npz[n]) for n in names}
    subdirs = {p.name.lower(): p.name for p in root.iterdir() if p.is_dir()}
    present = [s for s in SPLIT_NAMES if s in subdirs]
    if present:
        names = wanted if wanted is not None else present
        _check(names, present, str(root))
        return {n: load_folder(root, image_size=image_size or 64, split=subdirs[n], **loader)
                for n in names}
    if wanted:
        raise ValueError(
            f"{root}: a folder of class folders has no splits, so split(s) {wanted} cannot be "
            f"read; put the images into {'/, '.join(SPLIT_NAMES)}/ subfolders or omit the split"
        )
    return {SINGLE: load_folder(root, image_size=image_size or 64, **loader)}


def _pick(sets: dict[str, CellDataset], wanted: list[str] | None, what: str
          ) -> dict[str, CellDataset]:
    if wanted is None:
        return sets
    if list(sets) == [SINGLE]:
        raise ValueError(f"{what}: one data set with no splits, so split(s) {wanted} cannot be "
                         "read; omit the split")
    _check(wanted, list(sets), what)
    return {w: sets[w] for w in wanted}


def _check(wanted: list[str], present: list[str], what: str) -> None:
    missing = [w for w in wanted if w not in present]
    if missing:
        raise ValueError(f"{what}: no split(s) {missing}; it has {present}")


def parse_class_map(text: str) -> dict[str, str | None]:
    """A ``--class-map`` value: ``FOLDER=CLASS,OTHER=none``, or a ``.json`` / ``.csv`` file.

    Parameters
    ----------
    text
        Comma-separated ``NAME=CLASS`` pairs (``none`` or an empty class leaves the name out),
        a JSON file holding one object of name -> class (``null`` leaves it out), or a CSV
        file whose first two columns, after a header row, are the name and the class.

    Returns
    -------
    dict of str to str or None
        The ``class_map=`` of :func:`resolve`, :func:`cytoviz.data.load_folder` and
        :func:`cytoviz.data.load_manifest`.

    Raises
    ------
    ValueError
        For a pair without ``=`` or an unreadable file, naming it.
    """
    def target(value: object) -> str | None:
        name = "" if value is None else str(value).strip()
        return None if name.lower() in ("", "none", "null") else name

    path = Path(text).expanduser()
    if path.suffix.lower() in (".json", ".csv") and path.is_file():
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(path.read_text())
                if not isinstance(data, dict):
                    raise ValueError("it must hold one JSON object of name -> class")
                return {str(k).strip(): target(v) for k, v in data.items()}
            with path.open(newline="", encoding="utf-8-sig") as fh:
                rows = [r for r in csv.reader(fh, skipinitialspace=True) if any(c.strip() for c in r)]
            short = [i + 1 for i, r in enumerate(rows) if len(r) < 2]
            if short:
                raise ValueError(f"line {short[0]} has fewer than two columns (name, class)")
            return {r[0].strip(): target(r[1]) for r in rows[1:]}
        except (OSError, UnicodeDecodeError, csv.Error, json.JSONDecodeError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable class map ({exc})") from exc
    out: dict[str, str | None] = {}
    for pair in text.split(","):
        if not pair.strip():
            continue
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(
                f"--class-map expects FOLDER=CLASS pairs separated by commas (CLASS 'none' "
                f"leaves the folder out), or a .json / .csv file; got {pair.strip()!r}"
            )
        out[name.strip()] = target(value)
    return out
