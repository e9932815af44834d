"""Machine lines: what a vibration analyst reads in a rotating machine's spectrum, beside an anomaly detector's
frame model.

A machine's sound holds lines at its rotation frequency and the orders of it (shaft harmonics, blade-pass,
vane-pass, slot whine). Faults change them: looseness and rubs add lines at half orders and low harmonics of the
rotation, a machine off its operating point moves every line, so its lines smear or vanish from a clip's long-term
spectrum. A log-mel frame model of a few clips cannot see this: its bands are 15-25 Hz wide below 1 kHz, the lines
of a factory's engines (another frequency in every clip, often louder) share them, and one model must hear every
unit's speed. A fine spectrum can, if it is read **relative to the machine's own lines** and compared only with the
recordings of the same machine:

* the **line spectrum** of a clip: its power on a 0.125-Hz grid from 5 Hz to 1 kHz, in dB above a running median
  over 10 Hz (the local floor), so a line reads the same at any level of broadband noise;
* its **neighbours**: the few normal clips whose line spectra correlate best with it (the same unit, usually);
* the **rotation** of the clip: its lowest line that at least two neighbours share (an engine's line is in one clip
  only, so it is not shared);
* **new lines**: the clip's lines at half and whole orders of that rotation (0.5x...6x) above the neighbours' there
  (their median: one neighbour of another unit or noise level, without the clip's lines, does not make them all
  new), summed (dB);
* **lost lines**: the lines every neighbour shares (50 Hz-1 kHz) that the clip has lost, by how much (dB, mean);
* **envelope lines**: what an analyst reads in a bearing or a rubbing part, the *envelope spectrum* of the high
  bands (1 kHz wide, every 500 Hz from 1 to 8 kHz): how each band's power pulses, 5-500 Hz at 1 Hz. Impacts that
  repeat (a worn race, a rub once per turn) and a modulated level (imbalance) are lines there, in whatever band they
  ring, while a factory's loud impacts are first clipped (a band's power at 10 times its median), so they cannot
  fill the spectrum. A clip's envelope lines above its neighbours' (their median, as for new lines) are summed per
  band;
* **bursts**: a click, a crack, a rub's scrape is a moment when one band (of 16 from 1 to 8 kHz) is loud and the
  others are not: per 32-ms frame, each band's level above its own median over the clip, less the frame's median
  of that over the bands (a factory's bang lifts every band, so it cancels), and per band the clip's highest.

:class:`MachineLines` keeps these of the normal clips and turns each into an exceedance over what the normal clips
score against each other (leave one out): above their 75th percentile, in their spread, and for the per-band
measures the same again of the most exceeded band. Each part is 0 for 3 in 4 normal clips, so adding them to a
detector's clip score changes little until something does. Measured on the synthetic machine corpus with 13 clips per
machine type (recipes/anomaly/README.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import torch
from torch import nn

from .errors import ConfigError

GRID_HZ = 0.125  # the line spectrum's resolution: an 8-s window (shorter clips are zero-padded)
REFERENCES = ("median", "weakest")  # how the nearest neighbours' lines become one reference
CALIBRATION = ("new_q75", "new_std", "lost_q75", "lost_std")
BAND_PARTS = ("envelope", "bursts")  # the per-band parts: each calibrated per band and on its most exceeded band
# a config key a detector file written before it lacks, and what such a file was fitted with: no envelope lines or
# bursts, new and envelope lines read against the weakest neighbour
BEFORE = {"envelope": False, "bursts": False, "reference": "weakest"}
ENV_NOISE_DB = 5.57  # the spread (dB) of one window's periodogram: averaging K windows divides it by about sqrt(K)
DEFAULT_WINDOWS = 15  # the windows of an 8-s clip's envelope spectrum: what fit assumes when not told
ENV_RATE = 2000  # Hz: a band's envelope is read at this rate (a 1-kHz band shifted to baseband holds it exactly)
ENV_CHUNK_S = 60.0  # longer audio is read in parts of at most this (s), their windows averaged together


@dataclass(frozen=True)
class LinesConfig:
    """How line spectra are read and compared (the defaults are the measured ones)."""

    f_lo: float = 5.0  # half the lowest rotation looked for, so its 0.5x order is on the grid
    f_hi: float = 1000.0
    floor_hz: float = 10.0  # width of the running median that is a line's floor
    peak_db: float = 12.0  # a line: a local maximum this far above its floor
    tolerance: float = 0.006  # two lines are one within 0.6 % (a machine's speed wanders by about that much), or
    # within one grid bin, whichever is wider
    neighbours: int = 3
    reference: str = "median"  # new and envelope lines are read against the neighbours' median (of 2, their mean;
    # "weakest": their minimum, as detectors fitted before 2026-12-07 did; a file without this key loads so)
    orders: tuple[float, ...] = tuple(0.5 * k for k in range(1, 13))  # 0.5x ... 6x the rotation
    min_rotation: float = 12.0
    new_margin_db: float = 3.0
    lost_margin_db: float = 6.0
    lost_from: float = 50.0  # lost lines are looked for from here up to f_hi
    envelope: bool = True  # read envelope lines too (detectors fitted before them have none)
    env_lo: float = 1000.0  # the envelope bands: env_width wide, every env_hop from env_lo to env_hi
    env_hi: float = 8000.0
    env_width: float = 1000.0
    env_hop: float = 500.0
    env_segment: float = 1.0  # s: the envelope spectrum averages Hann windows of this (resolution 1/env_segment Hz)
    env_clip: float = 10.0  # a band's power is clipped at this multiple of its median: loud impacts count as few
    env_f_lo: float = 5.0  # the envelope spectrum is read from here to env_f_hi
    env_f_hi: float = 500.0
    env_floor_hz: float = 15.0  # width of its running-median floor
    env_spread_hz: float = 2.0  # a neighbour's line counts within this much, or within tolerance where wider
    env_margin_db: float = 3.0
    env_top: int = 20  # per band, the sum of the clip's this many strongest bins of new envelope lines
    bursts: bool = True  # read bursts too
    burst_lo: float = 1000.0  # the burst bands: burst_bands of them, equal on a log scale, burst_lo-burst_hi
    burst_hi: float = 8000.0
    burst_bands: int = 16
    burst_frame_s: float = 0.032  # frames of this, half overlapping

    def __post_init__(self) -> None:
        if not 0 < self.f_lo < self.f_hi:
            raise ConfigError(f"LinesConfig: f_lo {self.f_lo} and f_hi {self.f_hi} must satisfy 0 < f_lo < f_hi")
        if self.reference not in REFERENCES:
            raise ConfigError(f"LinesConfig: reference {self.reference!r} must be one of {', '.join(REFERENCES)}")
        if self.neighbours < 1 or not self.orders:
            raise ConfigError(f"LinesConfig: neighbours ({self.neighbours}) must be >= 1 and orders not empty")
        if self.min_rotation * min(self.orders) < self.f_lo:
            raise ConfigError(f"LinesConfig: the lowest order of the lowest rotation ({self.min_rotation} Hz x "
                              f"{min(self.orders)}) lies below f_lo ({self.f_lo} Hz)")
        if self.envelope and not (0 < self.env_width <= ENV_RATE / 2 and self.env_hop > 0
                                  and self.env_lo + self.env_width <= self.env_hi
                                  and 0 < self.env_f_lo < self.env_f_hi <= ENV_RATE / 2 and self.env_top >= 1
                                  and self.env_segment * self.env_f_lo >= 1):
            raise ConfigError("LinesConfig: the envelope bands need 0 < env_width <= 1000 Hz, env_lo + env_width "
                              "<= env_hi, env_hop > 0, 1/env_segment <= env_f_lo < env_f_hi <= 1000 Hz and "
                              "env_top >= 1")
        if self.bursts and not (0 < self.burst_lo < self.burst_hi and self.burst_bands >= 2
                                and self.burst_frame_s > 0):
            raise ConfigError("LinesConfig: the burst bands need 0 < burst_lo < burst_hi, burst_bands >= 2 and "
                              "burst_frame_s > 0")

    def for_rate(self, sample_rate: int) -> LinesConfig:
        """This config with envelope and burst bands only as far as ``sample_rate`` audio reaches (none below 4 kHz
        audio)."""
        env, burst = min(self.env_hi, sample_rate / 2), min(self.burst_hi, sample_rate / 2)
        return replace(self, env_hi=env, envelope=self.envelope and env >= self.env_lo + self.env_width,
                       burst_hi=burst, bursts=self.bursts and burst >= 2 * self.burst_lo)

    @property
    def bands(self) -> list[tuple[float, float]]:
        """The envelope bands (Hz), none when ``envelope`` is off."""
        if not self.envelope:
            return []
        count = int(np.floor((self.env_hi - self.env_lo - self.env_width) / self.env_hop + 1e-9)) + 1
        return [(self.env_lo + k * self.env_hop, self.env_lo + k * self.env_hop + self.env_width)
                for k in range(count)]

    @property
    def env_bins(self) -> int:
        return int(round((self.env_f_hi - self.env_f_lo) * self.env_segment))

    @property
    def bins(self) -> int:
        return int(round((self.f_hi - self.f_lo) / GRID_HZ))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["orders"] = list(self.orders)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LinesConfig:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "orders" in kw:
            kw["orders"] = tuple(float(o) for o in kw["orders"])
        return cls(**kw)


def line_spectrum(wave: np.ndarray, sample_rate: int, config: LinesConfig = LinesConfig()) -> np.ndarray:
    """``[bins]`` float32: the clip's power in dB above its local floor (never below 0), on a ``GRID_HZ`` grid from
    ``f_lo`` to ``f_hi``. Clips longer than 8 s average the power of 8-s Hann windows (half overlapping, the last
    one ending with the clip)."""
    from scipy.ndimage import median_filter

    x = _finite(wave)
    if sample_rate / 2 < config.f_hi:
        raise ConfigError(f"machine lines: {sample_rate} Hz audio does not reach {config.f_hi:g} Hz")
    nfft = int(round(sample_rate / GRID_HZ))
    size = min(x.size, nfft)
    window = np.hanning(size)
    starts = _window_starts(x.size, size)
    p = np.zeros(nfft // 2 + 1)
    for s in starts:  # a running sum: an hour-long file never holds all its windows' spectra at once
        p += np.abs(np.fft.rfft(x[s: s + size] * window, nfft)) ** 2
    width = int(round(config.floor_hz / GRID_HZ)) | 1
    lo = int(round(config.f_lo / GRID_HZ))
    a, b = max(lo - width // 2, 0), min(lo + config.bins + width // 2, p.size)  # the floor sees past both ends
    db = 10 * np.log10(p[a:b] / len(starts) + 1e-20)
    floor = median_filter(db, size=width, mode="reflect")
    return np.maximum(db - floor, 0)[lo - a: lo - a + config.bins].astype(np.float32)


def envelope_spectrum(wave: np.ndarray, sample_rate: int, config: LinesConfig = LinesConfig()) -> np.ndarray:
    """``[bands, env_bins]`` float32: each band's envelope spectrum (how its power pulses) in dB above its local
    floor (never below 0), ``env_f_lo``-``env_f_hi`` on a ``1/env_segment``-Hz grid. A band's power is normalised by
    its median and clipped at ``env_clip`` times that, so loud impacts now and then weigh as little as a steady
    pulse train's share of them; the spectrum averages Hann windows of ``env_segment`` (half overlapping)."""
    from scipy.ndimage import median_filter

    if not config.bands:
        return np.zeros((0, config.env_bins), dtype=np.float32)
    if sample_rate / 2 < config.env_hi:
        raise ConfigError(f"machine lines: the envelope bands reach {config.env_hi:g} Hz, above what {sample_rate} Hz "
                          f"audio holds ({sample_rate / 2:g} Hz; LinesConfig.for_rate limits them)")
    x = _finite(wave)
    if x.size == 0:
        return np.zeros((len(config.bands), config.env_bins), dtype=np.float32)
    nfft = int(round(config.env_segment * ENV_RATE))
    width = int(round(config.env_floor_hz * config.env_segment)) | 1
    lo = int(round(config.env_f_lo * config.env_segment))
    power = np.zeros((len(config.bands), nfft // 2 + 1))
    windows = 0
    for a, b in _chunks(x.size, sample_rate):  # an hour-long file never holds its whole spectrum at once
        p, n = _envelope_power(x[a:b], sample_rate, config, nfft)
        power += p
        windows += n
    db = 10 * np.log10(power / max(windows, 1) + 1e-12)
    floor = median_filter(db, size=(1, width), mode="reflect")
    return np.maximum(db - floor, 0)[:, lo: lo + config.env_bins].astype(np.float32)


def _envelope_power(x: np.ndarray, sample_rate: int, config: LinesConfig, nfft: int) -> tuple[np.ndarray, int]:
    """Per band, the summed power spectra of ``x``'s clipped envelope over its Hann windows, and how many."""
    spec = np.fft.rfft(x)
    step = sample_rate / max(x.size, 1)  # Hz per bin of spec
    m = _envelope_samples(x.size, sample_rate)
    size = min(nfft, m)
    window = np.hanning(size)
    starts = _window_starts(m, size)
    out = np.zeros((len(config.bands), nfft // 2 + 1))
    for k, (f_lo, f_hi) in enumerate(config.bands):
        a, b = int(np.ceil(f_lo / step)), min(int(np.floor(f_hi / step)) + 1, spec.size)
        power = np.abs(np.fft.ifft(spec[a:b], m)) ** 2  # the band shifted to baseband: its envelope, exactly
        power = np.minimum(power / max(float(np.median(power)), 1e-30), config.env_clip)
        power -= power.mean()
        for s in starts:
            out[k] += np.abs(np.fft.rfft(power[s: s + size] * window, nfft)) ** 2
    return out, len(starts)


def _finite(wave: np.ndarray) -> np.ndarray:
    x = np.asarray(wave, dtype=np.float64).reshape(-1)
    if not np.isfinite(x).all():
        raise ConfigError("machine lines: the audio holds NaN or infinite samples")
    return x


def _window_starts(m: int, size: int) -> list[int]:
    """Half-overlapping windows of ``size`` over ``m`` samples, the last one ending with them."""
    return sorted(set(range(0, m - size + 1, max(size // 2, 1))) | {m - size})


def _chunks(samples: int, sample_rate: int) -> list[tuple[int, int]]:
    """(start, stop) of the equal parts of at most ``ENV_CHUNK_S`` that :func:`envelope_spectrum` reads."""
    parts = max(int(np.ceil(samples / (ENV_CHUNK_S * sample_rate))), 1)
    sizes = [samples // parts + (1 if k < samples % parts else 0) for k in range(parts)]
    edges = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
    return list(zip(edges[:-1], edges[1:], strict=True))


def _envelope_samples(samples: int, sample_rate: int) -> int:
    """How many envelope samples (at ``ENV_RATE``) a part of ``samples`` gives."""
    return max(int(round(samples * ENV_RATE / sample_rate)), 2)


def envelope_windows(samples: int, sample_rate: int, config: LinesConfig = LinesConfig()) -> int:
    """How many windows :func:`envelope_spectrum` averages for a clip of ``samples``: fewer, a noisier spectrum."""
    nfft = int(round(config.env_segment * ENV_RATE))
    sizes = [_envelope_samples(b - a, sample_rate) for a, b in _chunks(samples, sample_rate)]
    return sum(len(_window_starts(m, min(nfft, m))) for m in sizes)


def burst_profile(wave: np.ndarray, sample_rate: int, config: LinesConfig = LinesConfig()) -> np.ndarray:
    """``[burst_bands]`` float32: per band, the clip's loudest moment that the band has alone (dB). Per frame, each
    band's level above its own median over the clip, less the median of that over the bands in the frame: a click
    ringing in one band stands out, a bang that lifts every band cancels. A longer clip has more moments, so its
    highest reads a little higher."""
    if not config.bursts:
        return np.zeros(0, dtype=np.float32)
    if sample_rate / 2 < config.burst_hi:
        raise ConfigError(f"machine lines: the burst bands reach {config.burst_hi:g} Hz, above what {sample_rate} Hz "
                          f"audio holds ({sample_rate / 2:g} Hz; LinesConfig.for_rate limits them)")
    n = max(int(round(config.burst_frame_s * sample_rate)), 4)
    hop = n // 2
    x = _finite(wave)
    count = 1 + int(np.ceil(max(x.size - n, 0) / hop))
    x = np.pad(x, (0, (count - 1) * hop + n - x.size))  # the last frame ends with the clip (or past it, in zeros)
    edges = np.geomspace(config.burst_lo, config.burst_hi, config.burst_bands + 1)
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    band = np.searchsorted(edges, freqs, side="right") - 1
    band[freqs == edges[-1]] = config.burst_bands - 1  # the top edge belongs to the top band
    window = np.hanning(n)
    energy = np.zeros((config.burst_bands, count))
    for first in range(0, count, 4096):  # frames in blocks: an hour-long file never holds its whole STFT
        idx = np.arange(first, min(first + 4096, count))
        power = np.abs(np.fft.rfft(x[idx[:, None] * hop + np.arange(n)] * window, axis=1)) ** 2
        for b in range(config.burst_bands):
            energy[b, idx] = power[:, band == b].sum(1)
    level = 10 * np.log10(energy + 1e-20)
    level -= np.median(level, axis=1, keepdims=True)
    level -= np.median(level, axis=0, keepdims=True)
    return level.max(1).astype(np.float32)


def envelope_scores(spec: np.ndarray, refs: np.ndarray, config: LinesConfig = LinesConfig(),
                    exclude: int | None = None, margin_db: float | None = None) -> np.ndarray:
    """Per band, the new envelope lines of one :func:`envelope_spectrum` against the normal clips' ``refs``
    ``[clips, bands, bins]``: the sum of its ``env_top`` strongest bins above its nearest neighbours' there (each
    neighbour's line widened by ``env_spread_hz`` or ``tolerance``, whichever is wider; their median, or the weakest:
    ``reference``) plus ``margin_db`` (default ``env_margin_db``); ``exclude``: a row of ``refs`` that is this clip
    itself."""
    from scipy.ndimage import maximum_filter1d

    nn_ = _nearest(spec, refs, config.neighbours, exclude)
    if nn_.size == 0 or not spec.size:
        return np.zeros(len(spec))
    freqs = config.env_f_lo + np.arange(config.env_bins) / config.env_segment
    reach = np.round(np.maximum(config.env_spread_hz, config.tolerance * freqs) * config.env_segment).astype(int)
    reference = np.zeros_like(spec)
    for r in np.unique(reach):  # a neighbour's line widened by its reach at that frequency
        at = reach == r
        reference[:, at] = _reference(maximum_filter1d(refs[nn_], 2 * r + 1, axis=2), config)[:, at]
    over = np.maximum(spec - reference - (config.env_margin_db if margin_db is None else margin_db), 0)
    return np.sort(over, axis=1)[:, -config.env_top:].sum(1)


def _reference(values: np.ndarray, config: LinesConfig) -> np.ndarray:
    """The neighbours' ``values`` (first axis) as one reference: their median (of 2, their mean; of 1, its own), or
    the weakest (``config.reference``)."""
    return np.median(values, axis=0) if config.reference == "median" else values.min(0)


def _nearest(spec: np.ndarray, refs: np.ndarray, count: int, exclude: int | None = None) -> np.ndarray:
    """Rows of ``refs`` (``[clips, ...]``) whose values correlate best with ``spec``'s, best first, at most
    ``count``; ``exclude``: a row that is this clip itself (leave one out)."""
    flat = refs.reshape(len(refs), -1)
    a = flat - flat.mean(1, keepdims=True)
    a /= np.linalg.norm(a, axis=1, keepdims=True) + 1e-9
    b = spec.reshape(-1) - spec.mean()
    sim = a @ (b / (np.linalg.norm(b) + 1e-9))
    if exclude is not None:
        sim[exclude] = -np.inf
    return np.argsort(-sim)[: min(count, int(np.isfinite(sim).sum()))]


def _peaks(spec: np.ndarray, config: LinesConfig) -> np.ndarray:
    """Frequencies (Hz) of the lines: local maxima ``peak_db`` above their floor."""
    from scipy.signal import find_peaks

    idx, _ = find_peaks(spec, height=config.peak_db, distance=4)
    return config.f_lo + idx * GRID_HZ


def _strength(spec: np.ndarray, freqs: np.ndarray, config: LinesConfig) -> np.ndarray:
    """The strongest bin within ``tolerance`` of each frequency, widened to the bins either side of that span (dB
    above floor; 0 off the grid)."""
    out = np.zeros(len(freqs))
    for j, f in enumerate(freqs):
        a = max(int((f * (1 - config.tolerance) - config.f_lo) / GRID_HZ), 0)
        b = min(int((f * (1 + config.tolerance) - config.f_lo) / GRID_HZ) + 2, spec.size)
        if b > a:
            out[j] = spec[a:b].max()
    return out


def _shared(freqs: np.ndarray, others: list[np.ndarray], config: LinesConfig) -> np.ndarray:
    """How many of ``others`` (line lists) hold each of ``freqs`` within ``tolerance``, or one grid bin where that
    is wider (below about 21 Hz)."""
    freqs = np.asarray(freqs, dtype=np.float64)
    count = np.zeros(len(freqs), dtype=int)
    reach = np.maximum(config.tolerance * freqs, GRID_HZ * 1.01)
    for other in others:
        if other.size and len(freqs):
            count += np.abs(other[None, :] - freqs[:, None]).min(1) <= reach
    return count


def line_scores(spec: np.ndarray, refs: np.ndarray, config: LinesConfig = LinesConfig(),
                ref_peaks: list[np.ndarray] | None = None, exclude: int | None = None) -> tuple[float, float]:
    """(new, lost) of one line spectrum against the normal clips' ``refs`` ``[clips, bins]`` (module docstring);
    ``exclude``: a row of ``refs`` that is this clip itself (leave one out)."""
    ref_peaks = ref_peaks if ref_peaks is not None else [_peaks(r, config) for r in refs]
    nn_ = _nearest(spec, refs, config.neighbours, exclude)
    if nn_.size == 0:
        return 0.0, 0.0
    own = _peaks(spec, config)
    need = min(2, nn_.size)
    shared = own[(own >= config.min_rotation) & (_shared(own, [ref_peaks[j] for j in nn_], config) >= need)]
    new = 0.0
    if shared.size:
        at = shared.min() * np.asarray(config.orders)
        reference = _reference(np.array([_strength(refs[j], at, config) for j in nn_]), config)
        new = float(np.maximum(_strength(spec, at, config) - reference - config.new_margin_db, 0).sum())
    base = ref_peaks[nn_[0]]
    base = base[base >= config.lost_from]
    stable = base[_shared(base, [ref_peaks[j] for j in nn_[1:]], config) >= nn_.size - 1]
    lost = 0.0
    if stable.size:
        kept = np.min([_strength(refs[j], stable, config) for j in nn_], 0)
        lost = float(np.maximum(kept - _strength(spec, stable, config) - config.lost_margin_db, 0).mean())
    return new, lost


def _envelope_margin(config: LinesConfig, windows: float, reference: float) -> float:
    """The envelope lines' margin (dB) for a clip whose spectrum averaged ``windows`` windows, against normal clips
    that averaged ``reference``: fewer windows, a noisier spectrum, so a margin wider by 3 spreads of the
    difference."""
    return config.env_margin_db + 3 * ENV_NOISE_DB * max(1 / np.sqrt(max(windows, 1)) - 1 / np.sqrt(reference), 0)


def _band_top(values: np.ndarray, q75: np.ndarray, std: np.ndarray) -> float:
    """The most exceeded band: how far above the normal clips' 75th percentile, in their spreads."""
    return float(np.max((np.asarray(values) - np.asarray(q75)) / np.asarray(std)))


def _band_calibration(scores: np.ndarray, floor: float) -> dict:
    """A per-band measure's calibration from the normal clips' ``scores`` ``[clips, bands]``: per band the 75th
    percentile and the spread (at least ``floor``), and the same of each clip's most exceeded band, read against the
    *other* clips' figures (against figures it helped set, the most exceeded of many bands reads too low)."""
    def top(row: np.ndarray, ref: np.ndarray) -> float:
        return _band_top(row, np.percentile(ref, 75, axis=0), np.maximum(ref.std(0), floor))

    tops = np.array([top(row, np.delete(scores, i, axis=0)) for i, row in enumerate(scores)])
    return {"q75": np.percentile(scores, 75, axis=0).tolist(), "std": np.maximum(scores.std(0), floor).tolist(),
            "top_q75": float(np.percentile(tops, 75)), "top_std": float(max(tops.std(), 0.5))}


class MachineLines(nn.Module):
    """The normal clips' line spectra, envelope spectra and burst profiles, and how far their own scores spread
    (leave one out): :meth:`score` gives a clip's exceedance, 0 for a clip as normal as the normal clips' own.

    A checkpoint component (``lines``): the clips' figures are its buffers, the config and calibration its settings.
    A file written before envelope lines or bursts loads and scores without them."""

    lines_type = "machine_lines"

    def __init__(self, config: LinesConfig, clips: int, calibration: dict | None = None) -> None:
        super().__init__()
        self.config = config
        self.calibration = dict(calibration or {})
        self.register_buffer("spectra", torch.zeros(clips, config.bins))
        self.register_buffer("envelopes", torch.zeros(clips, len(config.bands), config.env_bins))
        self.register_buffer("bursts", torch.zeros(clips, config.burst_bands if config.bursts else 0))
        self._peaks: list[np.ndarray] | None = None

    @staticmethod
    def features(wave: np.ndarray, sample_rate: int, config: LinesConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What is kept of one normal clip: its line spectrum, envelope spectrum and burst profile."""
        return (line_spectrum(wave, sample_rate, config), envelope_spectrum(wave, sample_rate, config),
                burst_profile(wave, sample_rate, config))

    @classmethod
    def fit(cls, waves: list[np.ndarray], sample_rate: int, config: LinesConfig | None = None) -> MachineLines:
        """From the normal clips (at least 3, about as long as the clips it will score); each is scored against the
        others to calibrate. The config's bands are limited to what ``sample_rate`` audio holds."""
        config = (config or LinesConfig()).for_rate(sample_rate)
        return cls.from_features([cls.features(w, sample_rate, config) for w in waves], config,
                                 windows=[envelope_windows(np.asarray(w).size, sample_rate, config) for w in waves])

    @classmethod
    def from_features(cls, features: list[tuple[np.ndarray, np.ndarray, np.ndarray]], config: LinesConfig,
                      windows: list[int] | None = None) -> MachineLines:
        """From the normal clips' :meth:`features` (at least 3) and how many windows their envelope spectra averaged
        (:func:`envelope_windows`; by default that of 8-s clips). The spreads have floors (1 dB for new lines and
        envelope lines, 0.5 dB for lost lines and bursts, 0.5 for a most exceeded band), so a few clips that happen
        to agree exactly do not make every change look huge."""
        if len(features) < 3:
            raise ConfigError(f"machine lines: need at least 3 normal clips, got {len(features)}")
        refs = np.stack([f[0] for f in features]).astype(np.float32)
        peaks = [_peaks(r, config) for r in refs]
        own = np.array([line_scores(r, refs, config, peaks, exclude=i) for i, r in enumerate(refs)])
        calibration = {}
        for k, name in enumerate(("new", "lost")):
            calibration[f"{name}_q75"] = float(np.percentile(own[:, k], 75))
            calibration[f"{name}_std"] = float(max(own[:, k].std(), 1.0 if name == "new" else 0.5))
        module = cls(config, len(refs), calibration)
        module.spectra.copy_(torch.from_numpy(refs))
        if config.envelope:
            env = np.stack([f[1] for f in features]).astype(np.float32)
            if windows is not None and len(windows) != len(features):
                raise ConfigError(f"machine lines: {len(windows)} window counts for {len(features)} clips")
            windows = windows or [DEFAULT_WINDOWS] * len(features)
            module.calibration["envelope_windows"] = reference = float(np.median(windows))
            scores = np.array([envelope_scores(e, env, config, exclude=i,
                                               margin_db=_envelope_margin(config, k, reference))
                               for i, (e, k) in enumerate(zip(env, windows, strict=True))])
            module._calibrate("envelope", scores, 1.0)
            module.envelopes.copy_(torch.from_numpy(env))
        if config.bursts:
            bursts = np.stack([f[2] for f in features]).astype(np.float32)
            module._calibrate("bursts", bursts, 0.5)
            module.bursts.copy_(torch.from_numpy(bursts))
        return module

    def clip_features(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The kept clips' :meth:`features`, as :meth:`from_features` takes them (to add clips and calibrate anew)."""
        return list(zip(self.spectra.numpy(), self.envelopes.numpy(), self.bursts.numpy(), strict=True))

    def _calibrate(self, part: str, scores: np.ndarray, floor: float) -> None:
        for key, value in _band_calibration(scores, floor).items():
            self.calibration[f"{part}_{key}"] = value

    def settings(self) -> dict:
        return {"config": self.config.to_dict(), "clips": int(self.spectra.shape[0]), "calibration": self.calibration}

    @classmethod
    def build(cls, kind: str, settings: dict) -> MachineLines:
        if kind != cls.lines_type:
            raise ConfigError(f"unknown lines component {kind!r} (known: {cls.lines_type})")
        calibration = settings.get("calibration") or {}
        config = LinesConfig.from_dict(settings["config"])
        config = replace(config, **{k: v for k, v in BEFORE.items() if k not in settings["config"]})
        missing = [k for k in CALIBRATION if not isinstance(calibration.get(k), (int, float))]
        for part, on, bands in (("envelope", config.envelope, len(config.bands)),
                                ("bursts", config.bursts, config.burst_bands)):
            if on:
                missing += [f"{part}_{k}" for k in ("top_q75", "top_std")
                            if not isinstance(calibration.get(f"{part}_{k}"), (int, float))]
                missing += [f"{part}_{k}" for k in ("q75", "std")
                            if not (isinstance(calibration.get(f"{part}_{k}"), list)
                                    and len(calibration[f"{part}_{k}"]) == bands)]
        if missing:
            raise ConfigError(f"machine lines without their calibration ({', '.join(missing)} missing)")
        calibration.setdefault("envelope_windows", float(DEFAULT_WINDOWS))  # files from before it: 8-s clips
        return cls(config, int(settings["clips"]), calibration)

    def raw(self, wave: np.ndarray, sample_rate: int) -> dict:
        """A clip against the normal clips: ``new`` and ``lost`` lines (dB), and per band its ``envelope`` lines and
        ``bursts`` (empty arrays where the detector has none)."""
        refs = self.spectra.detach().cpu().float().numpy()
        if self._peaks is None:
            self._peaks = [_peaks(r, self.config) for r in refs]
        new, lost = line_scores(line_spectrum(wave, sample_rate, self.config), refs, self.config, self._peaks)
        env = np.zeros(0)
        if self.config.envelope:
            windows = envelope_windows(np.asarray(wave).size, sample_rate, self.config)
            env = envelope_scores(envelope_spectrum(wave, sample_rate, self.config),
                                  self.envelopes.detach().cpu().float().numpy(), self.config,
                                  margin_db=_envelope_margin(self.config, windows,
                                                             self.calibration["envelope_windows"]))
        return {"new": new, "lost": lost, "envelope": env, "bursts": burst_profile(wave, sample_rate, self.config)}

    def parts(self, wave: np.ndarray, sample_rate: int) -> dict[str, float]:
        """Each part's exceedance for a clip (their sum is :meth:`score`): new and lost lines above the normal
        clips' 75th percentile, in their spreads, and for envelope lines and bursts the same of the band that
        exceeds the normal clips' most."""
        r, c = self.raw(wave, sample_rate), self.calibration
        out = {"new": max(r["new"] - c["new_q75"], 0) / c["new_std"],
               "lost": max(r["lost"] - c["lost_q75"], 0) / c["lost_std"]}
        for part in BAND_PARTS:
            if r[part].size:
                top = _band_top(r[part], c[f"{part}_q75"], c[f"{part}_std"])
                out[part] = max(top - c[f"{part}_top_q75"], 0) / c[f"{part}_top_std"]
        return {k: float(v) for k, v in out.items()}

    def score(self, wave: np.ndarray, sample_rate: int) -> float:
        """The clip's exceedance: the sum of its :meth:`parts`."""
        return float(sum(self.parts(wave, sample_rate).values()))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        self._peaks = None  # new spectra: forget the cached lines
        for part, name in (("envelope", "envelopes"), ("bursts", "bursts")):
            if not getattr(self.config, part):  # a file written before this part holds none of it
                state_dict.setdefault(prefix + name, getattr(self, name))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
