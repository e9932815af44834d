"""Parallel multi-speaker English speech corpus, synthesised offline by Debian's festival, flite and espeak-ng voices.

Every speaker reads the same sentences, so voice conversion can be trained and scored on parallel data without
downloading a recording. The text is the 720 Harvard sentences (IEEE Recommended Practice for Speech Quality
Measurements, 1969; public domain), bundled as ``audiovae/assets/harvard_sentences.txt``: the output of
``Rscript -e 'writeLines(stringr::sentences)'`` (Debian ``r-cran-stringr`` 1.5.0), so R is not needed at run time.
Sentence numbers in file names start at 1 and follow that file.

Speakers are Debian's voices plus derived ones: the engine's intonation target moved to another mean F0, then the
audio resampled as ``sox speed`` does, which scales formants (vocal-tract length), pitch and tempo together.
The default set is the eight voices the bundled voice-conversion model knows; ``extended`` (:data:`SPEAKER_SETS`)
adds sixteen more (derived voices and espeak-ng's formant voices) for models that must generalise to voices they
never heard (one-shot conversion). None of the added ones is derived from ked or festival's slt, so those two can
be left out of training as unheard voices.
Each engine process synthesises a chunk of sentences of one speaker; ``workers`` of them run at once.

Every file is resampled (soxr HQ), cut to exactly 0.1 s of silence before the first and after the last loud 10 ms
frame (within 40 dB of the loudest) and peak-normalised to -3 dBFS, so a rebuild gives byte-identical WAVs and
manifest; only ``summary.json`` differs (its build time). Splits are by sentence: a sentence held out for
valid or test is never read in train, by any speaker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ... import audio
from ...errors import AudiovaeError, ConfigError
from ...fileio import OutputError
from ...progress import bar_off
from ..layouts import held_out_count, ranked_splits
from ..manifest import CorpusSummary, Entry, write_manifest

__all__ = ["SpeechCorpusConfig", "Voice", "VOICES", "DEFAULT_SPEAKERS", "SPEAKER_SETS", "available_speakers",
           "harvard_sentences", "sentence_splits", "check_voices", "build_speech_corpus"]

SENTENCES_FILE = Path(__file__).resolve().parents[2] / "assets" / "harvard_sentences.txt"
PEAK_DBFS = -3.0
NO_SPEECH_DBFS = -40.0  # engine output peaking below this is noise (flite's for empty text peaks at -50); speech: > -15
TRIM_DB = 40.0  # frames this far below the loudest one count as silence
MARGIN_SECONDS = 0.1  # silence kept before the first and after the last loud frame
CHUNK = 40  # sentences per engine process: amortises festival's start-up, small enough to balance the workers
FESTIVAL_MODEL_F0 = (170, 34)  # the f2b intonation model's own mean and std (Hz), as the diphone voices declare it


@dataclass(frozen=True)
class Voice:
    """How to synthesise one speaker.

    Attributes:
        engine: ``festival``, ``flite`` or ``espeak-ng`` (the executable).
        name: festival voice (``voice_NAME``), flite ``-voice NAME`` or espeak-ng ``-v NAME`` (``en-us+VARIANT``).
        package: the Debian package that provides it.
        about: who it sounds like.
        f0: intonation target ``(mean, std)`` in Hz; ``None`` keeps the voice's own.
        speed: resampling factor applied after synthesis, like ``sox speed``: above 1 raises formants and pitch and
            shortens the file.
        sex: how the voice is heard (``male`` or ``female``): for derived voices, after the change of register.
    """

    engine: str
    name: str
    package: str
    about: str
    f0: tuple[float, float] | None = None
    speed: float = 1.0
    sex: str = "male"

    def describe(self) -> str:
        how = f"{self.engine} voice {self.name}"
        if self.f0:
            how += f", F0 target {self.f0[0]:g} Hz"
        if self.speed != 1.0:
            how += f", speed x{self.speed:g}"
        return f"{self.about} ({how})"


VOICES: dict[str, Voice] = {
    "kal": Voice("festival", "kal_diphone", "festvox-kallpc16k", "American male, diphone"),
    "ked": Voice("festival", "ked_diphone", "festvox-kdlpc16k", "American male, diphone"),
    "slt": Voice("festival", "cmu_us_slt_arctic_hts", "festvox-us-slt-hts", "American female, HMM (HTS)",
                 sex="female"),
    "awb": Voice("flite", "awb", "flite", "Scottish male, clustergen"),
    "rms": Voice("flite", "rms", "flite", "American male, clustergen"),
    "kal_hi": Voice("festival", "kal_diphone", "festvox-kallpc16k", "high voice derived from kal (F0 ~190 Hz, "
                    "formants +10%)", f0=(175, 30), speed=1.1, sex="female"),
    "awb_hi": Voice("flite", "awb", "flite", "higher Scottish voice derived from awb (F0 ~160 Hz, formants +8%)",
                    f0=(150, 20), speed=1.08),
    "slt_lo": Voice("flite", "slt", "flite", "low voice derived from flite's slt (F0 ~115 Hz, formants -10%)",
                    f0=(130, 15), speed=0.9),
}
DEFAULT_SPEAKERS = tuple(VOICES)


_KAL16 = Voice("flite", "kal16", "flite", "American male, flite's diphone kal (another engine than kal)")


def _derived(base: str, about: str, f0: tuple[float, float] | None, speed: float, sex: str = "male") -> Voice:
    voice = _KAL16 if base == "kal16" else VOICES[base]
    return Voice(voice.engine, voice.name, voice.package, f"{about} derived from {base}", f0, speed, sex)


def _espeak(variant: str, about: str, sex: str = "male") -> Voice:
    return Voice("espeak-ng", f"en-us+{variant}", "espeak-ng", f"{about}, espeak-ng formant voice", sex=sex)


EXTENDED_VOICES: dict[str, Voice] = {
    "kal_lo": _derived("kal", "low voice", (92, 12), 0.92),
    "kal_mid": _derived("kal", "male voice", (128, 22), 1.05),
    "kal_f": _derived("kal", "high voice", (205, 32), 1.18, "female"),
    "kal16": _KAL16,
    "kal16_hi": _derived("kal16", "high voice", (195, 30), 1.14, "female"),
    "awb_lo": _derived("awb", "low Scottish voice", (88, 10), 0.92),
    "awb_f": _derived("awb", "high Scottish voice", (195, 28), 1.15, "female"),
    # flite's rms keeps its own F0 model (an F0 target changes nothing): its derived voices differ by speed only
    "rms_lo": _derived("rms", "lower American voice", None, 0.93),
    "rms_hi": _derived("rms", "higher American voice", None, 1.06),
    "rms_short": _derived("rms", "American voice with a short vocal tract", None, 1.16),
    "es_m1": _espeak("m1", "male"),
    "es_m3": _espeak("m3", "male"),
    "es_m6": _espeak("m6", "male"),
    "es_f1": _espeak("f1", "female", "female"),
    "es_f3": _espeak("f3", "female", "female"),
    "es_f5": _espeak("f5", "female", "female"),
}
VOICES |= EXTENDED_VOICES
SPEAKER_SETS: dict[str, tuple[str, ...]] = {"default": DEFAULT_SPEAKERS, "extended": tuple(VOICES)}


@dataclass(frozen=True)
class SpeechCorpusConfig:
    """What to build. Splits are by sentence (seeded), ``holdout_speaker`` puts all of one speaker in test."""

    sentences: int = 720
    speakers: tuple[str, ...] = DEFAULT_SPEAKERS
    sample_rate: int = 22050
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    holdout_speaker: str | None = None
    seed: int = 0
    workers: int = 0  # 0 = os.cpu_count()

    def __post_init__(self) -> None:
        unknown = [s for s in self.speakers if s not in VOICES]
        if unknown:
            raise ConfigError(f"unknown speaker(s) {', '.join(unknown)}; known: {', '.join(VOICES)}")
        if not self.speakers or len(set(self.speakers)) != len(self.speakers):
            raise ConfigError(f"speakers: give at least one, each once (got {list(self.speakers)})")
        if self.holdout_speaker is not None and self.holdout_speaker not in self.speakers:
            raise ConfigError(f"holdout_speaker {self.holdout_speaker!r} is not one of the speakers "
                              f"({', '.join(self.speakers)})")
        if not 1 <= self.sentences <= 720:
            raise ConfigError(f"sentences must be in 1..720 (the Harvard sentences), got {self.sentences}")
        if self.sample_rate < 8000:
            raise ConfigError(f"sample_rate must be at least 8000 Hz, got {self.sample_rate}")
        if not (0 <= self.valid_fraction < 1 and 0 <= self.test_fraction < 1):
            raise ConfigError("valid_fraction and test_fraction must be in [0, 1)")
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0 (0 = one per CPU), got {self.workers}")


def available_speakers() -> dict[str, str]:
    """Speaker name -> how it is made (engine, voice, derivation)."""
    return {name: v.describe() for name, v in VOICES.items()}


def harvard_sentences() -> list[str]:
    """The 720 bundled Harvard sentences, in list order."""
    return SENTENCES_FILE.read_text(encoding="utf-8").splitlines()


def sentence_splits(config: SpeechCorpusConfig) -> dict[int, str]:
    """Sentence number -> split, ranked by a seeded hash: the same on every machine and numpy version."""
    n = config.sentences
    n_test, n_valid = held_out_count(n, config.test_fraction), held_out_count(n, config.valid_fraction)
    if n_test + n_valid >= n:
        raise ConfigError(f"{n} sentence(s) leave none for train with valid_fraction={config.valid_fraction} "
                          f"and test_fraction={config.test_fraction}")
    splits = ranked_splits([str(i) for i in range(1, n + 1)], n_test, n_valid, config.seed)
    return {i: splits[str(i)] for i in range(1, n + 1)}


def _installed_voices(engine: str) -> set[str]:
    """Ask the engine itself, so the check holds wherever the distribution puts its voices."""
    if engine == "festival":
        out = subprocess.run(["festival", "-b", "(print (voice.list))"], capture_output=True, text=True, timeout=60)
        return set(_last_line(out.stdout).strip("()").split())
    if engine == "espeak-ng":  # variants are files !v/NAME; a voice is en-us+NAME
        out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, timeout=60)
        return {f"en-us+{line.split()[-1].removeprefix('!v/')}" for line in out.stdout.splitlines()[1:] if line.split()}
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=60)
    return set(out.stdout.partition(":")[2].split())


def check_voices(speakers: tuple[str, ...]) -> None:
    """Raise a one-line ``AudiovaeError`` naming the Debian package for a missing engine or voice."""
    for engine in sorted({VOICES[s].engine for s in speakers}):
        if shutil.which(engine) is None:
            raise AudiovaeError(f"{engine} is not installed (needed by the speech corpus): apt-get install {engine}")
        installed = _installed_voices(engine)
        for speaker in speakers:
            v = VOICES[speaker]
            if v.engine == engine and v.name not in installed:
                raise AudiovaeError(f"{engine} voice {v.name} (speaker {speaker}) is not installed: "
                                    f"apt-get install {v.package}")


def _scheme_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _why(p: subprocess.CompletedProcess[str], engine: str) -> str:
    if p.returncode < 0:
        return f"{engine} crashed (signal {-p.returncode})"
    return f"{engine}: {_last_line(p.stderr) or f'no audio (exit status {p.returncode})'}"


def _festival_once(voice: Voice, jobs: list[tuple[str, Path]]) -> str:
    """One festival process over ``jobs``; returns why a file it did not write is missing."""
    # kal's after-synthesis hook boosts x2.6 in 16 bits and clips loud (raised-F0) sentences; files are normalised later
    lines = [f"(voice_{voice.name})", "(set! after_synth_hooks nil)"]
    if voice.f0:
        lines.append(f"(set! int_lr_params '((target_f0_mean {voice.f0[0]}) (target_f0_std {voice.f0[1]}) "
                     f"(model_f0_mean {FESTIVAL_MODEL_F0[0]}) (model_f0_std {FESTIVAL_MODEL_F0[1]})))")
    # unwind-protect: a Scheme error in one sentence does not stop the others
    lines += [f"(unwind-protect (utt.save.wave (utt.synth (Utterance Text {_scheme_string(text)})) "
              f"{_scheme_string(str(path))} 'riff) nil)" for text, path in jobs]
    script = jobs[0][1].with_suffix(".scm")
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        p = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True,
                           timeout=60 + 10 * len(jobs), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return "festival: timed out"
    return _why(p, "festival")


def _run_festival(voice: Voice, jobs: list[tuple[str, Path]]) -> dict[Path, str]:
    """Festival processes over the chunk, in order; after a crash (it segfaults on empty text, for one) the first
    missing sentence is blamed and a fresh process takes the rest."""
    failed = {}
    pending = jobs
    while pending:
        reason = _festival_once(voice, pending)
        missing = [k for k, (_, path) in enumerate(pending) if not path.is_file()]
        if not missing:
            break
        failed[pending[missing[0]][1]] = reason
        pending = [job for job in pending[missing[0] + 1:] if not job[1].is_file()]
    return failed


def _run_each(engine: str, jobs: list[tuple[str, Path]], command: Callable[[str, Path], list[str]]
              ) -> dict[Path, str]:
    """One ``engine`` process per sentence (flite and espeak-ng start in milliseconds and write one file per run);
    returns why each file it did not write is missing."""
    failed = {}
    for text, path in jobs:
        try:
            p = subprocess.run(command(text, path), capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL)
            reason = _why(p, engine)
        except subprocess.TimeoutExpired:
            reason = f"{engine}: timed out"
        if not path.is_file():
            failed[path] = reason
    return failed


def _run_flite(voice: Voice, jobs: list[tuple[str, Path]]) -> dict[Path, str]:
    setf = ["--setf", f"int_f0_target_mean={voice.f0[0]}", "--setf", f"int_f0_target_stddev={voice.f0[1]}"] \
        if voice.f0 else []
    return _run_each("flite", jobs, lambda text, path: ["flite", "-voice", voice.name, *setf, "-t", text, "-o",
                                                        str(path)])


def _run_espeak(voice: Voice, jobs: list[tuple[str, Path]]) -> dict[Path, str]:
    return _run_each("espeak-ng", jobs, lambda text, path: ["espeak-ng", "-v", voice.name, "-w", str(path), text])


_ENGINES = {"festival": _run_festival, "flite": _run_flite, "espeak-ng": _run_espeak}


def _trim(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cut leading and trailing silence and pad with zeros, so every file has the same margin before the first and
    after the last loud frame, whatever silence the engine left."""
    hop = sample_rate // 100
    frames = wave[: len(wave) // hop * hop].reshape(-1, hop)
    energy = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    loud = np.flatnonzero(energy >= energy.max() * 10 ** (-TRIM_DB / 20))
    margin = round(MARGIN_SECONDS * sample_rate)
    return np.pad(wave, margin)[loud[0] * hop: (loud[-1] + 1) * hop + 2 * margin]


def _finish(raw: Path, voice: Voice, sample_rate: int) -> np.ndarray:
    """Engine output -> corpus audio: speed change and resampling in one soxr pass, trim, peak to -3 dBFS."""
    info = audio.info(raw)
    if info.peak_dbfs < NO_SPEECH_DBFS:
        raise audio.AudioError(f"{voice.engine} produced no speech (peak {info.peak_dbfs:.0f} dBFS)")
    wave, rate = audio.load(raw, min_samples=info.sample_rate // 10)
    wave = audio.resample(wave.numpy(), round(rate * voice.speed), sample_rate)
    wave = _trim(wave, sample_rate)
    return (wave * (10 ** (PEAK_DBFS / 20) / np.abs(wave).max())).astype(np.float32)


def _wav_path(speaker: str, number: int) -> str:
    """Path of a file relative to the corpus folder."""
    return f"wav/{speaker}/{speaker}_{number:04d}.wav"


def _synthesise_chunk(out: Path, speaker: str, chunk: list[tuple[int, str]],
                      sample_rate: int) -> tuple[dict[int, float], list[str]]:
    """Synthesise, finish and save one speaker's chunk; returns durations by sentence number and skipped files."""
    voice = VOICES[speaker]
    durations, skipped = {}, []
    with tempfile.TemporaryDirectory(prefix=f"audiovae-{speaker}-") as tmp:
        raw = {i: Path(tmp) / f"{i:04d}.wav" for i, _ in chunk}
        failed = _ENGINES[voice.engine](voice, [(text, raw[i]) for i, text in chunk])
        for i, _ in chunk:
            rel = _wav_path(speaker, i)
            try:
                if raw[i] in failed:
                    raise audio.AudioError(failed[raw[i]])
                wave = _finish(raw[i], voice, sample_rate)
            except audio.AudioError as e:
                skipped.append(f"{rel}: {str(e).replace(str(raw[i]), 'engine output')}")
                (out / rel).unlink(missing_ok=True)  # a file from an earlier build would contradict the manifest
                continue
            audio.save(out / rel, wave, sample_rate)
            durations[i] = round(len(wave) / sample_rate, 4)
    return durations, skipped


def _make_folders(out: Path, speakers: tuple[str, ...]) -> None:
    try:
        for s in speakers:
            (out / "wav" / s).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{out}: cannot create the corpus folder ({e.strerror})") from None


def _synthesise_all(out: Path, texts: list[str], config: SpeechCorpusConfig,
                    progress: bool) -> tuple[dict[str, dict[int, float]], list[str]]:
    """Every (chunk, speaker) job on ``workers`` threads; returns durations by speaker and sentence, and skips."""
    numbered = list(enumerate(texts, 1))
    chunks = [numbered[k: k + CHUNK] for k in range(0, len(numbered), CHUNK)]
    durations: dict[str, dict[int, float]] = {s: {} for s in config.speakers}
    skipped = []
    # threads suffice: the engines, which do most of the work, run as subprocesses
    with ThreadPoolExecutor(config.workers or os.cpu_count() or 1) as pool, \
            tqdm(total=len(texts) * len(config.speakers), desc="speech corpus", unit="file",
                 disable=bar_off(progress)) as bar:
        futures = {pool.submit(_synthesise_chunk, out, s, c, config.sample_rate): (s, len(c))
                   for c in chunks for s in config.speakers}
        try:
            for future in as_completed(futures):
                speaker, n = futures[future]
                done, failed = future.result()
                durations[speaker] |= done
                skipped += failed
                bar.update(n)
        except BaseException:  # an output error or Ctrl-C: do not wait for the queued jobs
            for future in futures:
                future.cancel()
            raise
    return durations, sorted(skipped)


def build_speech_corpus(out_dir: str | os.PathLike[str], config: SpeechCorpusConfig = SpeechCorpusConfig(),
                        progress: bool = True) -> CorpusSummary:
    """Build ``OUT/wav/<speaker>/<speaker>_<nnnn>.wav``, ``OUT/manifest.jsonl`` and ``OUT/summary.json``.

    Files that fail to synthesise are listed in ``summary.skipped`` and left out; a missing engine or voice raises
    :class:`AudiovaeError` before any work, naming the Debian package to install.
    """
    start = time.perf_counter()
    out = Path(out_dir)
    splits = sentence_splits(config)
    check_voices(config.speakers)
    _make_folders(out, config.speakers)
    texts = harvard_sentences()[: config.sentences]
    durations, skipped = _synthesise_all(out, texts, config, progress)
    entries = [Entry(path=_wav_path(speaker, i), duration=d, speaker=speaker, text=texts[i - 1],
                     split="test" if speaker == config.holdout_speaker else splits[i])
               for speaker, by_sentence in durations.items() for i, d in by_sentence.items()]
    write_manifest(out / "manifest.jsonl", entries)
    summary = CorpusSummary.from_entries("speech", entries, skipped=skipped, build_seconds=time.perf_counter() - start)
    summary.write(out / "summary.json")
    return summary
