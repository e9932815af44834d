#!/usr/bin/env bash
# Anomalous sound detection end to end on the synthetic machine corpus, in two regimes, each with the conv VAE and,
# on the same clips, budget and choice of front ends, the DCASE Task 2 baseline (the dense autoencoder over 5 stacked
# frames), scored on the same test split in one table; the training budget follows the data (about 100 passes: 200
# steps for 13 clips, 2,930 for 480). Each detector is fitted at two time resolutions (64-ms hop: anomaly_vae /
# anomaly_dense_ae; 16-ms hop: the *_fine configs) and the better kept.
#
# 1. One detector per machine type (DCASE), at three training sizes: 13 and 50 clips of 4 s (`anomaly fit --clips N`:
#    spread over the type's 4 units and 3 noise levels, split afresh, no anomalous clip to choose with, so the front
#    end is chosen on faults injected into the held-out clips; then trained again on all N) and all 480 (the corpus's
#    own split; the front end chosen on its valid anomalies). Beside them, the clip-statistics detectors
#    (clip_statistics.py) on the same clips.
# 2. One machine, a few recordings (the user's case; ONE_MACHINE=0 skips it): a corpus of 10-s clips, and one
#    detector per unit from 13 of its clips (`--unit U --clips 13`), as the MIMII baseline trains one per machine.
#
# Usage: bash recipes/anomaly/run.sh [WORK_DIR] [extra key=value overrides for every fit]; SIZES="13 50 480" (SIZES=""
# with ONE_MACHINE=1: regime 2 alone).
# On the 2-core CPU: corpora 35 s and about 2 min; 13 and 50 clips: under a minute per machine type and system; 480
# clips: 3-5 min per machine type and system; regime 2: about 30 s per unit and system; evaluations 20 s each.
set -euo pipefail
work=${1:-work/anomaly}; shift || true
machines="fan pump bearing slider"
units="id_00 id_02 id_04 id_06"
sizes=${SIZES-13 50 480}  # SIZES="" (set but empty): none
fit() {  # fit NAME_PREFIX OUT_DIR CACHE [fit options...]: the VAE and the DCASE baseline, each at both resolutions
  local prefix=$1 dir=$2 cache=$3; shift 3
  for config in anomaly_vae anomaly_dense_ae; do
    local name=${config#anomaly_}_$prefix start lines=--lines
    [ "$config" = anomaly_vae ] || lines=--no-lines  # the DCASE baseline as published: its frame model alone
    start=$(date +%s)
    rm -rf "$dir/${name}_run"  # a rerun starts afresh (anomaly fit --resume continues an interrupted one)
    audiovae anomaly fit --config "$config" --config "${config}_fine" -o "$dir/$name.safetensors" $lines \
      "$@" "data.cache_dir=$cache" ${extra[@]+"${extra[@]}"} > "$dir/$name.log" 2>&1 \
      || { tail -5 "$dir/$name.log"; exit 1; }
    echo "$name: fitted in $(( $(date +%s) - start )) s"
    grep -E "AUC|^wrote" "$dir/$name.log"
    models+=(--model "$dir/$name.safetensors")
  done
}
extra=("$@")
[ -f "$work/machines/manifest.jsonl" ] || audiovae corpus machines "$work/machines"
for size in $sizes; do
  dir="$work/clips_$size"
  mkdir -p "$dir"
  clips=(); [ "$size" = 480 ] || clips=(--clips "$size")
  models=()
  for m in $machines; do
    fit "$m" "$dir" "$work/cache" "$work/machines" --machine "$m" ${clips[@]+"${clips[@]}"}
  done
  audiovae evaluate anomaly "${models[@]}" --data "$work/machines" --json "$dir/evaluation.json" \
    --roc "$dir/roc.png" | tee "$dir/evaluation.txt"
done
if [ -n "${sizes// }" ]; then
  python "$(dirname "$0")/clip_statistics.py" "$work/machines" --sizes $sizes --json "$work/clip_statistics.json" \
    | tee "$work/clip_statistics.txt"
fi
if [ "${ONE_MACHINE:-1}" = 1 ]; then
  [ -f "$work/machines_10s/manifest.jsonl" ] || audiovae corpus machines "$work/machines_10s" --seconds 10 --train 13
  dir="$work/one_machine_13"
  mkdir -p "$dir"
  models=()
  for m in $machines; do
    for u in $units; do
      fit "${m}_$u" "$dir" "$work/cache_10s" "$work/machines_10s" --machine "$m" --unit "$u" --clips 13
    done
  done
  audiovae evaluate anomaly "${models[@]}" --data "$work/machines_10s" --json "$dir/evaluation.json" \
    --roc "$dir/roc.png" | tee "$dir/evaluation.txt"
fi
