"""Which timesteps carry the class information? Timestep weightings on unpruned runs.

Usage::

    # unpruned runs (every class gets every trial) of the default model:
    cytoviz classify --model cytoviz/_shipped/default_model --data synthetic --split val --no-pruning \\
        --max-trials 100 --out runs/val_noprune
    .venv/bin/python benchmarks/weighting_ablation.py --fit runs/val_noprune/result.npz \\
        [--eval runs/test_noprune/result.npz] [--out benchmarks/results/weighting_ablation.json]

From the per-trial, per-class raw errors of an unpruned :class:`ClassificationResult` this
recomputes, without running the model again, the accuracy and balanced accuracy that each
timestep weighting of METHOD.md's Table 4 gives (the paper's polynomial, uniform, SNR,
exp(-5.5 t), per-trial normalisation, ranking), the polynomial refitted on ``--fit``
(:func:`cytoviz.diffusion.fit_weighting`, as ``cytoviz refit-weighting`` does) and the logistic
bucket weighting fitted on ``--fit``; and the accuracy of uniform weights restricted to five
bands of timesteps (where the class information lies). Fitted weightings are scored on
``--eval`` (a different set); on ``--fit`` itself they are in-sample and marked so.

Scores follow the reference code: the mean over trials of the weighted errors (every class has
every trial, so the per-trial minimum subtraction does not change the arg-min). Pruning is
not simulated: it is a cost saving at (nearly) equal accuracy (``benchmarks/pruning.py``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BANDS = ((1, 200), (200, 400), (400, 600), (600, 800), (800, 1000))


def _scores(result: Any, scheme: str, **kw: Any) -> np.ndarray:
    """``(N, K)`` class scores (lower is better) of an unpruned result under ``scheme``."""
    from cytoviz.diffusion.weighting import weight_errors

    raw = result.raw_errors  # (N, T, K), NaN-free for an unpruned run
    ts = result.timesteps
    out = np.empty((raw.shape[0], raw.shape[2]))
    for i in range(raw.shape[0]):
        w, _ = weight_errors(raw[i], ts[i], scheme,
                             num_train_timesteps=result.num_train_timesteps, **kw)
        out[i] = np.nanmean(w, axis=0)
    return out


def _band_scores(result: Any, lo: int, hi: int) -> np.ndarray:
    raw, ts = result.raw_errors, result.timesteps
    keep = (ts >= lo) & (ts < hi)
    masked = np.where(keep[..., None], raw, np.nan)
    return np.nanmean(masked, axis=1)


def _accuracy(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    pred = np.argmin(scores, axis=1)
    correct = pred == labels
    recalls = [correct[labels == c].mean() for c in np.unique(labels)]
    return {"accuracy": float(correct.mean()), "balanced_accuracy": float(np.mean(recalls))}


def _check(result: Any, path: str) -> None:
    if result.labels is None:
        raise SystemExit(f"{path}: the result has no labels; classify a labelled set")
    if result.config.pruning or np.isnan(result.raw_errors).any():
        raise SystemExit(f"{path}: pruned run; classify with --no-pruning so that every class "
                         "has every trial")


def evaluate(result: Any, fitted: dict[str, dict[str, Any]], model: str) -> dict[str, Any]:
    from cytoviz.diffusion.weighting import POLY_COEFFS

    labels = np.asarray(result.labels)
    abar = None
    rows: dict[str, Any] = {}
    for scheme in ("polynomial", "uniform", "snr", "exp", "normalise", "ranking"):
        kw: dict[str, Any] = {}
        if scheme == "polynomial":
            kw["poly_coeffs"] = POLY_COEFFS
        if scheme == "snr":
            if abar is None:
                from diffusers import DDPMScheduler

                sched = DDPMScheduler.from_pretrained(Path(model) / "scheduler",
                                                      local_files_only=True)
                abar = sched.alphas_cumprod.double().numpy()
            kw["alphas_cumprod"] = abar
        rows[scheme] = _accuracy(_scores(result, scheme, **kw), labels)
    for name, spec in fitted.items():
        rows[name] = _accuracy(_scores(result, spec["scheme"], **spec["kw"]), labels)
    bands = {f"t in [{lo}, {hi})": _accuracy(_band_scores(result, lo, hi), labels)
             for lo, hi in BANDS}
    return {"n_images": len(result), "trials": int(result.n_trials.max()), "weightings": rows,
            "bands_uniform": bands}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fit", required=True, help="unpruned result.npz to fit weightings on")
    p.add_argument("--eval", help="unpruned result.npz of another set to score them on")
    p.add_argument("--model", default=str(REPO / "cytoviz/_shipped/default_model"),
                   help="model folder whose noise schedule the 'snr' weighting uses")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/weighting_ablation.json"))
    args = p.parse_args(argv)

    from cytoviz.diffusion import ClassificationResult
    from cytoviz.diffusion.weighting import fit_logistic_weighting, fit_weighting

    fit = ClassificationResult.load(args.fit)
    _check(fit, args.fit)
    coeffs = fit_weighting(fit.raw_errors, fit.timesteps, fit.labels,
                           num_train_timesteps=fit.num_train_timesteps)
    buckets = fit_logistic_weighting(fit.raw_errors, fit.timesteps, fit.labels,
                                     num_train_timesteps=fit.num_train_timesteps)
    fitted = {
        "polynomial refitted": {"scheme": "polynomial", "kw": {"poly_coeffs": tuple(coeffs)}},
        "logistic (fitted)": {"scheme": "logistic", "kw": {"bucket_weights": tuple(buckets)}},
    }
    out: dict[str, Any] = {
        "benchmark": "weighting_ablation",
        "fit_result": args.fit,
        "refitted_poly_coeffs": [float(c) for c in coeffs],
        "logistic_bucket_weights": [float(b) for b in buckets],
        "fit": evaluate(fit, fitted, args.model),
        "fitted_in_sample_on_fit": list(fitted),
    }
    if args.eval:
        ev = ClassificationResult.load(args.eval)
        _check(ev, args.eval)
        out["eval_result"] = args.eval
        out["eval"] = evaluate(ev, fitted, args.model)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(path)

    sets = [("fit", out["fit"])] + ([("eval", out["eval"])] if "eval" in out else [])
    print("| weighting | " + " | ".join(f"{s} ({d['n_images']} images, {d['trials']} trials)"
                                        for s, d in sets) + " |")
    print("|---|" + "---|" * len(sets))
    for name in out["fit"]["weightings"]:
        mark = " (in-sample on fit)" if name in fitted else ""
        print(f"| {name}{mark} | " + " | ".join(
            f"{100 * d['weightings'][name]['balanced_accuracy']:.1f} %" for _, d in sets) + " |")
    for name in out["fit"]["bands_uniform"]:
        print(f"| uniform, only {name} | " + " | ".join(
            f"{100 * d['bands_uniform'][name]['balanced_accuracy']:.1f} %" for _, d in sets) + " |")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
