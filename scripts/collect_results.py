"""Collect the evaluation tables of ``scripts/run_evaluations.sh`` into ``cytoviz/_shipped/results/``.

``cytoviz figures`` draws Figures 3 and 4 and Table 2 from these files:

- ``anomaly.csv``: ``RUNS/anomaly/anomaly_scores.csv`` (one row per test image and model);
- ``domain_shift.csv``: ``RUNS/domain_shift/domain_shift.csv``;
- ``low_data.csv``: the low-data tables of every ``RUNS/low_data*`` folder, concatenated;
- ``few_shot.csv``: ``RUNS/few_shot/few_shot.csv``;

and each run's ``budget.json`` as ``NAME_budget.json``. Domain shift and few-shot start from the
shipped models (``--pretrained cytoviz/_shipped/default_model``): ``provenance.json`` records the SHA-256 of
the model files they used, so that the tables can say when the shipped model has changed since.
The anomaly and low-data protocols train their own models with the shipped recipe; their entries
record the shipped model of the same run, so that ``cytoviz figures`` can refuse every table made
before the shipped model (and its recipe) last changed (:func:`cytoviz.evaluation.stale_reason`).
Every file is written atomically.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pandas as pd

from cytoviz._io import atomic_path, save_csv, sha256_files

SOURCES = {
    "anomaly": ["anomaly/anomaly_scores.csv"],
    "domain_shift": ["domain_shift/domain_shift.csv"],
    "few_shot": ["few_shot/few_shot.csv"],
}


def collect(runs: Path, dest: Path) -> list[Path]:
    """Copy (and for low data, concatenate) the protocol tables; return the written paths."""
    dest.mkdir(parents=True, exist_ok=True)
    tables: dict[str, list[Path]] = {k: [runs / p for p in v] for k, v in SOURCES.items()}
    tables["low_data"] = sorted(runs.glob("low_data*/low_data.csv"))
    written = []
    for name, paths in tables.items():
        missing = [str(p) for p in paths if not p.is_file()]
        if not paths or missing:
            raise FileNotFoundError(
                f"{name}: missing {missing or 'low_data*/low_data.csv'}; run "
                "scripts/run_evaluations.sh to completion first"
            )
        frame = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
        out = dest / f"{name}.csv"
        save_csv(frame, out)
        written.append(out)
        budget = paths[0].parent / "budget.json"
        if budget.is_file():
            target = dest / f"{name}_budget.json"
            with atomic_path(target) as tmp:
                shutil.copyfile(budget, tmp)
            written.append(target)
    written.append(record_provenance(dest, tuple(tables)))
    return written


def record_provenance(dest: Path, tables: tuple[str, ...], model: Path | None = None) -> Path:
    """Record in ``dest/provenance.json`` which default model (SHA-256 of its files) ``tables``
    were computed with; other entries are kept."""
    from cytoviz.diffusion import default_model_path

    model = Path(model) if model is not None else default_model_path()
    path = dest / "provenance.json"
    prov = json.loads(path.read_text()) if path.is_file() else {}
    sha = sha256_files(model) if (model / "cytoviz.json").is_file() else None
    for name in tables:
        prov[name] = {"diffusion_model": "cytoviz/_shipped/default_model", "diffusion_model_sha256": sha}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(prov, indent=2, sort_keys=True) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/eval", type=Path, help="run folder (runs/eval)")
    parser.add_argument("--dest", default="cytoviz/_shipped/results", type=Path, help="destination")
    args = parser.parse_args()
    for path in collect(args.runs, args.dest):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
