"""Noise synthesis and mixing at a given SNR: pure numpy functions shared by the noisy-corpus builder and the
on-the-fly mixing dataset, so a mixture made offline and one made during training are the same thing."""

from __future__ import annotations

import numpy as np

NOISE_COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectral density ~ 1 / f**exponent


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power spectral density ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    spec *= f ** (-exponent / 2.0)
    spec[0] = 0.0
    y = np.fft.irfft(spec, n)
    return (y / max(rms(y), 1e-12)).astype(np.float32)


def mains_hum(n: int, sample_rate: int, rng: np.random.Generator, mains: float | None = None) -> np.ndarray:
    """Mains hum: 50 or 60 Hz with decaying odd/even harmonics, slow amplitude wobble and a little hiss; unit RMS."""
    f0 = mains or float(rng.choice([50.0, 60.0]))
    t = np.arange(n) / sample_rate
    y = np.zeros(n)
    for k in range(1, 12):
        if f0 * k >= sample_rate / 2:
            break
        y += (0.7 ** (k - 1)) * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi))
    y *= 1.0 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)
    y += 0.02 * rng.standard_normal(n)
    return (y / max(rms(y), 1e-12)).astype(np.float32)


def factory_noise(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Factory floor: an engine (harmonics of 20-40 Hz, amplitude-modulated), periodic impacts and brown rumble."""
    t = np.arange(n) / sr
    f0 = rng.uniform(20.0, 40.0)
    engine = sum((0.8 ** k) * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) for k in range(1, 30)
                 if f0 * k < sr / 2)
    engine *= 1.0 + 0.3 * np.sin(2 * np.pi * rng.uniform(1.0, 4.0) * t)
    impacts = np.zeros(n)
    period = int(rng.uniform(0.25, 0.8) * sr)
    decay = np.exp(-np.arange(int(0.05 * sr)) / (0.008 * sr))
    for s in range(int(rng.integers(0, period)), n, period):
        m = min(decay.size, n - s)
        impacts[s: s + m] += 4.0 * rng.standard_normal(m) * decay[:m]
    y = engine / max(rms(engine), 1e-12) + impacts + 0.5 * coloured_noise(n, 2.0, rng)
    return (y / max(rms(y), 1e-12)).astype(np.float32)


def engine_noise(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """An engine or rotating machine: harmonics of a rotation centred at 15-160 Hz (log-uniform) that wanders within
    -26...+35 % of it over the clip, shaped by a random spectral slope and 1-3 resonances, over broadband noise of
    random colour and level (air, tyres, exhaust); in 30 % of clips a whine (a blade-pass line at 8-40x the
    rotation), in half of them firing pulses (:func:`firing_pulses` at 3-40 per second, following the same drift: an
    engine at low revs, a locomotive's chuffs, a press). Unit RMS.

    A family rather than one machine: a denoiser that must meet engines, fans, vehicles and appliances it never heard
    learns harmonic noise whose pitch moves and broadband pulses that repeat, which no stationary hum or random rain
    teaches. The harmonic part is read from one period's wavetable along the rotation's phase, so its cost does not
    grow with the number of harmonics."""
    f0 = float(np.exp(rng.uniform(np.log(15.0), np.log(160.0))))
    knots = max(2, int(n / sr * rng.uniform(0.5, 2.0)) + 2)  # a new rotation speed every 0.5-2 s, smoothly joined
    drift = np.cumsum(rng.normal(0.0, 0.12, knots))
    drift = np.exp(np.interp(np.arange(n), np.linspace(0, n - 1, knots), np.clip(drift - drift.mean(), -0.3, 0.3)))
    freq = f0 * drift
    phase = np.cumsum(freq) / sr  # in periods
    table_size = 4096
    k = np.arange(1, max(2, int(0.45 * sr / freq.max())) + 1)
    hz = k * f0
    amp = k ** -rng.uniform(0.3, 1.5)
    for centre in np.exp(rng.uniform(np.log(80.0), np.log(4000.0), int(rng.integers(1, 4)))):
        amp *= 1.0 + rng.uniform(1.0, 8.0) * np.exp(-0.5 * (np.log(hz / centre) / 0.25) ** 2)
    amp[hz > 0.45 * sr] = 0.0
    spectrum = np.zeros(table_size // 2 + 1, complex)
    top = min(k.size, spectrum.size - 1)
    spectrum[1: top + 1] = amp[:top] * np.exp(2j * np.pi * rng.random(top))
    table = np.fft.irfft(spectrum, table_size)
    harmonic = np.interp((phase % 1.0) * table_size, np.arange(table_size + 1), np.append(table, table[0]))
    harmonic *= 1.0 + rng.uniform(0.0, 0.4) * np.sin(2 * np.pi * phase * rng.choice([0.5, 1.0, 2.0]))
    y = harmonic / max(rms(harmonic), 1e-12)
    if rng.random() < 0.3:
        blades = int(rng.integers(8, 41))
        whine = np.sin(2 * np.pi * phase * blades)
        y += 10.0 ** (rng.uniform(-20.0, -6.0) / 20.0) * np.sqrt(2.0) * whine * (freq.max() * blades < 0.45 * sr)
    if rng.random() < 0.5:
        pulses = firing_pulses(n, sr, float(np.exp(rng.uniform(np.log(3.0), np.log(40.0)))) * drift, rng)
        y += 10.0 ** (rng.uniform(-10.0, 15.0) / 20.0) * pulses
    loudness = drift ** rng.uniform(0.0, 2.0)  # louder as it revs
    y += 10.0 ** (rng.uniform(-15.0, 5.0) / 20.0) * coloured_noise(n, rng.uniform(0.5, 2.5), rng)
    y *= loudness
    return (y / max(rms(y), 1e-12)).astype(np.float32)


def beat_train(n: int, sr: int, rate: np.ndarray, rng: np.random.Generator, jitter: float = 0.05,
               level_db: float = 3.0) -> np.ndarray:
    """Impulses at ``rate`` per second (per sample, so it may drift) from a random phase, each at its own level
    (±``level_db``) and a little early or late (±``jitter`` of a period): the beats of pulsed noise. ``n`` samples;
    none when ``n`` is shorter than the first beat's draw within one period."""
    beats = np.flatnonzero(np.diff(np.floor(np.cumsum(rate) / sr + rng.random())) > 0)
    shift = (rng.uniform(-jitter, jitter, beats.size) * sr / rate[beats]).astype(np.int64)
    train = np.zeros(n)
    np.add.at(train, np.clip(beats + shift, 0, n - 1), 10.0 ** (rng.uniform(-level_db, level_db, beats.size) / 20.0))
    return train


def firing_pulses(n: int, sr: int, rate: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bursts of coloured noise (3-40 ms decay) on a :func:`beat_train` at ``rate`` per second (±3 dB, ±5 % of a
    period). Every burst is the same waveform (one engine's firing, not a fresh noise each time). Unit RMS; silence
    when no burst falls inside ``n`` samples."""
    from scipy.signal import fftconvolve  # here, not at import: the mixing dataset imports this module at start-up
    train = beat_train(n, sr, rate, rng)
    length = int(0.2 * sr)
    decay = np.exp(-np.arange(length) / (rng.uniform(0.003, 0.04) * sr))
    burst = coloured_noise(length, rng.uniform(0.0, 2.0), rng) * decay
    y = fftconvolve(train, burst)[:n]
    return y / max(rms(y), 1e-12)


def fit_length(noise: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Loop or crop ``noise`` to ``n`` samples from a random offset."""
    if noise.size == 0:
        raise ValueError("fit_length: empty noise")
    start = int(rng.integers(0, noise.size))
    return _looped(noise, n)[start: start + n]


def _looped(noise: np.ndarray, n: int) -> np.ndarray:
    """``noise`` repeated so that a crop of ``n`` samples fits from any start within its first loop."""
    return np.tile(noise, -(-n // noise.size) + 1)


def audible_crop(noise: np.ndarray, n: int, rng: np.random.Generator, below_db: float = -30.0) -> np.ndarray:
    """A crop of ``n`` samples (:func:`fit_length`) that is not a silent stretch of a recording: its RMS is within
    ``below_db`` of the whole recording's. A silent crop scaled to an SNR adds no noise at all, so the "mixture" would
    be the clean speech (one test mixture of the real corpus was, before this check). The first draw is
    :func:`fit_length`'s; only when it is silent is the start drawn among the audible ones."""
    crop = fit_length(noise, n, rng)
    least = rms(noise) * 10.0 ** (below_db / 20.0)
    if rms(crop) > least:
        return crop
    tiled = _looped(noise, n)
    energy = np.concatenate([[0.0], np.cumsum(np.square(tiled, dtype=np.float64))])
    starts = np.arange(0, noise.size, max(1, min(n, noise.size) // 8))
    audible = starts[(energy[starts + n] - energy[starts]) / n > least ** 2]
    if not audible.size:
        raise ValueError(f"no audible stretch of {n} samples (the recording is silence)")
    start = int(rng.choice(audible))
    return tiled[start: start + n]


def vary_noise(noise: np.ndarray, sample_rate: int, rng: np.random.Generator,
               speed: tuple[float, float] = (0.5, 2.0), tilt_db: float = 4.0) -> np.ndarray:
    """Another noise of the same kind from a recording: played at a random speed (log-uniform in ``speed``: its
    spectrum and its rhythm scaled together, as a larger or a faster machine, engine or stream would sound) under a
    random spectral tilt (uniform within ``±tilt_db`` per octave about 1 kHz; the level is set by the SNR later).
    Domain randomisation for a denoiser that must meet noise types it never heard. The speed change is a linear
    interpolation, not a band-limited resampling: sped up, the top octave aliases, which noise tolerates."""
    factor = float(np.exp(rng.uniform(np.log(speed[0]), np.log(speed[1]))))
    n = max(2, int(round(noise.size / factor)))
    played = np.interp(np.arange(n) * (noise.size - 1) / max(n - 1, 1), np.arange(noise.size), noise)
    spectrum = np.fft.rfft(played)
    octaves = np.log2(np.maximum(np.fft.rfftfreq(n, 1.0 / sample_rate), 50.0) / 1000.0)
    spectrum *= 10.0 ** (rng.uniform(-tilt_db, tilt_db) * octaves / 20.0)
    return np.fft.irfft(spectrum, n).astype(np.float32)


def pulse_gate(noise: np.ndarray, sample_rate: int, rng: np.random.Generator, rate: tuple[float, float] = (2.0, 15.0),
               decay_ms: tuple[float, float] = (10.0, 80.0), floor_db: tuple[float, float] = (-40.0, -15.0)
               ) -> np.ndarray:
    """``noise`` heard in pulses: ``noise`` times a gate in [floor, 1] that opens on a :func:`beat_train` at a random
    rate (log-uniform in ``rate`` per second, each beat ±10 % of a period early or late, each burst ±4 dB) with a 1-5
    ms attack and an exponential decay (``decay_ms``), and falls towards a random floor (``floor_db``) between bursts
    (not all the way when fast bursts overlap). So every burst is a fresh stretch of the recording (not one waveform
    repeated, as in :func:`firing_pulses`): a locomotive's chuffs, a jackhammer, a pump's strokes or footsteps in the
    textures of rain, water or wind. Domain randomisation for transient noise, which the recordings hold little of
    and which a denoiser otherwise leaves between words. The level is set on the RMS by the SNR later, so the bursts
    stand above it. A clip shorter than one period may hold no burst (the floor throughout)."""
    from scipy.signal import fftconvolve  # here, not at import: the mixing dataset imports this module at start-up
    n = noise.size
    per_second = float(np.exp(rng.uniform(np.log(rate[0]), np.log(rate[1]))))
    train = beat_train(n, sample_rate, np.full(n, per_second), rng, jitter=0.1, level_db=4.0)
    attack = np.linspace(0.0, 1.0, max(2, int(rng.uniform(0.001, 0.005) * sample_rate)), endpoint=False)
    tau = rng.uniform(*decay_ms) * 1e-3 * sample_rate
    tail = np.exp(-np.arange(int(6 * tau) + 1) / tau)  # to -52 dB
    envelope = fftconvolve(train, np.concatenate([attack, tail]))[:n]
    envelope /= max(float(envelope.max(initial=0.0)), 1e-12)
    floor = 10.0 ** (rng.uniform(*floor_db) / 20.0)
    return (noise * (floor + (1.0 - floor) * envelope)).astype(np.float32)


def noise_gain(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> float:
    """Factor for ``noise`` so that ``20 log10(rms(speech) / rms(gain * noise)) == snr_db``."""
    return rms(speech) / max(rms(noise), 1e-12) / (10.0 ** (snr_db / 20.0))


def peak_scale(x: np.ndarray, peak: float = 0.99) -> float:
    """Factor that brings ``x`` under ``peak`` (1 when it already is)."""
    top = float(np.max(np.abs(x), initial=0.0))
    return peak / top if top > peak else 1.0


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float,
               peak: float = 0.99) -> tuple[np.ndarray, np.ndarray]:
    """Add ``noise`` to ``clean`` at ``snr_db``; returns ``(mixture, clean)``.

    Both are scaled by the same factor if the mixture would clip, so the pair stays consistent (the target is always
    exactly the speech inside the mixture).
    """
    if clean.shape != noise.shape:
        raise ValueError(f"mix_at_snr: shapes differ {clean.shape} vs {noise.shape}")
    mixture = clean + noise_gain(clean, noise, snr_db) * noise
    scale = peak_scale(mixture, peak)
    return (mixture * scale).astype(np.float32), (clean * scale).astype(np.float32)
