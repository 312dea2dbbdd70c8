"""``cytoviz data``: help texts, a tiny ``data synth`` run, the preview command."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cytoviz.cli import main
from cytoviz.data import CellDataset
from cytoviz.data.panel import consensus, load_panel

SPLITS = ("train", "val", "test", "test_mild", "test_strong")


@pytest.mark.parametrize("argv", [["data", "--help"], ["data", "synth", "--help"],
                                  ["data", "preview", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: cytoviz data" in out
    if argv[1] == "synth":
        assert "--scale" in out and "experts.csv" in out
    elif argv[1] == "preview":
        assert "--real" in out
    else:
        assert "synth" in out and "preview" in out


def test_tiny_synth_run(tmp_path, capsys):
    out = tmp_path / "data"
    code = main(["data", "synth", "--out", str(out), "--scale", "0.02", "--image-size", "32",
                 "--seed", "3"])
    assert code == 0
    for split in SPLITS:
        manifest = pd.read_csv(out / split / "manifest.csv", keep_default_na=False)
        ds = CellDataset.load(out / split / "dataset.npz")
        assert len(manifest) == len(ds) > 0
        first = np.asarray(Image.open(out / split / manifest["path"][0]))
        assert first.shape == (32, 32, 3)
        np.testing.assert_array_equal(first, ds.images[0])
        assert (out / split / "masks.npz").is_file()
    assert set(pd.read_csv(out / "test_strong" / "manifest.csv")["domain"]) == {"strong"}
    panel = load_panel(out / "experts.csv")
    test = CellDataset.load(out / "test" / "dataset.npz")
    assert panel["image"].max() < len(test)
    assert panel["expert"].nunique() == 6
    cons = consensus(panel)
    assert len(cons) == panel["image"].nunique()
    assert "experts.csv" in capsys.readouterr().out
    # a second run into the same folder refuses to overwrite...
    assert main(["data", "synth", "--out", str(out), "--scale", "0.02", "--image-size", "32"]) == 2
    assert "exists" in capsys.readouterr().err
    # ...unless asked
    assert main(["data", "synth", "--out", str(out), "--scale", "0.02", "--image-size", "32",
                 "--overwrite"]) == 0


def test_bad_arguments_give_one_clear_line(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path), "--image-size", "8"]) == 2
    err = capsys.readouterr().err
    assert "image_size must lie in [16, 1024], got 8" in err
    assert main(["data", "preview", "--out", str(tmp_path / "p.png"),
                 "--real", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err


@pytest.mark.slow
def test_preview_writes_a_png(tmp_path, pbc_dir):
    out = tmp_path / "preview.png"
    assert main(["data", "preview", "--out", str(out), "--n-per-class", "1",
                 "--real", str(pbc_dir)]) == 0
    img = Image.open(out)
    assert img.size[0] > 300 and img.size[1] > 300


def test_preview_without_real_images_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CYTOVIZ_PBC_EXAMPLE", raising=False)
    out = tmp_path / "preview.html"
    assert main(["data", "preview", "--out", str(out), "--n-per-class", "1",
                 "--image-size", "16"]) == 0
    assert "no real images given" in capsys.readouterr().out
    assert "Synthetic cells only: no real images given" in out.read_text()


def test_preview_reads_real_images_from_the_environment(tmp_path, monkeypatch, capsys):
    real = tmp_path / "real"
    for i, cls in enumerate(("lymphocyte", "neutrophil")):
        (real / cls).mkdir(parents=True)
        Image.fromarray(np.full((20, 20, 3), 40 * i, np.uint8)).save(real / cls / "0.png")
    monkeypatch.setenv("CYTOVIZ_PBC_EXAMPLE", str(real))
    out = tmp_path / "preview.html"
    assert main(["data", "preview", "--out", str(out), "--n-per-class", "1",
                 "--image-size", "16"]) == 0
    assert f"real images: 2 from {real}" in capsys.readouterr().out
    assert "Synthetic cells only" not in out.read_text()
