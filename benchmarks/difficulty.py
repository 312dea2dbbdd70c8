"""How hard is the default synthetic benchmark? Train the CNN baseline and score every test set.

Trains :func:`cytoviz.evaluation.baseline.train_baseline` on ``default_splits()["train"]`` (with
``"val"`` for checkpoint selection) and reports balanced accuracy on ``test``, ``test_mild`` and
``test_strong``, plus accuracy on the clear-cut and the blended (hard) test images.

Targets (the generator is tuned to meet them): in-domain balanced accuracy in [0.80, 0.97] and a
loss of at least 10 points on ``test_strong``.

Usage::

    .venv/bin/python benchmarks/difficulty.py [--epochs 15] [--max-minutes 10] [--threads 1]

Writes ``benchmarks/results/difficulty.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "difficulty.json"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--max-minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the model")
    parser.add_argument("--scale", type=float, default=1.0, help="size of the splits")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch

    from cytoviz._io import save_json
    from cytoviz.data.synth import SynthConfig, default_splits
    from cytoviz.evaluation.baseline import BaselineConfig, train_baseline

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    splits = default_splits(config=SynthConfig(seed=args.seed), scale=args.scale)
    t_data = time.perf_counter() - t0
    config = BaselineConfig(epochs=args.epochs, max_minutes=args.max_minutes, seed=args.seed)
    t0 = time.perf_counter()
    model = train_baseline(splits["train"], splits["val"], config, progress=False)
    t_train = time.perf_counter() - t0

    scores: dict[str, dict[str, float]] = {}
    for name in ("train", "val", "test", "test_mild", "test_strong"):
        ds = splits[name]
        pred = model.predict(ds)
        y = model.labels_for(ds)
        res = model.evaluate(ds)
        hard = ds.meta["mix_class"].to_numpy() != ""
        res["accuracy_clear"] = float(np.mean(pred[~hard] == y[~hard]))
        res["accuracy_hard"] = float(np.mean(pred[hard] == y[hard])) if hard.any() else float("nan")
        res["hard_fraction"] = float(hard.mean())
        per_class = {
            c: float(np.mean(pred[y == k] == k)) for k, c in enumerate(model.class_names)
            if np.any(y == k)
        }
        res["recall_per_class"] = per_class
        scores[name] = res
    drop = scores["test"]["balanced_accuracy"] - scores["test_strong"]["balanced_accuracy"]
    result = {
        "command": "python benchmarks/difficulty.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "baseline_config": config.to_dict(),
        "n_train": len(splits["train"]),
        "train_counts": splits["train"].class_counts(),
        "epochs_run": len(model.history),
        "seconds_data": round(t_data, 1),
        "seconds_train": round(t_train, 1),
        "torch_threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        "scores": scores,
        "strong_shift_drop_points": 100 * drop,
        "targets": {
            "in_domain_bacc_in_[0.80,0.97]": 0.80 <= scores["test"]["balanced_accuracy"] <= 0.97,
            "strong_drop_>=_10_points": 100 * drop >= 10,
        },
    }
    save_json(result, args.out)
    print("| split | n | accuracy | balanced accuracy | acc. clear | acc. hard |")
    print("|---|---|---|---|---|---|")
    for name, res in scores.items():
        print(f"| {name} | {res['n_images']} | {res['accuracy']:.3f} | "
              f"{res['balanced_accuracy']:.3f} | {res['accuracy_clear']:.3f} | "
              f"{res['accuracy_hard']:.3f} |")
    print(f"\nstrong-shift drop: {100 * drop:.1f} points; data {t_data:.0f} s, "
          f"training {t_train:.0f} s ({len(model.history)} epochs); wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
