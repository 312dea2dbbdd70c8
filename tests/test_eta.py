"""The expected-time line that ``cytoviz classify`` prints at its start (cytoviz.diffusion._eta)."""

from __future__ import annotations

import numpy as np

from cytoviz.data import CellDataset
from cytoviz.diffusion import ClassificationResult, ClassifyConfig, DiffusionModel
from cytoviz.diffusion._eta import estimate_time


def test_bounds_follow_the_decision_rule(tiny_model_dir) -> None:
    model = DiffusionModel.from_pretrained(tiny_model_dir())
    cfg = ClassifyConfig(min_trials=5, max_trials=40, batch_size=8)
    est = estimate_time(model, 30, cfg)
    assert est.unet_seconds > 0 and est.encode_seconds > 0
    # With pruning the low end is every image decided at the first test, the high end none.
    assert np.isclose(est.high_seconds / est.low_seconds, 40 / 5)
    per_image = 40 * (est.encode_seconds + model.n_classes * est.unet_seconds)
    assert np.isclose(est.high_seconds, 30 * per_image)
    assert "to" in est.message() and "30 images" in est.message()
    fixed = estimate_time(model, 30, cfg.replace(pruning=False))
    assert fixed.low_seconds == fixed.high_seconds
    assert fixed.message().startswith("expected time: about")


def test_cli_prints_it_and_the_probe_leaves_the_result_alone(tmp_path, tiny_model_dir,
                                                            capsys) -> None:
    from cytoviz.cli import main

    images = np.random.default_rng(3).integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8)
    CellDataset(images, np.array([0, 1, 0, 1]), ("a", "b")).save(tmp_path / "cells.npz")
    args = ["classify", "--model", str(tiny_model_dir()), "--data", str(tmp_path / "cells.npz"),
            "--max-trials", "8", "--min-trials", "4", "--batch-size", "8"]
    assert main([*args, "--out", str(tmp_path / "loud")]) == 0
    assert "cytoviz classify: expected time:" in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "quiet"), "--quiet"]) == 0
    assert "expected time" not in capsys.readouterr().out
    loud = ClassificationResult.load(tmp_path / "loud" / "result.npz")
    quiet = ClassificationResult.load(tmp_path / "quiet" / "result.npz")
    np.testing.assert_array_equal(loud.raw_errors, quiet.raw_errors)
