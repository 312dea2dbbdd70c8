#!/usr/bin/env bash
# README command 2: install everything, then lint and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check cytoviz tests benchmarks
# Two workers for the two cores; each torch process uses one thread (see tests/conftest.py).
.venv/bin/python -m pytest -n 2 --dist loadgroup "$@"
