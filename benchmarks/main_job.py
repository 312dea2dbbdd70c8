"""The main job's wall time from a clean clone (README command 1 after its set-up).

Clones the repository's committed HEAD into a temporary folder, runs ``bash scripts/setup.sh``
there (not timed), then times ``cytoviz figures --out figures`` (the main job,
with ``--real`` when the shared PBC example exists, as ``scripts/run_main.sh`` runs it), and
records the time of every figure from the job's own log lines, the machine's load before and
after (other work on the machine lengthens the time) and the commit.

Usage::

    .venv/bin/python benchmarks/main_job.py [--keep]

Writes ``benchmarks/results/main_job.json``; ``benchmarks/readme_tables.py`` prints it.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "main_job.json"
STEP = re.compile(r"^\[(\d+)/(\d+)\] (\S+): (\d+) file\(s\) in (\d+) s", re.M)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from cytoviz._io import save_json

    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="cytoviz-main-job-"))
    clone = tmp / "cytoviz"
    try:
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        t0 = time.perf_counter()
        subprocess.run(["bash", "scripts/setup.sh"], cwd=clone, check=True,
                       stdout=subprocess.DEVNULL)
        setup_s = time.perf_counter() - t0
        cmd = [".venv/bin/cytoviz", "figures", "--out", "figures"]
        shared = REPO.parent / "shared" / "data" / "pbc_example"
        if shared.is_dir():
            cmd += ["--real", str(shared)]
        load_start = os.getloadavg()
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=clone, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        load_end = os.getloadavg()
        steps = {m[2]: int(m[4]) for m in STEP.findall(done.stdout)}
        n_files = sum(1 for p in (clone / "figures").rglob("*") if p.is_file())
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    out = {"benchmark": "main_job", "commit": commit, "command": " ".join(cmd[0:1] + cmd[1:]),
           "wall_seconds": wall, "setup_seconds": setup_s, "files": n_files,
           "step_seconds": steps, "load_at_start": list(load_start),
           "load_at_end": list(load_end), "cpus": os.cpu_count(),
           "python": platform.python_version()}
    save_json(out, args.out)
    print(f"main job: {wall:.0f} s, {n_files} files (load {load_start[0]:.2f} -> "
          f"{load_end[0]:.2f}); wrote {args.out}")
    return out


if __name__ == "__main__":  # pragma: no cover
    main()
