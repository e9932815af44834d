#!/usr/bin/env bash
# A vocoder for the music model's front end (80 mels up to 11,025 Hz; the speech vocoder's stop at 8 kHz, so one
# vocoder cannot serve both): the music corpus -> `audiovae train vocoder_stream` with that front end (6,000 steps, the
# discriminators for the last 500) -> `evaluate vocoder` on the held-out pieces beside Griffin-Lim 32 and 100.
# On music only mel L1, MR-STFT and speed mean anything: DNSMOS and PESQ judge speech.
# Usage: bash recipes/vocoder/music.sh [WORK_DIR] [extra key=value overrides]. Numbers: recipes/vocoder/README.md.
set -euo pipefail
work=${1:-work/vocoder_music}; shift || true
mkdir -p "$work"
[ -f "$work/music/manifest.jsonl" ] || audiovae corpus music "$work/music"
resume=(); [ -f "$work/run/state.pt" ] && resume=(--resume)
audiovae train vocoder_stream "data.train=$work/music" "train.out_dir=$work/run" mel.f_max=11025 train.steps=6000 \
  model.adversarial_start=5500 "${resume[@]}" "$@"
audiovae evaluate vocoder --data "$work/music" --files 0 --pghi --vocoder "$work/run/model.safetensors" \
  --json "$work/evaluate.json"
