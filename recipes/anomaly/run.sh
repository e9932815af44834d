#!/usr/bin/env bash
# Anomalous sound detection end to end on the synthetic machine corpus, at three training sizes per machine type:
# 13 and 50 normal clips (`anomaly fit --clips N`: a few recordings, split afresh, no anomalous clip to choose with,
# so the front end is chosen on faults injected into the held-out clips) and all 480 (the corpus's own split; the
# front end chosen on its valid anomalies). At each size, one detector per machine type with the conv VAE and, on
# the same clips, budget and choice of front ends, the DCASE Task 2 baseline (the dense autoencoder over 5 stacked
# frames); then both are scored on the same test split in one table per size. The training budget follows the data
# (about 100 passes: 200 steps for 13 clips, 3,000 for 480). Each detector is fitted at two time resolutions
# (64-ms hop: anomaly_vae / anomaly_dense_ae; 16-ms hop: the *_fine configs). Last, the clip-statistics detectors
# (recipes/anomaly/clip_statistics.py) on the same clips at the same sizes.
# Usage: bash recipes/anomaly/run.sh [WORK_DIR] [extra key=value overrides for every fit]
# SIZES="13 50 480" by default; 480 is the corpus's whole training split.
# On the 2-core CPU: corpus 35 s; 13 and 50 clips: under a minute per machine type and system; 480 clips: 3-5 min
# per machine type and system; each evaluation about 20 s.
set -euo pipefail
work=${1:-work/anomaly}; shift || true
machines="fan pump bearing slider"
sizes=${SIZES:-13 50 480}
[ -f "$work/machines/manifest.jsonl" ] || audiovae corpus machines "$work/machines"
for size in $sizes; do
  dir="$work/clips_$size"
  mkdir -p "$dir"
  clips=(); [ "$size" = 480 ] || clips=(--clips "$size")
  models=()
  for m in $machines; do
    for config in anomaly_vae anomaly_dense_ae; do
      name=${config#anomaly_}_$m
      start=$(date +%s)
      audiovae anomaly fit "$work/machines" --machine "$m" --config "$config" --config "${config}_fine" "${clips[@]}" \
        -o "$dir/$name.safetensors" "data.cache_dir=$work/cache" "$@" > "$dir/$name.log" 2>&1
      echo "$size clips, $name: fitted in $(( $(date +%s) - start )) s"
      grep -E "AUC|^wrote" "$dir/$name.log"
      models+=(--model "$dir/$name.safetensors")
    done
  done
  audiovae evaluate anomaly "${models[@]}" --data "$work/machines" --json "$dir/evaluation.json" \
    --roc "$dir/roc.png" | tee "$dir/evaluation.txt"
done
# the clip-statistics detectors (band z-score, kNN of clip statistics) on the same clips, at the same sizes
python "$(dirname "$0")/clip_statistics.py" "$work/machines" --sizes $sizes --json "$work/clip_statistics.json" \
  | tee "$work/clip_statistics.txt"
