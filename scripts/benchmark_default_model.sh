#!/usr/bin/env bash
# Measure the shipped default model: everything the README reports about it, in two lanes.
#
#   bash scripts/benchmark_default_model.sh
#
# Run it after `bash scripts/train_default_model.sh` has written a new cytoviz/_shipped/default_model.
#   lane A: `cytoviz figures` (Table 1, Figures 5, 6, 8 ...; README command 1's main job) into
#           figures/, Table 1 copied to benchmarks/results/; then a CNN baseline trained on the
#           default model's centre crops with its zoom augmentation, if any
#           (scripts/train_default_baseline.py --input-crop [--zoom], into
#           runs/baseline_crop; not shipped), benchmarks/shift_accuracy.py (mild and strong
#           shift, 200 images each; the shipped and the crop baseline, the crop one also
#           in-domain) and benchmarks/heatmap_energy.py (15 granulocytes, 400 trials per class,
#           pruning off);
#   lane B: benchmarks/pruning.py (50 test images at 20, 100 and 500 trials, pruning on and
#           off) and benchmarks/classify_engine.py (engine efficiency, memory).
# One torch thread per lane (2 cores). Then the README's measured tables are refilled
# (scripts/fill_readme_tables.py). Logs go to runs/bench/. About 45 minutes here.
set -euo pipefail

main() {
    cd "$(dirname "$0")/.."
    local LOGS=${LOGS:-runs/bench}
    mkdir -p "$LOGS"
    export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
    local PY=.venv/bin/python
    # the preview shows the shared PBC example images when that folder exists (as run_main.sh)
    local real=()
    if [ -d ../shared/data/pbc_example ]; then
        real=(--real ../shared/data/pbc_example)
    fi
    (
        .venv/bin/cytoviz figures --out figures "${real[@]}" > "$LOGS/figures.log" 2>&1
        cp figures/table1_accuracy.csv benchmarks/results/table1_accuracy.csv
        crop=$($PY -c "from cytoviz.diffusion import load_default_model as m; print(m().config.input_crop or '')")
        if [ -n "$crop" ]; then
            # the same zoom augmentation as the model's training, if it had one
            zoom=$($PY -c "from cytoviz.diffusion import TrainConfig; a = TrainConfig.load('cytoviz/_shipped/default_model/train_config.json').augment; print(f'{a.zoom[0]} {a.zoom[1]}' if a is not None and a.zooms else '')")
            # shellcheck disable=SC2086  # $zoom is two numbers or nothing
            $PY scripts/train_default_baseline.py --input-crop "$crop" ${zoom:+--zoom $zoom} \
                --out runs/baseline_crop > "$LOGS/baseline_crop.log" 2>&1
            $PY benchmarks/shift_accuracy.py --splits test test_mild test_strong \
                --baseline cytoviz/_shipped/default_baseline runs/baseline_crop > "$LOGS/shift_accuracy.log" 2>&1
        else
            $PY benchmarks/shift_accuracy.py > "$LOGS/shift_accuracy.log" 2>&1
        fi
        $PY benchmarks/heatmap_energy.py --trials 400 > "$LOGS/heatmap_energy.log" 2>&1
    ) &
    local lane_a=$!
    (
        $PY benchmarks/pruning.py --per-class 5 --trials 20 100 500 > "$LOGS/pruning.log" 2>&1
        $PY benchmarks/classify_engine.py > "$LOGS/classify_engine.log" 2>&1
    ) &
    local lane_b=$!
    local status=0
    wait "$lane_a" || status=1
    wait "$lane_b" || status=1
    if [ "$status" != 0 ]; then
        echo "a benchmark failed; see the logs in $LOGS" >&2
        exit 1
    fi
    $PY scripts/fill_readme_tables.py
}

main "$@"
exit
