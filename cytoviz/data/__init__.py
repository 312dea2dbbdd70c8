"""Data: the synthetic peripheral-blood-smear generator, the expert panel, and loaders."""

from cytoviz.data._dataset import MASK_NAMES, CellDataset
from cytoviz.data._image import ImageLoadError, prepare_image
from cytoviz.data._resolve import SINGLE, resolve, resolve_one
from cytoviz.data.domains import DOMAINS, DomainShift
from cytoviz.data.loaders import load_bloodmnist, load_folder, load_images, load_manifest
from cytoviz.data.panel import PanelConfig, consensus, expert_correctness, simulate_panel
from cytoviz.data.panel_agreement import pairwise_confidence, panel_calibration
from cytoviz.data.scale import estimate_cell_scale, rescale_cells
from cytoviz.data.synth import SynthConfig, default_splits, synthesize, write_dataset

__all__ = [
    "DOMAINS",
    "MASK_NAMES",
    "SINGLE",
    "CellDataset",
    "DomainShift",
    "ImageLoadError",
    "PanelConfig",
    "SynthConfig",
    "consensus",
    "default_splits",
    "estimate_cell_scale",
    "expert_correctness",
    "load_bloodmnist",
    "load_folder",
    "load_images",
    "load_manifest",
    "pairwise_confidence",
    "panel_calibration",
    "prepare_image",
    "rescale_cells",
    "resolve",
    "resolve_one",
    "simulate_panel",
    "synthesize",
    "write_dataset",
]
