"""F0 tracking, pitch registers and the frequency warp that moves them, on signals of known F0 and on speech."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SR

from audiovae.data.manifest import Entry
from audiovae.features import MelConfig, MelSpectrogram
from audiovae.pitch import Register, register, speaker_registers, track_f0, warp_frequency, warp_ratios

CFG = MelConfig()


def voiced_tone(f0: np.ndarray | float, seconds: float = 1.0, harmonics: int = 20) -> torch.Tensor:
    """Harmonics of a (possibly time-varying) F0 with a falling spectral slope, like a vowel."""
    n = int(seconds * SR)
    f = np.broadcast_to(np.asarray(f0, dtype=np.float64), (n,))
    phase = 2 * np.pi * np.cumsum(f) / SR
    y = sum(np.sin(k * phase) / k for k in range(1, harmonics + 1))
    return torch.from_numpy((0.3 * y / np.abs(y).max()).astype(np.float32))


@pytest.mark.parametrize("f0", [70.0, 110.0, 185.0, 320.0])
def test_track_f0_finds_the_fundamental_of_harmonic_tones(f0):
    est, voiced = track_f0(voiced_tone(f0), CFG)
    assert est.shape == voiced.shape == (1 + SR // CFG.hop_length,)
    assert voiced.float().mean() > 0.9
    assert abs(float(est[voiced].median()) / f0 - 1) < 0.005


def test_track_f0_follows_a_glide_and_calls_noise_and_silence_unvoiced():
    glide = np.geomspace(100.0, 200.0, SR)
    est, voiced = track_f0(voiced_tone(glide), CFG)
    truth = glide[np.minimum(np.arange(est.numel()) * CFG.hop_length, SR - 1)]
    inner = slice(4, -4)  # edge frames see the padding
    cents = 1200 * np.abs(np.log2(est[inner].numpy() / truth[inner]))
    assert voiced[inner].all() and np.median(cents) < 10
    noise = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32))
    silence_then_tone = torch.cat([torch.zeros(SR // 2), voiced_tone(150.0, 0.5)])
    assert track_f0(noise, CFG)[1].float().mean() < 0.1
    _, v = track_f0(silence_then_tone, CFG)
    half = v.numel() // 2
    assert not v[: half - 3].any() and v[half + 3:].float().mean() > 0.9
    batch, _ = track_f0(torch.stack([voiced_tone(100.0), voiced_tone(200.0)]), CFG)  # batched like single calls
    torch.testing.assert_close(batch[1], track_f0(voiced_tone(200.0), CFG)[0])


def test_track_f0_agrees_with_pyin_on_speech(speech):
    est, voiced = track_f0(torch.from_numpy(speech), CFG)
    ref, ref_voiced, _ = librosa.pyin(speech, fmin=50, fmax=500, sr=SR, frame_length=1024, hop_length=256)
    n = min(est.numel(), len(ref))
    both = voiced[:n].numpy() & ref_voiced[:n]
    assert both.sum() > 0.3 * ref_voiced.sum()
    cents = 1200 * np.abs(np.log2(est[:n].numpy()[both] / ref[:n][both]))
    assert np.median(cents) < 20 and (cents > 300).mean() < 0.05  # few octave or gross errors


def test_register_and_the_warp_that_moves_it():
    vibrato = 150 * 2 ** (np.sin(2 * np.pi * 3 * np.arange(SR) / SR) / 12)  # +-1 semitone around 150 Hz
    f0, voiced = track_f0(voiced_tone(vibrato), CFG)
    reg = register([f0], [voiced])
    assert abs(reg.hz / 150 - 1) < 0.01 and 0.03 < reg.std < 0.06  # std of +-1 st sine: 0.041 in log-F0
    assert register([torch.zeros(10)], [torch.zeros(10, dtype=torch.bool)]) is None
    target = Register(math.log(220.0), reg.std * 2)
    ratio = warp_ratios(f0, voiced, reg, target, smooth=1)
    moved = torch.log(f0[voiced] * ratio[voiced])
    assert abs(float(moved.mean()) - target.mean) < 0.01 and abs(float(moved.std()) / target.std - 1) < 0.05
    assert warp_ratios(f0, voiced, reg, Register(reg.mean + 5, reg.std)).max() <= 2.0  # limited to an octave


def test_warp_frequency_moves_partials_and_the_mel_follows():
    mel = MelSpectrogram(CFG)
    low, high = voiced_tone(120.0), voiced_tone(120.0 * 2 ** (7 / 12))  # a fifth apart
    warped = warp_frequency(mel.magnitude(low), 2 ** (7 / 12))
    est, voiced = track_f0(torch.from_numpy(librosa.griffinlim(warped.numpy(), n_iter=32, hop_length=256,
                                                                     n_fft=1024, random_state=0)), CFG)
    assert abs(float(est[voiced].median()) / (120 * 2 ** (7 / 12)) - 1) < 0.01
    # in the log-mel domain the warped low tone is close to the real high one, far from the original
    near = (mel.from_magnitude(warped) - mel(high)).abs().mean()
    far = (mel(low) - mel(high)).abs().mean()
    assert near < 0.5 * far
    torch.testing.assert_close(mel.from_magnitude(mel.magnitude(low)), mel(low), atol=1e-4, rtol=0)
    per_frame = warp_frequency(mel.magnitude(low), torch.full((mel.magnitude(low).shape[-1],), 2 ** (7 / 12)))
    torch.testing.assert_close(per_frame, warped)


def test_speaker_registers_measures_each_voice_from_its_files(tmp_path):
    entries = []
    for speaker, f0 in (("low", 100.0), ("high", 210.0)):
        for i in range(3):
            path = tmp_path / f"{speaker}_{i}.wav"
            sf.write(path, voiced_tone(f0 * (1 + 0.02 * i), 0.5).numpy(), SR)
            entries.append(Entry(str(path), 0.5, speaker=speaker))
    (tmp_path / "broken.wav").write_text("not audio")
    entries.append(Entry(str(tmp_path / "broken.wav"), 0.5, speaker="low"))
    regs = speaker_registers(entries, CFG)
    assert set(regs) == {"low", "high"}
    assert abs(regs["low"].hz / 102 - 1) < 0.02 and abs(regs["high"].hz / 214 - 1) < 0.02
    back = Register.from_list(regs["low"].to_list())  # as stored in a checkpoint's info
    assert (back.mean, back.std) == pytest.approx((regs["low"].mean, regs["low"].std), abs=1e-4)
