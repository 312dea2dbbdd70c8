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

from cytoviz._io import sha256_files

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

    sha = entry["diffusion_model_sha256"]
    model = default_model_path()
    if (model / "cytoviz.json").is_file() and sha256_files(model) == sha:
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


def _model_note(name: str) -> str:
    """Which diffusion model a generation table used (``provenance.json``); the generation
    protocols are not part of ``scripts/run_evaluations.sh``: their commands are in the docs."""
    note = _shipped(name).replace("; `bash scripts/run_evaluations.sh` recomputes it", "")
    return f"diffusion model {note}"


def eval_class_agreement() -> None:
    """``generation_agreement.csv``: generated images classified back, per intended class."""
    t = _table("generation_agreement")
    if t is None:
        return
    first = t.iloc[0]
    print(f"Source: `data/results/generation_agreement.csv` ({_model_note('generation_agreement')}; "
          f"{int(first['n'])} images per class, {first['scheduler'].upper()} {int(first['steps'])} "
          f"steps, guidance {first['guidance_scale']:g}, seed {int(first['generate_seed'])}; the "
          f"diffusion classifier at most {int(first['max_trials'])} trials with pruning); images "
          "classified as the intended class, Wilson 95 % intervals\n")
    print("| intended class | diffusion classifier | CNN baseline |")
    print("|---|---|---|")
    for cls in dict.fromkeys(t["intended"]):
        cells = []
        for clf in ("diffusion", "baseline"):
            r = t[(t["classifier"] == clf) & (t["intended"] == cls)]
            if r.empty:
                cells.append("-")
                continue
            r = r.iloc[0]
            if cls == "all":
                cells.append(f"**{100 * r['agreement']:.1f} % [{100 * r['agreement_low']:.1f}, "
                             f"{100 * r['agreement_high']:.1f}]**")
            else:
                cells.append(f"{int(r['n_agree'])}/{int(r['n'])}")
        label = "**all**" if cls == "all" else cls
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()


def eval_augmentation() -> None:
    """``augmentation.csv``: CytoDiff, the baseline trained with k generated images per class."""
    t = _table("augmentation")
    if t is None:
        return
    first = t.iloc[0]
    print(f"Source: `data/results/augmentation.csv` ({_model_note('augmentation')}; "
          f"{int(first['n_real_per_class'])} real training images per class, {int(first['n_test'])} "
          f"test images, generated with {first['scheduler'].upper()} {int(first['steps'])} steps, "
          f"guidance {first['guidance_scale']:g}; {t['repeat'].nunique()} repeat(s))\n")
    print("| k per class | same epochs: epochs | accuracy | macro-F1 | AUC | equal steps: epochs "
          "| accuracy | macro-F1 | AUC |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k in sorted(t["k"].unique()):
        cells = []
        for equal in (False, True):
            r = t[(t["k"] == k) & (t["equal_steps"] == equal)]
            if r.empty:
                cells.extend(["-"] * 4)
                continue
            cells.extend([f"{int(r['epochs'].iloc[0])}", f"{r['accuracy'].mean():.3f}",
                          f"{r['macro_f1'].mean():.3f}", f"{r['auc_ovr'].mean():.3f}"])
        print(f"| {k} | " + " | ".join(cells) + " |")
    print()


def eval_prototypes() -> None:
    """``prototypes.csv``: IMPROVE prototype conditioning against a one-hot control."""
    t = _table("prototypes")
    if t is None:
        return
    first = t.iloc[0]
    print(f"Source: `data/results/prototypes.csv` ({_model_note('prototypes')}; prototypes on "
          f"{first['embedding']} features, {first['projection']} projection, each generator "
          f"fine-tuned for {int(first['fine_tune_steps'])} steps; {int(first['n'])} images per "
          f"class, {first['scheduler'].upper()} {int(first['steps'])} steps, guidance "
          f"{first['guidance_scale']:g}; {int(first['n_real'])} test images per class; "
          f"{first['frechet_features']})\n")
    print("| generator | baseline agreement (all) | Frechet distance on baseline features (all) "
          "| final fine-tuning loss |")
    print("|---|---|---|---|")
    for gen, g in t.groupby("generator", sort=False):
        r = g[g["intended"] == "all"].iloc[0]
        agree = round(r["agreement"] * r["n"])
        print(f"| {gen} | {100 * r['agreement']:.1f} % ({agree}/{int(r['n'])}) | "
              f"{r['frechet_baseline_features']:.1f} | {r['final_loss']:.3f} |")
    print()


def eval_pbc_low_data() -> None:
    """``pbc_low_data.csv``: the low-data protocol on the PBC example images (scripts/run_pbc.sh)."""
    t = _table("pbc_low_data")
    if t is None:
        return
    print(f"Source: `data/results/pbc_low_data.csv` ({_budget('pbc_low_data')}); one run, no "
          "error bars\n")
    print("| model | training images per class | training images | test images | accuracy "
          "| balanced accuracy |")
    print("|---|---|---|---|---|---|")
    for r in t.itertuples():
        name = "CytoDiffusion (tiny)" if r.model == "diffusion" else "CNN baseline"
        print(f"| {name} | {r.n_per_class} | {r.n_train} | {r.n_images} | {100 * r.accuracy:.1f} % "
              f"| {100 * r.balanced_accuracy:.1f} % |")
    print()


if __name__ == "__main__":
    for section in (eval_domain_shift, eval_anomaly, eval_low_data, eval_few_shot,
                    eval_class_agreement, eval_augmentation, eval_prototypes, eval_pbc_low_data):
        print(f"<!-- {section.__name__} -->")
        section()
