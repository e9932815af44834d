"""Objective measures shared by tests, benchmarks and ``audiovae evaluate``. Pure, batched where it matters."""

from __future__ import annotations

import torch

from .features import MelConfig, hann_window, stft


def spectral_convergence(wave: torch.Tensor, target_magnitude: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """``|| |STFT(wave)| - S ||_F / ||S||_F`` per item: how well a waveform realises a target magnitude ``S``.

    ``wave`` is ``[..., T]``, ``target_magnitude`` ``[..., n_freqs, frames]`` (power 1) on the same STFT grid.
    """
    window = hann_window(config, wave.device)
    mag = stft(wave.float(), config, window).abs()
    frames = min(mag.shape[-1], target_magnitude.shape[-1])
    mag, ref = mag[..., :frames], target_magnitude[..., :frames].to(mag)
    norm = torch.linalg.vector_norm
    return norm(mag - ref, dim=(-2, -1)) / norm(ref, dim=(-2, -1)).clamp_min(1e-12)


def mel_l1(logmel_a: torch.Tensor, logmel_b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of two natural-log mel spectrograms, per item (frames trimmed to the shorter)."""
    frames = min(logmel_a.shape[-1], logmel_b.shape[-1])
    return (logmel_a[..., :frames] - logmel_b[..., :frames]).abs().mean(dim=(-2, -1))
