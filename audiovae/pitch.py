"""Fundamental frequency: a batched YIN tracker on the model's frame grid, a voice's pitch register, and the
frequency warp that moves a spectrogram's F0 (for voice conversion across registers).

Classic voice conversion moves the source's log-F0 to the target's mean and standard deviation,
``log f0' = mu_t + (log f0 - mu_s) * sigma_t / sigma_s``. Here the signal is never vocoded from F0, so the move is
done on the spectrogram: every frame's frequency axis is scaled by that frame's ratio ``f0' / f0`` (harmonics land
on the new F0; the envelope moves too, which a timbre-stripping encoder tolerates). Pure functions, batched, on any
device.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import audio
from .data.manifest import Entry
from .errors import AudiovaeError, ConfigError
from .features import MelConfig

F0_MIN, F0_MAX = 50.0, 500.0  # Hz: the range of speaking voices
YIN_THRESHOLD = 0.15  # first dip of the normalised difference below this is the period (de Cheveigne & Kawahara)
VOICED_APERIODICITY = 0.3  # frames whose best dip stays above this are unvoiced
SILENCE_DB = 40.0  # frames this far below the loudest are unvoiced


def track_f0(wave: torch.Tensor, config: MelConfig, fmin: float = F0_MIN, fmax: float = F0_MAX
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """F0 in Hz and a voiced flag per frame of ``config``'s STFT grid (frame ``t`` centred at ``t * hop``).

    YIN (de Cheveigne & Kawahara 2002) on frames of ``n_fft`` samples, lags up to ``n_fft / 2``, with parabolic
    refinement. ``wave`` is ``[..., T]`` at ``config.sample_rate``; returns two ``[..., frames]`` tensors (F0 is 0
    where unvoiced).
    """
    sr, n, hop = config.sample_rate, config.n_fft, config.hop_length
    lag_min, lag_max = max(2, int(sr / fmax)), min(n // 2 - 1, int(math.ceil(sr / fmin)))
    if lag_min >= lag_max:
        raise ConfigError(f"track_f0: fmin={fmin} Hz to fmax={fmax} Hz is not trackable with n_fft={n} at {sr} Hz")
    lead, x = wave.shape[:-1], wave.float().reshape(-1, wave.shape[-1])
    x = F.pad(x.unsqueeze(1), (n // 2, n // 2), mode="reflect" if x.shape[-1] > n // 2 else "constant").squeeze(1)
    frames = x.unfold(-1, n, hop)  # [B, frames, n]
    frames = frames - frames.mean(dim=-1, keepdim=True)
    w = n // 2  # integration window
    spec = torch.fft.rfft(frames, n=2 * n)
    head = torch.fft.rfft(frames[..., :w], n=2 * n)
    acf = torch.fft.irfft(spec * head.conj(), n=2 * n)[..., : w + 1]  # sum_j<w x_j x_{j+lag}
    energy = F.pad(torch.cumsum(frames.square(), dim=-1), (1, 0))
    lags = torch.arange(w + 1, device=x.device)
    diff = energy[..., w: w + 1] + (energy[..., lags + w] - energy[..., lags]) - 2 * acf  # d(lag)
    diff = diff.clamp_min(0)
    cum = torch.cumsum(diff[..., 1:], dim=-1)
    cmnd = torch.ones_like(diff)
    cmnd[..., 1:] = diff[..., 1:] * lags[1:] / cum.clamp_min(1e-12)
    window = cmnd[..., lag_min: lag_max + 1]
    local_min = torch.zeros_like(window, dtype=torch.bool)
    local_min[..., 1:-1] = (window[..., 1:-1] <= window[..., :-2]) & (window[..., 1:-1] <= window[..., 2:])
    below = local_min & (window < YIN_THRESHOLD)
    first = torch.where(below.any(dim=-1), below.float().argmax(dim=-1), window.argmin(dim=-1))
    best = window.gather(-1, first.unsqueeze(-1)).squeeze(-1)
    # parabolic interpolation around the chosen lag
    i = first.clamp(1, window.shape[-1] - 2)
    a, b, c = (window.gather(-1, (i + k).unsqueeze(-1)).squeeze(-1) for k in (-1, 0, 1))
    shift = (0.5 * (a - c) / (a - 2 * b + c).where((a - 2 * b + c).abs() > 1e-12, torch.ones_like(b))).clamp(-1, 1)
    shift = torch.where(first == i, shift, torch.zeros_like(shift))
    period = (lag_min + first).float() + shift
    level = 10 * torch.log10(frames[..., :w].square().mean(dim=-1) + 1e-12)
    loud = level > level.amax(dim=-1, keepdim=True) - SILENCE_DB
    voiced = loud & (best < VOICED_APERIODICITY)
    f0 = torch.where(voiced, sr / period, torch.zeros_like(period))
    return f0.reshape(*lead, -1), voiced.reshape(*lead, -1)


@dataclass(frozen=True)
class Register:
    """A voice's pitch register: mean, standard deviation and median of natural-log F0 over voiced frames."""

    mean: float
    std: float
    median: float | None = None  # None in checkpoints written before it was recorded

    @property
    def hz(self) -> float:
        """Geometric-mean F0 in Hz."""
        return math.exp(self.mean)

    @property
    def median_hz(self) -> float:
        """Median F0 in Hz (the geometric mean where the median was not recorded)."""
        return math.exp(self.median if self.median is not None else self.mean)

    def to_list(self) -> list[float]:
        values = [self.mean, self.std] + ([self.median] if self.median is not None else [])
        return [round(v, 5) for v in values]

    @classmethod
    def from_list(cls, values: list[float]) -> Register:
        return cls(*(float(v) for v in values[:3]))


def register(f0s: list[torch.Tensor], voiced: list[torch.Tensor]) -> Register | None:
    """Register of one voice from the F0 tracks of one or more of its utterances; ``None`` if nothing is voiced."""
    logs = torch.cat([torch.log(f[v]) for f, v in zip(f0s, voiced, strict=True)])
    if logs.numel() < 5:
        return None
    return Register(float(logs.mean()), max(float(logs.std()), 1e-3), float(logs.median()))


def warp_ratios(f0: torch.Tensor, voiced: torch.Tensor, source: Register, target: Register,
                max_ratio: float = 2.0, smooth: int = 5) -> torch.Tensor:
    """Per-frame frequency ratios that move ``source``'s register onto ``target``'s: mean and spread of log-F0 on
    voiced frames, the mean shift alone on unvoiced ones; smoothed over ``smooth`` frames and limited to
    ``[1 / max_ratio, max_ratio]``. ``f0``/``voiced`` are one utterance's track ``[frames]``."""
    mean_shift = target.mean - source.mean
    log_f0 = torch.log(f0.clamp_min(1.0))
    moved = target.mean + (log_f0 - source.mean) * (target.std / source.std)
    log_ratio = torch.where(voiced, moved - log_f0, torch.full_like(log_f0, mean_shift))
    if smooth > 1 and log_ratio.numel() >= smooth:
        log_ratio = F.avg_pool1d(log_ratio[None, None], smooth, 1, smooth // 2, count_include_pad=False)[0, 0]
        log_ratio = log_ratio[: f0.shape[-1]]
    limit = math.log(max_ratio)
    return torch.exp(log_ratio.clamp(-limit, limit))


def warp_frequency(magnitude: torch.Tensor, ratio: torch.Tensor | float) -> torch.Tensor:
    """Scale the frequency axis of a magnitude spectrogram ``[..., n_freqs, frames]`` by ``ratio`` (a number or one
    per frame ``[..., frames]``): ``out(f) = in(f / ratio)``, linear interpolation between bins, zero above the top.
    A ratio of 2 moves every partial up an octave."""
    n_freqs, frames = magnitude.shape[-2:]
    r = torch.as_tensor(ratio, dtype=magnitude.dtype, device=magnitude.device)
    r = r.expand(*magnitude.shape[:-2], frames)
    pos = torch.arange(n_freqs, dtype=magnitude.dtype, device=magnitude.device)[:, None] / r.unsqueeze(-2)
    lo = pos.floor().long().clamp(0, n_freqs - 1)
    hi = (lo + 1).clamp(max=n_freqs - 1)
    frac = (pos - lo).clamp(0, 1)
    out = magnitude.gather(-2, lo) * (1 - frac) + magnitude.gather(-2, hi) * frac
    return out.masked_fill(pos > n_freqs - 1, 0.0)


def voice_register(waves: Sequence[torch.Tensor], config: MelConfig) -> Register | None:
    """Register of the voice in ``waves`` (``[T]`` each, at ``config``'s rate); ``None`` if nothing is voiced."""
    tracks = [track_f0(w.float().cpu(), config) for w in waves]
    return register([f for f, _ in tracks], [v for _, v in tracks]) if tracks else None


def speaker_registers(entries: Sequence[Entry], config: MelConfig, per_speaker: int = 16) -> dict[str, Register]:
    """Register of every speaker in ``entries``, from up to ``per_speaker`` of their files (the first in path order,
    so the result does not depend on a seed). Unreadable files are skipped; speakers with nothing voiced left out."""
    by_speaker: dict[str, list[str]] = {}
    for e in sorted(entries, key=lambda e: e.path):
        if e.speaker and len(by_speaker.setdefault(e.speaker, [])) < per_speaker:
            by_speaker[e.speaker].append(e.path)
    registers = {}
    for speaker, paths in sorted(by_speaker.items()):
        waves = []
        for path in paths:
            try:
                with warnings.catch_warnings():  # a quiet or clipped file is still fine for F0
                    warnings.simplefilter("ignore")
                    waves.append(audio.load(path, config.sample_rate, min_samples=config.n_fft)[0])
            except AudiovaeError:
                continue
        found = voice_register(waves, config)
        if found is not None:
            registers[speaker] = found
    return registers
