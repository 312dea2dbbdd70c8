"""Print the README's evaluation tables (markdown) from the CSV tables in data/results/.

    .venv/bin/python scripts/results_tables.py

The tables are written by ``bash scripts/run_evaluations.sh`` (the CPU-budget runs); this script
only formats them. Each section starts with an HTML comment naming it, as in
``benchmarks/readme_tables.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

RES = Path(__file__).resolve().parents[1] / "data" / "results"


def _table(name: str) -> pd.DataFrame | None:
    path = RES / f"{name}.csv"
    return pd.read_csv(path) if path.is_file() else None


def _budget(name: str, *, diffusion: str | None = None, baseline: str | None = None) -> str:
    """One line on the budget; ``diffusion``/``baseline`` name pretrained models used instead."""
    path = RES / f"{name}_budget.json"
    if not path.is_file():
        return "budget unknown"
    b = json.loads(path.read_text())
    t = b.get("train", {})
    lr = (f"lr {t.get('lr'):g}, {t.get('lr_schedule', 'constant')}" if t.get("lr") is not None
          else "lr unknown")
    diff = diffusion or (f"trained for {t.get('vae_steps')} VAE + {t.get('steps')} UNet steps "
                         f"({lr})")
    base = baseline or f"trained for {b.get('baseline', {}).get('epochs')} epochs"
    return (f"budget `{b.get('name')}`; diffusion model {diff}; baseline {base}; at most "
            f"{b.get('max_trials')} trials per image, {b.get('test_per_class')} test images per "
            "class")


def _shipped(name: str) -> str:
    """How to name the diffusion model of a table computed from the shipped default model:
    ``provenance.json`` holds the SHA-256 of the model files it used, compared here with the
    model shipped now."""
    path = RES / "provenance.json"
    entry = json.loads(path.read_text()).get(name) if path.is_file() else None
    if not entry or not entry.get("diffusion_model_sha256"):
        return "the shipped data/default_model"
    from cytoviz.diffusion import default_model_path
    from cytoviz.diffusion._classify_cli import _sha256_files

    sha = entry["diffusion_model_sha256"]
    model = default_model_path()
    if (model / "cytoviz.json").is_file() and _sha256_files(model) == sha:
        return "the shipped data/default_model"
    commit = f", commit {entry['commit']}" if entry.get("commit") else ""
    return (f"an EARLIER default model (model files SHA-256 {sha[:12]}{commit}), not the one "
            "shipped now; `bash scripts/run_evaluations.sh` recomputes it")


def _field(name: str, key: str) -> object:
    path = RES / f"{name}_budget.json"
    return json.loads(path.read_text()).get(key) if path.is_file() else None


def eval_anomaly() -> None:
    from cytoviz.evaluation import anomaly_auc

    t = _table("anomaly")
    if t is None:
        return
    auc = anomaly_auc(t)
    print(f"Source: `data/results/anomaly.csv` ({_budget('anomaly')})\n")
    print("| held-out class | model | ROC AUC (normal vs held-out, by certainty) | normal / abnormal images |")
    print("|---|---|---|---|")
    for r in auc.itertuples():
        name = "CytoDiffusion (tiny)" if r.model == "diffusion" else "CNN baseline"
        print(f"| {r.held_out} | {name} | {r.auc:.3f} | {r.n_normal} / {r.n_abnormal} |")
    print()


def eval_domain_shift() -> None:
    from cytoviz.evaluation import domain_shift_table

    t = _table("domain_shift")
    if t is None:
        return
    wide = domain_shift_table(t)
    print(f"Source: `data/results/domain_shift.csv` "
          f"({_budget('domain_shift', diffusion=_shipped('domain_shift'))}); balanced accuracy "
          "(%), mean ± sd over seeds\n")
    cols = [c for c in wide.columns if c not in ("note",)]
    print("| model | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name, row in wide.iterrows():
        print(f"| {name} | " + " | ".join(str(row[c]) for c in cols) + " |")
    if "note" in wide:
        for name, note in wide["note"].items():
            if note:
                print(f"\n{name}: {note} (the seeds vary only the classifier's random draws).")
    print()


def eval_low_data() -> None:
    from cytoviz.evaluation.tables import summarise

    t = _table("low_data")
    if t is None:
        return
    s = summarise(t, ["model", "n_per_class"])
    print(f"Source: `data/results/low_data.csv` ({_budget('low_data')}); balanced accuracy (%)\n")
    sizes = sorted(s["n_per_class"].unique())
    print("| model | " + " | ".join(f"{n} per class" for n in sizes) + " |")
    print("|---" * (len(sizes) + 1) + "|")
    for m, g in s.groupby("model", sort=False):
        name = "CytoDiffusion (tiny)" if m == "diffusion" else "CNN baseline"
        cells = []
        for n in sizes:
            r = g[g["n_per_class"] == n]
            if r.empty:
                cells.append("-")
                continue
            r = r.iloc[0]
            sd = f" ± {100 * r['sd']:.1f}" if r["n"] > 1 else ""
            cells.append(f"{100 * r['mean']:.1f}{sd} (n={int(r['n'])})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()


def eval_few_shot() -> None:
    t = _table("few_shot")
    if t is None:
        return
    shipped = _budget("few_shot", diffusion=f"{_shipped('few_shot')} (fine-tuned for "
                      f"{_field('few_shot', 'fine_tune_steps')} UNet steps)",
                      baseline="the shipped data/default_baseline (fine-tuned for "
                      f"{_field('few_shot', 'fine_tune_epochs')} epochs)")
    print(f"Source: `data/results/few_shot.csv` ({shipped}); accuracy (%) on the rest "
          "of the shifted set, before and after fine-tuning on at most 100 of its images\n")
    print("| model | target | colour transfer | before | after | fine-tuning images |")
    print("|---|---|---|---|---|---|")
    for (m, tgt, ct), g in t.groupby(["model", "target", "colour_transfer"], sort=False):
        name = "CytoDiffusion (tiny)" if m == "diffusion" else "CNN baseline"
        b = g.loc[g["stage"] == "before", "accuracy"].mean()
        a = g.loc[g["stage"] == "after", "accuracy"].mean()
        print(f"| {name} | {tgt.replace('test_', '')} | {'yes' if ct else 'no'} | {100 * b:.1f} | "
              f"{100 * a:.1f} | {int(g['n_finetune'].iloc[0])} |")
    print()


if __name__ == "__main__":
    for section in (eval_domain_shift, eval_anomaly, eval_low_data, eval_few_shot):
        print(f"<!-- {section.__name__} -->")
        section()
