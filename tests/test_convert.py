"""Voice conversion pipeline and CLI on a tiny speaker-conditioned model (behaviour, not quality: quality needs a
trained model and is measured by the voice-conversion recipe)."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SR, TEST_SEED, chirp, run_cli, write
from safetensors import safe_open

from audiovae.checkpoint import Checkpoint, save_checkpoint
from audiovae.errors import ConfigError
from audiovae.features import MelConfig, MelSpectrogram
from audiovae.models import build_model
from audiovae.pipelines.convert import (
    Voice,
    check_pitch,
    convert,
    estimate_speaker,
    source_logmel,
    table_voice,
)
from audiovae.pipelines.voices import encoder_embedding, reference_voice
from audiovae.pitch import Register
from audiovae.pretrained import STREAM_VOCODER, bundled_path
from audiovae.vocoders import GriffinLim

NAMES = ["anna", "ben", "cleo"]


def tiny_cvae(seed: int = TEST_SEED, **options) -> Checkpoint:
    """A CVAE whose speakers decode very differently (large random FiLM embeddings), as a trained one would."""
    torch.manual_seed(seed)
    model = build_model("cvae", {"n_speakers": 3, "channels": (32, 32), "latent_dim": 8, "blocks": 1,
                                 "speaker_encoder": True} | options).eval()
    with torch.no_grad():
        model.speakers.weight.normal_(0.0, 3.0)
        for block in model.modules():
            if hasattr(block, "film") and block.film is not None:
                block.film.proj.weight.normal_(0.0, 0.3)
    return Checkpoint(model, MelConfig(), list(NAMES), task="convert")


def test_estimate_speaker_finds_the_voice_that_made_the_input():
    ckpt = tiny_cvae()
    mel = MelSpectrogram()(torch.from_numpy(chirp(1.0)))[None]
    for k in range(3):
        with torch.no_grad():
            z = ckpt.model.encode(mel, torch.tensor([k])).mode()
            made_by_k = ckpt.model.decode(z, torch.tensor([k]))[..., : mel.shape[-1]]
        assert estimate_speaker(made_by_k, ckpt) == k


def test_convert_keeps_length_and_changes_the_voice():
    ckpt = tiny_cvae()
    wave = torch.from_numpy(chirp(1.3))
    out_b, source = convert(wave, ckpt, "ben", source="anna")
    out_c, _ = convert(wave, ckpt, 2, source="anna")
    assert source == "anna" and out_b.shape == wave.shape and torch.isfinite(out_b).all()
    mel = MelSpectrogram()
    assert float((mel(out_b) - mel(out_c)).abs().mean()) > 0.05  # a different target, a different voice
    _, unneeded = convert(wave, ckpt, "ben")  # the encoder ignores the speaker: nothing to estimate
    assert unneeded is None
    conditioned = tiny_cvae(encoder_speaker=True)  # the encoder needs the source: estimated from the audio
    source_mel, vocoder = mel(wave)[None], GriffinLim(conditioned.mel, n_iter=32)
    for k, name in enumerate(NAMES):  # audio made in each voice (decoded as k, vocoded) is estimated as k's
        with torch.no_grad():
            z = conditioned.model.encode(source_mel, torch.tensor([k])).mode()
            made_by_k = vocoder(conditioned.model.decode(z, torch.tensor([k])), length=wave.numel())[0]
        assert convert(made_by_k, conditioned, "ben", vocoder=GriffinLim(conditioned.mel, n_iter=1))[1] == name
    embedding = encoder_embedding([wave, wave[:SR]], ckpt)
    assert embedding.shape == (1, 64)
    out_e, _ = convert(wave, ckpt, Voice("e", embedding))
    out_a, _ = convert(wave, ckpt, Voice("a", ckpt.model.speakers.weight[:1]))  # anna's row, as an embedding
    torch.testing.assert_close(out_a, convert(wave, ckpt, "anna")[0])
    assert out_e.shape == wave.shape and float((mel(out_e) - mel(out_a)).abs().mean()) > 0.01
    with pytest.raises(ConfigError, match="no speaker encoder"):
        encoder_embedding([wave], tiny_cvae(speaker_encoder=False))
    plain = Checkpoint(build_model("vae", {"channels": (32, 32), "latent_dim": 8}), MelConfig())
    with pytest.raises(ConfigError, match="has no speakers"):
        convert(wave, plain, "ben")


def harmonic(f0: float, seconds: float = 1.0) -> torch.Tensor:
    t = np.arange(int(seconds * SR)) / SR
    y = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 25))
    return torch.from_numpy((0.3 * y / np.abs(y).max()).astype(np.float32))


def test_pitch_register_is_moved_to_the_target_before_encoding():
    ckpt = tiny_cvae()
    ckpt.info["pitch"] = {"ben": Register(float(np.log(240.0)), 0.1).to_list()}
    ben, anna = table_voice(ckpt, "ben"), table_voice(ckpt, "anna")
    assert abs(ben.register.hz - 240) < 0.1 and anna.register is None  # anna's register was not recorded
    mel = MelSpectrogram()
    low, high = harmonic(120.0), harmonic(240.0)
    moved = source_logmel(low, ckpt, ben, "shift")  # an octave up: close to the real 240 Hz tone
    assert (moved - mel(high)[None]).abs().mean() < 0.5 * (mel(low) - mel(high)).abs().mean()
    torch.testing.assert_close(source_logmel(low, ckpt, ben, "model"), mel(low)[None])
    torch.testing.assert_close(source_logmel(low, ckpt, anna, "shift"), mel(low)[None])  # nothing to move to
    assert (source_logmel(low, ckpt, anna, "12") - moved).abs().mean() < 0.02  # an octave by hand: the same
    with torch.no_grad():  # convert encodes the moved input
        z = ckpt.model.encode(moved).mode()
        expected = ckpt.model.decode(z, ben.condition)[..., : moved.shape[-1]]
    vocoder = GriffinLim(ckpt.mel, n_iter=4)
    torch.testing.assert_close(convert(low, ckpt, "ben", vocoder=vocoder, pitch="shift")[0],
                               vocoder(expected, length=SR)[0])
    voice = reference_voice(ckpt, [harmonic(200.0, 2.0), harmonic(210.0, 1.0)], "dana", steps=5)
    assert voice.name == "dana" and abs(voice.register.hz / 203 - 1) < 0.02 and not voice.in_table
    assert (source_logmel(low, ckpt, voice, "shift") - mel(low)[None]).abs().mean() > 0.1  # to the reference's
    assert check_pitch("-3.5") == -3.5 and check_pitch("model") == "model" and check_pitch("shift") == "shift"
    for bad in ("up", "auto"):
        with pytest.raises(ConfigError, match=f"--pitch '{bad}'"):
            check_pitch(bad)


def test_convert_and_speakers_commands(tmp_path):
    ckpt = save_checkpoint(tmp_path / "vc.safetensors", tiny_cvae())
    r = run_cli("speakers", "--model", ckpt)
    assert r.returncode == 0 and r.stdout.split()[:6] == ["0", "anna", "1", "ben", "2", "cleo"]
    (tmp_path / "in").mkdir()
    src = write(tmp_path / "in" / "a.wav", chirp(1.0), SR)
    write(tmp_path / "in" / "b.flac", chirp(0.7, sr=16000), 16000)
    (tmp_path / "in" / "bad.wav").write_text("not audio")
    r = run_cli("convert", tmp_path / "in", "--speaker", "cleo", "--model", ckpt, "--out-dir", tmp_path / "out",
                "--source-speaker", "anna")
    assert r.returncode == 1 and "converted 2 of 3 files" in r.stdout and "bad.wav: not a readable" in r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_cleo.wav", "b_cleo.wav"]
    assert sf.info(tmp_path / "out" / "b_cleo.wav").frames == round(0.7 * SR)  # at the model's rate
    r = run_cli("convert", src, "-s", "1", "-m", ckpt, "-o", tmp_path / "one.wav")
    assert r.returncode == 0 and "-> ben" in r.stdout and sf.info(tmp_path / "one.wav").frames == SR
    r = run_cli("convert", src, "-s", "dave", "-m", ckpt, "-o", tmp_path / "x.wav")
    assert r.returncode == 1 and r.stderr.strip() == ("audiovae: error: unknown speaker 'dave'; choose one of: "
                                                      "anna, ben, cleo") and not (tmp_path / "x.wav").exists()
    r = run_cli("convert", src, "-s", "ben", "--pitch", "high", "-m", ckpt, "-o", tmp_path / "x.wav")
    assert r.returncode == 1 and "--pitch 'high'" in r.stderr and not (tmp_path / "x.wav").exists()
    r = run_cli("convert", src, "-s", "ben", "--pitch", "-4", "--vocoder", "griffin-lim", "-m", ckpt, "-o",
                tmp_path / "x.wav")
    assert r.returncode == 0 and sf.info(tmp_path / "x.wav").frames == SR


def test_one_shot_conversion_from_a_reference_recording(tmp_path):
    ckpt = save_checkpoint(tmp_path / "vc.safetensors", tiny_cvae())
    src = write(tmp_path / "src.wav", chirp(1.0), SR)
    ref = write(tmp_path / "dana.wav", chirp(3.2, fmin=200.0), SR)
    r = run_cli("convert", src, "--speaker-ref", ref, "-m", ckpt, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "-> dana" in r.stdout and sf.info(tmp_path / "src_dana.wav").frames == SR
    assert "any other voice: --speaker-ref" in run_cli("speakers", "-m", ckpt).stdout
    (tmp_path / "bad.wav").write_text("not audio")
    r = run_cli("convert", src, "--speaker-ref", tmp_path / "bad.wav", "-m", ckpt, "-o", tmp_path / "y.wav")
    assert r.returncode == 1 and "bad.wav" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    for both_or_neither in (["-s", "anna", "--speaker-ref", ref], []):
        r = run_cli("convert", src, *both_or_neither, "-m", ckpt, "-o", tmp_path / "y.wav")
        assert r.returncode == 1 and "one of the two" in r.stderr
    assert not (tmp_path / "y.wav").exists()
    plain = save_checkpoint(tmp_path / "plain.safetensors", tiny_cvae(speaker_encoder=False))
    r = run_cli("convert", src, "--speaker-ref", ref, "-m", plain, "-o", tmp_path / "plain.wav")
    assert r.returncode == 0 and sf.info(tmp_path / "plain.wav").frames == SR  # fitting needs no speaker encoder


def test_evaluate_vc_reports_converted_ceiling_and_floor(tmp_path):
    """On a tiny parallel espeak-ng corpus (three voices, three sentences) with an untrained model: the table has
    its three rows, and the references behave as they must (the real source is nearest its own voice)."""
    import json
    import shutil
    import subprocess

    from audiovae.data.manifest import Entry, write_manifest

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    pytest.importorskip("resemblyzer")
    voices = {"anna": "en+f3", "ben": "en-us", "cleo": "en+f4"}
    texts = ["The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
             "It is easy to tell the depth of a well."]
    entries = []
    for name, voice in voices.items():
        for i, text in enumerate(texts):
            path = tmp_path / "corpus" / name / f"{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
            entries.append(Entry(str(path.relative_to(tmp_path / "corpus")), sf.info(path).duration, "test",
                                 speaker=name, text=text))
    write_manifest(tmp_path / "corpus" / "manifest.jsonl", entries)
    ckpt = save_checkpoint(tmp_path / "vc.safetensors", tiny_cvae())
    r = run_cli("evaluate", "vc", "--model", ckpt, "--data", tmp_path / "corpus", "--sentences", "1",
                "--json", tmp_path / "vc.json")
    assert r.returncode == 0, r.stderr
    assert "6 ordered speaker pairs x 1 held-out sentences" in r.stdout
    assert all(row in r.stdout for row in ("converted", "ceiling", "floor"))
    report = json.loads((tmp_path / "vc.json").read_text())
    floor, ceiling = report["floor"], report["ceiling"]
    assert floor["sim_source"] > floor["sim_target"] and floor["closer_to_target"] == 0.0
    assert ceiling["closer_to_target"] == 1.0 and ceiling["mcd_db"] < floor["mcd_db"]
    assert 0 < ceiling["mcd_db"] < 2.0 < floor["mcd_db"]  # the vocoder alone distorts far less than another voice
    pairs = report["per_pair"]
    assert len(pairs) == 6 and report["converted"]["mcd_db"] == pytest.approx(np.mean([v["mcd_db"]
                                                                                       for v in pairs.values()]))
    # an untrained model converts worse than not converting at all (the floor), and MCD must see it; bounded: a
    # broken alignment or scale gives far more than 20 dB
    assert all(floor["mcd_db"] < v["mcd_db"] < 20.0 for v in pairs.values()), pairs

    (tmp_path / "real" / "dora").mkdir(parents=True)  # "real" recordings of a voice outside the corpus
    for i, text in enumerate(texts + ["A large size in stockings is hard to sell."]):
        subprocess.run(["espeak-ng", "-v", "en+m3", "-w", str(tmp_path / "real" / "dora" / f"{i}.wav"), text],
                       check=True)
    # the streaming network: from an untrained model's log-mels, Griffin-Lim (faithful to them, as is the bundled
    # neural vocoder, which ends in Griffin-Lim iterations) gives no voiced frame
    r = run_cli("evaluate", "vc", "--model", ckpt, "--data", tmp_path / "corpus", "--real", tmp_path / "real" / "dora",
                "--files", "2", "--vocoder", STREAM_VOCODER, "--json", tmp_path / "real.json")
    assert r.returncode == 0, r.stderr
    assert "2 real recordings of dora x 3 targets" in r.stdout
    real = json.loads((tmp_path / "real.json").read_text())
    assert real["floor"]["sim_source"] > real["floor"]["sim_target"] and real["floor"]["closer_to_target"] == 0.0
    assert real["converted"]["f0_error_st"] >= 0 and real["targets"] == NAMES
    r = run_cli("evaluate", "vc", "--model", ckpt, "--data", tmp_path / "corpus", "--real", tmp_path / "real" / "dora",
                "--files", "4")
    assert r.returncode == 1 and "need 4 to convert" in r.stderr


# --- the bundled model ----------------------------------------------------------------------------------------------

def median_f0(wave: np.ndarray) -> float:
    f0, voiced, _ = librosa.pyin(wave, fmin=60, fmax=400, sr=SR, frame_length=1024)
    return float(np.median(f0[voiced]))


def test_bundled_model_converts_the_example_offline(tmp_path, example_path):
    """The README's main job: `audiovae convert example.wav --speaker B` with the model inside the package. The
    result must carry the target's pitch register (a low and a high voice of the table: C = kal, D = kal_hi)."""
    path = bundled_path("voice_conversion")
    assert path.stat().st_size <= 15e6
    with safe_open(path, "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} <= {"F16", "I64"}
    r = run_cli("speakers")
    assert r.returncode == 0 and [line.split()[1] for line in r.stdout.splitlines()[:8]] == list("ABCDEFGH")
    assert r.stdout.splitlines()[2].split()[:7] == ["2", "C", "kal", "male", "F0", "103", "Hz"]
    assert "--speaker-ref" in r.stdout
    r = run_cli("convert", example_path, "--speaker", "B", cwd=tmp_path)
    assert r.returncode == 0 and "-> B" in r.stdout, r.stderr
    assert sf.info(tmp_path / "example_B.wav").frames == sf.info(example_path).frames
    for speaker in "CD":
        assert run_cli("convert", example_path, "-s", speaker, "-o", tmp_path / f"{speaker}.wav").returncode == 0
    low, high = (median_f0(sf.read(tmp_path / f"{s}.wav", dtype="float32")[0]) for s in "CD")
    source = median_f0(sf.read(example_path, dtype="float32")[0])
    assert low < 0.8 * source and high > 1.4 * low, (source, low, high)
    import audiovae  # the three-line Python API gives what the command wrote (up to 16-bit rounding)

    vc = audiovae.load("voice-conversion", device="cpu")
    wave, sr = vc.convert(example_path, speaker="C")
    assert vc.speakers == list("ABCDEFGH") and sr == SR
    np.testing.assert_allclose(wave.numpy(), sf.read(tmp_path / "C.wav", dtype="float32")[0], atol=1e-4)


def test_the_voice_fit_uses_bf16_only_where_it_is_native():
    """``fast_float`` (the one-shot voice fit): bf16 autocast only on CUDA or a CPU with native bf16 (emulated bf16
    is ~10x slower than fp32 on AVX2), and denormals flushed only for its span; the arithmetic inside is what the
    autocast state says."""
    from audiovae.device import cpu_has_bf16, fast_float

    conv = torch.nn.Conv1d(4, 4, 3)
    x = torch.randn(1, 4, 16)
    with fast_float(torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu") == cpu_has_bf16()
        out = conv(x)
    assert out.dtype == (torch.bfloat16 if cpu_has_bf16() else torch.float32)
    assert not torch.is_autocast_enabled("cpu")


def test_the_fp32_paths_can_be_forced_on_a_cpu_with_native_bf16(monkeypatch):
    """``AUDIOVAE_CPU_BF16=0`` takes the path of a CPU without native bf16 on any CPU (how the test suite and the
    benches stand in for an AVX2 laptop); a value that means nothing is a one-line error, not a silent default."""
    from audiovae.device import CPU_BF16_ENV, cpu_has_bf16, fast_float
    from audiovae.errors import ConfigError
    from audiovae.training.engine import amp_enabled

    monkeypatch.setenv(CPU_BF16_ENV, "0")
    with fast_float(torch.device("cpu")):
        assert torch.nn.Conv1d(2, 2, 3)(torch.randn(1, 2, 8)).dtype == torch.float32
    assert not cpu_has_bf16() and not amp_enabled("auto", torch.device("cpu"))
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    assert cpu_has_bf16() and amp_enabled("auto", torch.device("cpu"))
    monkeypatch.setenv(CPU_BF16_ENV, "maybe")
    with pytest.raises(ConfigError, match="AUDIOVAE_CPU_BF16='maybe': give 0, 1 or auto"):
        cpu_has_bf16()
