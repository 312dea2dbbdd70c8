"""The simulated expert panel against what the paper reports of CytoData (issue 20, item 1).

For each default synthetic split and panel seed, simulates the six-expert panel (200 common
images) with the default :class:`cytoviz.data.PanelConfig` and measures, on the common images,
the share of ordered expert pairs that are High/High and No/No, the share of each confidence
word, and each expert's accuracy against the consensus. The defaults were calibrated on the
``val`` split; ``test`` and ``test_mild`` were not used for it.

Usage::

    .venv/bin/python benchmarks/panel_calibration.py [--seeds 5]

Writes ``benchmarks/results/panel_calibration.json``; ``benchmarks/readme_tables.py`` prints it.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results" / "panel_calibration.json"
#: CytoData (the paper's supplementary Figure 10): 2,556 of 6,000 ordered pairs High/High.
TARGETS = {"high_high": 2556 / 6000, "share_no": "rare", "no_no": "rarely shared",
           "accuracy": "rising with experience, well below 100 %"}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="panel seeds per split")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from cytoviz._io import save_json
    from cytoviz.data import PanelConfig, panel_calibration, resolve_one, simulate_panel

    splits = {}
    for split in ("val", "test", "test_mild"):
        ds = resolve_one("synthetic", split)
        rows = pd.DataFrame([
            panel_calibration(simulate_panel(ds, n_common=200, per_expert=len(ds), seed=s))
            for s in range(args.seeds)
        ])
        splits[split] = {"n_images": len(ds), "role": "calibration" if split == "val" else "check",
                         "mean": rows.mean().to_dict(), "sd": rows.std(ddof=1).to_dict()}
        m = splits[split]["mean"]
        print(f"{split}: High/High {m['high_high']:.3f}, No {m['share_no']:.3f}, "
              f"accuracy {m['min_accuracy']:.2f}-{m['max_accuracy']:.2f}, "
              f"Spearman with years {m['spearman_years']:.2f}")
    out = {"benchmark": "panel_calibration", "seeds": args.seeds, "n_common": 200,
           "config": PanelConfig().to_dict(), "targets": TARGETS, "splits": splits,
           "python": platform.python_version(),
           "command": "python benchmarks/panel_calibration.py"}
    save_json(out, args.out)
    print(f"wrote {args.out}")
    return out


if __name__ == "__main__":  # pragma: no cover
    main()
