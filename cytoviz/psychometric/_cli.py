"""``cytoviz psychometric``: fit psychometric functions from a CSV, write a summary and figures.

The CSV is one of three layouts (detected from its columns):

- binned rows ``x, k, n`` (with an optional ``observer`` column);
- raw cases ``confidence, correct`` (optional ``observer``), binned here;
- a tidy expert-panel table ``image, expert, years, label, confidence`` (per-expert curves
  against the consensus expert confidence on the common images).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cytoviz._io import atomic_path, save_csv, writable_folder
from cytoviz.psychometric.binning import as_psychometric_data, bin_confidence
from cytoviz.psychometric.experts import expert_psychometric_data, read_expert_table
from cytoviz.psychometric.model import ENGINES, PsychometricConfig, fit_observers
from cytoviz.psychometric.summary import (
    goodness_of_fit,
    summarize,
    threshold_at,
    threshold_parameter,
)

# cytoviz.pl (plotly) is imported in the handler, so that ``cytoviz --help`` stays fast.

__all__ = ["register"]

#: The defaults of the sampler flags (``None`` on the command line keeps them).
_DEFAULTS = PsychometricConfig()
#: The figure formats of ``--formats`` (those of :func:`cytoviz.pl.save_figure`).
FIGURE_FORMATS = ("png", "svg", "pdf", "html")


def _target(text: str) -> float | str:
    """``--mcse-target``: a positive number or ``none``."""
    if text.strip().lower() == "none":
        return "none"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'none', got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'none', got {text!r}")
    return value


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
                   help="percent correct (unscaled) of the threshold table, of the summary's "
                   "threshold_<pc> rows and of their forest figure (0.8)")
    p.add_argument("--no-eta", action="store_true", help="binomial likelihood (no overdispersion)")
    p.add_argument("--gamma", type=float, default=None,
                   help=f"guess rate 1/K ({_DEFAULTS.gamma})")
    p.add_argument("--draws", type=int, default=None,
                   help=f"draws per chain ({_DEFAULTS.draws})")
    p.add_argument("--tune", type=int, default=None,
                   help=f"NUTS tuning steps per chain ({_DEFAULTS.tune})")
    p.add_argument("--chains", type=int, default=None,
                   help=f"chains, run one after another ({_DEFAULTS.chains})")
    p.add_argument("--seed", type=int, default=None, help=f"random seed ({_DEFAULTS.seed})")
    p.add_argument("--mcse-target", type=_target, default=None,
                   help="largest Monte-Carlo error of the interval bounds; more draws are taken "
                        f"until it is met, 'none' keeps --draws ({_DEFAULTS.mcse_target})")
    p.add_argument("--engine", default=None, choices=ENGINES,
                   help="posterior engine: PyMC's NUTS sampler, or psignifit's grid (no "
                        f"compilation, no tuning) ({_DEFAULTS.engine})")
    p.add_argument("--formats", default="html,png",
                   help="figure formats, comma-separated (png, svg, pdf, html)")
    p.set_defaults(func=run)


def read_observers(path: Path, *, bins: int, scheme: str) -> dict[str, Any]:
    """Read the CSV and return observer -> (x, k, n) rows.

    Parameters
    ----------
    path
        The CSV (one of the three layouts of the module docstring).
    bins, scheme
        Binning of raw cases and expert tables (see :func:`bin_confidence`).

    Returns
    -------
    dict of str to PsychometricData
        One entry per observer, in the order of the file.

    Raises
    ------
    ValueError
        For an empty or unreadable CSV, unrecognised columns, or a value that is not a number
        (or out of range); the message names the file, the line (the header is line 1) and the
        column.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such CSV")
    df, lines = _read_text_table(path)
    cols = set(df.columns)
    if {"image", "expert", "label", "confidence"} <= cols:
        with _naming_file(path):
            return expert_psychometric_data(read_expert_table(path), axis="consensus",
                                            n_bins=bins, scheme=scheme)
    observers = (df["observer"].str.strip() if "observer" in cols
                 else pd.Series(["data"] * len(df)))
    if {"x", "k", "n"} <= cols:
        x = _numbers(df, "x", lines, path)
        k = _numbers(df, "k", lines, path, counts=True)
        n = _numbers(df, "n", lines, path, counts=True)
        over = np.flatnonzero(k > n)
        if over.size:
            i = int(over[0])
            raise ValueError(f"{path}, line {lines[i]}: k={k[i]:g} exceeds n={n[i]:g}; k counts "
                             "the correct trials among n")
        frame = pd.DataFrame({"x": x, "k": k, "n": n})
        with _naming_file(path):
            return {name: as_psychometric_data(frame[(observers == name).to_numpy()], name=name)
                    for name in dict.fromkeys(observers)}
    if {"confidence", "correct"} <= cols:
        conf = _numbers(df, "confidence", lines, path, unit=True)
        correct = _booleans(df, "correct", lines, path)
        with _naming_file(path):
            return {name: bin_confidence(conf[sel], correct[sel], n_bins=bins, scheme=scheme,
                                         name=name)
                    for name in dict.fromkeys(observers)
                    for sel in [(observers == name).to_numpy()]}
    raise ValueError(
        f"{path}: unrecognised columns {sorted(cols)}; expected x,k,n[,observer] or "
        "confidence,correct[,observer] or image,expert,years,label,confidence"
    )


def _read_text_table(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The CSV as text cells, and the file line of each row (the header is line 1)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, skipinitialspace=True)
            rows, lines = [], []
            start = 1
            for row in reader:
                if any(cell.strip() for cell in row):  # blank lines are skipped
                    rows.append(row)
                    lines.append(start)
                start = reader.line_num + 1
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable CSV file ({exc})") from exc
    if not rows:
        raise ValueError(f"{path}: the CSV file is empty; it needs a header row (x,k,n or "
                         "confidence,correct or image,expert,years,label,confidence) and rows")
    header = [c.strip() for c in rows[0]]
    if len(rows) == 1:
        raise ValueError(f"{path}: the CSV file has a header but no rows")
    for row, line in zip(rows[1:], lines[1:], strict=True):
        if len(row) > len(header):
            raise ValueError(f"{path}, line {line}: {len(row)} fields where the header has "
                             f"{len(header)} ({', '.join(header)})")
    body = [row + [""] * (len(header) - len(row)) for row in rows[1:]]
    return pd.DataFrame(body, columns=header, dtype=str), np.asarray(lines[1:], dtype=np.int64)


def _numbers(df: pd.DataFrame, col: str, lines: np.ndarray, path: Path, *,
             counts: bool = False, unit: bool = False) -> np.ndarray:
    """A column as finite numbers (whole and >= 0 for ``counts``, in [0, 1] for ``unit``)."""
    out = np.empty(len(df))
    for i, text in enumerate(df[col]):
        where = f"{path}, line {lines[i]}, column {col!r}"
        try:
            value = float(text.strip())
        except ValueError:
            raise ValueError(f"{where}: {text.strip()!r} is not a number"
                             if text.strip() else f"{where}: empty value") from None
        if not math.isfinite(value):
            raise ValueError(f"{where}: {text.strip()!r} is not a finite number")
        if counts and (value < 0 or value != round(value)):
            raise ValueError(f"{where}: {text.strip()!r} is not a count (a whole number >= 0)")
        if unit and not 0 <= value <= 1:
            raise ValueError(f"{where}: {value:g} lies outside [0, 1]; rescale the confidence "
                             "to [0, 1]")
        out[i] = value
    return out


#: The words read as correct / incorrect (any case).
_TRUE, _FALSE = {"true", "1", "1.0", "yes"}, {"false", "0", "0.0", "no"}


def _booleans(df: pd.DataFrame, col: str, lines: np.ndarray, path: Path) -> np.ndarray:
    """A column of True/False, 1/0 or yes/no as booleans."""
    out = np.empty(len(df), dtype=bool)
    for i, text in enumerate(df[col]):
        word = text.strip().lower()
        if word not in _TRUE | _FALSE:
            raise ValueError(f"{path}, line {lines[i]}, column {col!r}: {text.strip()!r} is not "
                             "True/False, 1/0 or yes/no")
        out[i] = word in _TRUE
    return out


@contextlib.contextmanager
def _naming_file(path: Path) -> Iterator[None]:
    """Prefix a ValueError that does not name ``path`` with it."""
    try:
        yield
    except ValueError as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path}: {exc}") from exc


def _formats(text: str) -> list[str]:
    """The ``--formats`` list, checked (and the Chromium that static formats need)."""
    from cytoviz.pl._style import _find_chromium

    formats = [f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FIGURE_FORMATS]
    if unknown or not formats:
        raise ValueError(f"--formats: unknown figure format(s) {unknown or [text]}; choose from "
                         f"{', '.join(FIGURE_FORMATS)} (comma-separated)")
    if any(f != "html" for f in formats) and _find_chromium() is None \
            and not os.environ.get("BROWSER_PATH"):
        raise RuntimeError("--formats: static figure export (png, svg, pdf) needs Chromium: run "
                           "`bash scripts/setup.sh` or set BROWSER_PATH, or pass --formats html")
    return formats


def run(args: argparse.Namespace) -> int:
    """Fit, then write summary.csv, thresholds.csv, goodness_of_fit.csv and figures."""
    from cytoviz.pl._style import save_figure
    from cytoviz.pl.psychometric import psychometric_curve, psychometric_forest

    # every argument is checked before the fit, so that a bad one costs no sampling time
    if not 0 < args.pc < 1:
        raise ValueError(f"--pc must be a proportion in (0, 1), got {args.pc}")
    if args.bins < 2:
        raise ValueError(f"--bins must be at least 2, got {args.bins}")
    formats = _formats(args.formats)
    data = read_observers(args.csv, bins=args.bins, scheme=args.scheme)
    flags = {"gamma": args.gamma, "draws": args.draws, "tune": args.tune,
             "chains": args.chains, "seed": args.seed, "engine": args.engine}
    changes = {name: value for name, value in flags.items() if value is not None}
    if args.mcse_target is not None:
        changes["mcse_target"] = None if args.mcse_target == "none" else args.mcse_target
    if "draws" in changes and changes["draws"] > _DEFAULTS.max_draws:
        changes["max_draws"] = changes["draws"]
    if args.no_eta:
        changes["eta"] = False
    config = _DEFAULTS.replace(**changes)
    out = writable_folder(args.out)
    idata = fit_observers(data, config)
    tables = {
        "summary.csv": summarize(idata, percent_correct=(args.pc,)),
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
    for param in ("threshold", threshold_parameter(args.pc), "width"):
        save_figure(psychometric_forest(tables["summary.csv"], param), figures / f"forest_{param}",
                    formats=formats, width="single")
    print(tables["summary.csv"].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {len(tables)} tables, fit.nc and figures to {out}")
    return 0
