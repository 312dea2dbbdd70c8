"""benchmarks/weighting_ablation.py: weightings rescored from an unpruned result, no model pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _scripts import load_script

from cytoviz.diffusion import ClassificationResult, ClassifyConfig

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "weighting_ablation.py"
NAMES = ("a", "b")


def _module():
    return load_script(SCRIPT)


def _result(n: int, seed: int, pruning: bool = False) -> ClassificationResult:
    """Unpruned errors whose class information lies only at low t (t < 400)."""
    rng = np.random.default_rng(seed)
    t = np.rint(np.linspace(1, 999, 40)).astype(int)
    labels = np.arange(n) % 2
    errors = rng.normal(10.0, 1.0, size=(n, 40, 2))
    informative = t < 400
    errors[np.arange(n)[:, None], np.flatnonzero(informative)[None, :], labels[:, None]] -= 2.0
    # high-t trials carry a large class-independent swing that favours the wrong class
    errors[np.arange(n)[:, None], np.flatnonzero(~informative)[None, :], 1 - labels[:, None]] -= 1.6
    return ClassificationResult(
        class_names=NAMES, config=ClassifyConfig(pruning=pruning, max_trials=40, min_trials=20),
        trial_errors=errors.reshape(-1, 2).astype(np.float32),
        trial_timesteps=np.tile(t, n), trial_weights=np.ones(n * 40),
        n_trials=np.full(n, 40), n_evals=np.full(n, 80),
        remaining=np.ones((n, 2), bool), labels=labels,
    )


def test_ablation_scores_weightings_and_bands(tmp_path, tiny_model_dir):
    mod = _module()
    model = tiny_model_dir()  # classes ("a", "b"), as NAMES
    fit, ev = tmp_path / "fit.npz", tmp_path / "eval.npz"
    _result(20, 0).save(fit)
    _result(30, 1).save(ev)
    out = tmp_path / "ablation.json"
    assert mod.main(["--fit", str(fit), "--eval", str(ev), "--model", str(model),
                     "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    bands = d["eval"]["bands_uniform"]
    assert bands["t in [1, 200)"]["accuracy"] == 1.0
    assert bands["t in [800, 1000)"]["accuracy"] < 0.5
    rows = d["eval"]["weightings"]
    assert set(rows) >= {"polynomial", "uniform", "snr", "exp", "normalise", "ranking",
                         "polynomial refitted", "logistic (fitted)"}
    # Uniform weights follow the swing; exp(-5.5 t) (large at low t) and the logistic bucket
    # weights fitted on the other set find the informative trials.
    assert rows["uniform"]["accuracy"] < 0.5
    assert rows["exp"]["accuracy"] == 1.0
    assert rows["logistic (fitted)"]["accuracy"] >= 0.9
    assert d["eval"]["n_images"] == 30 and len(d["refitted_poly_coeffs"]) == 5


def test_ablation_refuses_a_pruned_run(tmp_path):
    mod = _module()
    path = tmp_path / "pruned.npz"
    _result(4, 0, pruning=True).save(path)
    with pytest.raises(SystemExit, match="no-pruning"):
        mod.main(["--fit", str(path), "--out", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()
