"""The canonical blood-cell classes and normalisation of class names from other data sets."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["CANONICAL_CLASSES", "UnknownClassError", "normalise_class_name", "normalise_class_names"]

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
        "or pass an explicit class_map."
    )


def normalise_class_names(
    names: Iterable[str], *, classes: Sequence[str] = CANONICAL_CLASSES
) -> list[str]:
    """Normalise many names; the error lists every name that could not be mapped."""
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
            "rename them or pass an explicit class_map"
        )
    return out
