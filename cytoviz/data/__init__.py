"""Data: the synthetic peripheral-blood-smear generator, the expert panel, and loaders."""

from cytoviz.data._dataset import MASK_NAMES, CellDataset

__all__ = ["MASK_NAMES", "CellDataset"]
