"""Diffusion classifier vs CNN baseline on the shifted synthetic test sets (shipped models).

    .venv/bin/python benchmarks/shift_accuracy.py [--per-class 20] [--max-trials 100] [--splits test_mild test_strong]
        [--out benchmarks/results/shift_accuracy.json] [--save-results DIR] [--model DIR]
        [--baseline DIR [DIR ...]]

Same images (the first --per-class of each class) and classifier budget as `cytoviz figures`
Table 1. Writes benchmarks/results/shift_accuracy.json (or --out); --save-results keeps each
split's ClassificationResult as DIR/<split>.npz for later analysis. --baseline scores each
baseline folder (default: the shipped cytoviz/_shipped/default_baseline); a baseline trained on centre crops
(`scripts/train_default_baseline.py --input-crop 32`) is scored on the same centre crops. Each
baseline row also compares it with the diffusion classifier on the same images: the images only
one of the two gets right, and the exact McNemar p-value (two-sided binomial test on those).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cytoviz._io import save_json
from cytoviz.data.synth import default_splits
from cytoviz.diffusion import ClassifyConfig, classify, load_default_model
from cytoviz.evaluation import BaselineClassifier
from cytoviz.evaluation.baseline import _scores  # what BaselineClassifier.evaluate reports

REPO = Path(__file__).resolve().parents[1]


def paired(ok_diffusion: np.ndarray, ok_baseline: np.ndarray) -> dict[str, float]:
    """Images only the diffusion classifier / only the baseline gets right, and the exact
    McNemar p-value (two-sided binomial test of those discordant counts against 1/2)."""
    from scipy.stats import binomtest

    b = int(np.sum(ok_diffusion & ~ok_baseline))
    c = int(np.sum(~ok_diffusion & ok_baseline))
    p = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    return {"diffusion_only": b, "baseline_only": c, "p_mcnemar_exact": float(p)}


def baseline_label(base: BaselineClassifier, crop: bool) -> str:
    """``"CNN baseline"``, with the centre crop and a zoom augmentation when it has them."""
    notes = [f"{base.image_size} px centre crop"] if crop else []
    aug = base.config.augment
    if aug is not None and aug.zooms:
        notes.append(f"zoom {aug.zoom[0]:g}-{aug.zoom[1]:g}")
    return "CNN baseline" + (f" ({', '.join(notes)})" if notes else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-class", type=int, default=20)
    ap.add_argument("--max-trials", type=int, default=100)
    ap.add_argument("--splits", nargs="+", default=["test_mild", "test_strong"])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "shift_accuracy.json")
    ap.add_argument("--save-results", type=Path, default=None, metavar="DIR")
    ap.add_argument("--model", type=Path, default=None, metavar="DIR",
                    help="diffusion model folder (default: the shipped cytoviz/_shipped/default_model)")
    ap.add_argument("--baseline", type=Path, nargs="+", default=[REPO / "cytoviz" / "_shipped" / "default_baseline"],
                    metavar="DIR", help="baseline folders (default: the shipped cytoviz/_shipped/default_baseline)")
    args = ap.parse_args()
    if args.model is None:
        model = load_default_model()
    else:
        from cytoviz.diffusion import DiffusionModel

        model = DiffusionModel.from_pretrained(args.model)
    baselines = [BaselineClassifier.load(path) for path in args.baseline]
    rows = []
    for split in args.splits:
        ds = default_splits(splits=[split])[split]
        ds = ds.first_per_class(args.per_class)
        t0 = time.time()
        res = classify(model, ds, config=ClassifyConfig(max_trials=args.max_trials), progress=False)
        if args.save_results is not None:
            args.save_results.mkdir(parents=True, exist_ok=True)
            res.save(args.save_results / f"{split}.npz")
        rows.append({"split": split, "model": "CytoDiffusion (tiny, CPU)", "images": len(ds),
                     "accuracy": res.accuracy, "balanced_accuracy": res.balanced_accuracy,
                     "seconds": time.time() - t0, "mean_unet_evals": float(res.n_evals.mean())})
        print(rows[-1], flush=True)
        for path, base in zip(args.baseline, baselines, strict=True):
            crop = base.image_size < ds.image_size
            seen = ds.centre_crop(base.image_size) if crop else ds
            # one pass through the baseline: its predictions give both the scores and the pairs
            pred, truth = base.predict(seen), base.labels_for(seen)
            ev = _scores(truth, pred)
            ok_base = pred == truth
            rows.append({"split": split, "images": len(ds),
                         "model": baseline_label(base, crop),
                         "baseline": str(path), "accuracy": ev["accuracy"],
                         "balanced_accuracy": ev["balanced_accuracy"],
                         "vs_diffusion": paired(res.prediction == ds.labels, ok_base)})
            print(rows[-1], flush=True)
    save_json({"command": "python benchmarks/shift_accuracy.py " + " ".join(sys.argv[1:]),
               "model": str(args.model or "cytoviz/_shipped/default_model"),
               "max_trials": args.max_trials, "torch_threads": torch.get_num_threads(),
               "rows": rows},
              args.out)


if __name__ == "__main__":
    main()
