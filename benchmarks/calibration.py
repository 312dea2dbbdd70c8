"""Are the classifiers' probabilities calibrated? Temperature scaling on the validation split.

The shipped diffusion model's class probabilities are ``softmax(-scores / T)`` and the shipped
CNN baseline's ``softmax(logits / T)`` (:mod:`cytoviz.calibration`); each model's ``T`` is fitted
on the default synthetic ``val`` split and the expected calibration error (15 bins), negative
log-likelihood and Brier score are measured on ``test``, ``test_mild`` and ``test_strong`` at
``T = 1`` and at the fitted ``T``.

The diffusion model's test-set passes are the domain-shift protocol's seed 0 (the shipped model,
``eval_runs/domain_shift/outputs/diffusion-seed0-pretrained``); its validation pass is made here
once, at the same classifier budget, and kept (resumable) in ``eval_runs/calibration/val``.

Usage::

    .venv/bin/python benchmarks/calibration.py [--threads 1]

Writes ``benchmarks/results/calibration.json``; ``benchmarks/readme_tables.py`` prints it.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "calibration.json"
STORED = REPO / "eval_runs" / "domain_shift" / "outputs" / "diffusion-seed0-pretrained"
VAL_DIR = REPO / "eval_runs" / "calibration" / "val"
SPLITS = ("test", "test_mild", "test_strong")


def _labels(ds, class_names) -> np.ndarray:
    index = {c: i for i, c in enumerate(class_names)}
    return np.array([index[ds.class_names[y]] for y in ds.labels])


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bins", type=int, default=15)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    missing = [s for s in SPLITS if not (STORED / f"{s}_result.npz").is_file()]
    if missing:
        print(f"calibration: no stored pass of the shipped model for {missing} in {STORED}; run "
              "`bash scripts/run_evaluations.sh shift-diffusion-seed0` first", file=sys.stderr)
        return None

    import torch

    from cytoviz import calibration as cal
    from cytoviz._io import save_json
    from cytoviz._paths import default_baseline_dir
    from cytoviz.data import resolve_one
    from cytoviz.diffusion import ClassificationResult, classify_to_folder, load_default_model
    from cytoviz.evaluation.baseline import BaselineClassifier

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data = {s: resolve_one("synthetic", s) for s in ("val", *SPLITS)}
    diffusion = {s: ClassificationResult.load(STORED / f"{s}_result.npz") for s in SPLITS}
    config = diffusion["test"].config
    val_file = VAL_DIR / "result.npz"
    if val_file.is_file():
        diffusion["val"] = ClassificationResult.load(val_file)
    else:
        model = load_default_model()
        diffusion["val"] = classify_to_folder(model, data["val"], VAL_DIR, config=config)
    if diffusion["val"].config != config:
        raise SystemExit(f"calibration: {val_file} was classified with another budget; delete it")
    baseline = BaselineClassifier.load(default_baseline_dir())
    sources = {
        "CytoDiffusion (tiny, CPU)": ({s: diffusion[s] for s in data},
                                      diffusion["test"].class_names),
        "CNN baseline": ({s: baseline.predict_logits(data[s]) for s in data},
                         tuple(baseline.class_names)),
    }
    models = {}
    for name, (logits, classes) in sources.items():
        y = {s: _labels(data[s], classes) for s in data}
        fitted = cal.fit_temperature(logits["val"], y["val"], fitted_on=f"val, {len(y['val'])} images")
        rows = {}
        for s in SPLITS:
            raw = cal.TemperatureScaling(1.0).probabilities(logits[s])
            scaled = fitted.probabilities(logits[s])
            rows[s] = {"raw": cal.calibration_metrics(raw, y[s], n_bins=args.bins),
                       "scaled": cal.calibration_metrics(scaled, y[s], n_bins=args.bins),
                       "reliability": cal.reliability_curve(scaled, y[s], n_bins=args.bins)
                       .to_dict(orient="list")}
            print(f"{name} {s}: ECE {rows[s]['raw']['ece']:.3f} -> {rows[s]['scaled']['ece']:.3f}, "
                  f"NLL {rows[s]['raw']['nll']:.3f} -> {rows[s]['scaled']['nll']:.3f} "
                  f"(T = {fitted.temperature:.3g})", flush=True)
        models[name] = {"temperature": fitted.temperature, "fitted_on": fitted.fitted_on,
                        "splits": rows}
    out = {"benchmark": "calibration", "bins": args.bins, "classifier_config": config.to_dict(),
           "models": models, "wall_seconds": time.perf_counter() - t0,
           "python": platform.python_version(), "torch_threads": args.threads,
           "command": "python benchmarks/calibration.py"}
    save_json(out, args.out)
    print(f"wrote {args.out}")
    return out


if __name__ == "__main__":  # pragma: no cover
    main()
