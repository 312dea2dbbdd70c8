"""Throughput of ``cytoviz train`` for the tiny preset (steps per second of each stage).

Usage::

    .venv/bin/python benchmarks/train_speed.py [--steps 20] [--threads 2] [--batch-size 16]

Builds the default ``tiny`` model for 10 classes, trains ``--steps`` VAE steps and ``--steps``
UNet steps on random 64 px images with the default augmentations, and prints the seconds per step
of each stage (from the run's history) so that a training budget can be chosen. On a shared
machine, run it under the same load as the real run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    import numpy as np
    import torch

    from cytoviz.classes import CANONICAL_CLASSES
    from cytoviz.data import CellDataset
    from cytoviz.diffusion import DiffusionModel, ModelConfig
    from cytoviz.diffusion.train import TrainConfig, train

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n = 256
    data = CellDataset(rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8),
                       np.arange(n) % len(CANONICAL_CLASSES), CANONICAL_CLASSES)
    model = DiffusionModel.build(CANONICAL_CLASSES, ModelConfig.tiny(), seed=0)
    cfg = TrainConfig(steps=args.steps, vae_steps=args.steps, batch_size=args.batch_size,
                      vae_batch_size=args.batch_size, log_every=args.steps, val_every=0,
                      checkpoint_every=10**6)
    with tempfile.TemporaryDirectory() as tmp:
        train(model, data, None, config=cfg, out_dir=tmp, progress=False)
        hist = json.loads((Path(tmp) / "history.json").read_text())["history"]
    t_vae = next(h["seconds"] for h in hist if h["kind"] == "train_vae")
    t_all = next(h["seconds"] for h in hist if h["kind"] == "train_unet")
    print(f"threads={args.threads} batch={args.batch_size} steps={args.steps} per stage")
    print(f"VAE stage:  {t_vae / args.steps:.3f} s/step ({args.steps / t_vae:.2f} steps/s)")
    t_unet = t_all - t_vae
    print(f"UNet stage: {t_unet / args.steps:.3f} s/step ({args.steps / t_unet:.2f} steps/s)")
    print(f"model: {model}")


if __name__ == "__main__":
    main()
