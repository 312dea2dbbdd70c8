#!/usr/bin/env bash
# README command 1: install everything, then run the main job on the embedded default data and model.
# The preview shows the shared PBC example images next to synthetic ones when that folder exists.
# Figures 3, 4 and Table 2 are drawn from the stored protocol tables, which match the shipped
# model (a table made with another model is refused: see `cytoviz figures --help`, --allow-stale).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
real=()
if [ -d ../shared/data/pbc_example ]; then
    real=(--real ../shared/data/pbc_example)
fi
.venv/bin/cytoviz figures --out "${1:-figures}" "${real[@]}"
