"""Held-out reconstruction of a trained model beside the analysis-synthesis baseline, on the same files.

For each test file: mel L1 (nats) of the model's log-mel reconstruction against the input's log-mel, and after
vocoding with Griffin-Lim, the mel L1 of `reconstruct`'s audio and of `resynth`'s audio (same Griffin-Lim, no model)
against the input. Usage: python recipes/speech_vae/evaluate.py MODEL CORPUS [--files 40]
"""

from __future__ import annotations

import argparse
import statistics
import warnings

import torch

from audiovae import audio
from audiovae.checkpoint import load_checkpoint
from audiovae.data.datasets import select
from audiovae.data.layouts import discover
from audiovae.features import MelSpectrogram
from audiovae.metrics import mel_l1
from audiovae.pipelines import latent
from audiovae.pipelines.resynth import resynthesize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model")
    ap.add_argument("corpus")
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--speaker", default=None, help="for conditioned models: decode with each file's own speaker")
    args = ap.parse_args()
    ckpt = load_checkpoint(args.model)
    mel = MelSpectrogram(ckpt.mel)
    vocoder = latent.vocoder_for(ckpt)
    entries, _ = select(discover(args.corpus), "test")
    entries = entries[:: max(1, len(entries) // args.files)][: args.files]
    rows = {"model log-mel": [], "reconstruct (model + GL32)": [], "resynth (GL32 only)": []}
    for e in entries:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wave, _ = audio.load(e.path, ckpt.mel.sample_rate, min_samples=ckpt.mel.min_samples)
        speaker = e.speaker if ckpt.speakers else None
        with torch.inference_mode():
            ref = mel(wave)
            sid = latent.speaker_id(ckpt, speaker)
            rows["model log-mel"].append(float(mel_l1(ckpt.model.reconstruct(ref[None], sid)[0], ref)))
            rows["reconstruct (model + GL32)"].append(float(mel_l1(mel(latent.reconstruct(wave, ckpt, speaker,
                                                                                         vocoder)), ref)))
            rows["resynth (GL32 only)"].append(float(mel_l1(mel(resynthesize(wave, vocoder)), ref)))
    print(f"{len(entries)} held-out files of {args.corpus}; mel L1 in nats (mean +- sd)")
    for name, values in rows.items():
        print(f"  {name:28s} {statistics.mean(values):.3f} +- {statistics.stdev(values):.3f}")


if __name__ == "__main__":
    main()
