"""The speech corpus builder on tiny real builds (festival and flite): layout, determinism, splits, voices."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
from conftest import run_cli

from audiovae.data.corpora import speech
from audiovae.data.corpora.speech import SpeechCorpusConfig, available_speakers, build_speech_corpus
from audiovae.data.manifest import read_manifest
from audiovae.errors import AudiovaeError, ConfigError

# a male and a female voice, a derived voice, and one voice of each engine
SPEAKERS = ("kal", "kal_hi", "slt", "awb")
SMALL = SpeechCorpusConfig(sentences=6, speakers=SPEAKERS, valid_fraction=1 / 6, test_fraction=1 / 6)


@pytest.fixture(scope="module")
def voices() -> None:
    try:
        speech.check_voices(SPEAKERS)
    except AudiovaeError as e:
        pytest.skip(f"festival/flite voices missing ({e}); .ci/setup installs them")


@pytest.fixture(scope="module")
def corpus(voices, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("speech") / "corpus"
    build_speech_corpus(out, SMALL, progress=False)
    return out


def median_f0(path: Path) -> float:
    y, sr = sf.read(path, dtype="float32")
    f0 = librosa.yin(y, fmin=60, fmax=400, sr=sr, frame_length=1024)
    rms = librosa.feature.rms(y=y, frame_length=1024, hop_length=256)[0]
    return float(np.median(f0[rms > 0.1 * rms.max()]))  # voiced, loud frames only


def test_manifest_matches_files(corpus):
    entries = read_manifest(corpus / "manifest.jsonl")
    assert len(entries) == 6 * len(SPEAKERS)
    texts = speech.harvard_sentences()
    for e in entries:
        number = int(Path(e.path).stem.rsplit("_", 1)[1])
        assert e.path == f"wav/{e.speaker}/{e.speaker}_{number:04d}.wav"
        assert e.text == texts[number - 1]
        info = sf.info(corpus / e.path)
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
        assert abs(info.frames / info.samplerate - e.duration) < 1e-3
        y, _ = sf.read(corpus / e.path)
        assert 20 * np.log10(np.abs(y).max()) == pytest.approx(-3.0, abs=0.05)
        assert 1.0 < e.duration < 6.0  # a Harvard sentence plus 0.1 s of silence either side
    assert texts[0] == "The birch canoe slid on the smooth planks." and len(texts) == 720
    summary = json.loads((corpus / "summary.json").read_text())
    assert summary["files"] == len(entries) and summary["skipped"] == []
    assert summary["speakers"] == dict.fromkeys(sorted(SPEAKERS), 6)
    assert summary["seconds"] == pytest.approx(sum(e.duration for e in entries), abs=0.01)


def test_rebuild_is_byte_identical(corpus, tmp_path):
    again = tmp_path / "again"
    build_speech_corpus(again, dataclasses.replace(SMALL, workers=1), progress=False)
    files = sorted(p.relative_to(corpus) for p in corpus.rglob("*.wav"))
    assert files == sorted(p.relative_to(again) for p in again.rglob("*.wav")) and len(files) == 24
    for rel in [Path("manifest.jsonl"), *files]:
        assert (corpus / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_splits_are_by_sentence(corpus):
    entries = read_manifest(corpus / "manifest.jsonl")
    by_split = {s: {e.text for e in entries if e.split == s} for s in ("train", "valid", "test")}
    assert [len(by_split[s]) for s in ("train", "valid", "test")] == [4, 1, 1]
    assert not by_split["train"] & (by_split["valid"] | by_split["test"])
    for speaker in SPEAKERS:  # parallel: every speaker reads every sentence, in the same split
        assert sorted((e.text, e.split) for e in entries if e.speaker == speaker) == \
            sorted((e.text, e.split) for e in entries if e.speaker == SPEAKERS[0])


def test_split_depends_on_seed_only():
    a = speech.sentence_splits(SpeechCorpusConfig(seed=0))
    assert a == speech.sentence_splits(SpeechCorpusConfig(seed=0))
    assert list(a.values()).count("test") == list(a.values()).count("valid") == 36
    assert a != speech.sentence_splits(SpeechCorpusConfig(seed=1))
    with pytest.raises(ConfigError, match="none for train"):
        speech.sentence_splits(SpeechCorpusConfig(sentences=2))


def test_holdout_speaker_goes_to_test(voices, tmp_path):
    cfg = SpeechCorpusConfig(sentences=4, speakers=("awb", "slt"), holdout_speaker="awb", valid_fraction=0.25,
                             test_fraction=0.25)
    summary = build_speech_corpus(tmp_path, cfg, progress=False)
    entries = read_manifest(tmp_path / "manifest.jsonl")
    assert {e.split for e in entries if e.speaker == "awb"} == {"test"}
    assert sorted(e.split for e in entries if e.speaker == "slt") == ["test", "train", "train", "valid"]
    assert summary.splits == {"test": 5, "train": 2, "valid": 1}


def test_speakers_sound_different(corpus):
    f0 = {s: np.median([median_f0(p) for p in sorted((corpus / "wav" / s).glob("*.wav"))]) for s in SPEAKERS}
    assert 85 < f0["kal"] < 125 and 150 < f0["slt"] < 210, f0  # male and female
    assert f0["kal_hi"] > 1.6 * f0["kal"], f0  # F0 target 175 Hz, then x1.1
    kal = sum(sf.info(p).duration for p in (corpus / "wav" / "kal").glob("*.wav"))
    kal_hi = sum(sf.info(p).duration for p in (corpus / "wav" / "kal_hi").glob("*.wav"))
    assert kal_hi == pytest.approx(kal / 1.1, rel=0.05)  # speed x1.1 shortens too


def test_failed_sentence_is_skipped_not_fatal(voices, tmp_path, monkeypatch):
    texts = speech.harvard_sentences()
    monkeypatch.setattr(speech, "harvard_sentences", lambda: ["", *texts[1:]])  # festival segfaults on empty text
    summary = build_speech_corpus(tmp_path, SpeechCorpusConfig(sentences=3, speakers=("kal", "awb")), progress=False)
    awb, kal = summary.skipped  # flite writes noise (-50 dBFS), festival 2.5 crashes; the rest of the chunk is kept
    assert awb.startswith("wav/awb/awb_0001.wav: flite produced no speech") and "\n" not in awb
    assert kal.startswith("wav/kal/kal_0001.wav: festival") and "\n" not in kal
    assert summary.speakers == {"awb": 2, "kal": 2}
    assert sorted(p.name for p in tmp_path.rglob("*.wav")) == ["awb_0002.wav", "awb_0003.wav", "kal_0002.wav",
                                                                "kal_0003.wav"]


def test_unknown_speaker_lists_known_ones():
    with pytest.raises(ConfigError) as e:
        SpeechCorpusConfig(speakers=("kal", "nobody"))
    assert "nobody" in str(e.value) and all(s in str(e.value) for s in ("kal", "ked", "slt", "awb", "rms"))
    assert "\n" not in str(e.value)


def test_missing_engine_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no festival, no flite
    with pytest.raises(AudiovaeError, match=r"^festival is not installed .*apt-get install festival$"):
        build_speech_corpus(tmp_path / "out", SpeechCorpusConfig(sentences=3), progress=False)
    assert not (tmp_path / "out").exists()  # failed before any work


def test_missing_voice_names_its_package(voices, tmp_path, monkeypatch):
    monkeypatch.setitem(speech.VOICES, "ked", speech.Voice("festival", "no_such_voice", "festvox-nope", "gone"))
    with pytest.raises(AudiovaeError, match=r"voice no_such_voice \(speaker ked\).*apt-get install festvox-nope$"):
        build_speech_corpus(tmp_path, SpeechCorpusConfig(sentences=3, speakers=("kal", "ked")), progress=False)


def test_available_speakers_describe_every_voice():
    speakers = available_speakers()
    assert set(speech.DEFAULT_SPEAKERS) <= set(speakers) and {"kal", "ked", "slt", "awb", "rms"} <= set(speakers)
    assert "speed x1.1" in speakers["kal_hi"] and "festival voice kal_diphone" in speakers["kal_hi"]


def test_extended_set_adds_voices_none_derived_from_ked_or_slt():
    default, extended = speech.SPEAKER_SETS["default"], speech.SPEAKER_SETS["extended"]
    assert default == speech.DEFAULT_SPEAKERS and set(default) < set(extended) and len(extended) == 24
    added = [speech.VOICES[s] for s in extended if s not in default]
    # ked and festival's slt stay voices no added one was made from: they can be left out as unheard voices
    assert not {v.name for v in added} & {speech.VOICES["ked"].name, speech.VOICES["slt"].name}
    assert {v.engine for v in added} == {"festival", "flite", "espeak-ng"}


def test_espeak_voices_build_and_differ(tmp_path):
    try:
        speech.check_voices(("es_m3", "es_f5"))
    except AudiovaeError as e:
        pytest.skip(str(e))
    cfg = SpeechCorpusConfig(sentences=3, speakers=("es_m3", "es_f5"), valid_fraction=0, test_fraction=1 / 3)
    summary = build_speech_corpus(tmp_path, cfg, progress=False)
    assert summary.speakers == {"es_m3": 3, "es_f5": 3} and not summary.skipped
    f0 = {s: np.median([median_f0(p) for p in sorted((tmp_path / "wav" / s).glob("*.wav"))]) for s in cfg.speakers}
    assert f0["es_f5"] > 1.3 * f0["es_m3"], f0  # a female and a male variant
    r = run_cli("corpus", "speech", tmp_path / "bad", "--speakers", "es_m3,nobody", "--sentences", "1")
    assert r.returncode == 1 and "nobody" in r.stderr and "es_f5" in r.stderr
