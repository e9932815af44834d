"""Batched fast Griffin-Lim (Perraudin, Balazs & Sondergaard 2013): phase from magnitude, on any device.

With momentum 0 this is the classic Griffin-Lim (1984). Momentum 0.99 (librosa's default) converges far faster:
at 32 iterations it reaches a spectral convergence plain Griffin-Lim needs several times as many iterations for.
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..features import MelConfig, MelSpectrogram, istft, stft
from ..progress import bar_off
from .base import Vocoder, fit_length
from .pghi import pghi_phase
from .registry import register_vocoder

__all__ = ["griffin_lim", "GriffinLim"]


def griffin_lim(magnitude: torch.Tensor, config: MelConfig, n_iter: int = 32, momentum: float = 0.99,
                init: str | torch.Tensor = "random", seed: int | None = 0, length: int | None = None,
                window: torch.Tensor | None = None, progress: bool = False) -> torch.Tensor:
    """Estimate a waveform whose STFT magnitude is ``magnitude``.

    Args:
        magnitude: linear STFT magnitude (power 1) ``[..., n_freqs, frames]`` with ``n_freqs = n_fft // 2 + 1``.
        config: the STFT parameters (hop, window, padding) the magnitude was computed with.
        n_iter: iterations; each costs one STFT and one inverse STFT.
        momentum: fast Griffin-Lim momentum in ``[0, 1)``; 0 gives classic Griffin-Lim.
        init: ``"random"`` (uniform phase, reproducible with ``seed``), ``"zeros"`` (zero phase), ``"pghi"``
            (phase-gradient heap integration: a phase estimated from the magnitude, :mod:`.pghi`), or a complex
            tensor of ``magnitude``'s shape whose phase starts the iterations (a neural vocoder's, for example).
        seed: seed for the random phase; ``None`` draws from the global generator.
        length: output length in samples (default ``(frames - 1) * hop_length``); the iterations run at the
            frames' natural length and the result is then cut or zero-padded, so any length is accepted.
        window: analysis window on the right device (built from ``config`` when omitted).
        progress: show a progress bar over iterations.

    Returns:
        Waveform ``[..., T]``, float32, on ``magnitude``'s device.
    """
    if magnitude.shape[-2] != config.n_freqs:
        raise ConfigError(f"griffin_lim: magnitude has {magnitude.shape[-2]} frequency bins, "
                          f"config n_fft={config.n_fft} needs {config.n_freqs}")
    if not 0.0 <= momentum < 1.0:
        raise ConfigError(f"griffin_lim: momentum={momentum} must be in [0, 1)")
    if n_iter < 0:
        raise ConfigError(f"griffin_lim: n_iter={n_iter} must be >= 0")
    if isinstance(init, torch.Tensor):
        if init.shape != magnitude.shape or not init.is_complex():
            raise ConfigError(f"griffin_lim: an initial phase must be a complex tensor of the magnitude's shape "
                              f"{list(magnitude.shape)}, got {init.dtype} {list(init.shape)}")
    elif init not in ("random", "zeros", "pghi"):
        raise ConfigError(f"griffin_lim: init={init!r} must be 'random', 'zeros', 'pghi' or a complex tensor")
    mag = magnitude.float()
    device = mag.device
    if window is None:
        window = torch.hann_window(config.win_length, periodic=True, device=device)
    natural = (mag.shape[-1] - 1) * config.hop_length  # the length whose STFT has exactly these frames
    if length is None:
        length = natural
    if isinstance(init, torch.Tensor):
        angles = torch.sgn(init.to(device=device, dtype=torch.complex64))
    elif init == "random":
        gen = torch.Generator(device=device)
        gen.manual_seed(seed) if seed is not None else gen.seed()
        phase = torch.rand(mag.shape, generator=gen, device=device) * (2 * math.pi)
        angles = torch.polar(torch.ones_like(mag), phase)
    elif init == "pghi":
        angles = torch.polar(torch.ones_like(mag), pghi_phase(mag, config))
    else:
        angles = torch.ones_like(mag, dtype=torch.complex64)
    rebuilt = torch.zeros_like(angles)
    alpha = momentum / (1.0 + momentum)
    with torch.autocast(device_type=device.type, enabled=False):
        for _ in tqdm(range(n_iter), desc="griffin-lim", unit="it", disable=bar_off(progress), leave=False, delay=2.0):
            previous = rebuilt
            rebuilt = stft(istft(mag * angles, config, window, natural), config, window)
            angles = torch.sgn(torch.sub(rebuilt, previous, alpha=alpha) if alpha else rebuilt)  # z / |z|
        wave = istft(mag * angles, config, window, natural)
    return fit_length(wave, length)


@register_vocoder
class GriffinLim(Vocoder):
    """Vocoder: log-mel ``[B, n_mels, frames]`` -> waveform ``[B, T]`` via mel inversion + fast Griffin-Lim.

    No weights (its state dict is empty): its settings rebuild it; ``.to(device)`` moves the filterbank and window.
    """

    vocoder_type = "griffin-lim"

    def __init__(self, config: MelConfig | None = None, n_iter: int = 32, momentum: float = 0.99,
                 init: str = "random", seed: int | None = 0, inverse_iter: int = 32) -> None:
        super().__init__()
        self.config = config or MelConfig()
        self.n_iter, self.momentum, self.init, self.seed, self.inverse_iter = n_iter, momentum, init, seed, inverse_iter
        self.mel = MelSpectrogram(self.config)

    def forward(self, logmel: torch.Tensor, length: int | None = None, *, progress: bool = False) -> torch.Tensor:
        magnitude = self.mel.inverse(logmel, n_iter=self.inverse_iter)
        return griffin_lim(magnitude, self.config, n_iter=self.n_iter, momentum=self.momentum, init=self.init,
                           seed=self.seed, length=length, window=self.mel.window, progress=progress)

    def extra_repr(self) -> str:
        return f"n_iter={self.n_iter}, momentum={self.momentum}, init={self.init!r}"
