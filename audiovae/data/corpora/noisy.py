"""Noisy-speech corpus for denoising: clean speech mixed with synthetic and recorded noises at chosen SNRs.

Clean speech comes from a speech corpus built by :mod:`audiovae.data.corpora.speech` (given, or a small one built on
the spot) plus *real* recordings of one Russian speaker shipped in Debian's ``festvox-ru`` (620 sentences, kept as
speaker ``ru_nsh`` so it can be evaluated separately). Noise types: white, pink and brown noise, mains hum, babble
made from other speakers of the same split, and room reverberation (pyroomacoustics image-source RIRs, plus pink
noise at the SNR); two types appear only in the test split, to measure generalisation: music (from a music corpus,
or synthesised notes) and factory noise (engine harmonics, impacts and rumble).

Every mixture is a job with its own seed, so the corpus is byte-identical on a rerun and parallel across processes.
The clean target is stored beside each mixture, scaled by the same factor, so ``noisy = clean + noise`` exactly.
"""

from __future__ import annotations

import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ... import audio
from ...errors import AudiovaeError
from ..layouts import split_of
from ..manifest import CorpusSummary, Entry, read_manifest, resolve, write_manifest
from ..mixing import NOISE_COLOURS, coloured_noise, fit_length, mains_hum, noise_gain, peak_scale, rms

FESTVOX_RU = Path("/usr/share/festival/voices/russian/msu_ru_nsh_clunits")
TRAIN_NOISES = ("white", "pink", "brown", "hum", "babble", "reverb")
TEST_ONLY_NOISES = ("music", "factory")


@dataclass(frozen=True)
class NoisyCorpusConfig:
    """What to mix. ``clean`` is a built speech corpus folder; ``None`` builds one of ``clean_sentences`` inside."""

    clean: str | None = None
    clean_sentences: int = 120
    snrs: tuple[float, ...] = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
    train_noises: tuple[str, ...] = TRAIN_NOISES
    test_only_noises: tuple[str, ...] = TEST_ONLY_NOISES
    mixtures_per_file: int = 2
    test_mixtures_per_file: int = 2
    music: str | None = None
    real_voice: bool = True
    real_voice_files: int = 620
    max_seconds: float = 8.0
    sample_rate: int = 22050
    seed: int = 0
    workers: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.train_noises + self.test_only_noises) - set(TRAIN_NOISES + TEST_ONLY_NOISES)
        if unknown:
            raise AudiovaeError(f"unknown noise type(s) {sorted(unknown)}; known: "
                                f"{', '.join(TRAIN_NOISES + TEST_ONLY_NOISES)}")
        if not self.snrs:
            raise AudiovaeError("NoisyCorpusConfig.snrs: give at least one SNR")


@dataclass
class _Job:
    name: str
    source: str
    speaker: str
    text: str
    split: str
    noise: str
    snr: float
    seed: int
    babble: list[str] = field(default_factory=list)
    music: str = ""


def _synth_music(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Fallback music when no music corpus is given: random diatonic notes with harmonics and decay."""
    y = np.zeros(n)
    t_note = int(rng.uniform(0.15, 0.4) * sr)
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    base = rng.integers(45, 60)
    for start in range(0, n, t_note):
        m = min(t_note * 2, n - start)
        t = np.arange(m) / sr
        for _ in range(int(rng.integers(1, 4))):
            pitch = base + scale[rng.integers(len(scale))] + 12 * rng.integers(0, 2)
            f0 = 440.0 * 2 ** ((pitch - 69) / 12)
            note = sum((0.5 ** k) * np.sin(2 * np.pi * f0 * (k + 1) * t) for k in range(5) if f0 * (k + 1) < sr / 2)
            y[start: start + m] += note * np.exp(-3.0 * t)
    return (y / max(rms(y), 1e-12)).astype(np.float32)


def _factory(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
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


def _reverberate(clean: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Clean speech in a random shoebox room (RT60 0.3-0.9 s), aligned to the direct path, at the clean's level."""
    import pyroomacoustics as pra
    from scipy.signal import fftconvolve

    dims = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 4.0])
    rt60 = rng.uniform(0.3, 0.9)
    absorption, max_order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=sr, materials=pra.Material(absorption), max_order=min(max_order, 30))
    room.add_source(rng.uniform([0.5, 0.5, 1.0], dims - 0.5))
    room.add_microphone(rng.uniform([0.5, 0.5, 1.0], dims - 0.5))
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    direct = int(np.argmax(np.abs(rir)))
    wet = fftconvolve(clean, rir[direct:] / abs(rir[direct]))[: clean.size]
    return (wet * rms(clean) / max(rms(wet), 1e-12)).astype(np.float32)


def _load(path: str, sr: int, max_seconds: float) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wave = audio.load(path, sr)[0].numpy()
    return wave[: int(max_seconds * sr)]


def _mix(job: _Job, out: Path, cfg: NoisyCorpusConfig) -> tuple[Entry | None, str]:
    """Worker: one mixture and its clean target written; returns the manifest entry or ``"path: reason"``."""
    sr = cfg.sample_rate
    try:
        clean = _load(job.source, sr, cfg.max_seconds)
        rng = np.random.default_rng(job.seed)
        n = clean.size
        speech = clean
        if job.noise in NOISE_COLOURS:
            noise = coloured_noise(n, NOISE_COLOURS[job.noise], rng)
        elif job.noise == "hum":
            noise = mains_hum(n, sr, rng)
        elif job.noise == "babble":
            noise = sum(fit_length(_load(p, sr, cfg.max_seconds), n, rng) for p in job.babble)
        elif job.noise == "reverb":
            speech = _reverberate(clean, sr, rng)
            noise = coloured_noise(n, 1.0, rng)
        elif job.noise == "music":
            noise = fit_length(_load(job.music, sr, 60.0), n, rng) if job.music else _synth_music(n, sr, rng)
        else:
            noise = _factory(n, sr, rng)
        # the SNR is set on the additive noise; for reverb the reverberant tail is part of the degradation and the
        # target stays the dry speech
        mixture = speech + noise_gain(speech, noise, job.snr) * noise
        scale = peak_scale(mixture)
        noisy_path = out / "noisy" / job.split / f"{job.name}.wav"
        clean_path = out / "clean" / job.split / f"{job.name}.wav"
        audio.save(noisy_path, mixture * scale, sr)
        audio.save(clean_path, clean * scale, sr)
    except (AudiovaeError, ValueError) as e:
        return None, f"{job.source}: {e}"
    return Entry(path=str(noisy_path.relative_to(out)), duration=round(n / sr, 4), split=job.split,
                 speaker=job.speaker, text=job.text, clean=str(clean_path.relative_to(out)), noise=job.noise,
                 snr=job.snr), ""


def _real_voice(cfg: NoisyCorpusConfig) -> list[Entry]:
    """festvox-ru's recordings as clean speech of speaker ``ru_nsh`` (a fifth of them held out for test)."""
    wavs = sorted((FESTVOX_RU / "wav").glob("ru_*.wav"))[: cfg.real_voice_files]
    if not wavs:
        raise AudiovaeError(f"{FESTVOX_RU}: no recordings found; install them with `apt-get install festvox-ru` "
                            "or build without the real voice")
    texts = {}
    prompts = FESTVOX_RU / "etc" / "txt.done.data"
    if prompts.is_file():
        for line in prompts.read_text(encoding="utf-8").splitlines():
            parts = line.strip("() ").split(" ", 1)
            if len(parts) == 2:
                texts[parts[0]] = parts[1].strip().strip('"')
    return [Entry(path=str(w), duration=0.0, split=split_of(w.stem, 0.05, 0.2), speaker="ru_nsh",
                  text=texts.get(w.stem, "")) for w in wavs]


def _clean_sources(cfg: NoisyCorpusConfig, out: Path, progress: bool) -> list[Entry]:
    if cfg.clean:
        manifest = Path(cfg.clean) / "manifest.jsonl"
    else:
        from .speech import SpeechCorpusConfig, build_speech_corpus

        build_speech_corpus(out / "speech", SpeechCorpusConfig(sentences=cfg.clean_sentences, seed=cfg.seed,
                                                               workers=cfg.workers), progress=progress)
        manifest = out / "speech" / "manifest.jsonl"
    sources = [Entry(**{**vars(e), "path": str(resolve(manifest, e.path))}) for e in read_manifest(manifest)]
    return sources + (_real_voice(cfg) if cfg.real_voice else [])


def _music_files(cfg: NoisyCorpusConfig) -> list[str]:
    if not cfg.music:
        return []
    manifest = Path(cfg.music) / "manifest.jsonl"
    return [str(resolve(manifest, e.path)) for e in read_manifest(manifest)]


def _plan(sources: list[Entry], cfg: NoisyCorpusConfig, music: list[str]) -> list[_Job]:
    """Assign every clean file its noise type(s) and SNR(s): random in train/valid, an even grid in test."""
    rng = np.random.default_rng(cfg.seed)
    groups: dict[tuple[str, bool], list[Entry]] = {}
    for e in sorted(sources, key=lambda e: e.path):
        groups.setdefault((e.split, e.speaker == "ru_nsh"), []).append(e)
    jobs: list[_Job] = []
    for (split, _), items in sorted(groups.items()):
        noises = cfg.train_noises + (cfg.test_only_noises if split == "test" else ())
        # test: walk an even grid, every noise type before the next SNR, so any prefix covers all noise types
        grid = [(noise, snr) for snr in cfg.snrs for noise in noises]
        others = [e.path for e in items]
        per_file = {"train": cfg.mixtures_per_file, "test": cfg.test_mixtures_per_file}.get(split, 1)
        k = 0
        for e in items:
            for m in range(per_file):
                if split == "test":
                    noise, snr = grid[k % len(grid)]
                    k += 1
                else:
                    noise, snr = noises[int(rng.integers(len(noises)))], cfg.snrs[int(rng.integers(len(cfg.snrs)))]
                babble = [others[int(i)] for i in rng.choice(len(others), size=min(5, len(others)), replace=False)
                          if others[int(i)] != e.path][:4] if noise == "babble" else []
                jobs.append(_Job(name=f"{e.speaker}_{Path(e.path).stem}_{m}", source=e.path, speaker=e.speaker,
                                 text=e.text, split=split, noise=noise, snr=float(snr),
                                 seed=cfg.seed * 1_000_003 + len(jobs), babble=babble,
                                 music=music[int(rng.integers(len(music)))] if music else ""))
    return jobs


def build_noisy_corpus(out_dir: str | os.PathLike[str], config: NoisyCorpusConfig = NoisyCorpusConfig(),
                       progress: bool = True) -> CorpusSummary:
    """Build the corpus into ``out_dir`` (``noisy/``, ``clean/``, ``manifest.jsonl``, ``summary.json``)."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = _plan(_clean_sources(config, out, progress), config, _music_files(config))
    for split in {j.split for j in jobs}:
        for kind in ("noisy", "clean"):
            (out / kind / split).mkdir(parents=True, exist_ok=True)
    entries, skipped = [], []
    workers = config.workers or os.cpu_count() or 1
    with ProcessPoolExecutor(workers) as pool:
        results = pool.map(_mix, jobs, [out] * len(jobs), [config] * len(jobs), chunksize=8)
        for entry, error in tqdm(results, total=len(jobs), desc="mixing", unit="file", disable=not progress):
            if entry is None:
                skipped.append(error)
            else:
                entries.append(entry)
    write_manifest(out / "manifest.jsonl", entries)
    summary = CorpusSummary.from_entries("noisy", entries, group="noise", skipped=skipped,
                                         build_seconds=time.perf_counter() - t0)
    summary.write(out / "summary.json")
    return summary
