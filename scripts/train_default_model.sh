#!/usr/bin/env bash
# Train the default model that ships in cytoviz/_shipped/default_model/ (tiny preset, synthetic data).
#
#   bash scripts/train_default_model.sh
#
# Runs `cytoviz train` on the built-in synthetic training split (2,290 images of 64 px, 10 classes;
# validation on its val split) into runs/default/, then copies runs/default/model/ (weights with
# the EMA UNet, cytoviz.json, train_config.json, train_summary.json) and the loss history to
# cytoviz/_shipped/default_model/. The model sees the central 32 x 32 px of each 64 px image, where the
# white cell lies (ModelConfig.input_crop = 32, not in METHOD.md), through a VAE that downsamples
# by 2 (block channels 32,64), so its latent is 16 x 16 with the cell covering 9-12 latent pixels
# instead of 4-5 (INPUT_CROP=none VAE_CHANNELS=32,64,64: the earlier whole-image model). Training
# images are also magnified by a random factor in [0.8, 1.25] (ZOOM; not in METHOD.md), against
# another microscope's magnification (benchmarks/shift_components.py; ZOOM=none: the earlier
# crop model).
# Budget: 300 VAE steps (batch 8) + 11,000 UNet steps (batch 16, peak
# learning rate 2e-3 with a cosine decay to 0; the paper's constant 1e-5 is for fine-tuning a
# pretrained SD-1.5 UNet, far too slow for a model trained from scratch in an hour): about an
# hour on a 2-core machine at one torch thread (measured 3.0 UNet steps/s), longer under load from
# other processes (benchmarks/train_speed.py measures the speed; --max-minutes 150 caps a run,
# and running the script again resumes it, bit-identically to an uninterrupted run).
# VAE_STEPS, UNET_STEPS and VAL_EVERY change the budget for experiments, CLASS_EMBEDDING=1 the
# UNet (ModelConfig.class_embedding): a sharper VAE
# (VAE_STEPS=1500 UNET_STEPS=7500 VAL_EVERY=3750, 28 dB instead of 23 dB reconstruction PSNR by
# benchmarks/vae_recon.py) classified no better in-domain and worse under the strong shift; see
# the README.
# Interrupted? Run the same command again: training resumes exactly from the last checkpoint.
# Environment: OUT (run folder, default runs/default), DEST (default cytoviz/_shipped/default_model).
set -euo pipefail

# The whole script is one function, parsed before it runs: editing this file during a run is safe.
main() {
    cd "$(dirname "$0")/.."
    OUT=${OUT:-runs/default}
    DEST=${DEST:-cytoviz/_shipped/default_model}
    # The shipped model: 300 VAE + 11,000 UNet steps. Other budgets are for experiments.
    VAE_STEPS=${VAE_STEPS:-300}
    UNET_STEPS=${UNET_STEPS:-11000}
    VAL_EVERY=${VAL_EVERY:-5500}
    INPUT_CROP=${INPUT_CROP:-32}
    VAE_CHANNELS=${VAE_CHANNELS:-32,64}
    extra=(--vae-channels "$VAE_CHANNELS")
    if [ "$INPUT_CROP" != "none" ]; then extra+=(--input-crop "$INPUT_CROP"); fi
    # CLASS_EMBEDDING=1: also feed the label into the UNet's timestep embedding (experiment).
    if [ "${CLASS_EMBEDDING:-0}" = "1" ]; then extra+=(--class-embedding); fi
    # RANDAUGMENT=1: add RandAugment to the training augmentations (METHOD.md section 4).
    if [ "${RANDAUGMENT:-0}" = "1" ]; then extra+=(--randaugment); fi
    # ZOOM=LO,HI: the random magnification of the training images
    # (cytoviz.augment.AugmentConfig.zoom, not in METHOD.md); ZOOM=none switches it off.
    ZOOM=${ZOOM:-0.8,1.25}
    if [ "$ZOOM" != "none" ]; then extra+=(--zoom "$ZOOM"); fi
    mkdir -p "$OUT"
    # One torch thread: on a shared machine, two spinning OpenMP threads competing with other
    # processes are several times slower than one.
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

    .venv/bin/cytoviz train --data synthetic --out "$OUT" --preset tiny --seed 0 \
        --vae-steps "$VAE_STEPS" --vae-batch-size 8 \
        --steps "$UNET_STEPS" --batch-size 16 --lr 2e-3 --lr-schedule cosine --warmup-steps 200 \
        --ema-decay 0.999 --checkpoint-every 250 --val-every "$VAL_EVERY" --val-accuracy-images 50 \
        --max-minutes 150 "${extra[@]}"

    completed=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['completed'])" \
        "$OUT/model/train_summary.json")
    if [ "$completed" != "True" ]; then
        echo "training stopped before the last step; run this script again to resume" >&2
        exit 1
    fi
    tmp="$DEST.tmp-$$"
    rm -rf "$tmp"
    cp -r "$OUT/model" "$tmp"
    cp "$OUT/history.json" "$tmp/history.json"
    rm -rf "$DEST"
    mv "$tmp" "$DEST"
    du -sh "$DEST"
    echo "default model written to $DEST"
}

main "$@"
exit
