"""Which part of the strong shift costs accuracy? Diffusion classifier vs baselines per component.

    .venv/bin/python benchmarks/shift_components.py [--per-class 10] [--max-trials 100]
        [--model DIR] [--baseline DIR [DIR ...]] [--out benchmarks/results/shift_components.json]

Splits the ``"strong"`` domain preset (cytoviz.data.domains.DOMAINS) into three groups and
generates the same cells (one seed, so image i has the same morphology in every domain) under
each group alone and under all of them:

- ``colour``: stain hue, intensity, saturation and illumination;
- ``scale``: the 0.85x magnification;
- ``optics``: camera resolution, blur, sensor noise and JPEG.

Each set is classified by the diffusion model (at most --max-trials trials, pruning on) and
scored by each baseline (centre-cropped for a baseline trained on crops). Writes a JSON list of
rows (condition, model, accuracy, images).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from cytoviz._io import save_json
from cytoviz.data.domains import DOMAINS
from cytoviz.data.synth import synthesize
from cytoviz.diffusion import ClassifyConfig, DiffusionModel, classify, load_default_model
from cytoviz.evaluation import BaselineClassifier

REPO = Path(__file__).resolve().parents[1]

#: DomainShift fields of each component group.
GROUPS = {
    "colour": ("hue_shift_deg", "stain_intensity", "stain_saturation", "illumination"),
    "scale": ("scale",),
    "optics": ("resolution", "blur_px", "noise_std", "jpeg_quality"),
}


def conditions() -> dict[str, object]:
    """The reference domain, each group of the strong preset alone, and the whole preset."""
    strong = DOMAINS["strong"]
    out: dict[str, object] = {"reference": DOMAINS["reference"]}
    for group, fields in GROUPS.items():
        out[group] = DOMAINS["reference"].replace(
            name=group, **{f: getattr(strong, f) for f in fields}
        )
    out["strong (all)"] = strong
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-class", type=int, default=10)
    ap.add_argument("--max-trials", type=int, default=100)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--model", type=Path, default=None, metavar="DIR")
    ap.add_argument("--baseline", type=Path, nargs="+",
                    default=[REPO / "cytoviz" / "_shipped" / "default_baseline"], metavar="DIR")
    ap.add_argument("--conditions", nargs="+", default=None,
                    help=f"subset of {list(conditions())}")
    ap.add_argument("--out", type=Path,
                    default=REPO / "benchmarks" / "results" / "shift_components.json")
    args = ap.parse_args()
    model = load_default_model() if args.model is None else DiffusionModel.from_pretrained(args.model)
    baselines = [BaselineClassifier.load(p) for p in args.baseline]
    wanted = conditions()
    if args.conditions:
        unknown = [c for c in args.conditions if c not in wanted]
        if unknown:
            raise SystemExit(f"unknown condition(s) {unknown}; choose from {list(wanted)}")
        wanted = {c: wanted[c] for c in args.conditions}
    rows = []
    for name, domain in wanted.items():
        ds = synthesize(args.per_class, domain=domain, seed=args.seed)
        t0 = time.time()
        res = classify(model, ds, config=ClassifyConfig(max_trials=args.max_trials), progress=False)
        rows.append({"condition": name, "model": "diffusion", "images": len(ds),
                     "accuracy": res.accuracy, "seconds": time.time() - t0})
        print(rows[-1], flush=True)
        for path, base in zip(args.baseline, baselines, strict=True):
            seen = ds.centre_crop(base.image_size) if base.image_size < ds.image_size else ds
            ev = base.evaluate(seen)
            rows.append({"condition": name, "model": f"baseline {path.name}", "images": len(ds),
                         "accuracy": ev["accuracy"]})
            print(rows[-1], flush=True)
    save_json({"command": "python benchmarks/shift_components.py " + " ".join(sys.argv[1:]),
               "per_class": args.per_class, "max_trials": args.max_trials, "seed": args.seed,
               "torch_threads": torch.get_num_threads(),
               "model": str(args.model or "cytoviz/_shipped/default_model"), "rows": rows},
              args.out)


if __name__ == "__main__":
    main()
