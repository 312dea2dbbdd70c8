"""``cytoviz evaluate PROTOCOL`` (private CLI module).

Protocols: ``anomaly``, ``domain-shift``, ``low-data``, ``few-shot`` (:mod:`.anomaly_detection`,
:mod:`.shift`, :mod:`.low_data_regime`) and, on generated images, ``class-agreement``,
``augmentation``, ``prototypes`` (:mod:`.generation`).
Each protocol writes its tidy table(s) as CSV and its figure(s) as PNG/SVG/PDF into ``--out``;
finished units (one model x seed x setting) are cached under ``--out/units``, trained models
under ``--out/models`` and generated images under ``--out/generated``, so a rerun after an
interruption skips them.

Flags default to ``None``: an option not given leaves the protocol's own default (its keyword
argument, :class:`~cytoviz.evaluation.EvalBudget`, :class:`~cytoviz.diffusion.GenerateConfig`,
:class:`~cytoviz.evaluation.PrototypeConfig`) in force, so those are the one source of defaults.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cytoviz._io import atomic_path, save_csv
from cytoviz._threads import add_threads_option
from cytoviz.anomaly import anomaly_auc, certainty_kde
from cytoviz.diffusion.generate import GenerateConfig
from cytoviz.evaluation import generation as G
from cytoviz.evaluation.anomaly_detection import anomaly_scores
from cytoviz.evaluation.budget import resolve_budget
from cytoviz.evaluation.low_data_regime import low_data
from cytoviz.evaluation.prototypes import PrototypeConfig
from cytoviz.evaluation.shift import domain_shift, few_shot
from cytoviz.evaluation.tables import domain_shift_latex, domain_shift_table, summarise

# cytoviz.pl (plotly) is imported in the handlers, so that ``cytoviz --help`` stays fast
# (see :mod:`cytoviz.cli`).

__all__ = ["register"]

_EPILOG = """\
examples:
  cytoviz evaluate anomaly --out runs/anomaly --budget fast
  cytoviz evaluate domain-shift --out runs/shift --budget cpu --seeds 2 \\
      --pretrained cytoviz/_shipped/default_model
  cytoviz evaluate low-data --out runs/low --data ../shared/data/pbc_example --sizes 2 5 10
  cytoviz evaluate few-shot --out runs/few --budget paper     # the full protocol (GPU)
  cytoviz evaluate class-agreement --model cytoviz/_shipped/default_model --baseline cytoviz/_shipped/default_baseline \
      -n 16 --out runs/gen
  cytoviz evaluate augmentation --out runs/aug --real-per-class 20 --ks 0 10 25 50
  cytoviz evaluate prototypes --out runs/proto --fine-tune-steps 300 -n 16
"""

_PROTOCOLS = ("anomaly", "domain-shift", "low-data", "few-shot", "class-agreement",
              "augmentation", "prototypes")
_GENERATION = ("class-agreement", "augmentation", "prototypes")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand."""
    p = subparsers.add_parser(
        "evaluate",
        help="run an evaluation protocol (anomaly, domain-shift, low-data, few-shot, "
        "class-agreement, augmentation, prototypes)",
        description="Run one of the paper's evaluation protocols for the diffusion classifier "
        "and the CNN baseline, or a protocol on generated images (class agreement, CytoDiff "
        "augmentation, IMPROVE prototypes); write CSV tables and figures to --out. Reruns resume. "
        "Options not given take the protocol's defaults.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("protocol", choices=_PROTOCOLS, help="the protocol to run")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created; resumes)")
    p.add_argument("--budget", choices=("fast", "cpu", "paper", "shipped"),
                   help="fast: tests/CI; cpu: the reduced CPU budget; paper: full; shipped: the "
                   "shipped models' recipe with steps scaled to the data, behind the stored "
                   "tables (default: the protocols' default, EvalBudget.cpu)")
    p.add_argument("--data", metavar="synthetic|PATH",
                   help="'synthetic' or a folder of class folders / split folders (default: the "
                   "protocol's, synthetic)")
    p.add_argument("--seeds", type=int, metavar="N",
                   help="seeds (repeats for low-data and augmentation); default: the protocol's "
                   "(the budget's for domain-shift and low-data, 1 for the others)")
    p.add_argument("--seed-list", type=int, nargs="+", metavar="S",
                   help="these seeds (repeats) only, e.g. one piece of a long run (instead of "
                   "--seeds)")
    p.add_argument("--models", nargs="+", choices=("diffusion", "baseline"),
                   help="models to evaluate (default: both)")
    o = p.add_argument_group("budget overrides (default: from EvalBudget)")
    o.add_argument("--train-steps", type=int, metavar="N", help="diffusion UNet training steps")
    o.add_argument("--vae-steps", type=int, metavar="N", help="diffusion VAE training steps")
    o.add_argument("--lr", type=float, metavar="X",
                   help="diffusion UNet peak learning rate (the shipped model: 2e-3)")
    o.add_argument("--lr-schedule", choices=("constant", "cosine"),
                   help="diffusion UNet learning-rate schedule after warm-up (the shipped model: cosine)")
    o.add_argument("--epochs", type=int, metavar="N", help="baseline training epochs")
    o.add_argument("--max-trials", type=int, metavar="N", help="classifier trials per image")
    o.add_argument("--min-trials", type=int, metavar="N", help="trials before pruning")
    o.add_argument("--test-per-class", type=int, metavar="N", help="test images per class")
    o.add_argument("--data-scale", type=float, metavar="X", help="synthetic benchmark scale")
    o.add_argument("--fine-tune-steps", type=int, metavar="N",
                   help="UNet steps of diffusion fine-tuning (few-shot, prototypes)")
    s = p.add_argument_group("protocol options (default: the protocol's)")
    s.add_argument("--held-out", nargs="+",
                   help="anomaly: classes to hold out (default: blast, then erythroblast)")
    s.add_argument("--pretrained", "--model", dest="pretrained", metavar="DIR",
                   help="domain-shift, few-shot: a trained diffusion model (e.g. "
                   "cytoviz/_shipped/default_model) used for every seed instead of training one; "
                   "class-agreement, augmentation, prototypes: the generator (default: the "
                   "shipped cytoviz/_shipped/default_model)")
    s.add_argument("--pretrained-seeds", type=int, nargs="+", metavar="S",
                   help="domain-shift: use --pretrained for these seeds only and train the others "
                   "(--pretrained default --pretrained-seeds 0: the shipped model is seed 0 of "
                   "its recipe)")
    s.add_argument("--pretrained-baseline", "--baseline", dest="pretrained_baseline",
                   metavar="DIR",
                   help="few-shot: a saved baseline (e.g. cytoviz/_shipped/default_baseline) used as the "
                   "source baseline instead of training one; class-agreement, prototypes: the "
                   "baseline that checks the images (default: the shipped cytoviz/_shipped/default_baseline)")
    s.add_argument("--sizes", nargs="+", type=int, metavar="N",
                   help="low-data: training images per class (default: the budget's)")
    s.add_argument("--no-colour-transfer", action="store_true",
                   help="few-shot: skip the Reinhard colour-transfer runs")
    g = p.add_argument_group("generation options (class-agreement, augmentation, prototypes; "
                             "default: the protocol's and GenerateConfig's)")
    g.add_argument("-n", "--n-per-class", type=int, metavar="N",
                   help="class-agreement, prototypes: images generated per class")
    g.add_argument("--steps", type=int, help="sampler steps (GenerateConfig.num_inference_steps)")
    g.add_argument("--guidance", type=float,
                   help="classifier-free guidance (GenerateConfig.guidance_scale)")
    g.add_argument("--scheduler", choices=("ddim", "dpm"), help="sampler (GenerateConfig.scheduler)")
    g.add_argument("--ks", nargs="+", type=int, metavar="K",
                   help="augmentation: generated images added per class")
    g.add_argument("--real-per-class", type=int, metavar="N",
                   help="augmentation: real training images per class")
    g.add_argument("--equal-steps", action="store_true",
                   help="augmentation: train every k for the optimiser steps of the largest "
                   "training set (epochs scaled down as k grows); default: the same epochs")
    g.add_argument("--generated", metavar="NPZ",
                   help="augmentation: a pool of generated images (a CellDataset .npz, e.g. "
                   "OUT/generated/*.npz of class-agreement) instead of generating one")
    g.add_argument("--embedding", choices=("baseline", "vae"),
                   help="prototypes: embeddings the prototypes are learned on")
    g.add_argument("--n-prototypes", type=int, metavar="M",
                   help="prototypes: prototypes per class (PrototypeConfig.n_prototypes)")
    g.add_argument("--projection", choices=("orthogonal", "pca"),
                   help="prototypes: projection to the conditioning width")
    p.add_argument("--formats", default="png,svg,pdf",
                   help="figure formats, comma-separated (png,svg,pdf,html); 'none' for no figures")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_threads_option(p)
    p.set_defaults(func=_run)


def _resolve_defaults(args: argparse.Namespace) -> None:
    """``default`` names the shipped model or baseline; ``--seed-list`` replaces ``--seeds``."""
    from cytoviz._paths import default_baseline_dir, default_model_dir

    if getattr(args, "pretrained", None) == "default":
        args.pretrained = str(default_model_dir())
    if getattr(args, "pretrained_baseline", None) == "default":
        args.pretrained_baseline = str(default_baseline_dir())
    if getattr(args, "seed_list", None):
        if args.seeds is not None:
            raise SystemExit("give --seeds N or --seed-list S ..., not both")
        args.seeds = list(args.seed_list)
    if getattr(args, "pretrained_seeds", None):
        if args.pretrained is None:
            raise SystemExit("--pretrained-seeds needs --pretrained DIR")
        args.pretrained = {int(k): args.pretrained for k in args.pretrained_seeds}


def _given(args: argparse.Namespace, **names: str) -> dict[str, Any]:
    """Keyword arguments ``{keyword: args.<flag>}`` for the flags that were given (not None)."""
    out = {}
    for keyword, flag in names.items():
        value = getattr(args, flag, None)
        if value is not None:
            out[keyword] = value
    return out


def _budget(args: argparse.Namespace) -> Any:
    budget = resolve_budget(getattr(args, "budget", None))
    changes: dict[str, Any] = {}
    train = _given(args, steps="train_steps", vae_steps="vae_steps", lr="lr",
                   lr_schedule="lr_schedule")
    if "lr" in train and not train["lr"] > 0:
        raise SystemExit(f"--lr must be positive, got {args.lr}")
    if train:
        changes["train"] = budget.train.replace(**train)
    if args.epochs is not None:
        changes["baseline"] = budget.baseline.replace(epochs=args.epochs)
    changes.update(_given(args, max_trials="max_trials", min_trials="min_trials",
                          test_per_class="test_per_class", data_scale="data_scale",
                          fine_tune_steps="fine_tune_steps"))
    if "max_trials" in changes and "min_trials" not in changes \
            and budget.min_trials > args.max_trials:
        changes["min_trials"] = max(2, args.max_trials)
    if changes:
        # A preset with overrides is named e.g. "cpu+custom"; budget.json records every field.
        budget = budget.replace(name=f"{budget.name}+custom", **changes)
    return budget


def _save_figures(fig: Any, path: Path, formats: list[str]) -> list[Path]:
    from cytoviz.pl import save_figure

    if not formats:
        return []
    return save_figure(fig, path, formats=formats)


def _run(args: argparse.Namespace) -> int:
    from cytoviz import pl

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budget = _budget(args)
    progress = not args.quiet
    _resolve_defaults(args)
    formats = [] if args.formats.strip().lower() == "none" else [
        f.strip() for f in args.formats.split(",") if f.strip()
    ]
    common = dict(budget=budget, out=out, progress=progress, **_given(args, data="data",
                                                                        models="models"))
    written: list[Path] = []
    if args.protocol in _GENERATION:
        written += _run_generation(args, budget, out, formats)
    elif args.protocol == "anomaly":
        table = anomaly_scores(**common, **_given(args, held_out="held_out", seeds="seeds"))
        auc = anomaly_auc(table)
        written += [save_csv(table, out / "anomaly_scores.csv"),
                    save_csv(auc, out / "anomaly_auc.csv")]
        written += _save_figures(pl.anomaly_kde(certainty_kde(table), auc), out / "anomaly_kde",
                                 formats)
        print(auc.to_string(index=False))
    elif args.protocol == "domain-shift":
        table = domain_shift(**common, **_given(args, seeds="seeds", pretrained="pretrained"))
        summary = domain_shift_table(table)
        written += [save_csv(table, out / "domain_shift.csv"),
                    save_csv(summary.reset_index(), out / "domain_shift_table.csv")]
        with atomic_path(out / "domain_shift_table.tex") as tmp:
            tmp.write_text(domain_shift_latex(summary))
        written.append(out / "domain_shift_table.tex")
        written += _save_figures(pl.domain_shift_bars(table), out / "domain_shift_bars", formats)
        print(summary.to_string())
    elif args.protocol == "low-data":
        table = low_data(**common, **_given(args, sizes="sizes", repeats="seeds"))
        summary = summarise(table, ["model", "n_per_class"])
        written += [save_csv(table, out / "low_data.csv"),
                    save_csv(summary, out / "low_data_summary.csv")]
        written += _save_figures(pl.low_data_curve(table), out / "low_data_curve", formats)
        print(summary.to_string(index=False))
    else:
        if args.no_colour_transfer:
            common["colour_transfer"] = (False,)
        table = few_shot(**common, **_given(args, seeds="seeds", pretrained="pretrained",
                                            pretrained_baseline="pretrained_baseline"))
        written += [save_csv(table, out / "few_shot.csv")]
        written += _save_figures(pl.few_shot_bars(table), out / "few_shot_bars", formats)
        print(summarise(table, ["model", "target", "colour_transfer", "stage"], "accuracy")
              .to_string(index=False))
    print(f"budget: {budget.name} (see {out / 'budget.json'})", file=sys.stderr)
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _run_generation(args: argparse.Namespace, budget: Any, out: Path, formats: list[str]
                    ) -> list[Path]:
    """The protocols on generated images (:mod:`cytoviz.evaluation.generation`)."""
    from cytoviz import pl

    sampler = _given(args, num_inference_steps="steps", guidance_scale="guidance",
                     scheduler="scheduler")
    common: dict[str, Any] = dict(budget=budget, out=out, progress=not args.quiet,
                                  generate_config=GenerateConfig(**sampler) if sampler else None)
    written: list[Path] = []
    if args.protocol == "class-agreement":
        table, generated = G.generated_class_agreement(
            args.pretrained, args.pretrained_baseline, **common,
            **_given(args, n_per_class="n_per_class", models="models"))
        written.append(save_csv(table, out / "class_agreement.csv"))
        written += _save_figures(pl.class_agreement_bars(table), out / "class_agreement_bars",
                                 formats)
        per_class = max(generated.class_counts().values(), default=1)
        written += _save_figures(pl.generated_grid(generated, min(8, per_class)),
                                 out / "generated_grid", formats)
        written += sorted((out / "generated").glob("*.npz"))
        print(table[table["intended"] == "all"][["classifier", "n", "agreement", "agreement_low",
                                                 "agreement_high"]].to_string(index=False))
    elif args.protocol == "augmentation":
        table = G.synthetic_augmentation(
            model=args.pretrained, generated=args.generated, equal_steps=args.equal_steps,
            **common, **_given(args, data="data", ks="ks", n_real="real_per_class",
                               repeats="seeds"))
        written.append(save_csv(table, out / "augmentation.csv"))
        written += _save_figures(pl.augmentation_curve(table), out / "augmentation_curve", formats)
        print(table.groupby("k")[["accuracy", "macro_f1", "auc_ovr"]].mean().to_string())
    else:
        if args.n_prototypes is not None:
            common["prototype_config"] = PrototypeConfig(n_prototypes=args.n_prototypes)
        table, samples = G.prototype_comparison(
            model=args.pretrained, baseline=args.pretrained_baseline, **common,
            **_given(args, data="data", embedding="embedding", projection="projection",
                     n_per_class="n_per_class"))
        written.append(save_csv(table, out / "prototypes.csv"))
        written += _save_figures(pl.prototype_comparison(table), out / "prototype_comparison",
                                 formats)
        for name, ds in samples.items():
            per_class = max(ds.class_counts().values(), default=1)
            written += _save_figures(pl.generated_grid(ds, min(8, per_class),
                                                       title=f"{name} generator"),
                                     out / f"generated_grid_{name}", formats)
        print(table[table["intended"] == "all"][["generator", "n", "agreement",
                                                 "frechet_baseline_features"]]
              .to_string(index=False))
    return written
