"""Synthetic faults injected into held-out normal recordings: how ``anomaly fit`` compares detectors when no
anomalous recording is at hand (a user with a few minutes of a healthy machine has none).

Each fault is a generic change that faulty machines make, added faint, on top of the clip as recorded (its own
noise included), placed relative to the clip's own strongest low-frequency line (a machine's rotation or
blade-pass tone, as far as the clip shows one):

* ``tone``: new lines at half orders of that line (two of 0.5x, 1.5x, 2.5x: looseness, a rub once every other
  turn), where a healthy machine has none;
* ``modulation``: the clip's level modulated at that line's frequency (imbalance, a bent shaft);
* ``impacts``: a few damped rings of a high resonance (a cracked part, a worn bearing);
* ``band``: noise in one octave between 250 Hz and 8 kHz (a leak, friction, cavitation);
* ``speed``: the whole clip 2-6 % faster, and shorter by as much (a machine off its operating point).

A detector is scored by the AUC of the held-out normal clips against their faulted copies, averaged over the kinds;
levels are drawn per copy (from faint to clear), so the AUC separates detectors instead of saturating. These are
families of faults, not any corpus's own recipe for them: the corpus's ``rub`` and ``leak``, for instance, are never
injected as such.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

FAULTS = ("tone", "modulation", "impacts", "band", "speed")


def strongest_line(wave: np.ndarray, sr: int, lo: float = 20.0, hi: float = 1000.0) -> float:
    """The frequency (Hz) of the strongest spectral peak between ``lo`` and ``hi``, at about 0.5 Hz resolution."""
    n = max(wave.size, 2 * sr)
    spec = np.abs(np.fft.rfft(wave * np.hanning(wave.size), n))
    f = np.fft.rfftfreq(n, 1 / sr)
    band = (f >= lo) & (f <= min(hi, sr / 2))
    return float(f[band][np.argmax(spec[band])])


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x ** 2))) + 1e-12


def _octave_noise(n: int, sr: int, lo: float, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec[(f < lo) | (f > 2 * lo)] = 0
    y = np.fft.irfft(spec, n)
    return y / _rms(y)


def inject(wave: np.ndarray, sr: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``wave`` (mono, float) with one fault of ``kind`` (:data:`FAULTS`) at a level drawn from ``rng``."""
    x = np.asarray(wave, dtype=np.float64)
    n, level = x.size, _rms(x)
    t = np.arange(n) / sr
    if kind == "tone":
        line = strongest_line(x, sr)
        orders = rng.choice([0.5, 1.5, 2.5], size=2, replace=False)
        gain = level * 10 ** (rng.uniform(-30, -16) / 20) * np.sqrt(2)
        y = x + sum(gain * np.sin(2 * np.pi * k * line * t + rng.uniform(0, 2 * np.pi)) for k in orders)
    elif kind == "modulation":
        line = strongest_line(x, sr)
        y = x * (1 + rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * line * t + rng.uniform(0, 2 * np.pi)))
    elif kind == "impacts":
        y = x.copy()
        freq, decay = rng.uniform(1000, min(6000, 0.45 * sr)), 0.003
        kernel_t = np.arange(int(8 * decay * sr)) / sr
        kernel = np.exp(-kernel_t / decay) * np.sin(2 * np.pi * freq * kernel_t)
        for at in rng.uniform(0, max(n - kernel.size, 1), int(rng.integers(3, 9))).astype(int):
            m = min(kernel.size, n - at)
            y[at: at + m] += level * rng.uniform(0.5, 3.0) * kernel[:m]
    elif kind == "band":
        lo = 250 * 2 ** rng.uniform(0, np.log2(min(8000, sr / 2) / 500))
        y = x + level * 10 ** (rng.uniform(-26, -12) / 20) * _octave_noise(n, sr, lo, rng)
    elif kind == "speed":
        factor = rng.uniform(1.02, 1.06)
        y = np.interp(np.arange(int(n / factor)) * factor, np.arange(n), x)  # shorter by the factor, no seam
    else:
        raise ConfigError(f"unknown injected fault {kind!r}; known: {', '.join(FAULTS)}")
    return y.astype(np.float32)
