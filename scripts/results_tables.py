"""Print the README's evaluation tables (markdown) from the CSV tables in cytoviz/_shipped/results/.

    .venv/bin/python scripts/results_tables.py

The tables are written by ``bash scripts/run_evaluations.sh`` (the CPU-budget runs); this script
only formats them. Each section starts with an HTML comment naming it, as in
``benchmarks/readme_tables.py``.
"""

from __future__ import annotations

import json

import pandas as pd

from cytoviz._io import sha256_files
from cytoviz._paths import results_dir

RES = results_dir()


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
    scaled = b.get("step_rule") == "epochs"
    diff = diffusion or (
        f"trained for {t.get('vae_steps')} VAE + {t.get('steps')} UNet steps ({lr})" if not scaled
        else f"trained for {t.get('vae_steps')} VAE + UNet steps scaled to the training set "
        f"(`train_steps`; {t.get('steps')} at {b.get('reference_images')} images, at least "
        f"{b.get('min_steps')}; {lr})")
    base = baseline or (
        f"trained for {b.get('baseline', {}).get('epochs')} epochs" if not scaled
        else f"trained for optimiser steps scaled the same way (at least "
        f"{b.get('baseline_min_steps')}; {b.get('baseline', {}).get('epochs')} epochs at "
        f"{b.get('reference_images')} images)")
    return (f"budget `{b.get('name')}`; diffusion model {diff}; baseline {base}; at most "
            f"{b.get('max_trials')} trials per image, "
            + (f"{b.get('test_per_class')} test images per class" if b.get("test_per_class")
               else "every test image"))


def _provenance(name: str) -> dict:
    """The entry of table ``name`` in ``provenance.json`` (empty where there is none)."""
    path = RES / "provenance.json"
    return (json.loads(path.read_text()).get(name) if path.is_file() else None) or {}


def _shipped(name: str) -> str:
    """How to name the diffusion model of a table computed from the shipped default model:
    ``provenance.json`` holds the SHA-256 of the model files it used, compared here with the
    model shipped now."""
    entry = _provenance(name)
    if not entry.get("diffusion_model_sha256"):
        return "the shipped cytoviz/_shipped/default_model"
    from cytoviz.diffusion import default_model_path

    sha = entry["diffusion_model_sha256"]
    model = default_model_path()
    if (model / "cytoviz.json").is_file() and sha256_files(model) == sha:
        return "the shipped cytoviz/_shipped/default_model"
    commit = f", commit {entry['commit']}" if entry.get("commit") else ""
    return (f"an EARLIER default model (model files SHA-256 {sha[:12]}{commit}), not the one "
            "shipped now; `bash scripts/run_evaluations.sh` recomputes it")


def _model_label(model: str) -> str:
    return "CytoDiffusion (tiny)" if model == "diffusion" else "CNN baseline"


def _row(cells: list[str]) -> None:
    """Print one markdown table row."""
    print("| " + " | ".join(cells) + " |")


def _header(columns: list[str]) -> None:
    """Print a markdown table's header row and separator."""
    _row(columns)
    print("|---" * len(columns) + "|")


def _source(name: str, details: str) -> str:
    """The ``Source:`` line of a section: the CSV file and what it was computed with."""
    return f"Source: `cytoviz/_shipped/results/{name}.csv` ({details})"


def _generation_source(name: str, details: str) -> str:
    """The ``Source:`` line of a generation table: the diffusion model it used, the CNN that
    checked its generated cells (where ``provenance.json`` records one), then ``details``."""
    checker = _provenance(name).get("checker_baseline")
    note = (f"; the CNN is `{checker}` (the shipped CNN's recipe on the centre crops the model "
            "generates)" if checker else "")
    return _source(name, f"{_model_note(name)}{note}; {details}")


def _sampler(first: pd.Series) -> str:
    """The sampler of a generation table's rows: scheduler, steps and guidance scale."""
    return (f"{first['scheduler'].upper()} {int(first['steps'])} steps, guidance "
            f"{first['guidance_scale']:g}")


def _field(name: str, key: str) -> object:
    path = RES / f"{name}_budget.json"
    return json.loads(path.read_text()).get(key) if path.is_file() else None


def eval_anomaly(t: pd.DataFrame) -> None:
    from cytoviz.evaluation import anomaly_auc

    auc = anomaly_auc(t)
    print(_source("anomaly", _budget("anomaly")) + "\n")
    _header(["held-out class", "model", "score", "ROC AUC (normal vs held-out)",
             "95 % bootstrap interval", "normal / abnormal images"])
    for r in auc.itertuples():
        name = _model_label(r.model)
        paper = " (the paper's)" if r.score == "zeta" else ""
        _row([str(r.held_out), name, f"{r.score}{paper}", f"{r.auc:.3f}",
              f"[{r.auc_low:.3f}, {r.auc_high:.3f}]", f"{r.n_normal} / {r.n_abnormal}"])
    print("\nScores: zeta, the paper's certainty (of the class errors for CytoDiffusion, of the "
          "negated logits for the CNN); likelihood, minus CytoDiffusion's smallest class error; "
          "msp, the CNN's maximum softmax probability; energy, its log-sum-exp of the logits.\n")


def eval_domain_shift(t: pd.DataFrame) -> None:
    from cytoviz.evaluation import domain_shift_table

    wide = domain_shift_table(t)
    print(_source("domain_shift", _budget("domain_shift", diffusion=_shipped("domain_shift")))
          + "; balanced accuracy (%), mean ± sd over seeds\n")
    cols = [c for c in wide.columns if c not in ("note",)]
    _header(["model", *cols])
    for name, row in wide.iterrows():
        _row([str(name), *(str(row[c]) for c in cols)])
    if "note" in wide:
        for name, note in wide["note"].items():
            if note:
                print(f"\n{name}: {note} (the seeds vary only the classifier's random draws).")
    print()


def eval_low_data(t: pd.DataFrame) -> None:
    from cytoviz.evaluation.tables import summarise

    s = summarise(t, ["model", "n_per_class"])
    print(_source("low_data", _budget("low_data")) + "; balanced accuracy (%)\n")
    sizes = sorted(s["n_per_class"].unique())
    _header(["model", *(f"{n} per class" for n in sizes)])
    for m, g in s.groupby("model", sort=False):
        name = _model_label(m)
        cells = []
        for n in sizes:
            r = g[g["n_per_class"] == n]
            if r.empty:
                cells.append("-")
                continue
            r = r.iloc[0]
            sd = f" ± {100 * r['sd']:.1f}" if r["n"] > 1 else ""
            cells.append(f"{100 * r['mean']:.1f}{sd} (n={int(r['n'])})")
        _row([name, *cells])
    print()


def eval_few_shot(t: pd.DataFrame) -> None:
    shipped = _budget("few_shot", diffusion=f"{_shipped('few_shot')} (fine-tuned for "
                      f"{_field('few_shot', 'fine_tune_steps')} UNet steps)",
                      baseline="the shipped cytoviz/_shipped/default_baseline (fine-tuned for "
                      f"{_field('few_shot', 'fine_tune_epochs')} epochs)")
    print(_source("few_shot", shipped) + "; accuracy (%) on the rest of the shifted set, before "
          "and after fine-tuning on at most 100 of its images\n")
    _header(["model", "target", "colour transfer", "before", "after", "fine-tuning images"])
    for (m, tgt, ct), g in t.groupby(["model", "target", "colour_transfer"], sort=False):
        name = _model_label(m)
        b = g.loc[g["stage"] == "before", "accuracy"].mean()
        a = g.loc[g["stage"] == "after", "accuracy"].mean()
        _row([name, tgt.replace("test_", ""), "yes" if ct else "no", f"{100 * b:.1f}",
              f"{100 * a:.1f}", str(int(g["n_finetune"].iloc[0]))])
    print()


def _model_note(name: str) -> str:
    """Which diffusion model a generation table used (``provenance.json``)."""
    note = _shipped(name).replace("; `bash scripts/run_evaluations.sh` recomputes it", "")
    return f"diffusion model {note}"


def eval_class_agreement(t: pd.DataFrame) -> None:
    """``generation_agreement.csv``: generated images classified back, per intended class."""
    first = t.iloc[0]
    print(_generation_source("generation_agreement", f"{int(first['n'])} images per class, "
          f"{_sampler(first)}, seed {int(first['generate_seed'])}; the diffusion classifier at "
          f"most {int(first['max_trials'])} trials with pruning")
          + "; images classified as the intended class, Wilson 95 % intervals\n")
    _header(["intended class", "diffusion classifier", "CNN baseline"])
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
        _row([label, *cells])
    print()


def eval_augmentation(t: pd.DataFrame) -> None:
    """``augmentation.csv``: CytoDiff, the baseline trained with k generated images per class."""
    first = t.iloc[0]
    print(_generation_source("augmentation", f"{int(first['n_real_per_class'])} real training "
          f"images per class, {int(first['n_test'])} test images, generated with "
          f"{_sampler(first)}; {t['repeat'].nunique()} repeat(s)") + "\n")
    _header(["k per class", "same epochs: epochs", "accuracy", "macro-F1", "AUC",
             "equal steps: epochs", "accuracy", "macro-F1", "AUC"])
    for k in sorted(t["k"].unique()):
        cells = []
        for equal in (False, True):
            r = t[(t["k"] == k) & (t["equal_steps"] == equal)]
            if r.empty:
                cells.extend(["-"] * 4)
                continue
            cells.extend([f"{int(r['epochs'].iloc[0])}", f"{r['accuracy'].mean():.3f}",
                          f"{r['macro_f1'].mean():.3f}", f"{r['auc_ovr'].mean():.3f}"])
        _row([str(k), *cells])
    print()


def eval_prototypes(t: pd.DataFrame) -> None:
    """``prototypes.csv``: IMPROVE prototype conditioning against a one-hot control."""
    first = t.iloc[0]
    print(_generation_source("prototypes", f"prototypes on {first['embedding']} features, "
          f"{first['projection']} projection, each generator fine-tuned for "
          f"{int(first['fine_tune_steps'])} steps; {int(first['n'])} images per class, "
          f"{_sampler(first)}; {int(first['n_real'])} test images per class; "
          f"{first['frechet_features']}") + "\n")
    _header(["generator", "baseline agreement (all)",
             "Frechet distance on baseline features (all)", "final fine-tuning loss"])
    for gen, g in t.groupby("generator", sort=False):
        r = g[g["intended"] == "all"].iloc[0]
        agree = round(r["agreement"] * r["n"])
        _row([str(gen), f"{100 * r['agreement']:.1f} % ({agree}/{int(r['n'])})",
              f"{r['frechet_baseline_features']:.1f}", f"{r['final_loss']:.3f}"])
    print()


def eval_pbc_low_data(t: pd.DataFrame) -> None:
    """``pbc_low_data.csv``: the low-data protocol on the PBC example images (scripts/run_pbc.sh)."""
    print(_source("pbc_low_data", _budget("pbc_low_data")) + "; one run, no error bars\n")
    _header(["model", "training images per class", "training images", "test images",
             "accuracy", "balanced accuracy"])
    for r in t.itertuples():
        _row([_model_label(r.model), str(r.n_per_class), str(r.n_train), str(r.n_images),
              f"{100 * r.accuracy:.1f} %", f"{100 * r.balanced_accuracy:.1f} %"])
    print()


#: The paper's claim per protocol (METHOD.md section 7) and the pieces that regenerate its table.
CLAIMS = {
    "anomaly": ("CytoDiffusion separates a held-out class better than a ViT: AUC 0.982 vs 0.698 "
                "(blasts), 0.990 vs 0.916 (erythroblasts)",
                "anomaly-blast anomaly-erythroblast"),
    "domain_shift": ("CytoDiffusion loses less under domain shift: 98.4 vs 96.9 % (Test-B), "
                     "85.9 vs 74.4 % (LISC) balanced accuracy, mean of 5 runs",
                     "shift-diffusion-seed0 shift-baseline shift-diffusion-seed1 shift-diffusion-seed2"),
    "low_data": ("CytoDiffusion is ahead with 10, 20, 50 and 150 training images per class "
                 "(Figure 4)",
                 "low-data-rep0-small low-data-rep0-150 (and rep1, rep2)"),
    "few_shot": ("fine-tuning on at most 100 target images with colour transfer recovers most "
                 "of the shift (Chossegros et al.: 0.59 before, 0.89 after)", "few-shot"),
}


def _interval_verdict(d: tuple[float, float, float], c: tuple[float, float, float]) -> str:
    """Compare diffusion ``d`` and CNN ``c`` as (value, low, high): apart or overlapping."""
    if d[1] > c[2]:
        return "reproduced: the diffusion model is ahead (intervals apart)"
    if c[1] > d[2]:
        return "not reproduced: the CNN is ahead (intervals apart)"
    return "inconclusive: the intervals overlap"


def _verdict_anomaly(t: pd.DataFrame) -> list[tuple[str, str]]:
    from cytoviz.evaluation import anomaly_auc

    every = anomaly_auc(t)
    auc = every[every["score"] == "zeta"] if "score" in every else every
    out = []
    for h, g in auc.groupby("held_out", sort=False):
        by = g.set_index("model")
        if not {"diffusion", "baseline"} <= set(by.index):
            continue
        d, c = by.loc["diffusion"], by.loc["baseline"]

        def trio(r: pd.Series) -> tuple[float, float, float]:
            return (float(r["auc"]), float(r.get("auc_low", r["auc"])),
                    float(r.get("auc_high", r["auc"])))

        # the other scores, without a verdict (the verdict is the paper's score's)
        others = (every[(every["held_out"] == h) & (every["score"] != "zeta")]
                  if "score" in every else every.iloc[:0])
        rest = "; ".join(f"{_model_label(r.model)} {r.score} {r.auc:.3f}"
                         for r in others.itertuples())
        out.append((f"{h} held out: zeta AUC {d['auc']:.3f} [{trio(d)[1]:.3f}, {trio(d)[2]:.3f}] "
                    f"(CytoDiffusion) vs {c['auc']:.3f} [{trio(c)[1]:.3f}, {trio(c)[2]:.3f}] (CNN), "
                    f"{int(d['n_abnormal'])} held-out and {int(d['n_normal'])} normal cells"
                    + (f" (other scores: {rest})" if rest else ""),
                    _interval_verdict(trio(d), trio(c))))
    return out


def _mean_verdict(d: pd.Series, c: pd.Series, ahead: str, behind: str) -> str:
    """Compare the diffusion (``d``) and CNN (``c``) rows of ``mean``/``std``/``count``: a gap
    within twice the larger sd between runs is inconclusive; fewer than 3 runs is provisional."""
    sds = [float(x["std"]) for x in (d, c) if x["count"] > 1]
    lead = float(d["mean"] - c["mean"])
    if not sds:
        return (f"none yet: one run per side (the {'diffusion model' if lead > 0 else 'CNN'} "
                f"ahead by {abs(lead):.1f} points), no spread between runs to judge it by")
    if abs(lead) <= 2 * max(sds):
        v = "inconclusive: the gap is within twice the sd between runs"
    else:
        v = f"reproduced: {ahead}" if lead > 0 else f"not reproduced: {behind}"
    if int(d["count"]) < 3 or int(c["count"]) < 3:
        v += " (provisional: fewer than 3 runs on a side)"
    return v


def _sd(r: pd.Series) -> str:
    return f" ± {r['std']:.1f}" if r["count"] > 1 else ""


def _verdict_shift(t: pd.DataFrame) -> list[tuple[str, str]]:
    """Per shifted test set: each side's mean balanced accuracy over its runs and their sd."""
    out = []
    acc = t.assign(pct=100 * t["balanced_accuracy"])
    stats = acc.groupby(["test_set", "model"])["pct"].agg(["mean", "std", "count"])
    for test_set in ("mild shift", "strong shift"):
        if not {(test_set, "diffusion"), (test_set, "baseline")} <= set(stats.index):
            continue
        d, c = stats.loc[(test_set, "diffusion")], stats.loc[(test_set, "baseline")]
        runs = f"{int(d['count'])} CytoDiffusion / {int(c['count'])} CNN runs"
        out.append((f"{test_set}: {d['mean']:.1f}{_sd(d)} vs {c['mean']:.1f}{_sd(c)} % balanced "
                    f"accuracy (CytoDiffusion vs CNN; {runs}, 600 images each)",
                    _mean_verdict(d, c, "the diffusion model loses less",
                                  "the CNN loses less")))
    return out


def _verdict_low_data(t: pd.DataFrame) -> list[tuple[str, str]]:
    """Per training-set size: each side's mean balanced accuracy over its repeats."""
    out = []
    acc = t.assign(pct=100 * t["balanced_accuracy"])
    stats = acc.groupby(["n_per_class", "model"])["pct"].agg(["mean", "std", "count"])
    for n in sorted(acc["n_per_class"].unique()):
        if not {(n, "diffusion"), (n, "baseline")} <= set(stats.index):
            continue
        d, c = stats.loc[(n, "diffusion")], stats.loc[(n, "baseline")]
        images = int(acc["n_images"].iloc[0])
        out.append((f"{n} per class: {d['mean']:.1f}{_sd(d)} vs {c['mean']:.1f}{_sd(c)} % "
                    f"balanced accuracy (CytoDiffusion vs CNN; {int(d['count'])} / "
                    f"{int(c['count'])} repeats, {images} test images)",
                    _mean_verdict(d, c, "the diffusion model is ahead", "the CNN is ahead")))
    return out


def _verdict_few_shot(t: pd.DataFrame) -> list[tuple[str, str]]:
    """Per shifted target: each side's accuracy before and after fine-tuning, with and without
    colour transfer, and the share of the gap to the side's in-domain accuracy (the
    domain-shift table's run of the same seed) that fine-tuning with colour transfer closes."""
    out = []
    shift = _table("domain_shift")
    names = {"test_mild": "mild", "test_strong": "strong"}
    for target, label in names.items():
        sub = t[t["target"] == target]
        if set(sub["model"]) < {"diffusion", "baseline"}:
            continue
        acc = sub.assign(pct=100 * sub["accuracy"]).groupby(
            ["model", "colour_transfer", "stage"])["pct"].mean()
        parts, verdicts = [], []
        for model, side in (("diffusion", "CytoDiffusion"), ("baseline", "CNN")):
            ct = f"{acc[(model, True, 'before')]:.1f} → {acc[(model, True, 'after')]:.1f}"
            raw = f"{acc[(model, False, 'before')]:.1f} → {acc[(model, False, 'after')]:.1f}"
            parts.append(f"{side} {ct} with colour transfer, {raw} without")
            if shift is None:
                continue
            seeds = set(sub.loc[sub["model"] == model, "seed"])
            home = shift[(shift["model"] == model) & (shift["test_set"] == "in-domain")
                         & shift["seed"].isin(seeds)]
            if home.empty:
                continue
            gap = 100 * float(home["balanced_accuracy"].mean()) - acc[(model, True, "before")]
            gain = acc[(model, True, "after")] - acc[(model, True, "before")]
            if gap < 5:
                verdicts.append(f"{side}: nothing to recover (within {max(gap, 0):.1f} points of "
                                f"in-domain before; fine-tuning {gain:+.1f})")
            else:
                share = gain / gap
                verdicts.append(f"{side}: {'reproduced' if share >= 0.5 else 'not reproduced'}, "
                                f"{100 * share:.0f} % of the gap to in-domain closed")
        n = int(sub["n_images"].iloc[0])
        runs = sub.loc[sub["model"] == "diffusion", "seed"].nunique()
        out.append((f"{label} shift, accuracy (%) before → after fine-tuning: {'; '.join(parts)} "
                    f"({n} test images)",
                    "; ".join(verdicts) + f" (provisional: {runs} run per side)"
                    if verdicts else "no in-domain reference (domain-shift table missing)"))
    return out


def _stale_line(name: str) -> None:
    """A bold warning above a table made with an earlier model than the shipped one."""
    from cytoviz.evaluation import stale_reason

    if stale_reason(name, folder=RES) is not None:
        print(f"**STALE: made with an earlier model and recipe; `bash scripts/run_evaluations.sh "
              f"{CLAIMS[name][1]}` then `--collect` regenerate it.**\n")


def verdict() -> None:
    """One row per protocol: the paper's claim, the stored result, and whether it reproduces.

    A table made with an earlier model (:func:`cytoviz.evaluation.stale_reason`) gives no
    verdict: its row names the pieces of ``scripts/run_evaluations.sh`` that regenerate it.
    """
    from cytoviz.evaluation import stale_reason

    print("Source: `cytoviz/_shipped/results/` (`bash scripts/run_evaluations.sh PIECE`, then "
          "`--collect`); 95 % percentile-bootstrap intervals for AUCs\n")
    _header(["protocol", "the paper's claim", "cytoviz on the embedded data", "verdict"])
    for name, (claim, pieces) in CLAIMS.items():
        t = _table(name)
        label = name.replace("_", " ")
        if t is None or stale_reason(name, folder=RES) is not None:
            _row([label, claim, "not yet regenerated with the shipped recipe (made with an "
                  "earlier model)", f"none yet: pieces `{pieces}`"])
            continue
        rows = (_verdict_anomaly(t) if name == "anomaly"
                else _verdict_shift(t) if name == "domain_shift"
                else _verdict_low_data(t) if name == "low_data"
                else _verdict_few_shot(t) if name == "few_shot" else [])
        if not rows:
            _row([label, claim, "regenerated; see the results page", "see the results page"])
        for text, v in rows:
            _row([label, claim, text, v])
    print()


#: The sections in README order, each with the table it formats (a missing table prints nothing).
SECTIONS = ((eval_domain_shift, "domain_shift"), (eval_anomaly, "anomaly"),
            (eval_low_data, "low_data"), (eval_few_shot, "few_shot"),
            (eval_class_agreement, "generation_agreement"), (eval_augmentation, "augmentation"),
            (eval_prototypes, "prototypes"), (eval_pbc_low_data, "pbc_low_data"))

if __name__ == "__main__":
    print("<!-- verdict -->")
    verdict()
    for section, name in SECTIONS:
        print(f"<!-- {section.__name__} -->")
        t = _table(name)
        if t is not None:
            if name in CLAIMS:
                _stale_line(name)
            section(t)
