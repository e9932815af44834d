"""MelConfig / MelSpectrogram / inverse: parity with librosa on real signals, batching, devices, autocast."""

from __future__ import annotations

import dataclasses

import librosa
import numpy as np
import pytest
import torch
from conftest import SR, chirp, devices

from audiovae.errors import ConfigError
from audiovae.features import (
    MelConfig,
    MelSpectrogram,
    hann_window,
    istft,
    mel_filterbank,
    mel_to_linear,
    n_frames,
    stft,
)

CONFIGS = [
    MelConfig(),
    MelConfig(mel_scale="htk", mel_norm=None, pad_mode="constant"),
    MelConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=160, n_mels=64, f_min=50.0, f_max=7600.0),
    MelConfig(power=2.0, n_mels=128, f_max=11025.0),
]


def librosa_logmel(y: np.ndarray, c: MelConfig) -> np.ndarray:
    mel = librosa.feature.melspectrogram(y=y, sr=c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length,
                                         win_length=c.win_length, n_mels=c.n_mels, fmin=c.f_min, fmax=c.f_max,
                                         power=c.power, center=c.center, pad_mode=c.pad_mode,
                                         htk=c.mel_scale == "htk", norm=c.mel_norm)
    return np.log(np.maximum(mel, c.log_floor))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.sample_rate}-{c.n_fft}-{c.mel_scale}-{c.power}")
def test_filterbank_equals_librosa(config):
    ref = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels, fmin=config.f_min,
                              fmax=config.f_max, htk=config.mel_scale == "htk", norm=config.mel_norm)
    np.testing.assert_allclose(mel_filterbank(config).numpy(), ref, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.sample_rate}-{c.n_fft}-{c.mel_scale}-{c.power}")
def test_logmel_parity_with_librosa(config, speech):
    y = librosa.resample(speech, orig_sr=SR, target_sr=config.sample_rate) if config.sample_rate != SR else speech
    ours = MelSpectrogram(config)(torch.from_numpy(y)).numpy()
    ref = librosa_logmel(y, config)
    assert ours.shape == ref.shape == (config.n_mels, n_frames(len(y), config))
    assert np.abs(ours - ref).max() <= 1e-3


@pytest.mark.parametrize("device", devices())
def test_batched_and_chunked_match_single(device):
    config = MelConfig()
    # sweeps over a -40 dB noise floor: without one, bands the sweep never visits sit at float32 FFT round-off,
    # where any two FFT implementations differ by more than 1e-3 nats
    noise = 5e-3 * np.random.default_rng(0).standard_normal((3, int(7.0 * SR))).astype(np.float32)
    batch = torch.from_numpy(np.stack([chirp(7.0), chirp(7.0, fmin=200.0, amp=0.2), chirp(7.0, fmax=3000.0)]) + noise)
    mel = MelSpectrogram(config, chunk_frames=64).to(device)
    whole = MelSpectrogram(config, chunk_frames=10**9).to(device)
    out = mel(batch.to(device)).cpu()
    assert out.shape == (3, 80, n_frames(batch.shape[-1], config))
    for i in range(3):
        torch.testing.assert_close(out[i], whole(batch[i].to(device)).cpu(), atol=1e-4, rtol=0)
        assert np.abs(out[i].numpy() - librosa_logmel(batch[i].numpy(), config)).max() <= 1e-3
    # leading dimensions are kept: [B, C, T] -> [B, C, n_mels, frames]
    assert mel(batch.view(1, 3, -1).to(device)).shape == (1, 3, 80, out.shape[-1])


@pytest.mark.parametrize("device", devices())
def test_safe_under_autocast(device):
    y = torch.from_numpy(chirp(2.0)).to(device)
    mel = MelSpectrogram().to(device)
    ref = mel(y)
    dtype = torch.bfloat16
    with torch.autocast(device_type=device, dtype=dtype):
        out = mel(y)
        inv = mel.inverse(out)
    assert out.dtype == torch.float32 and inv.dtype == torch.float32
    torch.testing.assert_close(out, ref)


def test_inverse_recovers_a_consistent_magnitude(speech):
    config = MelConfig()
    mel = MelSpectrogram(config)
    y = torch.from_numpy(speech)
    logmel = mel(y)
    fb = mel.mel_fb
    errors = {}
    for n_iter in (0, 32):
        mag = mel_to_linear(torch.exp(logmel), fb, n_iter=n_iter)
        assert mag.shape == (config.n_freqs, logmel.shape[-1]) and bool((mag >= 0).all())
        errors[n_iter] = float((torch.log((fb @ mag).clamp_min(1e-5)) - logmel).abs().mean())
    assert errors[32] < errors[0]  # NNLS refinement beats the clamped pseudo-inverse
    assert errors[32] < 0.1  # re-analysed mel within 0.1 nats on average
    # batched inverse equals per-item inverse
    two = torch.stack([logmel, logmel - 1.0])
    torch.testing.assert_close(mel.inverse(two)[1], mel.inverse(logmel - 1.0))


def test_config_validation_names_the_parameter():
    for kwargs, name in [({"hop_length": 0}, "hop_length"), ({"win_length": 2048}, "win_length"),
                         ({"f_max": 12000.0}, "f_max"), ({"mel_scale": "bark"}, "mel_scale"),
                         ({"f_min": 9000.0}, "f_min"), ({"log_floor": 0.0}, "log_floor")]:
        with pytest.raises(ConfigError, match=f"MelConfig.{name}="):
            MelConfig(**kwargs)
    with pytest.raises(ConfigError, match="unknown field"):
        MelConfig.from_dict({"n_mel": 80})


def test_fingerprint_and_dict_round_trip():
    c = MelConfig()
    assert MelConfig.from_dict(c.to_dict()) == c
    assert c.fingerprint() == MelConfig().fingerprint()
    assert c.fingerprint() != dataclasses.replace(c, hop_length=128).fingerprint()


def test_too_short_input_is_a_clear_error():
    with pytest.raises(ConfigError, match="shorter than one analysis frame"):
        MelSpectrogram()(torch.zeros(100))


@pytest.mark.parametrize("config", [MelConfig(), MelConfig(win_length=800), MelConfig(n_fft=1024, hop_length=200)],
                         ids=["default", "short-window", "hop-not-dividing"])
@pytest.mark.parametrize("length", [None, 22050, 22050 + 300])
def test_istft_equals_torch_istft(config, length):
    window = hann_window(config)
    y = torch.from_numpy(np.stack([chirp(1.0), chirp(1.0, fmin=500.0)]))
    spec = stft(y, config, window)
    ref = torch.istft(spec, n_fft=config.n_fft, hop_length=config.hop_length, win_length=config.win_length,
                      window=window, center=True, length=length)
    ours = istft(spec, config, window, length)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_parity_with_torchaudio_where_it_imports(speech):
    """torchaudio is optional (its PyPI wheels need CUDA); where it imports, its mel spectrogram agrees with ours."""
    try:
        import torchaudio
    except Exception as e:  # ImportError, or OSError for missing CUDA libraries
        pytest.skip(f"torchaudio does not import here: {type(e).__name__}")
    c = MelConfig()
    ta = torchaudio.transforms.MelSpectrogram(sample_rate=c.sample_rate, n_fft=c.n_fft, win_length=c.win_length,
                                              hop_length=c.hop_length, f_min=c.f_min, f_max=c.f_max, n_mels=c.n_mels,
                                              power=c.power, center=c.center, pad_mode=c.pad_mode, norm="slaney",
                                              mel_scale="slaney")
    y = torch.from_numpy(speech)
    ref = torch.log(ta(y).clamp_min(c.log_floor))
    assert float((MelSpectrogram(c)(y) - ref).abs().max()) <= 1e-3
