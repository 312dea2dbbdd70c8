"""Refill the measured tables of README.md and of the documentation from the stored results.

    .venv/bin/python scripts/fill_readme_tables.py [--check]

Runs the table printers ``benchmarks/readme_tables.py`` (benchmarks/results/*.json) and
``scripts/results_tables.py`` (cytoviz/_shipped/results/*.csv) and replaces each block
``<!-- TABLE name -->`` ... ``<!-- /TABLE name -->`` of README.md and of every ``docs/**/*.md``
(the build output and generated pages excepted) by the printer section of that name. A block
whose name no printer knows, or without its closing line, is an error. ``--check`` writes
nothing: it reports which blocks would change (exit 1 if any, or on an error). Files are written
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
PRINTERS = [REPO / "benchmarks" / "readme_tables.py", REPO / "scripts" / "results_tables.py",
            REPO / "scripts" / "catalogue_table.py"]
#: Folders under docs/ that the build writes (never filled, never checked).
SKIP = ("_build", "generated", "notebooks")

OPEN = re.compile(r"^<!-- TABLE (\w+) -->$", re.M)


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


def documents() -> list[Path]:
    """README.md and the documentation's markdown pages."""
    docs = sorted(p for p in (REPO / "docs").rglob("*.md")
                  if not any(part in SKIP for part in p.relative_to(REPO / "docs").parts))
    return [REPO / "README.md", *docs]


def fill(text: str, tables: dict[str, str], where: str) -> tuple[str, list[str], list[str]]:
    """``text`` with its blocks refilled; the names that changed and the errors found."""
    changed: list[str] = []
    errors: list[str] = []
    for name in OPEN.findall(text):
        if name not in tables:
            errors.append(f"{where}: block {name!r} has no printer section "
                          f"(known: {', '.join(sorted(tables))})")
            continue
        pattern = re.compile(rf"(<!-- TABLE {name} -->\n)(.*?)(<!-- /TABLE {name} -->)", re.S)
        if not pattern.search(text):
            errors.append(f"{where}: block {name!r} has no closing <!-- /TABLE {name} --> line")
            continue
        body = tables[name]
        if not body:
            print(f"{where}: {name}: no stored results; block left as it is", file=sys.stderr)
            continue
        new = pattern.sub(lambda m, b=body: m.group(1) + b + "\n" + m.group(3), text)
        if new != text:
            changed.append(name)
        text = new
    return text, changed, errors


def _write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    """Fill (or with ``--check`` only compare) every block; the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report changes, write nothing")
    args = ap.parse_args(argv)
    tables = sections()
    changed_all: list[str] = []
    errors_all: list[str] = []
    for path in documents():
        where = str(path.relative_to(REPO))
        text = path.read_text()
        new, changed, errors = fill(text, tables, where)
        changed_all += [f"{where}:{name}" for name in changed]
        errors_all += errors
        if new != text and not args.check:
            _write(path, new)
    for error in errors_all:
        print(f"error: {error}", file=sys.stderr)
    print("changed: " + (", ".join(changed_all) if changed_all else "nothing"))
    if errors_all:
        return 1
    return 1 if args.check and changed_all else 0


if __name__ == "__main__":
    sys.exit(main())
