#!/usr/bin/env bash
# Voice conversion end to end on the offline corpus: corpus -> cache -> train the CVAE (with its speaker encoder)
# -> evaluate (table speakers with and without the pitch-register move, then one-shot from a reference) -> speed
# -> export the bundled model.
# Usage: bash recipes/voice_conversion/run.sh [WORK_DIR] [extra key=value overrides for `audiovae train`]
# Times and the numbers to expect: recipes/voice_conversion/README.md. The export step writes
# $WORK_DIR/voice_conversion.safetensors; copy it over audiovae/assets/models/ only when its numbers are better.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-work/voice_conversion}; shift || true
mkdir -p "$work"
[ -f "$work/speech/manifest.jsonl" ] || audiovae corpus speech "$work/speech"
audiovae cache "$work/speech" --cache-dir "$work/cache"
resume=(); [ -f "$work/run/state.pt" ] && resume=(--resume)  # an interrupted (or finished) run continues
audiovae train speech_cvae "data.train=$work/speech" "data.cache_dir=$work/cache" "train.out_dir=$work/run" \
  train.steps=6000 train.valid_every=1000 train.checkpoint_every=1000 "${resume[@]}" "$@"
model="$work/run/model.safetensors"
audiovae speakers --model "$model"
audiovae evaluate vc --model "$model" --data "$work/speech" --sentences 3 --json "$work/evaluate_vc.json"
audiovae evaluate vc --model "$model" --data "$work/speech" --sentences 3 --pitch model \
  --json "$work/evaluate_vc_pitch_model.json"
audiovae evaluate vc --model "$model" --data "$work/speech" --sentences 3 --one-shot \
  --json "$work/evaluate_vc_one_shot.json"
python "$here/../../bench/convert.py" --model "$model" --data "$work/speech"
python "$here/../export.py" "$model" --letters --evaluation "$work/evaluate_vc.json" \
  --recipe recipes/voice_conversion/run.sh -o "$work/voice_conversion.safetensors"
