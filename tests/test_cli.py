"""The real `audiovae` entry point in a subprocess: outputs, help texts and the bad-input contract."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SR, chirp, run_cli, write

COMMANDS = ["info", "example", "resynth", "plot"]


def test_version_and_help_examples():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("audiovae ")
    top = run_cli("--help")
    assert all(c in top.stdout for c in COMMANDS)
    for c in COMMANDS:
        h = run_cli(c, "--help")
        assert h.returncode == 0 and "Example: audiovae " + c in h.stdout, c


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
