"""Streaming (`convert --stream`, `denoise --stream`): blocks in, blocks out with a fixed latency, equal to the
offline output (denoising, exactly; conversion, within the stated log-mel tolerance)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SR, chirp, run_cli

from audiovae.checkpoint import load_checkpoint
from audiovae.errors import ConfigError
from audiovae.features import MelSpectrogram
from audiovae.pipelines.stream import Stream, StreamConfig, stream_array
from audiovae.pretrained import resolve_model


def local(x: np.ndarray) -> np.ndarray:
    """A local, deterministic function: a 31-tap moving average (15 samples of context each way)."""
    k = np.ones(31, np.float32) / 31
    return np.stack([np.convolve(c, k, mode="same") for c in x])


def test_a_local_function_streams_exactly_with_the_stated_latency():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5000)).astype(np.float32)
    for config in (StreamConfig(block=256, context=32), StreamConfig(block=256, context=64, fade=64, align=32)):
        for chunk in (1, 100, 777, 5000, 9000):
            y = stream_array(local, x, config, chunk)
            assert y.shape == x.shape and np.allclose(y, local(x), atol=1e-6), (config, chunk)
    config = StreamConfig(block=256, context=32)
    stream = Stream(local, config)
    assert stream.push(x[:, : config.latency - 1]).shape == (2, 0)  # nothing before block + lookahead arrived
    assert stream.push(x[:, config.latency - 1: config.latency]).shape == (2, config.block)
    with pytest.raises(ConfigError, match="multiples of align"):
        StreamConfig(block=300, context=32, align=64)


def _noisy_speech(speech_path, rate: int = SR) -> np.ndarray:
    import librosa

    y, _ = librosa.load(speech_path, sr=rate)
    y = np.concatenate([y, y[::-1], y])[: 6 * rate]
    return (y + 0.03 * np.random.default_rng(1).standard_normal(y.shape)).astype(np.float32)[None]


@pytest.fixture(scope="module")
def denoiser():
    from audiovae.pipelines.denoise import Denoiser

    return Denoiser(load_checkpoint(resolve_model("denoise")))


def test_denoising_streamed_equals_offline(speech_path, denoiser):
    from audiovae.pipelines.denoise import stream_processor

    x = _noisy_speech(speech_path)
    process, config = stream_processor(denoiser, SR, block=0.5)
    assert config.context / SR >= 1.27  # the model's receptive field
    y = stream_array(process, x, config, 512)
    offline = process(x)
    assert float(np.abs(y - offline).max()) < 1e-5
    # at another rate the frame grids cannot meet: close, not equal
    x16 = _noisy_speech(speech_path, 16000)
    process, config = stream_processor(denoiser, 16000, block=0.5)
    y, offline = stream_array(process, x16, config, 400), process(x16)
    assert 10 * np.log10(np.sum(offline ** 2) / np.sum((y - offline) ** 2)) > 30


def test_conversion_streamed_is_within_tolerance_of_offline(speech_path):
    from audiovae.pipelines.convert import stream_processor

    ckpt = load_checkpoint(resolve_model("voice_conversion"))
    x = _noisy_speech(speech_path)
    process, config = stream_processor(ckpt, "B", block=0.5)
    y, offline = stream_array(process, x, config, 1024), process(x)
    mel = MelSpectrogram(ckpt.mel)
    difference = float((mel(torch.from_numpy(y)) - mel(torch.from_numpy(offline))).abs().mean())
    source = float((mel(torch.from_numpy(x)) - mel(torch.from_numpy(offline))).abs().mean())
    assert y.shape == x.shape and difference < 0.1 and difference < source / 4, (difference, source)


def test_the_stream_options_of_the_commands(tmp_path, speech_path):
    stereo = np.concatenate([_noisy_speech(speech_path, 16000)] * 2).T
    sf.write(tmp_path / "in.flac", stereo, 16000, "PCM_24")
    r = run_cli("denoise", tmp_path / "in.flac", "--stream", "--block", "0.25", "-o", tmp_path / "d.flac")
    assert r.returncode == 0 and "streamed with 1.77 s latency" in r.stdout, r.stdout + r.stderr
    info = sf.info(tmp_path / "d.flac")
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 2, len(stereo), "PCM_24")
    r = run_cli("convert", tmp_path / "in.flac", "--speaker", "C", "--stream", "-o", tmp_path / "c.wav")
    assert r.returncode == 0 and "-> C, streamed with" in r.stdout, r.stderr
    assert sf.info(tmp_path / "c.wav").samplerate == SR
    assert abs(sf.info(tmp_path / "c.wav").duration - len(stereo) / 16000) < 0.01
    r = run_cli("denoise", tmp_path / "in.flac", "--stream", "--method", "prior", "--model", "music",
                "-o", tmp_path / "p.wav")
    assert r.returncode == 1 and "streaming takes --method mask" in r.stderr and not (tmp_path / "p.wav").exists()
    r = run_cli("convert", tmp_path / "in.flac", "--speaker", "C", "--stream", "--pitch", "shift", "-o",
                tmp_path / "x.wav")
    assert r.returncode == 1 and "--pitch shift" in r.stderr and not (tmp_path / "x.wav").exists()
    sf.write(tmp_path / "short.wav", chirp(0.01), SR)
    r = run_cli("convert", tmp_path / "short.wav", "--speaker", "C", "--stream", "-o", tmp_path / "s.wav")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "s.wav").exists()
