"""cytoviz's psychometric fits (both engines) vs psignifit 4.3: wall time and agreement.

The task of the paper's Figure 2: fit the model (25 bins) and six experts (12 bins).
psignifit fits them one after another (default grid, eta on, 10AFC, logistic). cytoviz fits
all seven in one call, with either engine:

- ``nuts`` (default): ONE vectorised PyMC model sampled by NUTS. "cold" is its first fit in
  this process (graph compilation included; pytensor's disk cache of C modules may already be
  warm); "warm" reuses the compiled model and NUTS step (a ``CompiledModels`` cache), as in a
  notebook session.
- ``grid`` (opt-in, ``PsychometricConfig(engine="grid")``): the posterior summed on a grid as
  psignifit does, then sampled. "cold" is its first fit in a FRESH Python process (a
  subprocess; importing ArviZ included, importing cytoviz not); "warm" is a later fit.

Both use the default ``mcse_target`` (0.01 on the interval bounds). The ratios are cytoviz
wall time / psignifit wall time (target <= 1.0). Timings alternate between psignifit and the
two engines, ``--repeats`` times, and report medians.

Agreement: each engine's posterior means and 95 % interval bounds against psignifit's FINE grid
(threshold x width x lambda x eta = 100 x 100 x 40 x 40), for the seven observers and the
data sets of ``tests/test_psychometric_psignifit.py``; targets 0.005 / 0.02 (means of
threshold / width) and 0.01 / 0.03 (interval bounds).

Usage::

    .venv/bin/python benchmarks/psychometric_vs_psignifit.py [--repeats 3] [--no-agreement]

Writes ``benchmarks/results/psychometric_vs_psignifit.json`` and
``benchmarks/results/psychometric_agreement.json`` (one block per engine); prints markdown
tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cytoviz._io import save_json  # noqa: E402
from cytoviz.psychometric import (  # noqa: E402
    CompiledModels,
    PsychometricConfig,
    fit_observers,
    simulate_xkn,
)
from cytoviz.psychometric.binning import PsychometricData, as_psychometric_data  # noqa: E402
from cytoviz.psychometric.model import ENGINES  # noqa: E402
from cytoviz.psychometric.summary import summarize  # noqa: E402

REF_DIR = REPO.parent / "shared" / "reference" / "psignifit"
RESULTS = REPO / "benchmarks" / "results"
FINE = {"threshold": 100, "width": 100, "lambda": 40, "eta": 40}
TOL = {"threshold": {"mean": 0.005, "ci": 0.01}, "width": {"mean": 0.02, "ci": 0.03}}

#: Six simulated experts (threshold, width, lapse), 12 bins, 8-25 cases per bin.
EXPERTS = {
    "E1 (34 y)": (0.25, 0.35, 0.02), "E2 (25 y)": (0.30, 0.40, 0.03),
    "E3 (15 y)": (0.35, 0.45, 0.04), "E4 (12 y)": (0.40, 0.50, 0.05),
    "E5 (6 y)": (0.45, 0.55, 0.06), "E6 (5 y)": (0.50, 0.60, 0.08),
}
#: The generated data sets of tests/test_psychometric_psignifit.py.
TEST_SETS = {
    "25bins_many": (0.50, 0.30, 0.02, 25, (30, 50), 11),
    "12bins_few": (0.35, 0.50, 0.05, 12, (8, 20), 12),
    "12bins_many_steep": (0.60, 0.20, 0.00, 12, (60, 80), 13),
    "25bins_few_shallow": (0.45, 0.70, 0.08, 25, (6, 14), 14),
    "12bins_lapse": (0.40, 0.40, 0.10, 12, (150, 250), 15),
}


def figure2_data() -> dict[str, PsychometricData]:
    data = {"model": as_psychometric_data(pd.read_csv(REF_DIR / "reference_25bins.csv"))}
    for i, (name, (t, w, lam)) in enumerate(EXPERTS.items()):
        data[name] = simulate_xkn(t, w, lam, n_bins=12, n_per_level=(8, 25), seed=100 + i)
    return data


def run_psignifit(d: PsychometricData, grid: dict[str, int] | None = None) -> dict:
    import psignifit

    kwargs = {"sigmoid": "logistic", "experiment_type": "10AFC", "verbose": False}
    if grid:
        kwargs["grid_steps"] = grid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = psignifit.psignifit(np.column_stack([d.x, d.k, d.n]).astype(float), **kwargs)
    return {p: {"mean": res.parameter_estimate_mean[p], "ci": res.confidence_intervals[p]["0.95"]}
            for p in ("threshold", "width", "lambda")}


_COLD_GRID = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, {bench!r})
from psychometric_vs_psignifit import figure2_data
from cytoviz.psychometric import PsychometricConfig, fit_observers
data = figure2_data()
config = PsychometricConfig.from_dict(json.loads({config!r}))
t0 = time.perf_counter()
fit_observers(data, config)
print(time.perf_counter() - t0)
"""


def _grid_cold(config: PsychometricConfig) -> float:
    """The grid engine's first fit in a fresh Python process (seconds)."""
    import subprocess

    code = _COLD_GRID.format(bench=str(REPO / "benchmarks"), config=json.dumps(config.to_dict()))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    return float(out.stdout.strip().splitlines()[-1])


def timing(data: dict[str, PsychometricData], config: PsychometricConfig, repeats: int) -> dict:
    grid = config.replace(engine="grid")
    grid_cold = _grid_cold(grid)
    cache = CompiledModels()
    t0 = time.perf_counter()
    fit_observers(data, config, cache=cache)
    cold = time.perf_counter() - t0
    psig, warm, grid_warm = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for d in data.values():
            run_psignifit(d)
        psig.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fit_observers(data, config, cache=cache)
        warm.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fit_observers(data, grid)
        grid_warm.append(time.perf_counter() - t0)
    ps_med = statistics.median(psig)
    return {
        "psignifit_s": psig, "cytoviz_warm_s": warm, "cytoviz_cold_s": cold,
        "psignifit_median_s": ps_med, "cytoviz_warm_median_s": statistics.median(warm),
        "ratio_warm": statistics.median(warm) / ps_med, "ratio_cold": cold / ps_med,
        "grid": {"config": grid.to_dict(), "warm_s": grid_warm, "cold_s": grid_cold,
                 "warm_median_s": statistics.median(grid_warm),
                 "ratio_warm": statistics.median(grid_warm) / ps_med,
                 "ratio_cold": grid_cold / ps_med},
    }


def fine_references(data: dict[str, PsychometricData]) -> dict[str, tuple[dict, float]]:
    """psignifit's fine-grid fit of every data set, and its wall time."""
    ref_json = json.loads((REF_DIR / "psignifit43_results.json").read_text())
    fine_ref = ref_json["variants"]["10AFC_finegrid"]
    refs = {}
    for name, d in data.items():
        if name == "model":  # psignifit's own fine-grid fit of this data is stored
            refs[name] = ({p: {"mean": fine_ref["mean"][p], "ci": fine_ref["ci95"][p]}
                           for p in ("threshold", "width", "lambda")}, fine_ref["wall_s"])
        else:
            t0 = time.perf_counter()
            ref = run_psignifit(d, FINE)
            refs[name] = (ref, time.perf_counter() - t0)
    return refs


def agreement(data: dict[str, PsychometricData], config: PsychometricConfig,
              refs: dict[str, tuple[dict, float]]) -> list[dict]:
    idata = fit_observers(data, config)  # one vectorised fit for every data set
    table = summarize(idata, with_map=False)
    rows = []
    for name, d in data.items():
        ref, t_ps = refs[name]
        row: dict = {"data": name, "levels": len(d), "trials": int(d.n.sum()),
                     "psignifit_fine_s": t_ps}
        ok = True
        for p in ("threshold", "width", "lambda"):
            ours = table[(table.observer == name) & (table.parameter == p)].iloc[0]
            row[f"{p}_mean"] = [float(ours["mean"]), ref[p]["mean"]]
            row[f"{p}_ci"] = [[float(ours["lower"]), float(ours["upper"])], list(ref[p]["ci"])]
            if p in TOL:
                dm = abs(ours["mean"] - ref[p]["mean"])
                dc = max(abs(ours["lower"] - ref[p]["ci"][0]), abs(ours["upper"] - ref[p]["ci"][1]))
                row[f"{p}_dmean"], row[f"{p}_dci"] = float(dm), float(dc)
                ok &= dm <= TOL[p]["mean"] and dc <= TOL[p]["ci"]
        row["within_targets"] = bool(ok)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--draws", type=int, default=PsychometricConfig.draws)
    parser.add_argument("--tune", type=int, default=PsychometricConfig.tune)
    parser.add_argument("--chains", type=int, default=PsychometricConfig.chains)
    parser.add_argument("--no-agreement", action="store_true")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--tag", default="", help="suffix for the result file names")
    args = parser.parse_args(argv)
    config = PsychometricConfig(draws=args.draws, tune=args.tune, chains=args.chains, seed=7)
    data = figure2_data()
    env = {"python": platform.python_version(), "machine": platform.machine(),
           "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.no_timing:
        t = timing(data, config, args.repeats)
        t.update({"config": config.to_dict(), "env": env, "observers": list(data),
                  "loadavg_end": os.getloadavg()})
        save_json(t, RESULTS / f"psychometric_vs_psignifit{args.tag}.json")
        print("| | wall time (s) |\n|---|---|")
        print(f"| psignifit 4.3, 7 fits one after another (median of {args.repeats}) | "
              f"{t['psignifit_median_s']:.2f} |")
        print(f"| cytoviz, one vectorised fit, cold (compile included) | {t['cytoviz_cold_s']:.2f} |")
        print(f"| cytoviz, one vectorised fit, warm (median of {args.repeats}) | "
              f"{t['cytoviz_warm_median_s']:.2f} |")
        print(f"| **ratio cytoviz / psignifit** (target <= 1.0) | warm {t['ratio_warm']:.2f}, "
              f"cold {t['ratio_cold']:.2f} |")
        g = t["grid"]
        print(f"| cytoviz grid engine, cold (fresh process) | {g['cold_s']:.2f} |")
        print(f"| cytoviz grid engine, warm (median of {args.repeats}) | {g['warm_median_s']:.2f} |")
        print(f"| **ratio grid engine / psignifit** (target <= 1.0) | warm {g['ratio_warm']:.2f}, "
              f"cold {g['ratio_cold']:.2f} |")
        print(f"\nload average at start / end: {env['loadavg_start']} / {t['loadavg_end']}\n")
    if not args.no_agreement:
        sets = dict(data)
        sets.update({n: simulate_xkn(tt, w, lam, n_bins=b, n_per_level=nn, seed=s)
                     for n, (tt, w, lam, b, nn, s) in TEST_SETS.items()})
        refs = fine_references(sets)
        engines = {}
        for engine in ENGINES:
            cfg = config.replace(engine=engine)
            engines[engine] = {"config": cfg.to_dict(), "rows": agreement(sets, cfg, refs)}
        save_json({"fine_grid": FINE, "targets": TOL, "engines": engines, "env": env},
                  RESULTS / f"psychometric_agreement{args.tag}.json")
        for engine, block in engines.items():
            print(f"\nengine: {engine}\n")
            print("| data | levels | trials | thr mean (cv / ps) | thr 95% CI cv | thr 95% CI ps | "
                  "width mean (cv / ps) | width 95% CI cv | width 95% CI ps | max |dCI| thr / w "
                  "| ok |")
            print("|---|---|---|---|---|---|---|---|---|---|---|")
            for r in block["rows"]:
                tm, tc, wm, wc = (r["threshold_mean"], r["threshold_ci"], r["width_mean"],
                                  r["width_ci"])
                print(f"| {r['data']} | {r['levels']} | {r['trials']} | {tm[0]:.4f} / {tm[1]:.4f} "
                      f"| [{tc[0][0]:.4f}, {tc[0][1]:.4f}] | [{tc[1][0]:.4f}, {tc[1][1]:.4f}] | "
                      f"{wm[0]:.4f} / {wm[1]:.4f} | [{wc[0][0]:.4f}, {wc[0][1]:.4f}] | "
                      f"[{wc[1][0]:.4f}, {wc[1][1]:.4f}] | {r['threshold_dci']:.4f} / "
                      f"{r['width_dci']:.4f} | {'yes' if r['within_targets'] else 'NO'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
