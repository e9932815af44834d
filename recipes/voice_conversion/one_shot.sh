#!/usr/bin/env bash
# One-shot conversion to voices the model never heard, measured leave-speakers-out:
#   corpus (the extended set: 24 voices) -> cache -> train the CVAE without ked and slt -> evaluate one-shot
#   conversion to them (each voice fitted from 3 held-out sentences; --method adapt, fit, blend and encoder) beside the
#   nearest-known-speaker baseline and in-table conversion -> the same into a real speaker (festival's Russian
#   msu_ru_nsh recordings, when installed) -> time `audiovae voice` on ~10 s of reference.
# ked (an American male diphone voice) and slt (festival's female HMM voice) are the two voices no other voice of the
# set is derived from; slt_lo, in training, is the same CMU ARCTIC speaker through flite, lowered.
# Usage: [STEPS=6000] [SPEAKERS=extended|default] bash recipes/voice_conversion/one_shot.sh [WORK_DIR] [overrides]
# Times and numbers: recipes/voice_conversion/README.md, "One-shot".
set -euo pipefail
work=${1:-work/one_shot}; shift || true
steps=${STEPS:-6000}
speakers=${SPEAKERS:-extended}
mkdir -p "$work"
[ -f "$work/speech/manifest.jsonl" ] || audiovae corpus speech "$work/speech" --speakers "$speakers"
audiovae cache "$work/speech" --cache-dir "$work/cache"
resume=(); [ -f "$work/holdout/state.pt" ] && resume=(--resume)  # an interrupted (or finished) run continues
audiovae train speech_cvae "data.train=$work/speech" "data.cache_dir=$work/cache" "train.out_dir=$work/holdout" \
  'data.exclude_speakers=[ked,slt]' "train.steps=$steps" train.valid_every=1000 train.checkpoint_every=1000 \
  "${resume[@]}" "$@"
model="$work/holdout/model.safetensors"
# what the README's tables were measured with (the default then: the network bundled as the neural vocoder until
# 2026-11-30, now the streaming one); drop it for today's default
voc=(--vocoder "$(cd "$(dirname "$0")/../.." && pwd)/audiovae/assets/models/vocoder_stream.safetensors")
audiovae evaluate vc "${voc[@]}" --one-shot --method adapt,fit,blend,encoder --model "$model" --data "$work/speech" --sentences 3 \
  --references 3 --json "$work/one_shot.json"
# the same on a second draw of sentences (the methods' settings were chosen on the first)
audiovae evaluate vc "${voc[@]}" --one-shot --skip 6 --method adapt,fit --model "$model" --data "$work/speech" --sentences 3 \
  --references 3 --json "$work/one_shot_skip6.json"
real=/usr/share/festival/voices/russian/msu_ru_nsh_clunits/wav  # real recordings (Debian package festvox-ru)
if [ -d "$real" ]; then  # into a real speaker's voice, made from one 16-s recording
  audiovae evaluate vc "${voc[@]}" --one-shot --real "$real" --references 1 --method adapt,fit --model "$model" \
    --data "$work/speech" --sentences 3 --json "$work/one_shot_real.json"
fi
refs=$(ls "$work"/speech/wav/ked/ked_00{01..04}.wav)  # four sentences, about 10 s
# shellcheck disable=SC2086
/usr/bin/time -f "fitting a voice from 4 sentences: %e s wall" audiovae voice $refs -o "$work/ked.safetensors" \
  --model "$model"
