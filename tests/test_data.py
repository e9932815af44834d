"""Data layer: mixing, manifests, layout adapters on fake trees, the feature cache, datasets."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SR, chirp, sine, snr_db, write

from audiovae.data import layouts
from audiovae.data.cache import FeatureCache
from audiovae.data.datasets import DataWarning, MelSegments, MixedPairs, SpeakerMap, select
from audiovae.data.manifest import Entry, ManifestError, read_manifest, write_manifest
from audiovae.data.mixing import coloured_noise, mix_at_snr, rms
from audiovae.errors import ConfigError
from audiovae.features import MelConfig, MelSpectrogram

CFG = MelConfig()


# --- mixing ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("exponent", "slope"), [(0.0, 0.0), (1.0, -1.0), (2.0, -2.0)])
def test_coloured_noise_has_the_right_spectral_slope(exponent, slope):
    x = coloured_noise(2 ** 18, exponent, np.random.default_rng(0))
    assert rms(x) == pytest.approx(1.0, rel=1e-3)
    psd = np.abs(np.fft.rfft(x)) ** 2
    f = np.arange(psd.size)
    bands = [(2 ** k, 2 ** (k + 1)) for k in range(4, 16)]
    logf = [np.log10(np.mean(f[a:b])) for a, b in bands]
    logp = [np.log10(np.mean(psd[a:b])) for a, b in bands]
    assert np.polyfit(logf, logp, 1)[0] == pytest.approx(slope, abs=0.1)


@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 20.0])
def test_mix_at_snr_is_exact_and_consistent(snr):
    rng = np.random.default_rng(1)
    clean = 0.9 * sine(220.0, 1.0, SR)
    noise = coloured_noise(clean.size, 1.0, rng)
    mixture, target = mix_at_snr(clean, noise, snr)
    assert np.abs(mixture).max() <= 0.99 + 1e-6
    assert snr_db(target, mixture - target) == pytest.approx(snr, abs=0.01)
    scale = target[np.argmax(np.abs(clean))] / clean[np.argmax(np.abs(clean))]
    np.testing.assert_allclose(target, clean * scale, atol=1e-6)  # the target is the speech inside the mixture


# --- manifest -------------------------------------------------------------------------------------------------------

def test_manifest_round_trip_and_errors(tmp_path):
    entries = [Entry("b.wav", 1.5, "test", speaker="x", text="hello"), Entry("a.wav", 2.0, noise="pink", snr=5.0)]
    path = write_manifest(tmp_path / "m.jsonl", entries)
    back = read_manifest(path)
    assert [e.path for e in back] == ["a.wav", "b.wav"] and back[1].text == "hello" and back[0].snr == 5.0
    assert path.read_bytes() == write_manifest(tmp_path / "m2.jsonl", entries[::-1]).read_bytes()
    (tmp_path / "bad.jsonl").write_text('{"path": "a.wav", "duration": 1}\n{"path": "b.wav"\n')
    with pytest.raises(ManifestError, match=r"bad.jsonl:2: not valid JSON"):
        read_manifest(tmp_path / "bad.jsonl")
    (tmp_path / "split.jsonl").write_text('{"path": "a.wav", "duration": 1, "split": "dev"}\n')
    with pytest.raises(ManifestError, match=r"split.jsonl:1: split 'dev'"):
        read_manifest(tmp_path / "split.jsonl")


# --- layouts --------------------------------------------------------------------------------------------------------

def _tone(path: Path, freq: float = 300.0, seconds: float = 0.5, sr: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write(path, sine(freq, seconds, sr), sr)


def test_layout_adapters_on_fake_trees(tmp_path):
    vctk = tmp_path / "VCTK"
    for spk in ("p225", "p226"):
        for utt in ("001", "002"):
            _tone(vctk / "wav48_silence_trimmed" / spk / f"{spk}_{utt}_mic1.flac")
            _tone(vctk / "wav48_silence_trimmed" / spk / f"{spk}_{utt}_mic2.flac")
            (vctk / "txt" / spk).mkdir(parents=True, exist_ok=True)
            (vctk / "txt" / spk / f"{spk}_{utt}.txt").write_text(f"Sentence {utt}.\n")
    libri = tmp_path / "LibriTTS"
    for spk, chap in (("19", "198"), ("26", "495")):
        _tone(libri / spk / chap / f"{spk}_{chap}_000001_000000.wav")
        (libri / spk / chap / f"{spk}_{chap}_000001_000000.normalized.txt").write_text("Some text.")
    vb = tmp_path / "VB"
    for s in ("trainset_28spk", "testset"):
        for name in ("p230_001", "p230_002"):
            _tone(vb / f"clean_{s}_wav" / f"{name}.wav")
            _tone(vb / f"noisy_{s}_wav" / f"{name}.wav", 500.0)
    spk = tmp_path / "speakers"
    _tone(spk / "alice" / "a.wav")
    _tone(spk / "bob" / "sub" / "b.flac")
    music = tmp_path / "music"
    _tone(music / "x.ogg")
    _tone(music / "album" / "y.flac")

    assert layouts.detect_layout(vctk) == "vctk"
    v = layouts.discover(vctk)
    assert len(v) == 4 and {e.speaker for e in v} == {"p225", "p226"} and all("mic1" in e.path for e in v)
    assert {e.text for e in v} == {"Sentence 001.", "Sentence 002."}
    # split by transcript: the same sentence lands in the same split for every speaker
    by_text = {}
    for e in v:
        by_text.setdefault(e.text, set()).add(e.split)
    assert all(len(s) == 1 for s in by_text.values())

    assert layouts.detect_layout(libri) == "libritts"
    lt = layouts.discover(libri)
    assert {e.speaker for e in lt} == {"19", "26"} and lt[0].text == "Some text."

    assert layouts.detect_layout(vb) == "voicebank"
    pairs = layouts.discover(vb)
    assert len(pairs) == 4 and all(Path(e.clean).is_file() and "clean_" in e.clean for e in pairs)
    assert {e.split for e in pairs if "testset" in e.path} == {"test"}
    assert "test" not in {e.split for e in pairs if "trainset" in e.path}

    assert layouts.detect_layout(spk) == "speakers"
    assert sorted(e.speaker for e in layouts.discover(spk)) == ["alice", "bob"]
    assert layouts.detect_layout(music) == "music"
    m = layouts.discover(music)
    assert sorted(e.piece for e in m) == ["album/y", "x"] and all(e.duration == pytest.approx(0.5) for e in m)

    with pytest.raises(layouts.LayoutError, match="no such file"):
        layouts.discover(tmp_path / "nope")
    with pytest.raises(layouts.LayoutError, match="unknown layout"):
        layouts.discover(music, layout="timit")


# --- cache and datasets ---------------------------------------------------------------------------------------------

@pytest.fixture()
def small_corpus(tmp_path):
    """Six sweeps of different lengths for two speakers, a corrupt file and an empty one."""
    root = tmp_path / "corpus"
    entries = []
    for i in range(6):
        spk = "alice" if i % 2 else "bob"
        (root / spk).mkdir(parents=True, exist_ok=True)
        p = write(root / spk / f"{i}.wav", chirp(1.0 + 0.3 * i, fmin=100.0 + 50 * i), SR)
        entries.append(Entry(str(p), 1.0 + 0.3 * i, speaker=spk))
    (root / "alice" / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk" * 10)
    (root / "bob" / "empty.wav").write_bytes(b"")
    bad = [Entry(str(root / "alice" / "corrupt.wav"), 1.0, speaker="alice"),
           Entry(str(root / "bob" / "empty.wav"), 1.0, speaker="bob")]
    return root, entries, bad


def test_cache_matches_on_the_fly_and_reports_bad_files(tmp_path, small_corpus):
    root, entries, bad = small_corpus
    cache = FeatureCache(tmp_path / "cache", CFG)
    skipped = cache.update([e.path for e in entries + bad], workers=2, progress=False)
    assert len(skipped) == 2 and any("corrupt.wav: not a readable audio file" in s for s in skipped)
    assert any("empty.wav: empty file" in s for s in skipped)
    mel = MelSpectrogram(CFG)
    for e in entries:
        ref = mel(torch.from_numpy(sf.read(e.path, dtype="float32")[0])).T.numpy()
        assert cache[e.path].shape == ref.shape
        assert np.abs(cache[e.path].astype(np.float32) - ref).max() < 5e-3
    # reopened from disk: the same index, nothing recomputed
    again = FeatureCache(tmp_path / "cache", CFG)
    assert len(again) == 6 and all(e.path in again for e in entries)
    shards = sorted(again.dir.glob("shard-*.npy"))
    assert again.update([e.path for e in entries], progress=False) == []
    assert sorted(again.dir.glob("shard-*.npy")) == shards
    # a changed file is recomputed; a changed MelConfig uses another directory
    write(Path(entries[0].path), chirp(2.0), SR)
    assert entries[0].path not in again
    again.update([e.path for e in entries], progress=False)
    assert again.frames(entries[0].path) == mel(torch.from_numpy(chirp(2.0))).shape[-1]
    other = FeatureCache(tmp_path / "cache", MelConfig(hop_length=128))
    assert other.dir != again.dir and len(other) == 0


def test_segments_are_deterministic_and_cache_equals_on_the_fly(tmp_path, small_corpus):
    _, entries, _ = small_corpus
    cache = FeatureCache(tmp_path / "cache", CFG)
    cache.update([e.path for e in entries], workers=1, progress=False)
    cached = MelSegments(entries, CFG, segment_frames=64, cache=cache, seed=3)
    fly = MelSegments(entries, CFG, segment_frames=64, seed=3)
    assert cached.speakers == SpeakerMap(("alice", "bob"))
    for i in range(len(entries)):
        a, b = cached[i], fly[i]
        assert a["mel"].shape == (80, 64) and a["length"] == 64 and a["speaker"] == b["speaker"]
        assert float((a["mel"] - b["mel"]).abs().max()) < 5e-3
    first = [cached[i]["mel"] for i in range(6)]
    assert all(torch.equal(x, cached[i]["mel"]) for i, x in enumerate(first))  # same epoch, same crops
    cached.set_epoch(1)
    assert any(not torch.equal(x, cached[i]["mel"]) for i, x in enumerate(first))
    short = MelSegments(entries[:1], CFG, segment_frames=500)
    item = short[0]
    assert item["length"] == 87 and float(item["mel"][:, 87:].max()) == pytest.approx(np.log(CFG.log_floor))


def test_bad_file_in_a_dataset_is_skipped_with_its_path(small_corpus):
    _, entries, bad = small_corpus
    ds = MelSegments(entries[:2] + bad[:1], CFG, segment_frames=32)
    with pytest.warns(DataWarning, match="corrupt.wav"):
        item = ds[2]
    assert item["mel"].shape == (80, 32)
    assert list(ds.failed) == [bad[0].path]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds[2]  # known bad: skipped silently the second time
    keep, skipped = select([Entry("x.wav", -1.0), Entry("y.wav", 0.01), Entry("z.wav", 2.0, split="test")],
                           split="train", min_seconds=0.1)
    assert keep == [] and skipped == ["x.wav: not a readable audio file", "y.wav: too short (0.010 s)"]
    with pytest.raises(ConfigError, match="unknown speaker 'carol'; known: alice, bob"):
        SpeakerMap(("alice", "bob")).id("carol")


def test_noisy_clean_pairs_share_the_crop(tmp_path):
    clean = write(tmp_path / "clean.wav", chirp(2.0), SR)
    noisy_wave = chirp(2.0) + 0.05 * coloured_noise(2 * SR, 0.0, np.random.default_rng(0))
    noisy = write(tmp_path / "noisy.wav", noisy_wave, SR, "FLOAT")
    ds = MelSegments([Entry(str(noisy), 2.0, clean=str(clean))], CFG, segment_frames=40)
    item = ds[0]
    # aligned crops: the clean sweep sits inside the noisy one, so the noisy mel dominates it nearly everywhere
    assert item["clean"].shape == item["mel"].shape
    assert float((item["mel"] >= item["clean"] - 0.05).float().mean()) > 0.95


def test_on_the_fly_mixing(tmp_path):
    clean = [Entry(str(write(tmp_path / f"{i}.wav", chirp(1.5, fmin=200.0 * (i + 1)), SR)), 1.5) for i in range(3)]
    ds = MixedPairs(clean, CFG, snr_range=(0.0, 10.0), segment_frames=50, seed=0)
    a = ds[1]
    assert a["mel"].shape == a["clean"].shape == (80, 50) and 0.0 <= a["snr"] <= 10.0
    assert torch.equal(a["mel"], ds[1]["mel"])
    assert float((a["mel"] - a["clean"]).abs().mean()) > 0.1  # noise was added
