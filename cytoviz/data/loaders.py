"""Loaders for real blood-cell data sets; each returns a :class:`~cytoviz.data.CellDataset`.

* :func:`load_folder`: one folder per class (PBC, Raabin-WBC, BCCD crops, LISC ...), optionally
  below a ``train/`` / ``test/`` split level.
* :func:`load_manifest`: a CSV file with ``path`` and ``label`` columns (and optional ``expert``
  and ``confidence`` columns, as for CytoData's expert labels).
* :func:`load_bloodmnist`: MedMNIST's BloodMNIST ``.npz`` files.
* :func:`prepare_image`: one image of any size and mode to a square ``uint8`` RGB array
  (defined in :mod:`cytoviz.data._image`).

Class names are normalised with :func:`cytoviz.classes.normalise_class_name` (``ig``,
``NEUTROPHIL``, ``SNE`` ...) and the class list of a result follows cytoviz's canonical order.
Every loaded data set has a ``meta`` column ``path`` with the source file.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from cytoviz.classes import CANONICAL_CLASSES, UnknownClassError, normalise_class_name
from cytoviz.data._dataset import CellDataset
from cytoviz.data._image import ImageLoadError, prepare_image

__all__ = [
    "BLOODMNIST_CLASSES",
    "IMAGE_EXTENSIONS",
    "ImageLoadError",
    "load_bloodmnist",
    "load_folder",
    "load_images",
    "load_manifest",
    "prepare_image",
]

#: File name endings that the folder loader reads (case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")

#: BloodMNIST's label order (MedMNIST v2), as canonical cytoviz names.
BLOODMNIST_CLASSES: tuple[str, ...] = (
    "basophil", "eosinophil", "erythroblast", "immature granulocyte", "lymphocyte", "monocyte",
    "neutrophil", "platelet",
)

#: Expert confidence words (METHOD.md section 6).
_CONFIDENCE_WORDS = {"high": 1.0, "moderate": 2.0 / 3.0, "low": 1.0 / 3.0, "no": 0.0, "none": 0.0}

OnError = Literal["raise", "skip"]


# --------------------------------------------------------------------------------------------
# helpers shared by the loaders


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def _warn_skipped(skipped: list[str], where: str) -> None:
    if not skipped:
        return
    shown = "; ".join(skipped[:10])
    more = f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
    warnings.warn(
        f"{where}: skipped {len(skipped)} unreadable image(s): {shown}{more}",
        UserWarning, stacklevel=3,
    )


def _map_names(
    names: Iterable[str],
    classes: Sequence[str] | None,
    class_map: Mapping[str, str | None] | None,
    where: str,
) -> dict[str, str | None]:
    """Source name -> class name (``None``: ignore); the error lists every unmappable name."""
    targets = tuple(classes) if classes is not None else CANONICAL_CLASSES
    class_map = dict(class_map or {})
    out: dict[str, str | None] = {}
    bad: list[str] = []
    for name in names:
        if name in class_map:
            target = class_map[name]
            if target is not None:
                try:
                    target = normalise_class_name(target, classes=targets)
                except UnknownClassError:
                    if classes is not None:
                        raise UnknownClassError(
                            f"{where}: class_map sends {name!r} to {target!r}, which is not among "
                            f"classes={list(classes)}"
                        ) from None
            out[name] = target
            continue
        try:
            out[name] = normalise_class_name(name, classes=targets)
        except UnknownClassError:
            bad.append(name)
    if bad:
        raise UnknownClassError(
            f"{where}: cannot map class name(s) {sorted(set(bad))} to "
            f"{'the given classes' if classes is not None else 'the canonical classes'} "
            f"{list(targets)}. Pass class_map={{'<name>': '<class>'}} to name them, or "
            "class_map={'<name>': None} to leave them out (command line: --class-map "
            "NAME=CLASS,OTHER=none)."
        )
    return out


def _class_order(present: Iterable[str], classes: Sequence[str] | None) -> tuple[str, ...]:
    if classes is not None:
        return tuple(classes)
    present = set(present)
    canonical = [c for c in CANONICAL_CLASSES if c in present]
    return (*canonical, *sorted(present - set(canonical)))


def _outside(path: Path, root: Path | None) -> str | None:
    """Why ``path`` is not inside ``root`` once symlinks and ``..`` are resolved (``None``: it is)."""
    if root is None:
        return None
    real, top = path.resolve(), root.resolve()
    if real == top or top in real.parents:
        return None
    return (f"resolves to {real}, outside {top}; pass contain=False (--allow-outside-root on the "
            "command line) to read files outside the data folder")


def _load_images(
    paths: Sequence[Path], image_size: int, on_error: str, progress: bool, desc: str,
    *, contain: Path | None = None, max_image_pixels: int | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Load images; returns the stack, a keep-mask and the skipped messages.

    With ``contain`` a file (or the target of a symlink) outside that folder is an error (or
    skipped with ``on_error="skip"``).
    """
    from tqdm.auto import tqdm

    images = np.zeros((len(paths), image_size, image_size, 3), dtype=np.uint8)
    keep = np.ones(len(paths), dtype=bool)
    skipped: list[str] = []
    cache: dict[Path, int] = {}
    for i, p in enumerate(tqdm(paths, desc=desc, disable=not progress, leave=False)):
        if p in cache:
            images[i] = images[cache[p]]
            keep[i] = keep[cache[p]]
            continue
        cache[p] = i
        try:
            why = _outside(p, contain)
            if why is not None:
                raise ImageLoadError(f"{p}: {why}")
            images[i] = prepare_image(p, image_size, max_image_pixels=max_image_pixels)
        except ImageLoadError as exc:
            if on_error == "raise":
                raise
            keep[i] = False
            skipped.append(str(exc))
    return images, keep, skipped


# --------------------------------------------------------------------------------------------
# folders


def _image_files(folder: Path, extensions: tuple[str, ...], recursive: bool) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    files = [
        p for p in it
        if p.suffix.lower() in extensions and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.is_file()
    ]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def load_folder(
    root: str | os.PathLike[str],
    *,
    image_size: int = 64,
    split: str | None = None,
    classes: Sequence[str] | None = None,
    class_map: Mapping[str, str | None] | None = None,
    on_error: OnError = "raise",
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    recursive: bool = True,
    progress: bool = False,
    contain: bool = True,
    max_image_pixels: int | None = None,
) -> CellDataset:
    """Load a class-per-folder tree (PBC, Raabin-WBC, BCCD crops ...).

    Parameters
    ----------
    root
        Folder holding one subfolder per class (names may contain spaces), or split folders
        (``train/``, ``test/`` ...) that hold the class folders.
    image_size
        Side length of the square images (see :func:`prepare_image`).
    split
        Name of a split subfolder of ``root`` to read (matched case-insensitively, e.g.
        ``"train"`` finds ``Train/``).
    classes
        The class list of the result, e.g. a model's ``class_names``: folder names are mapped onto
        it and labels index it, even if some classes have no images. By default the result has
        the classes present, in canonical order.
    class_map
        Folder name -> class name for names that the aliases do not cover; map a folder to
        ``None`` to leave it out.
    on_error
        ``"raise"`` on the first unreadable image, or ``"skip"`` it (one warning lists them).
    extensions
        File endings to read (case-insensitive).
    recursive
        Also read images in subfolders of a class folder.
    progress
        Show a tqdm progress bar.
    contain
        Refuse (or, with ``on_error="skip"``, skip) files whose real location, after
        symlinks, lies outside ``root``; ``False`` follows symlinks anywhere.
    max_image_pixels
        PIL's decompression-bomb limit per image (see :func:`prepare_image`).

    Returns
    -------
    CellDataset
        With ``meta`` columns ``path`` (the source file) and ``source_class`` (the folder name).

    Raises
    ------
    FileNotFoundError
        When ``root`` or the split folder is missing.
    UnknownClassError
        Listing every folder name that cannot be mapped to a class.
    ValueError
        When there are no class folders or no images.
    ImageLoadError
        For an unreadable image, or (with ``contain``) one whose real location is outside
        ``root`` (with ``on_error="raise"``).

    Warns
    -----
    UserWarning
        Listing skipped images (``on_error="skip"``), empty class folders and animated images
        (their first frame is used).
    """
    _check_on_error(on_error)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    base = root
    if split is not None:
        subdirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
        if split.lower() not in subdirs:
            raise FileNotFoundError(
                f"{root}: no split folder {split!r}; the subfolders are {sorted(p.name for p in subdirs.values())}"
            )
        base = subdirs[split.lower()]
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    class_dirs = sorted(
        (p for p in base.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))),
        key=lambda p: p.name,
    )
    if not class_dirs:
        loose = _image_files(base, exts, recursive=False)
        hint = (
            f" It holds {len(loose)} image file(s) directly; put them into one folder per class."
            if loose else " It is empty."
        )
        raise ValueError(f"{base}: expected one subfolder per class, found none.{hint}")
    if split is None:
        split_names = {"train", "test", "val", "valid", "validation", "test-a", "test-b"}
        found = [p.name for p in class_dirs if p.name.lower() in split_names]
        if found and len(found) == len(class_dirs):
            raise ValueError(
                f"{root}: the subfolders {found} look like data splits, not classes; pass "
                f"split={found[0]!r} (or another) to read one of them"
            )
    mapping = _map_names((p.name for p in class_dirs), classes, class_map, str(base))
    paths: list[Path] = []
    sources: list[str] = []
    names: list[str] = []
    empty: list[str] = []
    for d in class_dirs:
        target = mapping[d.name]
        if target is None:
            continue
        files = _image_files(d, exts, recursive)
        if not files:
            empty.append(d.name)
        paths += files
        sources += [d.name] * len(files)
        names += [target] * len(files)
    if not paths:
        raise ValueError(
            f"{base}: no image files with endings {list(exts)} in the class folders "
            f"{[d.name for d in class_dirs]}"
        )
    if empty:
        warnings.warn(f"{base}: class folder(s) {empty} hold no images", UserWarning, stacklevel=2)
    class_names = _class_order(names, classes)
    images, keep, skipped = _load_images(paths, image_size, on_error, progress, base.name,
                                         contain=root if contain else None,
                                         max_image_pixels=max_image_pixels)
    _warn_skipped(skipped, str(base))
    if not keep.any():
        raise ValueError(f"{base}: none of the {len(paths)} images could be read")
    labels = np.asarray([class_names.index(n) for n in names], dtype=np.int64)
    meta = pd.DataFrame({"path": [str(p) for p in paths], "source_class": sources})
    return CellDataset(images[keep], labels[keep], class_names, meta=meta[keep].reset_index(drop=True))


def load_images(
    source: str | os.PathLike[str],
    *,
    image_size: int = 64,
    path_column: str = "path",
    on_error: OnError = "raise",
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    recursive: bool = False,
    progress: bool = False,
    contain: bool = True,
    max_image_pixels: int | None = None,
    cell_scale: float = 1.0,
) -> tuple[np.ndarray, list[str]]:
    """Load unlabelled images: a folder of image files, or a CSV that lists them.

    For classifying images whose class is unknown (``cytoviz classify`` on a folder without
    class folders, or on a manifest without a ``label`` column).

    Parameters
    ----------
    source
        A folder holding the image files directly, or a CSV file with a ``path`` column
        (relative paths start from the CSV's folder).
    image_size
        Side length of the square images (see :func:`prepare_image`).
    path_column
        The CSV's column of image paths.
    on_error
        ``"raise"`` on the first unreadable (or, for a CSV, missing) image, or ``"skip"`` it
        (one warning lists them).
    extensions
        File endings read from a folder (case-insensitive).
    recursive
        Also read images in subfolders of a folder.
    progress
        Show a tqdm progress bar.
    contain
        Refuse (or skip) files whose real location, after symlinks and ``..``, lies outside
        the folder (for a CSV: the CSV's folder); ``False`` reads files anywhere.
    max_image_pixels
        PIL's decompression-bomb limit per image (see :func:`prepare_image`).
    cell_scale
        How many times larger the cells appear than the model's; the images are brought to
        the model's scale (:func:`cytoviz.data.scale.rescale_cells`; 1: as read).

    Returns
    -------
    images : numpy.ndarray
        ``(N, image_size, image_size, 3)`` ``uint8``.
    paths : list of str
        The file of each image.

    Raises
    ------
    FileNotFoundError
        When ``source`` (or a file a CSV lists) is missing.
    ValueError
        When there are no images, or for an empty CSV, a CSV without ``path_column`` or with
        empty cells, naming the file and line.
    ImageLoadError
        For an unreadable image (with ``on_error="raise"``).
    """
    _check_on_error(on_error)
    source = Path(source)
    if source.is_dir():
        exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
        files = _image_files(source, exts, recursive)
        if not files:
            raise ValueError(f"{source}: no image files with endings {list(exts)}")
        base, skipped = source, []
    elif source.is_file():
        table, lines = _read_rows(source, path_column, path_column)
        blank = table[path_column].str.strip() == ""
        if blank.any():
            raise ValueError(f"{source}, line {int(lines[blank.to_numpy()][0])}, column "
                             f"{path_column!r}: empty value")
        base, files, skipped = source.parent, [], []
        for raw, line in zip(table[path_column], lines, strict=True):
            p = Path(raw.strip()).expanduser()
            p = p if p.is_absolute() else base / p
            why = _outside(p, base) if contain else None
            msg = (f"{source}, line {int(line)}, column {path_column!r}: "
                   + (f"{p} {why}" if why else f"no such file {p}"))
            if why is None and p.is_file():
                files.append(p)
            elif on_error == "raise":
                raise (ValueError if why else FileNotFoundError)(msg)
            else:
                skipped.append(msg)
        if not files:
            raise ValueError(f"{source}: no rows left to load")
    else:
        raise FileNotFoundError(f"{source}: no such file or folder")
    images, keep, bad = _load_images(files, image_size, on_error, progress, source.name,
                                     contain=base if contain else None,
                                     max_image_pixels=max_image_pixels)
    _warn_skipped(skipped + bad, str(source))
    if not keep.any():
        raise ValueError(f"{source}: none of the {len(files)} images could be read")
    images = images[keep]
    if float(cell_scale) != 1.0:
        from cytoviz.data.scale import rescale_cells

        images = rescale_cells(images, cell_scale)
    return images, [str(p) for p, k in zip(files, keep, strict=True) if k]


# --------------------------------------------------------------------------------------------
# manifests


def _confidence(value: Any, line: int, csv_path: Path) -> float:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return float("nan")
    text = str(value).strip()
    word = _CONFIDENCE_WORDS.get(text.lower())
    if word is not None:
        return word
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not 0.0 <= number <= 1.0:
        raise ValueError(
            f"{csv_path}, line {line}, column 'confidence': {text!r} is neither a number in "
            f"[0, 1] nor one of {sorted(_CONFIDENCE_WORDS)}"
        )
    return number


def _read_rows(csv_path: Path, path_column: str, label_column: str
               ) -> tuple[pd.DataFrame, np.ndarray]:
    """The manifest as a table of text, and each row's line in the file (the header is line 1).

    Read with the :mod:`csv` module rather than pandas, which would silently make the leading
    fields of a row with extra fields into an index.
    """
    import csv

    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, skipinitialspace=True)
            rows, lines = [], []
            for row in reader:
                if any(cell.strip() for cell in row):  # blank lines are skipped
                    rows.append(row)
                    lines.append(reader.line_num)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"{csv_path}: not a readable CSV file ({exc})") from exc
    if not rows:
        raise ValueError(f"{csv_path}: the CSV file is empty; it needs a header row with "
                         f"'{path_column}' and '{label_column}' columns")
    header = [c.strip() for c in rows[0]]
    missing = [c for c in (path_column, label_column) if c not in header]
    if missing:
        seps = [name for mark, name in ((";", "';'"), ("\t", "tabs"))
                if any(mark in c for c in header)]
        sep = seps[0] if seps else None
        hint = (f" The header looks separated by {sep}: save the file with commas as "
                "separators (a spreadsheet's 'CSV, comma-separated' format)." if sep else "")
        raise ValueError(
            f"{csv_path}: missing column(s) {missing}; the columns are {header}. "
            f"Rename them or pass path_column= / label_column=.{hint}"
        )
    dup = sorted({c for c in header if header.count(c) > 1})
    if dup:
        raise ValueError(f"{csv_path}: the header names column(s) {dup} more than once")
    for row, line in zip(rows[1:], lines[1:], strict=True):
        if len(row) > len(header):
            raise ValueError(
                f"{csv_path}, line {line}: {len(row)} fields where the header has "
                f"{len(header)} ({', '.join(header)}); put a field that contains a comma in "
                'double quotes ("a,b.png")'
            )
    if len(rows) == 1:
        raise ValueError(f"{csv_path}: the CSV file has a header but no rows")
    # a row with fewer fields gets empty ones (as pandas reads it)
    body = [row + [""] * (len(header) - len(row)) for row in rows[1:]]
    table = pd.DataFrame(body, columns=header, dtype=str)
    return table, np.asarray(lines[1:], dtype=np.int64)


def _check_repeats(table: pd.DataFrame, paths: Sequence[Path], lines: np.ndarray,
                   csv_path: Path, label_column: str, labels: Sequence[str | None]) -> None:
    """Refuse a file listed twice (per expert when there is an ``expert`` column)."""
    experts = table["expert"].str.strip().tolist() if "expert" in table.columns else None
    first: dict[tuple[Path, str], int] = {}
    for i, p in enumerate(paths):
        key = (p.resolve(), experts[i] if experts is not None else "")
        j = first.setdefault(key, i)
        if j == i:
            continue
        who = f" by expert {key[1]!r}" if experts is not None else ""
        if labels[i] != labels[j]:
            raise ValueError(
                f"{csv_path}, line {int(lines[i])}: {p} has two labels{who}, "
                f"{table[label_column].iloc[j].strip()!r} (line {int(lines[j])}) and "
                f"{table[label_column].iloc[i].strip()!r}; keep one row per file"
            )
        raise ValueError(f"{csv_path}, line {int(lines[i])}: repeats line {int(lines[j])} "
                         f"({p}{who}); keep one row per file")


def load_manifest(
    csv_path: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    image_size: int = 64,
    classes: Sequence[str] | None = None,
    class_map: Mapping[str, str | None] | None = None,
    path_column: str = "path",
    label_column: str = "label",
    on_error: OnError = "raise",
    progress: bool = False,
    contain: bool = True,
    max_image_pixels: int | None = None,
) -> CellDataset:
    """Load images listed in a CSV file.

    Parameters
    ----------
    csv_path
        CSV with columns ``path`` and ``label`` (names configurable), and optionally
        ``expert`` and ``confidence`` (a number in [0, 1] or High / Moderate / Low / No, mapped to
        1, 2/3, 1/3, 0). Other columns are kept in ``meta``.
    root
        Folder that relative paths start from (default: the CSV's folder).
    image_size, classes, class_map, on_error, progress, max_image_pixels
        As for :func:`load_folder`; ``on_error="skip"`` also skips rows whose file is missing
        or outside ``root``.
    path_column, label_column
        Names of the path and label columns.
    contain
        Every listed file must lie inside ``root`` (default: the CSV's folder) once ``..``,
        absolute paths and symlinks are resolved; ``False`` reads files anywhere.

    Returns
    -------
    CellDataset
        One image per row, ``meta`` with ``path`` (resolved), the original columns and a
        numeric ``confidence`` when present.

    Raises
    ------
    ValueError
        For an empty or unreadable CSV, missing columns (with a hint for ``;``- or
        tab-separated files), a row with more fields than the header, empty cells, a file
        listed twice (with an ``expert`` column: twice by the same expert) or with two
        labels, or a file outside ``root``; the message names the file, the line (the header
        is line 1) and the column.
    """
    _check_on_error(on_error)
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: no such file")
    table, lines = _read_rows(csv_path, path_column, label_column)
    base = Path(root) if root is not None else csv_path.parent
    for col in (path_column, label_column):
        blank = table[col].str.strip() == ""
        if blank.any():
            raise ValueError(
                f"{csv_path}, line {int(lines[blank.to_numpy()][0])}, column {col!r}: empty value "
                f"({int(blank.sum())} empty cell(s) in this column)"
            )
    mapping = _map_names(sorted(set(table[label_column].str.strip())), classes, class_map, str(csv_path))
    paths = [Path(raw.strip()).expanduser() for raw in table[path_column]]
    paths = [p if p.is_absolute() else base / p for p in paths]
    _check_repeats(table, paths, lines, csv_path, label_column,
                   [mapping[v.strip()] for v in table[label_column]])
    rows_keep = np.ones(len(table), dtype=bool)
    skipped: list[str] = []
    for i, p in enumerate(paths):
        why = _outside(p, base) if contain else None
        if mapping[table[label_column].iloc[i].strip()] is None:
            rows_keep[i] = False
        elif why is not None:
            msg = f"{csv_path}, line {int(lines[i])}, column {path_column!r}: {p} {why}"
            if on_error == "raise":
                raise ValueError(msg)
            rows_keep[i] = False
            skipped.append(msg)
        elif not p.is_file():
            msg = f"{csv_path}, line {int(lines[i])}, column {path_column!r}: no such file {p}"
            if on_error == "raise":
                raise FileNotFoundError(msg + (f" (relative paths start from {base}; pass root=)"))
            rows_keep[i] = False
            skipped.append(msg)
    confidence = None
    if "confidence" in table.columns:
        confidence = np.asarray(
            [_confidence(v if v.strip() else None, int(lines[i]), csv_path)
             for i, v in enumerate(table["confidence"])]
        )
    labels_txt = [mapping[v.strip()] for v in table[label_column]]
    class_names = _class_order([n for n, k in zip(labels_txt, rows_keep, strict=True) if k], classes)
    idx = np.flatnonzero(rows_keep)
    if idx.size == 0:
        raise ValueError(f"{csv_path}: no rows left to load")
    images, keep, bad = _load_images([paths[i] for i in idx], image_size, on_error, progress,
                                     csv_path.name, max_image_pixels=max_image_pixels)
    _warn_skipped(skipped + bad, str(csv_path))
    idx = idx[keep]
    if idx.size == 0:
        raise ValueError(f"{csv_path}: none of the listed images could be read")
    meta = table.iloc[idx].reset_index(drop=True).copy()
    meta["source_path"] = meta[path_column]
    meta["path"] = [str(paths[i]) for i in idx]
    meta["line"] = lines[idx]
    if confidence is not None:
        meta["confidence"] = confidence[idx]
    labels = np.asarray([class_names.index(labels_txt[i]) for i in idx], dtype=np.int64)
    return CellDataset(images[keep], labels, class_names, meta=meta)


# --------------------------------------------------------------------------------------------
# BloodMNIST


def load_bloodmnist(
    npz_path: str | os.PathLike[str],
    split: Literal["train", "val", "test"] = "test",
    *,
    image_size: int | None = 64,
    classes: Sequence[str] | None = None,
) -> CellDataset:
    """Load one split of MedMNIST's BloodMNIST ``.npz`` file.

    Parameters
    ----------
    npz_path
        ``bloodmnist.npz`` (or ``bloodmnist_64.npz`` ...), with keys ``train_images``,
        ``train_labels``, ``val_*`` and ``test_*``.
    split
        ``"train"``, ``"val"`` or ``"test"``.
    image_size
        Resize to this side length (Lanczos); ``None`` keeps the stored size.
    classes
        The class list of the result (e.g. a model's); by default the eight BloodMNIST
        classes in canonical order.

    Returns
    -------
    CellDataset
        ``meta`` has ``path`` (``file:split[index]``) and ``index`` (the row in the split).
    """
    npz_path = Path(npz_path)
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if not npz_path.is_file():
        raise FileNotFoundError(f"{npz_path}: no such file")
    try:
        with np.load(npz_path, allow_pickle=False) as data:
            keys = list(data.files)
            need = [f"{split}_images", f"{split}_labels"]
            missing = [k for k in need if k not in keys]
            if missing:
                raise ValueError(
                    f"{npz_path}: not a BloodMNIST file: keys {missing} are missing (it has {keys})"
                )
            images = data[need[0]]
            raw_labels = data[need[1]]
    except (OSError, EOFError) as exc:
        raise ValueError(f"{npz_path}: unreadable npz file ({exc})") from exc
    raw_labels = np.asarray(raw_labels).reshape(-1).astype(np.int64)
    if images.shape[0] != raw_labels.shape[0]:
        raise ValueError(
            f"{npz_path}: {images.shape[0]} {split} images but {raw_labels.shape[0]} labels"
        )
    if raw_labels.size and (raw_labels.min() < 0 or raw_labels.max() >= len(BLOODMNIST_CLASSES)):
        raise ValueError(
            f"{npz_path}: {split} labels must lie in [0, 7], got [{raw_labels.min()}, {raw_labels.max()}]"
        )
    class_names = tuple(classes) if classes is not None else _class_order(BLOODMNIST_CLASSES, None)
    mapping = _map_names(BLOODMNIST_CLASSES, class_names, None, str(npz_path))
    remap = np.asarray([class_names.index(mapping[c]) for c in BLOODMNIST_CLASSES], dtype=np.int64)
    if images.ndim == 3 or images.shape[-1] != 3 or images.dtype != np.uint8 or (
        image_size is not None and images.shape[1:3] != (image_size, image_size)
    ):
        size = int(image_size) if image_size is not None else int(min(images.shape[1:3]))
        images = np.stack([prepare_image(im, size) for im in images]) if len(images) else (
            np.zeros((0, size, size, 3), dtype=np.uint8)
        )
    meta = pd.DataFrame({
        "path": [f"{npz_path}:{split}[{i}]" for i in range(len(raw_labels))],
        "index": np.arange(len(raw_labels)),
    })
    return CellDataset(np.ascontiguousarray(images), remap[raw_labels], class_names, meta=meta)
