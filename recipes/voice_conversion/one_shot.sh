#!/usr/bin/env bash
# One-shot conversion to voices the model never heard: train the same CVAE without two speakers (ked, an American
# male diphone voice close to kal, and slt, the only natural female voice), then evaluate with every target given
# by one reference sentence; the 'unseen' row scores conversion to ked and slt.
# Usage: bash recipes/voice_conversion/one_shot.sh [WORK_DIR] (after run.sh, which builds the corpus and cache)
set -euo pipefail
work=${1:-work/voice_conversion}; shift || true
audiovae train speech_cvae "data.train=$work/speech" "data.cache_dir=$work/cache" "train.out_dir=$work/holdout" \
  'data.exclude_speakers=[ked,slt]' train.steps=6000 train.valid_every=1000 train.checkpoint_every=1000 "$@"
audiovae evaluate vc --model "$work/holdout/model.safetensors" --data "$work/speech" --sentences 3 --one-shot \
  --json "$work/evaluate_vc_holdout.json"
