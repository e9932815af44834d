"""Noisy-speech corpus for denoising: clean speech mixed with synthetic and recorded noises at chosen SNRs.

Clean speech comes from a speech corpus built by :mod:`audiovae.data.corpora.speech` or any dataset of a known layout
(speechocean762's real speakers, VCTK, LibriTTS, a folder per speaker: :func:`audiovae.data.layouts.discover`, whose
speaker splits are kept), or a small synthetic one built on the spot, plus *real* recordings of one Russian speaker
shipped in Debian's ``festvox-ru`` (620 sentences, kept as speaker ``ru_nsh`` so it can be evaluated separately; the
test split holds as many of them as of the synthetic voices, up to a fifth of them).

Noise types: white, pink and brown noise, mains hum, babble (four utterances by other speakers of the same split
reading other sentences), and room reverberation (pyroomacoustics image-source RIRs aligned to the direct sound, plus
pink noise at the SNR); two types appear only in the test split, to measure generalisation: music (from a music
corpus, or synthesised notes) and factory noise (engine harmonics, impacts and rumble). Recorded noise comes from a
folder of ``<type>/<files>`` (``noise_dir``; ``audiovae corpus noise`` gathers the real recordings that Debian
packages ship): each type named in ``test_only_recorded`` is heard only in the test split; every other type is cut in
time, its first 75 % for training, the next 10 % for validation, the last 15 % for test, so a test mixture never holds
a noise sample that training heard.

Test walks a noise x SNR grid speaker by speaker, so every noise type meets every SNR equally often and every speaker
with a dozen test mixtures meets every noise type and SNR. Clean files longer than ``max_seconds`` (20 s: every
festvox-ru recording fits) are cut at a pause and lose their transcript.

Every mixture is a job with its own seed, so the corpus is byte-identical on a rerun and parallel across processes.
The clean target is stored beside each mixture, scaled by the same factor, so ``noisy = clean + noise`` exactly.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ... import audio
from ...errors import AudiovaeError
from ..layouts import held_out_count, ranked_splits
from ..manifest import CorpusSummary, Entry, read_manifest, resolve, write_manifest
from ..mixing import (
    NOISE_COLOURS,
    audible_crop,
    coloured_noise,
    engine_noise,
    factory_noise,
    fit_length,
    mains_hum,
    noise_gain,
    peak_scale,
    pulse_gate,
    rms,
    vary_noise,
)
from . import render_in_processes

FESTVOX_RU = Path("/usr/share/festival/voices/russian/msu_ru_nsh_clunits")
REAL_SPEAKER = "ru_nsh"
TRAIN_NOISES = ("white", "pink", "brown", "hum", "babble", "reverb")
TEST_ONLY_NOISES = ("music", "factory")
# synthetic families that may join training and validation only (never test, which keeps its grid byte for byte)
TRAIN_ONLY_NOISES = ("engine",)
CLEAN = "clean"  # the "noise type" of a mixture with no noise (noisy == clean): teaches the model to leave speech be
# where each split's share of a recorded training noise starts and ends, as fractions of each file's length
RECORDED_SPANS = {"train": (0.0, 0.75), "valid": (0.75, 0.85), "test": (0.85, 1.0)}


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
    max_seconds: float = 20.0  # longer clean files are cut at a pause (and lose their transcript)
    noise_dir: str | None = None  # recorded noises, one folder per type: <noise_dir>/<type>/*.wav|flac|ogg
    test_only_recorded: tuple[str, ...] = ()  # recorded types kept out of training and validation
    clean_fraction: float = 0.0  # share of train/valid mixtures with no noise at all (the target is the input)
    vary_recorded: float = 0.0  # share of train/valid recorded-noise mixtures whose noise is varied (vary_noise)
    pulse_recorded: float = 0.0  # share of train/valid recorded-noise mixtures whose noise comes in pulses (pulse_gate)
    train_only_noises: tuple[str, ...] = ()  # of TRAIN_ONLY_NOISES: types drawn in train/valid only
    train_only_recorded: tuple[str, ...] = ()  # recorded types kept out of test (which stays byte for byte the same)
    test_files_per_speaker: int = 0  # > 0: at most this many clean test files per speaker (a seeded choice)
    sample_rate: int = 22050
    seed: int = 0
    workers: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.train_noises + self.test_only_noises) - set(TRAIN_NOISES + TEST_ONLY_NOISES)
        if unknown:
            raise AudiovaeError(f"unknown noise type(s) {sorted(unknown)}; known: "
                                f"{', '.join(TRAIN_NOISES + TEST_ONLY_NOISES)}")
        for name in ("train_only_noises", "train_only_recorded"):  # each once
            object.__setattr__(self, name, tuple(dict.fromkeys(getattr(self, name))))
        unknown = set(self.train_only_noises) - set(TRAIN_ONLY_NOISES)
        if unknown:
            raise AudiovaeError(f"unknown training-only noise type(s) {sorted(unknown)}; known: "
                                f"{', '.join(TRAIN_ONLY_NOISES)}")
        if not self.snrs:
            raise AudiovaeError("NoisyCorpusConfig.snrs: give at least one SNR")
        if not self.train_noises:
            raise AudiovaeError("NoisyCorpusConfig.train_noises: give at least one noise type")
        if not 0.0 <= self.clean_fraction < 1.0:
            raise AudiovaeError(f"NoisyCorpusConfig.clean_fraction must be in [0, 1), got {self.clean_fraction}")
        for name in ("vary_recorded", "pulse_recorded"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise AudiovaeError(f"NoisyCorpusConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.test_only_recorded and not self.noise_dir:
            raise AudiovaeError("NoisyCorpusConfig.test_only_recorded names recorded noise types but no noise_dir "
                                "is given")
        if self.train_only_recorded and not self.noise_dir:
            raise AudiovaeError(f"training-only noise type(s) {sorted(self.train_only_recorded)}: not a synthetic "
                                f"family ({', '.join(TRAIN_ONLY_NOISES)}) and no noise folder to find them in")
        both = set(self.test_only_recorded) & set(self.train_only_recorded)
        if both:
            raise AudiovaeError(f"recorded noise type(s) {sorted(both)} both test-only and training-only")
        if self.max_seconds < 0.1:
            raise AudiovaeError(f"NoisyCorpusConfig.max_seconds must be at least 0.1 s, got {self.max_seconds}")


def split_train_only(names: tuple[str, ...] | list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Training-only noise types as ``(synthetic families, recorded types)``: a name that is not one of
    :data:`TRAIN_ONLY_NOISES` is a folder of the noise folder (``train_only_noises``, ``train_only_recorded``)."""
    return (tuple(n for n in names if n in TRAIN_ONLY_NOISES), tuple(n for n in names if n not in TRAIN_ONLY_NOISES))


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
    sex: str = ""
    recording: str = ""  # a recorded noise file, and the span of it this split may use (fractions of its length)
    span: tuple[float, float] = (0.0, 1.0)


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


def _room(sr: int, rng: np.random.Generator):  # noqa: ANN202 - pyroomacoustics.ShoeBox, imported lazily
    """A random shoebox room (RT60 0.3-0.9 s) with one source and one microphone, its response computed."""
    import pyroomacoustics as pra

    dims = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 4.0])
    rt60 = rng.uniform(0.3, 0.9)
    absorption, max_order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=sr, materials=pra.Material(absorption), max_order=min(max_order, 30))
    room.add_source(rng.uniform([0.5, 0.5, 1.0], dims - 0.5))
    room.add_microphone(rng.uniform([0.5, 0.5, 1.0], dims - 0.5))
    room.compute_rir()
    return room


def direct_path(room) -> int:  # noqa: ANN001 - a computed pyroomacoustics room
    """Sample index of the direct sound in ``room.rir[0][0]``, from the geometry.

    Not the loudest sample: in about one room in seven a cluster of early reflections (floor, a near wall) adds up
    louder than the direct sound and arrives up to tens of milliseconds later. The direct path is the shortest one,
    at ``distance / c`` plus the delay pyroomacoustics' fractional-delay filter adds; the peak is then looked up
    within a sample of it.
    """
    import pyroomacoustics as pra

    rir = np.abs(np.asarray(room.rir[0][0]))
    distance = float(np.linalg.norm(room.sources[0].position - room.mic_array.R[:, 0]))
    at = int(round(distance / room.c * room.fs)) + pra.constants.get("frac_delay_length") // 2
    lo = max(at - 1, 0)
    return lo + int(np.argmax(rir[lo: at + 2]))


def _reverberate(clean: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Clean speech in a random room, its direct sound at the clean's position, at the clean's RMS."""
    from scipy.signal import fftconvolve

    room = _room(sr, rng)
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    direct = direct_path(room)
    wet = fftconvolve(clean, rir[direct:] / abs(rir[direct]))[: clean.size]
    return (wet * rms(clean) / max(rms(wet), 1e-12)).astype(np.float32)


def cut_at_pause(wave: np.ndarray, sr: int, max_seconds: float) -> tuple[np.ndarray, bool]:
    """``(wave, True)`` when it fits in ``max_seconds``; else ``(head, False)`` cut in the middle of the quietest
    50 ms of the second half of the allowed length, so that speech is not cut mid-sound (the transcript is then
    incomplete). Limits under 0.1 s are plain cuts."""
    limit = int(max_seconds * sr)
    if wave.size <= limit:
        return wave, True
    hop = max(sr // 100, 1)  # 10 ms frames, energy averaged over windows of five
    n = limit // hop
    if n < 10:
        return wave[:limit], False
    frames = np.square(wave[: n * hop].astype(np.float64)).reshape(n, hop).mean(axis=1)
    windows = np.convolve(frames, np.ones(5) / 5, mode="valid")  # windows[i]: frames i..i+4, no zero padding
    quietest = n // 2 + int(np.argmin(windows[n // 2:]))
    return wave[: (quietest + 3) * hop], False


def recorded_span(noise: np.ndarray, span: tuple[float, float], min_samples: int = 1) -> np.ndarray:
    """The part of a recorded noise that one split may use: ``span`` as fractions of its length (never empty)."""
    lo, hi = (int(round(f * noise.size)) for f in span)
    return noise[lo: max(hi, lo + min_samples)] if noise.size else noise


def recorded_noises(noise_dir: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Recorded noise files by type: ``<noise_dir>/<type>/**/<audio>`` (the type is the first folder level).

    A type's name may not be one of the built-in noise types, so a row of the evaluation names one thing."""
    from ..layouts import AUDIO_EXTENSIONS

    root = Path(noise_dir)
    if not root.is_dir():
        raise AudiovaeError(f"{root}: no such noise folder (expected one folder of recordings per noise type)")
    types: dict[str, list[str]] = {}
    for folder in sorted(d for d in root.iterdir() if d.is_dir()):
        files = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
        if not files:
            continue
        if folder.name in TRAIN_NOISES + TEST_ONLY_NOISES + TRAIN_ONLY_NOISES + (CLEAN,):
            raise AudiovaeError(f"{folder}: {folder.name!r} is a built-in noise type; rename the folder")
        types[folder.name] = files
    if not types:
        raise AudiovaeError(f"{root}: no recorded noise found (expected <type>/<audio files> inside)")
    return types


def _load(path: str, sr: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return audio.load(path, sr)[0].numpy()


def _mix(job: _Job, out: Path, cfg: NoisyCorpusConfig) -> tuple[Entry | None, str]:
    """Worker: one mixture and its clean target written; returns the manifest entry or ``"path: reason"``."""
    sr = cfg.sample_rate
    try:
        clean, whole = cut_at_pause(_load(job.source, sr), sr, cfg.max_seconds)
        rng = np.random.default_rng(job.seed)
        n = clean.size
        speech = clean
        if job.noise == CLEAN:
            noise = np.zeros_like(clean)
        elif job.recording:
            noise = recorded_span(_load(job.recording, sr), job.span)
            # a generator of its own, so that a corpus without variation draws exactly what it drew before
            vary = np.random.default_rng([job.seed, 1])
            if job.split != "test" and vary.random() < cfg.vary_recorded:
                noise = vary_noise(noise, sr, vary)
            noise = audible_crop(noise, n, rng)
            pulse = np.random.default_rng([job.seed, 2])  # its own too: corpora without pulses are unchanged
            if job.split != "test" and pulse.random() < cfg.pulse_recorded:
                noise = pulse_gate(noise, sr, pulse)
        elif job.noise in NOISE_COLOURS:
            noise = coloured_noise(n, NOISE_COLOURS[job.noise], rng)
        elif job.noise == "hum":
            noise = mains_hum(n, sr, rng)
        elif job.noise == "engine":
            noise = engine_noise(n, sr, rng)
        elif job.noise == "babble":
            noise = sum(fit_length(_load(p, sr), n, rng) for p in job.babble)
        elif job.noise == "reverb":
            speech = _reverberate(clean, sr, rng)
            noise = coloured_noise(n, 1.0, rng)
        elif job.noise == "music":
            noise = audible_crop(_load(job.music, sr), n, rng) if job.music else _synth_music(n, sr, rng)
        else:
            noise = factory_noise(n, sr, rng)
        # the SNR is set on the additive noise; for reverb the reverberant tail is part of the degradation and the
        # target stays the dry speech
        mixture = speech if job.noise == CLEAN else speech + noise_gain(speech, noise, job.snr) * noise
        scale = peak_scale(mixture)
        noisy_path = out / "noisy" / job.split / f"{job.name}.wav"
        clean_path = out / "clean" / job.split / f"{job.name}.wav"
        audio.save(noisy_path, mixture * scale, sr)
        audio.save(clean_path, clean * scale, sr)
    except (AudiovaeError, ValueError) as e:
        return None, f"{job.source}: {e}"
    return Entry(path=str(noisy_path.relative_to(out)), duration=round(n / sr, 4), split=job.split,
                 speaker=job.speaker, sex=job.sex, text=job.text if whole else "",
                 clean=str(clean_path.relative_to(out)), noise=job.noise,
                 snr=None if job.noise == CLEAN else job.snr), ""


def real_voice(cfg: NoisyCorpusConfig, test_files: int) -> list[Entry]:
    """festvox-ru's recordings as clean speech of speaker ``ru_nsh``.

    5 % go to valid and ``test_files`` to test (as many as the synthetic voices have, so that neither group
    dominates the test mean; at most a fifth of the recordings, and a fifth when there are no synthetic test files),
    chosen by a seeded hash of the file name; the rest train.
    """
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
    fifth = held_out_count(len(wavs), 0.2)
    n_test = min(test_files, fifth) if test_files else fifth
    n_valid = held_out_count(len(wavs), 0.05) if len(wavs) > n_test + 1 else 0
    split = ranked_splits([w.stem for w in wavs], n_test, n_valid, cfg.seed)
    return [Entry(path=str(w), duration=0.0, split=split[w.stem], speaker=REAL_SPEAKER,
                  text=texts.get(w.stem, "")) for w in wavs]


def _clean_sources(cfg: NoisyCorpusConfig, out: Path, progress: bool) -> list[Entry]:
    if cfg.clean:
        from ..layouts import discover

        sources = limit_test_files(discover(cfg.clean), cfg.test_files_per_speaker, cfg.seed)
    else:
        from .speech import SpeechCorpusConfig, build_speech_corpus

        build_speech_corpus(out / "speech", SpeechCorpusConfig(sentences=cfg.clean_sentences, seed=cfg.seed,
                                                               workers=cfg.workers), progress=progress)
        manifest = out / "speech" / "manifest.jsonl"
        sources = [Entry(**{**vars(e), "path": str(resolve(manifest, e.path))}) for e in read_manifest(manifest)]
        sources = limit_test_files(sources, cfg.test_files_per_speaker, cfg.seed)
    if not cfg.real_voice:
        return sources
    return sources + real_voice(cfg, sum(e.split == "test" for e in sources))


def limit_test_files(entries: list[Entry], per_speaker: int, seed: int) -> list[Entry]:
    """At most ``per_speaker`` test files per speaker (``0``: all), chosen by a seeded hash of their paths; the
    other test files are dropped, not moved to training, so held-out speakers stay held out."""
    if per_speaker <= 0:
        return entries
    by_speaker: dict[str, list[str]] = {}
    for e in entries:
        if e.split == "test":
            by_speaker.setdefault(e.speaker, []).append(e.path)
    keep = set()
    for paths in by_speaker.values():
        chosen = ranked_splits(paths, min(per_speaker, len(paths)), 0, seed)
        keep |= {p for p, split in chosen.items() if split == "test"}
    return [e for e in entries if e.split != "test" or e.path in keep]


def _music_files(cfg: NoisyCorpusConfig) -> list[str]:
    if not cfg.music:
        return []
    manifest = Path(cfg.music) / "manifest.jsonl"
    return [str(resolve(manifest, e.path)) for e in read_manifest(manifest)]


def _sentence_key(e: Entry) -> str:
    return " ".join(e.text.lower().split())


class _BabblePools:
    """Who may be talked over whom in one split: other speakers reading other sentences (by transcript; files with
    no transcript are kept apart by speaker only)."""

    def __init__(self, items: list[Entry]) -> None:
        self.items = items
        self.keys = [_sentence_key(e) for e in items]

    def pool(self, target: Entry) -> list[Entry]:
        key = _sentence_key(target)
        return [e for e, k in zip(self.items, self.keys, strict=True)
                if e.speaker != target.speaker and not (key and k == key)]


def babble_sources(pool: list[Entry], rng: np.random.Generator, k: int = 4) -> list[str]:
    """``k`` files of ``pool``, from ``k`` different speakers where there are that many (else spread over those)."""
    by_speaker: dict[str, list[str]] = {}
    for e in pool:
        by_speaker.setdefault(e.speaker, []).append(e.path)
    speakers = [sorted(by_speaker)[int(i)] for i in rng.permutation(len(by_speaker))]
    picks: list[str] = []
    while len(picks) < min(k, len(pool)):
        for s in speakers:
            left = [p for p in by_speaker[s] if p not in picks]
            if left and len(picks) < k:
                picks.append(left[int(rng.integers(len(left)))])
    return picks


def noise_snr_grid(noises: tuple[str, ...], snrs: tuple[float, ...],
                   rng: np.random.Generator) -> list[tuple[str, float]]:
    """Every (noise, SNR) cell once, ordered so that any ``N = len(noises)`` consecutive cells hold every noise type
    and any ``2 S`` (``S = len(snrs)``) every SNR: cell ``j`` is noise ``j mod N`` and SNR ``(j + j // lcm(N, S)) mod
    S`` (the shift per block of ``lcm`` cells reaches the pairs a plain diagonal misses), in seeded orders."""
    n, s = len(noises), len(snrs)
    block = math.lcm(n, s)
    pn, ps = rng.permutation(n), rng.permutation(s)
    return [(noises[pn[j % n]], snrs[ps[(j + j // block) % s]]) for j in range(n * s)]


def _plan(sources: list[Entry], cfg: NoisyCorpusConfig, music: list[str],
          recorded: dict[str, list[str]] | None = None) -> list[_Job]:
    """Assign every clean file its noise type(s) and SNR(s).

    Train and valid draw both at random. Test walks :func:`noise_snr_grid` over its mixtures speaker by speaker, so the
    whole test set meets every noise type at every SNR equally often, and each speaker's consecutive run of mixtures
    (a dozen are enough for the default 8 noise types x 6 SNRs) meets every noise type and every SNR: no speaker's
    score is tied to an SNR, no noise type's to an SNR mix. Babble is other speakers reading other sentences; a file
    with nobody else in its split to babble gets the next cell (test) or another noise type (train). Recorded types
    (``recorded``: type -> files) join the built-in ones; those in ``cfg.test_only_recorded`` only in test, those in
    ``cfg.train_only_noises`` and ``cfg.train_only_recorded`` only in train and valid (test is planned first, so they
    leave it unchanged). A share ``cfg.clean_fraction`` of train and valid mixtures carries no noise.
    """
    recorded = recorded or {}
    for kind, names in (("test-only", cfg.test_only_recorded), ("training-only", cfg.train_only_recorded)):
        unknown = set(names) - set(recorded)
        if unknown:
            families = f" (synthetic families: {', '.join(TRAIN_ONLY_NOISES)})" if kind == "training-only" else ""
            raise AudiovaeError(f"{kind} recorded noise type(s) {sorted(unknown)} not found; the noise folder has: "
                                f"{', '.join(sorted(recorded)) or 'none'}{families}")
    kept_apart = cfg.test_only_recorded + cfg.train_only_recorded
    recorded_train = tuple(t for t in sorted(recorded) if t not in kept_apart)
    rng = np.random.default_rng(cfg.seed)
    music_rng = np.random.default_rng([cfg.seed, 1])  # its own stream: --music changes nothing but the music
    by_split: dict[str, list[Entry]] = {}
    for e in sorted(sources, key=lambda e: (e.speaker, e.path)):
        by_split.setdefault(e.split, []).append(e)
    jobs: list[_Job] = []
    for split, items in sorted(by_split.items()):
        all_noises = cfg.train_noises + recorded_train + (
            cfg.test_only_noises + tuple(cfg.test_only_recorded) if split == "test"
            else cfg.train_only_noises + tuple(cfg.train_only_recorded))
        per_file = {"train": cfg.mixtures_per_file, "test": cfg.test_mixtures_per_file}.get(split, 1)
        pools = _BabblePools(items)
        grid, k = noise_snr_grid(all_noises, cfg.snrs, rng), 0
        for e in items:
            pool = pools.pool(e) if "babble" in all_noises else []
            noises = all_noises if pool else tuple(n for n in all_noises if n != "babble")
            if not noises:
                raise AudiovaeError(f"{e.path}: babble is the only noise type and no other speaker of the {split} "
                                    "split reads another sentence")
            for m in range(per_file):
                if split == "test":
                    while grid[k % len(grid)][0] not in noises:
                        k += 1
                    (noise, snr), k = grid[k % len(grid)], k + 1
                else:
                    noise, snr = noises[int(rng.integers(len(noises)))], cfg.snrs[int(rng.integers(len(cfg.snrs)))]
                    if cfg.clean_fraction and rng.random() < cfg.clean_fraction:
                        noise = CLEAN
                babble = babble_sources(pool, rng) if noise == "babble" else []
                song = music[int(music_rng.integers(len(music)))] if music and noise == "music" else ""
                recording, span = "", (0.0, 1.0)
                if noise in recorded:
                    files = recorded[noise]
                    recording = files[int(rng.integers(len(files)))]
                    span = (0.0, 1.0) if noise in cfg.test_only_recorded else RECORDED_SPANS[split]
                jobs.append(_Job(name=f"{e.speaker}_{Path(e.path).stem}_{m}", source=e.path, speaker=e.speaker,
                                 text=e.text, split=split, noise=noise, snr=float(snr),
                                 seed=cfg.seed * 1_000_003 + len(jobs), babble=babble, music=song, sex=e.sex,
                                 recording=recording, span=span))
    return jobs


def build_noisy_corpus(out_dir: str | os.PathLike[str], config: NoisyCorpusConfig = NoisyCorpusConfig(),
                       progress: bool = True) -> CorpusSummary:
    """Build the corpus into ``out_dir`` (``noisy/``, ``clean/``, ``manifest.jsonl``, ``summary.json``)."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    recorded = recorded_noises(config.noise_dir) if config.noise_dir else {}
    jobs = _plan(_clean_sources(config, out, progress), config, _music_files(config), recorded)
    for split in {j.split for j in jobs}:
        for kind in ("noisy", "clean"):
            (out / kind / split).mkdir(parents=True, exist_ok=True)
    entries, skipped = [], []
    for entry, error in render_in_processes(_mix, jobs, out, config, config.workers, "mixing", "file", progress,
                                            chunksize=8):
        if entry is None:
            skipped.append(error)
        else:
            entries.append(entry)
    write_manifest(out / "manifest.jsonl", entries)
    summary = CorpusSummary.from_entries("noisy", entries, group="noise", skipped=skipped,
                                         build_seconds=time.perf_counter() - t0)
    summary.write(out / "summary.json")
    return summary


def composition(entries: list[Entry]) -> str:
    """Markdown tables of what a noisy corpus holds, measured from its manifest: per split, then per test speaker."""
    def counts(values: list) -> str:
        c = Counter(values)
        return ", ".join(f"{k:g}: {c[k]}" if isinstance(k, float) else f"{k}: {c[k]}" for k in sorted(c))

    lines = ["| split | mixtures | hours | speakers | real voice | noise types | SNRs (dB) | reverb |",
             "| --- | ---: | ---: | --- | ---: | --- | --- | ---: |"]
    for split in ("train", "valid", "test"):
        es = [e for e in entries if e.split == split]
        if not es:
            continue
        real = sum(e.speaker == REAL_SPEAKER for e in es)
        reverb = sum(e.noise == "reverb" for e in es)
        lines.append(f"| {split} | {len(es)} | {sum(e.duration for e in es) / 3600:.2f} | "
                     f"{len({e.speaker for e in es})} | {real / len(es):.0%} | {counts([e.noise for e in es])} | "
                     f"{counts([e.snr for e in es if e.snr is not None])} | {reverb / len(es):.0%} |")
    test = [e for e in entries if e.split == "test"]
    if test:
        lines += ["", "| test speaker | mixtures | noise types met | SNRs met | mean SNR (dB) |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for spk in sorted({e.speaker for e in test}):
            es = [e for e in test if e.speaker == spk]
            snrs = [e.snr for e in es if e.snr is not None]
            lines.append(f"| {spk} | {len(es)} | {len({e.noise for e in es})} | {len(set(snrs))} | "
                         f"{np.mean(snrs) if snrs else float('nan'):.1f} |")
    return "\n".join(lines)
