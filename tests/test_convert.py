"""Voice conversion pipeline and CLI on a tiny speaker-conditioned model (behaviour, not quality: quality needs a
trained model and is measured by the voice-conversion recipe)."""

from __future__ import annotations

import pytest
import soundfile as sf
import torch
from conftest import SR, chirp, run_cli, write

from audiovae.checkpoint import Checkpoint, save_checkpoint
from audiovae.errors import ConfigError
from audiovae.features import MelConfig, MelSpectrogram
from audiovae.models import build_model
from audiovae.pipelines.convert import convert, estimate_speaker

NAMES = ["anna", "ben", "cleo"]


def tiny_cvae(seed: int = 0) -> Checkpoint:
    """A CVAE whose speakers decode very differently (large random FiLM embeddings), as a trained one would."""
    torch.manual_seed(seed)
    model = build_model("cvae", {"n_speakers": 3, "channels": (32, 32), "latent_dim": 8, "blocks": 1}).eval()
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
    _, estimated = convert(wave, ckpt, "ben")
    assert estimated in NAMES
    plain = Checkpoint(build_model("vae", {"channels": (32, 32), "latent_dim": 8}), MelConfig())
    with pytest.raises(ConfigError, match="has no speakers"):
        convert(wave, plain, "ben")


def test_convert_and_speakers_commands(tmp_path):
    ckpt = save_checkpoint(tmp_path / "vc.safetensors", tiny_cvae())
    r = run_cli("speakers", "--model", ckpt)
    assert r.returncode == 0 and r.stdout.split() == ["0", "anna", "1", "ben", "2", "cleo"]
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
    assert len(report["per_pair"]) == 6 and all(v["mcd_db"] > 0 for v in report["per_pair"].values())
