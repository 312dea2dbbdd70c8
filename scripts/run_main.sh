#!/usr/bin/env bash
# README command 1: install everything, then run the main job on the embedded default data and model.
# The preview shows the shared PBC example images next to synthetic ones when that folder exists.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
real=()
if [ -d ../shared/data/pbc_example ]; then
    real=(--real ../shared/data/pbc_example)
fi
.venv/bin/cytoviz figures --out "${1:-figures}" "${real[@]}"
