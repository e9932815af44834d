"""The log-mel front end: every analysis parameter stated once (``MelConfig``), one batched module to apply it.

``MelSpectrogram`` is plain ``torch.stft`` plus librosa's mel filterbank, built once as a buffer, so it runs on any
device and matches ``librosa.feature.melspectrogram`` given the same parameters. The STFT helpers here are the ones
Griffin-Lim and every later vocoder use, so analysis and synthesis can never disagree on hop, window or padding.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn

from .errors import ConfigError
from .threads import bound_blas_threads

__all__ = ["MelConfig", "MelSpectrogram", "stft", "istft", "mel_filterbank", "mel_to_linear", "refit_to_mel",
           "used_bins", "n_frames", "hz_to_mel", "mel_to_hz"]

bound_blas_threads()  # torch's work starts here: numpy's BLAS keeps to one thread (see audiovae.threads)


@dataclass(frozen=True)
class MelConfig:
    """Every STFT and mel parameter, once. Defaults follow HiFi-GAN's 22.05 kHz convention.

    Attributes:
        sample_rate: model sample rate in Hz; input audio is resampled to it.
        n_fft: FFT size in samples.
        hop_length: frame step in samples (frame rate = ``sample_rate / hop_length``).
        win_length: Hann window length, ``<= n_fft`` (centred inside the FFT frame, as librosa does).
        n_mels: number of mel bands.
        f_min, f_max: mel filterbank range in Hz; ``f_max <= sample_rate / 2``.
        mel_scale: ``"slaney"`` (librosa default) or ``"htk"``.
        mel_norm: ``"slaney"`` (area normalisation) or ``None``.
        power: 1 for magnitude (HiFi-GAN), 2 for power.
        center: pad the signal so frame ``t`` is centred at ``t * hop_length`` (librosa/torch ``center``).
        pad_mode: padding used when ``center`` is set (``"reflect"`` or ``"constant"``).
        log_floor: magnitudes are clamped to this before the natural log.
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    mel_scale: str = "slaney"
    mel_norm: str | None = "slaney"
    power: float = 1.0
    center: bool = True
    pad_mode: str = "reflect"
    log_floor: float = 1e-5

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"MelConfig.{name}={getattr(self, name)!r}: {why}")

        for name in ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) <= 0:
                raise bad(name, "must be a positive integer")
        if self.win_length > self.n_fft:
            raise bad("win_length", f"must be <= n_fft ({self.n_fft})")
        if not 0 <= self.f_min < self.f_max:
            raise bad("f_min", f"must satisfy 0 <= f_min < f_max ({self.f_max})")
        if self.f_max > self.sample_rate / 2:
            raise bad("f_max", f"must be <= sample_rate / 2 ({self.sample_rate / 2})")
        if self.mel_scale not in ("slaney", "htk"):
            raise bad("mel_scale", "must be 'slaney' or 'htk'")
        if self.mel_norm not in ("slaney", None):
            raise bad("mel_norm", "must be 'slaney' or None")
        if self.power <= 0:
            raise bad("power", "must be > 0")
        if self.pad_mode not in ("reflect", "constant"):
            raise bad("pad_mode", "must be 'reflect' or 'constant'")
        if self.log_floor <= 0:
            raise bad("log_floor", "must be > 0")

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def min_samples(self) -> int:
        """Shortest signal that yields one full analysis frame."""
        return self.n_fft

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"MelConfig: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**d)

    def fingerprint(self) -> str:
        """Short stable hash of every field: keys feature caches so a config change rebuilds them."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def n_frames(n_samples: int, cfg: MelConfig) -> int:
    """Frames the STFT yields for ``n_samples`` samples."""
    if cfg.center:
        return 1 + n_samples // cfg.hop_length
    return 1 + (n_samples - cfg.n_fft) // cfg.hop_length


def hann_window(cfg: MelConfig, device: torch.device | str | None = None) -> torch.Tensor:
    """Periodic Hann window (librosa's ``get_window('hann', fftbins=True)``)."""
    return torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float32, device=device)


def stft(wave: torch.Tensor, cfg: MelConfig, window: torch.Tensor) -> torch.Tensor:
    """Complex STFT ``[..., T] -> [..., n_freqs, frames]`` with the config's hop, window and padding."""
    shape = wave.shape
    spec = torch.stft(wave.reshape(-1, shape[-1]), n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                      win_length=cfg.win_length, window=window, center=cfg.center, pad_mode=cfg.pad_mode,
                      return_complex=True)
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def istft(spec: torch.Tensor, cfg: MelConfig, window: torch.Tensor, length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`stft` (least-squares overlap-add) ``[..., n_freqs, frames] -> [..., T]``.

    Equal to ``torch.istft`` (to float32 round-off) but about twice as fast on CPU when ``hop_length`` divides
    ``n_fft``: the overlap-add is ``n_fft / hop_length`` slice additions instead of a generic ``fold``. This is the
    inner loop of Griffin-Lim.
    """
    shape = spec.shape
    x = spec.reshape(-1, *shape[-2:])
    hop, n_fft = cfg.hop_length, cfg.n_fft
    if n_fft % hop or not cfg.center:
        wave = torch.istft(x, n_fft=n_fft, hop_length=hop, win_length=cfg.win_length, window=window,
                           center=cfg.center, length=length)
        return wave.reshape(*shape[:-2], wave.shape[-1])
    batch, frames, k = x.shape[0], x.shape[-1], n_fft // hop
    left = (n_fft - window.shape[-1]) // 2
    win = nn.functional.pad(window, (left, n_fft - window.shape[-1] - left))
    chunks = (torch.fft.irfft(x.transpose(-1, -2), n=n_fft) * win).view(batch, frames, k, hop)
    out = chunks.new_zeros(batch, frames + k - 1, hop)
    envelope = chunks.new_zeros(frames + k - 1, hop)
    win_sq = (win * win).view(k, hop)
    for j in range(k):
        out[:, j: j + frames] += chunks[:, :, j]
        envelope[j: j + frames] += win_sq[j]
    wave = (out / envelope.clamp_min(1e-11)).reshape(batch, -1)
    n = length if length is not None else (frames - 1) * hop
    wave = wave[:, n_fft // 2: n_fft // 2 + n]
    if wave.shape[-1] < n:
        wave = nn.functional.pad(wave, (0, n - wave.shape[-1]))
    return wave.reshape(*shape[:-2], n)


def hz_to_mel(hz: np.ndarray, htk: bool = False) -> np.ndarray:
    """Hz -> mel: HTK's formula, or Slaney's (linear below 1 kHz, logarithmic above), as librosa defines them."""
    hz = np.asarray(hz, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    mel = hz / f_sp
    above = hz >= min_log_hz
    return np.where(above, min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep, mel)


def mel_to_hz(mel: np.ndarray, htk: bool = False) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filterbank(cfg: MelConfig) -> torch.Tensor:
    """Triangular mel filterbank ``[n_mels, n_freqs]``, float32.

    The same weights as ``librosa.filters.mel`` (tested equal), computed here in numpy because importing
    ``librosa.filters`` costs over a second of start-up in every command.
    """
    htk = cfg.mel_scale == "htk"
    fft_freqs = np.fft.rfftfreq(cfg.n_fft, d=1.0 / cfg.sample_rate)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(cfg.f_min, htk), hz_to_mel(cfg.f_max, htk), cfg.n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if cfg.mel_norm == "slaney":
        weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return torch.from_numpy(weights.astype(np.float32))


def mel_to_linear(mel: torch.Tensor, fb: torch.Tensor, n_iter: int = 32, pinv: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """Invert a (linear-amplitude) mel spectrogram to a non-negative STFT magnitude, batched.

    Solves ``min ||fb @ S - mel||`` subject to ``S >= 0`` by multiplicative updates (the non-negative
    least-squares update of Lee & Seung), started from the clamped pseudo-inverse. ``n_iter=0`` returns the
    clamped pseudo-inverse alone. ``mel`` is ``[..., n_mels, frames]``, ``fb`` is ``[n_mels, n_freqs]``; ``pinv``,
    ``fb``'s pseudo-inverse, when the caller keeps it (an exported graph has no ``linalg.pinv``).
    """
    fb = fb.to(mel.device, mel.dtype)
    pinv = torch.linalg.pinv(fb) if pinv is None else pinv.to(mel.device, mel.dtype)  # [n_freqs, n_mels]
    s = (pinv @ mel).clamp_min(0.0)
    if n_iter <= 0:
        return s
    s = s + 1e-6 * mel.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)  # strictly positive, so updates can move
    return refit_to_mel(s, mel, fb, n_iter)


def used_bins(fb: torch.Tensor) -> int:
    """How many STFT bins, from 0, a filterbank ``[n_mels, n_freqs]`` reaches: the bins above are weighed by no
    filter (all of them when none is)."""
    covered = torch.nonzero(fb.sum(0) > 0)
    return int(covered.max()) + 1 if covered.numel() else fb.shape[1]


def refit_to_mel(magnitude: torch.Tensor, mel: torch.Tensor | None, fb: torch.Tensor, n_iter: int = 1,
                 numer: torch.Tensor | None = None, floor: float | None = None) -> torch.Tensor:
    """Move a non-negative STFT magnitude ``[..., n_freqs, frames]`` towards one whose mel spectrogram (``fb @ S``)
    is ``mel``, by ``n_iter`` multiplicative non-negative least-squares steps started from the magnitude itself.

    Each step multiplies every bin by a gain that varies smoothly across the bins of a band, so the start's fine
    structure (harmonics between the filters' centres, a consistent spectrum's detail) survives while the bands'
    energies move to the target. :func:`mel_to_linear` runs the same steps from the pseudo-inverse; mel-constrained
    Griffin-Lim (:func:`audiovae.vocoders.griffin_lim` with ``mel``) runs one per iteration. ``numer`` is
    ``fb.T @ mel`` when the caller keeps it across calls (``mel`` may then be None). ``floor``: the magnitude's
    mel is clamped to it (the front end's ``log_floor``, as the log-mel is) before the division, so a silent bin's
    gain is 1, not 0/0; a network trained through these steps needs it, or such a bin's gradient overflows.
    """
    fb = fb.to(magnitude.device, magnitude.dtype)
    numer = fb.T @ mel if numer is None else numer
    # a bin no filter weighs has 0 / eps: with a floor, an eps whose square is still a normal float32, so that its
    # gradient is 0, not 0/0 (far below any weighed bin's denominator, which the floor keeps >= floor * weights)
    eps = torch.finfo(magnitude.dtype).tiny if floor is None else 1e-18
    s = magnitude
    for _ in range(n_iter):
        mel_s = fb @ s if floor is None else (fb @ s).clamp_min(floor)
        s = s * numer / (fb.T @ mel_s).clamp_min(eps)  # a clamp, not "+ eps": ONNX Runtime flushes it to 0
    return s


class MelSpectrogram(nn.Module):
    """Waveform ``[B, T]`` (or ``[T]``) -> natural-log mel spectrogram ``[B, n_mels, frames]``.

    Runs on the device of its input once moved there (``.to(device)``). Computation is always float32, also
    inside a bf16/fp16 autocast region, because the log of a low-precision spectrum loses the quiet bands.
    """

    def __init__(self, config: MelConfig | None = None, chunk_frames: int = 512) -> None:
        super().__init__()
        self.config = config or MelConfig()
        self.chunk_frames = chunk_frames
        # Derived from the config, so not saved in checkpoints (persistent=False).
        self.register_buffer("window", hann_window(self.config), persistent=False)
        fb = mel_filterbank(self.config)
        self.register_buffer("mel_fb", fb, persistent=False)
        # Bins above the top filter (f_max) carry no weight: skipping them saves ~25% of the work at 8 kHz/22 kHz.
        self.n_used_bins = used_bins(fb)
        self.register_buffer("mel_fb_used", fb[:, : self.n_used_bins].contiguous(), persistent=False)

    def magnitude(self, wave: torch.Tensor) -> torch.Tensor:
        """``|STFT|**power`` as ``[..., n_freqs, frames]`` (all bins; for analysis-synthesis and plots)."""
        with torch.autocast(device_type=wave.device.type, enabled=False):
            spec = stft(wave.float(), self.config, self.window)
            mag = torch.hypot(spec.real, spec.imag)
            return mag if self.config.power == 1.0 else mag.pow(self.config.power)

    def mel(self, wave: torch.Tensor) -> torch.Tensor:
        """Linear-amplitude mel spectrogram ``[..., n_mels, frames]`` (what ``librosa.feature.melspectrogram`` gives).

        On CPU the frames are processed in blocks of ``chunk_frames``: the intermediate spectra then stay in cache
        and memory stays bounded for hour-long inputs. On GPU the whole batch goes in one block.
        """
        cfg = self.config
        with torch.autocast(device_type=wave.device.type, enabled=False):
            lead, n_samples = wave.shape[:-1], wave.shape[-1]
            need = cfg.n_fft // 2 + 1 if cfg.center else cfg.n_fft
            if n_samples < need:
                raise ConfigError(f"MelSpectrogram: input of {n_samples} samples is shorter than one analysis frame "
                                  f"(needs >= {need} with n_fft={cfg.n_fft})")
            x = wave.float().reshape(-1, n_samples)
            if cfg.center:
                pad = cfg.n_fft // 2
                x = nn.functional.pad(x.unsqueeze(1), (pad, pad), mode=cfg.pad_mode).squeeze(1)
            frames = 1 + (x.shape[-1] - cfg.n_fft) // cfg.hop_length
            block = self.chunk_frames if x.device.type == "cpu" else frames
            fb_t = self.mel_fb_used.T  # [used_bins, n_mels]
            out = x.new_empty(x.shape[0], frames, cfg.n_mels)
            for f0 in range(0, frames, block):
                f1 = min(frames, f0 + block)
                seg = x[:, f0 * cfg.hop_length: (f1 - 1) * cfg.hop_length + cfg.n_fft]
                spec = torch.stft(seg, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
                                  window=self.window, center=False, return_complex=True)
                # [B, frames, bins] follows the STFT's memory order, so the magnitude pass reads contiguously.
                spec = spec.transpose(-1, -2)[..., : self.n_used_bins]
                mag = torch.hypot(spec.real, spec.imag)
                if cfg.power != 1.0:
                    mag = mag.pow(cfg.power)
                out[:, f0:f1] = mag @ fb_t
            return out.transpose(-1, -2).contiguous().reshape(*lead, cfg.n_mels, frames)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=wave.device.type, enabled=False):
            return self.mel(wave).clamp_min_(self.config.log_floor).log_()

    def from_magnitude(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Log-mel of a spectrogram from :meth:`magnitude` (e.g. after :func:`audiovae.pitch.warp_frequency`); equals
        ``forward`` of the waveform it came from."""
        with torch.autocast(device_type=magnitude.device.type, enabled=False):
            return (self.mel_fb @ magnitude.float()).clamp_min_(self.config.log_floor).log_()

    def inverse(self, logmel: torch.Tensor, n_iter: int = 32) -> torch.Tensor:
        """Log-mel ``[..., n_mels, frames]`` -> linear STFT magnitude ``[..., n_freqs, frames]`` (power 1)."""
        with torch.autocast(device_type=logmel.device.type, enabled=False):
            used = mel_to_linear(torch.exp(logmel.float()), self.mel_fb_used, n_iter=n_iter)
            mag = nn.functional.pad(used, (0, 0, 0, self.config.n_freqs - self.n_used_bins))  # nothing above f_max
            return mag if self.config.power == 1.0 else mag.pow(1.0 / self.config.power)

    def extra_repr(self) -> str:
        c = self.config
        return f"sr={c.sample_rate}, n_fft={c.n_fft}, hop={c.hop_length}, n_mels={c.n_mels}"
