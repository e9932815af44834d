#!/usr/bin/env bash
# Speech denoising end to end on the offline noisy corpus: corpus -> cache -> train the denoising VAE -> evaluate ->
# speed -> export; then the unsupervised route (a VAE of clean speech + NMF noise, `--method prior`) trained on the
# clean speech corpus and evaluated on the same mixtures.
# Usage: bash recipes/denoise/run.sh [WORK_DIR] [extra key=value overrides for `audiovae train denoise_vae`]
# Times and the numbers to expect: recipes/denoise/README.md. The export writes $WORK_DIR/denoise.safetensors; copy it
# over audiovae/assets/models/ only when its numbers are better.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-work/denoise}; shift || true
mkdir -p "$work"
[ -f "$work/noisy/manifest.jsonl" ] || audiovae corpus noisy "$work/noisy"
audiovae cache "$work/noisy" --cache-dir "$work/cache"
resume=(); [ -f "$work/run/state.pt" ] && resume=(--resume)  # an interrupted (or finished) run continues
audiovae train denoise_vae "data.train=$work/noisy" "data.cache_dir=$work/cache" "train.out_dir=$work/run" \
  "${resume[@]}" "$@"
model="$work/run/model.safetensors"
audiovae evaluate denoise --model "$model" --data "$work/noisy" --json "$work/evaluate_denoise.json"
python "$here/../../bench/denoise.py" --model "$model" --data "$work/noisy" --hour
python "$here/../export.py" "$model" --evaluation "$work/evaluate_denoise.json" --recipe recipes/denoise/run.sh \
  -o "$work/denoise.safetensors"
# the unsupervised route: a speech VAE on clean speech only, the noise fitted per file (slow: see the README)
[ -f "$work/speech/manifest.jsonl" ] || audiovae corpus speech "$work/speech"
audiovae cache "$work/speech" --cache-dir "$work/cache"
audiovae train speech_vae "data.train=$work/speech" "data.cache_dir=$work/cache" "train.out_dir=$work/prior" \
  train.steps=6000
audiovae evaluate denoise --model "$work/prior/model.safetensors" --method prior --data "$work/noisy" --limit 60 \
  --json "$work/evaluate_denoise_prior.json"
