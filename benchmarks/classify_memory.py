"""Peak resident memory of one long ``classify`` call (10,000 images by default).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/classify_memory.py [--images 10000]
        [--max-trials 2] [--pool 100]

Classifies N 64 px images with the shipped model (``cytoviz/_shipped/default_model``) in one call of
:func:`cytoviz.diffusion.classify`, at a small trial budget (``max_trials = min_trials = 2``, test-
time augmentation and stochastic encoding on, error maps off), and records the process's
resident memory when 10 %, 25 %, 50 % and 100 % of the images have finished (through
``classify``'s ``image_callback``): the current RSS (VmRSS) and the peak since the warm-up
(VmHWM, reset after a 20-image warm-up; ``ru_maxrss`` where the reset is not available). The
growth per image is the change of the peak between the first and the last checkpoint divided by
the images in between; the result's own storage (its arrays' bytes) is reported separately, so a
reader can tell necessary storage from anything else.

The images are drawn from a pool of ``--pool`` synthetic cells (one generator call), each with a
random rotation by a multiple of 90 degrees and a random flip: N x 64 x 64 x 3 bytes (123 MB
for 10,000) held as one uint8 array, allocated before the peak is reset. The cost of an image
does not depend on its content at this budget (every image runs its 2 trials).

Writes ``benchmarks/results/classify_memory.json`` (with the 1-minute load average before and
after) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from classify_engine import _peak_rss_mb, _reset_peak_rss  # same folder (run as a script)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
FRACTIONS = (0.1, 0.25, 0.5, 1.0)


def _status_mb(key: str) -> float | None:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in MiB, None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _rss_mb() -> float:
    rss = _status_mb("VmRSS")
    if rss is not None:
        return rss
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def make_images(n: int, pool_size: int, seed: int = 0) -> tuple[Any, Any, tuple[str, ...]]:
    """``n`` 64 px images (uint8) from a pool of synthetic cells, rotated and flipped."""
    import numpy as np

    from cytoviz.classes import CANONICAL_CLASSES
    from cytoviz.data.synth import SynthConfig, synthesize

    per_class = max(1, pool_size // len(CANONICAL_CLASSES))
    pool = synthesize(per_class, config=SynthConfig(image_size=64), seed=seed)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(pool), n)
    turns = rng.integers(0, 4, n)
    flips = rng.integers(0, 2, n).astype(bool)
    images = np.empty((n, 64, 64, 3), dtype=np.uint8)
    for start in range(0, n, 1000):  # in blocks: no second full-size copy
        stop = min(start + 1000, n)
        for i in range(start, stop):
            img = np.rot90(pool.images[pick[i]], turns[i])
            images[i] = img[:, ::-1] if flips[i] else img
    return images, pool.labels[pick], pool.class_names


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="images to classify (10000)")
    parser.add_argument("--max-trials", type=int, default=2, help="trials per image (2)")
    parser.add_argument("--pool", type=int, default=100, help="synthetic cells to draw from (100)")
    parser.add_argument("--batch-size", type=int, default=60, help="(image, class) pairs per pass")
    parser.add_argument("--out", type=Path, default=RESULTS / "classify_memory.json")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from cytoviz._io import save_json
    from cytoviz.diffusion import ClassifyConfig, classify
    from cytoviz.diffusion.model import default_model_path, load_default_model

    load_before = os.getloadavg()[0]
    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or torch.get_num_threads()
    torch.set_num_threads(threads)
    model = load_default_model()
    images, labels, class_names = make_images(args.images, args.pool)
    assert tuple(class_names) == model.class_names, (class_names, model.class_names)
    config = ClassifyConfig(max_trials=args.max_trials, min_trials=args.max_trials,
                            keep_error_maps=False, batch_size=args.batch_size)
    # Warm-up with full batches (allocator pools, kernels), then reset the peak counter.
    classify(model, images[:20], config, progress=False)

    n = args.images
    marks = sorted({max(1, round(f * n)) for f in FRACTIONS})
    checkpoints: list[dict[str, float]] = []
    done = 0
    start = time.perf_counter()

    def on_image(_: int) -> None:
        nonlocal done
        done += 1
        if done in marks:
            row = {"images": done, "rss_mb": _rss_mb(), "peak_rss_mb": _peak_rss_mb(),
                   "seconds": time.perf_counter() - start}
            checkpoints.append(row)
            print(f"  {done:6d} images: RSS {row['rss_mb']:.1f} MiB, peak {row['peak_rss_mb']:.1f} "
                  f"MiB, {row['seconds']:.0f} s", flush=True)

    peak_reset = _reset_peak_rss()
    base_rss, base_peak = _rss_mb(), _peak_rss_mb()
    start = time.perf_counter()
    result = classify(model, images, config, labels=labels, progress=False, image_callback=on_image)
    seconds = time.perf_counter() - start
    end_peak, end_rss = _peak_rss_mb(), _rss_mb()
    load_after = os.getloadavg()[0]

    arrays = ("trial_errors", "trial_timesteps", "trial_weights", "n_trials", "n_evals",
              "remaining", "labels")
    result_bytes = sum(getattr(result, a).nbytes for a in arrays if getattr(result, a) is not None)
    first, last = checkpoints[0], checkpoints[-1]
    span = last["images"] - first["images"]
    growth = (last["peak_rss_mb"] - first["peak_rss_mb"]) * 2**20 / span if span else float("nan")
    out = {
        "benchmark": "classify_memory",
        "command": "python benchmarks/classify_memory.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "model": str(default_model_path()),
        "model_repr": repr(model),
        "config": config.to_dict(),
        "images": n,
        "images_mb": images.nbytes / 2**20,
        "threads": threads,
        "peak_reset": peak_reset,
        "rss_before_mb": base_rss,
        "peak_rss_before_mb": base_peak,
        "checkpoints": checkpoints,
        "peak_rss_after_mb": end_peak,
        "rss_after_mb": end_rss,
        "growth_bytes_per_image": growth,
        "growth_from_mb": first["peak_rss_mb"],
        "growth_window": [first["images"], last["images"]],
        "result_bytes": result_bytes,
        "result_bytes_per_image": result_bytes / n,
        "seconds": seconds,
        "seconds_per_image": seconds / n,
        "accuracy": result.accuracy,
        "mean_unet_evals_per_image": float(result.n_evals.mean()),
        "load_average_1min": {"before": load_before, "after": load_after},
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    save_json(out, args.out)

    print(f"\nmodel: {out['model']}; {n} images of 64 px ({out['images_mb']:.0f} MiB, allocated "
          f"before the reset); {args.max_trials} trials, error maps off; {threads} thread(s); "
          f"load average {load_before:.1f} -> {load_after:.1f}\n")
    print("| images done | RSS (MiB) | peak RSS (MiB) | seconds |\n|---|---|---|---|")
    print(f"| 0 (after warm-up) | {base_rss:.1f} | {base_peak:.1f} | 0 |")
    for c in checkpoints:
        print(f"| {c['images']} | {c['rss_mb']:.1f} | {c['peak_rss_mb']:.1f} | {c['seconds']:.0f} |")
    print(f"| result built | {end_rss:.1f} | {end_peak:.1f} | {seconds:.0f} |")
    print(f"\ngrowth of the peak from {first['images']} to {last['images']} images: "
          f"{growth:.0f} bytes per image; the result's own arrays: {result_bytes / n:.0f} bytes "
          f"per image ({result_bytes / 2**20:.2f} MiB in all)")
    print(f"wrote {args.out}")
    return out


if __name__ == "__main__":
    main()
