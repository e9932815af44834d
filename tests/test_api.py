"""The few-line Python API (`audiovae.load`) and the recipe's export of a bundled model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SR, chirp, run_cli, run_export, write
from safetensors import safe_open
from test_convert import tiny_cvae

import audiovae
from audiovae import audio
from audiovae.api import Model, VoiceConverter
from audiovae.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from audiovae.errors import ConfigError
from audiovae.features import MelConfig
from audiovae.models import build_model
from audiovae.pipelines.convert import convert, table_voice
from audiovae.pitch import Register


def test_load_converts_files_and_waveforms_like_the_pipeline(tmp_path):
    path = save_checkpoint(tmp_path / "vc.safetensors", tiny_cvae())
    vc = audiovae.load(path, device="cpu")
    assert isinstance(vc, VoiceConverter) and vc.speakers == ["anna", "ben", "cleo"] and vc.sample_rate == SR
    src = write(tmp_path / "src.wav", chirp(1.0), SR)
    wave, sr = vc.convert(src, speaker="ben")
    expected, _ = convert(audio.load(src, SR)[0], vc.checkpoint, table_voice(vc.checkpoint, "ben"),
                          vocoder=vc.vocoder)
    assert sr == SR and wave.shape == (SR,)
    torch.testing.assert_close(wave, expected)
    by_index, _ = vc.convert(src, speaker=1)
    torch.testing.assert_close(by_index, wave)
    # a waveform at another rate, stereo: resampled and averaged like a file
    stereo = np.stack([chirp(1.0, sr=44100)] * 2)
    from_array, sr = vc.convert(stereo, speaker="ben", sample_rate=44100)
    assert sr == SR and abs(from_array.numel() - SR) <= 1
    ref = write(tmp_path / "dana.wav", chirp(3.2, fmin=200.0), SR)
    one_shot, _ = vc.convert(src, reference=ref)
    assert one_shot.shape == (SR,) and float((one_shot - wave).abs().mean()) > 1e-4
    with pytest.raises(ConfigError, match="one of the two"):
        vc.convert(src)
    with pytest.raises(ConfigError, match="sample_rate"):
        vc.convert(stereo, speaker="ben")
    with pytest.raises(ConfigError, match="unknown speaker 'dave'"):
        vc.convert(src, speaker="dave")
    assert [row["name"] for row in vc.describe()] == vc.speakers


def test_load_plain_model_reconstructs(tmp_path):
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "vae.safetensors",
                           Checkpoint(build_model("vae", {"channels": (32, 32), "latent_dim": 8}), MelConfig()))
    model = audiovae.load(str(path), device="cpu")
    assert type(model) is Model and model.speakers == []
    src = write(tmp_path / "src.wav", chirp(1.0), SR)
    z = model.encode(src)
    wave, sr = model.decode(z)
    assert z.shape[0] == 8 and sr == SR and torch.isfinite(wave).all()
    out, _ = model.reconstruct(src)
    assert out.shape == (SR,)


def test_speakers_show_voice_sex_and_median_f0(tmp_path):
    ckpt = tiny_cvae()
    ckpt.info["voices"] = {"ben": {"voice": "kal", "sex": "male", "made_by": "festival kal_diphone",
                                   "about": "American male, diphone"}}
    ckpt.info["pitch"] = {"ben": Register(np.log(110.0), 0.2, np.log(105.0)).to_list(),
                          "cleo": Register(np.log(200.0), 0.2).to_list()}  # an older checkpoint: no median
    r = run_cli("speakers", "-m", save_checkpoint(tmp_path / "vc.safetensors", ckpt))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["0", "anna"]
    assert lines[1].split() == ["1", "ben", "kal", "male", "F0", "105", "Hz", "festival", "kal_diphone:", "American",
                                "male,", "diphone"]
    assert lines[2].split() == ["2", "cleo", "F0", "200", "Hz"]


def test_recipe_export_writes_a_small_fp16_model_with_lettered_voices(tmp_path):
    """recipes/export.py on a tiny run: letters in sorted order, voices described, pitch registers renamed with them,
    evaluation recorded, float16 tensors, and the half-precision model decodes like the original."""
    ckpt = tiny_cvae()
    ckpt.speakers = ["kal", "rms", "slt"]  # corpus voices, so the export can tell what each letter is
    ckpt.info["pitch"] = {name: Register(np.log(f), 0.2, np.log(f)).to_list()
                          for name, f in zip(ckpt.speakers, (108.0, 100.0, 173.0), strict=True)}
    run = save_checkpoint(tmp_path / "model.safetensors", ckpt)
    (tmp_path / "eval.json").write_text(json.dumps({"converted": {"mcd_db": 3.1}, "per_pair": {"a->b": {}}}))
    out = tmp_path / "bundled.safetensors"
    p = run_export(run, "--letters", "--evaluation", tmp_path / "eval.json", "--recipe",
                   "recipes/voice_conversion/run.sh", "-o", out, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "fp16 vs fp32 mean |log-mel diff|" in p.stdout
    assert out.stat().st_size < 0.6 * run.stat().st_size  # half the bytes of float32 weights (plus the header)
    with safe_open(out, "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} <= {"F16", "I64"}
    half = load_checkpoint(out)
    assert half.speakers == ["A", "B", "C"] and half.info["trained_speakers"] == ["kal", "rms", "slt"]
    assert half.info["voices"]["C"]["voice"] == "slt" and half.info["voices"]["C"]["sex"] == "female"
    assert half.info["voices"]["A"]["median_f0_hz"] == 108.0
    assert sorted(half.info["pitch"]) == ["A", "B", "C"]
    assert half.info["evaluation"] == {"converted": {"mcd_db": 3.1}}  # the summary, not every pair
    assert half.info["recipe"] == "recipes/voice_conversion/run.sh"
    r = run_cli("convert", write(tmp_path / "src.wav", chirp(1.0), SR), "-s", "C", "-m", out, "-o", tmp_path / "c.wav")
    assert r.returncode == 0 and sf.info(tmp_path / "c.wav").frames == SR, r.stderr
    vc = audiovae.load(out, device="cpu")  # the voice's own name and the index still work
    torch.testing.assert_close(vc.convert(tmp_path / "src.wav", speaker="slt")[0],
                               vc.convert(tmp_path / "src.wav", speaker=2)[0])
    assert "-> C" in run_cli("convert", tmp_path / "src.wav", "-s", "slt", "-m", out, "-o", tmp_path / "s.wav").stdout

    # --install replaces the bundled file only when there is none or the new evaluation is better
    bundled = tmp_path / "package" / "models" / "vc.safetensors"

    def export(mcd: float, closer: float) -> str:
        (tmp_path / "eval.json").write_text(json.dumps({"converted": {"mcd_db": mcd, "closer_to_target": closer}}))
        p = run_export(run, "--letters", "--evaluation", tmp_path / "eval.json", "-o", out, "--install", bundled,
                       cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        return p.stdout

    def installed_mcd() -> float:
        return load_checkpoint(bundled).info["evaluation"]["converted"]["mcd_db"]

    assert "installed" in export(3.0, 0.9) and installed_mcd() == 3.0
    assert "kept" in export(3.5, 0.95) and installed_mcd() == 3.0  # worse MCD
    assert "kept" in export(2.5, 0.8) and installed_mcd() == 3.0  # fewer pairs closer to the target
    assert "installed" in export(2.5, 0.9) and installed_mcd() == 2.5
