"""The user install: `pip install .` gives the everyday commands and the bundled models without the extras (no test,
corpus, judge, page or export packages, so nothing to compile), with the licence and the data notice."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import tomllib

ROOT = Path(__file__).resolve().parents[1]

# Every package that only an extra brings (pyproject's optional-dependencies), as import names.
EXTRA_MODULES = ["pesq", "pystoi", "webrtcvad", "speechmos", "onnxruntime", "pytest", "playwright", "httpx",
                 "music21", "pretty_midi", "pyroomacoustics", "starlette", "uvicorn", "multipart", "onnx",
                 "onnxscript", "resemblyzer", "torchaudio", "df", "pyrnnoise", "noisereduce"]

# Runs CLI commands (separated by ";") in one process where importing any of them fails, as in a user install.
BLOCKED_CLI = """
import sys
blocked = set(sys.argv[1].split(","))
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} is not installed (blocked by the test)")
        return None
sys.meta_path.insert(0, Block())
from audiovae.cli import app
for command in " ".join(sys.argv[2:]).split(" ; "):
    print("$ audiovae", command, flush=True)
    try:
        app(command.split(), prog_name="audiovae", standalone_mode=True)
    except SystemExit as e:
        if e.code:
            raise
"""


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_core_dependencies_hold_no_extra_and_nothing_that_compiles():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = _requirement_names(project["dependencies"])
    extras = set().union(*(_requirement_names(v) for v in project["optional-dependencies"].values()))
    assert core.isdisjoint(extras), core & extras
    assert "pesq" not in core  # published as source only: the one package that needs a compiler
    assert project["license"] == "MIT" and "LICENSE" in project["license-files"]


def test_licence_and_notice_name_every_bundled_model():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assets = ROOT / "audiovae" / "assets"
    notice = (assets / "NOTICE.md").read_text()
    for f in sorted((assets / "models").glob("*.safetensors")):
        assert f"models/{f.name}" in notice, f"{f.name} is bundled but NOTICE.md does not say what it was made from"
    assert "example.wav" in notice


def test_everyday_commands_run_without_any_extra(tmp_path, example_path):
    """convert, denoise, resynth, info and sample-music with every extra's import refused."""
    y, sr = sf.read(example_path, dtype="float32")
    clip = tmp_path / "clip.wav"
    sf.write(clip, y[: int(1.5 * sr)], sr)

    commands = ["convert clip.wav --speaker B -o b.wav", "denoise clip.wav -o d.wav", "resynth clip.wav -o r.wav",
                "sample-music -n 1 --seconds 1 --out-dir music", "info voice_conversion"]
    r = subprocess.run([sys.executable, "-c", BLOCKED_CLI, ",".join(EXTRA_MODULES), " ; ".join(commands)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "voice_conversion" in r.stdout.split("$ audiovae info voice_conversion")[1]
    for out in ("b.wav", "d.wav", "r.wav"):
        z, zsr = sf.read(tmp_path / out, dtype="float32")
        assert zsr == sr and abs(len(z) - int(1.5 * sr)) < sr // 10 and np.sqrt(np.mean(z**2)) > 1e-3, out
    (music,) = (tmp_path / "music").glob("*.wav")
    assert np.sqrt(np.mean(sf.read(music, dtype="float32")[0] ** 2)) > 1e-3
