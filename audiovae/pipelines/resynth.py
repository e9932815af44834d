"""Analysis-synthesis: wave -> log-mel -> vocoder -> wave. The baseline every model is later compared with."""

from __future__ import annotations

import torch

from ..features import MelSpectrogram
from ..vocoders import Vocoder


@torch.inference_mode()
def resynthesize(wave: torch.Tensor, vocoder: Vocoder, progress: bool = False) -> torch.Tensor:
    """Pass ``wave`` (``[T]`` or ``[B, T]``, at the vocoder's ``config.sample_rate``) through log-mel and back.

    The output has the input's length and comes back on the CPU.
    """
    device = vocoder.device
    mel = MelSpectrogram(vocoder.config).to(device)
    logmel = mel(wave.to(device).reshape(-1, wave.shape[-1]))  # the contract is batched: [B, n_mels, frames]
    return vocoder(logmel, length=wave.shape[-1], progress=progress).reshape(wave.shape).cpu()
