"""Procedural synthetic peripheral-blood smears with known ground truth.

Every image shows one centred white cell (or platelet, or artefact) of one of the ten
:data:`~cytoviz.classes.CANONICAL_CLASSES` on a pale background with red cells around it. The
cell is built from signed distance fields (cell outline, nucleus of class-specific shape:
round, oval, kidney, band, 2-5 lobes, smudge) and textured with smooth noise (chromatin),
granules (size, density, colour per class), vacuoles and nucleoli. Colours come from a
Beer-Lambert stain model: each material has an optical-density (OD) vector fitted to real PBC
images, the ODs add up, and the image is ``illumination * exp(-OD)``. This makes stain and
illumination variation (and the domain shifts of :mod:`cytoviz.data.domains`) a matter of
changing a few OD vectors.

Ground truth per image: the nucleus, cytoplasm and granule masks (:attr:`CellDataset.masks`),
and an ambiguity control: a ``hard_fraction`` of the images are morphological blends of their
class with a neighbouring class (``mix_class``) at a known weight ``mix_weight`` in [0, 0.5]:
nucleus and cell distance fields, colours, granularity and sizes are interpolated. The label is
always the majority class; ``ambiguity = 2 * mix_weight`` (0 = clear-cut, 1 = a 50/50 blend).

Everything is deterministic from the seed: image ``i`` of a call is drawn from its own random
stream ``(seed, stream, i)``, so the same seed gives identical arrays.

This module holds the settings, the random streams and blends, the default splits and the
writer of image folders; the drawing of one image (stain model, morphology of each class,
distance fields, rendering) is :func:`cytoviz.data._render.render_cell`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cytoviz._config import Config
from cytoviz._io import atomic_path, inside, save_csv, save_npz
from cytoviz.classes import CANONICAL_CLASSES, check_class_names, normalise_class_name
from cytoviz.data._dataset import MASK_NAMES, CellDataset
from cytoviz.data._render import render_cell
from cytoviz.data.domains import DomainShift, get_domain

__all__ = [
    "DEFAULT_SPLIT_COUNTS",
    "NEIGHBOURS",
    "SynthConfig",
    "default_splits",
    "synthesize",
    "write_dataset",
]

#: Images per class of each split of :func:`default_splits` at ``scale=1``. The training split
#: keeps CytoData's imbalance (about 14:1 between neutrophils and basophils, 2,290 images);
#: validation and the three test sets are balanced.
DEFAULT_SPLIT_COUNTS: dict[str, dict[str, int]] = {
    "train": {
        "basophil": 40, "blast": 280, "lymphocyte": 440, "monocyte": 240, "neutrophil": 560,
        "erythroblast": 120, "eosinophil": 200, "immature granulocyte": 200, "platelet": 160,
        "artefact": 50,
    },
    "val": dict.fromkeys(CANONICAL_CLASSES, 30),
    "test": dict.fromkeys(CANONICAL_CLASSES, 60),
    "test_mild": dict.fromkeys(CANONICAL_CLASSES, 60),
    "test_strong": dict.fromkeys(CANONICAL_CLASSES, 60),
}
_SPLIT_DOMAINS = {"train": None, "val": None, "test": None, "test_mild": "mild",
                  "test_strong": "strong"}
_SPLIT_STREAMS = {"train": 1, "val": 2, "test": 3, "test_mild": 4, "test_strong": 5}

#: Classes a hard case of each class may be blended with (morphological neighbours).
NEIGHBOURS: dict[str, tuple[str, ...]] = {
    "basophil": ("eosinophil", "artefact", "lymphocyte"),
    "blast": ("lymphocyte", "immature granulocyte", "monocyte"),
    "lymphocyte": ("blast", "erythroblast", "monocyte"),
    "monocyte": ("immature granulocyte", "lymphocyte", "blast"),
    "neutrophil": ("immature granulocyte", "eosinophil", "monocyte"),
    "erythroblast": ("lymphocyte", "blast"),
    "eosinophil": ("neutrophil", "basophil"),
    "immature granulocyte": ("neutrophil", "monocyte", "blast"),
    "platelet": ("artefact", "erythroblast"),
    "artefact": ("lymphocyte", "neutrophil", "platelet", "basophil"),
}


@dataclasses.dataclass(frozen=True)
class SynthConfig(Config):
    """Settings of the synthetic smear generator.

    Parameters
    ----------
    image_size
        Side length of the square output images in pixels (the cell scale follows it).
    seed
        Seed of all random draws (same seed, same arrays).
    hard_fraction
        Share of images that are morphological blends with a neighbouring class.
    mix_weight_range
        Range of the blend weight of hard cases (uniform), within [0, 0.5].
    supersample
        Render at this multiple of ``image_size`` and average down (anti-aliasing).
    stain_jitter
        Per-image relative variation of the stain intensity (standard deviation).
    hue_jitter_deg
        Per-image variation of the stain hue (standard deviation, degrees).
    illumination_jitter
        Per-image relative variation of the illumination per channel.
    max_offset
        Largest shift of the cell from the image centre, as a fraction of the image width.
    noise_std
        Sensor noise of the reference camera (intensities in [0, 1]).
    stray_platelet_prob
        Probability of a stray platelet in the background of an image.
    classes
        Classes to generate, in label order (a subset of the canonical classes).
    """

    image_size: int = 64
    seed: int = 0
    hard_fraction: float = 0.18
    mix_weight_range: tuple[float, float] = (0.15, 0.5)
    supersample: int = 2
    stain_jitter: float = 0.08
    hue_jitter_deg: float = 4.0
    illumination_jitter: float = 0.008
    max_offset: float = 0.04
    noise_std: float = 0.008
    stray_platelet_prob: float = 0.2
    classes: tuple[str, ...] = CANONICAL_CLASSES

    def validate(self) -> None:
        if not 16 <= int(self.image_size) <= 1024:
            raise ValueError(f"image_size must lie in [16, 1024], got {self.image_size}")
        if not 0.0 <= self.hard_fraction <= 1.0:
            raise ValueError(f"hard_fraction must lie in [0, 1], got {self.hard_fraction}")
        lo, hi = self.mix_weight_range
        if not 0.0 <= lo <= hi <= 0.5:
            raise ValueError(
                f"mix_weight_range must satisfy 0 <= low <= high <= 0.5, got {self.mix_weight_range}"
            )
        if int(self.supersample) not in (1, 2, 3, 4):
            raise ValueError(f"supersample must be 1, 2, 3 or 4, got {self.supersample}")
        for field in ("stain_jitter", "illumination_jitter", "noise_std"):
            if not 0.0 <= getattr(self, field) <= 0.5:
                raise ValueError(f"{field} must lie in [0, 0.5], got {getattr(self, field)}")
        if not 0.0 <= self.hue_jitter_deg <= 45.0:
            raise ValueError(f"hue_jitter_deg must lie in [0, 45], got {self.hue_jitter_deg}")
        if not 0.0 <= self.max_offset <= 0.25:
            raise ValueError(f"max_offset must lie in [0, 0.25], got {self.max_offset}")
        if not 0.0 <= self.stray_platelet_prob <= 1.0:
            raise ValueError(
                f"stray_platelet_prob must lie in [0, 1], got {self.stray_platelet_prob}"
            )
        unknown = [c for c in self.classes if c not in CANONICAL_CLASSES]
        if unknown or not self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError(
                f"classes must be distinct canonical class names {list(CANONICAL_CLASSES)}, "
                f"got {list(self.classes)}"
            )


# --------------------------------------------------------------------------------------------
# Public API


def _resolve_counts(counts: int | Mapping[str, int], classes: tuple[str, ...]) -> list[int]:
    if isinstance(counts, int | np.integer):
        if counts < 0:
            raise ValueError(f"counts must be >= 0 images per class, got {counts}")
        return [int(counts)] * len(classes)
    if not isinstance(counts, Mapping):
        raise ValueError(
            f"counts must be an int (images per class) or a mapping class -> count, got "
            f"{type(counts).__name__}"
        )
    out = dict.fromkeys(classes, 0)
    for name, n in counts.items():
        canon = normalise_class_name(name)
        if canon not in out:
            raise ValueError(
                f"class {name!r} is not among the configured classes {list(classes)}; "
                "add it to SynthConfig.classes or drop it from counts"
            )
        if int(n) < 0:
            raise ValueError(f"count for {name!r} must be >= 0, got {n}")
        out[canon] = int(n)
    return [out[c] for c in classes]


def _synthesize(
    counts: int | Mapping[str, int],
    config: SynthConfig,
    domain: str | DomainShift | None,
    seed: int,
    stream: int,
    id_prefix: str,
) -> CellDataset:
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    shift = get_domain(domain)
    classes = tuple(config.classes)
    per_class = _resolve_counts(counts, classes)
    n = int(sum(per_class))
    labels = np.repeat(np.arange(len(classes)), per_class)
    labels = np.random.default_rng([int(seed), stream, 2**32 - 1]).permutation(labels)
    size = int(config.image_size)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, len(MASK_NAMES), size, size), dtype=bool)
    rows: list[dict[str, Any]] = []
    lo, hi = config.mix_weight_range
    for i, lab in enumerate(labels):
        rng = np.random.default_rng([int(seed), stream, i])
        cam_rng = np.random.default_rng([int(seed), stream, i, 1])
        cls = classes[lab]
        partner, weight = None, 0.0
        options = [c for c in NEIGHBOURS[cls] if c in classes]
        if options and rng.random() < config.hard_fraction:
            partner = options[int(rng.integers(len(options)))]
            weight = float(rng.uniform(lo, hi))
        images[i], masks[i], info = render_cell(cls, partner, weight, rng, cam_rng, config, shift)
        rows.append({
            "id": f"{id_prefix}{i:05d}",
            "domain": shift.name,
            "mix_class": partner or "",
            "mix_weight": weight,
            "ambiguity": 2.0 * weight,
            **info,
        })
    columns = ["id", "domain", "mix_class", "mix_weight", "ambiguity", "nucleus_kind",
               "cell_radius", "rotation_deg", "offset_x", "offset_y"]
    meta = pd.DataFrame(rows, columns=columns)
    return CellDataset(images=images, labels=labels, class_names=classes, meta=meta, masks=masks)


def synthesize(
    counts: int | Mapping[str, int],
    *,
    config: SynthConfig | None = None,
    domain: str | DomainShift | None = None,
    seed: int | None = None,
) -> CellDataset:
    """Generate synthetic smear images with ground-truth masks and ambiguity metadata.

    Parameters
    ----------
    counts
        Images per class: an int (the same for every class of ``config.classes``) or a
        mapping from class name (aliases accepted) to count.
    config
        Generator settings; defaults to ``SynthConfig()`` (64 x 64 images).
    domain
        A preset name from :data:`cytoviz.data.domains.DOMAINS` (``"mild"``, ``"strong"``),
        a :class:`~cytoviz.data.domains.DomainShift`, or ``None`` for the reference domain.
    seed
        Overrides ``config.seed``. The same seed gives identical arrays; with the same seed,
        image ``i`` has the same cell morphology in every domain.

    Returns
    -------
    CellDataset
        Images in random class order, ``masks`` set (nucleus, cytoplasm, granules) and
        ``meta`` with columns ``id``, ``domain``, ``mix_class`` ("" for clear cases),
        ``mix_weight`` in [0, 0.5], ``ambiguity`` (= 2 * mix_weight, in [0, 1]),
        ``nucleus_kind``, ``cell_radius`` (fraction of the image width), ``rotation_deg``,
        ``offset_x``, ``offset_y``.
    """
    config = config if config is not None else SynthConfig()
    seed = config.seed if seed is None else seed
    return _synthesize(counts, config, domain, seed, stream=0, id_prefix=f"s{seed}-")


def default_splits(
    *, config: SynthConfig | None = None, scale: float = 1.0,
    splits: Sequence[str] | None = None,
) -> dict[str, CellDataset]:
    """The default synthetic benchmark: imbalanced training set, balanced val/test sets.

    Parameters
    ----------
    config
        Generator settings (image size, seed, hard fraction); defaults to ``SynthConfig()``.
    scale
        Multiplies every count of :data:`DEFAULT_SPLIT_COUNTS` (each class keeps at least one
        image), e.g. ``0.05`` for a quick test.
    splits
        Generate only these splits (default: all). Each split has its own random stream, so
        a split is identical whether or not the others are generated.

    Returns
    -------
    dict of str to CellDataset
        ``"train"`` (2,290 images at ``scale=1``, CytoData-like imbalance from 40 basophils to
        560 neutrophils), ``"val"`` (30 per class), ``"test"`` (60 per class, reference
        domain), ``"test_mild"`` and ``"test_strong"`` (60 per class, the ``"mild"`` and
        ``"strong"`` domain presets). Every split comes from its own random stream.
    """
    config = config if config is not None else SynthConfig()
    if not 0.0 < scale <= 100.0:
        raise ValueError(f"scale must lie in (0, 100], got {scale}")
    wanted = list(DEFAULT_SPLIT_COUNTS) if splits is None else list(splits)
    unknown = [w for w in wanted if w not in DEFAULT_SPLIT_COUNTS]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; choose from {list(DEFAULT_SPLIT_COUNTS)}")
    out: dict[str, CellDataset] = {}
    for split in wanted:
        counts = DEFAULT_SPLIT_COUNTS[split]
        scaled = {c: max(1, round(n * scale)) for c, n in counts.items() if c in config.classes}
        out[split] = _synthesize(
            scaled, config, _SPLIT_DOMAINS[split], config.seed, _SPLIT_STREAMS[split],
            id_prefix=f"{split}-",
        )
    return out


def write_dataset(
    dataset: CellDataset, folder: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write a data set as a class-per-folder tree of PNGs with a manifest, atomically per file.

    Layout: ``folder/<class name>/<id>.png``; ``folder/manifest.csv`` (columns ``path``
    relative to ``folder``, ``label`` class name, ``label_index``, then every ``meta``
    column); ``folder/masks.npz`` (``masks`` ``(N, 3, H, W)`` bool and ``mask_names``) when
    the data set has masks; ``folder/dataset.npz`` (:meth:`CellDataset.save`).

    Parameters
    ----------
    dataset
        The images to write.
    folder
        Destination folder (created).
    overwrite
        Replace an existing ``manifest.csv``; otherwise an existing one is an error.

    Returns
    -------
    Path
        ``folder``.

    Raises
    ------
    FileExistsError
        When ``folder/manifest.csv`` exists and ``overwrite`` is off.
    ValueError
        For class names or ids that are not plain file names (``"../x"``, ``"a/b"`` ...) or
        a file that would land outside ``folder`` (e.g. through a symlinked class folder);
        nothing is written then.
    """
    from PIL import Image

    folder = Path(folder)
    manifest_path = folder / "manifest.csv"
    if manifest_path.exists() and not overwrite:
        raise FileExistsError(
            f"{manifest_path} exists; choose an empty folder or pass overwrite=True"
        )
    meta = dataset.meta if dataset.meta is not None else pd.DataFrame(index=range(len(dataset)))
    ids = (
        meta["id"].astype(str).tolist() if "id" in meta.columns
        else [f"{i:05d}" for i in range(len(dataset))]
    )
    if len(set(ids)) != len(ids):
        raise ValueError("meta column 'id' has duplicates; ids name the PNG files and must be unique")
    # class names and ids name folders and files: plain names only, and every path checked
    check_class_names(dataset.class_names)
    check_class_names(ids, source="meta column 'id'", what="image id")
    targets = [inside(folder, Path(dataset.class_names[lab]) / f"{ident}.png")
               for lab, ident in zip(dataset.labels, ids, strict=True)]
    paths = []
    for img, target in zip(dataset.images, targets, strict=True):
        rel = target.relative_to(folder)
        with atomic_path(target) as tmp:
            Image.fromarray(img).save(tmp, format="PNG")
        paths.append(rel.as_posix())
    table = pd.DataFrame({
        "path": paths,
        "label": dataset.label_names,
        "label_index": dataset.labels,
    })
    extra = meta.drop(columns=[c for c in ("path", "label", "label_index") if c in meta.columns])
    table = pd.concat([table, extra.reset_index(drop=True)], axis=1)
    if dataset.masks is not None:
        save_npz(folder / "masks.npz", masks=dataset.masks,
                 mask_names=np.asarray(MASK_NAMES, dtype=str))
    dataset.save(folder / "dataset.npz")
    save_csv(table, manifest_path)
    return folder
