#!/usr/bin/env bash
# The bundled denoiser, from real recordings: real speakers (speechocean762) in real recorded noise (Debian packages'
# field recordings) and the synthetic noise types -> cache -> train -> stage 2: a gain refiner fine-tuned on the same
# mixtures with varied recorded noise -> stage 3: clatter (short recorded events) added to the training noise ->
# evaluate on unheard speakers in unheard noise types -> speed -> the offline peers on the same mixtures -> export
# (installed only when it denoises better).
# Usage: [STEPS=12000] [REFINE_STEPS=3000] [CLATTER_STEPS=6000] [SPEECHOCEAN=DIR] bash recipes/denoise/run.sh
#   [WORK_DIR] [key=value overrides for every `audiovae train` stage]
#   SPEECHOCEAN: speechocean762 as its authors release it (default ../shared/data/speechocean762-adults, the 141 adult
#   speakers); the noise packages are fetched once into WORK_DIR/noise_debs (recipes/denoise/fetch_noise.sh, ~5 GB).
# Times and the numbers to expect: recipes/denoise/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${1:-work/denoise}; shift || true
steps=${STEPS:-12000}
speech=${SPEECHOCEAN:-$root/../shared/data/speechocean762-adults}
[ -d "$speech/WAVE" ] || { echo "$speech: no speechocean762 here (set SPEECHOCEAN=DIR)" >&2; exit 2; }
mkdir -p "$work"
noise_root=${NOISE_ROOT:-$work/noise_debs/root}
if [ ! -f "$work/noise/sources.csv" ] || [ ! -f "$work/noise_clatter/sources.csv" ]; then
  [ -d "$noise_root/usr/share/games" ] || bash "$here/fetch_noise.sh" "$work/noise_debs"
fi
[ -f "$work/noise/sources.csv" ] || audiovae corpus noise "$work/noise" --root "$noise_root"
# unheard noise types (vehicle, fire, machinery) and whole unheard speakers (the release's test split) in test only
[ -f "$work/noisy/manifest.jsonl" ] || audiovae corpus noisy "$work/noisy" --clean "$speech" --no-real-voice \
  --noise-dir "$work/noise" --test-only-noise vehicle --test-only-noise fire --test-only-noise machinery \
  --clean-fraction 0.1 --test-files-per-speaker 4 --mixtures-per-file 8
audiovae cache "$work/noisy" --cache-dir "$work/cache"
resume=(); [ -f "$work/run/state.pt" ] && resume=(--resume)  # an interrupted (or finished) run continues
audiovae train denoise_vae "data.train=$work/noisy" "data.cache_dir=$work/cache" "train.out_dir=$work/run" \
  "train.steps=$steps" "${resume[@]}" "$@"
# stage 2: a gain refiner added (it starts as the identity) and 3,000 steps more on the same mixtures remade with
# half the recorded training noise varied (speed, tilt); the test split comes out byte for byte the same
[ -f "$work/noisy_varied/manifest.jsonl" ] || audiovae corpus noisy "$work/noisy_varied" --clean "$speech" \
  --no-real-voice --noise-dir "$work/noise" --test-only-noise vehicle --test-only-noise fire \
  --test-only-noise machinery --clean-fraction 0.1 --test-files-per-speaker 4 --mixtures-per-file 8 \
  --vary-recorded 0.5
audiovae cache "$work/noisy_varied" --cache-dir "$work/cache"
resume=(); [ -f "$work/refine/state.pt" ] && resume=(--resume)
audiovae train denoise_vae "data.train=$work/noisy_varied" "data.cache_dir=$work/cache" "train.out_dir=$work/refine" \
  "train.init=$work/run/model.safetensors" model.refine_channels=128 model.refine_blocks=3 \
  "train.steps=${REFINE_STEPS:-3000}" train.lr=5e-4 train.warmup_steps=100 "${resume[@]}" "$@"
# stage 3: clatter (short recorded events: steps on a dozen floors, doors, keys, glass; 16 scenes of 30 s) added to
# the stage-2 corpus as a training-only type, 6,000 steps more from stage 2; the test split byte for byte the same
[ -f "$work/noise_clatter/sources.csv" ] || audiovae corpus noise "$work/noise_clatter" --root "$noise_root" \
  --clatter 16
[ -f "$work/noisy_clatter/manifest.jsonl" ] || audiovae corpus noisy "$work/noisy_clatter" --clean "$speech" \
  --no-real-voice --noise-dir "$work/noise_clatter" --test-only-noise vehicle --test-only-noise fire \
  --test-only-noise machinery --train-only-noise clatter --clean-fraction 0.1 --test-files-per-speaker 4 \
  --mixtures-per-file 8 --vary-recorded 0.5
audiovae cache "$work/noisy_clatter" --cache-dir "$work/cache"
resume=(); [ -f "$work/clatter/state.pt" ] && resume=(--resume)
audiovae train denoise_vae "data.train=$work/noisy_clatter" "data.cache_dir=$work/cache" \
  "train.out_dir=$work/clatter" "train.init=$work/refine/model.safetensors" model.refine_channels=128 \
  model.refine_blocks=3 "train.steps=${CLATTER_STEPS:-6000}" train.lr=3e-4 train.warmup_steps=100 "${resume[@]}" "$@"
model="$work/clatter/model.safetensors"
audiovae evaluate denoise --model "$model" --data "$work/noisy" --json "$work/evaluate_denoise.json"
python "$root/bench/denoise.py" --model "$model" --data "$work/noisy"
# the peers on the headline's mixtures (the test-only recorded types at every SNR: 98 files, 8 min on 1 thread)
python "$root/bench/denoise_peers.py" --model "$model" --data "$work/noisy" --limit 0 --clean-speech \
  --noise vehicle fire machinery --json "$work/peers.json"
python "$root/recipes/export.py" "$model" --evaluation "$work/evaluate_denoise.json" --recipe recipes/denoise/run.sh \
  -o "$work/denoise.safetensors" --install "$root/audiovae/assets/models/denoise.safetensors"
