#!/usr/bin/env bash
# Rebuild audiovae/assets/example.wav, the clip that README's first command converts: two held-out (test-split)
# Harvard sentences, 44 and 46, read by the speech corpus's "slt" voice (festival's CMU ARCTIC slt HTS voice,
# BSD-style licence), joined by 0.3 s of silence. It is in-domain for the bundled voice-conversion model (its voice is
# speaker G of the model) but its sentences were never seen in training.
# Usage: bash recipes/assets/make_example.sh [SPEECH_CORPUS]   (default work/voice_conversion/speech, which
# recipes/voice_conversion/synthetic.sh builds; `audiovae corpus speech DIR` makes it in ~2.5 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
corpus=${1:-work/voice_conversion/speech}
python - "$corpus" <<'PY'
import sys
from pathlib import Path

import torch

from audiovae import audio
from audiovae.data.manifest import read_manifest

corpus = Path(sys.argv[1])
entries = {Path(e.path).name: e for e in read_manifest(corpus / "manifest.jsonl")}
parts = []
for name in ("slt_0044.wav", "slt_0046.wav"):
    e = entries[name]
    assert e.split == "test", f"{name} is in the {e.split} split; the example must be held out"
    parts.append(audio.load(corpus / e.path, 22050)[0])
    print(f"  {name}: {e.text}")
wave = torch.cat([parts[0], torch.zeros(int(0.3 * 22050)), parts[1]])
audio.save("audiovae/assets/example.wav", wave, 22050)
print(f"audiovae/assets/example.wav: {wave.numel() / 22050:.2f} s at 22050 Hz")
PY
