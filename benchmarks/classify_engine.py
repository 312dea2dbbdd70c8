"""Efficiency of the batched classification engine (cytoviz.diffusion.classify).

Usage::

    .venv/bin/python benchmarks/classify_engine.py [--threads 1] [--images 24] [--trials 20]
        [--rss-sizes 500 5000] [--rounds 3]

Measures, in one process and under the same load:

1. the raw UNet forward rate (evaluations per second) at the engine's batch size;
2. the UNet evaluations per second inside ``classify`` (pruning off, so every forward pass is
   full) with test-time augmentation and stochastic encoding on (with the opt-in
   ``encode_precision="auto"``, bfloat16 on a CPU with native bfloat16, and with the default
   float32 encode), and with both off; the ratio to (1) is the engine's efficiency (target >= 0.85: the
   rest is augmentation, VAE encodes, error maps and bookkeeping);
3. seconds per image at those settings;
4. peak resident memory (VmHWM, reset after warm-up) of ``classify`` over N images for each of ``--rss-sizes`` (each in a
   fresh subprocess, a 16 px 10-class model, 2 trials per image, pruning off), with and without
   error maps: without them the growth from 500 to 5000 images should be only the per-image
   summary arrays; the error maps are ``N x K x C x h x w`` float32 by design.

Uses ``cytoviz/_shipped/default_model`` when it exists, otherwise the ``tiny`` preset with random weights and
10 classes (timings do not depend on the weights). Images are random ``uint8`` arrays (timings do
not depend on the content with pruning off). Writes ``benchmarks/results/classify_engine.json``
and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def _model(prefer_default: bool = True) -> tuple[Any, str]:
    from cytoviz.classes import CANONICAL_CLASSES
    from cytoviz.diffusion import DiffusionModel, ModelConfig

    path = REPO / "cytoviz" / "_shipped" / "default_model"
    if prefer_default and (path / "cytoviz.json").is_file():
        return DiffusionModel.from_pretrained(path), str(path)
    return DiffusionModel.build(CANONICAL_CLASSES, ModelConfig.tiny(), seed=0), "tiny (random)"


def unet_rate(model: Any, batch: int, reps: int) -> float:
    """UNet evaluations per second of bare forward passes at ``batch``."""
    import torch

    lat, ch = model.config.latent_size, model.config.latent_channels
    g = torch.Generator().manual_seed(0)
    z = torch.randn(batch, ch, lat, lat, generator=g)
    t = torch.randint(1, 999, (batch,), generator=g)
    cond = model.conditioning(torch.arange(batch) % model.n_classes)
    with torch.inference_mode():
        for _ in range(2):
            model.unet(z, t, encoder_hidden_states=cond, **model.unet_kwargs(cond))
        start = time.perf_counter()
        for _ in range(reps):
            model.unet(z, t, encoder_hidden_states=cond, **model.unet_kwargs(cond))
        return batch * reps / (time.perf_counter() - start)


def encode_seconds(model: Any, n: int, reps: int, precision: str = "float32") -> float:
    """Seconds per image of the VAE encode (``n`` images per call, as one trial of ``n``
    images in flight does), in ``precision`` (``"float32"`` or ``"bfloat16"`` autocast)."""
    import torch

    size = model.config.vae_size  # what the VAE encodes (the input_crop, if any)
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                enabled=precision == "bfloat16"):
        for _ in range(2):
            model.vae.encode(x)
        start = time.perf_counter()
        for _ in range(reps):
            model.vae.encode(x)
        return (time.perf_counter() - start) / (reps * n)


def classify_rate(model: Any, images: Any, batch: int, trials: int,
                  **cfg: object) -> dict[str, float]:
    from cytoviz.diffusion import ClassifyConfig, classify

    config = ClassifyConfig(max_trials=trials, min_trials=min(trials, 20), pruning=False,
                            batch_size=batch, **cfg)  # type: ignore[arg-type]
    classify(model, images[:2], config.replace(max_trials=2, min_trials=2), progress=False)
    start = time.perf_counter()
    r = classify(model, images, config, progress=False)
    sec = time.perf_counter() - start
    evals = int(r.n_evals.sum())
    return {"evals_per_s": evals / sec, "s_per_image": sec / len(images), "evals": evals,
            "seconds": sec}


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    """Peak resident memory since the last reset (VmHWM), else since the start (ru_maxrss)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(n: int, keep_maps: bool) -> dict[str, float]:
    """Run in a fresh process: peak RSS before and after classifying ``n`` images."""
    import numpy as np
    import torch

    from cytoviz.classes import CANONICAL_CLASSES
    from cytoviz.diffusion import ClassifyConfig, DiffusionModel, ModelConfig, classify

    torch.set_num_threads(1)
    cfg = ModelConfig(image_size=16, vae_channels=(8, 16), unet_channels=(16, 16), token_dim=16,
                      n_tokens=1, norm_num_groups=4)
    model = DiffusionModel.build(CANONICAL_CLASSES, cfg, seed=0)
    images = np.random.default_rng(0).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    config = ClassifyConfig(max_trials=2, min_trials=2, pruning=False, tta=False, batch_size=60,
                            keep_error_maps=keep_maps)
    classify(model, images[:2], config, progress=False)  # warm up allocations
    reset = _reset_peak_rss()
    before = _peak_rss_mb()
    start = time.perf_counter()
    r = classify(model, images, config, progress=False)
    sec = time.perf_counter() - start
    after = _peak_rss_mb()
    maps_mb = 0.0 if r.error_maps is None else r.error_maps.nbytes / 2**20
    return {"n_images": n, "keep_error_maps": keep_maps, "peak_reset": reset,
            "peak_rss_before_mb": before,
            "peak_rss_after_mb": after, "growth_mb": after - before, "error_maps_mb": maps_mb,
            "images_mb": images.nbytes / 2**20, "seconds": sec}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of (raw, classify, raw); the median is reported")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--rss-sizes", type=int, nargs="*", default=[500, 5000])
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--keep-maps", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.rss_child is not None:
        print(json.dumps(rss_child(args.rss_child, bool(args.keep_maps))))
        return

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    model, model_name = _model()
    model.eval()
    k = model.n_classes
    batch = max(1, 64 // k) * k  # full forward passes: whole images' class sets
    size = model.config.image_size
    images = np.random.default_rng(0).integers(0, 256, (args.images, size, size, 3), dtype=np.uint8)

    # Interleaved rounds: each classify rate is compared with the raw rate measured right
    # before and after it, so a change of load between rounds cancels out; the median of the
    # rounds is reported. "full" is the default (float32 encode, as the reference code); "fast"
    # the opt-in encode_precision="auto" (bfloat16 on a CPU with native bfloat16).
    from cytoviz.diffusion import ClassifyConfig

    fast_precision = ClassifyConfig(encode_precision="auto").resolved(model).encode_precision
    rounds = []
    for _ in range(args.rounds):
        r0 = unet_rate(model, batch, args.reps)
        f = classify_rate(model, images, batch, args.trials, tta=True, stochastic_encode=True)
        r1 = unet_rate(model, batch, args.reps)
        fa = classify_rate(model, images, batch, args.trials, tta=True, stochastic_encode=True,
                           encode_precision=fast_precision)
        r1b = unet_rate(model, batch, args.reps)
        ln = classify_rate(model, images, batch, args.trials, tta=False, stochastic_encode=False)
        r2 = unet_rate(model, batch, args.reps)
        enc = encode_seconds(model, batch // k, args.reps, "float32")
        enc_fast = encode_seconds(model, batch // k, args.reps, fast_precision)
        rounds.append({"raw_before": r0, "raw_middle": r1, "raw_middle_2": r1b, "raw_after": r2,
                       "full": f, "fast": fa, "lean": ln,
                       "eff_full": f["evals_per_s"] / ((r0 + r1) / 2),
                       "eff_fast": fa["evals_per_s"] / ((r1 + r1b) / 2),
                       "eff_lean": ln["evals_per_s"] / ((r1b + r2) / 2),
                       "encode_s_per_image": enc, "encode_fast_s_per_image": enc_fast,
                       # the best an engine can do when every trial of an image also pays one
                       # encode: k UNet evaluations per encode
                       "bound_full": (k / ((r0 + r1) / 2)) / (k / ((r0 + r1) / 2) + enc),
                       "bound_fast": (k / ((r1 + r1b) / 2)) / (k / ((r1 + r1b) / 2) + enc_fast)})
    mid = sorted(range(len(rounds)), key=lambda i: rounds[i]["eff_full"])[len(rounds) // 2]
    pick = rounds[mid]
    mid_fast = sorted(range(len(rounds)), key=lambda i: rounds[i]["eff_fast"])[len(rounds) // 2]
    pick_fast = rounds[mid_fast]
    full, lean, fast = pick["full"], pick["lean"], pick_fast["fast"]
    raw, raw_after = pick["raw_before"], pick["raw_after"]
    raw_mean_lean = (pick["raw_middle_2"] + pick["raw_after"]) / 2

    rss = []
    for n in args.rss_sizes:
        for keep in (0, 1):
            out = subprocess.run(
                [sys.executable, __file__, "--rss-child", str(n), "--keep-maps", str(keep)],
                check=True, capture_output=True, text=True, cwd=REPO,
            )
            rss.append(json.loads(out.stdout.strip().splitlines()[-1]))

    result = {
        "benchmark": "classify_engine",
        "model": model_name,
        "model_repr": repr(model),
        "threads": args.threads,
        "batch_size": batch,
        "images": args.images,
        "trials_per_image": args.trials,
        "raw_unet_evals_per_s": {"before": raw, "after": raw_after},
        "classify_tta_stochastic": {**full, "efficiency": pick["eff_full"]},
        "fast_encode_precision": fast_precision,
        "classify_tta_stochastic_fast_encode": {**fast, "efficiency": pick_fast["eff_fast"],
                                                "encode_precision": fast_precision},
        "classify_no_tta_cached_encode": {**lean,
                                          "efficiency": lean["evals_per_s"] / raw_mean_lean},
        "rounds": rounds,
        "efficiency_tta_rounds": [r["eff_full"] for r in rounds],
        "efficiency_tta_fast_encode_rounds": [r["eff_fast"] for r in rounds],
        "efficiency_no_tta_rounds": [r["eff_lean"] for r in rounds],
        "vae_encode_s_per_image": pick["encode_s_per_image"],
        "vae_encode_fast_s_per_image": pick_fast["encode_fast_s_per_image"],
        "efficiency_bound_with_encode": pick["bound_full"],
        "efficiency_bound_with_fast_encode": pick_fast["bound_fast"],
        "rss": rss,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "classify_engine.json").write_text(json.dumps(result, indent=2) + "\n")

    print(f"model: {model_name}; {args.threads} thread(s); batch {batch} (image, class) pairs; "
          f"{args.images} images x {args.trials} trials x {k} classes, pruning off\n")
    print("| measure | value |\n| --- | --- |")
    print(f"| raw UNet evals/s (before / after) | {raw:.1f} / {raw_after:.1f} |")
    for name, r, eff in (("TTA + stochastic encode (float32, the default)", full, pick["eff_full"]),
                         (f"TTA + stochastic encode ({fast_precision}: --encode-precision auto)",
                          fast, pick_fast["eff_fast"]),
                         ("no TTA, cached encode", lean, lean["evals_per_s"] / raw_mean_lean)):
        print(f"| classify evals/s, {name} | {r['evals_per_s']:.1f} |")
        print(f"| efficiency vs raw UNet, {name} | {eff:.3f} |")
        print(f"| seconds per image, {name} | {r['s_per_image']:.3f} |")
    print(f"| VAE encode, ms per image (float32; {fast_precision}) | "
          f"{1000 * pick['encode_s_per_image']:.2f}; {1000 * pick_fast['encode_fast_s_per_image']:.2f} |")
    print(f"| efficiency bound with one encode per {k} UNet evaluations (float32; {fast_precision}) | "
          f"{pick['bound_full']:.3f}; {pick_fast['bound_fast']:.3f} |")
    print("| efficiency per round (TTA float32; TTA fast; no TTA) | "
          + "; ".join(f"{r['eff_full']:.3f}, {r['eff_fast']:.3f}, {r['eff_lean']:.3f}"
                      for r in rounds) + " |")
    print("\n| images | error maps | peak RSS before (MiB) | after (MiB) | growth (MiB) | "
          "error maps (MiB) | seconds |\n| --- | --- | --- | --- | --- | --- | --- |")
    for r in rss:
        print(f"| {r['n_images']} | {'kept' if r['keep_error_maps'] else 'off'} | "
              f"{r['peak_rss_before_mb']:.1f} | {r['peak_rss_after_mb']:.1f} | "
              f"{r['growth_mb']:.1f} | {r['error_maps_mb']:.1f} | {r['seconds']:.1f} |")


if __name__ == "__main__":
    main()
