"""Voice conversion with a speaker-conditioned model: encode with the source speaker, decode with the target.

When the source speaker is not given it is estimated by analysis-by-synthesis: the utterance is decoded with every
speaker of the table and the one whose decoding matches the input best (mel L1) is taken. That needs no extra network
and uses exactly what the model learnt about each voice.
"""

from __future__ import annotations

import torch

from ..checkpoint import Checkpoint
from ..errors import ConfigError
from ..features import MelSpectrogram
from ..metrics import mel_l1
from .latent import speaker_id, vocoder_for


def _require_speakers(ckpt: Checkpoint) -> None:
    if not ckpt.speakers:
        raise ConfigError(f"this model ({ckpt.model.model_type}, task {ckpt.task}) has no speakers: "
                          "voice conversion needs a speaker-conditioned model (e.g. `audiovae train speech_cvae`)")


@torch.inference_mode()
def estimate_speaker(logmel: torch.Tensor, ckpt: Checkpoint) -> int:
    """Index of the speaker whose decoding of ``logmel`` ``[1, n_mels, T]`` reproduces it best."""
    _require_speakers(ckpt)
    model, n = ckpt.model, len(ckpt.speakers)
    ids = torch.arange(n, device=logmel.device)
    batch = logmel.expand(n, -1, -1)
    z = model.encode(batch, ids).mode()  # per-speaker encoding when the encoder is conditioned too
    errors = mel_l1(model.decode(z, ids)[..., : logmel.shape[-1]], batch)
    return int(errors.argmin())


@torch.inference_mode()
def convert(wave: torch.Tensor, ckpt: Checkpoint, target: str | int, source: str | int | None = None,
            vocoder: torch.nn.Module | None = None) -> tuple[torch.Tensor, str]:
    """Convert ``wave`` (``[T]`` at the checkpoint's rate) to the ``target`` voice.

    Returns the converted waveform (same length) and the source speaker's name (given or estimated).
    """
    _require_speakers(ckpt)
    device = ckpt.model.mel_mean.device
    logmel = MelSpectrogram(ckpt.mel).to(device)(wave.to(device).reshape(1, -1))
    src = speaker_id(ckpt, source) if source is not None else torch.tensor([estimate_speaker(logmel, ckpt)],
                                                                            device=device)
    tgt = speaker_id(ckpt, target)
    z = ckpt.model.encode(logmel, src).mode()
    converted = ckpt.model.decode(z, tgt)[..., : logmel.shape[-1]]
    wave_out = (vocoder or vocoder_for(ckpt))(converted, length=wave.numel())[0].cpu()
    return wave_out, ckpt.speakers[int(src)]
