#!/usr/bin/env bash
# Rebuild audiovae/assets/example.wav: one Harvard sentence read by flite's "slt" voice (CMU ARCTIC, BSD-style
# licence), resampled to 22.05 kHz mono 16-bit. Needs Debian's `flite` and the package installed (pip install -e .).
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
flite -voice slt -t "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background." -o "$tmp/slt.wav"
python - "$tmp/slt.wav" <<'PY'
import sys
from audiovae import audio
wave, sr = audio.load(sys.argv[1], 22050)
wave = 0.5 * wave / wave.abs().max()  # peak at -6 dBFS
audio.save("audiovae/assets/example.wav", wave, sr)
print(f"audiovae/assets/example.wav: {wave.numel() / sr:.2f} s at {sr} Hz")
PY
