"""`audiovae export`: TorchScript and ONNX graphs that compute what PyTorch computes, run without audiovae."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SR, chirp, run_cli

from audiovae.features import MelConfig, MelSpectrogram, istft
from audiovae.pretrained import STREAM_VOCODER


@pytest.fixture()
def tiny_cvae(tmp_path):
    from audiovae.checkpoint import Checkpoint, save_checkpoint
    from audiovae.models import build_model

    torch.manual_seed(0)
    model = build_model("cvae", {"n_speakers": 2, "channels": (32, 32), "latent_dim": 8, "blocks": 1})
    return save_checkpoint(tmp_path / "tiny.safetensors",
                           Checkpoint(model, MelConfig(), ["alice", "bob"], task="convert", info={"step": 3}))


def test_the_front_end_and_inverse_stft_in_real_arithmetic_equal_the_library():
    from audiovae.export import FrontEnd, overlap_add_istft

    cfg = MelConfig()
    wave = torch.from_numpy(chirp(1.3))[None]
    diff = (FrontEnd(cfg)(wave) - MelSpectrogram(cfg)(wave)).abs()
    assert float(diff.max()) < 1e-2 and float(diff.mean()) < 1e-3  # the largest near the log floor
    spec = torch.stft(wave, cfg.n_fft, cfg.hop_length, window=torch.hann_window(cfg.n_fft), return_complex=True)
    ours = overlap_add_istft(spec.abs(), spec.angle(), cfg)
    ref = istft(spec, cfg, torch.hann_window(cfg.n_fft), length=ours.shape[-1])
    assert ours.shape == ref.shape and float((ours - ref).abs().max()) < 1e-5
    assert float((ours - wave[:, : ours.shape[-1]]).abs().max()) < 1e-4  # and it inverts the analysis


def test_onnx_export_runs_in_onnxruntime_alone_and_matches_pytorch(tmp_path, tiny_cvae):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    r = run_cli("export", tiny_cvae, "-o", tmp_path / "onnx")
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "onnx" / "export.json").read_text())
    assert set(manifest["parts"]) == {"frontend", "encoder", "decoder", "vocoder"}
    for part in manifest["parts"].values():
        assert part["max_abs_error"] <= part["tolerance"]
        assert f"{part['file'].split('.')[0]:<9} {part['file']}" in r.stdout
    assert manifest["mel"]["sample_rate"] == SR and list(manifest["speakers"]) == ["alice", "bob"]
    assert manifest["parts"]["decoder"]["inputs"] == {"z": ["batch", "8", "latent_frames"],
                                                      "speaker": ["batch", "64"], "film_offset": ["batch", "128"]}

    # the whole conversion chain from the files and export.json alone, on a length never exported
    def run(part: str, **feeds: np.ndarray) -> np.ndarray:
        session = ort.InferenceSession(str(tmp_path / "onnx" / manifest["parts"][part]["file"]))
        return session.run(None, feeds)[0]

    wave = chirp(1.7)[None]
    logmel = run("frontend", wave=wave)
    z = run("encoder", logmel=logmel)
    bob = np.asarray(manifest["speakers"]["bob"], np.float32)[None]
    decoded = run("decoder", z=z, speaker=bob, film_offset=np.zeros((1, 128), np.float32))[..., : logmel.shape[-1]]
    offset = np.random.default_rng(0).normal(0, 0.8, (1, 128)).astype(np.float32)  # an adapted voice's scale
    adapted = run("decoder", z=z, speaker=bob, film_offset=offset)[..., : logmel.shape[-1]]
    out = run("vocoder", logmel=decoded)

    from audiovae.checkpoint import load_checkpoint
    from audiovae.pipelines.latent import vocoder_for

    ckpt = load_checkpoint(tiny_cvae)
    with torch.no_grad():
        ref_mel = MelSpectrogram(ckpt.mel)(torch.from_numpy(wave))
        ref_z = ckpt.model.encode(ref_mel).mode()
        ref_dec = ckpt.model.decode(ref_z, torch.tensor([1]))[..., : ref_mel.shape[-1]]
        ref_adapted = ckpt.model.decode(ref_z, torch.from_numpy(bob), torch.from_numpy(offset))
        ref_out = vocoder_for(ckpt, prefer_trained=True).generate(ref_dec)
    assert np.abs(adapted - ref_adapted[..., : ref_mel.shape[-1]].numpy()).max() < 1e-2
    assert np.abs(adapted - decoded).max() > 1e-2  # the offsets do reach the graph's output
    assert logmel.shape == tuple(ref_mel.shape) and z.shape == tuple(ref_z.shape)
    assert np.abs(decoded - ref_dec.numpy()).max() < 1e-2
    assert out.shape == tuple(ref_out.shape) == (1, (logmel.shape[-1] - 1) * 256)
    assert np.abs(out - ref_out.numpy()).max() < 1e-3


def test_torchscript_export_of_the_bundled_vocoder(tmp_path):
    r = run_cli("export", "vocoder", "--format", "torchscript", "-o", tmp_path / "ts")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "ts").iterdir()) == ["export.json", "frontend.pt", "vocoder.pt"]
    from audiovae.checkpoint import load_vocoder

    frontend = torch.jit.load(str(tmp_path / "ts" / "frontend.pt"))
    vocoder = torch.jit.load(str(tmp_path / "ts" / "vocoder.pt"))
    wave = torch.from_numpy(chirp(0.9))[None]
    with torch.no_grad():
        logmel = MelSpectrogram(MelConfig())(wave)
        assert float((frontend(wave) - logmel).abs().max()) < 1e-2
        assert float((vocoder(logmel) - load_vocoder(STREAM_VOCODER).generate(logmel)).abs().max()) < 1e-4


def test_an_export_that_does_not_match_writes_nothing(tmp_path, tiny_cvae, monkeypatch):
    import audiovae.export as ex

    monkeypatch.setitem(ex.TOLERANCE, "frontend", 0.0)  # the real-arithmetic STFT differs by round-off
    monkeypatch.setattr(ex.FrontEnd, "forward", lambda self, wave: MelSpectrogram(self.config)(wave) + 1e-3)
    with pytest.raises(ex.ExportError, match=r"frontend: the exported graph differs from PyTorch by up to"):
        ex.export(tiny_cvae, tmp_path / "out", "torchscript", ["frontend"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.safetensors"]


def test_export_errors_are_one_line(tmp_path, tiny_cvae):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    cases = [
        (["--parts", "encoder,mixer"], "--parts mixer: unknown"),
        (["-o", tmp_path / "full"], "exists and is not empty (use --force to replace it)"),
        (["-o", tmp_path / "no" / "such"], "output folder"),
    ]
    for extra, message in cases:
        args = ["export", tiny_cvae, *extra] + ([] if "-o" in extra else ["-o", tmp_path / "x"])
        r = run_cli(*args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1 and message in lines[0], (extra, r.stderr)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine" and not (tmp_path / "x").exists()
    from audiovae.errors import ConfigError
    from audiovae.export import export

    with pytest.raises(ConfigError, match="--format tflite: give torchscript or onnx"):  # the CLI checks it at parse
        export(tiny_cvae, tmp_path / "x", "tflite")
    assert not (tmp_path / "x").exists()
    r = run_cli("export", "music", "--parts", "vocoder", "--vocoder", "griffin-lim", "-o", tmp_path / "x")
    assert r.returncode == 1 and "griffin-lim, not a network" in r.stderr
    from audiovae.checkpoint import save_vocoder
    from audiovae.vocoders import NeuralVocoder

    pghi = save_vocoder(tmp_path / "pghi.safetensors", NeuralVocoder(MelConfig(), 16, 32, 1, residual=True,
                                                                     phase_prior="pghi", unroll=2))
    r = run_cli("export", pghi, "--format", "torchscript", "-o", tmp_path / "x")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "PGHI" in r.stderr
    assert not (tmp_path / "x").exists()


def test_force_replaces_earlier_exports_but_never_what_is_exported(tmp_path, tiny_cvae, monkeypatch):
    import audiovae.export as ex

    monkeypatch.chdir(tmp_path)
    first = ex.export(tiny_cvae, tmp_path / "out", "torchscript", ["encoder"])
    assert [p.name for p in first.parts] == ["encoder"]
    again = ex.export(tiny_cvae, tmp_path / "out", "torchscript", ["decoder"], force=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["decoder.pt", "export.json"] and again.parts
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tiny.safetensors"]  # nothing set aside is left
    for out in (tmp_path, Path(".")):  # the folder that holds the checkpoint; the working folder
        with pytest.raises(ex.ExportError, match="folder of its own"):
            ex.export(tiny_cvae, out, "torchscript", ["encoder"], force=True)
    assert tiny_cvae.is_file()


@pytest.mark.parametrize("refine, floor", [(0, 0), (16, 0), (16, 8)])
def test_a_denoisers_decoder_exports_its_log_gain_and_says_so(tmp_path, refine, floor):
    """A ``log_gain`` decoder's graph gives the log-gain, and export.json tells how it becomes the clean log-mel:
    following that recipe from the graphs alone gives what the library's denoiser estimates. With a gain refiner
    the decoder's graph also takes the input log-mel (the refiner reads it), and so do noise floors."""
    from audiovae.checkpoint import Checkpoint, save_checkpoint
    from audiovae.models import build_model

    torch.manual_seed(0)
    model = build_model("vae", {"channels": (32, 32), "latent_dim": 8, "blocks": 1, "output": "log_gain",
                                "refine_channels": refine, "refine_floor": floor, "encoder_floor": floor}).eval()
    with torch.no_grad():
        for p in [*model.decoder.parameters(), *(model.refiner.parameters() if refine else ()),
                  *(model.encoder.floor.parameters() if floor else ())]:
            p.add_(0.3 * torch.randn_like(p))  # a gain far from its start, not the same everywhere
    ckpt = save_checkpoint(tmp_path / "den.safetensors", Checkpoint(model, MelConfig(), task="denoise"))
    r = run_cli("export", ckpt, "--format", "torchscript", "-o", tmp_path / "ts")
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "ts" / "export.json").read_text())
    assert manifest["decoder_output"].startswith("log-gain") and "sigmoid(g + 3)" in manifest["decoder_output"]
    encoder, decoder = (torch.jit.load(str(tmp_path / "ts" / f"{p}.pt")) for p in ("encoder", "decoder"))
    logmel = MelSpectrogram(MelConfig())(torch.from_numpy(chirp(0.9))[None])
    with torch.no_grad():
        g = decoder(encoder(logmel), *([logmel] if refine else []))[..., : logmel.shape[-1]]
        estimate = logmel + torch.nn.functional.logsigmoid(g + 3.0)
        assert float((estimate - model.reconstruct(logmel)).abs().max()) < 1e-3
        assert float((estimate - logmel).abs().max()) > 0.1  # it is a gain, and not a trivial one
