#!/usr/bin/env bash
# The bundled voice-conversion model, from real speakers: speechocean762's adult speakers ->
#   corpus voices (121 table speakers, 3 utterances of each held out; 20 whole speakers, 10 per sex, from the authors'
#   test split, left out for one-shot) -> cache -> train the CVAE with its speaker encoder -> evaluate (held-out
#   utterances of 12 table voices into each other; one-shot into the 20 unheard speakers from 10 s each; DNSMOS beside
#   the recordings' own) -> speed -> export (8 voices lettered A-H, spread over sex and register; the others keep
#   their corpus names).
# Usage: [STEPS=12000] [SPEECHOCEAN=DIR] bash recipes/voice_conversion/run.sh [WORK_DIR] [overrides for `audiovae train`]
# SPEECHOCEAN: speechocean762 as its authors release it, or the adult subset in ../shared/data/ (the default).
# Times and the numbers to expect: recipes/voice_conversion/README.md. The export writes WORK_DIR/voice_conversion.safetensors.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${1:-work/voice_conversion}; shift || true
steps=${STEPS:-12000}
speechocean=${SPEECHOCEAN:-$root/../shared/data/speechocean762-adults}
if [ ! -d "$speechocean" ]; then
  echo "$speechocean: no speechocean762 here; set SPEECHOCEAN to the authors' release (WAVE/, train/, test/)" >&2
  exit 1
fi
mkdir -p "$work"
[ -f "$work/voices/manifest.jsonl" ] || audiovae corpus voices "$work/voices" --source "$speechocean"
audiovae cache "$work/voices" --cache-dir "$work/cache"
resume=(); [ -f "$work/run/state.pt" ] && resume=(--resume)  # an interrupted (or finished) run continues
audiovae train speech_cvae "data.train=$work/voices" "data.cache_dir=$work/cache" "train.out_dir=$work/run" \
  "train.steps=$steps" train.valid_every=2000 train.checkpoint_every=1000 "${resume[@]}" "$@"
model="$work/run/model.safetensors"
vc=(audiovae evaluate vc --model "$model" --data "$work/voices")
"${vc[@]}" --voices 12 --json "$work/evaluate_vc.json"
"${vc[@]}" --one-shot --sources 6 --reference-seconds 10 --json "$work/evaluate_vc_one_shot.json"
python "$root/bench/convert.py" --model "$model" --data "$work/voices"
python "$root/recipes/export.py" "$model" --letters --featured 8 --data "$work/voices" \
  --evaluation "$work/evaluate_vc.json" --recipe recipes/voice_conversion/run.sh \
  -o "$work/voice_conversion.safetensors"
# not installed over the bundled (synthetic) model yet: on 2026-12-06 this run converted real voices in only half the
# pairs (recipes/voice_conversion/README.md); add --install "$root/audiovae/assets/models/voice_conversion.safetensors"
# once it passes
