"""Held-out reconstruction of a trained model beside the analysis-synthesis baseline, on the same files.

For each test file: the mel L1 (nats) of the model's log-mel reconstruction against the input's log-mel and, after
vocoding with the model's vocoder, the mel L1 of ``reconstruct``'s audio and of ``resynth``'s audio (the same
vocoder, no model) against the input. The gap between the last two is what the model costs; the first says how much
of it is the model's and how much the vocoder's.
"""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from .. import audio
from ..checkpoint import Checkpoint
from ..data.manifest import Entry
from ..errors import AudiovaeError
from ..features import MelSpectrogram
from ..metrics import mel_l1
from ..pipelines import latent
from ..pipelines.vocoder_choice import vocoder_for

ROWS = ("model log-mel", "reconstruct (model + vocoder)", "resynth (vocoder only)")


@dataclass
class Reconstructed:
    """One input through the model and the vocoder, and through the vocoder alone, with the mel L1 (nats) of each
    against the input's log-mel: the model's log-mel, its audio analysed again, and the vocoder-only audio's."""

    model_mel_l1: float
    audio_mel_l1: float
    resynth_mel_l1: float
    audio: torch.Tensor  # what `reconstruct` outputs [T]
    resynth: torch.Tensor  # what `resynth` outputs [T]


@torch.inference_mode()
def reconstruct_and_score(wave: torch.Tensor, ckpt: Checkpoint, vocoder: torch.nn.Module, mel: MelSpectrogram,
                          speaker: torch.Tensor | None = None) -> Reconstructed:
    """Waveform ``[T]`` -> :class:`Reconstructed` (``mel``: the model's front end, on its device)."""
    ref = mel(wave.to(ckpt.model.mel_mean.device)[None])[0]
    estimate = ckpt.model.reconstruct(ref[None], speaker)[0]
    out = vocoder(estimate[None], length=wave.numel())[0]  # what `reconstruct` and `resynth` output (bit-identical)
    alone = vocoder(ref[None], length=wave.numel())[0]
    return Reconstructed(float(mel_l1(estimate, ref)), float(mel_l1(mel(out.to(ref.device)), ref)),
                         float(mel_l1(mel(alone.to(ref.device)), ref)), out.cpu(), alone.cpu())


@dataclass
class ReconstructionReport:
    """Mel L1 (nats) per file for each row of :data:`ROWS`, in the order of ``files``."""

    files: list[str]
    scores: dict[str, list[float]]

    def mean(self, row: str) -> float:
        return statistics.mean(self.scores[row])

    def table(self) -> str:
        lines = [f"{len(self.files)} held-out files; mel L1 in nats (mean +- sd)"]
        for name, values in self.scores.items():
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            lines.append(f"  {name:30s} {statistics.mean(values):.3f} +- {sd:.3f}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self) | {"means": {row: self.mean(row) for row in self.scores}}


def evaluate_reconstruction(ckpt: Checkpoint, entries: Sequence[Entry], files: int = 40,
                            vocoder: torch.nn.Module | None = None) -> ReconstructionReport:
    """Score ``ckpt`` on an evenly spaced subset of ``files`` of ``entries`` (absolute paths). A speaker-conditioned
    model decodes each file with the file's own speaker."""
    if files < 1:
        raise AudiovaeError(f"files={files}: need at least one file")
    entries = list(entries)
    if not entries:
        raise AudiovaeError("evaluate reconstruction: no test files")
    chosen = entries[:: max(1, len(entries) // files)][:files]
    mel = MelSpectrogram(ckpt.mel).to(ckpt.model.mel_mean.device)
    vocoder = vocoder or vocoder_for(ckpt)
    scores: dict[str, list[float]] = {row: [] for row in ROWS}
    for e in chosen:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wave, _ = audio.load(e.path, ckpt.mel.sample_rate, min_samples=ckpt.mel.min_samples)
        speaker = latent.speaker_id(ckpt, e.speaker if ckpt.speakers else None)
        r = reconstruct_and_score(wave, ckpt, vocoder, mel, speaker)
        for row, value in zip(ROWS, (r.model_mel_l1, r.audio_mel_l1, r.resynth_mel_l1), strict=True):
            scores[row].append(value)
    return ReconstructionReport([str(e.path) for e in chosen], scores)
