"""cytoviz.data.scale and --cell-scale: cells at another lab's scale (issue 21, item 6)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cytoviz.cli import main
from cytoviz.data import CellDataset, SynthConfig, synthesize
from cytoviz.data.scale import check_cell_scale, estimate_cell_scale, nucleus_radius, rescale_cells


def _zoom(images: np.ndarray, factor: float) -> np.ndarray:
    """The centre 1/factor of each image enlarged to its size: cells ``factor`` times larger."""
    size = images.shape[1]
    side = size / factor
    lo = (size - side) / 2
    return np.stack([np.asarray(Image.fromarray(im).resize(
        (size, size), Image.Resampling.LANCZOS, box=(lo, lo, lo + side, lo + side)))
        for im in images])


@pytest.fixture(scope="module")
def cells() -> CellDataset:
    return synthesize(4, config=SynthConfig(seed=3, hard_fraction=0.0))


def test_synthetic_cells_are_at_scale_one_and_a_zoom_is_measured(cells):
    assert 0.85 < estimate_cell_scale(cells) < 1.18
    zoomed = _zoom(cells.images, 2.0)
    scale = estimate_cell_scale(zoomed)
    assert 1.5 < scale < 2.5
    # rescaling by the estimate brings the cells back to the model's scale
    back = rescale_cells(zoomed, scale)
    assert back.shape == zoomed.shape and back.dtype == np.uint8
    assert 0.8 < estimate_cell_scale(back) < 1.25
    # and the nucleus measure follows a known zoom
    ratio = np.median(nucleus_radius(zoomed)) / np.median(nucleus_radius(cells))
    assert ratio == pytest.approx(scale, rel=0.25)


def test_rescale_cells_keeps_the_data_set_and_drops_stale_masks(cells):
    assert rescale_cells(cells, 1.0) is cells
    small = rescale_cells(cells, 0.8)
    assert isinstance(small, CellDataset) and small.masks is None
    assert (small.meta["cell_scale"] == 0.8).all()
    np.testing.assert_array_equal(small.labels, cells.labels)
    # shrinking fills the margin with the image's own border colour
    big = rescale_cells(cells.images[:1], 2.0)
    assert np.abs(big[0, 0, 0].astype(int) - np.median(cells.images[0, 0], axis=0)).max() < 30
    for bad in (0.0, 5.0, float("nan")):
        with pytest.raises(ValueError, match="cell_scale must be a number"):
            rescale_cells(cells, bad)


def test_check_cell_scale_warns_only_off_scale(cells):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_cell_scale(cells) == pytest.approx(estimate_cell_scale(cells))
    with pytest.warns(UserWarning, match=r"--cell-scale \d\.\d\d"):
        check_cell_scale(_zoom(cells.images, 2.0), source="lab2")
    flat = np.full((3, 32, 32, 3), 200, np.uint8)  # no nucleus stain: nothing to say
    assert check_cell_scale(flat) is None
    with pytest.raises(ValueError, match="no stained nucleus"):
        estimate_cell_scale(flat)


def test_resolve_applies_the_cell_scale(tmp_path, cells):
    from cytoviz.data import resolve_one

    path = cells.save(tmp_path / "cells.npz")
    ds = resolve_one(path, cell_scale=1.5)
    assert (ds.meta["cell_scale"] == 1.5).all()
    np.testing.assert_array_equal(ds.images, rescale_cells(cells, 1.5).images)


@pytest.fixture(scope="module")
def zoomed_folder(tmp_path_factory, cells) -> Path:
    root = tmp_path_factory.mktemp("lab2") / "cells"
    zoomed = _zoom(cells.images, 2.0)
    for i, (image, label) in enumerate(zip(zoomed, cells.label_names, strict=True)):
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / label / f"{i}.png")
    return root


def test_preview_warns_and_auto_rescales(zoomed_folder, tmp_path, capsys):
    out = tmp_path / "p.html"
    assert main(["data", "preview", "--real", str(zoomed_folder), "--out", str(out),
                 "--n-per-class", "1"]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "--cell-scale" in err and str(zoomed_folder) in err
    assert main(["data", "preview", "--real", str(zoomed_folder), "--out", str(out),
                 "--n-per-class", "1", "--cell-scale", "auto"]) == 0
    captured = capsys.readouterr()
    assert "estimated cell scale" in captured.out and "warning" not in captured.err
    assert main(["data", "preview", "--real", str(zoomed_folder), "--out", str(out),
                 "--n-per-class", "1", "--cell-scale", "2"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_bad_cell_scale_is_refused_by_the_parser(zoomed_folder, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["data", "preview", "--real", str(zoomed_folder), "--out", str(tmp_path / "p.html"),
              "--cell-scale", "9"])
    assert stop.value.code == 2 and "[0.25, 4] or 'auto'" in capsys.readouterr().err


@pytest.mark.slow
def test_cell_scale_benchmark_with_the_cnn_only(tmp_path):
    from _scripts import load_script

    mod = load_script(Path(__file__).resolve().parents[1] / "benchmarks" / "cell_scale.py")
    out = mod.main(["--factors", "2", "--diffusion-per-class", "0",
                    "--out", str(tmp_path / "c.json")])
    enlarged = out["rows"][1]
    assert enlarged["factor"] == 2 and 1.4 < enlarged["estimated_scale"] < 2.6
    assert "diffusion_balanced_accuracy" not in enlarged["as_is"]
    # rescaling recovers accuracy lost to the scale
    assert enlarged["rescaled"]["cnn_balanced_accuracy"] > enlarged["as_is"]["cnn_balanced_accuracy"] + 0.2
