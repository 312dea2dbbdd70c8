"""scripts/collect_results.py: the evaluation tables that `cytoviz figures` reads."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from _scripts import load_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "collect_results.py"


def _module():
    return load_script(SCRIPT)


def _write(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def _unit(runs: Path, name: str, unit: str, frame: pd.DataFrame) -> None:
    _write(runs / name / "units" / name / f"{unit}.csv", frame)
    (runs / name / "budget.json").write_text('{"name": "shipped", "step_rule": "epochs"}')


def test_collect_builds_tables_from_finished_units(tmp_path):
    import json

    runs, dest = tmp_path / "runs", tmp_path / "results"
    _unit(runs, "anomaly", "diffusion-without-blast-seed0",
          pd.DataFrame({"model": ["diffusion"], "model_sha256": ["aa"]}))
    _unit(runs, "anomaly", "baseline-without-blast-seed0",
          pd.DataFrame({"model": ["baseline"], "model_sha256": ["bb"]}))
    _unit(runs, "domain_shift", "diffusion-seed1", pd.DataFrame({"seed": [1]}))
    _unit(runs, "domain_shift", "diffusion-seed0", pd.DataFrame({"seed": [0]}))
    _unit(runs, "few_shot", "u", pd.DataFrame({"stage": ["before"]}))
    _unit(runs, "low_data", "u", pd.DataFrame({"n_per_class": [10, 20, 50, 150]}))
    # a stale protocol output next to the units is not what is collected
    _write(runs / "domain_shift" / "domain_shift.csv", pd.DataFrame({"seed": [7]}))
    written = _module().collect(runs, dest)
    assert pd.read_csv(dest / "low_data.csv")["n_per_class"].tolist() == [10, 20, 50, 150]
    shift = pd.read_csv(dest / "domain_shift.csv")
    assert shift["seed"].tolist() == [0, 1]
    assert set(shift["budget"]) == {"shipped"}
    assert json.loads((dest / "anomaly_budget.json").read_text())["name"] == "shipped"
    assert dest / "few_shot.csv" in written
    assert not list(dest.glob("*.tmp*"))
    prov = json.loads((dest / "provenance.json").read_text())
    assert prov["anomaly"]["models_sha256"] == ["aa", "bb"]
    assert prov["anomaly"]["recipe"]["step_rule"] == "epochs"
    assert "models_sha256" not in prov["domain_shift"]


def test_collect_only_some_tables_keeps_the_other_entries(tmp_path):
    import json

    runs, dest = tmp_path / "runs", tmp_path / "results"
    dest.mkdir()
    (dest / "provenance.json").write_text('{"low_data": {"diffusion_model_sha256": "old"}}')
    _unit(runs, "anomaly", "u", pd.DataFrame({"model": ["diffusion"]}))
    _module().collect(runs, dest, only=("anomaly",))
    prov = json.loads((dest / "provenance.json").read_text())
    assert prov["low_data"] == {"diffusion_model_sha256": "old"}
    assert "anomaly" in prov and not (dest / "low_data.csv").exists()
    with pytest.raises(ValueError, match="unknown table"):
        _module().collect(runs, dest, only=("nope",))


def test_collect_names_the_missing_table(tmp_path):
    runs = tmp_path / "runs"
    _unit(runs, "anomaly", "u", pd.DataFrame({"model": ["diffusion"]}))
    with pytest.raises(FileNotFoundError, match="domain_shift"):
        _module().collect(runs, tmp_path / "results")


def test_provenance_names_an_earlier_model(tmp_path, monkeypatch, tiny_model_config):
    """The tables say when the shipped model changed after they were computed."""
    import json

    from cytoviz.diffusion import DiffusionModel

    model = tmp_path / "model"
    DiffusionModel.build(("a", "b"), tiny_model_config, seed=0).save_pretrained(model)
    monkeypatch.setenv("CYTOVIZ_DEFAULT_MODEL", str(model))
    dest = tmp_path / "results"
    dest.mkdir()
    _module().record_provenance(dest, ("domain_shift",))
    prov = json.loads((dest / "provenance.json").read_text())
    assert len(prov["domain_shift"]["diffusion_model_sha256"]) == 64

    tables = load_script(REPO / "scripts" / "results_tables.py")
    monkeypatch.setattr(tables, "RES", dest)
    assert tables._shipped("domain_shift") == "the shipped cytoviz/_shipped/default_model"
    assert tables._shipped("few_shot") == "the shipped cytoviz/_shipped/default_model"  # no entry
    DiffusionModel.build(("a", "b"), tiny_model_config, seed=1).save_pretrained(model)  # retrained
    assert "EARLIER default model" in tables._shipped("domain_shift")


def test_collect_generation_tables_from_their_runs(tmp_path):
    import json

    runs, dest = tmp_path / "runs", tmp_path / "results"
    for folder, equal in (("augmentation", False), ("augmentation_equal", True)):
        _write(runs / folder / "augmentation.csv", pd.DataFrame({"k": [0, 10], "equal_steps": equal}))
        (runs / folder / "budget.json").write_text('{"name": "cpu+custom"}')
    mod = _module()
    # without the class-agreement and prototype runs, the default collection skips them
    written = mod.collect(runs, dest, ("augmentation",))
    aug = pd.read_csv(dest / "augmentation.csv")
    assert aug["equal_steps"].tolist() == [False, False, True, True]
    assert dest / "augmentation_budget.json" in written
    prov = json.loads((dest / "provenance.json").read_text())
    assert prov["augmentation"]["recipe"]["name"] == "cpu+custom"
    with pytest.raises(FileNotFoundError, match=r"class_agreement\.csv is missing"):
        mod.collect(runs, dest, ("generation_agreement",))


def test_generation_tables_record_the_cnn_that_checked_them(tmp_path):
    """Class agreement and prototypes name the crop CNN that checked the generated cells (and
    its fingerprint where its weights are there); augmentation has no such entry."""
    import json

    runs, dest = tmp_path / "runs", tmp_path / "results"
    _write(runs / "class_agreement" / "class_agreement.csv", pd.DataFrame({"n": [16]}))
    (runs / "class_agreement" / "budget.json").write_text('{"name": "cpu"}')
    for folder in ("augmentation", "augmentation_equal"):
        _write(runs / folder / "augmentation.csv", pd.DataFrame({"k": [0]}))
        (runs / folder / "budget.json").write_text('{"name": "cpu+custom"}')
    mod = _module()
    mod.collect(runs, dest, ("generation_agreement", "augmentation"))
    prov = json.loads((dest / "provenance.json").read_text())
    entry = prov["generation_agreement"]
    assert entry["checker_baseline"] == (runs / "crop_baseline").as_posix()
    assert "checker_baseline_sha256" not in entry  # no weights in the run folder
    assert "checker_baseline" not in prov["augmentation"]
    (runs / "crop_baseline").mkdir()
    (runs / "crop_baseline" / "model.safetensors").write_bytes(b"weights")
    mod.collect(runs, dest, ("generation_agreement",))
    prov = json.loads((dest / "provenance.json").read_text())
    assert len(prov["generation_agreement"]["checker_baseline_sha256"]) == 64
