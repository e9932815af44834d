"""Speech denoising with a VAE: estimate the clean log-mel, turn it into a gain on the noisy STFT.

The model (a ``ConvVAE`` trained on noisy/clean pairs, ``batch["clean"]`` as its target) sees the noisy log-mel and
decodes the clean one. Their ratio is a gain per mel band and frame, ``exp(clean - noisy)`` limited to
``[floor, 1]``; it is interpolated to the bins of an STFT of the input *at its own rate* (so a 48 kHz input keeps
its bandwidth and nothing is resampled on the way out) and applied to every channel, keeping the noisy phase. So
the output is not limited by a vocoder; ``method="vocoder"`` decodes the clean log-mel with the model's vocoder
instead (Griffin-Lim), to hear what the model alone produces.

Files of any length go through :func:`denoise_file` in overlapping chunks (linear crossfades), read and written
block by block, so memory does not grow with the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .. import audio
from ..checkpoint import Checkpoint
from ..errors import ConfigError
from ..features import MelConfig, MelSpectrogram, hann_window, hz_to_mel, istft, mel_to_hz, stft
from ..fileio import atomic_path, write_errors
from ..vocoders import Vocoder
from .stream import Process, StreamConfig
from .vae_nmf import VAENMFConfig, vae_nmf
from .vocoder_choice import vocoder_for

METHODS = ("mask", "vocoder", "prior")


def mel_gain(noisy: torch.Tensor, clean: torch.Tensor, floor: float = 0.01, keep_above: float = 1.0
             ) -> torch.Tensor:
    """Gain per mel band and frame from two log-mels (nats): ``exp(clean - noisy) / keep_above`` limited to
    ``[floor, 1]``.

    ``keep_above`` < 1 leaves alone what the model only slightly doubts: a gain at or above it becomes one (so clean
    speech, where a model's estimate wavers a little under the input, passes unchanged), at the price of suppressing
    every noisy cell by ``-20 log10(keep_above)`` dB less. The default floor, -40 dB, was chosen on the synthetic
    corpus's held-out mixtures: PESQ-wb rose as the floor fell from 0.2 to 0.01 and hardly below; SI-SDR fell at 0.1
    and 0.2 and was the same from 0.02 down (recipes/denoise/README.md)."""
    return (torch.exp(clean - noisy) / keep_above).clamp(floor, 1.0)


def band_centres(cfg: MelConfig) -> np.ndarray:
    """Centre frequency (Hz) of each mel band of ``cfg``."""
    htk = cfg.mel_scale == "htk"
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.f_min, htk), hz_to_mel(cfg.f_max, htk), cfg.n_mels + 2), htk)
    return edges[1:-1]


def _lerp(values: torch.Tensor, src: np.ndarray, dst: np.ndarray, dim: int) -> torch.Tensor:
    """Linear interpolation of ``values`` along ``dim`` from positions ``src`` (increasing) to ``dst``; constant
    beyond the ends."""
    dst = np.clip(dst, src[0], src[-1])
    hi = np.clip(np.searchsorted(src, dst, side="right"), 1, len(src) - 1)
    lo = hi - 1
    w = torch.from_numpy(((dst - src[lo]) / np.maximum(src[hi] - src[lo], 1e-12)).astype(np.float32))
    shape = [1] * values.ndim
    shape[dim] = len(dst)
    w = w.to(values.device).reshape(shape)
    lo_t, hi_t = (torch.from_numpy(i).to(values.device) for i in (lo, hi))
    return values.index_select(dim, lo_t) * (1 - w) + values.index_select(dim, hi_t) * w


def apply_mel_gain(x: torch.Tensor, sample_rate: int, gain: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Apply gains ``[n_mels, frames]`` (bands and frames of ``cfg``) to every channel of ``x`` ``[C, T]`` at its own
    ``sample_rate``: interpolated between band centres over frequency (the top band's gain above it) and between
    frames over time, on an STFT with the model's window and hop in seconds; the phase is kept."""
    native = native_stft_config(cfg, sample_rate)
    window = hann_window(native)
    n = x.shape[-1]
    pad = max(0, native.n_fft - n)
    spec = stft(torch.nn.functional.pad(x, (0, pad)), native, window)  # [C, bins, frames]
    bins = np.fft.rfftfreq(native.n_fft, 1.0 / sample_rate)
    g = _lerp(gain, band_centres(cfg), bins, dim=0)  # [bins, model frames]
    model_frames = np.arange(g.shape[1]) * cfg.hop_length / cfg.sample_rate
    frames = np.arange(spec.shape[-1]) * native.hop_length / sample_rate
    g = _lerp(g, model_frames, frames, dim=1)
    return istft(spec * g, native, window, length=n + pad)[..., :n]


def native_stft_config(cfg: MelConfig, sample_rate: int) -> MelConfig:
    """An STFT at ``sample_rate`` with the same window and hop *in seconds* as the model's."""
    ratio = sample_rate / cfg.sample_rate
    n_fft = max(16, 2 * round(cfg.n_fft * ratio / 2))
    hop = max(1, round(cfg.hop_length * ratio))
    win = min(n_fft, max(2, 2 * round(cfg.win_length * ratio / 2)))
    return MelConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop, win_length=win, n_mels=cfg.n_mels,
                     f_min=0.0, f_max=min(cfg.f_max, sample_rate / 2), center=True, pad_mode="constant")


@dataclass
class Denoiser:
    """A loaded denoising model and how to apply it (callable on ``[C, T]`` waveforms at any rate)."""

    ckpt: Checkpoint
    strength: float = 1.0
    method: str = "mask"
    floor: float = 0.01
    keep_above: float = 1.0  # gains at or above it become one (see mel_gain)
    prior: VAENMFConfig | None = None
    vocoder: str | Vocoder | None = None  # method "vocoder": a vocoder, or a --vocoder spec (default: the model's)

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ConfigError(f"--strength {self.strength}: must be between 0 (input unchanged) and 1")
        if not 0.0 < self.keep_above <= 1.0:
            raise ConfigError(f"--keep-above {self.keep_above}: must be in (0, 1] (1: every gain as estimated)")
        if self.method not in METHODS:
            raise ConfigError(f"--method {self.method!r}: choose one of {', '.join(METHODS)}")
        if self.ckpt.speakers:
            raise ConfigError("this model is speaker-conditioned (a voice-conversion model), not a denoiser")
        if self.method != "prior" and self.ckpt.task != "denoise":
            raise ConfigError(f"this is a {self.ckpt.task} model ({self.ckpt.model.model_type}), not a denoiser: give "
                              "one trained on noisy/clean pairs (`audiovae train denoise_vae`), or use it as a "
                              "clean-speech prior with --method prior")
        if self.method == "prior":
            if self.ckpt.task == "denoise":
                raise ConfigError("--method prior needs a VAE of clean speech (e.g. `audiovae train speech_vae`), "
                                  "not a denoiser trained on noisy pairs")
            self.ckpt.model.requires_grad_(False)
        self.device = self.ckpt.model.mel_mean.device
        self.mel = MelSpectrogram(self.ckpt.mel).to(self.device)
        self._vocoder: torch.nn.Module | None = None

    def clean_logmel(self, mono: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Noisy and estimated clean log-mel ``[1, M, F]`` of a mono waveform at the model's rate: the model's
        decoding, or with ``method="prior"`` the noisy log-mel under the VAE-NMF Wiener gain."""
        with torch.inference_mode():
            noisy = self.mel(mono.to(self.device).reshape(1, -1))
            if self.method != "prior":
                return noisy, self.ckpt.model.reconstruct(noisy)
        speech, noise = vae_nmf(noisy.clone(), self.ckpt.model, self.prior)
        return noisy, noisy + torch.log(speech / (speech + noise)).unsqueeze(0)

    def __call__(self, wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Denoise ``wave`` ``[C, T]`` (or ``[T]``) at ``sample_rate``; same shape out."""
        squeeze = wave.ndim == 1
        x = wave.reshape(-1, wave.shape[-1]).float()
        cfg = self.ckpt.mel
        mono = audio.resample(x.mean(dim=0).numpy(), sample_rate, cfg.sample_rate)
        pad = max(0, cfg.min_samples - mono.shape[-1])
        noisy, clean = self.clean_logmel(torch.from_numpy(np.pad(mono, (0, pad))))
        with torch.inference_mode():
            y = self._render(x, sample_rate, noisy, clean, mono.shape[-1])
        out = self.strength * y + (1.0 - self.strength) * x
        return out[0] if squeeze else out

    def _render(self, x: torch.Tensor, sample_rate: int, noisy: torch.Tensor, clean: torch.Tensor,
                model_samples: int) -> torch.Tensor:
        cfg, n = self.ckpt.mel, x.shape[-1]
        if self.method == "vocoder":
            if self._vocoder is None:
                v = self.vocoder
                # long files go in crossfaded chunks: a vocoder whose phase agrees across them
                self._vocoder = (v.to(self.device) if isinstance(v, Vocoder)
                                 else vocoder_for(self.ckpt, v, prefer_trained=True))
            y = self._vocoder(clean, length=clean.shape[-1] * cfg.hop_length)[0, :model_samples].cpu().numpy()
            y = torch.from_numpy(audio.resample(y, cfg.sample_rate, sample_rate))
            return torch.nn.functional.pad(y, (0, max(0, n - y.numel())))[:n].expand_as(x)
        return apply_mel_gain(x, sample_rate, mel_gain(noisy, clean, self.floor, self.keep_above)[0].cpu(), cfg)


# Input kept on each side of a streamed block: the bundled denoiser's encoder and decoder see 109 log-mel frames
# (1.27 s) each way, the STFTs two more; measured, a stream with 1.0 s already equals the offline output to 1e-6.
STREAM_CONTEXT = 1.3


def stream_processor(denoiser: Denoiser, sample_rate: int, block: float = 0.5) -> tuple[Process, StreamConfig]:
    """What :mod:`.stream` needs to denoise audio at ``sample_rate`` block by block (``--stream``): the function and
    the window sizes. At the model's own rate the windows start on its frame grid and the stream equals the
    offline output (to float round-off); at another rate the grids cannot meet and it is close, not equal."""
    if denoiser.method != "mask":
        raise ConfigError(f"--stream: --method {denoiser.method} fits each file as a whole; streaming takes "
                          "--method mask")
    cfg = denoiser.ckpt.mel
    align = cfg.hop_length * denoiser.ckpt.model.hop_factor if sample_rate == cfg.sample_rate else 1

    def process(x: np.ndarray) -> np.ndarray:
        return denoiser(torch.from_numpy(x), sample_rate).numpy()

    model = denoiser.ckpt.model
    frames = getattr(getattr(model, "encoder", None), "floor_context", 0)  # an encoder's noise floor sees further
    refiner = getattr(model, "refiner", None)
    if refiner is not None:  # a gain refiner sees that many frames more each way (with a noise floor: a bound)
        frames += refiner.context
    context = STREAM_CONTEXT + frames * cfg.hop_length / cfg.sample_rate
    return process, StreamConfig.seconds(sample_rate, block, context, 0.0 if align > 1 else 0.01, align)


@dataclass
class FileResult:
    seconds: float
    sample_rate: int
    channels: int


def denoise_file(src: str | os.PathLike[str], dst: str | os.PathLike[str], denoiser: Denoiser,
                 chunk_seconds: float = 30.0, overlap_seconds: float = 2.0,
                 on_progress: Callable[[float, float], None] | None = None) -> FileResult:
    """Denoise an audio file of any length into ``dst`` (same rate and channels; format from ``dst``'s extension,
    the input's sample format kept when that format allows it), in overlapping chunks crossfaded linearly.

    Memory is bounded by the chunk, not the file. The output appears only when complete (temp file + rename).
    """
    src, dst = Path(src), Path(dst)
    if overlap_seconds <= 0 or chunk_seconds <= 2 * overlap_seconds:
        raise ConfigError(f"chunks of {chunk_seconds} s with {overlap_seconds} s overlap: need chunk > 2 x overlap > 0")
    fmt, default_subtype = audio.output_format(dst)
    with audio.open_file(src) as f:
        sr, channels, total = f.samplerate, f.channels, f.frames
        if total <= 0:
            raise audio.AudioError(f"{src}: contains no samples")
        subtype = f.subtype if sf.check_format(fmt, f.subtype) else default_subtype
        length, overlap = int(chunk_seconds * sr), int(overlap_seconds * sr)
        hop = length - overlap
        meter = audio.LevelMeter()
        with atomic_path(dst) as tmp, write_errors(dst, sf.LibsndfileError), \
                sf.SoundFile(tmp, "w", sr, channels, subtype=subtype, format=fmt) as out:
            pos, tail = 0, None
            while pos < total:
                f.seek(pos)
                block = audio.read_block(f, src, length)
                meter.add(block[overlap if pos else 0:])  # each sample once, not the overlaps twice
                y = denoiser(torch.from_numpy(np.ascontiguousarray(block.T)), sr).numpy()
                if tail is not None:
                    fade = np.linspace(0.0, 1.0, tail.shape[1], endpoint=False, dtype=np.float32)
                    y[:, : tail.shape[1]] = tail * (1 - fade) + y[:, : tail.shape[1]] * fade
                last = pos + block.shape[0] >= total
                keep = y if last else y[:, :hop]
                out.write(np.clip(keep.T, -1.0, 1.0) if subtype.startswith("PCM") else keep.T)
                tail = None if last else y[:, hop:]
                pos = total if last else pos + hop
                if on_progress is not None:
                    on_progress(min(pos, total) / sr, total / sr)
    meter.warn(src)
    return FileResult(total / sr, sr, channels)

