#!/usr/bin/env bash
# The neural vocoder end to end: corpus (+ festvox-ru's real voice) -> train (GAN) and the loss-only variant ->
# export (16 Griffin-Lim iterations from the network's phase) -> evaluate on held-out real and synthetic speech beside
# Griffin-Lim (classic, and mel-constrained: the default vocoder) -> speed -> install the bundled vocoder.
# Usage: bash recipes/vocoder/run.sh [WORK_DIR] [extra key=value overrides for `audiovae train`]
# Times and the numbers to expect: recipes/vocoder/README.md. The export writes WORK_DIR/vocoder.safetensors (fp16)
# and installs it as the package's bundled vocoder (audiovae/assets/models/vocoder.safetensors) only when there is
# none yet or its evaluation is better.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${1:-work/vocoder}; shift || true
mkdir -p "$work"
[ -f "$work/speech/manifest.jsonl" ] || audiovae corpus speech "$work/speech"
python "$here/manifest.py" "$work/speech" "$work/data"
data="$work/data/manifest.jsonl"
train() {  # train() OUT_DIR [overrides]: an interrupted (or finished) run continues
  local out=$1; shift
  local resume=(); [ -f "$out/state.pt" ] && resume=(--resume)
  audiovae train vocoder "data.train=$data" "train.out_dir=$out" "${resume[@]}" "$@"
}
train "$work/run" "$@"
train "$work/run_loss_only" model.adversarial=false "$@"
export=(python "$here/export.py" "$work/run/model.safetensors" --refine 16 -o "$work/vocoder.safetensors")
"${export[@]}"
for who in real synthetic; do
  audiovae evaluate vocoder --data "$data" --voices "$who" --files 24 --json "$work/evaluate_$who.json" \
    --vocoder "$work/vocoder.safetensors" --vocoder "$work/run/model.safetensors" \
    --vocoder "$work/run_loss_only/model.safetensors" --vocoder mel-griffin-lim
done
python "$root/bench/vocoder.py" --vocoder "$work/vocoder.safetensors"
"${export[@]}" --evaluation "$work/evaluate_real.json" --install "$root/audiovae/assets/models/vocoder.safetensors"
