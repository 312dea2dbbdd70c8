"""Do the counterfactual heatmaps mean something? (issue: heatmaps, METHOD.md section 3)

On synthetic cells the generator knows the nucleus and cytoplasm masks. For the granulocyte
transitions (neutrophil <-> eosinophil <-> basophil) this measures, with the shipped default model,
the mean heatmap magnitude inside the cell vs outside (target: >= 3x) and the share
of the in-cell energy that lies in the cytoplasm (where the granules differ) vs the nucleus.
Heatmap runs disable pruning, as the reference code does, so every class gets the same trials.
The magnitude is ``|H_c - D(0) - s_c|`` with ``s_c`` the uniform colour shift of the decode
(its mean outside the latent disc, where delta_c is zero; see cytoviz.heatmaps); the ratio of the
raw ``|H_c - D(0)|`` is reported next to it.

    .venv/bin/python benchmarks/heatmap_energy.py [--per-class 5] [--trials 50]

Writes benchmarks/results/heatmap_energy.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from cytoviz._io import save_json
from cytoviz.data.synth import default_splits
from cytoviz.diffusion import default_model_path, load_default_model
from cytoviz.heatmaps import classify_for_heatmaps, counterfactual_heatmaps, heatmap_energy

GRANULOCYTES = ("neutrophil", "eosinophil", "basophil")
OUT = Path(__file__).resolve().parent / "results" / "heatmap_energy.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-class", type=int, default=5)
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    model = load_default_model()
    test = default_splits(splits=["test"])["test"]
    names = list(test.class_names)
    # clear-cut cells only (no morphological blend), so the masks describe one class
    clear = (test.meta["mix_class"].astype(str) == "").to_numpy()
    idx = np.concatenate([np.flatnonzero((test.labels == names.index(c)) & clear)[: args.per_class]
                          for c in GRANULOCYTES])
    ds = model.crop_input(test.subset(idx))  # images and masks as the model sees them
    t0 = time.time()
    result = classify_for_heatmaps(model, ds, trials=args.trials, seed=args.seed, progress=False)
    t_classify = time.time() - t0
    t0 = time.time()
    heat = counterfactual_heatmaps(result, model, ds)
    t_decode = time.time() - t0
    pairs = [(a, b) for a in GRANULOCYTES for b in GRANULOCYTES if a != b]
    table = heatmap_energy(heat, ds.masks, pairs=pairs)
    raw = heatmap_energy(dataclasses.replace(heat, magnitude=heat.magnitude_raw), ds.masks, pairs=pairs)
    # Where does the "outside" energy sit: in the ring between the cell and the edge of the
    # latent disc (where delta_c is non-zero: the model's counterfactual) or beyond the disc
    # (where delta_c is zero: only the decoder's spatial spread)?
    size = heat.magnitude.shape[-1]
    disc = np.kron(result.mask, np.ones((size // result.mask.shape[0],) * 2, dtype=bool))
    regions = []
    for i in range(len(ds)):
        src = int(heat.true[i])
        cell = ds.masks[i, 0] | ds.masks[i, 1]
        for c in range(len(names)):
            if c == src or (names[src], names[c]) not in pairs:
                continue
            mag, mag_raw = heat.magnitude[i, c], heat.magnitude_raw[i, c]
            regions.append({"cell": float(mag[cell].mean()),
                            "ring_in_disc": float(mag[disc & ~cell].mean()),
                            "outside_disc": float(mag[~disc & ~cell].mean()),
                            "raw_cell": float(mag_raw[cell].mean()),
                            "raw_ring_in_disc": float(mag_raw[disc & ~cell].mean()),
                            "raw_outside_disc": float(mag_raw[~disc & ~cell].mean()),
                            "shift_abs_sum": float(np.abs(heat.background_shift[i, c]).sum())})
    region_means = {k: float(np.mean([r[k] for r in regions])) for k in regions[0]}
    summary = (table.groupby(["source", "target"])[["ratio", "cytoplasm_share", "nucleus_share"]]
               .mean().reset_index())
    overall = {
        "ratio_inside_outside_mean": float(table["ratio"].mean()),
        "ratio_inside_outside_median": float(table["ratio"].median()),
        "cytoplasm_share_mean": float(table["cytoplasm_share"].mean()),
        "nucleus_share_mean": float(table["nucleus_share"].mean()),
        "target_ratio_at_least_3": bool(table["ratio"].mean() >= 3),
        "ratio_inside_outside_raw_mean": float(raw["ratio"].mean()),
        "mean_magnitude_by_region": region_means,
        "ratio_cell_to_ring_in_disc": region_means["cell"] / region_means["ring_in_disc"],
        "ratio_cell_to_outside_disc": region_means["cell"] / region_means["outside_disc"],
    }
    save_json({
        "command": "python benchmarks/heatmap_energy.py " + " ".join(sys.argv[1:]),
        "model": str(default_model_path()),
        "images": len(ds),
        "trials_per_class": args.trials,
        "classification_accuracy_on_these": result.accuracy,
        "seconds_classify": t_classify,
        "seconds_decode": t_decode,
        "decode_cost_ratio": (t_classify + t_decode) / t_classify,
        "overall": overall,
        "per_transition": summary.to_dict(orient="records"),
    }, OUT)
    print("| transition | inside / outside | cytoplasm share | nucleus share |")
    print("|---|---|---|---|")
    for r in summary.itertuples():
        print(f"| {r.source} -> {r.target} | {r.ratio:.1f} | {r.cytoplasm_share:.2f} | {r.nucleus_share:.2f} |")
    print(json.dumps(overall, indent=1))


if __name__ == "__main__":
    main()
