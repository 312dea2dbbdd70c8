"""Data: the synthetic peripheral-blood-smear generator, the expert panel, and loaders."""

from cytoviz.data._dataset import MASK_NAMES, CellDataset
from cytoviz.data.loaders import (
    ImageLoadError,
    load_bloodmnist,
    load_folder,
    load_manifest,
    prepare_image,
)

__all__ = [
    "MASK_NAMES",
    "CellDataset",
    "ImageLoadError",
    "load_bloodmnist",
    "load_folder",
    "load_manifest",
    "prepare_image",
]
