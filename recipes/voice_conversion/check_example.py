"""How the bundled model converts the bundled example clip (voice G = slt, held-out sentences) into every voice.

Usage: ``python recipes/voice_conversion/check_example.py [SPEECH_CORPUS]`` (default work/voice_conversion/speech).
For each target: resemblyzer similarity of the converted clip to the target's reference and to the source's (each
made from 8 held-out test sentences of the corpus, not the example's), and the median F0 of the converted clip
beside the target's (measured on its training data, as `audiovae speakers` shows). The numbers in README come
from this script.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

import audiovae
from audiovae.data.layouts import discover
from audiovae.evaluation.vc import _Judge
from audiovae.pitch import register, track_f0

EXAMPLE = Path(audiovae.__file__).resolve().parent / "assets" / "example.wav"
EXAMPLE_SENTENCES = ("0044", "0046")  # sentence numbers of the clip: kept out of the references


def main() -> None:
    warnings.simplefilter("ignore")
    corpus = Path(sys.argv[1] if len(sys.argv) > 1 else "work/voice_conversion/speech")
    vc = audiovae.load("voice-conversion", device="cpu")
    voices = {row["name"]: row for row in vc.describe()}
    judge = _Judge(vc.checkpoint)
    test = [e for e in discover(corpus) if e.split == "test" and Path(e.path).stem[-4:] not in EXAMPLE_SENTENCES]
    refs = {letter: judge.reference(sorted(e.path for e in test if e.speaker == row["voice"])[:8])
            for letter, row in voices.items()}

    def median_hz(wave) -> float:  # noqa: ANN001
        f0, voiced = track_f0(wave, vc.checkpoint.mel)
        return float(np.exp(register([f0], [voiced]).median))

    source = vc.load_audio(EXAMPLE)
    e = judge.embed(source)
    print(f"example (G, {voices['G']['voice']}): median F0 {median_hz(source):.0f} Hz, "
          f"similarity to G's reference {e @ refs['G']:.3f}")
    print(f"{'target':8s} {'voice':8s} {'sim→target':>10s} {'sim→G':>7s} {'nearest':>8s} {'F0 Hz':>6s} "
          f"{'target F0':>9s}")
    names, matrix = list(refs), np.stack(list(refs.values()))
    for letter, row in voices.items():
        out, _ = vc.convert(EXAMPLE, speaker=letter)
        e = judge.embed(out)
        print(f"{letter:8s} {row['voice']:8s} {e @ refs[letter]:10.3f} {e @ refs['G']:7.3f} "
              f"{names[int(np.argmax(matrix @ e))]:>8s} {median_hz(out):6.0f} {row['median_f0_hz']:9.0f}")


if __name__ == "__main__":
    main()
