"""The canonical blood-cell classes and normalisation of class names from other data sets."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence

__all__ = [
    "CANONICAL_CLASSES", "UnknownClassError", "check_class_names", "normalise_class_name",
    "normalise_class_names",
]

#: The ten CytoData classes, in cytoviz's canonical order.
CANONICAL_CLASSES: tuple[str, ...] = (
    "basophil",
    "blast",
    "lymphocyte",
    "monocyte",
    "neutrophil",
    "erythroblast",
    "eosinophil",
    "immature granulocyte",
    "platelet",
    "artefact",
)

# Aliases seen in PBC, Raabin-WBC, BCCD, LISC, CytoData, Bodzas and MedMNIST (lower case,
# separators collapsed to single spaces).
_ALIASES: dict[str, str] = {
    # basophil
    "ba": "basophil", "bas": "basophil", "baso": "basophil", "basophils": "basophil",
    # blast
    "bl": "blast", "blasts": "blast", "myeloblast": "blast", "lymphoblast": "blast",
    "blast cell": "blast", "mb": "blast",
    # lymphocyte
    "ly": "lymphocyte", "lym": "lymphocyte", "lymph": "lymphocyte", "lymphocytes": "lymphocyte",
    "lt": "lymphocyte", "small lymphocyte": "lymphocyte",
    # monocyte
    "mo": "monocyte", "mon": "monocyte", "mono": "monocyte", "monocytes": "monocyte",
    # neutrophil
    "ne": "neutrophil", "neu": "neutrophil", "neut": "neutrophil", "neutrophils": "neutrophil",
    "sne": "neutrophil", "bne": "neutrophil", "segmented neutrophil": "neutrophil",
    "band neutrophil": "neutrophil", "neutrophil segmented": "neutrophil",
    "neutrophil band": "neutrophil", "seg": "neutrophil", "band": "neutrophil",
    # erythroblast
    "erb": "erythroblast", "ery": "erythroblast", "erythroblasts": "erythroblast",
    "nrbc": "erythroblast", "normoblast": "erythroblast",
    # eosinophil
    "eo": "eosinophil", "eos": "eosinophil", "eosi": "eosinophil", "eosinophils": "eosinophil",
    # immature granulocyte
    "ig": "immature granulocyte", "igs": "immature granulocyte",
    "immature granulocytes": "immature granulocyte", "immature_granulocyte": "immature granulocyte",
    "mmy": "immature granulocyte", "my": "immature granulocyte", "pmy": "immature granulocyte",
    "metamyelocyte": "immature granulocyte", "myelocyte": "immature granulocyte",
    "promyelocyte": "immature granulocyte",
    # platelet
    "plt": "platelet", "platelets": "platelet", "thrombocyte": "platelet",
    "thrombocytes": "platelet",
    # artefact
    "artifact": "artefact", "artifacts": "artefact", "artefacts": "artefact",
    "smudge": "artefact", "smudge cell": "artefact", "debris": "artefact",
}


class UnknownClassError(ValueError):
    """A class name that cannot be mapped to the canonical classes."""


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(name).strip().lower())


def normalise_class_name(name: str, *, classes: Sequence[str] = CANONICAL_CLASSES) -> str:
    """Map a class name from another data set to its canonical cytoviz name.

    Parameters
    ----------
    name
        A folder name, label or file-name prefix, e.g. ``"NEUTROPHIL"``, ``"ig"``, ``"SNE"``.
    classes
        Names that are accepted as they are (after case and separator normalisation).

    Returns
    -------
    str
        The canonical name.

    Raises
    ------
    UnknownClassError
        When the name matches neither a canonical class nor a known alias.
    """
    key = _key(name)
    canon = {_key(c): c for c in classes}
    if key in canon:
        return canon[key]
    alias = _ALIASES.get(key)
    if alias is not None and alias in classes:
        return alias
    raise UnknownClassError(
        f"unknown class name {name!r}; known classes are {list(classes)} "
        "(aliases such as 'ig', 'SNE', 'NEUTROPHIL' are accepted). Rename the folder or label, "
        "or pass an explicit class_map (--class-map NAME=CLASS on the command line)."
    )


def normalise_class_names(
    names: Iterable[str], *, classes: Sequence[str] = CANONICAL_CLASSES
) -> list[str]:
    """Normalise many names; the error lists every name that could not be mapped.

    Parameters
    ----------
    names
        Class names in any accepted spelling (see :func:`normalise_class_name`).
    classes
        The known class names to map onto.

    Returns
    -------
    list of str
        The canonical names, in the order of ``names``.

    Raises
    ------
    UnknownClassError
        Listing every name that could not be mapped.
    """
    out: list[str] = []
    bad: list[str] = []
    for n in names:
        try:
            out.append(normalise_class_name(n, classes=classes))
        except UnknownClassError:
            bad.append(str(n))
    if bad:
        raise UnknownClassError(
            f"cannot map class name(s) {sorted(set(bad))} to the known classes {list(classes)}; "
            "rename them or pass an explicit class_map (--class-map NAME=CLASS on the command "
            "line)"
        )
    return out


def _name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a file or folder name of its own (``None``: it can)."""
    if not isinstance(name, str):
        return f"is of type {type(name).__name__}, not text"
    if not name:
        return "is empty"
    if name != name.strip():
        return "has leading or trailing whitespace"
    if name in (".", ".."):
        return "is a relative folder reference"
    if "/" in name or "\\" in name or os.path.isabs(name):
        return "contains a path separator"
    if not name.isprintable():
        return "contains control or non-printable characters"
    return None


def check_class_names(
    names: Iterable[str], *, source: str | os.PathLike[str] | None = None,
    what: str = "class name",
) -> tuple[str, ...]:
    """Check that every name can name a folder of its own; return the names as a tuple.

    Class names become folder names (``OUT/<class>/<id>.png``) and file-name parts, so a
    name like ``"../../X"`` or ``"/abs/X"`` from a tampered model or data file would write
    outside the output folder. Every place that reads class names from a file or builds a data
    set calls this check.

    Parameters
    ----------
    names
        The names, e.g. a model's ``class_names``.
    source
        Where the names come from (a file), named in the error.
    what
        What the names are, for the error (``"class name"``, ``"image id"`` ...).

    Returns
    -------
    tuple of str
        ``names``, unchanged.

    Raises
    ------
    ValueError
        For a name that is empty, has leading or trailing whitespace, is ``.`` or ``..``,
        contains ``/`` or ``\\`` or is absolute, or has non-printable characters, and for
        duplicates; the message names the source and every bad name.
    """
    names = tuple(names)
    where = f"{source}: " if source is not None else ""
    bad = [f"{n!r} {why}" for n in names if (why := _name_problem(n)) is not None]
    if bad:
        raise ValueError(
            f"{where}invalid {what}(s): {'; '.join(bad)}. A {what} must be printable text "
            "without '/' or '\\', not '.' or '..', and without leading or trailing spaces"
        )
    seen: set[str] = set()
    dup = sorted({n for n in names if n in seen or seen.add(n)})
    if dup:
        raise ValueError(f"{where}duplicate {what}(s) {dup}; every {what} must be unique")
    return names
