#!/usr/bin/env bash
# The VAE family compared under one budget: the plain conv VAE, beta-VAE (capacity), VQ-VAE, hierarchical VAE,
# WAE-MMD and the adversarial autoencoder, each trained for the same steps on the same speech and the same music
# (parameter counts within 1 % of one another), then scored on the same held-out clips by
# `audiovae evaluate variants`, and written as one table: Markdown, CSV and PNG.
# Usage: [STEPS=1500] [VARIANTS="vae beta_vae vqvae hvae wae aae"] bash recipes/variants/run.sh [WORK_DIR]
# Times and the numbers to expect: recipes/variants/README.md. An interrupted run continues where it stopped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-work/variants}; shift || true
steps=${STEPS:-1500}
variants=${VARIANTS:-vae beta_vae vqvae hvae wae aae}
mkdir -p "$work/runs"
[ -f "$work/speech/manifest.jsonl" ] || audiovae corpus speech "$work/speech"
[ -f "$work/music/manifest.jsonl" ] || audiovae corpus music "$work/music"
for domain in speech music; do
  models=()
  for v in $variants; do
    out="$work/runs/${domain}_$v"
    resume=(); [ -f "$out/state.pt" ] && resume=(--resume)
    echo "== $domain $v ($steps steps) $(date +%T)"
    audiovae train "${domain}_$v" "data.train=$work/$domain" "data.cache_dir=$work/cache_$domain" \
      "train.out_dir=$out" "train.steps=$steps" "train.checkpoint_every=500" "${resume[@]}"
    models+=("$out/model.safetensors")
  done
  seconds=2; [ "$domain" = music ] && seconds=10  # the corpus sentences are 2-3 s; music is scored in 10-s clips
  # what the README's table was measured with (the defaults then): the network bundled as the neural vocoder until
  # 2026-11-30, now the streaming one
  voc="$here/../../audiovae/assets/models/vocoder_stream.safetensors"; [ "$domain" = music ] && voc=griffin-lim
  echo "== evaluate $domain $(date +%T)"
  audiovae evaluate variants "${models[@]}" --data "$work/$domain" --clips 32 --seconds "$seconds" \
    --vocoder "$voc" --json "$work/$domain.json"
done
python "$here/table.py" "$work/speech.json" "$work/music.json" -o "$work/comparison"
echo "== done $(date +%T): $work/comparison.md, .csv, .png"
