#!/usr/bin/env bash
# Stage 2 of the vocoder, for a GPU: adversarial fine-tuning of stage 1's generator (run.sh's WORK_DIR/run, trained
# on the reconstruction losses). The generator starts from those weights (train.init); the multi-period and
# multi-resolution discriminators start fresh and join at once. Constant learning rate 2e-4 with the weights' EMA,
# 0.74-s crops, batch 32, 3,000 steps: the measured run (a longer run at this constant rate diverged, see
# recipes/vocoder/README.md). An interrupted run continues (--resume).
# Usage: bash recipes/vocoder/gan_finetune.sh DATA_MANIFEST INIT OUT_DIR [extra key=value overrides or options]
#   e.g. bash recipes/vocoder/gan_finetune.sh work/vocoder/data/manifest.jsonl work/vocoder/run/model.safetensors \
#        work/vocoder/gan --device cuda
# The loss-only comparison: the same with model.adversarial=false train.steps=6000.
# A GPU machine that cannot build the corpus gets a copy: python recipes/vocoder/pack.py (see its docstring).
set -euo pipefail
data=$1 init=$2 out=$3; shift 3
resume=(); [ -f "$out/state.pt" ] && resume=(--resume)
audiovae train vocoder_stream "data.train=$data" "train.init=$init" "train.out_dir=$out" model.adversarial_start=0 \
  train.lr=2e-4 train.lr_schedule=constant train.batch_size=32 data.segment_frames=64 data.num_workers=8 \
  train.steps=3000 "${resume[@]}" "$@"
