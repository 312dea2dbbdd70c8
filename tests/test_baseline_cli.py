"""`cytoviz baseline train|predict` and `--threads` (issue 21, item 7)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cytoviz.cli import main

CLASSES = {"neutrophil": (200, 80, 80), "lymphocyte": (80, 80, 200)}


def _code(argv: list[str]) -> int:
    """The exit status of ``cytoviz ARGV`` (argparse errors exit, handled ones return 2)."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


@pytest.fixture(scope="module")
def cells(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two classes of flat-coloured 32 px cells, 8 each: easy to tell apart."""
    from PIL import Image

    root = tmp_path_factory.mktemp("baseline_cli") / "cells"
    rng = np.random.default_rng(0)
    for name, colour in CLASSES.items():
        (root / name).mkdir(parents=True)
        for i in range(8):
            a = np.clip(rng.normal(colour, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def trained(cells: Path) -> Path:
    out = cells.parent / "cnn"
    assert main(["baseline", "train", "--data", str(cells), "--out", str(out), "--epochs", "6",
                 "--image-size", "32", "--lr", "0.005", "--quiet", "--threads", "1"]) == 0
    return out


def test_train_writes_a_loadable_baseline_with_its_summary(trained: Path) -> None:
    from cytoviz.evaluation import BaselineClassifier

    assert {"config.json", "model.safetensors", "train_summary.json"} <= {
        p.name for p in trained.iterdir()}
    summary = json.loads((trained / "train_summary.json").read_text())
    assert summary["val"] is None
    clf = BaselineClassifier.load(trained)
    assert sorted(clf.class_names) == sorted(CLASSES)


def test_predict_writes_predictions_and_metrics(trained: Path, cells: Path, tmp_path) -> None:
    out = tmp_path / "pred"
    assert main(["baseline", "predict", "--model", str(trained), "--data", str(cells),
                 "--out", str(out), "--threads", "1"]) == 0
    pred = pd.read_csv(out / "predictions.csv")
    assert len(pred) == 16 and set(pred["true"]) == set(CLASSES)
    probs = pred[[f"prob_{c}" for c in sorted(CLASSES)]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_images"] == 16
    assert metrics["accuracy"] == pytest.approx(pred["correct"].mean())
    # a second run into the same folder is refused, and --overwrite replaces it
    assert _code(["baseline", "predict", "--model", str(trained), "--data", str(cells),
                  "--out", str(out)]) == 2
    assert main(["baseline", "predict", "--model", str(trained), "--data", str(cells),
                 "--out", str(out), "--overwrite"]) == 0
    # a known cell scale is applied as the images are read
    assert main(["baseline", "predict", "--model", str(trained), "--data", str(cells),
                 "--out", str(out), "--overwrite", "--cell-scale", "1.5"]) == 0
    assert len(pd.read_csv(out / "predictions.csv")) == 16
    assert main(["baseline", "predict", "--model", str(trained), "--data", str(cells),
                 "--out", str(out), "--overwrite", "--cell-scale", "auto"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["baseline", "predict", "--model", "{tmp}/nope", "--data", "{cells}", "--out", "{tmp}/p"],
     "no such model folder"),
    (["baseline", "predict", "--model", "{model}", "--data", "{tmp}/empty", "--out", "{tmp}/p"],
     "empty"),
    (["baseline", "train", "--data", "{cells}", "--out", "{tmp}/m", "--threads", "0"],
     "positive integer"),
    (["baseline", "train", "--data", "{cells}", "--out", "{tmp}/m", "--zoom", "0.8"],
     "--zoom expects two numbers"),
    (["baseline", "predict", "--model", "{model}", "--data", "{cells}", "--out", "{tmp}/p",
      "--cell-scale", "0"], "[0.25, 4] or 'auto'"),
])
def test_bad_input_is_one_line_and_writes_nothing(argv, message, trained, cells, tmp_path,
                                                  capsys) -> None:
    (tmp_path / "empty").mkdir()
    args = [a.format(tmp=tmp_path, cells=cells, model=trained) for a in argv]
    assert _code(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "p" / "predictions.csv").exists()
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_threads_sets_torch_and_the_environment(monkeypatch) -> None:
    import torch

    from cytoviz._threads import set_threads

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    try:
        assert set_threads(1) == 1
        assert torch.get_num_threads() == 1
        import os

        assert os.environ["OMP_NUM_THREADS"] == "1" == os.environ["MKL_NUM_THREADS"]
        assert set_threads(None) is None and torch.get_num_threads() == 1
        with pytest.raises(ValueError, match="positive integer"):
            set_threads(0)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("command", ["train", "classify", "generate", "evaluate"])
def test_heavy_commands_take_threads(command, capsys) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--threads N" in capsys.readouterr().out
