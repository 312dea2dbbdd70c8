"""``cytoviz evaluate PROTOCOL`` (private CLI module).

Protocols: ``anomaly``, ``domain-shift``, ``low-data``, ``few-shot`` (:mod:`.protocols`) and, on
generated images, ``class-agreement``, ``augmentation``, ``prototypes`` (:mod:`.generation`).
Each protocol writes its tidy table(s) as CSV and its figure(s) as PNG/SVG/PDF into ``--out``;
finished units (one model x seed x setting) are cached under ``--out/units``, trained models
under ``--out/models`` and generated images under ``--out/generated``, so a rerun after an
interruption skips them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]

_EPILOG = """\
examples:
  cytoviz evaluate anomaly --out runs/anomaly --budget fast
  cytoviz evaluate domain-shift --out runs/shift --budget cpu --seeds 2 \\
      --pretrained data/default_model
  cytoviz evaluate low-data --out runs/low --data ../shared/data/pbc_example --sizes 2 5 10
  cytoviz evaluate few-shot --out runs/few --budget paper     # the full protocol (GPU)
  cytoviz evaluate class-agreement --model data/default_model --baseline data/default_baseline \
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
        "augmentation, IMPROVE prototypes); write CSV tables and figures to --out. Reruns resume.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("protocol", choices=_PROTOCOLS, help="the protocol to run")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created; resumes)")
    p.add_argument("--budget", choices=("fast", "cpu", "paper"), default="cpu",
                   help="fast: tests/CI; cpu: the reduced CPU budget (default); paper: full")
    p.add_argument("--data", default="synthetic", metavar="synthetic|PATH",
                   help="'synthetic' (default) or a folder of class folders / split folders")
    p.add_argument("--seeds", type=int, metavar="N",
                   help="seeds (repeats for low-data and augmentation); default: the budget's "
                   "(1 for anomaly, few-shot and augmentation)")
    p.add_argument("--models", nargs="+", choices=("diffusion", "baseline"),
                   default=["diffusion", "baseline"], help="models to evaluate")
    o = p.add_argument_group("budget overrides")
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
    s = p.add_argument_group("protocol options")
    s.add_argument("--held-out", nargs="+", default=["blast", "erythroblast"],
                   help="anomaly: classes to hold out (default blast erythroblast)")
    s.add_argument("--pretrained", "--model", dest="pretrained", metavar="DIR",
                   help="domain-shift, few-shot: a trained diffusion model (e.g. "
                   "data/default_model) used for every seed instead of training one; "
                   "class-agreement, augmentation, prototypes: the generator (default: the "
                   "shipped data/default_model)")
    s.add_argument("--pretrained-baseline", "--baseline", dest="pretrained_baseline",
                   metavar="DIR",
                   help="few-shot: a saved baseline (e.g. data/default_baseline) used as the "
                   "source baseline instead of training one; class-agreement, prototypes: the "
                   "baseline that checks the images (default: the shipped data/default_baseline)")
    s.add_argument("--sizes", nargs="+", type=int, metavar="N",
                   help="low-data: training images per class (default: the budget's)")
    s.add_argument("--no-colour-transfer", action="store_true",
                   help="few-shot: skip the Reinhard colour-transfer runs")
    g = p.add_argument_group("generation options (class-agreement, augmentation, prototypes)")
    g.add_argument("-n", "--n-per-class", type=int, default=16, metavar="N",
                   help="class-agreement, prototypes: images generated per class (16)")
    g.add_argument("--steps", type=int, default=50, help="sampler steps (50)")
    g.add_argument("--guidance", type=float, default=5.0, help="classifier-free guidance (5)")
    g.add_argument("--scheduler", choices=("ddim", "dpm"), default="ddim", help="sampler (ddim)")
    g.add_argument("--ks", nargs="+", type=int, default=[0, 10, 25, 50], metavar="K",
                   help="augmentation: generated images added per class (0 10 25 50)")
    g.add_argument("--real-per-class", type=int, default=20, metavar="N",
                   help="augmentation: real training images per class (20)")
    g.add_argument("--equal-steps", action="store_true",
                   help="augmentation: train every k for the optimiser steps of the largest "
                   "training set (epochs scaled down as k grows); default: the same epochs")
    g.add_argument("--generated", metavar="NPZ",
                   help="augmentation: a pool of generated images (a CellDataset .npz, e.g. "
                   "OUT/generated/*.npz of class-agreement) instead of generating one")
    g.add_argument("--embedding", choices=("baseline", "vae"), default="baseline",
                   help="prototypes: embeddings the prototypes are learned on (baseline)")
    g.add_argument("--n-prototypes", type=int, default=1, metavar="M",
                   help="prototypes: prototypes per class (1)")
    g.add_argument("--projection", choices=("orthogonal", "pca"), default="orthogonal",
                   help="prototypes: projection to the conditioning width (orthogonal)")
    p.add_argument("--formats", default="png,svg,pdf",
                   help="figure formats, comma-separated (png,svg,pdf,html); 'none' for no figures")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _budget(args: argparse.Namespace) -> Any:
    from cytoviz.evaluation.protocols import EvalBudget

    budget = EvalBudget.preset(args.budget)
    changes: dict[str, Any] = {}
    train: dict[str, Any] = {}
    if args.train_steps is not None:
        train["steps"] = args.train_steps
    if args.vae_steps is not None:
        train["vae_steps"] = args.vae_steps
    if getattr(args, "lr", None) is not None:
        if not args.lr > 0:
            raise SystemExit(f"--lr must be positive, got {args.lr}")
        train["lr"] = args.lr
    if getattr(args, "lr_schedule", None) is not None:
        train["lr_schedule"] = args.lr_schedule
    if train:
        changes["train"] = budget.train.replace(**train)
    if args.epochs is not None:
        changes["baseline"] = budget.baseline.replace(epochs=args.epochs)
    if args.max_trials is not None:
        changes["max_trials"] = args.max_trials
        if args.min_trials is None and budget.min_trials > args.max_trials:
            changes["min_trials"] = max(2, args.max_trials)
    if args.min_trials is not None:
        changes["min_trials"] = args.min_trials
    if args.test_per_class is not None:
        changes["test_per_class"] = args.test_per_class
    if args.data_scale is not None:
        changes["data_scale"] = args.data_scale
    if getattr(args, "fine_tune_steps", None) is not None:
        changes["fine_tune_steps"] = args.fine_tune_steps
    if changes:
        # A preset with overrides is named e.g. "cpu+custom"; budget.json records every field.
        budget = budget.replace(name=f"{args.budget}+custom", **changes)
    return budget


def _save_figures(fig: Any, path: Path, formats: list[str]) -> list[Path]:
    from cytoviz.pl import save_figure

    if not formats:
        return []
    return save_figure(fig, path, formats=formats)


def _run(args: argparse.Namespace) -> int:
    import sys

    from cytoviz import pl
    from cytoviz.evaluation import protocols as P

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budget = _budget(args)
    data = args.data
    progress = not args.quiet
    formats = [] if args.formats.strip().lower() == "none" else [
        f.strip() for f in args.formats.split(",") if f.strip()
    ]
    common = dict(budget=budget, models=args.models, out=out, progress=progress)
    written: list[Path] = []
    if args.protocol in _GENERATION:
        written += _run_generation(args, budget, out, formats)
    elif args.protocol == "anomaly":
        table = P.anomaly_scores(data, held_out=args.held_out, seeds=args.seeds or 1, **common)
        auc = P.anomaly_auc(table)
        written += [P.write_csv(table, out / "anomaly_scores.csv"),
                    P.write_csv(auc, out / "anomaly_auc.csv")]
        written += _save_figures(pl.anomaly_kde(table), out / "anomaly_kde", formats)
        print(auc.to_string(index=False))
    elif args.protocol == "domain-shift":
        table = P.domain_shift(data, seeds=args.seeds, pretrained=args.pretrained, **common)
        summary = P.domain_shift_table(table)
        written += [P.write_csv(table, out / "domain_shift.csv")]
        written.append(P.write_csv(summary.reset_index(), out / "domain_shift_table.csv"))
        from cytoviz._io import atomic_path

        with atomic_path(out / "domain_shift_table.tex") as tmp:
            tmp.write_text(P.domain_shift_latex(summary))
        written.append(out / "domain_shift_table.tex")
        written += _save_figures(pl.domain_shift_bars(table), out / "domain_shift_bars", formats)
        print(summary.to_string())
    elif args.protocol == "low-data":
        table = P.low_data(data, sizes=args.sizes, repeats=args.seeds, **common)
        written += [P.write_csv(table, out / "low_data.csv"),
                    P.write_csv(P.summarise(table, ["model", "n_per_class"]),
                                out / "low_data_summary.csv")]
        written += _save_figures(pl.low_data_curve(table), out / "low_data_curve", formats)
        print(P.summarise(table, ["model", "n_per_class"]).to_string(index=False))
    else:
        cts = (False,) if args.no_colour_transfer else (False, True)
        table = P.few_shot(data, colour_transfer=cts, seeds=args.seeds or 1,
                           pretrained=args.pretrained,
                           pretrained_baseline=args.pretrained_baseline, **common)
        written += [P.write_csv(table, out / "few_shot.csv")]
        written += _save_figures(pl.few_shot_bars(table), out / "few_shot_bars", formats)
        print(P.summarise(table, ["model", "target", "colour_transfer", "stage"], "accuracy")
              .to_string(index=False))
    print(f"budget: {budget.name} (see {out / 'budget.json'})", file=sys.stderr)
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _run_generation(args: argparse.Namespace, budget: Any, out: Path, formats: list[str]
                    ) -> list[Path]:
    """The protocols on generated images (:mod:`cytoviz.evaluation.generation`)."""
    from cytoviz import pl
    from cytoviz.diffusion.generate import GenerateConfig
    from cytoviz.evaluation import generation as G
    from cytoviz.evaluation import protocols as P

    gen_cfg = GenerateConfig(num_inference_steps=args.steps, guidance_scale=args.guidance,
                             scheduler=args.scheduler)
    progress = not args.quiet
    written: list[Path] = []
    if args.protocol == "class-agreement":
        table, generated = G.generated_class_agreement(
            args.pretrained, args.pretrained_baseline, n_per_class=args.n_per_class,
            generate_config=gen_cfg, models=args.models, budget=budget, out=out,
            progress=progress)
        written.append(P.write_csv(table, out / "class_agreement.csv"))
        written += _save_figures(pl.class_agreement_bars(table), out / "class_agreement_bars",
                                 formats)
        written += _save_figures(pl.generated_grid(generated, min(8, args.n_per_class)),
                                 out / "generated_grid", formats)
        written += sorted((out / "generated").glob("*.npz"))
        print(table[table["intended"] == "all"][["classifier", "n", "agreement", "agreement_low",
                                                 "agreement_high"]].to_string(index=False))
    elif args.protocol == "augmentation":
        table = G.synthetic_augmentation(
            args.data, args.pretrained, ks=args.ks, n_real=args.real_per_class,
            generated=args.generated, generate_config=gen_cfg, budget=budget,
            repeats=args.seeds or 1, equal_steps=args.equal_steps, out=out, progress=progress)
        written.append(P.write_csv(table, out / "augmentation.csv"))
        written += _save_figures(pl.augmentation_curve(table), out / "augmentation_curve", formats)
        print(table.groupby("k")[["accuracy", "macro_f1", "auc_ovr"]].mean().to_string())
    else:
        from cytoviz.evaluation.prototypes import PrototypeConfig

        table, samples = G.prototype_comparison(
            args.data, args.pretrained, args.pretrained_baseline, embedding=args.embedding,
            prototype_config=PrototypeConfig(n_prototypes=args.n_prototypes),
            projection=args.projection, n_per_class=args.n_per_class, generate_config=gen_cfg,
            budget=budget, out=out, progress=progress)
        written.append(P.write_csv(table, out / "prototypes.csv"))
        written += _save_figures(pl.prototype_comparison(table), out / "prototype_comparison",
                                 formats)
        for name, ds in samples.items():
            written += _save_figures(pl.generated_grid(ds, min(8, args.n_per_class),
                                                       title=f"{name} generator"),
                                     out / f"generated_grid_{name}", formats)
        print(table[table["intended"] == "all"][["generator", "n", "agreement",
                                                 "frechet_baseline_features"]]
              .to_string(index=False))
    return written
