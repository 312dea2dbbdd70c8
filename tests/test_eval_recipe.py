"""The protocols' recipe (issue 19): the shipped preset, the step rule, pieces and cached outputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cytoviz._paths import default_baseline_dir, default_model_dir
from cytoviz.evaluation import runner
from cytoviz.evaluation.budget import EvalBudget, scaled_steps
from cytoviz.evaluation.low_data_regime import low_data
from cytoviz.evaluation.shift import domain_shift
from cytoviz.evaluation.splits import eval_data

FAST = EvalBudget.cpu_fast()


@pytest.fixture(scope="module")
def splits():
    return eval_data("synthetic", budget=FAST)


def test_scaled_steps_keeps_the_epochs_of_the_recipe_with_a_floor():
    ref = dict(reference_steps=11000, reference_images=2290, min_steps=2000)
    assert scaled_steps(2290, **ref) == 11000
    assert scaled_steps(1500, **ref) == round(11000 * 1500 / 2290)
    assert scaled_steps(100, **ref) == 2000  # the floor
    assert scaled_steps(4580, **ref) == 22000
    assert scaled_steps(100, rule="fixed", **ref) == 11000
    with pytest.raises(ValueError, match="step rule"):
        scaled_steps(100, rule="nope", **ref)
    with pytest.raises(ValueError, match="n_train"):
        scaled_steps(0, **ref)


def test_shipped_preset_is_the_shipped_models_recipe():
    b = EvalBudget.shipped()
    saved = json.loads((default_model_dir() / "train_config.json").read_text())
    model = json.loads((default_model_dir() / "cytoviz.json").read_text())["config"]
    base = json.loads((default_baseline_dir() / "config.json").read_text())["config"]
    assert b.name == "shipped" and b.step_rule == "epochs"
    for field in ("steps", "lr", "lr_schedule", "batch_size", "vae_steps", "ema_decay"):
        assert getattr(b.train, field) == saved[field]
    assert list(b.train.augment.zoom) == saved["augment"]["zoom"]
    assert b.model.input_crop == model["input_crop"]
    assert b.baseline.epochs == base["epochs"] and b.baseline.lr == base["lr"]
    assert b.test_per_class is None and b.data_scale == 1.0 and b.val_checkpoints > 1
    # the step budget follows the data, in optimiser steps, on both sides
    assert b.train_config(b.reference_images, seed=3).steps == saved["steps"]
    assert b.train_config(100, seed=3).steps == b.min_steps
    assert b.train_config(100, seed=3).seed == 3
    small = b.baseline_config(100, seed=1)
    assert small.epochs * b.baseline_steps_per_epoch(100) >= b.baseline_min_steps
    full = b.baseline_config(b.reference_images, seed=1)
    assert full.epochs == base["epochs"]
    assert runner.train_steps("baseline", 100, b) >= b.baseline_min_steps
    assert runner.train_steps("diffusion", 1500, b) == round(saved["steps"] * 1500 / 2290)
    assert EvalBudget.preset("shipped") == b


def test_fixed_rule_leaves_the_old_presets_unchanged():
    assert FAST.train_config(123, seed=2) == FAST.train.replace(seed=2)
    assert FAST.baseline_config(123, seed=2) == FAST.baseline.replace(seed=2)
    with pytest.raises(ValueError, match="step_rule"):
        EvalBudget.cpu_fast(step_rule="linear")


def test_domain_shift_pretrained_for_some_seeds_and_cached_outputs(splits, tmp_path, monkeypatch):
    from cytoviz.diffusion import DiffusionModel

    model = DiffusionModel.build(splits["train"].class_names, FAST.model, seed=0)
    model.save_pretrained(tmp_path / "pre")
    trained = []
    real_fit = runner.fit_diffusion
    monkeypatch.setattr(runner, "fit_diffusion",
                        lambda *a, **k: trained.append(k["seed"]) or real_fit(*a, **k))
    out = tmp_path / "run"
    t = domain_shift(splits, budget=FAST, models=["diffusion"], seeds=[0, 1],
                     pretrained={0: tmp_path / "pre"}, out=out, progress=False)
    assert trained == [1]  # seed 0 is the pretrained model, seed 1 is trained
    src = t.groupby("seed")["source"].first()
    assert src[0] == "pretrained: pre" and src[1] == "trained"
    assert t["model_sha256"].str.len().eq(64).all()
    assert t.groupby("seed")["model_sha256"].nunique().eq(1).all()
    assert t.loc[t["seed"] == 0, "train_steps"].eq(0).all()
    saved = sorted(p.name for p in (out / "outputs").rglob("*.npz"))
    assert saved == sorted([f"{s}_result.npz" for s in ("test", "test_mild", "test_strong")] * 2)
    # a unit whose table was lost is rebuilt from the cached results, without the classifier
    for f in (out / "units").rglob("*.csv"):
        f.unlink()
    monkeypatch.setattr(runner, "classify_images", lambda *a, **k: pytest.fail("reclassified"))
    again = domain_shift(splits, budget=FAST, models=["diffusion"], seeds=[0, 1],
                         pretrained={0: tmp_path / "pre"}, out=out, progress=False)
    pd.testing.assert_frame_equal(again.drop(columns="budget"), t.drop(columns="budget"),
                                  check_like=True)


def test_low_data_records_steps_and_fingerprints(splits, tmp_path):
    budget = FAST.replace(step_rule="epochs", reference_images=40, min_steps=3,
                          baseline_min_steps=2)
    t = low_data(splits, budget=budget, sizes=[2], repeats=1, out=tmp_path / "ld", progress=False)
    assert set(t["model"]) == {"diffusion", "baseline"}
    d = t.set_index("model")
    assert d.loc["diffusion", "train_steps"] == 3  # the floor: 20 images of 40 -> 2 steps
    assert d.loc["baseline", "train_steps"] >= 2
    assert d["model_sha256"].str.len().eq(64).all()
    assert (tmp_path / "ld" / "outputs").is_dir()


def test_cli_seed_list_and_pretrained_seeds(tmp_path, monkeypatch):
    from cytoviz.cli import main

    seen = {}

    def fake(*_, **kw):
        seen.update(kw)
        return pd.DataFrame({"model": ["diffusion"], "seed": [1], "split": ["test"],
                             "test_set": ["in-domain"], "accuracy": [0.5],
                             "balanced_accuracy": [0.5], "n_images": [2], "source": ["trained"],
                             "budget": ["fast"]})

    import cytoviz.evaluation._cli as cli

    monkeypatch.setattr(cli, "domain_shift", fake)
    args = ["evaluate", "domain-shift", "--out", str(tmp_path / "o"), "--budget", "fast",
            "--seed-list", "1", "2", "--pretrained", "default", "--pretrained-seeds", "0",
            "--formats", "none", "--quiet"]
    assert main(args) == 0
    assert seen["seeds"] == [1, 2]
    assert seen["pretrained"] == {0: str(default_model_dir())}
    with pytest.raises(SystemExit, match="not both"):  # --seeds and --seed-list together
        main([*args, "--seeds", "2"])
    bad = ["evaluate", "domain-shift", "--out", str(tmp_path / "p"), "--budget", "fast",
           "--pretrained-seeds", "0", "--formats", "none", "--quiet"]
    with pytest.raises(SystemExit, match="needs --pretrained"):
        main(bad)


def test_run_evaluations_script_lists_its_pieces(tmp_path):
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    script = repo / "scripts" / "run_evaluations.sh"
    out = subprocess.run(["bash", str(script), "--list"], capture_output=True, text=True,
                         env={"RUNS": str(tmp_path / "runs"), "PATH": "/usr/bin:/bin"}, check=True)
    pieces = [line.split(":")[0] for line in out.stdout.splitlines()]
    assert {"anomaly-blast", "anomaly-erythroblast", "shift-diffusion-seed0", "shift-baseline", "few-shot"} <= set(pieces)
    assert all(line.endswith("not done") for line in out.stdout.splitlines())
    bad = subprocess.run(["bash", str(script), "nope"], capture_output=True, text=True,
                         env={"RUNS": str(tmp_path / "runs"), "PATH": "/usr/bin:/bin"})
    assert bad.returncode != 0 and "unknown piece" in bad.stderr
    assert np.isfinite(len(pieces))
