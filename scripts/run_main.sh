#!/usr/bin/env bash
# README command 1: install everything, then run the main job on the embedded default data and model.
# The preview shows the shared PBC example images next to synthetic ones when that folder exists.
# --allow-stale: the stored protocol tables (Figures 3, 4, Table 2) predate the shipped model
# until `bash scripts/run_evaluations.sh` is rerun; those figures are drawn marked STALE.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
real=()
if [ -d ../shared/data/pbc_example ]; then
    real=(--real ../shared/data/pbc_example)
fi
.venv/bin/cytoviz figures --out "${1:-figures}" --allow-stale "${real[@]}"
