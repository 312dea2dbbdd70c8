"""benchmarks/crop_pilot.py: the centre crop and the per-class subset it trains and scores on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _scripts import load_script

from cytoviz.data import MASK_NAMES, CellDataset
from cytoviz.data.synth import SynthConfig, synthesize

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "crop_pilot.py"


def _module():
    return load_script(SCRIPT)


def _dataset() -> CellDataset:
    images = np.arange(3 * 8 * 8 * 3, dtype=np.uint8).reshape(3, 8, 8, 3)
    masks = np.zeros((3, 3, 8, 8), dtype=bool)
    masks[:, :, 3, 4] = True
    return CellDataset(images=images, labels=np.array([0, 1, 0]), class_names=("a", "b"),
                       masks=masks)


def test_centre_crop_takes_the_middle_pixels_and_masks():
    mod = _module()
    ds = _dataset()
    out = mod.centre_crop(ds, 4)
    assert out.images.shape == (3, 4, 4, 3)
    np.testing.assert_array_equal(out.images, ds.images[:, 2:6, 2:6])
    assert out.masks.shape == (3, 3, 4, 4)
    assert out.masks[:, :, 1, 2].all() and out.masks.sum() == 9
    np.testing.assert_array_equal(out.labels, ds.labels)
    assert out.class_names == ds.class_names


def test_centre_crop_refuses_a_crop_larger_than_the_images():
    with pytest.raises(ValueError, match="larger than the 8 x 8"):
        _module().centre_crop(_dataset(), 10)


@pytest.mark.parametrize("domain", [None, "mild", "strong"])
def test_synthetic_cells_fit_in_the_32_px_crop(domain):
    """Synthetic cells (any class, any domain) lie in the central half: at most 2 % of a cell's
    pixels fall outside it (the mild shift magnifies by 1.08, so its largest cells touch the edge)."""
    mod = _module()
    ds = synthesize(30, config=SynthConfig(image_size=64), domain=domain, seed=1)
    parts = [MASK_NAMES.index("nucleus"), MASK_NAMES.index("cytoplasm")]
    cell = ds.masks[:, parts].any(axis=1)
    crop = mod.centre_crop(ds, 32).masks[:, parts].any(axis=1)
    assert cell.sum(axis=(1, 2)).min() > 0
    lost = 1 - crop.sum(axis=(1, 2)) / cell.sum(axis=(1, 2))
    assert lost.max() <= 0.02
    # and the check can fail: a 24 px crop cuts cells
    small = mod.centre_crop(ds, 24).masks[:, parts].any(axis=1)
    assert (1 - small.sum(axis=(1, 2)) / cell.sum(axis=(1, 2))).max() > 0.02


def test_first_per_class_is_deterministic_and_balanced():
    mod = _module()
    ds = CellDataset(images=np.zeros((6, 4, 4, 3), np.uint8), labels=np.array([1, 0, 1, 0, 1, 0]),
                     class_names=("a", "b"))
    sub = mod.first_per_class(ds, 2)
    np.testing.assert_array_equal(sub.labels, [1, 0, 1, 0])
