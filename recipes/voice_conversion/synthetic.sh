#!/usr/bin/env bash
# Voice conversion end to end on the offline synthetic corpus (the bundled model until 2026-12-06):
#   corpus -> cache -> train the CVAE (with its speaker encoder) -> evaluate (the table's speakers with --pitch model
#   and --pitch shift, one-shot from a reference, real recordings outside the corpus) -> speed -> export.
# Usage: [STEPS=6000] bash recipes/voice_conversion/synthetic.sh [WORK_DIR] [extra key=value overrides for `audiovae train`]
# Times and the numbers to expect: recipes/voice_conversion/README.md. The export writes
# WORK_DIR/voice_conversion.safetensors (fp16) and installs it as the package's bundled model
# (audiovae/assets/models/voice_conversion.safetensors) only when there is none yet or its evaluation is better;
# a model evaluated on real speakers (run.sh) is closer evidence, so this one no longer replaces it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${1:-work/voice_conversion}; shift || true
steps=${STEPS:-6000}
mkdir -p "$work"
[ -f "$work/speech/manifest.jsonl" ] || audiovae corpus speech "$work/speech"
audiovae cache "$work/speech" --cache-dir "$work/cache"
resume=(); [ -f "$work/run/state.pt" ] && resume=(--resume)  # an interrupted (or finished) run continues
audiovae train speech_cvae "data.train=$work/speech" "data.cache_dir=$work/cache" "train.out_dir=$work/run" \
  "train.steps=$steps" train.valid_every=1000 train.checkpoint_every=1000 "${resume[@]}" "$@"
model="$work/run/model.safetensors"
audiovae speakers --model "$model"
vc=(audiovae evaluate vc --model "$model" --data "$work/speech")
"${vc[@]}" --sentences 3 --json "$work/evaluate_vc.json"
"${vc[@]}" --sentences 3 --pitch shift --json "$work/evaluate_vc_pitch_shift.json"
"${vc[@]}" --sentences 3 --one-shot --json "$work/evaluate_vc_one_shot.json"
real=/usr/share/festival/voices/russian/msu_ru_nsh_clunits/wav  # real read speech (Debian festvox-ru)
if [ -d "$real" ]; then
  "${vc[@]}" --real "$real" --files 5 --json "$work/evaluate_vc_real.json"
fi
python "$root/bench/convert.py" --model "$model" --data "$work/speech"
python "$root/recipes/export.py" "$model" --letters --data "$work/speech" --evaluation "$work/evaluate_vc.json" \
  --recipe recipes/voice_conversion/synthetic.sh -o "$work/voice_conversion.safetensors" \
  --install "$root/audiovae/assets/models/voice_conversion.safetensors"
