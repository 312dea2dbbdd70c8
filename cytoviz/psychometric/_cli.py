"""``cytoviz psychometric``: fit psychometric functions from a CSV, write a summary and figures.

The CSV is one of three layouts (detected from its columns):

- binned rows ``x, k, n`` (with an optional ``observer`` column);
- raw cases ``confidence, correct`` (optional ``observer``), binned here;
- a tidy expert-panel table ``image, expert, years, label, confidence`` (per-expert curves
  against the consensus expert confidence on the common images).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from cytoviz._io import atomic_path, save_csv
from cytoviz.psychometric.binning import as_psychometric_data, bin_confidence
from cytoviz.psychometric.experts import expert_psychometric_data, read_expert_table
from cytoviz.psychometric.model import PsychometricConfig, fit_observers
from cytoviz.psychometric.summary import goodness_of_fit, summarize, threshold_at

# cytoviz.pl (plotly) is imported in the handler, so that ``cytoviz --help`` stays fast.

__all__ = ["register"]

#: The defaults of the sampler flags (``None`` on the command line keeps them).
_DEFAULTS = PsychometricConfig()


def register(subparsers: Any) -> None:
    """Add the ``psychometric`` subcommand."""
    p = subparsers.add_parser(
        "psychometric",
        help="fit Bayesian psychometric functions (psignifit 4 conventions) from a CSV",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--csv", required=True, type=Path, help="input CSV (see layouts above)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--bins", type=int, default=12, help="bins for raw or expert data (12)")
    p.add_argument("--scheme", default="equal-width", choices=["equal-width", "equal-count"])
    p.add_argument("--pc", type=float, default=0.8,
                   help="percent correct (unscaled) for the threshold table (0.8)")
    p.add_argument("--no-eta", action="store_true", help="binomial likelihood (no overdispersion)")
    p.add_argument("--gamma", type=float, default=None,
                   help=f"guess rate 1/K ({_DEFAULTS.gamma})")
    p.add_argument("--draws", type=int, default=None,
                   help=f"NUTS draws per chain ({_DEFAULTS.draws})")
    p.add_argument("--tune", type=int, default=None,
                   help=f"NUTS tuning steps per chain ({_DEFAULTS.tune})")
    p.add_argument("--chains", type=int, default=None,
                   help=f"chains, run one after another ({_DEFAULTS.chains})")
    p.add_argument("--seed", type=int, default=None, help=f"random seed ({_DEFAULTS.seed})")
    p.add_argument("--formats", default="html,png",
                   help="figure formats, comma-separated (png, svg, pdf, html)")
    p.set_defaults(func=run)


def read_observers(path: Path, *, bins: int, scheme: str) -> dict[str, Any]:
    """Read the CSV and return observer -> (x, k, n) rows."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such CSV")
    df = pd.read_csv(path)
    cols = set(df.columns)
    if {"image", "expert", "label", "confidence"} <= cols:
        return expert_psychometric_data(read_expert_table(path), axis="consensus",
                                        n_bins=bins, scheme=scheme)
    groups = df.groupby("observer", sort=False) if "observer" in cols else [("data", df)]
    if {"x", "k", "n"} <= cols:
        return {str(name): as_psychometric_data(g[["x", "k", "n"]], name=str(name))
                for name, g in groups}
    if {"confidence", "correct"} <= cols:
        return {str(name): bin_confidence(g["confidence"], g["correct"], n_bins=bins,
                                          scheme=scheme, name=str(name))
                for name, g in groups}
    raise ValueError(
        f"{path}: unrecognised columns {sorted(cols)}; expected x,k,n[,observer] or "
        "confidence,correct[,observer] or image,expert,years,label,confidence"
    )


def run(args: argparse.Namespace) -> int:
    """Fit, then write summary.csv, thresholds.csv, goodness_of_fit.csv and figures."""
    from cytoviz.pl._style import save_figure
    from cytoviz.pl.psychometric import psychometric_curve, psychometric_forest

    if not 0 < args.pc < 1:
        raise ValueError(f"--pc must be a proportion in (0, 1), got {args.pc}")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    data = read_observers(args.csv, bins=args.bins, scheme=args.scheme)
    flags = {"gamma": args.gamma, "draws": args.draws, "tune": args.tune,
             "chains": args.chains, "seed": args.seed}
    changes = {name: value for name, value in flags.items() if value is not None}
    if args.no_eta:
        changes["eta"] = False
    config = _DEFAULTS.replace(**changes)
    idata = fit_observers(data, config)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "summary.csv": summarize(idata),
        "thresholds.csv": threshold_at(idata, args.pc),
        "goodness_of_fit.csv": goodness_of_fit(idata),
    }
    for name, table in tables.items():
        save_csv(table, out / name)
    with atomic_path(out / "fit.nc") as tmp:
        idata.to_netcdf(str(tmp))
    figures = out / "figures"
    for obs in data:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in obs)
        save_figure(psychometric_curve(idata, obs), figures / f"curve_{safe}", formats=formats,
                    width="single")
    for param in ("threshold", "width"):
        save_figure(psychometric_forest(tables["summary.csv"], param), figures / f"forest_{param}",
                    formats=formats, width="single")
    print(tables["summary.csv"].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {len(tables)} tables, fit.nc and figures to {out}")
    return 0
