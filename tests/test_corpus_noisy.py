"""The noisy corpus: deterministic exact mixtures, and the four defects an audit found (reverb aligned to the loudest
reflection, test SNR tied to the speaker, babble of the target's own voice or sentence, real recordings cut mid-sound
with their whole transcript kept), each pinned by a test."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SR, snr_db

from audiovae.data.corpora.noisy import (
    FESTVOX_RU,
    REAL_SPEAKER,
    TEST_ONLY_NOISES,
    TRAIN_NOISES,
    NoisyCorpusConfig,
    _clean_sources,
    _plan,
    _reverberate,
    _room,
    build_noisy_corpus,
    composition,
    cut_at_pause,
    direct_path,
    noise_snr_grid,
    real_voice,
)
from audiovae.data.manifest import Entry, read_manifest, write_manifest
from audiovae.data.mixing import rms
from audiovae.errors import AudiovaeError

SENTENCES = ["The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
             "It is easy to tell the depth of a well.", "These days a chicken leg is a rare dish."]
HAS_RU = (FESTVOX_RU / "wav").is_dir()


def _tiny_speech_corpus(root: Path) -> Path:
    """Four espeak-ng sentences by two voices, as a speech-corpus folder with a manifest (sentence 4 is test)."""
    entries = []
    for voice in ("en-us", "en-gb"):
        for i, text in enumerate(SENTENCES):
            p = root / "wav" / voice / f"{voice}_{i}.wav"
            p.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(p), text], check=True)
            entries.append(Entry(str(p.relative_to(root)), sf.info(p).duration, split="test" if i == 3 else "train",
                                 speaker=voice, text=text))
    write_manifest(root / "manifest.jsonl", entries)
    return root


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "summary.json":
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_noisy_corpus_is_deterministic_with_exact_snrs_and_complete_transcripts(tmp_path, speech_path):
    clean = _tiny_speech_corpus(tmp_path / "speech")
    max_seconds = 2.3  # shorter than most sentences (and every real recording): those are cut at a pause
    cfg = NoisyCorpusConfig(clean=str(clean), snrs=(0.0, 10.0), real_voice=HAS_RU, real_voice_files=3,
                            max_seconds=max_seconds, workers=2, test_mixtures_per_file=len(TRAIN_NOISES) + 2)
    summary = build_noisy_corpus(tmp_path / "a", cfg, progress=False)
    build_noisy_corpus(tmp_path / "b", cfg, progress=False)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    entries = read_manifest(tmp_path / "a" / "manifest.jsonl")
    assert summary.files == len(entries) and not summary.skipped
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["groups"] == summary.groups
    sources = {Path(s.path).stem: s for s in read_manifest(clean / "manifest.jsonl")}
    cut = whole = 0
    for e in entries:
        noisy, sr = sf.read(tmp_path / "a" / e.path, dtype="float32")
        target, _ = sf.read(tmp_path / "a" / e.clean, dtype="float32")
        assert sr == SR and noisy.shape == target.shape and np.abs(noisy).max() <= 1.0
        if e.noise != "reverb":  # for reverb the SNR is set against the reverberant speech
            assert snr_db(target, noisy - target) == pytest.approx(e.snr, abs=0.3), e
        assert e.noise in TEST_ONLY_NOISES and e.split == "test" or e.noise not in TEST_ONLY_NOISES
        # defect 4: a transcript is written only for a file kept whole
        assert e.duration <= max_seconds + 1e-3
        if e.speaker != REAL_SPEAKER:
            source = sources[Path(e.path).stem[len(e.speaker) + 1:].rsplit("_", 1)[0]]  # <speaker>_<stem>_<m>
            if source.duration <= max_seconds:
                assert e.text == source.text and e.duration == pytest.approx(source.duration, abs=1e-3)
                whole += 1
            else:
                assert e.text == "" and e.duration < source.duration
                cut += 1
        else:  # every festvox-ru recording is longer than 2 s
            assert e.text == ""
    assert cut and whole
    assert {e.noise for e in entries if e.split == "test"} >= set(TEST_ONLY_NOISES)
    table = composition(entries)
    assert "| test |" in table and "| en-us |" in table


# --- defect 1: reverberation aligned to the direct sound ------------------------------------------------------------

def _direct_only(room) -> int:  # noqa: ANN001
    """The direct sound's sample, from the same geometry simulated without reflections (an independent oracle)."""
    import pyroomacoustics as pra

    oracle = pra.ShoeBox(room.shoebox_dim, fs=room.fs, max_order=0)
    oracle.add_source(room.sources[0].position)
    oracle.add_microphone(room.mic_array.R[:, 0])
    oracle.compute_rir()
    return int(np.argmax(np.abs(oracle.rir[0][0])))


def test_reverb_keeps_the_direct_sound_where_a_reflection_is_loudest():
    ms = SR // 1000
    checked = 0
    for seed in range(40):
        room = _room(SR, np.random.default_rng(seed))
        rir = np.asarray(room.rir[0][0], dtype=np.float64)
        direct, loudest = _direct_only(room), int(np.argmax(np.abs(rir)))
        assert direct_path(room) == direct, seed
        if loudest - direct <= ms:
            continue
        # a room whose loudest arrival is a reflection > 1 ms after the direct sound: an impulse through it
        checked += 1
        t0 = SR // 2
        impulse = np.zeros(SR, dtype=np.float32)
        impulse[t0] = 1.0
        wet = _reverberate(impulse, SR, np.random.default_rng(seed)).astype(np.float64)
        assert np.abs(wet[: t0 - 2]).max() < 1e-3 * np.abs(wet).max()  # nothing arrives before the dry sound
        assert int(np.argmax(np.abs(wet))) - t0 == loudest - direct  # the reflection keeps its delay...
        assert wet[t0] / wet[t0 + loudest - direct] == pytest.approx(rir[direct] / rir[loudest], rel=1e-3)  # ...and
        # the direct sound its level: the target's position holds the direct path, not the reflection cluster
    assert checked >= 3


# --- defect 2: test SNR and noise type independent of the speaker ----------------------------------------------------

def _parallel_sources(speakers: int = 8, sentences: int = 60, test_every: int = 10) -> list[Entry]:
    """A parallel corpus plan: every speaker reads every sentence; every tenth sentence is test."""
    return [Entry(f"/c/s{s}/s{s}_{i:03d}.wav", 3.0, split="test" if i % test_every == 0 else "train",
                  speaker=f"s{s}", text=f"sentence {i}") for s in range(speakers) for i in range(sentences)]


def _real_sources(n: int = 120, test: int = 48) -> list[Entry]:
    return [Entry(f"/ru/ru_{i:04d}.wav", 9.0, split="test" if i < test else "train", speaker=REAL_SPEAKER,
                  text=f"предложение {i}") for i in range(n)]


def test_every_test_speaker_meets_every_snr_and_noise_type():
    cfg = NoisyCorpusConfig()
    jobs = [j for j in _plan(_parallel_sources() + _real_sources(), cfg, []) if j.split == "test"]
    by_speaker = defaultdict(list)
    for j in jobs:
        by_speaker[j.speaker].append(j)
    assert len(by_speaker) == 9
    for speaker, js in by_speaker.items():
        assert {j.snr for j in js} == set(cfg.snrs), speaker
        assert {j.noise for j in js} == set(TRAIN_NOISES + TEST_ONLY_NOISES), speaker
        # 12 mixtures = two full passes over the six SNRs: every speaker's mean SNR is the grid's
        if len(js) % len(cfg.snrs) == 0:
            assert np.mean([j.snr for j in js]) == pytest.approx(np.mean(cfg.snrs)), speaker
    assert _plan(_parallel_sources(), cfg, []) == _plan(_parallel_sources(), cfg, [])  # seeded


@pytest.mark.parametrize(("n", "s"), [(8, 6), (6, 6), (8, 3), (5, 7), (1, 4)])
def test_grid_runs_cover_every_noise_and_snr(n, s):
    noises, snrs = tuple(f"n{i}" for i in range(n)), tuple(float(i) for i in range(s))
    grid = noise_snr_grid(noises, snrs, np.random.default_rng(0))
    assert len(set(grid)) == n * s  # every cell once
    cyclic = grid * 2
    for j in range(len(grid)):  # walked cyclically, any run of n cells holds every noise, any 2s every SNR
        assert {c[0] for c in cyclic[j: j + n]} == set(noises)
        assert {c[1] for c in cyclic[j: j + 2 * s]} == set(snrs)


def test_every_noise_type_meets_every_snr_equally_often_in_each_voice_group():
    cfg = NoisyCorpusConfig()
    jobs = [j for j in _plan(_parallel_sources() + _real_sources(), cfg, []) if j.split == "test"]
    noises = TRAIN_NOISES + TEST_ONLY_NOISES
    for group in (True, False):  # real voice, synthetic voices: 96 mixtures each, two passes over the 48 cells
        cells = defaultdict(int)
        for j in jobs:
            if (j.speaker == REAL_SPEAKER) == group:
                cells[j.noise, j.snr] += 1
        assert len(cells) == len(noises) * len(cfg.snrs) and set(cells.values()) == {2}, group


def test_a_small_test_split_still_covers_every_noise_type_and_snr():
    """Eight voices with two test sentences and one mixture each: 16 mixtures, too few per voice, enough for the
    whole test set."""
    cfg = NoisyCorpusConfig(test_mixtures_per_file=1)
    jobs = [j for j in _plan(_parallel_sources(sentences=12, test_every=6), cfg, []) if j.split == "test"]
    assert len(jobs) == 16
    assert {j.noise for j in jobs} == set(TRAIN_NOISES + TEST_ONLY_NOISES)
    assert {j.snr for j in jobs} == set(cfg.snrs)


def test_the_music_corpus_changes_only_the_music_mixtures():
    sources, cfg = _parallel_sources() + _real_sources(), NoisyCorpusConfig()
    plain, with_music = _plan(sources, cfg, []), _plan(sources, cfg, ["/m/a.wav", "/m/b.wav"])
    assert [(j.name, j.noise, j.snr) for j in plain] == [(j.name, j.noise, j.snr) for j in with_music]
    assert all(bool(j.music) == (j.noise == "music") for j in with_music)
    assert [j.babble for j in plain if j.split == "train"] == [j.babble for j in with_music if j.split == "train"]


@pytest.mark.skipif(not HAS_RU, reason="festvox-ru is not installed (apt-get install festvox-ru; .ci/run does)")
def test_real_voice_test_split_matches_the_synthetic_one():
    cfg = NoisyCorpusConfig()
    for synthetic_test in (48, 500):
        entries = real_voice(cfg, synthetic_test)
        n_test = sum(e.split == "test" for e in entries)
        assert n_test == min(synthetic_test, round(0.2 * len(entries)))
        assert sum(e.split == "valid" for e in entries) == round(0.05 * len(entries))
    assert real_voice(cfg, 48) == real_voice(cfg, 48)


@pytest.mark.skipif(not HAS_RU, reason="festvox-ru is not installed (apt-get install festvox-ru; .ci/run does)")
def test_the_builder_sizes_the_real_voice_test_split_from_the_synthetic_one(tmp_path):
    write_manifest(tmp_path / "manifest.jsonl", _parallel_sources(speakers=4))  # 6 test sentences x 4 voices
    sources = _clean_sources(NoisyCorpusConfig(clean=str(tmp_path)), tmp_path, progress=False)
    tests = defaultdict(int)
    for e in sources:
        tests[e.speaker == REAL_SPEAKER] += e.split == "test"
    assert tests[True] == tests[False] == 24


# --- defect 3: babble from other speakers reading other sentences ----------------------------------------------------

def test_babble_never_holds_the_target_voice_or_sentence():
    sources = _parallel_sources() + _real_sources()
    by_path = {e.path: e for e in sources}
    jobs = [j for j in _plan(sources, NoisyCorpusConfig(), []) if j.noise == "babble"]
    assert {j.speaker for j in jobs} >= {REAL_SPEAKER, "s0"} and {j.split for j in jobs} == {"train", "test"}
    for j in jobs:
        assert len(j.babble) == 4 and len({by_path[p].speaker for p in j.babble}) == 4  # four different voices
        for p in j.babble:
            other = by_path[p]
            assert other.speaker != j.speaker and other.text != j.text and other.split == j.split, (j, other)


def test_babble_goes_only_where_someone_else_reads_another_sentence():
    """A lone speaker gets none; a file whose only partner reads the same sentence gets none, its siblings do."""
    assert all(j.noise != "babble" for j in _plan(_parallel_sources(speakers=1), NoisyCorpusConfig(), []))
    # speaker a reads x and y (x first by path); speaker b reads only x; all in test with 48 mixtures per file
    sources = [Entry("/c/a_1.wav", 3.0, "test", "a", "x"), Entry("/c/a_2.wav", 3.0, "test", "a", "y"),
               Entry("/c/b_1.wav", 3.0, "test", "b", "x")]
    jobs = _plan(sources, NoisyCorpusConfig(test_mixtures_per_file=48), [])
    babble = defaultdict(list)
    for j in jobs:
        if j.noise == "babble":
            babble[j.source].append(j.babble)
    assert "/c/a_1.wav" not in babble and "/c/b_1.wav" in babble and "/c/a_2.wav" in babble
    assert all(b == ["/c/b_1.wav"] for b in babble["/c/a_2.wav"]) and all(b == ["/c/a_2.wav"]
                                                                          for b in babble["/c/b_1.wav"])


# --- defect 4: long recordings cut at a pause ---------------------------------------------------------------------

def test_long_speech_is_cut_in_a_pause(speech):
    """Three sentences back to back (12 s), cut to at most 8 s: the cut falls where the speech is quiet."""
    long = np.concatenate([speech, speech, speech])
    assert long.size > 8 * SR
    head, whole = cut_at_pause(long, SR, 8.0)
    assert not whole and SR * 4 <= head.size <= 8 * SR
    np.testing.assert_array_equal(head, long[: head.size])
    frame = SR // 100
    level = [rms(long[i: i + frame]) for i in range(0, long.size - frame, frame)]
    at_cut = rms(long[head.size - 2 * frame: head.size + 2 * frame])
    assert at_cut < 0.05 * np.percentile(level, 90)  # > 26 dB below loud speech: a pause, not mid-sound
    same, whole = cut_at_pause(speech, SR, 8.0)
    assert whole and same is speech


def test_cut_at_pause_edge_cases():
    silence = np.zeros(3 * SR, dtype=np.float32)
    head, whole = cut_at_pause(silence, SR, 2.0)
    assert not whole and SR <= head.size <= 2 * SR
    tiny = cut_at_pause(np.ones(SR, dtype=np.float32), SR, 0.03)  # under 0.1 s: a plain cut
    assert tiny[0].size == int(0.03 * SR) and not tiny[1]
    with pytest.raises(AudiovaeError, match="max_seconds"):
        NoisyCorpusConfig(max_seconds=0.01)
