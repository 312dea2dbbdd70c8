"""Speed of the synthetic smear generator: images per second at 64 and 128 px.

Usage::

    .venv/bin/python benchmarks/synth_speed.py [--n-per-class 20] [--repeats 3]

Writes ``benchmarks/results/synth_speed.json``: for each image size the best-of-``repeats``
images per second of ``synthesize`` (one process, reference domain and the ``"strong"`` preset,
which adds the camera model).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "synth_speed.json"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-per-class", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from cytoviz._io import save_json
    from cytoviz.data.synth import SynthConfig, synthesize

    rows = []
    for size in args.sizes:
        for domain in (None, "strong"):
            config = SynthConfig(image_size=size)
            times = []
            for r in range(args.repeats):
                t0 = time.perf_counter()
                ds = synthesize(args.n_per_class, config=config, domain=domain, seed=r)
                times.append(time.perf_counter() - t0)
            n = len(ds)
            rows.append({
                "image_size": size, "domain": domain or "reference", "n_images": n,
                "seconds_best": min(times), "seconds_all": times,
                "images_per_second": n / min(times),
            })
            print(f"{size:4d} px  {domain or 'reference':9s}  {n / min(times):7.1f} images/s "
                  f"(best of {args.repeats} runs of {n} images)")
    result = {
        "command": "python benchmarks/synth_speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "results": rows,
    }
    save_json(result, args.out)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
