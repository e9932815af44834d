"""Audio in and out: any file libsndfile reads -> mono float32 at the model's rate; atomic writes.

Every command reads audio through :func:`load` and writes it through :func:`save`, so bad input is caught in one
place with one kind of message (``AudioError``: the file, then the problem, on one line).
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from .errors import AudiovaeError
from .fileio import atomic_path, write_errors

__all__ = ["AudioError", "AudioWarning", "AudioInfo", "load", "save", "info", "resample", "SILENCE_PEAK", "CLIP_LEVEL"]

SILENCE_PEAK = 1e-4  # -80 dBFS: below this the whole file is treated as silent
CLIP_LEVEL = 0.999  # samples at or above this magnitude count as clipped
_BLOCK = 1 << 18  # frames per block when scanning long files


class AudioError(AudiovaeError):
    """An audio file is missing, unreadable, empty, too short or holds NaN/Inf samples."""


class AudioWarning(UserWarning):
    """Input is usable but suspicious (all silent, clipped)."""


@dataclass(frozen=True)
class AudioInfo:
    """What ``audiovae info FILE`` reports; levels are in dB relative to full scale."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str
    peak_dbfs: float
    rms_dbfs: float
    clipped_samples: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def _db(x: float) -> float:
    return 20.0 * math.log10(x) if x > 0 else -math.inf


def open_file(path: str | os.PathLike[str]) -> sf.SoundFile:
    """Open an audio file for reading block by block; a one-line :class:`AudioError` for anything unreadable."""
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, expected an audio file")
    if p.stat().st_size == 0:
        raise AudioError(f"{p}: empty file (0 bytes)")
    try:
        f = sf.SoundFile(p)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        reason = str(e).split(":")[-1].strip() or "unknown format"
        raise AudioError(f"{p}: not a readable audio file ({reason})") from None
    _warn_if_truncated(f, p)
    return f


def _warn_if_truncated(f: sf.SoundFile, path: Path) -> None:
    """A WAV/AIFF whose data chunk ends before its header says (an interrupted copy or recording): libsndfile reads
    the samples that are there, and so do we, but say so. (A truncated FLAC or MP3 fails to decode instead.)"""
    found = re.search(r"^(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", f.extra_info or "", re.MULTILINE)
    if found and int(found.group(2)) < int(found.group(1)) and f.frames > 0:  # no samples at all is an error
        promised = int(found.group(1)) / max(f.channels * _sample_bytes(f.subtype), 1) / f.samplerate
        held = f.frames / f.samplerate
        warnings.warn(f"{path}: truncated (the header promises {promised:.2f} s, the file holds {held:.2f} s); using "
                      "what is there", AudioWarning, stacklevel=3)


def _sample_bytes(subtype: str) -> int:
    return {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}.get(subtype, 2)


def _read_all(f: sf.SoundFile, path: Path) -> np.ndarray:
    try:
        data = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(f"{path}: could not decode audio ({e})") from None
    return data


def info(path: str | os.PathLike[str]) -> AudioInfo:
    """Describe a file without loading it whole (block-wise scan, so a 1-hour file costs little memory)."""
    p = Path(path)
    with open_file(p) as f:
        meter = LevelMeter()
        for block in read_blocks(f, p):
            meter.add(block)
        return AudioInfo(str(p), f.samplerate, f.channels, meter.samples // max(f.channels, 1), f.format, f.subtype,
                         _db(meter.peak), _db(meter.rms), meter.clipped)


def read_block(f: sf.SoundFile, path: str | os.PathLike[str], frames: int) -> np.ndarray:
    """The next ``frames`` frames ``[n, channels]`` (fewer at the end); a decoding failure or a NaN/Inf sample is an
    :class:`AudioError` naming ``path`` (so that a writer beside it is not blamed)."""
    try:
        block = f.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(f"{path}: could not decode audio ({e})") from None
    if not np.isfinite(block).all():
        raise AudioError(f"{path}: contains NaN or Inf samples")
    return block


def read_blocks(f: sf.SoundFile, path: str | os.PathLike[str], frames: int = _BLOCK) -> Iterator[np.ndarray]:
    """:func:`read_block` to the end of the file."""
    while len(block := read_block(f, path, frames)):
        yield block


def resample(wave: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """High-quality (soxr HQ) resampling along the last axis; a no-op at equal rates."""
    if orig_rate == target_rate:
        return wave
    if wave.ndim == 1:
        return soxr.resample(wave, orig_rate, target_rate, quality="HQ").astype(np.float32, copy=False)
    # soxr takes [time, channels]
    return soxr.resample(wave.T, orig_rate, target_rate, quality="HQ").T.astype(np.float32, copy=False)


class LevelMeter:
    """Peak and full-scale count of a signal read whole or block by block; :meth:`warn` gives the one-line warnings
    for a silent or a clipped input."""

    def __init__(self) -> None:
        self.peak, self.clipped, self.samples, self.energy = 0.0, 0, 0, 0.0

    def add(self, samples: np.ndarray) -> None:
        a = np.abs(samples)
        self.peak = max(self.peak, float(a.max(initial=0.0)))
        self.clipped += int((a >= CLIP_LEVEL).sum())
        self.samples += a.size
        self.energy += float(np.square(samples, dtype=np.float64).sum())

    @property
    def rms(self) -> float:
        return math.sqrt(self.energy / self.samples) if self.samples else 0.0

    def warn(self, path: str | os.PathLike[str]) -> None:
        if self.peak < SILENCE_PEAK:
            warnings.warn(f"{path}: input is silent (peak {_db(self.peak):.1f} dBFS)", AudioWarning, stacklevel=3)
        elif self.clipped >= max(3, int(1e-4 * self.samples)):
            warnings.warn(f"{path}: input is clipped ({self.clipped} samples at full scale)", AudioWarning,
                          stacklevel=3)


def load(path: str | os.PathLike[str], sample_rate: int | None = None, *, mono: bool = True,
         min_samples: int = 1) -> tuple[torch.Tensor, int]:
    """Read an audio file as float32 in [-1, 1].

    Args:
        path: any format libsndfile reads (WAV, FLAC, OGG/Vorbis, MP3, AIFF, ...), any bit depth.
        sample_rate: resample to this rate (soxr HQ); ``None`` keeps the file's rate.
        mono: average the channels (returns ``[T]``); otherwise returns ``[C, T]``.
        min_samples: minimum length after resampling, e.g. one STFT frame (``MelConfig.n_fft``).

    Returns:
        ``(wave, rate)``.

    Raises:
        AudioError: missing, a directory, empty, not audio, undecodable, NaN/Inf samples, or shorter than
            ``min_samples``. Silent and clipped input only warn (:class:`AudioWarning`).
    """
    if sample_rate is not None and sample_rate <= 0:
        raise AudioError(f"{path}: sample_rate must be positive, got {sample_rate}")
    p = Path(path)
    with open_file(p) as f:
        rate = f.samplerate
        data = _read_all(f, p)  # [T, C]
    if data.shape[0] == 0:
        raise AudioError(f"{p}: contains no samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{p}: contains NaN or Inf samples")
    meter = LevelMeter()
    meter.add(data)
    meter.warn(p)
    wave = data.mean(axis=1) if mono else np.ascontiguousarray(data.T)
    if sample_rate is not None and sample_rate != rate:
        wave = resample(wave, rate, sample_rate)
        rate = sample_rate
    n = wave.shape[-1]
    if n < min_samples:
        raise AudioError(f"{p}: too short ({n / rate:.3f} s, {n} samples at {rate} Hz); "
                         f"needs at least {min_samples} samples (one analysis frame)")
    return torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), rate


_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".oga": "OGG", ".mp3": "MP3", ".aif": "AIFF",
            ".aiff": "AIFF", ".w64": "W64", ".au": "AU", ".caf": "CAF"}
_DEFAULT_SUBTYPE = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS", "MP3": "MPEG_LAYER_III", "AIFF": "PCM_16",
                    "W64": "PCM_16", "AU": "PCM_16", "CAF": "PCM_16"}


def output_format(path: str | os.PathLike[str]) -> tuple[str, str]:
    """libsndfile format and default sample format for an output file, from its extension."""
    out = Path(path)
    fmt = _FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise AudioError(f"{out}: unknown output format {out.suffix!r}; use one of {', '.join(sorted(_FORMATS))}")
    return fmt, _DEFAULT_SUBTYPE[fmt]


def _frames(wave: torch.Tensor | np.ndarray, where: str | Path, clip: bool) -> np.ndarray:
    """``wave`` (``[T]`` or ``[C, T]``) as soundfile's float32 ``[T]`` / ``[T, C]``, checked (non-empty, finite) and,
    for formats that cannot hold values beyond full scale, clipped to [-1, 1]."""
    if isinstance(wave, torch.Tensor):
        wave = wave.detach().to("cpu", torch.float32).numpy()
    data = np.asarray(wave, dtype=np.float32)
    if data.ndim not in (1, 2) or data.shape[-1] == 0:
        raise AudioError(f"{where}: expected a non-empty [T] or [C, T] waveform, got shape {tuple(data.shape)}")
    if not np.isfinite(data).all():
        raise AudioError(f"{where}: refusing to write NaN or Inf samples")
    if clip:
        data = np.clip(data, -1.0, 1.0)
    return data if data.ndim == 1 else data.T


def save(path: str | os.PathLike[str], wave: torch.Tensor | np.ndarray, sample_rate: int,
         subtype: str | None = None) -> Path:
    """Write ``wave`` (``[T]`` mono or ``[C, T]``) atomically: temp file in the same folder, then rename.

    The format follows the extension (wav, flac, ogg, mp3, aiff, ...); ``subtype`` defaults to 16-bit PCM
    (Vorbis/MP3 for those formats). Samples are clipped to [-1, 1] for integer subtypes.
    """
    out = Path(path)
    fmt, default = output_format(out)
    subtype = subtype or default
    if not sf.check_format(fmt, subtype):
        raise AudioError(f"{out}: subtype {subtype!r} is not valid for {fmt}")
    frames = _frames(wave, out, clip=subtype.startswith(("PCM", "MPEG", "VORBIS", "OPUS", "ALAC")))
    with atomic_path(out) as tmp, write_errors(out, sf.LibsndfileError, RuntimeError):
        sf.write(tmp, frames, sample_rate, subtype=subtype, format=fmt)
    return out


def wav_bytes(wave: torch.Tensor | np.ndarray, sample_rate: int) -> bytes:
    """``wave`` (``[T]`` or ``[C, T]``) as a 16-bit PCM WAV file in memory (what a web page plays and downloads)."""
    buf = io.BytesIO()
    sf.write(buf, _frames(wave, "WAV in memory", clip=True), sample_rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()
