"""benchmarks/panel_calibration.py and benchmarks/skill_recovery.py, at a tiny size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _scripts import load_script

from cytoviz.data import PanelConfig

REPO = Path(__file__).resolve().parents[1]


def test_panel_calibration_benchmark_writes_every_split(tmp_path):
    mod = load_script(REPO / "benchmarks" / "panel_calibration.py")
    out = mod.main(["--seeds", "2", "--out", str(tmp_path / "p.json")])
    stored = json.loads((tmp_path / "p.json").read_text())
    assert set(stored["splits"]) == {"val", "test", "test_mild"}
    assert stored["splits"]["val"]["role"] == "calibration"
    for split in stored["splits"].values():
        assert 0 < split["mean"]["high_high"] < 1
        assert split["mean"]["max_accuracy"] <= 1
    assert PanelConfig.from_dict(stored["config"]) == PanelConfig.from_dict(out["config"])


def test_skill_recovery_without_a_stored_pass_says_what_to_run(tmp_path, capsys):
    mod = load_script(REPO / "benchmarks" / "skill_recovery.py")
    assert mod.main(["--result", str(tmp_path / "none.npz"), "--out", str(tmp_path / "s.json")]) is None
    assert "run_evaluations.sh shift-diffusion-seed0" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()


@pytest.mark.slow
def test_skill_recovery_benchmark_runs_one_seed(tmp_path):
    mod = load_script(REPO / "benchmarks" / "skill_recovery.py")
    if not mod.RESULT.is_file():
        pytest.skip(f"no stored classification at {mod.RESULT} (committed with eval_runs/)")
    out = mod.main(["--seeds", "1", "--draws", "60", "--out", str(tmp_path / "s.json")])
    assert set(out["summary"]) == {"model", "consensus", "clarity"}
    for axis in out["summary"].values():
        for param in ("threshold", "threshold_80"):
            assert -1 <= axis[f"spearman_{param}"]["mean"] <= 1
            assert 0 <= axis[f"{param}s_in_range"] <= 6
    assert len(out["runs"]) == 3
    for run in out["runs"]:  # the 80 % threshold is m + 0.23541 w, expert by expert
        for e, m in run["threshold_by_expert"].items():
            assert run["threshold_80_by_expert"][e] == pytest.approx(
                m + 0.23541 * run["width_by_expert"][e], abs=1e-4)
