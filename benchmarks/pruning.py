"""Cost and accuracy of adaptive pruning (METHOD.md section 1; the paper's Figure 7 ablation).

Usage::

    .venv/bin/python benchmarks/pruning.py [--model cytoviz/_shipped/default_model] [--data FILE.npz]
        [--per-class 6] [--trials 20 100 500] [--threads 1] [--no-tta]
        [--skip-unpruned-above N]

For each maximum number of trials, classifies the same images with pruning on (paired t-test,
p < 2e-3, from trial 20, every 5 trials) and off, and reports the mean UNet evaluations per image,
the accuracy and the balanced accuracy, and the agreement between the two predictions.

The model is ``--model`` (default ``cytoviz/_shipped/default_model``, the shipped model); when it does not
exist the ``tiny`` preset with RANDOM weights is used instead and the table says so (its accuracy
is chance level; only the cost comparison means something then). The images are the first
``--per-class`` images of each class of the synthetic test split
(``cytoviz.data.synth.default_splits()["test"]``), or ``--data`` (a CellDataset .npz). Writes
``benchmarks/results/pruning.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "cytoviz" / "_shipped" / "default_model"))
    parser.add_argument("--data", help="a CellDataset .npz (default: the synthetic test split)")
    parser.add_argument("--per-class", type=int, default=6)
    parser.add_argument("--trials", type=int, nargs="+", default=[20, 100, 500])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=60)
    parser.add_argument("--no-tta", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-unpruned-above", type=int,
                        help="run the (expensive) unpruned classifier only up to this many trials")
    args = parser.parse_args()

    import numpy as np
    import torch

    from cytoviz.classes import CANONICAL_CLASSES
    from cytoviz.data import CellDataset
    from cytoviz.diffusion import ClassifyConfig, DiffusionModel, ModelConfig, classify

    torch.set_num_threads(args.threads)
    model_path = Path(args.model)
    if (model_path / "cytoviz.json").is_file():
        model = DiffusionModel.from_pretrained(model_path)
        model_name = str(model_path)
    else:
        model = DiffusionModel.build(CANONICAL_CLASSES, ModelConfig.tiny(), seed=0)
        model_name = f"tiny preset with RANDOM weights ({model_path} not found)"
    if args.data:
        data = CellDataset.load(args.data)
        data_name = args.data
    else:
        from cytoviz.data.synth import default_splits

        data = default_splits()["test"]
        data_name = "cytoviz.data.synth.default_splits()['test']"
    if tuple(data.class_names) != model.class_names:
        data = data.select_classes(model.class_names)
    data = data.first_per_class(args.per_class)

    rows = []
    for trials in args.trials:
        preds = {}
        modes = [True]
        if args.skip_unpruned_above is None or trials <= args.skip_unpruned_above:
            modes.append(False)
        for pruning in modes:
            cfg = ClassifyConfig(max_trials=trials, pruning=pruning, tta=not args.no_tta,
                                 batch_size=args.batch_size, seed=args.seed,
                                 keep_error_maps=False)
            start = time.perf_counter()
            r = classify(model, data, cfg, progress=False)
            sec = time.perf_counter() - start
            preds[pruning] = r.prediction
            rows.append({
                "max_trials": trials, "pruning": pruning, "images": len(r),
                "mean_unet_evals_per_image": float(r.n_evals.mean()),
                "mean_trials_per_image": float(r.n_trials.mean()),
                "accuracy": r.accuracy, "balanced_accuracy": r.balanced_accuracy,
                "seconds": sec,
            })
        if False in preds:
            rows[-2]["agreement_with_unpruned"] = float(np.mean(preds[True] == preds[False]))

    # The target: a pruned run within 1 point of the accuracy of the largest unpruned run, using
    # at most 15 % of its UNet evaluations.
    target = None
    unpruned = [r for r in rows if not r["pruning"]]
    if unpruned:
        ref = max(unpruned, key=lambda r: r["max_trials"])
        checks = []
        for r in rows:
            if not r["pruning"]:
                continue
            share = r["mean_unet_evals_per_image"] / ref["mean_unet_evals_per_image"]
            diff = 100 * (r["accuracy"] - ref["accuracy"])
            checks.append({"max_trials": r["max_trials"], "evals_share": share,
                           "accuracy_minus_reference_points": diff,
                           "met": bool(diff >= -1.0 and share <= 0.15)})
        target = {"reference_max_trials": ref["max_trials"], "reference_accuracy": ref["accuracy"],
                  "reference_evals_per_image": ref["mean_unet_evals_per_image"],
                  "checks": checks, "met": any(c["met"] for c in checks)}
    result = {"benchmark": "pruning", "model": model_name, "data": data_name,
              "per_class": args.per_class, "tta": not args.no_tta, "threads": args.threads,
              "seed": args.seed, "rows": rows, "target": target}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pruning.json").write_text(json.dumps(result, indent=2) + "\n")

    print(f"model: {model_name}\ndata: {data_name}, {len(data)} images "
          f"({args.per_class} per class); TTA {'on' if not args.no_tta else 'off'}\n")
    print("| max trials | pruning | UNet evals / image | trials / image | accuracy | "
          "balanced acc. | agreement with unpruned | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        agree = r.get("agreement_with_unpruned")
        print(f"| {r['max_trials']} | {'on' if r['pruning'] else 'off'} | "
              f"{r['mean_unet_evals_per_image']:.1f} | {r['mean_trials_per_image']:.1f} | "
              f"{r['accuracy']:.3f} | {r['balanced_accuracy']:.3f} | "
              f"{'' if agree is None else f'{agree:.3f}'} | {r['seconds']:.1f} |")


if __name__ == "__main__":
    main()
