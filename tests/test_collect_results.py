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


def test_collect_concatenates_low_data_and_copies_budgets(tmp_path):
    runs, dest = tmp_path / "runs", tmp_path / "results"
    _write(runs / "anomaly" / "anomaly_scores.csv", pd.DataFrame({"model": ["diffusion"]}))
    (runs / "anomaly" / "budget.json").write_text('{"name": "cpu+custom"}')
    _write(runs / "domain_shift" / "domain_shift.csv", pd.DataFrame({"seed": [0, 1]}))
    _write(runs / "few_shot" / "few_shot.csv", pd.DataFrame({"stage": ["before"]}))
    _write(runs / "low_data_a" / "low_data.csv", pd.DataFrame({"n_per_class": [10, 20]}))
    _write(runs / "low_data_b" / "low_data.csv", pd.DataFrame({"n_per_class": [50, 150]}))
    written = _module().collect(runs, dest)
    assert pd.read_csv(dest / "low_data.csv")["n_per_class"].tolist() == [10, 20, 50, 150]
    assert pd.read_csv(dest / "domain_shift.csv")["seed"].tolist() == [0, 1]
    assert (dest / "anomaly_budget.json").read_text() == '{"name": "cpu+custom"}'
    assert dest / "few_shot.csv" in written
    assert not list(dest.glob("*.tmp*"))


def test_collect_names_the_missing_table(tmp_path):
    runs = tmp_path / "runs"
    _write(runs / "anomaly" / "anomaly_scores.csv", pd.DataFrame({"model": ["diffusion"]}))
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
