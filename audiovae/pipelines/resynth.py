"""Analysis-synthesis: wave -> log-mel -> vocoder -> wave. The baseline every model is later compared with."""

from __future__ import annotations

import torch
from torch import nn

from ..features import MelSpectrogram


@torch.inference_mode()
def resynthesize(wave: torch.Tensor, vocoder: nn.Module, progress: bool = False) -> torch.Tensor:
    """Pass ``wave`` (``[T]`` or ``[B, T]``, at the vocoder's ``config.sample_rate``) through log-mel and back.

    The output has the input's length and comes back on the CPU.
    """
    device = next(iter(vocoder.buffers())).device
    mel = MelSpectrogram(vocoder.config).to(device)
    logmel = mel(wave.to(device))
    return vocoder(logmel, length=wave.shape[-1], progress=progress).cpu()
