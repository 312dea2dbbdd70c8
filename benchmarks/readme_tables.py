"""Print the README's measured tables (markdown) from benchmarks/results/*.json.

    .venv/bin/python benchmarks/readme_tables.py

Every number in the README's tables comes from a JSON file written by a script in benchmarks/
(or by `cytoviz figures`); this script only formats them, and says which file each table is from.
"""

from __future__ import annotations

import json
from pathlib import Path

from cytoviz.classes import CANONICAL_CLASSES

RES = Path(__file__).resolve().parent / "results"


def _load(name: str) -> dict | None:
    path = RES / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def difficulty() -> None:
    d = _load("difficulty")
    if d is None:
        return
    print(f"Source: `benchmarks/results/difficulty.json` (CNN baseline, {d.get('epochs_run')} epochs)\n")
    print("| test set | balanced accuracy | accuracy, clear-cut cells | accuracy, blended (hard) cells |")
    print("|---|---|---|---|")
    names = {"test": "in-domain", "test_mild": "mild shift (Raabin Test-B-like)",
             "test_strong": "strong shift (LISC-like)"}
    for k, label in names.items():
        s = d["scores"][k]
        print(f"| {label} | {100 * s['balanced_accuracy']:.1f} % | {100 * s['accuracy_clear']:.1f} % | "
              f"{100 * s['accuracy_hard']:.1f} % |")
    print()


def psychometric() -> None:
    d = _load("psychometric_agreement")
    if d is None:
        return
    g = d["fine_grid"]
    print("Source: `benchmarks/results/psychometric_agreement.json` (cytoviz's two engines vs psignifit "
          f"4.3 fine grid {g['threshold']}x{g['width']}x{g['lambda']}x{g['eta']}; NUTS is the default, "
          "the grid engine is opt-in)\n")
    print("| data | levels | engine | threshold mean (cytoviz / psignifit) | threshold 95 % CI (cytoviz / "
          "psignifit) | width mean | width 95 % CI | within targets |")
    print("|---|---|---|---|---|---|---|---|")
    engines = d["engines"]
    for i, r0 in enumerate(next(iter(engines.values()))["rows"]):
        for engine, block in engines.items():
            r = block["rows"][i]
            tm, tc, wm, wc = r["threshold_mean"], r["threshold_ci"], r["width_mean"], r["width_ci"]
            print(f"| {r0['data']} | {r['levels']} | {engine} | {tm[0]:.4f} / {tm[1]:.4f} | "
                  f"[{tc[0][0]:.4f}, {tc[0][1]:.4f}] / [{tc[1][0]:.4f}, {tc[1][1]:.4f}] | "
                  f"{wm[0]:.4f} / {wm[1]:.4f} | [{wc[0][0]:.3f}, {wc[0][1]:.3f}] / "
                  f"[{wc[1][0]:.3f}, {wc[1][1]:.3f}] | {'yes' if r['within_targets'] else 'NO'} |")
    print()


def psychometric_grid_steps() -> None:
    d = _load("psychometric_grid_steps")
    if d is None:
        return
    print("Source: `benchmarks/results/psychometric_grid_steps.json` (`python "
          "benchmarks/psychometric_grid_steps.py`; largest differences from psignifit's fine grid over "
          f"{len(d['sets'])} selection data sets, Monte-Carlo target {d['mcse_target']}; default "
          f"{tuple(d['default'])})\n")
    print("| grid cells (threshold, width, lambda, eta) | fit time, fixed draws (s) | largest mean difference "
          "(threshold / width) | largest 95 % bound difference (threshold / width) |")
    print("|---|---|---|---|")
    for r in d["rows"]:
        print(f"| {tuple(r['grid_steps'])} | {r['wall_s']:.2f} | {r['threshold_max_dmean']:.4f} / "
              f"{r['width_max_dmean']:.4f} | {r['threshold_max_dci']:.4f} / {r['width_max_dci']:.4f} |")
    print()


def speed() -> None:
    rows = []
    d = _load("classify_engine")
    if d is not None:
        t = d.get("classify_tta_stochastic", {})
        n = d.get("classify_no_tta_cached_encode", {})
        fast = d.get("classify_tta_stochastic_fast_encode")
        prec = d.get("fast_encode_precision", "float32")
        extra = (f"; {fast['efficiency']:.2f} with a {prec} encode (`--encode-precision auto`)"
                 if fast is not None and prec != "float32" else "")
        rows.append(("classify engine efficiency (UNet evals/s in `classify` / raw UNet rate, same batch)",
                     f"{t.get('efficiency', float('nan')):.2f} with TTA + stochastic encode{extra}; "
                     f"{n.get('efficiency', float('nan')):.2f} without TTA", ">= 0.85", "classify_engine.json"))
        if "vae_encode_s_per_image" in d:
            enc = (f"{1000 * d['vae_encode_s_per_image']:.1f} ms; bound "
                   f"{d.get('efficiency_bound_with_encode', float('nan')):.2f}")
            if "vae_encode_fast_s_per_image" in d and prec != "float32":
                enc += (f" ({prec}: {1000 * d['vae_encode_fast_s_per_image']:.1f} ms; bound "
                        f"{d.get('efficiency_bound_with_fast_encode', float('nan')):.2f})")
            rows.append(("VAE encode per image and trial (TTA), and the efficiency an engine with no "
                         "other overhead would reach", enc, "-", "classify_engine.json"))
        rss = [r for r in d.get("rss", []) if r.get("keep_error_maps") is False]
        m = _load("classify_memory")
        if m is not None:
            rows.append(("peak RSS growth while classifying (shipped model, one `classify` call)",
                         f"+{m['growth_bytes_per_image']:.0f} bytes/image from {m['growth_window'][0]:,} "
                         f"to {m['growth_window'][1]:,} images (the result's own arrays: "
                         f"{m['result_bytes_per_image']:.0f} bytes/image)",
                         "the result's storage", "classify_memory.json"))
        elif rss:
            growth = ", ".join(f"{r['n_images']} images: +{r['growth_mb']:.0f} MB" for r in rss)
            rows.append(("peak RSS growth while classifying (streaming)", growth, "flat", "classify_engine.json"))
    p = _load("psychometric_vs_psignifit")
    if p is not None:
        rows.append(("psychometric: 7 fits, cytoviz (NUTS, the default) / psignifit wall time",
                     f"{p['ratio_warm']:.2f} (model compiled once); {p['ratio_cold']:.2f} including the compile",
                     "<= 1.0", "psychometric_vs_psignifit.json"))
        g = p.get("grid")
        if g is not None:
            rows.append(("psychometric: 7 fits, cytoviz (`engine=\"grid\"`, opt-in) / psignifit wall time",
                         f"{g['ratio_warm']:.2f}; {g['ratio_cold']:.2f} as the first fit in a fresh process",
                         "<= 1.0", "psychometric_vs_psignifit.json"))
    s = _load("synth_speed")
    if s is not None:
        r64 = [r for r in s["results"] if r["image_size"] == 64 and r["domain"] == "reference"]
        if r64:
            rows.append(("synthetic generator, 64 px", f"{r64[0]['images_per_second']:.0f} images/s "
                         f"(load average {s.get('load_average_1min', float('nan')):.1f})", "-", "synth_speed.json"))
    sh = _load("shift_accuracy")
    if sh is not None:
        diff = [r for r in sh["rows"] if "seconds" in r]
        if diff:
            sec = sum(r["seconds"] for r in diff) / sum(r["images"] for r in diff)
            evals = sum(r["mean_unet_evals"] * r["images"] for r in diff) / sum(r["images"] for r in diff)
            threads = sh.get("torch_threads")
            how = (f"{threads} torch thread(s)" if threads else
                   "1 torch thread: OMP_NUM_THREADS=1 in scripts/benchmark_default_model.sh")
            rows.append((f"seconds per image, shipped model (pruning on, <= 100 trials, {how})",
                         f"{sec:.2f} s ({evals:.0f} UNet evaluations per image)", "-", "shift_accuracy.json"))
    h = _load("heatmap_energy")
    if h is not None:
        rows.append(("K x K heatmap grid cost / classification passes it needs",
                     f"{h['decode_cost_ratio']:.3f}", "<= 1.1", "heatmap_energy.json"))
    if rows:
        print("| benchmark | measured | target | source (benchmarks/results/) |")
        print("|---|---|---|---|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
        print()


def memory() -> None:
    d = _load("classify_memory")
    if d is None:
        return
    cfg = d["config"]
    print(f"Source: `benchmarks/results/classify_memory.json` ({d['images']} images of 64 px in one "
          f"`classify` call, shipped model, {cfg['max_trials']} trials, error maps off, "
          f"{d['threads']} thread(s), load average {d['load_average_1min']['before']:.1f} / "
          f"{d['load_average_1min']['after']:.1f} before / after)\n")
    print("| images done | resident (MiB) | peak resident since warm-up (MiB) | seconds |")
    print("|---|---|---|---|")
    print(f"| 0 (after warm-up) | {d['rss_before_mb']:.1f} | {d['peak_rss_before_mb']:.1f} | 0 |")
    for c in d["checkpoints"]:
        print(f"| {c['images']:,} | {c['rss_mb']:.1f} | {c['peak_rss_mb']:.1f} | {c['seconds']:.0f} |")
    print(f"| result built | {d['rss_after_mb']:.1f} | {d['peak_rss_after_mb']:.1f} | {d['seconds']:.0f} |")
    print(f"\nGrowth of the peak from {d['growth_window'][0]:,} to {d['growth_window'][1]:,} images: "
          f"{d['growth_bytes_per_image']:.0f} bytes per image; the result's own arrays take "
          f"{d['result_bytes_per_image']:.0f} bytes per image ({d['result_bytes'] / 2**20:.2f} MiB). "
          f"The images themselves ({d['images_mb']:.0f} MiB) were allocated before the warm-up.\n")


def pruning() -> None:
    d = _load("pruning")
    if d is None:
        return
    print(f"Source: `benchmarks/results/pruning.json`; model: {d['model']}\n")
    print("| max trials | pruning | images | UNet evals / image | accuracy | balanced accuracy |")
    print("|---|---|---|---|---|---|")
    for r in d["rows"]:
        print(f"| {r['max_trials']} | {'on' if r['pruning'] else 'off'} | {r['images']} | "
              f"{r['mean_unet_evals_per_image']:.0f} | {100 * r['accuracy']:.1f} % | {100 * r['balanced_accuracy']:.1f} % |")
    t = d.get("target")
    if t:
        parts = [f"{c['max_trials']} trials: {100 * c['evals_share']:.1f} % of the evaluations, "
                 f"{c['accuracy_minus_reference_points']:+.1f} points" for c in t["checks"]]
        print(f"\nAgainst the {t['reference_max_trials']}-trial unpruned run "
              f"({100 * t['reference_accuracy']:.1f} %, {t['reference_evals_per_image']:.0f} evaluations "
              f"per image), pruning at " + "; ".join(parts) + ". Target (within 1 point, at most 15 % "
              f"of the evaluations): **{'met' if t['met'] else 'not met'}**.")
    print()


def heatmaps() -> None:
    d = _load("heatmap_energy")
    if d is None:
        return
    o = d["overall"]
    print(f"Source: `benchmarks/results/heatmap_energy.json` ({d['images']} clear-cut granulocytes, "
          f"{d['trials_per_class']} trials per class, pruning off)\n")
    print("| transition | mean \\|H\\| inside / outside the cell | cytoplasm share | nucleus share |")
    print("|---|---|---|---|")
    for r in d["per_transition"]:
        print(f"| {r['source']} -> {r['target']} | {r['ratio']:.1f} | {r['cytoplasm_share']:.2f} | {r['nucleus_share']:.2f} |")
    print(f"| **all** | **{o['ratio_inside_outside_mean']:.1f}** | **{o['cytoplasm_share_mean']:.2f}** | "
          f"**{o['nucleus_share_mean']:.2f}** |\n")
    reg = o.get("mean_magnitude_by_region")
    if reg:
        print(f"Mean magnitude by region: cell {reg['cell']:.3f}, ring between the cell and the edge of "
              f"the latent disc {reg['ring_in_disc']:.3f}, outside the disc {reg['outside_disc']:.3f} "
              f"(cell / ring {o['ratio_cell_to_ring_in_disc']:.1f}).")
        if "raw_cell" in reg:
            print(f"Without removing the decoder's uniform colour shift (raw \\|H - D(0)\\|): cell "
                  f"{reg['raw_cell']:.3f}, ring {reg['raw_ring_in_disc']:.3f}, outside the disc "
                  f"{reg['raw_outside_disc']:.3f}; inside / outside "
                  f"{o['ratio_inside_outside_raw_mean']:.1f}. The removed shift averages "
                  f"{reg['shift_abs_sum']:.3f} (summed over the colour channels).")
        print()


def table1() -> None:
    path = RES / "table1_accuracy.csv"
    if not path.is_file():
        return
    import csv

    rows = list(csv.DictReader(path.open()))
    print("Source: `benchmarks/results/table1_accuracy.csv`, copied from `figures/table1_accuracy.csv` "
          "written by `cytoviz figures` (README command 1)\n")
    print("| model | test set | images | accuracy | balanced accuracy |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['test set']} | {r['n images']} | {float(r['accuracy']):.1f} % | "
              f"{float(r['balanced accuracy']):.1f} % |")
    shift = _load("shift_accuracy")
    if shift is not None:
        # The shifted sets for the diffusion model, and every split for baselines that Table 1
        # does not have (e.g. one trained on the diffusion model's centre crops).
        for r in shift["rows"]:
            diffusion = r["model"].startswith("CytoDiffusion")
            if (diffusion and r["split"] == "test") or (not diffusion and r["model"] == "CNN baseline"):
                continue
            name = "in-domain" if r["split"] == "test" else r["split"].replace("test_", "")
            print(f"| {r['model']} | {name} (benchmarks/shift_accuracy.py) | {r['images']} | "
                  f"{100 * r['accuracy']:.1f} % | {100 * r['balanced_accuracy']:.1f} % |")
    print()


def shift_all() -> None:
    """All 60 test images per class of every set (benchmarks/shift_accuracy.py --per-class 60)."""
    data = _load("shift_accuracy_all")
    if data is None:
        return
    print(f"Source: `benchmarks/results/shift_accuracy_all.json` (`{data['command']}`; at most "
          f"{data['max_trials']} trials, pruning on, {data['torch_threads']} torch thread(s))\n")
    diff_name = next(r["model"] for r in data["rows"] if r["model"].startswith("CytoDiffusion"))
    baselines = list(dict.fromkeys(r["model"] for r in data["rows"] if r["model"] != diff_name))
    print("| test set | images | " + " | ".join([diff_name, *baselines])
          + " | diffusion only / baseline only right (p, exact McNemar) |")
    print("|---" * (4 + len(baselines)) + "|")
    for split in dict.fromkeys(r["split"] for r in data["rows"]):
        rows = {r["model"]: r for r in data["rows"] if r["split"] == split}
        diff = rows[diff_name]

        def cell(r: dict | None) -> str:
            return "-" if r is None else f"{100 * r['balanced_accuracy']:.1f} %"

        pairs = "; ".join(
            f"{_short(name)}: {rows[name]['vs_diffusion']['diffusion_only']} / "
            f"{rows[name]['vs_diffusion']['baseline_only']} "
            f"(p = {rows[name]['vs_diffusion']['p_mcnemar_exact']:.2g})"
            for name in baselines if name in rows and "vs_diffusion" in rows[name])
        cells = " | ".join(cell(rows.get(name)) for name in [diff_name, *baselines])
        label = "in-domain" if split == "test" else split.replace("test_", "")
        print(f"| {label} | {diff['images']} | {cells} | {pairs} |")
    print()


def shift_components() -> None:
    """benchmarks/shift_components.py: accuracy under each part of the strong shift alone."""
    data = _load("shift_components")
    if data is None:
        return
    print(f"Source: `benchmarks/results/shift_components.json` (`{data['command']}`; "
          f"{data['per_class']} images per class, at most {data['max_trials']} trials, model "
          f"`{data['model']}`)\n")
    models = list(dict.fromkeys(r["model"] for r in data["rows"]))
    names = {"diffusion": "CytoDiffusion (tiny, CPU)"}
    for m in models:
        if m.startswith("baseline "):
            names[m] = f"CNN baseline `{m[len('baseline '):]}`"
    print("| condition | images | " + " | ".join(names.get(m, m) for m in models) + " |")
    print("|---" * (2 + len(models)) + "|")
    for cond in dict.fromkeys(r["condition"] for r in data["rows"]):
        rows = {r["model"]: r for r in data["rows"] if r["condition"] == cond}
        first = next(iter(rows.values()))
        cells = " | ".join(f"{100 * rows[m]['accuracy']:.1f} %" if m in rows else "-" for m in models)
        print(f"| {cond} | {first['images']} | {cells} |")
    print()


def summary() -> None:
    """The README's short results table: the shipped model against the shipped baseline."""
    data = _load("shift_accuracy_all")
    if data is None:
        return
    diff_name = next(r["model"] for r in data["rows"] if r["model"].startswith("CytoDiffusion"))
    diff = [r for r in data["rows"] if r["model"] == diff_name]
    sec = sum(r["seconds"] for r in diff) / sum(r["images"] for r in diff)
    print(f"Source: `benchmarks/results/shift_accuracy_all.json`; balanced accuracy of the shipped "
          f"models on every synthetic test image, at most {data['max_trials']} trials per image "
          f"with pruning, {data['torch_threads']} torch thread(s), {sec:.2f} s per image; chance "
          f"is {100 / len(CANONICAL_CLASSES):.0f} %\n")
    print("| test set | images | CytoDiffusion (tiny, CPU) | CNN baseline | UNet evaluations / image |")
    print("|---|---|---|---|---|")
    labels = {"test": "in-domain", "test_mild": "mild shift", "test_strong": "strong shift"}
    for r in diff:
        base = next((b for b in data["rows"] if b["split"] == r["split"]
                     and b["model"] == "CNN baseline"), None)
        cell = "-" if base is None else f"{100 * base['balanced_accuracy']:.1f} %"
        print(f"| {labels.get(r['split'], r['split'])} | {r['images']} | "
              f"{100 * r['balanced_accuracy']:.1f} % | {cell} | {r['mean_unet_evals']:.0f} |")
    print()


def panel() -> None:
    d = _load("panel_calibration")
    if d is None:
        return
    print(f"Source: `benchmarks/results/panel_calibration.json` (`{d['command']}`; mean over "
          f"{d['seeds']} panel seeds, {d['n_common']} common images; calibrated on `val`, "
          "checked on the other splits)\n")
    experts = [k[len("accuracy_"):] for k in d["splits"]["val"]["mean"]
               if k.startswith("accuracy_") and k not in ("accuracy_min", "accuracy_max")]
    head = " / ".join(experts)
    print(f"| split | High/High pairs | No/No pairs | No labels | accuracy vs consensus ({head}) "
          "| Spearman with years |")
    print("|---|---|---|---|---|---|")
    print(f"| CytoData (paper) | {100 * d['targets']['high_high']:.1f} % | rarely shared | rare "
          "| rising with experience, well below 100 % | |")
    for split, r in d["splits"].items():
        m = r["mean"]
        acc = " / ".join(f"{100 * m[f'accuracy_{e}']:.0f}" for e in experts)
        print(f"| {split} ({r['role']}) | {100 * m['high_high']:.1f} % | {100 * m['no_no']:.2f} % "
              f"| {100 * m['share_no']:.1f} % | {acc} % | {m['spearman_years']:.2f} |")
    print()


def skill() -> None:
    d = _load("skill_recovery")
    if d is None:
        return
    print(f"Source: `benchmarks/results/skill_recovery.json` (`{d['command']}`; {d['seeds']} panel "
          f"seeds, {d['n_common']} common images, 12 bins, model confidence from "
          f"`{d['classification']}`; intervals: 2.5-97.5 percentiles over the seeds); -1 would rank "
          "the experts exactly by their true skill\n")
    t80 = "threshold_80"
    old = f"spearman_{t80}" not in d["summary"]["model"]  # a JSON from before the 80 % threshold was added

    def rho(r: dict) -> str:
        return f"{r['mean']:+.2f} [{r['interval'][0]:+.2f}, {r['interval'][1]:+.2f}]"

    print("| stimulus axis | Spearman(80 % threshold, skill) | Spearman(midpoint, skill) "
          "| Spearman(width, skill) | inside the stimulus range: 80 % thresholds / midpoints |")
    print("|---|---|---|---|---|")
    names = {"model": "model confidence", "consensus": "consensus expert confidence",
             "clarity": "the clarity drawn into each image (simulation only)"}
    for axis in [a for a in names if a in d["summary"]]:
        r = d["summary"][axis]
        r80 = "-" if old else rho(r[f"spearman_{t80}"])
        in80 = "-" if old else f"{r[f'{t80}s_in_range']:.1f}"
        print(f"| {names[axis]} | {r80} | {rho(r['spearman_threshold'])} "
              f"| {rho(r['spearman_width'])} | {in80} / {r['thresholds_in_range']:.1f} of 6 |")
    g = d.get("diagnosis")
    if g is not None:
        low, high = (g["accuracy_by_confidence_third"][t] for t in ("low", "high"))
        print("\nThe 80 % threshold (the paper's Figure 2 D) is the midpoint plus 0.235 widths. "
              "Why the model-confidence thresholds fall at or below its range: a midpoint inside "
              "needs an expert's accuracy to fall to about 0.55 and an 80 % threshold to about "
              "0.82 somewhere on the axis; in the "
              "lowest third of the model's confidence the experts agree with the consensus "
              + " / ".join(f"{100 * low[e]:.0f}" for e in low) + " % of the time (E1 to E6; "
              "highest third " + " / ".join(f"{100 * high[e]:.0f}" for e in high) + " %), and "
              "the model's confidence follows the ambiguity drawn into each image only weakly "
              f"(Spearman {g['spearman_confidence_ambiguity']:+.2f}): the images the simulated "
              "experts find hard are mostly not the ones the model finds hard"
              + _own_accuracy(g.get("model_accuracy_by_confidence_third")) + ".")
    print()


def _own_accuracy(own: dict | None) -> str:
    """The skill block's clause on the model's own accuracy by third of its confidence."""
    if own is None:
        return ""
    return (f", although its confidence does mark the images hard for the model (its own "
            f"accuracy {100 * own['low']:.0f} % in the lowest third, {100 * own['high']:.0f} % "
            "in the highest)")


def calibration() -> None:
    d = _load("calibration")
    if d is None:
        return
    print(f"Source: `benchmarks/results/calibration.json` (`{d['command']}`; temperature fitted on "
          f"the validation split, {d['bins']}-bin ECE; T = 1 -> fitted T)\n")
    print("| model | temperature | test set | ECE | NLL | Brier |")
    print("|---|---|---|---|---|---|")
    names = {"test": "in-domain", "test_mild": "mild shift", "test_strong": "strong shift"}
    for model, r in d["models"].items():
        for split, label in names.items():
            raw, cal = r["splits"][split]["raw"], r["splits"][split]["scaled"]
            print(f"| {model} | {r['temperature']:.3g} | {label} | {raw['ece']:.3f} -> {cal['ece']:.3f} "
                  f"| {raw['nll']:.3f} -> {cal['nll']:.3f} | {raw['brier']:.3f} -> {cal['brier']:.3f} |")
    print()


def calibration_brief() -> None:
    """The README's short form of :func:`calibration`: ECE per model and test set."""
    d = _load("calibration")
    if d is None:
        return
    models = list(d["models"])
    print(f"Source: `benchmarks/results/calibration.json` (`{d['command']}`; a temperature per "
          f"model fitted on the validation split; {d['bins']}-bin expected calibration error, "
          "T = 1 -> fitted T; NLL and Brier on the results page)\n")
    print("| test set | " + " | ".join(f"{m} (T = {d['models'][m]['temperature']:.3g})"
                                       for m in models) + " |")
    print("|---|" + "---|" * len(models))
    names = {"test": "in-domain", "test_mild": "mild shift", "test_strong": "strong shift"}
    for split, label in names.items():
        cells = [f"{d['models'][m]['splits'][split]['raw']['ece']:.3f} -> "
                 f"{d['models'][m]['splits'][split]['scaled']['ece']:.3f}" for m in models]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()


def cell_scale() -> None:
    d = _load("cell_scale")
    if d is None:
        return
    print(f"Source: `benchmarks/results/cell_scale.json` (`{d['command']}`; synthetic test cells "
          f"enlarged by a known factor; CNN on {d['n_test']} images, CytoDiffusion on "
          f"{d['n_diffusion']}; balanced accuracy as read -> after `--cell-scale auto`)\n")
    print("| cells enlarged by | estimated scale | CNN baseline | CytoDiffusion (tiny, CPU) |")
    print("|---|---|---|---|")
    def cell(r: dict, key: str) -> str:
        a = r["as_is"].get(key)
        if a is None:
            return "not run"
        b = None if r["rescaled"] is None else r["rescaled"].get(key)
        return f"{100 * a:.1f} %" if b is None else f"{100 * a:.1f} -> {100 * b:.1f} %"

    for r in d["rows"]:
        print(f"| {r['factor']:g}x | {r['estimated_scale']:.2f} "
              f"| {cell(r, 'cnn_balanced_accuracy')} | {cell(r, 'diffusion_balanced_accuracy')} |")
    if d.get("pbc_example"):
        p = d["pbc_example"]
        print(f"\nThe {p['images']} real PBC example images: estimated scale "
              f"{p['estimated_scale']:.2f} (the synthetic cells are drawn at their scale).")
    print()


def main_job() -> None:
    d = _load("main_job")
    if d is None:
        return
    steps = ", ".join(f"{k} {v} s" for k, v in sorted(d["step_seconds"].items(),
                                                        key=lambda kv: -kv[1])[:3])
    print(f"Source: `benchmarks/results/main_job.json` (`python benchmarks/main_job.py`: a clean "
          f"clone of {d['commit'][:7]}, after `bash scripts/setup.sh`): the main job took "
          f"**{d['wall_seconds'] / 60:.1f} min** on {d['cpus']} cores for {d['files']} files "
          f"(load {d['load_at_start'][0]:.1f} at the start, {d['load_at_end'][0]:.1f} at the end; "
          f"longest steps: {steps}).")
    print()


def _val_rule_rows(d: dict, column: str, key: str, paper: tuple[str, str]) -> None:
    """The val sets' table of a rule-family benchmark: one row per replayed rule, one column per
    set (balanced accuracy and evaluations); rows without ``min_trials`` are unpruned passes."""
    sets = list(d["sets"])
    print(f"| {column} | first test at trial | p | " + " | ".join(sets) + " |")
    print("|---|---|---|" + "---|" * len(sets))
    for i, r in enumerate(d["sets"][sets[0]]["rows"]):
        cells = [f"{100 * d['sets'][s]['rows'][i]['balanced_accuracy']:.1f} % "
                 f"({d['sets'][s]['rows'][i]['mean_evals']:.0f})" for s in sets]
        first = "(unpruned, every trial)" if r["min_trials"] is None else r["min_trials"]
        name = {paper[0]: paper[1]}.get(r[key], r[key])
        print(f"| {name} | {first} | {r['p'] or ''} | " + " | ".join(cells) + " |")


def fast_rule_pooled() -> None:
    d = _load("fast_rule_pooled")
    if d is None:
        return
    sets = list(d["sets"])
    print("Source: `benchmarks/results/fast_rule_pooled.json` (`python benchmarks/fast_rule_pooled.py`; "
          "val sets only, the pruning test after every trial from the first test on; balanced "
          "accuracy and UNet evaluations per image)\n")
    _val_rule_rows(d, "variance of the t-test", "family", ("paper", "each pair's own (the paper's)"))
    print("| (unpruned, every trial) | | | " + " | ".join(
        f"{100 * d['sets'][s]['unpruned_balanced_accuracy']:.1f} %" for s in sets) + " |")
    print()


def fast_rule_weighting() -> None:
    d = _load("fast_rule_weighting")
    if d is None:
        return
    print("Source: `benchmarks/results/fast_rule_weighting.json` (`python "
          "benchmarks/fast_rule_weighting.py`; val sets only; the paper's test after every trial "
          "from the first test on, on the same raw errors under each weighting; all but the "
          "first two weightings estimated in sample from the same val set; balanced accuracy "
          "and UNet evaluations per image)\n")
    _val_rule_rows(d, "weighting", "weighting", ("polynomial", "polynomial (the paper's)"))
    print()


def fast_rule() -> None:
    d = _load("fast_rule")
    if d is None:
        return
    rules = d["rules"]
    fast = rules["fast"]
    n = d["n_images"]
    vals = " and ".join(f"{n[s]} images ({s})" for s in d["val"])
    chosen = (f"chosen as the rule of the sweep that falls least below the unpruned pass on the "
              f"val sets, {vals}, within {d.get('val_budget')} evaluations per image on each")
    print(f"Source: `benchmarks/results/fast_rule.json` (`{d['command']}`; every rule replayed on "
          f"one unpruned pass per set, at most {d['max_trials']} trials; the fast rule: "
          f"{fast['description']} (the paper's t-test); {chosen} "
          f"({'the sweep choice' if d['fast_is_val_choice'] else 'NOT the sweep choice'}); "
          "balanced accuracy and UNet evaluations per image)\n")
    print(f"| test set | images | unpruned, {d['max_trials']} trials | the paper's rule "
          "| fast rule (opt-in) "
          "| evaluations, paper / fast | issue 22's target for the fast rule |")
    print("|---|---|---|---|---|---|---|")
    names = {"test": "in-domain", "test_mild": "mild shift"}
    for split, label in names.items():
        t = d["splits"].get(split)
        if t is None:
            continue
        row = {r: i for i, r in enumerate(t["rule"])}

        def cell(rule: str, t: dict = t, row: dict = row) -> str:
            i = row[rule]
            return f"{100 * t['balanced_accuracy'][i]:.1f} % ({t['mean_evals'][i]:.0f})"

        ratio = t["mean_evals"][row["paper"]] / t["mean_evals"][row["fast"]]
        evals = t["mean_evals"][row["fast"]]
        ref = (d.get("reference") or {}).get(split)
        ref_acc = ref["balanced_accuracy"] if ref else t["balanced_accuracy"][row["unpruned"]]
        gap = 100 * (ref_acc - t["balanced_accuracy"][row["fast"]])
        met = evals <= 100 and gap <= 1.0
        which = f"the {d['reference_trials']}-trial reference" if ref else "the reference"
        print(f"| {label} | {d['n_images'][split]} | {cell('unpruned')} | {cell('paper')} "
              f"| {cell('fast')} | {ratio:.2f} | {'met' if met else 'missed'}: {evals:.1f} "
              f"evaluations (at most 100), {gap:.1f} points below {which} (at most 1) |")
    refs = {s: r for s, r in (d.get("reference") or {}).items() if r}
    text = []
    if refs:
        text.append("The unpruned reference at the paper's 500 trials: " + "; ".join(
            f"{names[s]} {100 * r['balanced_accuracy']:.1f} % ({r['mean_evals']:.0f} evaluations)"
            for s, r in refs.items()) + ".")
    front = d.get("val_frontier") or {}
    if "cheapest_within_1_point" in front:
        c, b = front["cheapest_within_1_point"], front.get("best_within_100_evaluations")
        text.append(f"On the val sets the cheapest swept rule within 1 point of the unpruned pass "
                    f"on both ({c['description']}) spends {c['evaluations']:.0f} evaluations per "
                    "image" + (f"; the best within 100 evaluations ({b['description']}) falls "
                               f"{b['gap_points']:.1f} points below" if b else "") + ".")
    if len(refs) < len(names):
        text.append("Where that pass has not finished, the reference here has "
                    f"{d['max_trials']} trials (a 500-trial pass of 600 images is about 3 million "
                    "UNet evaluations; `benchmarks/fast_rule.py` says how to run it in pieces).")
    if text:
        print("\n" + " ".join(text))
    print()


def _short(model: str) -> str:
    """``"CNN baseline (32 px centre crop, zoom 0.8-1.25)"`` -> ``"32 px centre crop, zoom 0.8-1.25"``;
    ``"CNN baseline"`` -> ``"whole image"``."""
    if "(" not in model:
        return "whole image"
    inner = model[len("CNN baseline ("):-1]
    return inner if "crop" in inner else f"whole image, {inner}"


if __name__ == "__main__":
    for section in (summary, difficulty, table1, shift_all, shift_components, psychometric,
                    psychometric_grid_steps, speed,
                    memory, pruning, heatmaps, panel, skill, calibration, calibration_brief,
                    cell_scale, main_job,
                    fast_rule, fast_rule_pooled, fast_rule_weighting):
        print(f"<!-- {section.__name__} -->")
        section()
