"""A trainable mel -> waveform vocoder: a ConvNeXt backbone at the frame rate and an inverse-STFT head (Vocos).

Siuzdak 2023 ("Vocos: Closing the gap between time-domain and Fourier-based neural vocoders") keeps every layer at
the mel frame rate and predicts, per frame, the STFT's log magnitude and phase; one inverse STFT makes the waveform.
There is no upsampling stack, so it costs a fraction of a HiFi-GAN generator (Vocos reports 170x realtime on a CPU).
The head here predicts exactly the front end's STFT (same ``n_fft``, hop and window), so its frames line up with the
log-mel frames it is given, and :func:`audiovae.features.istft` turns them into samples.

The log-mel input is standardised per band with statistics learned from the training data (``prepare`` in
:mod:`.training`); they are buffers, saved with the weights.

With ``residual=True`` the head's magnitude is a correction of the magnitude the mel filterbank's own inverse gives
(:func:`~audiovae.features.mel_to_linear`, what Griffin-Lim starts from), not a magnitude from nothing. Measured
here after 7,000 CPU steps of the plain head: its phase was better than Griffin-Lim's (32 Griffin-Lim iterations
started from it beat 32 from random phase on DNSMOS and PESQ) but its magnitude was worse (mel L1 0.18 against
Griffin-Lim's 0.10), so the residual head starts where Griffin-Lim's magnitude is and spends its training on the
phase and on what the inverse misses.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..features import MelConfig, hann_window, istft, mel_filterbank, mel_to_linear, used_bins
from .base import Vocoder, fit_length
from .griffin_lim import griffin_lim, iterate, mel_target
from .pghi import pghi_phase
from .registry import register_vocoder

__all__ = ["ConvNeXtBlock", "NeuralVocoder"]

MAX_LOG_MAGNITUDE = 7.0  # exp(7) ~ 1100, above a full-scale sine's 256 at n_fft 1024: a bound that only stops overflow


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (time) -> LayerNorm -> pointwise MLP (GELU) -> layer scale -> residual, on ``[B, C, T]``."""

    def __init__(self, dim: int, intermediate: int, kernel: int = 7, layer_scale: float = 0.1) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, intermediate)
        self.act = nn.GELU()
        self.pw2 = nn.Linear(intermediate, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).transpose(1, 2)
        y = self.pw2(self.act(self.pw1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


@register_vocoder
class NeuralVocoder(Vocoder):
    """Vocoder: log-mel ``[B, n_mels, frames]`` -> waveform ``[B, T]`` by a ConvNeXt stack and an inverse STFT.

    Args:
        config: the front end whose log-mels it inverts (its STFT is also the head's).
        dim: channels of the backbone.
        intermediate: hidden width of each block's pointwise MLP.
        layers: ConvNeXt blocks.
        kernel: depthwise kernel (frames).
        residual: predict a correction of the mel inverse's log magnitude (see the module docstring).
        inverse_iter: NNLS iterations of that inverse (as Griffin-Lim's ``inverse_iter``).
        refine: at inference, this many fast Griffin-Lim iterations on the mel inverse's magnitude, started from
            the network's phase instead of a random one (0: the network's waveform as it is). No weights: an
            exported file sets it (``recipes/vocoder/export.py --refine``).
        phase_prior: ``"none"`` (the head predicts the phase) or ``"pghi"`` (the head predicts a correction of the
            phase that phase-gradient heap integration gives the mel inverse's magnitude; see below).
        unroll: mel-constrained fast Griffin-Lim iterations from the head's spectrum, part of the network: training
            runs through them (Deep Griffin-Lim style), so the head learns the start those iterations finish best.
        pghi_tol: PGHI's tolerance (``phase_prior="pghi"``), as :class:`~.griffin_lim.MelGriffinLim`'s.
    """

    vocoder_type = "neural"
    network = True

    def __init__(self, config: MelConfig | None = None, dim: int = 256, intermediate: int = 768, layers: int = 8,
                 kernel: int = 7, residual: bool = False, inverse_iter: int = 32, refine: int = 0,
                 phase_prior: str = "none", unroll: int = 0, pghi_tol: float = 1e-3) -> None:
        super().__init__()
        self.config = config or MelConfig()
        for name, value in (("dim", dim), ("intermediate", intermediate), ("layers", layers)):
            if value < 1:
                raise ConfigError(f"neural vocoder: {name}={value} must be >= 1")
        if kernel < 1 or kernel % 2 == 0:
            raise ConfigError(f"neural vocoder: kernel={kernel} must be odd and >= 1")
        if self.config.power != 1.0:
            raise ConfigError(f"neural vocoder: mel.power={self.config.power}; it predicts magnitude (power 1) STFTs")
        self.dim, self.intermediate, self.layers, self.kernel = dim, intermediate, layers, kernel
        if refine < 0:
            raise ConfigError(f"neural vocoder: refine={refine} must be >= 0")
        if phase_prior not in ("none", "pghi"):
            raise ConfigError(f"neural vocoder: phase_prior={phase_prior!r} must be 'none' or 'pghi'")
        if unroll < 0:
            raise ConfigError(f"neural vocoder: unroll={unroll} must be >= 0")
        if not 0.0 < pghi_tol < 1.0:
            raise ConfigError(f"neural vocoder: pghi_tol={pghi_tol} must be in (0, 1)")
        if refine and (phase_prior != "none" or unroll):
            raise ConfigError("neural vocoder: refine (Griffin-Lim from the head's phase, at inference) and "
                              "phase_prior/unroll (iterations inside the network) do not go together")
        self.residual, self.inverse_iter, self.refine = residual, inverse_iter, refine
        self.phase_prior, self.unroll, self.pghi_tol = phase_prior, unroll, pghi_tol
        n_mels, n_freqs = self.config.n_mels, self.config.n_freqs
        self.register_buffer("mel_mean", torch.zeros(n_mels))
        self.register_buffer("mel_std", torch.ones(n_mels))
        self.register_buffer("window", hann_window(self.config), persistent=False)
        self.embed = nn.Conv1d(n_mels, dim, kernel, padding=kernel // 2)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim, intermediate, kernel, 1.0 / layers) for _ in range(layers))
        self.final_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, 2 * n_freqs)  # log magnitude and phase of every STFT bin
        self.register_buffer("mel_fb", mel_filterbank(self.config), persistent=False)
        self.register_buffer("mel_pinv", torch.linalg.pinv(self.mel_fb), persistent=False)
        self.n_used_bins = used_bins(self.mel_fb)  # what the unrolled iterations re-fit to the mel
        with torch.no_grad():  # corrections start at zero: untrained, the inverse's magnitude and PGHI's phase
            if residual:
                self.head.weight[:n_freqs].zero_()
                self.head.bias[:n_freqs].zero_()
            if phase_prior == "pghi":
                self.head.weight[n_freqs:].zero_()
                self.head.bias[n_freqs:].zero_()

    @property
    def exportable(self) -> bool:
        """Whether the waveform is the network's alone (a graph can hold it): PGHI's heap integration is a sequential
        loop on the CPU, and unrolled iterations would need an STFT inside the graph."""
        return self.phase_prior == "none" and not self.unroll

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-band log-mel statistics of the training data (``[n_mels]`` each)."""
        self.mel_mean.copy_(mean)
        self.mel_std.copy_(std.clamp_min(1e-3))

    def spectrum(self, logmel: torch.Tensor) -> torch.Tensor:
        """The predicted complex STFT ``[B, n_freqs, frames]`` (float32) of log-mel ``[B, n_mels, frames]``."""
        mag, phase = self.polar(logmel)
        return torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))

    def polar(self, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The predicted STFT as magnitude and phase ``[B, n_freqs, frames]`` each (float32; real tensors, so that
        an exported graph needs no complex numbers)."""
        if logmel.dim() != 3 or logmel.shape[1] != self.config.n_mels:
            raise ConfigError(f"neural vocoder: expected log-mel [batch, {self.config.n_mels}, frames], "
                              f"got {list(logmel.shape)}")
        x = (logmel - self.mel_mean[:, None]) / self.mel_std[:, None]
        x = self.norm(self.embed(x).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        out = self.head(self.final_norm(x.transpose(1, 2))).transpose(1, 2)
        with torch.autocast(device_type=out.device.type, enabled=False):
            log_mag, phase = out.float().chunk(2, dim=1)
            if self.residual or self.phase_prior == "pghi":
                inverse = self.mel_inverse(logmel)
            if self.residual:
                log_mag = log_mag + inverse.clamp_min(self.config.log_floor).log()
            if self.phase_prior == "pghi":
                phase = phase + pghi_phase(inverse, self.config, self.pghi_tol)
            return torch.exp(log_mag.clamp(max=MAX_LOG_MAGNITUDE)), phase

    def mel_inverse(self, logmel: torch.Tensor) -> torch.Tensor:
        """The linear magnitude ``[B, n_freqs, frames]`` the filterbank's NNLS inverse gives (Griffin-Lim's); no
        gradient flows through it."""
        with torch.autocast(device_type=logmel.device.type, enabled=False):
            return mel_to_linear(torch.exp(logmel.detach().float()), self.mel_fb, self.inverse_iter, self.mel_pinv)

    def generate(self, logmel: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Differentiable waveform ``[B, T]`` (the training path); ``length`` defaults to ``(frames - 1) * hop``."""
        mag, phase = self.polar(logmel)
        with torch.autocast(device_type=mag.device.type, enabled=False):
            angles = torch.complex(torch.cos(phase), torch.sin(phase))
            if self.unroll:  # mel-constrained Griffin-Lim, differentiable: trained through
                target = mel_target(torch.exp(logmel.detach().float()), self.mel_fb, self.n_used_bins)
                mag, angles = iterate(mag, angles, self.config, self.window, self.unroll, mel=target,
                                      differentiable=True)
            spec = mag * angles
            return istft(spec, self.config, self.window, length)

    def forward(self, logmel: torch.Tensor, length: int | None = None, *, progress: bool = False) -> torch.Tensor:
        natural = (logmel.shape[-1] - 1) * self.config.hop_length  # the inverse STFT reaches one hop further
        n = natural if length is None else min(length, natural + self.config.hop_length)
        if not self.refine:
            return fit_length(self.generate(logmel.float(), n), length)
        phase = self.spectrum(logmel.float())
        wave = griffin_lim(self.mel_inverse(logmel), self.config, n_iter=self.refine, init=phase, length=n,
                           window=self.window, progress=progress)
        return fit_length(wave, length)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, intermediate={self.intermediate}, layers={self.layers}, kernel={self.kernel}, "
                f"residual={self.residual}, refine={self.refine}, phase_prior={self.phase_prior!r}, "
                f"unroll={self.unroll}")
