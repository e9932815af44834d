#!/usr/bin/env bash
# The neural vocoders end to end: corpus (+ festvox-ru's real voice) -> train the bundled vocoder (vocoder.yaml: PGHI
# phase prior + 10 unrolled mel-constrained Griffin-Lim iterations, about 20 minutes on 2 cores) and the streaming
# one (vocoder_stream.yaml: predicts its own phase, GAN at the end, about 30 minutes) and its loss-only variant ->
# export -> evaluate on held-out real and synthetic speech beside Griffin-Lim (classic, and mel-constrained: the
# default vocoder) -> speed -> install the bundled files.
# Usage: bash recipes/vocoder/run.sh [WORK_DIR] [extra key=value overrides for `audiovae train`]
# Times and the numbers to expect: recipes/vocoder/README.md. The exports write WORK_DIR/vocoder.safetensors and
# WORK_DIR/vocoder_stream.safetensors (fp16) and install each as the package's bundled file
# (audiovae/assets/models/) only when there is none yet or its evaluation is better.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${1:-work/vocoder}; shift || true
mkdir -p "$work"
[ -f "$work/speech/manifest.jsonl" ] || audiovae corpus speech "$work/speech"
python "$here/manifest.py" "$work/speech" "$work/data"
data="$work/data/manifest.jsonl"
train() {  # train() CONFIG OUT_DIR [overrides]: an interrupted (or finished) run continues
  local config=$1 out=$2; shift 2
  local resume=(); [ -f "$out/state.pt" ] && resume=(--resume)
  audiovae train "$config" "data.train=$data" "train.out_dir=$out" "${resume[@]}" "$@"
}
train vocoder "$work/run_pghi" "$@"
train vocoder_stream "$work/run" "$@"
train vocoder_stream "$work/run_loss_only" model.adversarial=false "$@"
python "$here/export.py" "$work/run_pghi/model.safetensors" -o "$work/vocoder.safetensors"
python "$here/export.py" "$work/run/model.safetensors" --refine 16 -o "$work/vocoder_stream.safetensors"
for who in real synthetic; do
  audiovae evaluate vocoder --data "$data" --voices "$who" --files 24 --json "$work/evaluate_$who.json" \
    --vocoder "$work/vocoder.safetensors" --vocoder mel-griffin-lim
  audiovae evaluate vocoder --data "$data" --voices "$who" --files 24 --json "$work/evaluate_stream_$who.json" \
    --vocoder "$work/vocoder_stream.safetensors" --vocoder "$work/run/model.safetensors" \
    --vocoder "$work/run_loss_only/model.safetensors"
done
python "$root/bench/vocoder.py" --vocoder "$work/vocoder.safetensors" --vocoder "$work/vocoder_stream.safetensors" \
  --vocoder mel-griffin-lim
models="$root/audiovae/assets/models"
python "$here/export.py" "$work/run_pghi/model.safetensors" -o "$work/vocoder.safetensors" \
  --evaluation "$work/evaluate_real.json" --install "$models/vocoder.safetensors"
python "$here/export.py" "$work/run/model.safetensors" --refine 16 -o "$work/vocoder_stream.safetensors" \
  --recipe recipes/vocoder/run.sh --evaluation "$work/evaluate_stream_real.json" \
  --install "$models/vocoder_stream.safetensors"
