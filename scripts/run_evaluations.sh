#!/usr/bin/env bash
# Run the evaluation protocols at the reduced CPU budget and store their tables in cytoviz/_shipped/results/.
#
#   bash scripts/run_evaluations.sh
#
# These are the runs behind Figures 3 and 4, Table 2 and the few-shot table of the README and of
# `cytoviz figures`. Two lanes run side by side, one torch thread each (2 cores):
#   lane A: domain shift (the shipped diffusion model with 2 classification seeds; the baseline
#           trained with 2 seeds), few-shot adaptation from the shipped models, low data at 10
#           and 20 images per class;
#   lane B: anomaly detection (blast and erythroblast held out; 300 VAE + 3,000 UNet steps per
#           diffusion model), low data at 150, then at 50 images per class.
# Low data: one repeat per size (300 VAE + 1,000 UNet steps per diffusion model), 5 test images
# per class; few-shot and low data score 5 test images per class, the others 10. These cuts fit
# the runs into about two hours of the 2-core machine; `--budget paper` is the full protocol.
# Every run resumes where it stopped: run the script again after an interruption. Outputs go to
# runs/eval/ (RUNS); the collected CSV tables and budgets to cytoviz/_shipped/results/ (DEST).
set -euo pipefail

main() {
    cd "$(dirname "$0")/.."
    RUNS=${RUNS:-runs/eval}
    DEST=${DEST:-cytoviz/_shipped/results}
    mkdir -p "$RUNS"
    export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
    local C=".venv/bin/cytoviz evaluate"
    local S="--budget cpu --data synthetic --data-scale 1.0"
    (
        $C domain-shift --out "$RUNS/domain_shift" $S --seeds 2 --pretrained cytoviz/_shipped/default_model \
            > "$RUNS/domain_shift.log" 2>&1
        $C few-shot --out "$RUNS/few_shot" $S --test-per-class 5 --pretrained cytoviz/_shipped/default_model \
            --pretrained-baseline cytoviz/_shipped/default_baseline > "$RUNS/few_shot.log" 2>&1
        $C low-data --out "$RUNS/low_data_a" $S --test-per-class 5 --seeds 1 --sizes 10 20 \
            > "$RUNS/low_data_a.log" 2>&1
    ) &
    local lane_a=$!
    (
        $C anomaly --out "$RUNS/anomaly" $S --train-steps 3000 > "$RUNS/anomaly.log" 2>&1
        $C low-data --out "$RUNS/low_data_b" $S --test-per-class 5 --seeds 1 --sizes 150 \
            > "$RUNS/low_data_b.log" 2>&1
        $C low-data --out "$RUNS/low_data_c" $S --test-per-class 5 --seeds 1 --sizes 50 \
            > "$RUNS/low_data_c.log" 2>&1
    ) &
    local lane_b=$!
    local status=0
    wait "$lane_a" || status=1
    wait "$lane_b" || status=1
    if [ "$status" != 0 ]; then
        echo "an evaluation run failed; see the logs in $RUNS (run this script again to resume)" >&2
        exit 1
    fi
    .venv/bin/python scripts/collect_results.py --runs "$RUNS" --dest "$DEST"
}

main "$@"
exit
