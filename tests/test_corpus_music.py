"""Music corpus: music21 scores rendered by fluidsynth with the small TimGM6mb soundfont, pieces cut to 5 s."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from itertools import islice
from pathlib import Path

import librosa
import mido
import numpy as np
import pytest
import soundfile as sf

from audiovae.data.corpora import music
from audiovae.data.manifest import CorpusSummary, Entry, read_manifest
from audiovae.errors import AudiovaeError, ConfigError

TIMGM = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
SECONDS = 5.0
TUNE = "ryansMammoth-SallyGrowlerHornpipe"  # a monophonic reel: one onset per note


@pytest.fixture(scope="module")
def soundfont() -> str:
    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth is not installed (apt-get install fluidsynth; .ci/setup does)")
    if not TIMGM.is_file():
        pytest.skip(f"{TIMGM} is missing (apt-get install timgm6mb-soundfont; .ci/setup does)")
    return str(TIMGM)


def _config(soundfont: str, **kw) -> music.MusicCorpusConfig:
    return music.MusicCorpusConfig(**{"minutes": 0.2, "max_piece_seconds": SECONDS, "soundfont": soundfont,
                                      "workers": 2, **kw})


@pytest.fixture(scope="module")
def corpus(soundfont, tmp_path_factory) -> Path:
    """The first pieces of the real catalogue (a chorale, a folk song, a Palestrina mass movement)."""
    out = tmp_path_factory.mktemp("music")
    music.build_music_corpus(out, _config(soundfont), progress=False)
    return out


@pytest.fixture(scope="module")
def tune_corpus(soundfont, tmp_path_factory) -> tuple[Path, CorpusSummary]:
    """A catalogue of a broken score and one reel, played on the piano; minutes enough for both."""
    tmp = tmp_path_factory.mktemp("tune")
    broken = tmp / "broken.xml"
    broken.write_text("<score-partwise>this is not music</score-partwise>")
    tune = next(p for p in music.catalogue() if p.id == TUNE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(music, "catalogue", lambda: (music.Piece("bach-broken", "bach", str(broken)), tune))
        summary = music.build_music_corpus(tmp / "out", _config(soundfont, minutes=10, instruments=("piano",),
                                                                   workers=1), progress=False)
    return tmp / "out", summary


def _entries(out: Path) -> list[Entry]:
    return read_manifest(out / "manifest.jsonl")


def test_rebuild_is_byte_identical_whatever_the_workers(corpus, soundfont, tmp_path):
    again = tmp_path / "again"
    music.build_music_corpus(again, _config(soundfont, workers=1), progress=False)
    files = sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*.wav"))
    assert files == sorted(p.relative_to(again).as_posix() for p in again.rglob("*.wav"))
    for rel in ["manifest.jsonl", *files]:
        assert (corpus / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_manifest_matches_the_files(corpus):
    entries = _entries(corpus)
    assert sum(e.duration for e in entries) >= 0.2 * 60
    for e in entries:
        info = sf.info(corpus / e.path)
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
        assert info.frames / info.samplerate == pytest.approx(e.duration, abs=1e-3)
        assert 1.0 < e.duration <= SECONDS
        assert e.path == f"wav/{e.piece}__{e.instrument}.wav"
    summary = json.loads((corpus / "summary.json").read_text())
    assert summary["groups"] == dict(Counter(e.instrument for e in entries))
    assert summary["files"] == len(entries) and not summary["skipped"]


def test_each_piece_is_in_one_split(corpus):
    entries = _entries(corpus)
    splits: dict[str, set[str]] = {}
    for e in entries:
        splits.setdefault(e.piece, set()).add(e.split)
    assert all(len(s) == 1 for s in splits.values())
    assert {e.split for e in entries} == {"train", "valid", "test"}  # >= 3 pieces: every split gets one


def test_renderings_sound_the_pitches_of_the_score(corpus):
    """The audio's pitch-class profile matches the score's and no transposition of it (bar the fifths, which
    harmonics make ambiguous) matches as well."""
    pieces = {p.id: p for p in music.catalogue()}
    for e in _entries(corpus):
        y, sr = sf.read(corpus / e.path, dtype="float32")
        assert np.abs(y).max() == pytest.approx(10 ** (music.PEAK_DBFS / 20), abs=0.01)
        assert np.sqrt(np.mean(y**2)) > 0.01
        heard = librosa.feature.chroma_cqt(y=y, sr=sr).mean(axis=1)
        written = music.score_midi(pieces[e.piece], e.instrument, SECONDS).get_chroma(fs=50).mean(axis=1)
        cos = np.array([np.dot(np.roll(written, k), heard) for k in range(12)])
        cos /= np.linalg.norm(written) * np.linalg.norm(heard)
        assert cos[0] > 0.8, (e.path, cos.round(2))
        assert cos[0] > np.delete(cos, [0, 5, 7]).max() + 0.1, (e.path, cos.round(2))


def test_piano_onsets_follow_the_notes(tune_corpus):
    out, _ = tune_corpus
    [e] = _entries(out)
    y, sr = sf.read(out / e.path, dtype="float32")
    pm = music.score_midi(next(p for p in music.catalogue() if p.id == TUNE), "piano", SECONDS)
    notes = len({round(n.start, 2) for inst in pm.instruments for n in inst.notes})
    onsets = len(librosa.onset.onset_detect(y=y, sr=sr))
    assert notes > 10
    assert abs(onsets - notes) <= 0.2 * notes + 2, (onsets, notes)


def test_a_broken_score_is_skipped_not_fatal(tune_corpus):
    out, summary = tune_corpus
    assert len(summary.skipped) == 1 and summary.skipped[0].startswith("bach-broken: ")
    assert [e.piece for e in _entries(out)] == [TUNE]


def _notes_left_sounding(path: Path) -> set[tuple[int, int]]:
    """(channel, pitch) of the notes still on at the end, as a synthesizer reads the events: in order."""
    sounding: set[tuple[int, int]] = set()
    for track in mido.MidiFile(path).tracks:
        for msg in track:
            if msg.type == "note_on" and msg.velocity > 0:
                sounding.add((msg.channel, msg.note))
            elif msg.type in ("note_on", "note_off"):
                sounding.discard((msg.channel, msg.note))
    return sounding


def test_a_long_movement_becomes_its_opening_with_every_note_ended(tmp_path):
    """A 10-minute quartet movement is cut to its opening bars (without expanding its repeats: minutes), and no
    note is left sounding, which would make fluidsynth render an organ for hours."""
    piece = next(p for p in music.catalogue() if p.id == "beethoven-opus59no3-movement2")
    pm = music.score_midi(piece, "organ", 60.0)
    assert 50.0 < pm.get_end_time() <= 59.0
    pm.write(str(tmp_path / "piece.mid"))
    assert not _notes_left_sounding(tmp_path / "piece.mid")


def test_a_note_starting_a_hair_before_the_cut_does_not_hang(tmp_path):
    """The bar line found by pretty_midi can be 1e-14 s after a note's start: clipped there, the note is shorter than
    a MIDI tick, and its note-off would be written before its note-on."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
    organ = pretty_midi.Instrument(program=19)
    organ.notes = [pretty_midi.Note(80, 60 + k % 12, k * 0.5, k * 0.5 + 1.0) for k in range(40)]
    organ.notes.append(pretty_midi.Note(80, 72, 16.0 - 1e-13, 17.0))  # bar 9 starts at 16 s
    pm.instruments.append(organ)
    music._cut(pm, 17.5)
    assert max(n.end for n in organ.notes) == pytest.approx(16.0)
    pm.write(str(tmp_path / "cut.mid"))
    assert not _notes_left_sounding(tmp_path / "cut.mid")


def test_order_spreads_styles_and_instruments():
    first = list(islice(music.piece_order(music.catalogue(), 0), 8))
    assert first == list(islice(music.piece_order(music.catalogue(), 0), 8))
    assert first != list(islice(music.piece_order(music.catalogue(), 1), 8))
    styles = {c: s for s, cs in music.STYLES.items() for c in cs}
    assert [styles[p.collection] for p in first] == list(music.STYLES) * 2
    deck = list(islice(music._instrument_deck(("a", "b", "c"), 0), 9))
    assert all(sorted(deck[i: i + 3]) == ["a", "b", "c"] for i in range(0, 9, 3))


@pytest.mark.parametrize("content", [None, b"not a soundfont"])
def test_a_bad_soundfont_is_one_clear_line(tmp_path, content):
    path = tmp_path / "bad.sf2"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudiovaeError, match="soundfont .*bad.sf2") as err:
        music.build_music_corpus(tmp_path / "out", music.MusicCorpusConfig(soundfont=str(path)), progress=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_missing_tools_name_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(music, "SOUNDFONT_PATHS", (str(tmp_path / "none.sf2"),))
    with pytest.raises(AudiovaeError, match="apt-get install fluidsynth fluid-soundfont-gm"):
        music.find_soundfont()
    monkeypatch.setattr(music.shutil, "which", lambda name: None)
    with pytest.raises(AudiovaeError, match="fluidsynth is not installed.*apt-get install fluidsynth"):
        music.build_music_corpus(tmp_path / "out", progress=False)


@pytest.mark.parametrize("kw", [{"instruments": ("kazoo",)}, {"instruments": ()}, {"minutes": 0},
                                {"valid_fraction": 0.5, "test_fraction": 0.5}, {"sample_rate": 4000}])
def test_bad_config_is_refused(kw):
    with pytest.raises(ConfigError):
        music.MusicCorpusConfig(**kw)


def test_general_midi_names_are_accepted():
    assert music.program("piano") == 0 and music.program("Cello") == 42
