#!/usr/bin/env bash
# README command 2: install everything, then lint, build the docs and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check cytoviz tests benchmarks scripts docs
# The documentation site with warnings as errors (make docs): a broken cross-reference or a
# docstring Sphinx cannot read fails here. The notebooks are rendered without executing them.
.venv/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html
# 1. Everything but the browser tests, on two workers for the two cores (one torch thread each,
#    see tests/conftest.py).
.venv/bin/python -m pytest -n 2 --dist loadgroup -m "not browser" "$@"
# 2. The browser tests (JupyterLab and Voila in headless Chromium) on their own, so that the
#    notebook kernels they start do not compete with other tests for the CPU.
.venv/bin/python -m pytest -m browser "$@"
# 3. The installable package: build the wheel, install it into a fresh virtual environment
#    outside the repository and run `cytoviz classify` and `cytoviz figures` there.
bash scripts/check_wheel.sh
