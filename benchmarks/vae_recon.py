"""How well the `tiny` VAE keeps the cell detail, as a function of its training steps.

Usage::

    .venv/bin/python benchmarks/vae_recon.py [--steps 300 1000 2000] [--per-class 10]

The diffusion classifier can only use what the VAE latent keeps: if granules, nuclear lobes or
cytoplasm colour are blurred away in ``decode(encode(x))``, no UNet can tell the classes apart
by them. This measures the reconstruction of the test split (the first ``--per-class`` images of
each class; posterior mean, no sampling):

- the shipped VAE (``cytoviz/_shipped/default_model/vae``);
- a fresh VAE trained with the shipped recipe's VAE settings (``train_config.json``: batch,
  learning rate, L1 loss, KL weight, augmentations) on the default synthetic training split,
  measured after each of ``--steps`` (one run, resumed from its checkpoint each time).

Reports PSNR (dB, images in [-1, 1]) and mean absolute error, overall, inside the cell mask and
per class, plus the training seconds. Writes ``benchmarks/results/vae_recon.json`` and
``benchmarks/results/vae_recon.png`` (rows: original, shipped VAE, then each step count).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MODEL = REPO / "cytoviz" / "_shipped" / "default_model"


def _recon(vae, x):
    import torch

    with torch.inference_mode():
        return vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)


def _metrics(x, r, masks, labels, names):
    d = (r - x).float().numpy()
    mse = (d ** 2).mean(axis=(1, 2, 3))
    psnr = 10 * np.log10(4.0 / np.maximum(mse, 1e-12))
    m = masks[:, None].astype(bool)
    cell = np.array([np.abs(d[i][np.broadcast_to(m[i], d[i].shape)]).mean() for i in range(len(d))])
    return {
        "psnr_db": float(psnr.mean()),
        "mae": float(np.abs(d).mean()),
        "mae_in_cell": float(cell.mean()),
        "psnr_db_per_class": {n: float(psnr[labels == c].mean()) for c, n in enumerate(names)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, nargs="+", default=[300, 1000, 2000])
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--out", type=Path, default=RESULTS / "vae_recon.json")
    args = ap.parse_args()

    import torch
    from PIL import Image

    from cytoviz._io import save_json
    from cytoviz.augment import to_tensor
    from cytoviz.data.synth import default_splits
    from cytoviz.diffusion import DiffusionModel, ModelConfig
    from cytoviz.diffusion.train import TrainConfig, train

    splits = default_splits(splits=["train", "test"])
    test = splits["test"]
    test = test.first_per_class(args.per_class)
    x = to_tensor(test.images)
    # the cell = nucleus or cytoplasm (masks are (N, 3, H, W): nucleus, cytoplasm, granules)
    masks = (test.masks[:, 0] | test.masks[:, 1]) if test.masks is not None else np.ones(test.images.shape[:3], bool)
    names = test.class_names
    rows = {}
    shipped = DiffusionModel.from_pretrained(MODEL)
    recons = {"shipped": _recon(shipped.vae, x)}
    rows["shipped"] = _metrics(x, recons["shipped"], masks, test.labels, names)
    print("shipped", rows["shipped"]["psnr_db"], flush=True)

    tc = json.loads((MODEL / "train_config.json").read_text())
    tc.pop("config_class", None)
    meta = json.loads((MODEL / "cytoviz.json").read_text())
    steps = sorted(set(args.steps))
    cfg = TrainConfig.from_dict(tc).replace(vae_steps=steps[-1], steps=1, val_every=0,
                                            val_accuracy_images=0, checkpoint_every=10**6,
                                            log_every=50, max_minutes=None)
    model = DiffusionModel.build(meta["class_names"], ModelConfig.from_dict(meta["config"]), seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        for s in steps:
            t0 = time.time()
            train(model, splits["train"], None, config=cfg, out_dir=tmp, progress=False, stop_at=s)
            hist = json.loads((Path(tmp) / "history.json").read_text())["history"]
            secs = max(h["seconds"] for h in hist if h["kind"] == "train_vae")
            model.vae.eval()
            recons[f"{s} steps"] = _recon(model.vae, x)
            rows[f"{s} steps"] = {**_metrics(x, recons[f"{s} steps"], masks, test.labels, names),
                                 "vae_steps": s, "train_seconds": secs,
                                 "wall_seconds_this_stretch": time.time() - t0}
            print(s, rows[f"{s} steps"]["psnr_db"], secs, flush=True)

    # picture: two cells per class; rows original, shipped, then each step count
    pick = np.concatenate([np.flatnonzero(test.labels == c)[:2] for c in range(len(names))])

    def strip(t):
        a = ((t[pick].permute(0, 2, 3, 1).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
        return np.concatenate(list(a), axis=1)

    grid = np.concatenate([strip(x)] + [strip(r) for r in recons.values()], axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    png = args.out.with_suffix(".png")
    tmp_png = png.with_suffix(".tmp.png")
    Image.fromarray(grid).save(tmp_png)
    tmp_png.replace(png)
    save_json({"benchmark": "vae_recon", "command": "python benchmarks/vae_recon.py " + " ".join(sys.argv[1:]),
               "images": len(test), "torch_threads": torch.get_num_threads(),
               "picture_rows": ["original", *recons.keys()], "rows": rows}, args.out)
    print("| VAE | steps | PSNR (dB) | MAE | MAE in cell | training s |\n|---|---|---|---|---|---|")
    for k, r in rows.items():
        print(f"| {k} | {r.get('vae_steps', tc['vae_steps'])} | {r['psnr_db']:.2f} | {r['mae']:.4f} | "
              f"{r['mae_in_cell']:.4f} | {r.get('train_seconds', float('nan')):.0f} |")


if __name__ == "__main__":
    main()
