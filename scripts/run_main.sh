#!/usr/bin/env bash
# README command 1: install everything, then run the main job on the embedded default data and model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/cytoviz figures --out "${1:-figures}"
