"""audio.load / save / info on real files of every common format, depth, rate and channel count."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SR, chirp, sine, write

from audiovae import audio
from audiovae.audio import AudioError, AudioWarning
from audiovae.fileio import OutputError


def dominant_freq(y: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.argmax(spec) * sr / len(y))


@pytest.mark.parametrize(("ext", "subtype", "tol"), [
    ("wav", "PCM_16", 1e-4), ("wav", "PCM_24", 1e-6), ("wav", "FLOAT", 1e-7), ("wav", "PCM_U8", 1e-2),
    ("flac", "PCM_16", 1e-4), ("flac", "PCM_24", 1e-6), ("aiff", "PCM_16", 1e-4),
])
def test_lossless_round_trip(tmp_path, ext, subtype, tol):
    y = chirp(1.0)
    path = audio.save(tmp_path / f"x.{ext}", y, SR, subtype=subtype)
    assert sf.info(path).subtype == subtype
    back, sr = audio.load(path)
    assert sr == SR and back.dtype == torch.float32 and back.shape == (len(y),)
    assert np.abs(back.numpy() - y).max() <= tol


@pytest.mark.parametrize("ext", ["ogg", "mp3"])
def test_lossy_formats_keep_the_tone(tmp_path, ext):
    y = sine(1000.0, 1.0, SR)
    path = audio.save(tmp_path / f"tone.{ext}", y, SR)
    back, sr = audio.load(path, SR)
    assert abs(dominant_freq(back.numpy(), sr) - 1000.0) < 5.0
    assert abs(len(back) - len(y)) < 0.1 * SR  # codecs pad a little
    rms = float(back.pow(2).mean().sqrt())
    assert abs(rms - 0.5 / np.sqrt(2)) < 0.05


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000, 96000])
def test_resampling_keeps_pitch_and_duration(tmp_path, rate):
    path = write(tmp_path / f"s{rate}.wav", sine(440.0, 1.5, rate), rate, "PCM_16")
    y, sr = audio.load(path, SR)
    assert sr == SR
    assert abs(len(y) - int(1.5 * SR)) <= 1
    assert abs(dominant_freq(y.numpy(), SR) - 440.0) < 2.0


def test_keep_native_rate(tmp_path):
    path = write(tmp_path / "s.wav", sine(440.0, 0.5, 16000), 16000)
    y, sr = audio.load(path)
    assert sr == 16000 and len(y) == 8000


@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel_is_averaged_to_mono(tmp_path, channels):
    base = sine(300.0, 0.5, SR)
    data = np.stack([base * (c + 1) / channels for c in range(channels)], axis=1)
    path = write(tmp_path / f"c{channels}.wav", data, SR, "FLOAT")
    y, _ = audio.load(path)
    np.testing.assert_allclose(y.numpy(), data.mean(axis=1), atol=1e-6)
    multi, _ = audio.load(path, mono=False)
    assert multi.shape == (channels, len(base))


def test_info_levels(tmp_path):
    path = write(tmp_path / "tone.wav", np.stack([sine(440.0, 2.0, 16000)] * 2, axis=1), 16000, "PCM_16")
    i = audio.info(path)
    assert (i.sample_rate, i.channels, i.frames) == (16000, 2, 32000)
    assert i.duration == pytest.approx(2.0)
    assert i.peak_dbfs == pytest.approx(-6.02, abs=0.05)
    assert i.rms_dbfs == pytest.approx(-9.03, abs=0.05)  # sine RMS is 3.01 dB under its peak
    assert i.clipped_samples == 0


def _bad_files(tmp_path):
    (tmp_path / "folder.wav").mkdir()
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("this is not audio\n" * 20)
    good = write(tmp_path / "good.wav", chirp(1.0), SR, "PCM_16")
    (tmp_path / "header_only.wav").write_bytes(good.read_bytes()[:44])
    nan = chirp(0.5)
    nan[100] = np.nan
    write(tmp_path / "nan.wav", nan, SR, "FLOAT")
    inf = chirp(0.5)
    inf[7] = np.inf
    write(tmp_path / "inf.wav", inf, SR, "FLOAT")
    write(tmp_path / "short.wav", chirp(0.01), SR, "PCM_16")
    return {
        "missing.wav": "no such file", "folder.wav": "is a directory", "empty.wav": "empty file",
        "text.wav": "not a readable audio file", "header_only.wav": "no samples", "nan.wav": "NaN or Inf",
        "inf.wav": "NaN or Inf", "short.wav": "too short",
    }


def test_bad_inputs_raise_one_line_naming_the_file(tmp_path):
    for name, problem in _bad_files(tmp_path).items():
        with pytest.raises(AudioError) as exc:
            audio.load(tmp_path / name, SR, min_samples=1024)
        msg = str(exc.value)
        assert msg.startswith(str(tmp_path / name)) and problem in msg and "\n" not in msg, msg


def test_silent_and_clipped_warn(tmp_path):
    write(tmp_path / "silent.wav", np.zeros(SR, np.float32), SR)
    with pytest.warns(AudioWarning, match="silent"):
        audio.load(tmp_path / "silent.wav")
    write(tmp_path / "clipped.wav", np.clip(3 * sine(200.0, 1.0, SR), -1, 1), SR)
    with pytest.warns(AudioWarning, match="clipped"):
        audio.load(tmp_path / "clipped.wav")
    write(tmp_path / "fine.wav", sine(200.0, 1.0, SR), SR)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        audio.load(tmp_path / "fine.wav")


def test_save_is_atomic_when_the_writer_fails(tmp_path, monkeypatch):
    target = audio.save(tmp_path / "out.wav", sine(100.0, 0.5, SR), SR)
    before = target.read_bytes()

    def broken_write(file, data, *args, **kwargs):
        with open(file, "wb") as f:
            f.write(b"RIFF half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sf, "write", broken_write)
    with pytest.raises(OutputError, match=r"could not be written \(No space left on device\); the existing file is "
                                          "unchanged"):
        audio.save(target, sine(200.0, 0.5, SR), SR)
    with pytest.raises(OutputError, match="could not be written .*nothing was written"):
        audio.save(tmp_path / "new.wav", sine(200.0, 0.5, SR), SR)
    assert target.read_bytes() == before  # the previous file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]  # no temp file, no partial new file


def test_save_makes_a_normal_file_and_refuses_bad_values(tmp_path):
    path = audio.save(tmp_path / "a.flac", torch.from_numpy(np.stack([sine(100.0, 0.2, SR)] * 2)), SR)
    assert sf.info(path).channels == 2
    mask = os.umask(0)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~mask)
    with pytest.raises(AudioError, match="NaN"):
        audio.save(tmp_path / "b.wav", np.array([0.0, np.nan], np.float32), SR)
    with pytest.raises(AudioError, match="unknown output format"):
        audio.save(tmp_path / "c.xyz", sine(100.0, 0.2, SR), SR)
    with pytest.raises(OutputError, match="does not exist"):
        audio.save(tmp_path / "nodir" / "d.wav", sine(100.0, 0.2, SR), SR)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.flac"]
