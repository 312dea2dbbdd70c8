"""Train the shipped discriminative baseline (cytoviz/_shipped/default_baseline) on the embedded synthetic data.

    .venv/bin/python scripts/train_default_baseline.py [--epochs 30] [--max-minutes 25]
        [--input-crop PX --out DIR]

Same training split, augmentations and validation split as the default diffusion model
(scripts/train_default_model.sh); the checkpoint with the best validation balanced accuracy is
kept. Writes cytoviz/_shipped/default_baseline/ (model.safetensors + config.json) and train_summary.json.
The shipped baseline sees the whole 64 px image. ``--input-crop 32`` trains it on the central
32 px, the same pixels the default diffusion model sees (a like-for-like reference; it then
takes 32 px images).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from cytoviz._io import save_json
from cytoviz.augment import AugmentConfig
from cytoviz.data.synth import default_splits
from cytoviz.evaluation import BaselineConfig, train_baseline

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--max-minutes", type=float, default=25.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--input-crop", type=int, default=None, metavar="PX",
                    help="train on the central PX x PX pixels of each image (default: whole image)")
    ap.add_argument("--zoom", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                    help="add a random magnification in [LO, HI] to the augmentations "
                         "(AugmentConfig.zoom; the diffusion model's --zoom)")
    ap.add_argument("--out", type=Path, default=REPO / "cytoviz" / "_shipped" / "default_baseline")
    args = ap.parse_args()
    splits = default_splits()
    if args.input_crop is not None:
        splits = {k: v.centre_crop(args.input_crop) for k, v in splits.items()}
    cfg = BaselineConfig(epochs=args.epochs, max_minutes=args.max_minutes, seed=args.seed)
    if args.zoom is not None:
        cfg = cfg.replace(augment=AugmentConfig(zoom=tuple(args.zoom)))
    start = time.time()
    clf = train_baseline(splits["train"], splits["val"], cfg)
    seconds = time.time() - start
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    clf.save(tmp)
    save_json(
        {
            "command": "python scripts/train_default_baseline.py "
            f"--epochs {args.epochs} --max-minutes {args.max_minutes} --seed {args.seed}"
            + (f" --input-crop {args.input_crop}" if args.input_crop is not None else "")
            + (f" --zoom {args.zoom[0]} {args.zoom[1]}" if args.zoom is not None else ""),
            "seconds": seconds,
            "n_train": len(splits["train"]),
            "val": clf.evaluate(splits["val"]),
            "history": getattr(clf, "history", None),
        },
        tmp / "train_summary.json",
    )
    shutil.rmtree(args.out, ignore_errors=True)
    tmp.rename(args.out)
    print(json.dumps({"out": str(args.out), "seconds": round(seconds, 1)}))


if __name__ == "__main__":
    main()
