#!/usr/bin/env bash
# The synthetic-world denoiser (bundled until real recordings replaced it; kept to reproduce its numbers): corpus ->
# cache -> train the denoising VAE -> evaluate -> speed -> export, on the offline synthetic noisy corpus; then the
# unsupervised route (a VAE of clean speech + NMF noise, `--method prior`) trained on the clean speech corpus and
# evaluated on the same mixtures.
# Usage: [STEPS=6000] bash recipes/denoise/synthetic.sh [WORK_DIR] [key=value overrides for `audiovae train`]
# Times and the numbers to expect: recipes/denoise/README.md. The export writes WORK_DIR/denoise.safetensors (fp16)
# and never replaces a bundled denoiser measured on real recordings (recipes/export.py ranks the evidence first).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${1:-work/denoise}; shift || true
steps=${STEPS:-6000}
mkdir -p "$work"
[ -f "$work/noisy/manifest.jsonl" ] || audiovae corpus noisy "$work/noisy"
audiovae cache "$work/noisy" --cache-dir "$work/cache"
resume=(); [ -f "$work/run/state.pt" ] && resume=(--resume)  # an interrupted (or finished) run continues
audiovae train denoise_vae "data.train=$work/noisy" "data.cache_dir=$work/cache" "train.out_dir=$work/run" \
  "train.steps=$steps" model.output=logmel "${resume[@]}" "$@"  # its numbers: the decoded-log-mel output
model="$work/run/model.safetensors"
audiovae evaluate denoise --model "$model" --data "$work/noisy" --json "$work/evaluate_denoise.json"
python "$root/bench/denoise.py" --model "$model" --data "$work/noisy" --hour
python "$root/recipes/export.py" "$model" --evaluation "$work/evaluate_denoise.json" --recipe recipes/denoise/synthetic.sh \
  -o "$work/denoise.safetensors" --install "$root/audiovae/assets/models/denoise.safetensors"
# the unsupervised route: a speech VAE on clean speech only, the noise fitted per file, on the same mixtures
[ -f "$work/speech/manifest.jsonl" ] || audiovae corpus speech "$work/speech"
audiovae cache "$work/speech" --cache-dir "$work/cache"
resume=(); [ -f "$work/prior/state.pt" ] && resume=(--resume)
audiovae train speech_vae "data.train=$work/speech" "data.cache_dir=$work/cache" "train.out_dir=$work/prior" \
  train.steps=6000 "${resume[@]}"
audiovae evaluate denoise --model "$work/prior/model.safetensors" --method prior --data "$work/noisy" \
  --json "$work/evaluate_denoise_prior.json"
