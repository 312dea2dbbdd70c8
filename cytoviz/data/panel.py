"""A simulated expert panel following the CytoData labelling protocol (METHOD.md section 6).

Six experts with 34, 25, 15, 12, 6 and 5 years of experience each label a share of the images,
200 of them common to all. Every label carries a confidence word (High, Moderate, Low, No). The
simulation uses the known ground truth of synthetic images: an expert perceives an image's blend
weight (``meta['mix_weight']``) with noise that shrinks with skill, labels the blend class
(``meta['mix_class']``) when the perceived weight passes one half, and now and then lapses to a
confusable class. Confidence falls with the perceived ambiguity. Mistakes therefore go mostly to
the blend class of ambiguous images, and more experienced experts are more accurate.

The panel table is tidy, one row per (image, expert) label, with columns ``image``, ``expert``,
``years``, ``label``, ``confidence`` (and ``true_label``, ``ambiguity``, ``common`` from the
simulation). :func:`consensus` turns it into one row per image (majority vote, ties to the most
experienced expert; confidence mapped to numbers and averaged) and :func:`expert_correctness`
scores each label against the consensus.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cytoviz._config import Config
from cytoviz._io import save_csv
from cytoviz.classes import CANONICAL_CLASSES, UnknownClassError, normalise_class_name
from cytoviz.data._dataset import CellDataset
from cytoviz.data.synth import NEIGHBOURS

__all__ = [
    "CONFIDENCE_LEVELS",
    "CONFIDENCE_VALUES",
    "EXPERTS",
    "PANEL_COLUMNS",
    "PanelConfig",
    "common_images",
    "consensus",
    "expert_correctness",
    "image_ambiguity",
    "load_panel",
    "save_panel",
    "simulate_panel",
    "validate_panel",
]

#: The panel: expert id and years of experience (CytoData).
EXPERTS: tuple[tuple[str, int], ...] = (
    ("E1", 34), ("E2", 25), ("E3", 15), ("E4", 12), ("E5", 6), ("E6", 5),
)
#: Confidence words, most to least confident.
CONFIDENCE_LEVELS: tuple[str, ...] = ("High", "Moderate", "Low", "No")
#: Numeric value of each confidence word (METHOD.md section 6).
CONFIDENCE_VALUES: dict[str, float] = {"High": 1.0, "Moderate": 2 / 3, "Low": 1 / 3, "No": 0.0}
#: Columns every panel table must have.
PANEL_COLUMNS: tuple[str, ...] = ("image", "expert", "years", "label", "confidence")


@dataclasses.dataclass(frozen=True)
class PanelConfig(Config):
    """How the simulated experts perceive, err and state confidence (calibrated, see Notes).

    Parameters
    ----------
    skill_years
        Experience scale of the skill curve ``1 - exp(-years / skill_years)`` (34 years: 0.94,
        5 years: 0.34 at 12).
    noise_base, noise_skill
        Standard deviation of an expert's perceived blend weight:
        ``noise_base + noise_skill * (1 - skill)``.
    radius_weight
        Effective blend weight of a clear-cut cell whose radius lies at a neighbouring class's
        typical radius (linear in the radius between the two class means; the cell's other
        features stay typical of its class, so this is well below one half).
    band_weight
        Effective blend weight towards immature granulocytes of a neutrophil with a band nucleus.
    lapse_base, lapse_skill
        Probability of a lapse to a confusable class, ``lapse_base + lapse_skill * (1 - skill)``.
    clarity_noise_base, clarity_noise_skill
        Standard deviation of an expert's confidence noise around the clarity they perceive.
    bias_sd
        Spread of the experts' personal confidence offsets (some state High more readily).
    cuts
        Clarity cut points between No | Low | Moderate | High.
    """

    skill_years: float = 12.0
    noise_base: float = 0.13
    noise_skill: float = 0.2
    radius_weight: float = 0.34
    band_weight: float = 0.3
    lapse_base: float = 0.05
    lapse_skill: float = 0.12
    clarity_noise_base: float = 0.05
    clarity_noise_skill: float = 0.15
    bias_sd: float = 0.05
    cuts: tuple[float, float, float] = (-0.15, 0.15, 0.46)

    def validate(self) -> None:
        for name in ("skill_years", "noise_base", "clarity_noise_base"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("noise_skill", "clarity_noise_skill", "bias_sd"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("radius_weight", "band_weight"):
            if not 0.0 <= getattr(self, name) <= 0.5:
                raise ValueError(f"{name} must lie in [0, 0.5], got {getattr(self, name)}")
        if not 0.0 <= self.lapse_base <= self.lapse_base + self.lapse_skill <= 1.0:
            raise ValueError("lapse_base and lapse_base + lapse_skill must lie in [0, 1], got "
                             f"{self.lapse_base} and {self.lapse_base + self.lapse_skill}")
        if len(self.cuts) != 3 or list(self.cuts) != sorted(self.cuts):
            raise ValueError(f"cuts must be three increasing clarity values, got {self.cuts}")


def _skill(years: float, scale: float = 12.0) -> float:
    """Skill in (0, 1) rising with experience (at ``scale=12``: 34 y 0.94, 5 y 0.34)."""
    return float(1.0 - np.exp(-years / scale))


def _class_radius() -> dict[str, float]:
    """Mean cell radius of each class in the synthetic generator (fraction of the image width)."""
    from cytoviz.data._render import _SPECS

    return {c: 0.5 * (s["cell_r"][0] + s["cell_r"][1]) for c, s in _SPECS.items()}


def image_ambiguity(dataset: CellDataset,
                    config: PanelConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The class each image could be mistaken for, and how far it leans towards it.

    Every quantity comes from what is drawn in the image (its ``meta``): a blend leans
    ``mix_weight`` towards ``mix_class``; a clear-cut cell leans towards the neighbouring
    class whose mean radius its own radius approaches (up to ``config.radius_weight``), and
    a band neutrophil leans ``config.band_weight`` towards immature granulocytes. A data set
    without these columns counts as clear-cut.

    Parameters
    ----------
    dataset
        Images with synthetic ``meta`` (see :func:`cytoviz.data.synthesize`).
    config
        The panel settings (defaults to ``PanelConfig()``).

    Returns
    -------
    partner : numpy.ndarray of str
        The class each image leans towards ("" where none).
    weight : numpy.ndarray of float
        The lean in [0, 0.5] (0.5: an even blend).
    """
    config = config if config is not None else PanelConfig()
    n = len(dataset)
    names = np.asarray(dataset.class_names)
    true = names[dataset.labels]
    meta = dataset.meta if dataset.meta is not None else pd.DataFrame(index=range(n))
    partner = (meta["mix_class"].fillna("").astype(str).to_numpy().astype(object)
               if "mix_class" in meta else np.full(n, "", dtype=object))
    weight = (meta["mix_weight"].astype(float).to_numpy().copy() if "mix_weight" in meta
              else np.zeros(n))
    bad = sorted({c for c in partner if c and c not in dataset.class_names})
    if bad:
        raise ValueError(f"meta['mix_class'] has unknown classes {bad}; expected {list(names)}")
    clear = partner == ""
    if "cell_radius" in meta and config.radius_weight > 0:
        from cytoviz.data.domains import get_domain

        mean_r = _class_radius()
        domains = meta["domain"].astype(str) if "domain" in meta else pd.Series(["reference"] * n)
        scale = {}
        for d in domains.unique():
            try:
                scale[d] = get_domain(d).scale
            except (KeyError, ValueError):
                scale[d] = 1.0
        radius = meta["cell_radius"].astype(float).to_numpy() / domains.map(scale).to_numpy()
        for i in np.flatnonzero(clear):
            own = mean_r.get(true[i])
            if own is None or not np.isfinite(radius[i]):
                continue
            for other in NEIGHBOURS.get(true[i], ()):
                if other not in dataset.class_names or mean_r.get(other, own) == own:
                    continue
                t = float(np.clip((radius[i] - own) / (mean_r[other] - own), 0.0, 1.0))
                if config.radius_weight * t > weight[i]:
                    partner[i], weight[i] = other, config.radius_weight * t
    if "nucleus_kind" in meta and "immature granulocyte" in dataset.class_names:
        band = clear & (true == "neutrophil") & (meta["nucleus_kind"].astype(str).to_numpy() == "band")
        lean = band & (config.band_weight > weight)
        partner[lean], weight[lean] = "immature granulocyte", config.band_weight
    return partner.astype(str), np.clip(weight, 0.0, 0.5)


def simulate_panel(
    dataset: CellDataset,
    *,
    n_common: int = 200,
    per_expert: int | None = None,
    experts: Sequence[tuple[str, int]] = EXPERTS,
    seed: int = 0,
    config: PanelConfig | None = None,
) -> pd.DataFrame:
    """Simulate the expert labels of a data set with known ambiguity.

    Parameters
    ----------
    dataset
        Images with ``meta`` columns ``mix_class`` and ``mix_weight`` (as from
        :func:`cytoviz.data.synthesize`; ``cell_radius`` and ``nucleus_kind`` are used too,
        see :func:`image_ambiguity`); without them every image counts as clear-cut.
    n_common
        Images labelled by every expert, drawn at random from the whole data set.
    per_expert
        Images labelled by each expert, the common ones included; defaults to
        ``min(1000, len(dataset))`` (CytoData: 1,000).
    experts
        ``(id, years)`` pairs; defaults to :data:`EXPERTS`.
    seed
        Seed of the simulation (same seed, same table).
    config
        How experts perceive, err and state confidence (defaults to ``PanelConfig()``,
        calibrated as in the Notes).

    Returns
    -------
    pandas.DataFrame
        One row per label: ``image`` (row index into ``dataset``), ``image_id`` (``meta['id']``
        when present), ``expert``, ``years``, ``label``, ``confidence`` (word),
        ``true_label``, ``ambiguity`` (``2 * lean`` from :func:`image_ambiguity`) and
        ``common`` (labelled by all experts).

    Notes
    -----
    An expert perceives an image's lean towards its partner class with noise that shrinks
    with skill and names the partner when the perceived lean passes one half; now and then
    they lapse to a confusable class. Their confidence is the clarity they perceive plus
    personal noise and offset, cut into four words. The defaults were calibrated on the
    default synthetic validation split (seeds 0-4) against what the paper reports of
    CytoData: about 43 % of the ordered expert pairs on the common images High/High, "No"
    rare and rarely shared, accuracy against the consensus rising with experience and well
    below 100 % for every expert. ``tests/test_panel.py`` checks these on the test split.
    """
    config = config if config is not None else PanelConfig()
    n = len(dataset)
    per_expert = min(1000, n) if per_expert is None else int(per_expert)
    if not 0 < n_common <= n:
        raise ValueError(f"n_common must lie in [1, {n}] (the data set size), got {n_common}")
    if not n_common <= per_expert <= n:
        raise ValueError(
            f"per_expert must lie in [n_common={n_common}, {n}] (the data set size), got {per_expert}"
        )
    if not experts:
        raise ValueError("experts must name at least one (id, years) pair")
    rng = np.random.default_rng(seed)
    meta = dataset.meta if dataset.meta is not None else pd.DataFrame(index=range(n))
    names = np.asarray(dataset.class_names)
    true = names[dataset.labels]
    partner, lean = image_ambiguity(dataset, config)
    ids = meta["id"].astype(str).to_numpy() if "id" in meta else np.arange(n).astype(str)
    common = rng.choice(n, size=n_common, replace=False)
    rest = np.setdiff1d(np.arange(n), common)
    rows: list[pd.DataFrame] = []
    for expert, years in experts:
        skill = _skill(years, config.skill_years)
        bias = rng.normal(0.0, config.bias_sd) if config.bias_sd > 0 else 0.0
        own = rng.choice(rest, size=per_expert - n_common, replace=False)
        idx = np.sort(np.concatenate([common, own]))
        w = lean[idx]
        # perceived lean; the label flips to the partner class above one half
        w_seen = w + rng.normal(0.0, config.noise_base + config.noise_skill * (1.0 - skill),
                                idx.size)
        flip = (partner[idx] != "") & (w_seen > 0.5)
        label = np.where(flip, partner[idx], true[idx]).astype(object)
        # lapses go to a confusable class
        lapse = rng.random(idx.size) < config.lapse_base + config.lapse_skill * (1.0 - skill)
        for j in np.flatnonzero(lapse):
            options = [c for c in NEIGHBOURS.get(true[idx[j]], ()) if c in dataset.class_names]
            options = options or [c for c in names if c != true[idx[j]]]
            label[j] = options[int(rng.integers(len(options)))]
        # confidence: clarity as seen by the expert, plus personal noise and offset
        seen = np.clip(w_seen, 0.0, 1.0)
        clarity = (1.0 - 2.0 * np.minimum(seen, 1.0 - seen) + bias + rng.normal(
            0.0, config.clarity_noise_base + config.clarity_noise_skill * (1.0 - skill), idx.size))
        clarity = np.where(lapse, clarity - rng.uniform(0.1, 0.5, idx.size), clarity)
        level = np.digitize(clarity, list(config.cuts))  # 0: No ... 3: High
        confidence = np.asarray(CONFIDENCE_LEVELS[::-1], dtype=object)[level]
        rows.append(pd.DataFrame({
            "image": idx,
            "image_id": ids[idx],
            "expert": expert,
            "years": int(years),
            "label": label.astype(str),
            "confidence": confidence.astype(str),
            "true_label": true[idx],
            "ambiguity": 2.0 * w,
            "common": np.isin(idx, common),
        }))
    table = pd.concat(rows, ignore_index=True)
    return table.sort_values(["image", "years"], ascending=[True, False], kind="stable").reset_index(
        drop=True
    )


def _line(row: int) -> str:
    """Where data row ``row`` (0-based) is: its line in a CSV with one header line."""
    return f"data row {row + 1}, line {row + 2} of a CSV with a header line"


def validate_panel(table: pd.DataFrame) -> pd.DataFrame:
    """Check a panel table; return a copy with confidence words normalised (``"high"`` -> ``"High"``).

    Raises
    ------
    ValueError
        Naming missing columns, unknown confidence words, or experts with two different
        experience values.
    """
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"the panel table must be a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in PANEL_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"panel table lacks column(s) {missing}; it needs {list(PANEL_COLUMNS)} "
            f"(has {list(table.columns)})"
        )
    out = table.copy()
    canon = {w.lower(): w for w in CONFIDENCE_LEVELS}
    words = out["confidence"].astype(str).str.strip().str.lower()
    bad = ~words.isin(canon).to_numpy()
    unknown = sorted(set(out["confidence"].astype(str)[bad]))
    if unknown:
        raise ValueError(
            f"unknown confidence word(s) {unknown} in column 'confidence' (first at "
            f"{_line(int(np.flatnonzero(bad)[0]))}); use one of {list(CONFIDENCE_LEVELS)}"
        )
    out["confidence"] = words.map(canon)
    if out[list(PANEL_COLUMNS)].isna().any().any():
        cols = [c for c in PANEL_COLUMNS if out[c].isna().any()]
        first = int(np.flatnonzero(out[cols[0]].isna().to_numpy())[0])
        raise ValueError(f"panel table has missing values in column(s) {cols} (first in "
                         f"'{cols[0]}' at {_line(first)})")
    years = out.groupby("expert")["years"].nunique()
    if (years > 1).any():
        raise ValueError(
            f"expert(s) {sorted(years.index[years > 1])} have more than one 'years' value"
        )
    dup = out.duplicated(["image", "expert"])
    if dup.any():
        first = out.loc[dup, ["image", "expert"]].iloc[0].tolist()
        raise ValueError(
            f"panel table has {int(dup.sum())} duplicate (image, expert) rows, e.g. {first}"
        )
    return out


def consensus(table: pd.DataFrame) -> pd.DataFrame:
    """One consensus row per image: majority vote, ties to the most experienced expert.

    Parameters
    ----------
    table
        A panel table (see :func:`validate_panel`).

    Returns
    -------
    pandas.DataFrame
        Sorted by ``image``: ``image``, ``label`` (consensus), ``confidence`` (mean over the
        image's labellers of High=1, Moderate=2/3, Low=1/3, No=0), ``n_labellers``,
        ``agreement`` (share of labellers who chose the consensus label), ``tie`` (whether
        the vote was tied) and ``true_label`` when the table has it.

    Notes
    -----
    On a tie, the labels in the tie are compared by their most experienced voter; the label
    of the most experienced of those voters wins (METHOD.md section 6).
    """
    table = validate_panel(table)
    table = table.assign(_conf=table["confidence"].map(CONFIDENCE_VALUES).astype(float))
    votes = table.groupby(["image", "label"], sort=True).agg(
        n=("expert", "size"), top_years=("years", "max")
    ).reset_index()
    votes["max_n"] = votes.groupby("image")["n"].transform("max")
    tied = votes[votes["n"] == votes["max_n"]]
    n_tied = tied.groupby("image")["label"].transform("size")
    # among the tied labels the one whose most experienced voter is the most experienced wins
    winner = tied.sort_values(["image", "top_years", "label"], ascending=[True, False, True])
    winner = winner.assign(tie=n_tied.loc[winner.index] > 1).drop_duplicates("image")
    per_image = table.groupby("image", sort=True).agg(
        confidence=("_conf", "mean"), n_labellers=("expert", "size")
    )
    out = winner.set_index("image")[["label", "n", "tie"]].join(per_image)
    out["agreement"] = out["n"] / out["n_labellers"]
    out = out.drop(columns="n").reset_index()
    cols = ["image", "label", "confidence", "n_labellers", "agreement", "tie"]
    if "true_label" in table.columns:
        truth = table.groupby("image", sort=True)["true_label"].first()
        out["true_label"] = truth.loc[out["image"]].to_numpy()
        cols.append("true_label")
    return out[cols].reset_index(drop=True)


def expert_correctness(table: pd.DataFrame, consensus_table: pd.DataFrame | None = None,
                       *, common_only: bool = False) -> pd.DataFrame:
    """Whether each expert's label agrees with the consensus label of the image.

    Parameters
    ----------
    table
        The panel table.
    consensus_table
        Output of :func:`consensus` (computed from ``table`` when omitted).
    common_only
        Keep only images labelled by every expert (the 200 common cases).

    Returns
    -------
    pandas.DataFrame
        One row per (image, expert): ``image``, ``expert``, ``years``, ``label``,
        ``confidence`` (word), ``confidence_value``, ``consensus_label``,
        ``consensus_confidence`` and ``correct`` (bool).
    """
    table = validate_panel(table)
    cons = consensus(table) if consensus_table is None else consensus_table
    missing = [c for c in ("image", "label", "confidence") if c not in cons.columns]
    if missing:
        raise ValueError(f"consensus table lacks column(s) {missing}; pass the output of consensus()")
    merged = table[list(PANEL_COLUMNS)].merge(
        cons[["image", "label", "confidence"]].rename(
            columns={"label": "consensus_label", "confidence": "consensus_confidence"}
        ),
        on="image", how="left", validate="many_to_one",
    )
    if merged["consensus_label"].isna().any():
        lost = sorted(merged.loc[merged["consensus_label"].isna(), "image"].unique())[:5]
        raise ValueError(f"images {lost} have no consensus row; recompute consensus(table)")
    if common_only:
        merged = merged[merged["image"].isin(common_images(table))]
    merged["confidence_value"] = merged["confidence"].map(CONFIDENCE_VALUES).astype(float)
    merged["correct"] = merged["label"] == merged["consensus_label"]
    cols = ["image", "expert", "years", "label", "confidence", "confidence_value",
            "consensus_label", "consensus_confidence", "correct"]
    return merged[cols].reset_index(drop=True)


def common_images(table: pd.DataFrame) -> np.ndarray:
    """The images labelled by every expert (the ``common`` column when the table has one)."""
    if "common" in table.columns:
        flag = table["common"].astype(str).str.lower().isin(["true", "1"])
        return np.unique(table.loc[flag, "image"].to_numpy())
    n_experts = table["expert"].nunique()
    counts = table.groupby("image")["expert"].nunique()
    return np.asarray(counts.index[counts == n_experts])


def save_panel(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a panel table as CSV (atomically) after validating it."""
    return save_csv(validate_panel(table), path)


def load_panel(path: str | os.PathLike[str], *,
               classes: Sequence[str] = CANONICAL_CLASSES) -> pd.DataFrame:
    """Read and validate a panel CSV written by :func:`save_panel` (or by hand).

    Parameters
    ----------
    path
        The CSV file (columns :data:`PANEL_COLUMNS`, optionally ``true_label``).
    classes
        The class names a label may take (aliases such as ``"NEUTROPHIL"`` or ``"ig"`` are
        mapped onto them).

    Returns
    -------
    pandas.DataFrame
        The validated table (see :func:`validate_panel`), labels as class names.

    Raises
    ------
    ValueError
        For an unreadable file, missing columns or values, unknown confidence words, or a
        label that is not a class, naming the file, and for a label its line (the header is
        line 1) and value.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such panel CSV")
    try:
        table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{path}: the panel CSV is empty; it needs the columns "
                         f"{list(PANEL_COLUMNS)}") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable panel CSV ({exc})") from exc
    try:
        table = validate_panel(table)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    for col in ("label", "true_label"):
        if col not in table.columns:
            continue
        names: list[str] = []
        for i, value in enumerate(table[col]):
            if isinstance(value, float) and np.isnan(value):
                names.append(value)
                continue
            try:
                names.append(normalise_class_name(str(value), classes=classes))
            except UnknownClassError:
                raise UnknownClassError(
                    f"{path}, line {i + 2}, column {col!r}: unknown class {value!r}; the "
                    f"classes are {list(classes)} (aliases such as 'ig' or 'NEUTROPHIL' are "
                    "accepted)"
                ) from None
        table[col] = names
    return table
