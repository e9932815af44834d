"""The real `audiovae` entry point in a subprocess: outputs, help texts and the bad-input contract."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SR, chirp, run_cli, write

COMMANDS = ["info", "example", "resynth", "plot", "cache", "train", "reconstruct", "encode", "decode", "interpolate",
            "convert", "speakers", "denoise",
            "corpus speech", "corpus noisy", "corpus music"]


def test_version_and_help_examples():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("audiovae ")
    top = run_cli("--help")
    assert all(c.split()[0] in top.stdout for c in COMMANDS)
    for c in COMMANDS:
        h = run_cli(*c.split(), "--help")
        assert h.returncode == 0 and re.search(r"Examples?: audiovae " + c, h.stdout), c


def test_example_info_resynth_plot(tmp_path, example_path):
    r = run_cli("example", "-o", tmp_path / "ex.wav")
    assert r.returncode == 0
    assert (tmp_path / "ex.wav").read_bytes() == example_path.read_bytes()

    stereo = np.stack([chirp(2.0, sr=44100), chirp(2.0, sr=44100)], axis=1)
    src = write(tmp_path / "in.flac", stereo, 44100, "PCM_24")
    r = run_cli("info", src)
    assert r.returncode == 0
    assert "44100 Hz" in r.stdout and "channels     2" in r.stdout and "2.00 s" in r.stdout and "FLAC" in r.stdout

    r = run_cli("resynth", src, "-o", tmp_path / "out.wav", "--n-iter", "16")
    assert r.returncode == 0, r.stderr
    out, sr = sf.read(tmp_path / "out.wav", dtype="float32")
    assert sr == SR and out.ndim == 1 and len(out) == 2 * SR
    # the resynthesis keeps the sweep: its log-mel is close to the input's
    from audiovae.features import MelSpectrogram

    mel = MelSpectrogram()
    ref = mel(torch.from_numpy(chirp(2.0)))
    assert float((mel(torch.from_numpy(out)) - ref).abs().mean()) < 1.0

    r = run_cli("plot", tmp_path / "ex.wav", "-o", tmp_path / "ex.png")
    assert r.returncode == 0
    png = (tmp_path / "ex.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def _bad_inputs(tmp_path):
    (tmp_path / "dir.wav").mkdir()
    (tmp_path / "zero.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("definitely not audio\n" * 50)
    y = chirp(0.5)
    y[10] = np.nan
    write(tmp_path / "nan.wav", y, SR, "FLOAT")
    write(tmp_path / "short.wav", chirp(0.01), SR)
    return {"missing.wav": "no such file", "dir.wav": "is a directory", "zero.wav": "empty file",
            "text.wav": "not a readable audio file", "nan.wav": "NaN or Inf", "short.wav": "too short"}


@pytest.mark.parametrize("command", ["resynth", "plot", "info"])
def test_bad_input_is_one_line_no_traceback_no_output(tmp_path, command):
    for name, problem in _bad_inputs(tmp_path).items():
        if command == "info" and name == "short.wav":
            continue  # describing a short clip is fine; only processing needs a whole analysis frame
        out = tmp_path / ("out.png" if command == "plot" else "out.wav")
        args = [command, tmp_path / name] + ([] if command == "info" else ["-o", out])
        r = run_cli(*args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1, (name, r.stderr)
        assert len(lines) == 1 and lines[0].startswith("audiovae: error: ") and problem in lines[0], (name, r.stderr)
        assert str(tmp_path / name) in lines[0]
        assert not out.exists()
        assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_bad_output_and_device(tmp_path):
    src = write(tmp_path / "in.wav", chirp(1.0), SR)
    r = run_cli("resynth", src, "-o", tmp_path / "missing" / "out.wav")
    assert r.returncode == 1 and "output folder" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("resynth", src, "-o", tmp_path / "out.xyz")
    assert r.returncode == 1 and "unknown output format" in r.stderr and not (tmp_path / "out.xyz").exists()
    if not torch.cuda.is_available():
        r = run_cli("resynth", src, "-o", tmp_path / "out.wav", "--device", "cuda")
        assert r.returncode == 1 and r.stderr.strip() == ("audiovae: error: --device cuda: no CUDA GPU is available "
                                                          "(use --device auto or cpu)")


def test_warnings_are_one_line(tmp_path):
    src = write(tmp_path / "silent.wav", np.zeros(SR, np.float32), SR)
    r = run_cli("resynth", src, "-o", tmp_path / "out.wav", "--n-iter", "2")
    assert r.returncode == 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == [f"audiovae: warning: {src}: input is silent (peak -inf dBFS)"]


def test_cache_command_reports_bad_files_and_reuses(tmp_path):
    for spk in ("alice", "bob"):
        (tmp_path / "data" / spk).mkdir(parents=True)
        write(tmp_path / "data" / spk / "a.wav", chirp(1.0), SR)
    (tmp_path / "data" / "bob" / "broken.wav").write_text("not audio")
    r = run_cli("cache", tmp_path / "data", "--cache-dir", tmp_path / "cache", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert "2 files cached (2 new), 1 skipped" in r.stdout and "broken.wav: not a readable audio file" in r.stdout
    r = run_cli("cache", tmp_path / "data", "--cache-dir", tmp_path / "cache", "--workers", "1")
    assert "2 files cached (0 new), 1 skipped" in r.stdout


def test_corpus_commands_validate_options(tmp_path):
    r = run_cli("corpus", "noisy", tmp_path / "n", "--snrs", "five,ten")
    assert r.returncode == 1 and r.stderr.strip() == ("audiovae: error: --snrs 'five,ten': expected comma-separated "
                                                      "numbers, e.g. -5,0,5,10")
    r = run_cli("cache", tmp_path / "nothing-here")
    assert r.returncode == 1 and "no such file or folder" in r.stderr and "Traceback" not in r.stderr


@pytest.fixture()
def tiny_checkpoint(tmp_path):
    from audiovae.checkpoint import Checkpoint, save_checkpoint
    from audiovae.features import MelConfig
    from audiovae.models import build_model

    model = build_model("cvae", {"n_speakers": 2, "channels": (32, 32), "latent_dim": 8, "blocks": 1})
    return save_checkpoint(tmp_path / "tiny.safetensors",
                           Checkpoint(model, MelConfig(), ["alice", "bob"], task="convert", info={"step": 3}))


def test_latent_commands_round_trip(tmp_path, tiny_checkpoint):
    src = write(tmp_path / "a.wav", chirp(1.0), SR)
    src2 = write(tmp_path / "b.wav", chirp(1.5, fmin=400.0), SR)
    r = run_cli("info", tiny_checkpoint)
    assert r.returncode == 0 and "cvae" in r.stdout and "alice, bob" in r.stdout and "8 x 21.5 frames/s" in r.stdout
    r = run_cli("reconstruct", src, "-o", tmp_path / "r.wav", "-m", tiny_checkpoint, "-s", "bob")
    assert r.returncode == 0, r.stderr
    assert sf.info(tmp_path / "r.wav").frames == SR
    r = run_cli("encode", src, "-o", tmp_path / "z.npz", "-m", tiny_checkpoint, "-s", "1")
    z = np.load(tmp_path / "z.npz")
    assert r.returncode == 0 and z["z0"].shape == (8, 22) and z["hop_factor"] == 4  # 87 frames / 4, rounded up
    r = run_cli("decode", tmp_path / "z.npz", "-o", tmp_path / "d.wav", "-m", tiny_checkpoint, "-s", "alice")
    assert r.returncode == 0 and sf.info(tmp_path / "d.wav").frames == (22 * 4 - 1) * 256  # 88 mel frames
    r = run_cli("interpolate", src, src2, "-o", tmp_path / "i.wav", "-m", tiny_checkpoint, "-s", "alice",
                "--steps", "3", "--path", "slerp")
    assert r.returncode == 0
    # three decodes of min(22, 33) latent frames, two 0.3 s pauses
    assert sf.info(tmp_path / "i.wav").frames == 3 * (88 - 1) * 256 + 2 * int(np.ceil(0.3 * SR))


def test_latent_commands_errors(tmp_path, tiny_checkpoint):
    src = write(tmp_path / "a.wav", chirp(1.0), SR)
    cases = [
        (["reconstruct", src, "-o", tmp_path / "o.wav", "-m", tiny_checkpoint], "needs a speaker; choose one of: "
                                                                                 "alice, bob"),
        (["reconstruct", src, "-o", tmp_path / "o.wav", "-m", tiny_checkpoint, "-s", "carol"], "unknown speaker"),
        (["reconstruct", src, "-o", tmp_path / "o.wav", "-m", tmp_path / "none.safetensors"], "no such checkpoint"),
        (["decode", src, "-o", tmp_path / "o.wav", "-m", tiny_checkpoint, "-s", "0"], "not a latent file"),
    ]
    for args, message in cases:
        r = run_cli(*args)
        assert r.returncode == 1 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not (tmp_path / "o.wav").exists()
