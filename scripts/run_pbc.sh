#!/usr/bin/env bash
# Diffusion classifier vs CNN baseline on the real PBC example images (issue #3's low-data check).
#
#   bash scripts/run_pbc.sh [PBC_DIR]     # default ../shared/data/pbc_example
#
# 10 images per class to train, 10 to test (8 classes, 64 px): the `cpu` evaluation budget with
# 1,500 VAE + 2,000 UNet steps and the shipped model's learning rate (peak 2e-3 with a cosine
# decay), about 30 min at one torch thread. Neither the images nor the models
# are kept; the table is copied to cytoviz/_shipped/results/pbc_low_data.csv (+ _budget.json). The run folder
# (runs/eval/pbc_cosine) resumes if interrupted.
set -euo pipefail

# Copy $1 to $2 through a temporary file, so that $2 is never half-written.
publish() {
    cp "$1" "$2.tmp-$$"
    mv "$2.tmp-$$" "$2"
}

main() {
    cd "$(dirname "$0")/.."
    local data=${1:-../shared/data/pbc_example}
    if [ ! -d "$data" ]; then
        echo "no PBC example images at $data; pass the folder as the first argument" >&2
        exit 1
    fi
    local out=${OUT:-runs/eval/pbc_cosine}
    .venv/bin/cytoviz evaluate low-data --data "$data" --budget cpu --sizes 10 --seeds 1 \
        --vae-steps 1500 --train-steps 2000 --lr 2e-3 --lr-schedule cosine --out "$out" --quiet
    publish "$out/low_data.csv" cytoviz/_shipped/results/pbc_low_data.csv
    publish "$out/budget.json" cytoviz/_shipped/results/pbc_low_data_budget.json
    cat cytoviz/_shipped/results/pbc_low_data.csv
}

main "$@"
exit
