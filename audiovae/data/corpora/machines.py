"""Synthetic machine sounds for anomaly detection, in the MIMII layout: ``<snr>dB/<machine>/<unit>/{normal,abnormal}/``.

Four machine types after MIMII and ToyADMOS, each a small physical caricature: a **fan** (blade-pass harmonics over
aerodynamic noise), a **pump** (motor harmonics, the impeller's vane-pass tone and flow noise pulsing with the
piston), a **bearing** (shaft harmonics, the drive motor's slot whine and faint ball-pass impacts ringing a high
resonance) and a **slide rail** (strokes of a motor whine with
rolling noise, pauses between). Every type has several units (``id_00``, ``id_02``...) whose speeds, harmonic
balance and resonances differ slightly, as real units of one model do; within a clip the speed wanders a little.

Anomalies are faults with a severity drawn per clip: ``drift`` (the speed drifts 3-8 % over the clip), ``click``
(a few impacts), ``imbalance`` (amplitude modulation at the rotation rate, a stronger 1x component), ``rub``
(friction noise bursts once per turn during a stretch of the clip) and ``leak`` (a steady high hiss), and two faults
as vibration analysts meet them, low in level against the factory noise: ``looseness`` (weak lines at half orders
and low harmonics of the rotation frequency, 0.5x, 1.5x, 2x-6x, and a faint rattle once per turn) and ``wear``
(a worn bearing race: faint impacts at the inner-race defect rate, about 1.5 times the ball-pass rate, ringing a high
resonance and strongest once per turn, where the race passes the load). ``rub``, ``leak``, ``looseness`` and ``wear``
appear only in the test split (:data:`TEST_ONLY_ANOMALIES`); the valid split has a few of the others, for tuning.
Normal training clips never hold an anomaly. The last two were added later with seeds of their own, so every clip
of the earlier corpus is rendered byte for byte as before.

Each clip is mixed with factory noise (an engine, impacts, rumble) at every SNR of the config (-6, 0 and 6 dB, as
MIMII has), the same clip and the same noise at each, so one clip's SNR folders differ only in the noise level.
Every clip has its own seed: the corpus is byte-identical on a rerun and parallel across processes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import audio
from ...errors import AudiovaeError
from ..manifest import CorpusSummary, Entry, write_manifest
from ..mixing import coloured_noise, factory_noise, rms
from . import render_in_processes

MACHINES = ("fan", "pump", "bearing", "slider")
SEEN_ANOMALIES = ("drift", "click", "imbalance")
FIRST_TEST_ONLY = ("rub", "leak")
ROTATION_FAULTS = ("looseness", "wear")  # added later: seeded apart, so the earlier clips stay as they were
TEST_ONLY_ANOMALIES = FIRST_TEST_ONLY + ROTATION_FAULTS
ANOMALIES = SEEN_ANOMALIES + TEST_ONLY_ANOMALIES
LEVEL = 0.1  # RMS of a mixture; the same for every clip of an SNR, so loudness says nothing about the label


@dataclass(frozen=True)
class MachineCorpusConfig:
    """What to render. Counts are clips per unit (each clip is written once per SNR)."""

    machines: tuple[str, ...] = MACHINES
    units: int = 4
    seconds: float = 4.0
    sample_rate: int = 16000
    snrs: tuple[float, ...] = (-6.0, 0.0, 6.0)
    train: int = 40
    valid_normal: int = 8
    valid_per_anomaly: int = 2  # of each SEEN_ANOMALIES type
    test_normal: int = 16
    test_per_anomaly: int = 3  # of each of ANOMALIES
    seed: int = 0
    workers: int = 0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.machines) - set(MACHINES))
        if unknown:
            raise AudiovaeError(f"unknown machine type(s) {unknown}; known: {', '.join(MACHINES)}")
        if not self.machines or not self.snrs:
            raise AudiovaeError("MachineCorpusConfig: give at least one machine type and one SNR")
        if self.units < 1 or self.train < 1 or self.seconds < 0.5:
            raise AudiovaeError("MachineCorpusConfig: units and train must be >= 1, seconds >= 0.5")


@dataclass(frozen=True)
class _Clip:
    machine: str
    unit: int
    split: str
    anomaly: str  # "" for a normal clip
    index: int
    seed: int


def unit_name(unit: int) -> str:
    """MIMII's unit ids are even: id_00, id_02, id_04, id_06."""
    return f"id_{2 * unit:02d}"


def _unit(machine: str, unit: int, seed: int) -> dict:
    """The fixed character of one unit: speeds, harmonic weights, resonance, noise balance."""
    rng = np.random.default_rng([seed, MACHINES.index(machine), unit, 7])
    return {"f_rot": {"fan": rng.uniform(18, 28), "pump": rng.uniform(24, 30), "bearing": rng.uniform(20, 40),
                      "slider": rng.uniform(150, 300)}[machine],
            "blades": int(rng.integers(5, 10)), "weights": rng.uniform(0.5, 1.5, 40),
            "slots": int(rng.integers(20, 37)),
            "resonance": rng.uniform(2500, 5000), "ball_ratio": rng.uniform(3.0, 4.5),
            "band": rng.uniform(0.8, 1.25), "noise": rng.uniform(0.5, 0.9), "period": rng.uniform(1.0, 2.0),
            "pulse": rng.uniform(1.5, 4.0)}


def _bandpass(x: np.ndarray, sr: int, lo: float, hi: float) -> np.ndarray:
    """Brick-wall band-pass in the frequency domain, unit RMS."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(x.size, 1 / sr)
    spec[(f < lo) | (f > hi)] = 0
    y = np.fft.irfft(spec, x.size)
    return y / max(rms(y), 1e-12)


def _harmonics(phase: np.ndarray, weights: np.ndarray, k_max: int, decay: float, rng: np.random.Generator
               ) -> np.ndarray:
    return sum(weights[k] * decay ** k * np.sin((k + 1) * phase + rng.uniform(0, 2 * np.pi)) for k in range(k_max))


def _ring(n: int, sr: int, times: np.ndarray, freq: float, decay_s: float, amps: np.ndarray) -> np.ndarray:
    """Damped sinusoids at ``freq`` struck at ``times`` (seconds): impacts exciting a resonance."""
    y = np.zeros(n)
    m = int(8 * decay_s * sr)
    t = np.arange(m) / sr
    kernel = np.exp(-t / decay_s) * np.sin(2 * np.pi * freq * t)
    for at, a in zip(times, amps, strict=True):
        s = int(at * sr)
        if s < n:
            y[s: s + m] += a * kernel[: n - s]
    return y


def machine_sound(machine: str, unit: dict, n: int, sr: int, rng: np.random.Generator, anomaly: str = ""
                  ) -> np.ndarray:
    """One clip of ``machine`` with ``unit``'s character: unit RMS before any anomaly, which adds on top."""
    t = np.arange(n) / sr
    wander = 1 + 0.004 * np.cumsum(rng.standard_normal(n)) / np.sqrt(n)  # slow speed wander, about 0.4 %
    severity = rng.uniform(0.0, 1.0)
    if anomaly == "drift":
        wander = wander * (1 + np.sign(rng.uniform(-1, 1)) * (0.03 + 0.05 * severity) * t / t[-1])
    f = unit["f_rot"] * wander
    phase = 2 * np.pi * np.cumsum(f) / sr
    w, band = unit["weights"], unit["band"]
    if machine == "fan":
        tone = 0.3 * np.sin(phase) + _harmonics(unit["blades"] * phase, w, 8, 0.6, rng)
        air = _bandpass(coloured_noise(n, 1.0, rng), sr, 150 * band, 6000) * (1 + 0.2 * np.sin(unit["blades"] * phase))
    elif machine == "pump":  # motor harmonics, and the impeller's vane-pass tone (its strongest line)
        tone = _harmonics(phase, w, 30, 0.85, rng) + 1.5 * _harmonics(unit["blades"] * phase, w[30:], 3, 0.5, rng)
        air = _bandpass(coloured_noise(n, 0.5, rng), sr, 300 * band, 3000 * band) * (
            1 + 0.6 * np.sin(2 * np.pi * unit["pulse"] * t) ** 2)
    elif machine == "bearing":  # shaft harmonics, and the drive motor's slot whine
        tone = _harmonics(phase, w, 6, 0.5, rng) + 0.7 * _harmonics(unit["slots"] * phase, w[20:], 2, 0.4, rng)
        turns = np.flatnonzero(np.diff(np.floor(unit["ball_ratio"] * phase / (2 * np.pi))) > 0) / sr
        air = 0.5 * _bandpass(coloured_noise(n, 0.0, rng), sr, 200, 7000)
        air += _ring(n, sr, turns, unit["resonance"], 0.002, 0.4 * rng.uniform(0.7, 1.3, turns.size))
    else:  # slider: strokes of a motor whine with rolling noise, pauses between
        period = unit["period"]
        pos = (t + rng.uniform(0, period)) % period / period
        moving = np.clip(np.minimum(pos, 0.7 - pos) * 20, 0, 1)
        stroke = 2 * np.pi * np.cumsum(f * (0.6 + 0.4 * moving)) / sr
        tone = _harmonics(stroke, w, 10, 0.7, rng) * moving
        air = _bandpass(coloured_noise(n, 0.5, rng), sr, 1000 * band, 4000 * band) * moving
        phase = stroke
    y = tone / max(rms(tone), 1e-12) + unit["noise"] * air / max(rms(air), 1e-12)
    y = y / max(rms(y), 1e-12)
    if anomaly == "imbalance":
        y = y * (1 + (0.25 + 0.35 * severity) * np.sin(phase / (unit["blades"] if machine == "slider" else 1)))
        y = y + (0.3 + 0.3 * severity) * np.sin(phase)
    elif anomaly == "click":
        times = np.sort(rng.uniform(0, t[-1], int(rng.integers(3, 9))))
        clicks = _ring(n, sr, times, rng.uniform(1500, 5000), 0.003, rng.uniform(2.0, 4.0, times.size))
        y = y + clicks * (0.5 + severity)
    elif anomaly == "rub":
        start = rng.uniform(0, 0.5) * t[-1]
        span = (t > start) & (t < start + t[-1] * rng.uniform(0.3, 0.5))
        bursts = np.clip(np.sin(phase), 0, 1) ** 8 * span
        y = y + (0.4 + 0.4 * severity) * _bandpass(rng.standard_normal(n), sr, 1500, 3500) * bursts
    elif anomaly == "leak":
        y = y + (0.15 + 0.2 * severity) * _bandpass(rng.standard_normal(n), sr, 4000, 7500)
    elif anomaly == "looseness":  # half orders and low harmonics of the rotation, each 20-33 dB below the machine (RMS)
        orders = (0.5, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0)
        y = y + sum((0.05 + 0.05 * severity) * rng.uniform(0.6, 1.4) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
                    for k in orders)
        turns = np.flatnonzero(np.diff(np.floor(phase / (2 * np.pi))) > 0) / sr
        y = y + _ring(n, sr, turns, rng.uniform(300, 900), 0.004, (0.1 + 0.1 * severity) * rng.uniform(0.5, 1.5,
                                                                                                         turns.size))
    elif anomaly == "wear":  # inner-race defect: impacts at ~1.5x the ball-pass rate, loudest once per turn
        rate = 1.5 * unit["ball_ratio"] * rng.uniform(0.95, 1.05)
        hits = np.flatnonzero(np.diff(np.floor(rate * phase / (2 * np.pi))) > 0)
        load = 0.5 * (1 + np.cos(phase[hits]))
        amps = (0.25 + 0.25 * severity) * (0.2 + 0.8 * load) * rng.uniform(0.7, 1.3, hits.size)
        y = y + _ring(n, sr, hits / sr, unit["resonance"] * rng.uniform(0.9, 1.1), 0.002, amps)
    elif anomaly not in ("", "drift"):
        raise AudiovaeError(f"unknown anomaly {anomaly!r}; known: {', '.join(ANOMALIES)}")
    return y


def snr_folder(snr: float) -> str:
    return f"{snr:g}dB"


def _render(clip: _Clip, out: Path, cfg: MachineCorpusConfig) -> list[Entry]:
    sr, n = cfg.sample_rate, int(cfg.seconds * cfg.sample_rate)
    rng = np.random.default_rng(clip.seed)
    sound = machine_sound(clip.machine, _unit(clip.machine, clip.unit, cfg.seed), n, sr, rng, clip.anomaly)
    noise = factory_noise(n, sr, rng)
    name = f"{clip.split}_{clip.anomaly + '_' if clip.anomaly else ''}{clip.index:04d}.wav"
    label = "anomaly" if clip.anomaly else "normal"
    entries = []
    for snr in cfg.snrs:
        mix = sound + noise * 10 ** (-snr / 20)
        mix = np.clip(LEVEL * mix / np.sqrt(1 + 10 ** (-snr / 10)), -1, 1).astype(np.float32)
        rel = Path(snr_folder(snr), clip.machine, unit_name(clip.unit), "normal" if label == "normal" else "abnormal",
                   name)
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        audio.save(out / rel, mix, sr)
        entries.append(Entry(path=str(rel), duration=round(n / sr, 4), split=clip.split, snr=snr,
                             machine=clip.machine, unit=unit_name(clip.unit), label=label, anomaly=clip.anomaly))
    return entries


def _plan(cfg: MachineCorpusConfig) -> list[_Clip]:
    clips: list[_Clip] = []
    for machine in cfg.machines:
        for unit in range(cfg.units):
            kinds = ([("train", "")] * cfg.train + [("valid", "")] * cfg.valid_normal
                     + [("valid", a) for a in SEEN_ANOMALIES for _ in range(cfg.valid_per_anomaly)]
                     + [("test", "")] * cfg.test_normal
                     + [("test", a) for a in SEEN_ANOMALIES + FIRST_TEST_ONLY for _ in range(cfg.test_per_anomaly)])
            for i, (split, anomaly) in enumerate(kinds):
                clips.append(_Clip(machine, unit, split, anomaly, i, seed=cfg.seed * 1_000_003 + len(clips)))
    later = []
    for machine in cfg.machines:
        for unit in range(cfg.units):
            first = sum(c.machine == machine and c.unit == unit for c in clips)
            for i, anomaly in enumerate(a for a in ROTATION_FAULTS for _ in range(cfg.test_per_anomaly)):
                later.append(_Clip(machine, unit, "test", anomaly, first + i,
                                   seed=cfg.seed * 1_000_003 + 500_000 + len(later)))
    return clips + later


def build_machine_corpus(out_dir: str | os.PathLike[str], config: MachineCorpusConfig = MachineCorpusConfig(),
                         progress: bool = True) -> CorpusSummary:
    """Render the corpus into ``out_dir`` (the MIMII folder tree, ``manifest.jsonl``, ``summary.json``)."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clips = _plan(config)
    entries: list[Entry] = []
    for rendered in render_in_processes(_render, clips, out, config, config.workers, "rendering", "clip", progress,
                                        chunksize=4):
        entries += rendered
    write_manifest(out / "manifest.jsonl", entries)
    for e in entries:  # the summary counts normal clips as a group of their own (the manifest is written)
        e.anomaly = e.anomaly or "normal"
    summary = CorpusSummary.from_entries("machines", entries, group="anomaly",
                                         build_seconds=time.perf_counter() - t0)
    summary.write(out / "summary.json")
    return summary
