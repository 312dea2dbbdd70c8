"""Refill the measured tables of README.md from the stored results.

    .venv/bin/python scripts/fill_readme_tables.py [--check]

Runs the table printers ``benchmarks/readme_tables.py`` (benchmarks/results/*.json) and
``scripts/results_tables.py`` (data/results/*.csv) and replaces each README block
``<!-- TABLE name -->`` ... ``<!-- /TABLE name -->`` by the printer section of that name.
``--check`` only reports which blocks would change (exit 1 if any). The README is written
atomically (temporary file, then rename).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRINTERS = [REPO / "benchmarks" / "readme_tables.py", REPO / "scripts" / "results_tables.py"]


def sections() -> dict[str, str]:
    """Printer output split at the ``<!-- name -->`` lines the printers emit."""
    out: dict[str, str] = {}
    for script in PRINTERS:
        text = subprocess.run([sys.executable, str(script)], check=True, capture_output=True,
                              text=True, cwd=REPO).stdout
        parts = re.split(r"^<!-- (\w+) -->\n", text, flags=re.M)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            out[name] = body.strip()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report changes, write nothing")
    args = ap.parse_args()
    readme = REPO / "README.md"
    text = readme.read_text()
    new = text
    changed = []
    for name, body in sections().items():
        pattern = re.compile(rf"(<!-- TABLE {name} -->\n)(.*?)(<!-- /TABLE {name} -->)", re.S)
        if not pattern.search(new):
            continue
        if not body:
            print(f"{name}: no stored results; block left as it is", file=sys.stderr)
            continue
        replaced = pattern.sub(lambda m, b=body: m.group(1) + b + "\n" + m.group(3), new)
        if replaced != new:
            changed.append(name)
        new = replaced
    print("changed: " + (", ".join(changed) if changed else "nothing"))
    if args.check:
        sys.exit(1 if changed else 0)
    if new != text:
        fd, tmp = tempfile.mkstemp(dir=REPO, prefix=".README.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(new)
        os.replace(tmp, readme)


if __name__ == "__main__":
    main()
