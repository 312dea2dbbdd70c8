"""Collect the evaluation tables of ``scripts/run_evaluations.sh`` into ``cytoviz/_shipped/results/``.

``cytoviz figures`` draws Figures 3 and 4 and Table 2 from these files:

- ``generation_agreement.csv``, ``augmentation.csv``, ``prototypes.csv``: the tables the
  generation protocols' runs wrote (:data:`GENERATION`);
- ``anomaly.csv`` (one row per test image, model and score), ``domain_shift.csv``,
  ``low_data.csv``, ``few_shot.csv``: each the rows of every finished unit of the protocol
  (``RUNS/NAME/units/NAME/*.csv``, one trained model each, in file-name order) with the run's
  budget name in a ``budget`` column: the table the protocol itself returns, built without
  rerunning it, so a protocol whose pieces are not all done yet gives the table of those that
  are (a rerun would train the missing ones);

and each run's ``budget.json`` as ``NAME_budget.json``. ``provenance.json`` records for every
table the SHA-256 of the shipped diffusion model and baseline (whose recipe every protocol model
is trained with, ``EvalBudget.shipped``; domain shift and few-shot also use the shipped models
themselves), the recipe (budget name and step rule) and the fingerprints of every model the
table's rows used (its ``model_sha256`` column), so that ``cytoviz figures`` can refuse a table
made before the shipped model (and its recipe) last changed
(:func:`cytoviz.evaluation.stale_reason`). ``--only`` collects some tables (the others keep
their entries). Every file is written atomically.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pandas as pd

from cytoviz._io import atomic_path, save_csv, sha256_files

PROTOCOLS = ("anomaly", "domain_shift", "low_data", "few_shot")
#: The generation protocols' tables: name -> the run folders (under RUNS) and the file each
#: ``cytoviz evaluate`` run wrote there; the rows of every folder, in order, form the table.
GENERATION = {
    "generation_agreement": (("class_agreement",), "class_agreement.csv"),
    "augmentation": (("augmentation", "augmentation_equal"), "augmentation.csv"),
    "prototypes": (("prototypes",), "prototypes.csv"),
}
SOURCES = (*PROTOCOLS, *GENERATION)
#: The generation tables whose generated cells a CNN trained on the shipped model's 32 px crops
#: checks (the ``crop-baseline`` piece, RUNS/crop_baseline), not the whole-image shipped CNN.
CHECKER = {"generation_agreement": "crop_baseline", "prototypes": "crop_baseline"}


def unit_table(run: Path, name: str) -> pd.DataFrame:
    """The rows of every finished unit of protocol ``name`` in ``run`` plus a ``budget`` column."""
    units = sorted((run / "units" / name).glob("*.csv"))
    budget = run / "budget.json"
    if not units or not budget.is_file():
        raise FileNotFoundError(
            f"{name}: no finished unit in {run / 'units' / name} (or no {budget}); run its "
            "pieces of scripts/run_evaluations.sh first"
        )
    frame = pd.concat([pd.read_csv(p) for p in units], ignore_index=True)
    frame["budget"] = json.loads(budget.read_text())["name"]
    return frame


def generation_table(runs: Path, name: str) -> tuple[pd.DataFrame, Path]:
    """The rows of the generation protocol ``name``'s runs and the first run's budget file."""
    folders, file = GENERATION[name]
    missing = [runs / f / file for f in folders if not (runs / f / file).is_file()]
    if missing:
        raise FileNotFoundError(f"{name}: {missing[0]} is missing; run its pieces of "
                                "scripts/run_evaluations.sh first")
    frames = [pd.read_csv(runs / f / file) for f in folders]
    budget = runs / folders[0] / "budget.json"
    return pd.concat(frames, ignore_index=True), budget


def collect(runs: Path, dest: Path, only: tuple[str, ...] | None = None) -> list[Path]:
    """Copy the protocol tables (all, or those named in ``only``); return the written paths."""
    dest.mkdir(parents=True, exist_ok=True)
    if only is None:  # every protocol; the generation tables whose runs are there
        names = (*PROTOCOLS, *(n for n, (folders, file) in GENERATION.items()
                               if all((runs / f / file).is_file() for f in folders)))
    else:
        names = only
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; choose from {list(SOURCES)}")
    written = []
    frames, budgets = {}, {}
    for name in names:
        if name in GENERATION:
            frames[name], budgets[name] = generation_table(runs, name)
        else:
            frames[name], budgets[name] = unit_table(runs / name, name), runs / name / "budget.json"
    for name, frame in frames.items():
        out = dest / f"{name}.csv"
        save_csv(frame, out)
        written.append(out)
        budget = budgets[name]
        if budget.is_file():
            target = dest / f"{name}_budget.json"
            with atomic_path(target) as tmp:
                shutil.copyfile(budget, tmp)
            written.append(target)
    checkers = {n: runs / CHECKER[n] for n in names if n in CHECKER}
    written.append(record_provenance(dest, tuple(names), frames=frames, checkers=checkers))
    return written


def record_provenance(dest: Path, tables: tuple[str, ...], model: Path | None = None,
                      *, frames: dict[str, pd.DataFrame] | None = None,
                      checkers: dict[str, Path] | None = None) -> Path:
    """Record in ``dest/provenance.json`` which shipped models (SHA-256 of their files), recipe
    and trained models ``tables`` were computed with; other entries are kept. ``checkers``:
    table -> the folder of the CNN that checked its generated cells (recorded with the SHA-256
    of its files where they are present)."""
    from cytoviz._paths import default_baseline_dir
    from cytoviz.diffusion import default_model_path

    model = Path(model) if model is not None else default_model_path()
    baseline = default_baseline_dir()
    path = dest / "provenance.json"
    prov = json.loads(path.read_text()) if path.is_file() else {}
    sha = sha256_files(model) if (model / "cytoviz.json").is_file() else None
    base_sha = sha256_files(baseline) if (baseline / "config.json").is_file() else None
    for name in tables:
        entry = {"diffusion_model": "cytoviz/_shipped/default_model", "diffusion_model_sha256": sha,
                 "baseline": "cytoviz/_shipped/default_baseline", "baseline_sha256": base_sha}
        budget = dest / f"{name}_budget.json"
        if budget.is_file():
            b = json.loads(budget.read_text())
            entry["recipe"] = {k: b.get(k) for k in ("name", "step_rule", "reference_images",
                                                     "min_steps", "baseline_min_steps")}
        frame = (frames or {}).get(name)
        if frame is not None and "model_sha256" in frame:
            entry["models_sha256"] = sorted({str(v) for v in frame["model_sha256"].dropna()})
        checker = (checkers or {}).get(name)
        if checker is not None:
            entry["checker_baseline"] = checker.as_posix()
            if (checker / "model.safetensors").is_file():
                entry["checker_baseline_sha256"] = sha256_files(checker)
        prov[name] = entry
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(prov, indent=2, sort_keys=True) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="eval_runs", type=Path, help="run folder (eval_runs)")
    parser.add_argument("--dest", default="cytoviz/_shipped/results", type=Path, help="destination")
    parser.add_argument("--only", nargs="+", choices=sorted(SOURCES), help="collect these tables only")
    args = parser.parse_args()
    for path in collect(args.runs, args.dest, tuple(args.only) if args.only else None):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
