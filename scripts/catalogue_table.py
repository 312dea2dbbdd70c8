"""Print the README's bad-input summary from the catalogue on the reliability page.

    .venv/bin/python scripts/catalogue_table.py

Counts the rows of the table between ``<!-- catalogue-rows -->`` markers of
``docs/reliability.md`` and the test functions of ``tests/test_hardening_*.py``, and prints the
``<!-- catalogue -->`` section that ``scripts/fill_readme_tables.py`` puts into the README, so
that the counts there can never drift from the catalogue and the tests.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "reliability.md"


def catalogue_rows() -> list[str]:
    """The data rows of the catalogue table (header and rule excluded)."""
    text = PAGE.read_text()
    match = re.search(r"<!-- catalogue-rows -->(.*?)<!-- /catalogue-rows -->", text, re.S)
    if match is None:
        raise SystemExit(f"{PAGE}: no <!-- catalogue-rows --> block")
    rows = [line for line in match.group(1).splitlines() if line.startswith("|")]
    return rows[2:]


def hardening_tests() -> dict[str, int]:
    """Test functions per ``tests/test_hardening_*.py`` file."""
    out = {}
    for path in sorted((REPO / "tests").glob("test_hardening_*.py")):
        tree = ast.parse(path.read_text())
        out[path.name] = sum(isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
                             for n in tree.body)
    return out


def main() -> None:
    rows = catalogue_rows()
    tests = hardening_tests()
    files = ", ".join(f"`tests/{name}` ({n})" for name, n in tests.items())
    print("<!-- catalogue -->")
    print(f"The bad-input catalogue on the [reliability page](docs/reliability.md) has {len(rows)} "
          f"kinds of bad input and faults, covered by {sum(tests.values())} test functions: "
          f"{files}. Among them: class names that would write outside the output folder are "
          "refused, manifests are read line by line, finished results are never overwritten "
          "without `--overwrite`, and full disks, read-only folders and interrupts end with "
          "the path and the reason, never a traceback.")


if __name__ == "__main__":
    main()
