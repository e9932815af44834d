"""DNSMOS of voice conversions through each vocoder: log-mels the bundled model decodes, not the true ones.

``evaluate vocoder`` scores vocoders on the log-mels of real audio; what users hear from ``convert`` comes from a
model's decoded log-mels, which are smoother. This converts 6 held-out real-voice and 6 synthetic-voice sentences of
the vocoder manifest into voices A and E of the bundled model, through each vocoder, and prints the mean DNSMOS
(P.808, OVRL, SIG) and the time spent converting.

Run: ``python recipes/vocoder/convert_dnsmos.py work/vocoder/data/manifest.jsonl [VOCODER ...]``
(default: the streaming network, audiovae/assets/models/vocoder_stream.safetensors, which the README's figures were
measured with as the then bundled neural vocoder, then mel-griffin-lim and griffin-lim; pass ``neural`` for today's
bundled one; needs the ``eval`` extra).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

import audiovae
from audiovae import audio
from audiovae.data.corpora.noisy import REAL_SPEAKER
from audiovae.data.layouts import discover
from audiovae.evaluation.vocoder import JUDGE_RATE, _judges
from audiovae.pretrained import STREAM_VOCODER

TARGETS = ("A", "E")


def main() -> None:
    manifest, names = sys.argv[1], sys.argv[2:] or [str(STREAM_VOCODER), "mel-griffin-lim", "griffin-lim"]
    _, dnsmos = _judges()
    test = [e for e in discover(manifest) if e.split == "test"]
    real = [e for e in test if e.speaker == REAL_SPEAKER]
    synth = [e for e in test if e.speaker != REAL_SPEAKER]
    sources = real[:: max(1, len(real) // 6)][:6] + synth[:: max(1, len(synth) // 6)][:6]
    models = {v: audiovae.load("voice-conversion", device="cpu", vocoder=v) for v in names}
    scores = {v: {"p808": [], "ovrl": [], "sig": [], "seconds": 0.0} for v in names}
    for e in sources:
        for target in TARGETS:
            for name, model in models.items():
                t0 = time.perf_counter()
                with torch.inference_mode():
                    out, sr = model.convert(e.path, target)
                scores[name]["seconds"] += time.perf_counter() - t0
                mos = dnsmos.run(np.clip(audio.resample(out.numpy(), sr, JUDGE_RATE), -1, 1).astype(np.float32),
                                 JUDGE_RATE)
                for key, field in (("p808", "p808_mos"), ("ovrl", "ovrl_mos"), ("sig", "sig_mos")):
                    scores[name][key].append(float(mos[field]))
    print(f"{len(sources)} sources ({len(sources) // 2} real voice, the rest synthetic) x targets {', '.join(TARGETS)}")
    for name, r in scores.items():
        half = len(r["p808"]) // 2
        print(f"{name:18s} P.808 {np.mean(r['p808']):.2f} (real-voice sources {np.mean(r['p808'][:half]):.2f}, "
              f"synthetic {np.mean(r['p808'][half:]):.2f})  OVRL {np.mean(r['ovrl']):.2f}  SIG {np.mean(r['sig']):.2f}"
              f"  converting {r['seconds']:.1f} s")


if __name__ == "__main__":
    main()
