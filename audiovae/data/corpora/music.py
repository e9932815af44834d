"""Music corpus for the music VAE: music21's bundled scores, General-MIDI instruments, rendered by fluidsynth.

Everything is offline and ships with packages: the scores with music21 (Bach chorales, folk tunes from the Essen,
O'Neill, Aird and Ryan collections, Palestrina, Monteverdi, trecento music, string quartets and piano pieces), the
instruments with a General-MIDI soundfont from Debian (``fluid-soundfont-gm``, or the small ``timgm6mb-soundfont``).

Pieces are drawn in turn from four styles (chorales, folk, early, classical) and within a style in turn from its
collections, so that the 8,500 Essen folk songs do not drown the 70 quartet movements; each piece gets one
instrument, dealt from a shuffled deck so that every instrument gets its share. Long pieces keep their opening
``max_piece_seconds``, cut at a bar line. The order depends on ``seed`` only, and results are consumed in that order
whatever the number of workers, so a rerun gives identical bytes (for one music21 and fluidsynth version).
Splits are by piece: a piece and all its audio are in exactly one split.
"""

from __future__ import annotations

import functools
import io
import itertools
import multiprocessing
import os
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from ... import audio
from ...errors import AudiovaeError, ConfigError
from ...progress import bar_off
from ..manifest import CorpusSummary, Entry, write_manifest

if TYPE_CHECKING:
    import music21
    import pretty_midi

__all__ = ["MusicCorpusConfig", "Piece", "build_music_corpus", "catalogue", "piece_order", "find_soundfont",
           "program", "score_midi", "PROGRAMS", "STYLES", "SOUNDFONT_PATHS"]

# music21 collections by style. Left out: josquin (each ABC tune is one voice of a piece), theory exercises, demos,
# lead sheets, twentieth-century pieces (Schoenberg, Webern) and the Roman-numeral analyses (.rntxt).
STYLES: dict[str, tuple[str, ...]] = {
    "chorales": ("bach",),
    "folk": ("essenFolksong", "oneills1850", "airdsAirs", "ryansMammoth", "miscFolk"),
    "early": ("palestrina", "monteverdi", "trecento", "ciconia", "luca", "lusitano"),
    "classical": ("beethoven", "mozart", "haydn", "handel", "corelli", "cpebach", "schubert", "schumann_robert",
                  "schumann_clara", "chopin", "weber", "beach", "joplin"),
}
# Instrument names -> General-MIDI program (0-based). Any other GM name pretty_midi knows is accepted as well.
PROGRAMS = {"piano": 0, "organ": 19, "strings": 48, "choir": 52, "flute": 73, "guitar": 24}
# Score formats by preference: the corpus holds a few works in two formats (e.g. Beethoven op. 18/1 as .krn and .mxl).
_FORMATS = (".mxl", ".musicxml", ".xml", ".krn", ".abc")
SOUNDFONT_PATHS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2",
                   "/usr/share/sounds/sf2/TimGM6mb.sf2", "/usr/share/soundfonts/TimGM6mb.sf2")
PEAK_DBFS = -3.0
TRIM_DB = 60.0  # leading and trailing audio this far below the peak is cut
TAIL_SECONDS = 1.0  # room left after a cut piece's last note for the release and the reverb
FADE_SECONDS = 0.05  # fade-out where a tail still has to be cut at max_piece_seconds
# Shorter notes are dropped: written back as MIDI, a note shorter than a tick has its note-off sorted before its
# note-on, and a stuck organ note makes fluidsynth render for hours.
MIN_NOTE_SECONDS = 0.01
RENDER_TIMEOUT = 120.0  # seconds; a minute of music renders in about one
_APT = "apt-get install fluidsynth fluid-soundfont-gm"
_PIP = "pip install 'audiovae[corpora]'"


@dataclass(frozen=True)
class MusicCorpusConfig:
    """What to render. ``soundfont=None`` takes FluidR3_GM if installed, else TimGM6mb."""

    minutes: float = 75.0
    sample_rate: int = 22050
    soundfont: str | None = None
    instruments: tuple[str, ...] = ("piano", "organ", "strings", "choir", "flute", "guitar")
    max_piece_seconds: float = 60.0
    valid_fraction: float = 0.05
    test_fraction: float = 0.1
    seed: int = 0
    workers: int = 0

    def __post_init__(self) -> None:
        if not self.minutes > 0:
            raise ConfigError(f"minutes must be positive, got {self.minutes}")
        if not 8000 <= self.sample_rate <= 96000:
            raise ConfigError(f"sample_rate must be in 8000..96000 Hz (fluidsynth's range), got {self.sample_rate}")
        if not self.instruments or len(set(self.instruments)) != len(self.instruments):
            raise ConfigError(f"instruments: give at least one, each once (got {list(self.instruments)})")
        for name in self.instruments:
            program(name)
        if not self.max_piece_seconds >= 2.0:
            raise ConfigError(f"max_piece_seconds must be at least 2, got {self.max_piece_seconds}")
        if min(self.valid_fraction, self.test_fraction) < 0 or self.valid_fraction + self.test_fraction >= 1:
            raise ConfigError("valid_fraction and test_fraction must be >= 0 and leave some pieces for train")
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0 (0 = one per CPU), got {self.workers}")


@dataclass(frozen=True)
class Piece:
    """One score: a file of music21's corpus, or one tune (``number``, the ABC ``X:`` field) of a tune book."""

    id: str  # "<collection>-<path in the collection>[-<number>]", safe as a file name
    collection: str
    path: str  # relative to music21's corpus folder (or absolute)
    number: int | None = None


@dataclass(frozen=True)
class _Job:
    piece: Piece
    instrument: str
    soundfont: str
    sample_rate: int
    max_seconds: float
    tmp: str  # the build's scratch folder: removed by the main process even when a worker is terminated


def program(instrument: str) -> int:
    """General-MIDI program of a short name (``PROGRAMS``) or of a full GM name such as ``"Cello"``."""
    if instrument in PROGRAMS:
        return PROGRAMS[instrument]
    try:
        import pretty_midi
    except ImportError:
        raise AudiovaeError(f"pretty_midi is not installed (needed by the music corpus): {_PIP}") from None
    try:
        return pretty_midi.instrument_name_to_program(instrument)
    except ValueError:
        raise ConfigError(f"unknown instrument {instrument!r}; use one of {', '.join(PROGRAMS)} "
                          "or a General-MIDI name such as 'Cello'") from None


def _require_packages() -> None:
    """Import the Python dependencies up front (forked workers inherit them) or say which extra to install."""
    try:
        import music21  # noqa: F401
        import pretty_midi  # noqa: F401
    except ImportError as e:
        raise AudiovaeError(f"{e.name} is not installed (needed by the music corpus): {_PIP}") from None


def _fluidsynth() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise AudiovaeError(f"fluidsynth is not installed (needed by the music corpus): {_APT}")
    return exe


def find_soundfont(path: str | None = None) -> Path:
    """The soundfont to render with: ``path`` checked to be an SF2 file (fluidsynth would render silence from
    anything else), or the first of ``SOUNDFONT_PATHS`` installed."""
    if path is None:
        found = next((Path(p) for p in SOUNDFONT_PATHS if Path(p).is_file()), None)
        if found is None:
            raise AudiovaeError(f"no General-MIDI soundfont found (looked for {', '.join(SOUNDFONT_PATHS)}): {_APT}")
        return found
    p = Path(path)
    if not p.is_file():
        raise AudiovaeError(f"soundfont {p}: no such file (install one with `{_APT}`)")
    with open(p, "rb") as f:
        head = f.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise AudiovaeError(f"soundfont {p}: not a SoundFont 2 (.sf2) file")
    return p


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_")


def _tune_numbers(path: Path) -> list[int | None]:
    """The ``X:`` numbers of an ABC tune book, each once; ``[None]`` for a file of one tune (parsed whole)."""
    numbers = dict.fromkeys(int(x) for x in re.findall(r"^X:\s*(\d+)", path.read_text("latin-1"), re.MULTILINE))
    return list(numbers) if len(numbers) > 1 else [None]


@functools.lru_cache(maxsize=1)
def catalogue() -> tuple[Piece, ...]:
    """Every piece of the collections in ``STYLES``, sorted by id: one per work (the preferred format) or tune."""
    _require_packages()
    from music21 import common

    root = Path(common.getCorpusFilePath())
    collections = {c for cs in STYLES.values() for c in cs}
    best: dict[str, tuple[int, Piece]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] not in collections or path.suffix not in _FORMATS:
            continue
        for number in _tune_numbers(path) if path.suffix == ".abc" else [None]:
            pid = "-".join(_safe(part) for part in rel.with_suffix("").parts) + ("" if number is None else f"-{number}")
            rank = _FORMATS.index(path.suffix)
            if pid not in best or rank < best[pid][0]:
                best[pid] = (rank, Piece(pid, rel.parts[0], rel.as_posix(), number))
    return tuple(p for _, p in sorted(best.values(), key=lambda rp: rp[1].id))


def _interleave(streams: Iterable[Iterable[Piece]]) -> Iterator[Piece]:
    """Round-robin over streams, dropping each when it runs out: a, b, c, a, b, c, a, c..."""
    iters = deque(iter(s) for s in streams)
    while iters:
        it = iters.popleft()
        item = next(it, None)
        if item is not None:
            yield item
            iters.append(it)


def piece_order(pieces: Iterable[Piece], seed: int) -> Iterator[Piece]:
    """Pieces in the order the corpus takes them: styles in turn, collections in turn, each collection shuffled."""
    rng = Random(f"audiovae-music-pieces-{seed}")
    by_collection: dict[str, list[Piece]] = {}
    for p in pieces:
        by_collection.setdefault(p.collection, []).append(p)
    styles = [[rng.sample(by_collection[c], len(by_collection[c])) for c in cs if c in by_collection]
              for cs in STYLES.values()]
    return _interleave(_interleave(s) for s in styles)


def _instrument_deck(instruments: tuple[str, ...], seed: int) -> Iterator[str]:
    """Endless shuffled decks: every instrument once per ``len(instruments)`` pieces, in a seeded order."""
    rng = Random(f"audiovae-music-instruments-{seed}")
    while True:
        yield from rng.sample(instruments, len(instruments))


def _cut(pm: pretty_midi.PrettyMIDI, limit: float) -> None:
    """End the score by ``limit`` seconds, at the last bar line of its second half if there is one; drop the notes
    shorter than ``MIN_NOTE_SECONDS`` (grace notes, and notes starting a rounding error before the cut)."""
    end = pm.get_end_time()
    if end > limit:
        bars = [float(b) for b in pm.get_downbeats() if limit / 2 <= b <= limit]
        end = bars[-1] if bars else limit
    for inst in pm.instruments:
        inst.notes = [n for n in inst.notes if min(n.end, end) - n.start >= MIN_NOTE_SECONDS]
        for n in inst.notes:
            n.end = min(n.end, end)
        inst.control_changes = [c for c in inst.control_changes if c.time < end]
        inst.pitch_bends = [b for b in inst.pitch_bends if b.time < end]


def _excerpt(score: music21.stream.Score, seconds: float) -> music21.stream.Score:
    """The opening measures that last at least ``seconds`` at the score's fastest tempo, repeats played straight.

    music21 expands repeats by deep copies before writing MIDI: minutes for a whole quartet, of which the corpus keeps
    one. Pieces shorter than that are returned whole, repeats and all.
    """
    from music21 import bar, repeat, spanner, stream, tempo

    marks = score.recurse().getElementsByClass(tempo.MetronomeMark)
    quarters = seconds * max((m.getQuarterBPM() or 120.0 for m in marks), default=120.0) / 60.0
    first = score.parts[0] if score.parts else score
    numbers = [m.number for m in first.getElementsByClass(stream.Measure) if m.offset < quarters]
    if score.highestTime <= quarters or not numbers:
        return score
    excerpt = score.measures(numbers[0], numbers[-1])
    for m in excerpt.recurse().getElementsByClass(stream.Measure):
        if isinstance(m.leftBarline, bar.Repeat):
            m.leftBarline = None
        if isinstance(m.rightBarline, bar.Repeat):
            m.rightBarline = None
    for mark in list(excerpt.recurse().getElementsByClass((repeat.RepeatExpression, spanner.RepeatBracket))):
        mark.activeSite.remove(mark)
    return excerpt


def score_midi(piece: Piece, instrument: str, max_seconds: float) -> pretty_midi.PrettyMIDI:
    """The piece as General MIDI, every part played by ``instrument``, cut to leave room for a tail."""
    import pretty_midi
    from music21 import common, corpus
    from music21.midi import translate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score = corpus.parse(str(Path(common.getCorpusFilePath()) / piece.path), number=piece.number)
        data = translate.streamToMidiFile(_excerpt(score, max_seconds)).writestr()
        pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    _cut(pm, max_seconds - min(TAIL_SECONDS, max_seconds / 4))
    for inst in pm.instruments:
        inst.program, inst.is_drum = program(instrument), False
    if not any(inst.notes for inst in pm.instruments):
        raise ValueError("the score has no notes")
    return pm


def _render(exe: str, midi: Path, wav: Path, soundfont: str, sample_rate: int) -> np.ndarray:
    """fluidsynth's offline renderer, 32-bit float (no clipping before normalisation), mono.

    Reverb and chorus stay on as GM presets expect; fluidsynth renders them deterministically (one CPU core).
    """
    cmd = [exe, "-ni", "-q", "-R", "1", "-C", "1", "-o", "synth.cpu-cores=1", "-O", "float", "-T", "wav",
           "-r", str(sample_rate), "-F", str(wav), soundfont, str(midi)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=RENDER_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"fluidsynth ran past {RENDER_TIMEOUT:.0f} s (a note that never ends?)") from None
    if p.returncode != 0 or not wav.is_file():
        lines = (p.stderr or p.stdout).strip().splitlines()
        raise RuntimeError(f"fluidsynth failed ({lines[-1] if lines else f'exit code {p.returncode}'})")
    data, _ = sf.read(wav, dtype="float32", always_2d=True)
    return data.mean(axis=1)


def _finish(wave: np.ndarray, sample_rate: int, max_seconds: float) -> np.ndarray:
    """Trim near-silence at both ends, cap the length (with a short fade), peak-normalise to ``PEAK_DBFS``."""
    peak = float(np.abs(wave).max(initial=0.0))
    if peak < audio.SILENCE_PEAK:
        raise ValueError("the rendering is silent")
    loud = np.flatnonzero(np.abs(wave) > peak * 10 ** (-TRIM_DB / 20))
    wave = wave[loud[0]: loud[-1] + 1]
    limit = int(max_seconds * sample_rate)
    if wave.size > limit:
        fade = int(FADE_SECONDS * sample_rate)
        wave = wave[:limit].copy()
        wave[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    wave = wave * (10 ** (PEAK_DBFS / 20) / float(np.abs(wave).max()))
    return wave.astype(np.float32)


def _render_job(job: _Job) -> tuple[np.ndarray | None, str]:
    """Worker: one piece to a finished waveform, or ``None`` and why (a bad score never stops the build)."""
    try:
        pm = score_midi(job.piece, job.instrument, job.max_seconds)
        with tempfile.TemporaryDirectory(dir=job.tmp) as tmp:
            midi, wav = Path(tmp) / "piece.mid", Path(tmp) / "piece.wav"
            pm.write(str(midi))
            wave = _render(_fluidsynth(), midi, wav, job.soundfont, job.sample_rate)
        return _finish(wave, job.sample_rate, job.max_seconds), ""
    except Exception as e:  # music21 and pretty_midi raise all kinds on odd scores
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        first = re.sub(r"0x[0-9a-fA-F]+|id\(\)=\d+", "...", first)  # object addresses change from run to run
        return None, f"{type(e).__name__}: {first}"[:200]


def _rendered(jobs: Iterator[_Job], workers: int) -> Iterator[tuple[_Job, np.ndarray | None, str]]:
    """Render in a process pool but yield in job order, keeping only a few jobs ahead of the consumer.

    Leaving the pool terminates it, so jobs still running when the corpus is complete (a long quartet) cost nothing.
    """
    with multiprocessing.Pool(workers) as pool:
        window = deque((j, pool.apply_async(_render_job, (j,))) for j in itertools.islice(jobs, 2 * workers))
        while window:
            job, result = window.popleft()
            nxt = next(jobs, None)
            if nxt is not None:
                window.append((nxt, pool.apply_async(_render_job, (nxt,))))
            yield (job, *result.get())


def _split_counts(n: int, valid_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Pieces for (valid, test): the fractions rounded, at least one each when asked for and there are >= 3."""
    def count(f: float) -> int:
        return max(1, round(f * n)) if f > 0 and n >= 3 else round(f * n)

    n_test = min(count(test_fraction), max(n - 1, 0))
    return min(count(valid_fraction), max(n - 1 - n_test, 0)), n_test


def _remove_stale(wav_dir: Path, keep: set[Path]) -> None:
    """Delete renderings of an earlier build into the same folder that this build did not make."""
    for p in wav_dir.glob("*.wav"):
        if p not in keep:
            p.unlink()


def _render_until(out: Path, jobs: Iterator[_Job], config: MusicCorpusConfig,
                  progress: bool) -> tuple[list[Entry], list[str]]:
    """Write renderings in job order until ``config.minutes`` of music; also return the skipped pieces and why."""
    target = config.minutes * 60.0
    entries: list[Entry] = []
    skipped: list[str] = []
    seconds = 0.0
    with closing(_rendered(jobs, config.workers or os.cpu_count() or 1)) as results, \
            tqdm(total=round(target), desc="music corpus", unit="s", disable=bar_off(progress)) as bar:
        for job, wave, why in results:
            if wave is None:
                skipped.append(f"{job.piece.id}: {why}")
                continue
            rel = f"wav/{job.piece.id}__{job.instrument}.wav"
            audio.save(out / rel, wave, config.sample_rate)
            duration = round(wave.size / config.sample_rate, 3)
            entries.append(Entry(rel, duration, instrument=job.instrument, piece=job.piece.id))
            seconds += duration
            bar.update(min(round(seconds), bar.total) - bar.n)  # whole seconds of music so far
            if seconds >= target:
                break
    return entries, skipped


def _assign_splits(entries: list[Entry], config: MusicCorpusConfig) -> None:
    """Test, then valid, take the first pieces: the order is seeded and interleaves styles, so they are a fair mix."""
    n_valid, n_test = _split_counts(len(entries), config.valid_fraction, config.test_fraction)
    for i, e in enumerate(entries):
        e.split = "test" if i < n_test else "valid" if i < n_test + n_valid else "train"


def build_music_corpus(out_dir: str | os.PathLike[str], config: MusicCorpusConfig = MusicCorpusConfig(),
                       progress: bool = True) -> CorpusSummary:
    """Render pieces until ``config.minutes`` of music; write ``wav/<piece>__<instrument>.wav``, ``manifest.jsonl``
    and ``summary.json`` under ``out_dir``.

    Missing fluidsynth, soundfont or Python packages raise :class:`AudiovaeError` before any work, naming the
    package to install. A piece that fails to parse or render is listed in ``summary.skipped`` and passed over.
    WAV files left in ``out_dir/wav`` by an earlier build that this one did not make are deleted.
    """
    start = time.perf_counter()
    _require_packages()
    _fluidsynth()
    soundfont = str(find_soundfont(config.soundfont).resolve())
    out = Path(out_dir)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    deck = _instrument_deck(config.instruments, config.seed)
    with tempfile.TemporaryDirectory(prefix="audiovae-music-", ignore_cleanup_errors=True) as scratch:
        jobs = (_Job(p, next(deck), soundfont, config.sample_rate, config.max_piece_seconds, scratch)
                for p in piece_order(catalogue(), config.seed))
        entries, skipped = _render_until(out, jobs, config, progress)
    _assign_splits(entries, config)
    write_manifest(out / "manifest.jsonl", entries)
    _remove_stale(out / "wav", {out / e.path for e in entries})
    summary = CorpusSummary.from_entries("music", entries, group="instrument", skipped=skipped,
                                         build_seconds=time.perf_counter() - start)
    summary.write(out / "summary.json")
    return summary
