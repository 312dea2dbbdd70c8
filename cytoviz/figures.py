"""The main job: regenerate the paper's figures and tables in one command.

``cytoviz figures --out figures/`` (README command 1) rebuilds, from the shipped default model
(``cytoviz/_shipped/default_model``), the shipped baseline (``cytoviz/_shipped/default_baseline``) and the embedded
synthetic data:

=========  ====================================================================================
preview    real (``--real PATH`` or ``CYTOVIZ_PBC_EXAMPLE``, when given) vs synthetic cells
table1     in-domain accuracy / balanced accuracy, diffusion vs baseline (+ the shifted sets)
fig2       psychometric curves of the model and the six simulated experts (A-E)
fig3       anomaly-detection KDEs with ROC AUC (from ``cytoviz evaluate anomaly`` tables)
fig4       low-data curves (from ``cytoviz evaluate low-data`` tables)
table2     domain shift, mean +/- sd over seeds (from ``cytoviz evaluate domain-shift`` tables)
fig5       counterfactual heatmap, overlay and original for one cell
fig6       the K x K class-transition grid
fig8       generated cells, one row per class
=========  ====================================================================================

Figures 3, 4 and Table 2 need many trained models; on a CPU they are drawn from the protocol
tables stored under ``cytoviz/_shipped/results/`` (each table records the command and budget that produced
it), and are skipped with the command to run when those tables are missing. Everything else is
computed here. Expensive intermediate results (the classification pass, the psychometric fits)
are cached under ``OUT/cache`` so a second run only redraws.

Paths come from :mod:`cytoviz._paths` (``CYTOVIZ_RESULTS``, ``CYTOVIZ_DEFAULT_MODEL``,
``CYTOVIZ_DEFAULT_BASELINE``, ``CYTOVIZ_PBC_EXAMPLE``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cytoviz import diffusion, fast_mode
from cytoviz._config import Config
from cytoviz._io import atomic_path, save_csv, sha256_files
from cytoviz._paths import default_baseline_dir, pbc_example_dir, results_dir
from cytoviz.anomaly import anomaly_auc, certainty_kde
from cytoviz.data import pairwise_confidence, resolve_one, simulate_panel
from cytoviz.evaluation import BaselineClassifier, domain_shift_table, stale_reason, stored_results
from cytoviz.heatmaps import counterfactual_heatmaps, grid_sources
from cytoviz.psychometric import (
    CompiledModels,
    PsychometricConfig,
    bin_confidence,
    fit,
    fit_observers,
)
from cytoviz.psychometric.experts import expert_psychometric_data
from cytoviz.psychometric.summary import summarize, threshold_parameter

# cytoviz.pl (plotly) is imported in the builders: the command line imports this module for
# ``cytoviz --help``, which stays fast.

__all__ = ["FIGURES", "FiguresConfig", "make_figures"]


@dataclasses.dataclass(frozen=True)
class FiguresConfig(Config):
    """Budget of the main job.

    Parameters
    ----------
    n_per_class
        Test images per class that are classified (Table 1, Figure 2, Figures 5-6).
    max_trials, min_trials
        Classifier budget (the paper's 2000 / 20; the CPU default stops at 100 trials).
    n_common
        Images every simulated expert labels (the paper's 200).
    psych_draws, psych_tune
        PyMC draws and tuning steps per chain for the psychometric fits.
    n_generated
        Generated images per class for Figure 8.
    generate_steps
        Sampler steps for Figure 8 (the paper's 50).
    seed
        Seed of every random step.
    formats
        Figure file formats.
    fast
        A smoke-test budget (``CYTOVIZ_FAST=1``); tables say so.
    """

    n_per_class: int = 20
    max_trials: int = 100
    min_trials: int = 20
    n_common: int = 200
    psych_draws: int = 1000
    psych_tune: int = 1000
    n_generated: int = 6
    generate_steps: int = 50
    seed: int = 0
    formats: tuple[str, ...] = ("pdf", "svg", "png")
    fast: bool = False

    def validate(self) -> None:
        for name in ("n_per_class", "max_trials", "min_trials", "n_generated", "generate_steps",
                     "psych_draws", "psych_tune"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.min_trials > self.max_trials:
            raise ValueError(f"min_trials ({self.min_trials}) must not exceed max_trials ({self.max_trials})")
        if self.n_common < 10:
            raise ValueError(f"n_common must be >= 10, got {self.n_common}")

    @classmethod
    def fast_preset(cls) -> FiguresConfig:
        """A budget that checks the whole pipeline in a couple of minutes."""
        return cls(n_per_class=3, max_trials=20, min_trials=5, n_common=30, psych_draws=200,
                   psych_tune=200, n_generated=2, generate_steps=10, fast=True)


class _Context:
    """Lazily computed, cached inputs shared by the figure builders."""

    def __init__(self, out: Path, config: FiguresConfig, progress: bool, *,
                 real: Path | None = None, stale: dict[str, str] | None = None) -> None:
        self.out = out
        #: figure -> why its stored table is stale (drawn with STALE_MARK in the title)
        self.stale = dict(stale or {})
        self.cache = out / "cache"
        self.config = config
        self.progress = progress
        self.real = real
        self._memo: dict[str, Any] = {}
        # The psychometric models compiled in this run, reused by every fit of Figure 2.
        self.compiled_models = CompiledModels()

    def memo(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    # -------------------------------------------------------------- inputs
    def split(self, name: str):
        """One split of the default synthetic data, generated once and cached on disk."""

        def load():
            path = self.cache / f"split-{name}.npz"
            if path.is_file():
                return resolve_one(path)
            ds = resolve_one("synthetic", name)
            ds.save(path)
            return ds

        return self.memo(f"split-{name}", load)

    @property
    def model(self):
        return self.memo("model", diffusion.load_default_model)

    def model_sha256(self) -> str:
        """SHA-256 of the default model's files (names and contents)."""
        return self.memo("model_sha256", lambda: sha256_files(diffusion.default_model_path()))

    @property
    def baseline(self):
        def load():
            path = default_baseline_dir()
            if not (path / "model.safetensors").is_file():
                raise FileNotFoundError(
                    f"{path}: no shipped baseline; train it with "
                    "`.venv/bin/python scripts/train_default_baseline.py`"
                )
            return BaselineClassifier.load(path)

        return self.memo("baseline", load)

    def test_subset(self, split: str = "test"):
        """``n_per_class`` images of each class of a test split (first ones, deterministic)."""

        return self.memo(f"subset-{split}",
                         lambda: self.split(split).first_per_class(self.config.n_per_class))

    @property
    def result(self):
        """The classification pass over the in-domain test subset (cached on disk)."""

        def run():
            # Keyed by the model files: a retrained model is never scored with an old pass.
            key = self.model_sha256()[:12]
            path = self.cache / f"classify_test-{key}.npz"
            cfg = diffusion.ClassifyConfig(min_trials=self.config.min_trials,
                                           max_trials=self.config.max_trials,
                                           seed=self.config.seed).resolved(self.model)
            if path.is_file():
                res = diffusion.ClassificationResult.load(path)
                if res.config == cfg and len(res) == len(self.test_subset()):
                    return res
            res = diffusion.classify(self.model, self.test_subset(), config=cfg,
                                     progress=self.progress)
            for old in self.cache.glob("classify_test*.npz"):
                old.unlink()
            res.save(path)
            return res

        return self.memo("result", run)

    @property
    def panel(self):
        def run():
            ds = self.test_subset()
            n_common = min(self.config.n_common, len(ds))
            return simulate_panel(ds, n_common=n_common, per_expert=len(ds), seed=self.config.seed)

        return self.memo("panel", run)

    def psych_config(self):
        # the smoke budget keeps its few draws; the full one draws until the interval bounds'
        # Monte-Carlo error meets the config's target
        extra = {"mcse_target": None} if self.config.fast else {}
        return PsychometricConfig(draws=self.config.psych_draws, tune=self.config.psych_tune,
                                  seed=self.config.seed, **extra)


def _save(fig, out: Path, name: str, config: FiguresConfig, width: str | int | None = None) -> list[Path]:
    from cytoviz.pl import save_figure

    return save_figure(fig, out / name, formats=config.formats, width=width)


def _save_table(table, out: Path, name: str, *, note: str) -> list[Path]:
    csv, tex = out / f"{name}.csv", out / f"{name}.tex"
    save_csv(table, csv)
    with atomic_path(tex) as tmp:
        body = table.to_latex(index=False, float_format="%.2f", escape=True)
        body = body.replace("±", r"$\pm$")
        tmp.write_text(f"% {note}\n{body}")
    return [csv, tex]


# ------------------------------------------------------------------ figure builders
def _preview(ctx: _Context) -> list[Path]:
    from cytoviz import pl

    synth = ctx.split("val")
    real = None  # without real images the figure's title says so
    if ctx.real is not None:
        real = resolve_one(ctx.real, image_size=synth.image_size)
        print(f"figures: preview with {len(real)} real image(s) from {ctx.real}")
    else:
        print("figures: preview without real images (pass --real PATH or set "
              "CYTOVIZ_PBC_EXAMPLE); it shows synthetic cells only")
    fig = pl.real_vs_synthetic(real, synth, n_per_class=4)
    return _save(fig, ctx.out, "preview_real_vs_synthetic", ctx.config, width="double")


def _shifted_diffusion_rows(ctx: _Context) -> list[dict[str, Any]]:
    """Table 1's mild and strong rows of the diffusion model, from the stored domain-shift table.

    Classifying the shifted sets here would triple the main job's time, so the rows come from
    the domain-shift protocol's seed 0, which is the shipped model itself (every test image);
    only rows whose ``model_sha256`` is the model of this run are used.
    """
    folder = results_dir()
    if not (folder / "domain_shift.csv").is_file():
        return []
    t = stored_results("domain_shift", folder=folder)
    if "model_sha256" in t:
        t = t[(t["model"] == "diffusion") & (t["model_sha256"] == ctx.model_sha256())]
    else:
        t = t.iloc[0:0]
    t = t[t["split"].isin(["test_mild", "test_strong"])]
    if t.empty:
        print("figures: table1 has no shifted rows for the diffusion model: the stored "
              "domain-shift table has none for this model (`bash scripts/run_evaluations.sh "
              "shift-diffusion-seed0`, then `--collect domain_shift`)")
        return []
    return [{"model": "CytoDiffusion (tiny, CPU)",
             "test set": f"{split.replace('test_', '')} (stored domain-shift table)",
             "accuracy": 100 * g["accuracy"].mean(),
             "balanced accuracy": 100 * g["balanced_accuracy"].mean(),
             "n images": int(g["n_images"].iloc[0])}
            for split, g in t.groupby("split", sort=True)]


def _table1(ctx: _Context) -> list[Path]:
    res = ctx.result
    rows = [{"model": "CytoDiffusion (tiny, CPU)", "test set": "in-domain",
             "accuracy": 100 * res.accuracy, "balanced accuracy": 100 * res.balanced_accuracy,
             "n images": len(res)}]
    try:
        base = ctx.baseline
    except FileNotFoundError as exc:
        print(f"figures: table1 without the baseline ({exc})")
        base = None
    if base is not None:
        for split in ("test", "test_mild", "test_strong"):
            ds = ctx.test_subset(split)
            ev = base.evaluate(ds)
            rows.append({"model": "CNN baseline", "test set": split.replace("test_", "") if split != "test" else "in-domain",
                         "accuracy": 100 * ev["accuracy"],
                         "balanced accuracy": 100 * ev["balanced_accuracy"], "n images": len(ds)})
    rows[1:1] = _shifted_diffusion_rows(ctx)
    table = pd.DataFrame(rows)
    note = (f"cytoviz figures: {ctx.config.n_per_class} test images per class, classifier "
            f"max_trials={ctx.config.max_trials}" + (" (FAST smoke budget)" if ctx.config.fast else ""))
    return _save_table(table, ctx.out, "table1_accuracy", note=note)


#: Figure 2 D's threshold: percent correct of the unscaled sigmoid (METHOD.md section 5).
FIG2_PERCENT_CORRECT = 0.8


def _fig2(ctx: _Context) -> list[Path]:
    from cytoviz import pl

    res = ctx.result
    paths: list[Path] = []
    # A: the model, its confidence against its correctness, 25 bins.
    model_data = bin_confidence(res.confidence, res.correct, n_bins=25)
    idata_model = fit(model_data.x, model_data.k, model_data.n, config=ctx.psych_config(),
                      name="model", cache=ctx.compiled_models)
    paths += _save(pl.psychometric_curve(idata_model, x_title="model confidence",
                                         title="A  CytoDiffusion"),
                   ctx.out, "fig2a_model", ctx.config, width="single")
    # B-E: each expert against model confidence and consensus confidence.
    conf = pd.Series(res.confidence, index=np.arange(len(res)))
    fits = {}
    summaries = {}
    for axis, label in (("model", "model confidence"), ("consensus", "consensus expert confidence")):
        data = expert_psychometric_data(ctx.panel, conf if axis == "model" else None, axis=axis,
                                        n_bins=12)
        idata = fit_observers(data, ctx.psych_config(), cache=ctx.compiled_models)
        fits[label] = idata
        summaries[label] = summarize(idata, percent_correct=(FIG2_PERCENT_CORRECT,))
    first = next(iter(data))  # the most experienced expert (experts come in that order)
    paths += _save(pl.psychometric_comparison(fits, first), ctx.out, "fig2bc_expert", ctx.config,
                   width="double")
    # D reports the threshold at 80 % correct of the unscaled sigmoid, as the paper does
    # (METHOD.md section 5), with the posterior-quantile interval; E the width.
    for param, tag in ((threshold_parameter(FIG2_PERCENT_CORRECT), "fig2d_thresholds"),
                       ("width", "fig2e_widths")):
        fig = pl.psychometric_forest(next(iter(summaries.values())), param, groups=summaries)
        paths += _save(fig, ctx.out, tag, ctx.config, width="single")
    pairs = pairwise_confidence(ctx.panel)
    paths += _save(pl.confidence_agreement(pairs), ctx.out, "fig2s_pairwise_confidence",
                   ctx.config, width="single")
    table = pd.concat([s.assign(axis=k) for k, s in summaries.items()], ignore_index=True)
    paths += _save_table(table, ctx.out, "fig2_expert_fits",
                         note="posterior summaries per expert (cytoviz figures)")
    return paths


#: The command that (re)produces the tables in ``cytoviz/_shipped/results/``.
_EVAL_COMMAND = "bash scripts/run_evaluations.sh"


#: Figure -> the stored table it draws (the staleness guard checks these before any work).
_STORED_TABLES = {"fig3": "anomaly", "fig4": "low_data", "table2": "domain_shift"}
#: Title prefix of a figure drawn from a stale table with ``allow_stale``.
STALE_MARK = "STALE"


def _stale_tables(names: Sequence[str]) -> dict[str, str]:
    """Figure -> why its stored table is stale, for the requested figures whose table exists."""
    folder = results_dir()
    out = {}
    for fig, table in _STORED_TABLES.items():
        if fig in names and (folder / f"{table}.csv").is_file():
            reason = stale_reason(table, folder=folder)
            if reason is not None:
                out[fig] = reason
    return out


def _from_results(name: str, command: str) -> Any:
    folder = results_dir()
    path = folder / f"{name}.csv"
    if not path.is_file():
        print(f"figures: skipping {name}: {path} is missing; produce it with `{command}`")
        return None
    return stored_results(name, folder=folder)


def _mark(fig: Any, ctx: _Context, name: str) -> Any:
    """Put :data:`STALE_MARK` in front of the figure's title when its table is stale."""
    if name in ctx.stale:
        title = fig.layout.title.text or ""
        fig.update_layout(title_text=f"{STALE_MARK}: {title}" if title else STALE_MARK)
    return fig


def _fig3(ctx: _Context) -> list[Path]:
    from cytoviz import pl

    table = _from_results("anomaly", _EVAL_COMMAND)
    if table is None:
        return []
    fig = _mark(pl.anomaly_kde(certainty_kde(table), anomaly_auc(table)), ctx, "fig3")
    return _save(fig, ctx.out, "fig3_anomaly_kde", ctx.config, width="double")


def _fig4(ctx: _Context) -> list[Path]:
    from cytoviz import pl

    table = _from_results("low_data", _EVAL_COMMAND)
    if table is None:
        return []
    return _save(_mark(pl.low_data_curve(table), ctx, "fig4"), ctx.out, "fig4_low_data", ctx.config, width="single")


def _table2(ctx: _Context) -> list[Path]:
    from cytoviz import pl

    table = _from_results("domain_shift", _EVAL_COMMAND)
    if table is None:
        return []
    paths = _save(_mark(pl.domain_shift_bars(table), ctx, "table2"), ctx.out, "table2_domain_shift", ctx.config,
                  width="single")
    paths += _save_table(domain_shift_table(table).reset_index(), ctx.out, "table2_domain_shift",
                         note=("STALE: " if "table2" in ctx.stale else "")
                         + "balanced accuracy, mean +/- sd over seeds "
                         "(cytoviz/_shipped/results/domain_shift.csv)")
    return paths


def _heatmaps(ctx: _Context):
    def run():
        res = ctx.result
        src = grid_sources(res)
        src = src[src >= 0]
        return counterfactual_heatmaps(res, ctx.model, ctx.test_subset(), indices=src)

    return ctx.memo("heatmaps", run)


def _fig5(ctx: _Context) -> list[Path]:
    from cytoviz import pl

    h = _heatmaps(ctx)
    names = list(h.class_names)
    # a granulocyte if there is one: the transitions the paper discusses
    pos = next((i for i, t in enumerate(h.true) if names[t] == "neutrophil"), 0)
    targets = [c for c in ("eosinophil", "basophil", "lymphocyte") if c in names and
               names.index(c) != h.predicted[pos]][:3]
    fig = pl.heatmap_panel(h, pos, targets or None)
    return _save(fig, ctx.out, "fig5_heatmap_overlay", ctx.config, width="single")


def _fig6(ctx: _Context) -> list[Path]:
    from cytoviz import pl

    h = _heatmaps(ctx)
    if len(h) != len(h.class_names):
        print("figures: fig6 needs one classified image per class; skipped")
        return []
    return _save(pl.transition_grid(h, list(range(len(h)))), ctx.out, "fig6_transition_grid",
                 ctx.config, width="double")


def _fig8(ctx: _Context) -> list[Path]:
    from cytoviz import pl

    cfg = diffusion.GenerateConfig(num_inference_steps=ctx.config.generate_steps,
                                   seed=ctx.config.seed)
    ds = diffusion.generate(ctx.model, list(ctx.model.class_names), ctx.config.n_generated,
                            config=cfg, progress=ctx.progress)
    ds.save(ctx.cache / "generated.npz")
    fig = pl.generated_grid(ds, ctx.config.n_generated, title="Generated cells (one row per class)")
    return _save(fig, ctx.out, "fig8_generated", ctx.config, width="double")


#: Figure name -> builder, in build order.
FIGURES: dict[str, Callable[[_Context], list[Path]]] = {
    "preview": _preview,
    "table1": _table1,
    "fig2": _fig2,
    "fig3": _fig3,
    "fig4": _fig4,
    "table2": _table2,
    "fig5": _fig5,
    "fig6": _fig6,
    "fig8": _fig8,
}


def make_figures(
    out: str | os.PathLike[str],
    *,
    only: Sequence[str] | None = None,
    fast: bool | None = None,
    config: FiguresConfig | None = None,
    real: str | os.PathLike[str] | None = None,
    allow_stale: bool = False,
    progress: bool = True,
) -> dict[str, list[Path]]:
    """Build the paper's figures and tables into ``out``.

    Parameters
    ----------
    out
        Output folder (created). Files are written atomically; ``out/cache`` keeps the
        classification result and generated images for reruns.
    only
        Names from :data:`FIGURES` (default: all).
    fast
        Use :meth:`FiguresConfig.fast_preset` (default: ``cytoviz.fast_mode()``).
    config
        An explicit budget (overrides ``fast``).
    real
        Real images for the preview (a folder of class folders, or any spec of
        :func:`cytoviz.data.resolve_one`); default ``CYTOVIZ_PBC_EXAMPLE``. Without either the
        preview shows synthetic cells only and its title says so.
    allow_stale
        Draw Figures 3 and 4 and Table 2 even when their stored table was made with another
        model than the shipped one (:func:`cytoviz.evaluation.stale_reason`); their titles then
        start with :data:`STALE_MARK`. Without it such a figure is refused before any work.
    progress
        Show progress bars.

    Returns
    -------
    dict
        Figure name -> files written (empty when a figure was skipped).

    Raises
    ------
    ValueError
        When a requested figure's stored table is stale and ``allow_stale`` is off, naming the
        table and the command that rebuilds it.
    """
    names = list(FIGURES) if only is None else list(only)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; choose from {list(FIGURES)}")
    if config is None:
        fast = fast_mode() if fast is None else fast
        config = FiguresConfig.fast_preset() if fast else FiguresConfig()
    real_path = Path(real) if real is not None else pbc_example_dir()
    if "preview" in names and real_path is not None and not real_path.exists():
        raise FileNotFoundError(f"{real_path}: no such folder of real images (one sub-folder "
                                "per class); pass --real PATH or unset CYTOVIZ_PBC_EXAMPLE")
    stale = _stale_tables(names)
    if stale and not allow_stale:
        raise ValueError(
            "stale result table(s): " + "; ".join(f"{fig}: {why}" for fig, why in stale.items())
            + f". Rebuild them with `{_EVAL_COMMAND}` and `python scripts/collect_results.py`, "
            "leave those figures out with --only, or pass --allow-stale to draw them marked "
            f"{STALE_MARK!r}"
        )
    for fig, why in stale.items():
        print(f"figures: {fig} is drawn from a stale table and marked so: {why}", flush=True)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "figures_config.json")
    ctx = _Context(out, config, progress, real=real_path, stale=stale)
    written: dict[str, list[Path]] = {}
    for i, name in enumerate(names, 1):
        start = time.time()
        print(f"[{i}/{len(names)}] {name} ...", flush=True)
        written[name] = FIGURES[name](ctx)
        print(f"[{i}/{len(names)}] {name}: {len(written[name])} file(s) in {time.time() - start:.0f} s",
              flush=True)
    return written


# ------------------------------------------------------------------ CLI
def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``cytoviz figures``."""
    p = subparsers.add_parser(
        "figures",
        help="regenerate the paper's figures and tables (the main job)",
        description="Regenerate Figures 2-6 and 8 and Tables 1-2 as PDF, SVG and PNG (tables as "
        "CSV and LaTeX) from the shipped default model and the synthetic data.",
    )
    p.add_argument("--out", type=Path, default=Path("figures"), help="output folder (default: figures/)")
    p.add_argument("--only", nargs="+", metavar="NAME", choices=list(FIGURES),
                   help=f"build only these ({', '.join(FIGURES)})")
    p.add_argument("--fast", action="store_true", help="smoke-test budget (also CYTOVIZ_FAST=1)")
    p.add_argument("--n-per-class", type=int, help="test images per class to classify")
    p.add_argument("--max-trials", type=int, help="classifier trial budget")
    p.add_argument("--formats", nargs="+", choices=["pdf", "svg", "png", "html"],
                   help="figure formats (default: pdf svg png)")
    p.add_argument("--real", type=Path, default=None, metavar="PATH",
                   help="real images for the preview, one sub-folder per class (default: "
                        "$CYTOVIZ_PBC_EXAMPLE; without either the preview is synthetic only)")
    p.add_argument("--allow-stale", action="store_true",
                   help="draw Figures 3-4 and Table 2 from stored tables made with another model "
                        "than the shipped one, marked STALE in their titles (default: refuse)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    fast = args.fast or fast_mode()
    config = FiguresConfig.fast_preset() if fast else FiguresConfig()
    changes = {k: v for k, v in (("n_per_class", args.n_per_class), ("max_trials", args.max_trials),
                                 ("formats", tuple(args.formats) if args.formats else None))
               if v is not None}
    if changes:
        config = config.replace(**changes)
    start = time.time()
    written = make_figures(args.out, only=args.only, config=config, real=args.real,
                           allow_stale=args.allow_stale, progress=not args.quiet)
    n = sum(len(v) for v in written.values())
    skipped = [k for k, v in written.items() if not v]
    print(f"figures: {n} files in {args.out} in {time.time() - start:.0f} s"
          + (f"; skipped: {', '.join(skipped)}" if skipped else ""))
    return 0
