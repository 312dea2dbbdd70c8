"""How the grid engine's default cell counts were chosen: accuracy and time per grid size.

The grid engine (``PsychometricConfig(engine="grid")``) has one setting that trades time for
accuracy, ``grid_steps``. This script fits six simulated data sets that no test and no other
benchmark uses (the shapes of ``psychometric_vs_psignifit.TEST_SETS`` with seeds shifted by
500, and one overdispersed set) with each candidate size, and reports the largest difference of
the posterior means and 95 % interval bounds from psignifit 4.3's fine grid, and the wall time.

The differences are measured with a Monte-Carlo target of 0.002 (``PRECISE``), so that what is
left is mostly the grid's own error and psignifit's (about half its fine grid's step), not the
sampling noise of the default target (0.01). The wall time is that of a fit with a fixed 1,000
draws per chain, so it is the grid's cost.

The choice was made by judgement on this table (it was first run at the default Monte-Carlo
target, where the sampling noise hid the differences between sizes): (40, 40, 10, 10) has half
the largest width-bound difference of the two smaller sizes for at most about twice their time,
and the larger sizes gain nothing measurable. The agreement benchmark
(``psychometric_vs_psignifit.py``) then checks the default on other data sets.

Usage::

    .venv/bin/python benchmarks/psychometric_grid_steps.py [--steps 30,30,12,12 40,40,10,10 ...]

Writes ``benchmarks/results/psychometric_grid_steps.json``; prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from psychometric_vs_psignifit import FINE, TEST_SETS, TOL, run_psignifit  # noqa: E402

from cytoviz._io import save_json  # noqa: E402
from cytoviz.psychometric import PsychometricConfig, fit_observers, simulate_xkn  # noqa: E402
from cytoviz.psychometric.summary import summarize  # noqa: E402

#: The Monte-Carlo error target of the accuracy fits.
PRECISE = 0.002
CANDIDATES = ((20, 20, 8, 8), (30, 30, 12, 12), (40, 40, 10, 10), (40, 40, 12, 12),
              (60, 60, 10, 10))


def selection_sets() -> dict:
    """Data sets used for choosing the grid size only."""
    sets = {f"{name}_sel": simulate_xkn(t, w, lam, n_bins=b, n_per_level=n, seed=s + 500)
            for name, (t, w, lam, b, n, s) in TEST_SETS.items()}
    sets["overdispersed_sel"] = simulate_xkn(0.5, 0.4, 0.03, n_bins=15, n_per_level=(20, 40),
                                             eta=0.15, seed=777)
    return sets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", nargs="+", default=[",".join(map(str, c)) for c in CANDIDATES])
    args = parser.parse_args(argv)
    sets = selection_sets()
    refs = {name: run_psignifit(d, FINE) for name, d in sets.items()}
    fit_observers(sets, PsychometricConfig(engine="grid", grid_steps=(4, 4, 2, 2),
                                           mcse_target=None))  # imports, outside the timing
    rows = []
    for text in args.steps:
        steps = tuple(int(v) for v in text.split(","))
        config = PsychometricConfig(engine="grid", grid_steps=steps, seed=3)
        t0 = time.perf_counter()
        fit_observers(sets, config.replace(mcse_target=None))
        wall = time.perf_counter() - t0
        idata = fit_observers(sets, config.replace(mcse_target=PRECISE, max_draws=400_000))
        table = summarize(idata, with_map=False)
        row: dict = {"grid_steps": list(steps), "wall_s": wall,
                     "draws_used": int(idata.posterior.attrs["draws_used"])}
        for p in ("threshold", "width"):
            dmean, dci = 0.0, 0.0
            for name in sets:
                r = table[(table.observer == name) & (table.parameter == p)].iloc[0]
                dmean = max(dmean, abs(r["mean"] - refs[name][p]["mean"]))
                dci = max(dci, abs(r["lower"] - refs[name][p]["ci"][0]),
                          abs(r["upper"] - refs[name][p]["ci"][1]))
            row[f"{p}_max_dmean"], row[f"{p}_max_dci"] = dmean, dci
        row["mcse_bounds_max"] = float(idata.posterior.attrs["mcse_bounds_max"])
        rows.append(row)
    save_json({"sets": list(sets), "fine_grid": FINE, "targets": TOL, "mcse_target": PRECISE,
               "rows": rows, "default": list(PsychometricConfig().grid_steps)},
              REPO / "benchmarks" / "results" / "psychometric_grid_steps.json")
    print("| grid steps | wall time (s), 6 sets | max dmean thr / width | max dCI thr / width | "
          "MCSE |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {tuple(r['grid_steps'])} | {r['wall_s']:.2f} | {r['threshold_max_dmean']:.4f} / "
              f"{r['width_max_dmean']:.4f} | {r['threshold_max_dci']:.4f} / "
              f"{r['width_max_dci']:.4f} | {r['mcse_bounds_max']:.4f} |")
    print(f"\nPsychometricConfig's default: {list(PsychometricConfig().grid_steps)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
