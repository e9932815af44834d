"""Shared fixtures: real signals (sweeps, synthesized speech) and a CLI runner that runs the real entry point."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# `pytest -n 2` (pytest-xdist) runs two workers: each gets its share of the cores, for its own torch and BLAS and for
# the commands it starts, or four threads fight over two cores and every test runs slower than with one worker. Set
# before torch is imported, OMP_NUM_THREADS is what torch sizes its pool by.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, str(max(1, (os.cpu_count() or 1) // _WORKERS)))

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

SR = 22050


def chirp(seconds: float = 3.0, sr: int = SR, fmin: float = 60.0, fmax: float = 8000.0, amp: float = 0.5) -> np.ndarray:
    """Exponential sine sweep, float32."""
    return (amp * librosa.chirp(fmin=fmin, fmax=fmax, sr=sr, duration=seconds)).astype(np.float32)


def snr_db(clean: np.ndarray, noise: np.ndarray) -> float:
    """Signal-to-noise ratio in dB, from RMS levels."""
    return float(20 * np.log10(np.sqrt(np.mean(np.square(clean, dtype=np.float64)))
                               / np.sqrt(np.mean(np.square(noise, dtype=np.float64)))))


def log_rows(out: Path) -> list[dict]:
    """The rows of a training run's ``log.csv`` (the file must exist)."""
    import csv

    with open(out / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def fan_corpus(out: Path, train: int, valid_normal: int, test_normal: int, test_per_anomaly: int,
               workers: int = 1) -> Path:
    """A tiny machine corpus: fans, two units, 2-s clips at 6 dB, one valid clip per anomaly kind."""
    from audiovae.data.corpora.machines import MachineCorpusConfig, build_machine_corpus

    cfg = MachineCorpusConfig(machines=("fan",), units=2, seconds=2.0, snrs=(6.0,), train=train,
                              valid_normal=valid_normal, valid_per_anomaly=1, test_normal=test_normal,
                              test_per_anomaly=test_per_anomaly, workers=workers)
    build_machine_corpus(out, cfg, progress=False)
    return out


def train_clips(root: Path, prefix: str, waves: list[np.ndarray], sr: int = SR) -> Path:
    """``waves`` as one speaker's files (``root/solo/``), named ``<prefix><i>`` with the first ``i`` that the
    deterministic split (``layouts.split_of``) puts in train, so that every clip trains."""
    from audiovae.data.layouts import split_of

    (root / "solo").mkdir()
    names = (f"{prefix}{i}" for i in range(1000) if split_of(f"{prefix}{i}") == "train")
    for name, y in zip(names, waves, strict=False):
        sf.write(root / "solo" / f"{name}.wav", y, sr)
    return root


def sine(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


TEST_SEED = int(os.environ.get("AUDIOVAE_TEST_SEED", "0"))
"""Every test starts from this seed (torch, numpy, random), so a training assertion meets the same numbers on every
run of one machine; ``AUDIOVAE_TEST_SEED=1 pytest …`` reruns with another draw, which is how a threshold is sized."""

# Subprocess timeouts catch hangs, nothing else: they sit far above a busy 2-core AVX2 machine's times, and
# AUDIOVAE_TEST_TIMEOUT_SCALE stretches them further on slower hosts.
TIMEOUT_SCALE = float(os.environ.get("AUDIOVAE_TEST_TIMEOUT_SCALE", "1"))


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(TEST_SEED)
    np.random.seed(TEST_SEED)
    random.seed(TEST_SEED)


@pytest.fixture(scope="session")
def speech_path(tmp_path_factory) -> Path:
    """A sentence of synthesized speech from espeak-ng (installed by .ci/run), as a 22.05 kHz WAV."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng; .ci/run does)")
    path = tmp_path_factory.mktemp("speech") / "espeak.wav"
    subprocess.run([exe, "-v", "en-us", "-s", "150", "-w", str(path),
                    "The quick brown fox jumps over the lazy dog near the river bank."], check=True)
    return path


@pytest.fixture(scope="session")
def speech(speech_path) -> np.ndarray:
    y, sr = sf.read(speech_path, dtype="float32")
    y = librosa.resample(y, orig_sr=sr, target_sr=SR)
    return y.astype(np.float32)


@pytest.fixture(scope="session")
def example_path() -> Path:
    return Path(__file__).resolve().parent.parent / "audiovae" / "assets" / "example.wav"


def devices() -> list:
    """CPU always; CUDA as well when a GPU is present (the same tests then check CUDA correctness)."""
    return ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str | os.PathLike, cwd: Path | None = None, timeout: float = 1800) -> Result:
    """Run ``python -m audiovae ARGS`` in a subprocess: the real entry point, exit code and streams. The timeout only
    catches a hang (the slowest command here takes about 2 minutes on a busy 2-core AVX2 machine)."""
    env = dict(os.environ, COLUMNS="120")
    p = subprocess.run([sys.executable, "-m", "audiovae", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd, env=env, timeout=timeout * TIMEOUT_SCALE, stdin=subprocess.DEVNULL)
    return Result(p.returncode, p.stdout, p.stderr)


def run_export(*args: str | os.PathLike, cwd: Path) -> Result:
    """Run ``recipes/export.py ARGS`` (the recipes' export of a bundled model) in a subprocess."""
    script = Path(__file__).resolve().parent.parent / "recipes" / "export.py"
    p = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                       stdin=subprocess.DEVNULL)
    return Result(p.returncode, p.stdout, p.stderr)


def free_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def training_run(folder: Path) -> Path:
    """A training run's folder as the Trainer leaves it, for the web page's Models tab: ``model.safetensors`` (the
    bundled music model) beside a ``log.csv`` written by the Trainer's own RunLog, losses falling and validation
    rows every 500 steps."""
    from audiovae.pretrained import bundled_path
    from audiovae.training.logging import RunLog

    folder.mkdir(parents=True)
    shutil.copy(bundled_path("music"), folder / "model.safetensors")
    log = RunLog(folder / "log.csv")
    log.start(0)
    for step in range(0, 1001, 100):
        log.write({"step": step, "epoch": step // 500, "lr": 1e-3, "loss": 4.0 / (1 + step / 200),
                   "recon": 1.0 / (1 + step / 300)} | ({"valid_loss": 4.2 / (1 + step / 200)} if step % 500 == 0
                                                      else {}))
    log.close()
    return folder


def write(path: Path, data: np.ndarray, sr: int, subtype: str | None = None) -> Path:
    sf.write(path, data, sr, subtype=subtype)
    return path
