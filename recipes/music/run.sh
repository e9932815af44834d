#!/usr/bin/env bash
# Music generation end to end on the offline music corpus: corpus -> train the music VAE -> train the prior
# over its latent sequences -> evaluate (reconstruction; Fréchet distance of prior samples, of the N(0, I) baseline
# and of real training clips to the held-out pieces) -> export.
# Usage: [VAE_STEPS=6000] [PRIOR_STEPS=3000] bash recipes/music/run.sh [WORK_DIR]
# Times and the numbers to expect: recipes/music/README.md. The export writes WORK_DIR/music.safetensors (fp16) and
# installs it as the package's bundled music model (audiovae/assets/models/music.safetensors) only when there is none
# yet or it scores better (lower Fréchet distance of prior samples, reconstruction mel L1 no higher).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${1:-work/music}; shift || true
mkdir -p "$work"
[ -f "$work/music/manifest.jsonl" ] || audiovae corpus music "$work/music"
# no `audiovae cache` step: it computes the speech front end; `audiovae train` fills the cache with the music one
common=("data.train=$work/music" "data.cache_dir=$work/cache")
resume=(); [ -f "$work/vae/state.pt" ] && resume=(--resume)  # an interrupted (or finished) run continues
audiovae train music_vae "${common[@]}" "train.out_dir=$work/vae" "train.steps=${VAE_STEPS:-6000}" "${resume[@]}"
resume=(); [ -f "$work/prior/state.pt" ] && resume=(--resume)
audiovae train music_prior "${common[@]}" "model.vae=$work/vae/model.safetensors" "train.out_dir=$work/prior" \
  "train.steps=${PRIOR_STEPS:-3000}" "${resume[@]}"
model="$work/prior/model.safetensors"
# --vocoder griffin-lim: what the README's numbers were measured with (the default then)
audiovae evaluate music --model "$model" --data "$work/music" --vocoder griffin-lim --json "$work/evaluate_music.json"
python "$root/recipes/export.py" "$model" --evaluation "$work/evaluate_music.json" --recipe recipes/music/run.sh \
  -o "$work/music.safetensors" --install "$root/audiovae/assets/models/music.safetensors"
