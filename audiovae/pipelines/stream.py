"""Streaming: audio in blocks, out with a fixed latency, by overlap-save over the offline function.

Every network here is convolutional, so an output sample depends on the input within a receptive field around it.
A :class:`Stream` keeps ``context`` samples of input on each side of the block it is about to emit, runs the
offline function on ``[context | block | context]`` and keeps the block (plus ``fade`` samples crossfaded into the
next block). Its state across blocks is that input history and the pending crossfade. The latency is
``block + fade + context`` samples: the right context is lookahead that a non-causal model needs.

When the function is local (its receptive field within ``context``), deterministic, and the windows start on its
frame grid (``align``: the STFT hop times the model's time downsampling), the stream equals the offline output to
float round-off: so it is for the denoiser's mask at the model's rate. A voice-conversion model's encoder normalises
each channel over the utterance (instance norm) and the bundled vocoder refines its phase with Griffin-Lim over the
whole input; streamed, both see a window instead, and the crossfade hides the seams. How far that moves the output
is measured in README's Reliability section.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .. import audio
from ..errors import ConfigError
from ..fileio import atomic_path, write_errors

Process = Callable[[np.ndarray], np.ndarray]  # [C, n] float32 -> [C, n]


@dataclass(frozen=True)
class StreamConfig:
    """Sizes in samples. ``block``: emitted per step; ``context``: input kept on each side of it; ``fade``:
    samples crossfaded between consecutive windows (0 for an exactly local function); ``align``: window starts fall
    on multiples of it (the model's frame grid)."""

    block: int
    context: int
    fade: int = 0
    align: int = 1

    def __post_init__(self) -> None:
        if self.block < 1 or self.context < 0 or self.fade < 0 or self.align < 1:
            raise ConfigError(f"stream sizes must be positive (block {self.block}, context {self.context}, fade "
                              f"{self.fade}, align {self.align})")
        if self.block % self.align or self.context % self.align:
            raise ConfigError(f"stream: block {self.block} and context {self.context} must be multiples of "
                              f"align {self.align}")
        if self.fade > self.block:
            raise ConfigError(f"stream: fade {self.fade} must not exceed the block {self.block}")

    @classmethod
    def seconds(cls, rate: int, block: float, context: float, fade: float = 0.0, align: int = 1) -> StreamConfig:
        """From seconds at ``rate``, block and context rounded up to the frame grid ``align``."""
        def up(s: float) -> int:
            return int(np.ceil(s * rate / align)) * align

        return cls(max(up(block), align), up(context), int(round(fade * rate)), align)

    @property
    def latency(self) -> int:
        """Samples between an input sample's arrival and its output's (compute time aside)."""
        return self.block + self.fade + self.context


class Stream:
    """Push blocks of any size, get processed samples back as soon as their lookahead has arrived; ``flush`` at the
    end. ``process`` maps ``[C, n]`` to ``[C, n]`` (the offline function)."""

    def __init__(self, process: Process, config: StreamConfig) -> None:
        self.process, self.config = process, config
        self._buf: np.ndarray | None = None  # input from sample `_buf_start` on
        self._buf_start = 0
        self._received = 0
        self._pos = 0  # the next output sample
        self._tail: np.ndarray | None = None  # the previous window's samples [pos, pos + fade)

    def push(self, x: np.ndarray) -> np.ndarray:
        """Input ``[C, n]``; returns the output ready so far ``[C, m]`` (possibly ``m = 0``)."""
        x = np.asarray(x, np.float32)
        self._buf = x if self._buf is None else np.concatenate([self._buf, x], axis=1)
        self._received += x.shape[1]
        c = self.config
        out = []
        while self._received >= self._pos + c.block + c.fade + c.context:
            out.append(self._window(self._pos + c.block + c.fade + c.context, c.block))
        return self._join(out, x.shape[0])

    def flush(self) -> np.ndarray:
        """The rest of the output, to the last input sample."""
        if self._buf is None:
            return np.zeros((1, 0), np.float32)
        out = [self._window(self._received, self._received - self._pos)] if self._received > self._pos else []
        return self._join(out, self._buf.shape[0])

    def _window(self, end: int, emit: int) -> np.ndarray:
        c = self.config
        start = max(0, self._pos - c.context)
        y = self.process(self._buf[:, start - self._buf_start: end - self._buf_start])
        seg = y[:, self._pos - start: self._pos - start + emit + c.fade]
        if self._tail is not None and self._tail.shape[1]:
            n = min(self._tail.shape[1], seg.shape[1])
            ramp = (np.arange(n, dtype=np.float32) + 0.5) / n
            seg = seg.copy()
            seg[:, :n] = self._tail[:, :n] * (1 - ramp) + seg[:, :n] * ramp
        out, self._tail = seg[:, :emit], seg[:, emit:]
        self._pos += emit
        drop = max(0, self._pos - c.context) - self._buf_start  # input no later window needs
        if drop > 0:
            self._buf, self._buf_start = self._buf[:, drop:], self._buf_start + drop
        return out

    @staticmethod
    def _join(parts: list[np.ndarray], channels: int) -> np.ndarray:
        return np.concatenate(parts, axis=1) if parts else np.zeros((channels, 0), np.float32)


def stream_array(process: Process, x: np.ndarray, config: StreamConfig, chunk: int) -> np.ndarray:
    """Stream ``x`` ``[C, T]`` through ``process`` in input chunks of ``chunk`` samples (as a sound card would
    deliver them); the whole output ``[C, T]``. For tests and measurements."""
    stream = Stream(process, config)
    parts = [stream.push(x[:, i: i + chunk]) for i in range(0, x.shape[1], chunk)]
    return np.concatenate([*parts, stream.flush()], axis=1)


def stream_file(src: str | os.PathLike[str], dst: str | os.PathLike[str],
                make: Callable[[int], tuple[Process, StreamConfig]], rate: int | None = None, mono: bool = False,
                min_samples: int = 1, read_block: int = 4096) -> tuple[float, float]:
    """Stream a file into ``dst`` block by block (memory bounded by the window, not the file): at ``rate``
    (resampled on the way in, streaming; ``None``: the file's own), mono or the file's channels, through the function
    and sizes ``make(rate)`` gives; ``min_samples`` at that rate (one analysis frame). The file is opened once; the
    output appears only when complete. Returns the input's duration and the stream's latency, in seconds."""
    import soxr

    src, dst = Path(src), Path(dst)
    fmt, default_subtype = audio.output_format(dst)
    with audio.open_file(src) as f:
        in_rate, in_channels = f.samplerate, f.channels
        channels = 1 if mono else in_channels
        out_rate = rate or in_rate
        if f.frames <= 0:  # before the output exists
            raise audio.AudioError(f"{src}: contains no samples")
        if f.frames * out_rate / in_rate < min_samples:
            raise audio.AudioError(f"{src}: too short ({f.frames / in_rate:.3f} s); needs at least {min_samples} "
                                   f"samples at {out_rate} Hz (one analysis frame)")
        process, config = make(out_rate)
        subtype = f.subtype if (rate is None and sf.check_format(fmt, f.subtype)) else default_subtype
        resampler = soxr.ResampleStream(in_rate, out_rate, channels, dtype="float32", quality="HQ") \
            if out_rate != in_rate else None
        stream, meter = Stream(process, config), audio.LevelMeter()
        clip = subtype not in ("FLOAT", "DOUBLE")  # integer and lossy formats wrap or distort beyond full scale
        with atomic_path(dst) as tmp, write_errors(dst, sf.LibsndfileError), \
                sf.SoundFile(tmp, "w", out_rate, channels, subtype=subtype, format=fmt) as out:
            def write(y: np.ndarray) -> None:
                if y.shape[1]:
                    out.write(np.clip(y.T, -1.0, 1.0) if clip else y.T)

            for block in audio.read_blocks(f, src, read_block):
                meter.add(block)
                x = block.T.mean(axis=0, keepdims=True) if mono else block.T
                if resampler is not None:
                    x = resampler.resample_chunk(np.ascontiguousarray(x.T)).T
                write(stream.push(x))
            if resampler is not None:
                write(stream.push(resampler.resample_chunk(np.zeros((0, channels), np.float32), last=True).T))
            write(stream.flush())
    meter.warn(src)
    return meter.samples / in_channels / in_rate, config.latency / out_rate
