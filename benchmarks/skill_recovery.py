"""Do the per-expert psychometric fits rank the simulated experts by their known skill?

The paper's Figure 2 claim is that the model's confidence tells the experts' abilities apart
better than the experts' own (consensus) confidence does. The simulated panel knows every
expert's skill (``1 - exp(-years / skill_years)``, :class:`cytoviz.data.PanelConfig`), so the
claim can be checked where the answer is known. For each panel seed, the six experts are
simulated on the default synthetic test split (200 common images), each expert's correctness
against the consensus is binned on both stimulus axes (12 bins) and fitted
(:func:`cytoviz.psychometric.fit_observers`), and the Spearman correlation of the posterior-mean
threshold and width with the true skill is computed. A skilled expert should reach the threshold
at a lower stimulus, so a good axis gives correlations near -1.

The model-confidence axis uses a stored pass of the shipped model over the test split (the
domain-shift protocol's seed 0, ``--result``); nothing is classified here. A third axis, the
clarity the simulation drew into each image (``1 - 2 * lean``, from
:func:`cytoviz.data.panel.image_ambiguity`; known only in a simulation), shows what a model
whose confidence followed exactly what makes the images hard for the experts would give.

Two thresholds are reported: the sigmoid's midpoint ``m`` (psignifit's ``threshold``) and the
threshold at 80 % correct of the unscaled sigmoid, ``m + 0.23541 w``, which is what the
paper's Figure 2 D reports (METHOD.md section 5) and what ``cytoviz figures`` draws there.

Why a threshold can fall outside the stimulus range, measured alongside: a midpoint inside
the range needs the expert's accuracy to fall to about ``gamma + (1 - gamma) / 2 = 0.55``
somewhere on the axis, the 80 % threshold to about ``gamma + 0.8 (1 - gamma) = 0.82``. The benchmark records each
expert's accuracy against the consensus in the lowest and the highest third of the model's
confidence (common images, mean over the seeds), and the Spearman correlation between the
model's confidence and the ambiguity the simulation draws into each image
(:func:`cytoviz.data.panel.image_ambiguity`), the source of the experts' mistakes.

Usage::

    .venv/bin/python benchmarks/skill_recovery.py [--seeds 8] [--draws 500]

Writes ``benchmarks/results/skill_recovery.json``; ``benchmarks/readme_tables.py`` prints it.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "skill_recovery.json"
RESULT = REPO / "eval_runs" / "domain_shift" / "outputs" / "diffusion-seed0-pretrained" / "test_result.npz"


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=8, help="panel seeds")
    parser.add_argument("--draws", type=int, default=500, help="PyMC draws (and tuning) per chain")
    parser.add_argument("--result", type=Path, default=RESULT,
                        help="a ClassificationResult of the model over the default test split")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not args.result.is_file():
        print(f"skill_recovery: no stored classification at {args.result}; run "
              "`bash scripts/run_evaluations.sh shift-diffusion-seed0` first", file=sys.stderr)
        return None

    from scipy.stats import spearmanr

    from cytoviz._io import save_json
    from cytoviz.data import PanelConfig, resolve_one, simulate_panel
    from cytoviz.data.panel import expert_correctness, image_ambiguity
    from cytoviz.diffusion import ClassificationResult
    from cytoviz.figures import FIG2_PERCENT_CORRECT as PERCENT_CORRECT
    from cytoviz.psychometric import CompiledModels, PsychometricConfig, fit_observers
    from cytoviz.psychometric.experts import expert_psychometric_data
    from cytoviz.psychometric.summary import summarize, threshold_parameter

    ds = resolve_one("synthetic", "test")
    result = ClassificationResult.load(args.result)
    if len(result) != len(ds):
        raise SystemExit(f"skill_recovery: {args.result} has {len(result)} images, the test split "
                         f"{len(ds)}; pass the shipped model's pass over the default test split")
    conf = pd.Series(result.confidence, index=np.arange(len(ds)))
    panel_config = PanelConfig()
    psych = PsychometricConfig(draws=args.draws, tune=args.draws, seed=0, mcse_target=None)
    cache = CompiledModels()
    rows, thirds = [], []
    _, ambiguity = image_ambiguity(ds, panel_config)
    clarity = pd.Series(1.0 - 2.0 * ambiguity, index=np.arange(len(ds)))
    stimulus = {"model": conf, "consensus": None, "clarity": clarity}
    t80 = threshold_parameter(PERCENT_CORRECT)
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        panel = simulate_panel(ds, n_common=200, per_expert=len(ds), seed=seed, config=panel_config)
        corr = expert_correctness(panel, common_only=True)
        third = pd.qcut(conf.loc[corr["image"].to_numpy()].to_numpy(), 3,
                        labels=["low", "middle", "high"])
        acc = corr.assign(third=third).groupby(["expert", "third"], observed=True)["correct"].mean()
        thirds.append(acc.rename(seed))
        skill = {e: 1.0 - np.exp(-y / panel_config.skill_years)
                 for e, y in panel.groupby("expert")["years"].first().items()}
        for axis, values in stimulus.items():
            data = expert_psychometric_data(panel, values, axis="consensus" if values is None
                                            else "model", n_bins=12)
            lo = min(float(d.x.min()) for d in data.values())
            hi = max(float(d.x.max()) for d in data.values())
            s = summarize(fit_observers(data, psych, cache=cache), with_map=False,
                          percent_correct=(PERCENT_CORRECT,))
            row = {"seed": seed, "axis": axis, "x_min": lo, "x_max": hi}
            for param in ("threshold", t80, "width"):
                est = s[s["parameter"] == param].set_index("observer")["mean"]
                sk = np.array([skill[e] for e in est.index])
                row[f"spearman_{param}"] = float(spearmanr(est.to_numpy(), sk).statistic)
                row[f"{param}_by_expert"] = {str(e): float(v) for e, v in est.items()}
            for param in ("threshold", t80):
                thr = np.array(list(row[f"{param}_by_expert"].values()))
                row[f"{param}s_in_range"] = int(np.sum((thr >= lo) & (thr <= hi)))
            rows.append(row)
            print(f"seed {seed} {axis}: Spearman(threshold, skill) "
                  f"{row['spearman_threshold']:+.2f}, (80 % threshold, skill) "
                  f"{row[f'spearman_{t80}']:+.2f}, (width, skill) {row['spearman_width']:+.2f}; "
                  f"in [{lo:.2f}, {hi:.2f}]: {row['thresholds_in_range']}/6 midpoints, "
                  f"{row[f'{t80}s_in_range']}/6 80 % thresholds", flush=True)
    table = pd.DataFrame(rows)
    summary = {}
    for axis, g in table.groupby("axis"):
        summary[axis] = {
            f"spearman_{p}": {"mean": float(g[f"spearman_{p}"].mean()),
                              "interval": [float(v) for v in np.percentile(g[f"spearman_{p}"],
                                                                           [2.5, 97.5])]}
            for p in ("threshold", t80, "width")
        }
        for p in ("threshold", t80):
            summary[axis][f"{p}s_in_range"] = float(g[f"{p}s_in_range"].mean())
    acc = pd.concat(thirds, axis=1).mean(axis=1)
    # the model's own accuracy (against the true class) by third of its confidence: does its
    # confidence mark the images that are hard for the model?
    model_third = pd.qcut(result.confidence, 3, labels=["low", "middle", "high"])
    model_correct = pd.Series(result.prediction == ds.labels).groupby(
        np.asarray(model_third), observed=True).mean()
    diagnosis = {
        "model_accuracy_by_confidence_third": {t: float(model_correct[t]) for t in ("low", "high")},
        "spearman_confidence_ambiguity": float(spearmanr(result.confidence, ambiguity).statistic),
        "accuracy_by_confidence_third": {
            third: {str(e): float(acc[(e, third)]) for e in acc.index.get_level_values(0).unique()}
            for third in ("low", "high")},
    }
    print(f"Spearman(model confidence, image ambiguity) "
          f"{diagnosis['spearman_confidence_ambiguity']:+.2f}; accuracy vs consensus in the lowest "
          f"/ highest third of model confidence: "
          + ", ".join(f"{e} {diagnosis['accuracy_by_confidence_third']['low'][e]:.2f} / "
                      f"{diagnosis['accuracy_by_confidence_third']['high'][e]:.2f}"
                      for e in diagnosis["accuracy_by_confidence_third"]["low"]))
    out = {"benchmark": "skill_recovery", "seeds": args.seeds, "draws": args.draws,
           "percent_correct": PERCENT_CORRECT,
           "n_common": 200, "classification": str(args.result.relative_to(REPO))
           if args.result.is_relative_to(REPO) else str(args.result),
           "panel_config": panel_config.to_dict(), "summary": summary, "diagnosis": diagnosis,
           "runs": table.to_dict(orient="records"), "wall_seconds": time.perf_counter() - t0,
           "python": platform.python_version(),
           "command": "python benchmarks/skill_recovery.py"}
    save_json(out, args.out)
    print(f"wrote {args.out}")
    return out


if __name__ == "__main__":  # pragma: no cover
    main()
