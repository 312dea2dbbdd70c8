"""Cells at another scale: accuracy before and after ``--cell-scale``, with the scale estimated.

Another lab's crops are simulated by enlarging the centre of every synthetic test image by a
known factor (cells appear that many times larger). For each factor the cell scale is estimated
(:func:`cytoviz.data.estimate_cell_scale`), and the shipped CNN baseline (all 600 test images)
and the shipped diffusion model (``--diffusion-per-class`` images per class, the shipped
classifier budget of the stored evaluation passes) are scored on the enlarged images as they
are and after :func:`cytoviz.data.rescale_cells` with the estimate. Where the PBC example is
present, its estimated scale is reported too (the synthetic cells are drawn at its scale).

Usage::

    .venv/bin/python benchmarks/cell_scale.py [--factors 0.75 1.5 2] [--diffusion-per-class 10]

Writes ``benchmarks/results/cell_scale.json``; ``benchmarks/readme_tables.py`` prints it.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "cell_scale.json"
REPO = Path(__file__).resolve().parents[1]


def zoom(images: np.ndarray, factor: float) -> np.ndarray:
    """Cells ``factor`` times larger: the centre ``1 / factor`` of each image, enlarged (or,
    below 1, the image shrunk onto its border colour)."""
    from cytoviz.data import rescale_cells

    return rescale_cells(images, 1.0 / factor)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--factors", type=float, nargs="+", default=[0.75, 1.5, 2.0])
    parser.add_argument("--diffusion-per-class", type=int, default=10,
                        help="test images per class for the diffusion model (0: skip it)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch

    from cytoviz._io import save_json
    from cytoviz._paths import default_baseline_dir, pbc_example_dir
    from cytoviz.data import CellDataset, estimate_cell_scale, rescale_cells, resolve_one
    from cytoviz.diffusion import ClassificationResult, ClassifyConfig, classify, load_default_model
    from cytoviz.evaluation.baseline import BaselineClassifier

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    test = resolve_one("synthetic", "test")
    cnn = BaselineClassifier.load(default_baseline_dir())
    stored = REPO / "eval_runs" / "domain_shift" / "outputs" / "diffusion-seed0-pretrained" / "test_result.npz"
    config = (ClassificationResult.load(stored).config if stored.is_file()
              else ClassifyConfig(max_trials=100, min_trials=20))
    model = load_default_model() if args.diffusion_per_class > 0 else None
    sub_idx = (np.sort(np.concatenate([np.flatnonzero(test.labels == c)[:args.diffusion_per_class]
                                       for c in range(len(test.class_names))]))
               if model is not None else np.zeros(0, int))

    def like(ds: CellDataset, images: np.ndarray) -> CellDataset:
        return CellDataset(images=images, labels=ds.labels, class_names=ds.class_names)

    def score(ds: CellDataset) -> dict[str, float]:
        out = {"cnn_balanced_accuracy": float(cnn.evaluate(ds)["balanced_accuracy"])}
        if model is not None:
            res = classify(model, ds.subset(sub_idx), config, progress=False)
            out["diffusion_balanced_accuracy"] = float(res.balanced_accuracy)
        return out

    rows = [{"factor": 1.0, "estimated_scale": float(estimate_cell_scale(test)),
             "as_is": score(test), "rescaled": None}]
    print(f"factor 1.0: {rows[0]}", flush=True)
    for factor in args.factors:
        enlarged = like(test, zoom(test.images, factor))
        est = float(estimate_cell_scale(enlarged))
        row = {"factor": factor, "estimated_scale": est, "as_is": score(enlarged),
               "rescaled": score(rescale_cells(enlarged, est))}
        rows.append(row)
        print(f"factor {factor}: {row}", flush=True)
    pbc = None
    folder = pbc_example_dir()
    if folder is not None and Path(folder).is_dir():
        real = resolve_one(folder, image_size=64)
        pbc = {"images": len(real), "estimated_scale": float(estimate_cell_scale(real))}
    out = {"benchmark": "cell_scale", "n_test": len(test), "n_diffusion": len(sub_idx),
           "classifier_config": config.to_dict(), "rows": rows, "pbc_example": pbc,
           "wall_seconds": time.perf_counter() - t0, "torch_threads": args.threads,
           "python": platform.python_version(), "command": "python benchmarks/cell_scale.py"}
    save_json(out, args.out)
    print(f"wrote {args.out}")
    return out


if __name__ == "__main__":  # pragma: no cover
    main()
