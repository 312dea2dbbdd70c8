"""Tables of the protocols: summaries, Table 2 (text and LaTeX), the shipped result tables."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cytoviz._io import load_json, sha256_files
from cytoviz._paths import default_model_dir, results_dir

__all__ = [
    "MODEL_LABELS", "domain_shift_latex", "domain_shift_table", "stale_reason", "stored_results",
    "summarise",
]

#: The file beside the tables that records, per table, the shipped model it was made with.
PROVENANCE_FILE = "provenance.json"

#: Display names of the models in tables and figures.
MODEL_LABELS: dict[str, str] = {"diffusion": "CytoDiffusion", "baseline": "CNN baseline"}


def summarise(table: pd.DataFrame, by: Sequence[str], metric: str = "balanced_accuracy"
              ) -> pd.DataFrame:
    """Mean, standard deviation (ddof 1; 0 for one value) and count of ``metric`` per group.

    Parameters
    ----------
    table
        A protocol's table.
    by
        Columns to group by.
    metric
        The column to summarise.

    Returns
    -------
    pandas.DataFrame
        The ``by`` columns and ``mean``, ``sd``, ``n``.
    """
    missing = [c for c in (*by, metric) if c not in table]
    if missing:
        raise ValueError(f"the table lacks column(s) {missing}")
    g = table.groupby(list(by), sort=False)[metric]
    out = g.agg(mean="mean", sd=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                n="count").reset_index()
    return out


def domain_shift_table(
    table: pd.DataFrame, *, metric: str = "balanced_accuracy", percent: bool = True,
    decimals: int = 2,
) -> pd.DataFrame:
    """Table 2: ``mean ± sd`` of the metric per model (rows) and test set (columns).

    Parameters
    ----------
    table
        Output of :func:`domain_shift`.
    metric
        ``"balanced_accuracy"`` (the paper's) or ``"accuracy"``.
    percent
        Show percentages (as the paper does).
    decimals
        Decimal places.

    Returns
    -------
    pandas.DataFrame
        Strings ``"98.39 ± 0.34"`` indexed by model display name, one column per test set, a
        column ``runs`` (number of seeds) and, where a pretrained model stood in for a seed, a
        column ``note`` naming it; ``attrs["budget"]`` names the budget. Call
        ``.to_latex()`` for the LaTeX table.
    """
    s = summarise(table, ["model", "test_set"], metric)
    k = 100.0 if percent else 1.0
    s["cell"] = [f"{a * k:.{decimals}f} ± {b * k:.{decimals}f}" for a, b in zip(s["mean"], s["sd"],
                                                                                 strict=True)]
    wide = s.pivot(index="model", columns="test_set", values="cell")
    order = [t for t in dict.fromkeys(table["test_set"]) if t in wide.columns]
    wide = wide[order]
    wide["runs"] = s.groupby("model")["n"].max()
    if "source" in table:
        notes = {}
        for m, g in table.groupby("model", sort=False):
            pre = sorted({str(v) for v in g["source"] if str(v).startswith("pretrained")})
            if pre:
                seeds = sorted(set(g.loc[g["source"].astype(str).str.startswith("pretrained"),
                                         "seed"]))
                notes[m] = f"seed {', '.join(map(str, seeds))}: {'; '.join(pre)}"
        if notes:
            wide["note"] = [notes.get(m, "") for m in wide.index]
    wide.index = [MODEL_LABELS.get(m, m) for m in wide.index]
    wide.index.name = "model"
    wide.columns.name = None
    wide.attrs["budget"] = table.attrs.get("budget", table["budget"].iloc[0] if "budget" in table
                                           else None)
    wide.attrs["metric"] = metric
    return wide


def domain_shift_latex(wide: pd.DataFrame, *, caption: str | None = None) -> str:
    """LaTeX source of a :func:`domain_shift_table` (``±`` as ``$\\pm$``, ``%`` escaped).

    Parameters
    ----------
    wide
        Output of :func:`domain_shift_table`.
    caption
        The table caption; defaults to the metric and the budget of the table.

    Returns
    -------
    str
    """
    if caption is None:
        metric = str(wide.attrs.get("metric", "balanced_accuracy")).replace("_", " ")
        caption = (f"{metric.capitalize()} (%), mean ± sd over seeds; evaluation budget "
                   f"{wide.attrs.get('budget')}.")
    text = wide.to_latex(caption=caption.replace("%", r"\%"))
    return text.replace("±", r"$\pm$")


def stored_results(name: str, *, folder: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """A measured protocol table shipped in ``cytoviz/_shipped/results/`` (no training, no classification).

    The tables come from ``bash scripts/run_evaluations.sh`` (the reduced CPU budget; each
    table's ``budget`` column and ``NAME_budget.json`` record the settings) and from the
    generation protocols (``cytoviz evaluate class-agreement | augmentation | prototypes``).

    Parameters
    ----------
    name
        ``"anomaly"``, ``"domain_shift"``, ``"low_data"``, ``"few_shot"``,
        ``"generation_agreement"``, ``"augmentation"`` or ``"prototypes"`` (any CSV stem in
        the folder).
    folder
        Another folder of tables (default :func:`cytoviz._paths.results_dir`: ``cytoviz/_shipped/results``
        of the repository, or ``CYTOVIZ_RESULTS``).

    Returns
    -------
    pandas.DataFrame
        The table as the protocol returned it (e.g. :func:`domain_shift`'s rows), ready for
        :func:`domain_shift_table`, :func:`cytoviz.anomaly.anomaly_auc` or the ``cytoviz.pl`` functions.

    Raises
    ------
    FileNotFoundError
        When the table is missing, naming the file and the command that writes it.
    """
    root = Path(folder) if folder is not None else results_dir()
    path = root / f"{name}.csv"
    if not path.is_file():
        have = sorted(p.stem for p in root.glob("*.csv")) if root.is_dir() else []
        raise FileNotFoundError(
            f"{path} is missing (tables there: {have or 'none'}); produce the evaluation tables "
            "with `bash scripts/run_evaluations.sh`"
        )
    frame = pd.read_csv(path)
    if "colour_transfer" in frame and frame["colour_transfer"].dtype != bool:
        flags = {"true": True, "false": False, "1": True, "0": False}
        frame["colour_transfer"] = [flags[str(v).strip().lower()] for v in frame["colour_transfer"]]
    return frame


def stale_reason(name: str, *, folder: str | os.PathLike[str] | None = None,
                 model: str | os.PathLike[str] | None = None) -> str | None:
    """Why a stored table does not belong to the shipped model, or ``None`` when it does.

    A table is current when ``provenance.json`` beside it records, under the table's name, a
    ``diffusion_model_sha256`` equal to the SHA-256 of the shipped model's files
    (:func:`cytoviz._io.sha256_files`). Tables of protocols that train their own models record
    the shipped model of the recipe they were run with, so a retrained shipped model makes
    every table stale until it is regenerated (``bash scripts/run_evaluations.sh``, then
    ``scripts/collect_results.py``).

    Parameters
    ----------
    name
        The table's stem (``"anomaly"``, ``"domain_shift"``, ...).
    folder
        The folder of tables (default :func:`cytoviz._paths.results_dir`).
    model
        The model folder to compare with (default :func:`cytoviz._paths.default_model_dir`).

    Returns
    -------
    str or None
        A sentence naming the table and what differs, or ``None`` when the fingerprints match.
    """
    root = Path(folder) if folder is not None else results_dir()
    model = Path(model) if model is not None else default_model_dir()
    path = root / PROVENANCE_FILE
    prov = load_json(path) if path.is_file() else {}
    entry = prov.get(name)
    recorded = entry.get("diffusion_model_sha256") if isinstance(entry, dict) else None
    table = root / f"{name}.csv"
    if not recorded:
        return f"{table} records no fingerprint of the shipped model it was made with ({path})"
    current = sha256_files(model)
    if recorded != current:
        return (f"{table} was made with another model (recorded SHA-256 {recorded[:12]}..., "
                f"the shipped model at {model} is {current[:12]}...)")
    return None
