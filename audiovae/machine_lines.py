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
* **new lines**: the clip's lines at half and whole orders of that rotation (0.5x...6x) above the weakest of the
  neighbours' there, summed (dB);
* **lost lines**: the lines every neighbour shares (50 Hz-1 kHz) that the clip has lost, by how much (dB, mean).

:class:`MachineLines` keeps the normal clips' line spectra and turns both sums into exceedances over what the normal
clips score against each other (leave one out): zero for most normal clips, so adding it to a detector's clip score
changes nothing until a clip's lines do. Measured on the synthetic machine corpus with 13 clips per machine type
(recipes/anomaly/README.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn

from .errors import ConfigError

GRID_HZ = 0.125  # the line spectrum's resolution: an 8-s window (shorter clips are zero-padded)
CALIBRATION = ("new_q75", "new_std", "lost_q75", "lost_std")


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
    orders: tuple[float, ...] = tuple(0.5 * k for k in range(1, 13))  # 0.5x ... 6x the rotation
    min_rotation: float = 12.0
    new_margin_db: float = 3.0
    lost_margin_db: float = 6.0
    lost_from: float = 50.0  # lost lines are looked for from here up to f_hi

    def __post_init__(self) -> None:
        if not 0 < self.f_lo < self.f_hi:
            raise ConfigError(f"LinesConfig: f_lo {self.f_lo} and f_hi {self.f_hi} must satisfy 0 < f_lo < f_hi")
        if self.neighbours < 1 or not self.orders:
            raise ConfigError(f"LinesConfig: neighbours ({self.neighbours}) must be >= 1 and orders not empty")
        if self.min_rotation * min(self.orders) < self.f_lo:
            raise ConfigError(f"LinesConfig: the lowest order of the lowest rotation ({self.min_rotation} Hz x "
                              f"{min(self.orders)}) lies below f_lo ({self.f_lo} Hz)")

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

    x = np.asarray(wave, dtype=np.float64).reshape(-1)
    if sample_rate / 2 < config.f_hi:
        raise ConfigError(f"machine lines: {sample_rate} Hz audio does not reach {config.f_hi:g} Hz")
    nfft = int(round(sample_rate / GRID_HZ))
    size = min(x.size, nfft)
    window = np.hanning(size)
    starts = sorted(set(range(0, x.size - size + 1, max(size // 2, 1))) | {x.size - size})
    p = np.zeros(nfft // 2 + 1)
    for s in starts:  # a running sum: an hour-long file never holds all its windows' spectra at once
        p += np.abs(np.fft.rfft(x[s: s + size] * window, nfft)) ** 2
    width = int(round(config.floor_hz / GRID_HZ)) | 1
    lo = int(round(config.f_lo / GRID_HZ))
    a, b = max(lo - width // 2, 0), min(lo + config.bins + width // 2, p.size)  # the floor sees past both ends
    db = 10 * np.log10(p[a:b] / len(starts) + 1e-20)
    floor = median_filter(db, size=width, mode="reflect")
    return np.maximum(db - floor, 0)[lo - a: lo - a + config.bins].astype(np.float32)


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
    a = refs - refs.mean(1, keepdims=True)
    a /= np.linalg.norm(a, axis=1, keepdims=True) + 1e-9
    b = spec - spec.mean()
    sim = a @ (b / (np.linalg.norm(b) + 1e-9))
    if exclude is not None:
        sim[exclude] = -np.inf
    usable = int(np.isfinite(sim).sum())
    nn_ = np.argsort(-sim)[: min(config.neighbours, usable)]
    if nn_.size == 0:
        return 0.0, 0.0
    own = _peaks(spec, config)
    need = min(2, nn_.size)
    shared = own[(own >= config.min_rotation) & (_shared(own, [ref_peaks[j] for j in nn_], config) >= need)]
    new = 0.0
    if shared.size:
        at = shared.min() * np.asarray(config.orders)
        reference = np.min([_strength(refs[j], at, config) for j in nn_], 0)
        new = float(np.maximum(_strength(spec, at, config) - reference - config.new_margin_db, 0).sum())
    base = ref_peaks[nn_[0]]
    base = base[base >= config.lost_from]
    stable = base[_shared(base, [ref_peaks[j] for j in nn_[1:]], config) >= nn_.size - 1]
    lost = 0.0
    if stable.size:
        kept = np.min([_strength(refs[j], stable, config) for j in nn_], 0)
        lost = float(np.maximum(kept - _strength(spec, stable, config) - config.lost_margin_db, 0).mean())
    return new, lost


class MachineLines(nn.Module):
    """The normal clips' line spectra and how far their own scores spread (leave one out): :meth:`score` gives a
    clip's exceedance, 0 for a clip whose lines are as normal as the normal clips' own.

    A checkpoint component (``lines``): the spectra are its buffer, the config and calibration its settings."""

    lines_type = "machine_lines"

    def __init__(self, config: LinesConfig, clips: int, calibration: dict | None = None) -> None:
        super().__init__()
        self.config = config
        self.calibration = dict(calibration or {})
        self.register_buffer("spectra", torch.zeros(clips, config.bins))
        self._peaks: list[np.ndarray] | None = None

    @classmethod
    def fit(cls, waves: list[np.ndarray], sample_rate: int, config: LinesConfig = LinesConfig()) -> MachineLines:
        """From the normal clips (at least 3); each is scored against the others to calibrate."""
        return cls.from_spectra([line_spectrum(w, sample_rate, config) for w in waves], config)

    @classmethod
    def from_spectra(cls, spectra: list[np.ndarray], config: LinesConfig = LinesConfig()) -> MachineLines:
        """From the normal clips' :func:`line_spectrum` (at least 3). The spreads have floors (1 dB for new lines,
        0.5 dB for lost ones), so a few clips that happen to agree exactly do not make every change look huge."""
        if len(spectra) < 3:
            raise ConfigError(f"machine lines: need at least 3 normal clips, got {len(spectra)}")
        refs = np.stack(spectra).astype(np.float32)
        peaks = [_peaks(r, config) for r in refs]
        own = np.array([line_scores(r, refs, config, peaks, exclude=i) for i, r in enumerate(refs)])
        calibration = {}
        for k, name in enumerate(("new", "lost")):
            calibration[f"{name}_q75"] = float(np.percentile(own[:, k], 75))
            calibration[f"{name}_std"] = float(max(own[:, k].std(), 1.0 if name == "new" else 0.5))
        module = cls(config, len(refs), calibration)
        module.spectra.copy_(torch.from_numpy(refs))
        return module

    def settings(self) -> dict:
        return {"config": self.config.to_dict(), "clips": int(self.spectra.shape[0]), "calibration": self.calibration}

    @classmethod
    def build(cls, kind: str, settings: dict) -> MachineLines:
        if kind != cls.lines_type:
            raise ConfigError(f"unknown lines component {kind!r} (known: {cls.lines_type})")
        calibration = settings.get("calibration") or {}
        missing = [k for k in CALIBRATION if not isinstance(calibration.get(k), (int, float))]
        if missing:
            raise ConfigError(f"machine lines without their calibration ({', '.join(missing)} missing)")
        return cls(LinesConfig.from_dict(settings["config"]), int(settings["clips"]), calibration)

    def raw(self, wave: np.ndarray, sample_rate: int) -> tuple[float, float]:
        """(new, lost) of a clip against the normal clips."""
        refs = self.spectra.detach().cpu().float().numpy()
        if self._peaks is None:
            self._peaks = [_peaks(r, self.config) for r in refs]
        return line_scores(line_spectrum(wave, sample_rate, self.config), refs, self.config, self._peaks)

    def score(self, wave: np.ndarray, sample_rate: int) -> float:
        """The clip's exceedance: new and lost lines above the normal clips' 75th percentile, in their spreads."""
        new, lost = self.raw(wave, sample_rate)
        c = self.calibration
        return float(max(new - c["new_q75"], 0) / c["new_std"] + max(lost - c["lost_q75"], 0) / c["lost_std"])

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # new spectra: forget the cached lines
        self._peaks = None
        super()._load_from_state_dict(*args, **kwargs)
