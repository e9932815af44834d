"""Latent tools: attribute vectors and editing, traversals, latent maps; through the CLI on a tiny trained model."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SR, run_cli, sine

from audiovae import audio
from audiovae.checkpoint import load_checkpoint
from audiovae.pipelines import latent
from audiovae.pipelines.attributes import file_latents, latent_map, utterance_latent
from audiovae.training import Trainer, load_run_config

pytestmark = [pytest.mark.filterwarnings("ignore:.*no validation files"),
              pytest.mark.filterwarnings("ignore::audiovae.training.CollapseWarning")]


def tone(f0: float, seconds: float = 1.0) -> np.ndarray:
    """A harmonic tone: f0 and three overtones."""
    return sum(sine(f0 * k, seconds, SR, 0.3 / k) for k in range(1, 5)).astype(np.float32)


@pytest.fixture(scope="module")
def voices(tmp_path_factory) -> Path:
    """Two 'speakers' a folder each: low tones (120-200 Hz) and high ones (700-1100 Hz)."""
    root = tmp_path_factory.mktemp("voices")
    for name, base in (("low", 120.0), ("high", 700.0)):
        (root / name).mkdir()
        for i in range(6):
            sf.write(root / name / f"{name}_{i}.wav", tone(base * (1 + 0.1 * i)), SR)
    return root


@pytest.fixture(scope="module")
def model(voices, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    config = load_run_config("speech_vae", [
        f"data.train={voices}", f"data.valid={voices}", f"train.out_dir={out}", "model.channels=[32, 32]",
        "model.latent_dim=8", "model.blocks=1", "data.segment_frames=32", "data.cache_dir=null",
        "train.batch_size=4", "train.warmup_steps=3", "train.amp=false", "train.steps=200", "train.lr=3e-3",
        "train.valid_every=1000", "train.ema_decay=0", "model.kl_warmup=50"])
    return Trainer(config, "cpu", progress=False).fit()


def test_vector_is_the_difference_of_mean_utterance_latents(voices, model, tmp_path):
    r = run_cli("vector", voices / "low", voices / "high", "-o", tmp_path / "v.npy", "--model", model)
    assert r.returncode == 0, r.stderr
    assert "mean of 6 files minus mean of 6" in r.stdout
    v = np.load(tmp_path / "v.npy")
    ckpt = load_checkpoint(model)
    low, _ = file_latents(sorted((voices / "low").iterdir()), ckpt)
    high, _ = file_latents(sorted((voices / "high").iterdir()), ckpt)
    expected = torch.stack(low).mean(0) - torch.stack(high).mean(0)
    assert v.shape == (8,) and v.dtype == np.float32
    np.testing.assert_allclose(v, expected.numpy(), atol=1e-5)
    assert float(np.linalg.norm(v)) > 0.5  # the two sets are far apart in this model's latent space


def test_edit_moves_a_recording_along_the_vector(voices, model, tmp_path):
    assert run_cli("vector", voices / "low", voices / "high", "-o", tmp_path / "v.npy", "--model", model
                   ).returncode == 0
    src = voices / "high" / "high_2.wav"
    for scale in ("0", "1"):
        r = run_cli("edit", src, "-o", tmp_path / f"e{scale}.wav", "--vector", tmp_path / "v.npy", "--scale", scale,
                    "--model", model, "--vocoder", "griffin-lim")
        assert r.returncode == 0, r.stderr
    ckpt = load_checkpoint(model)
    v = torch.from_numpy(np.load(tmp_path / "v.npy"))
    wave = audio.load(src, SR)[0]
    kept = audio.load(tmp_path / "e0.wav", SR)[0]
    moved = audio.load(tmp_path / "e1.wav", SR)[0]
    assert kept.shape == moved.shape == wave.shape
    start = utterance_latent(kept, ckpt)
    shift = utterance_latent(moved, ckpt) - start
    # re-encoded, the edited audio has moved along the vector (through Griffin-Lim, not all the way)
    assert float(shift @ v) / float(v @ v) > 0.3
    low_mean = torch.stack(file_latents(sorted((voices / "low").iterdir()), ckpt)[0]).mean(0)
    assert float((start + shift - low_mean).norm()) < float((start - low_mean).norm())


def test_edit_and_vector_refuse_bad_input_in_one_line(voices, model, tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros(5, dtype=np.float32))
    (tmp_path / "text.npy").write_text("not a vector")
    (tmp_path / "empty").mkdir()
    src = voices / "low" / "low_0.wav"
    cases = [
        (("edit", src, "-o", tmp_path / "o.wav", "--vector", tmp_path / "wrong.npy", "--model", model), "wrong.npy"),
        (("edit", src, "-o", tmp_path / "o.wav", "--vector", tmp_path / "text.npy", "--model", model), "text.npy"),
        (("edit", src, "-o", tmp_path / "o.wav", "--vector", tmp_path / "none.npy", "--model", model), "none.npy"),
        (("vector", tmp_path / "empty", voices / "high", "-o", tmp_path / "v.npy", "--model", model), "empty"),
        (("vector", voices / "low", voices / "high", "-o", tmp_path / "v.txt", "--model", model), ".npy"),
    ]
    for args, named in cases:
        r = run_cli(*args)
        assert r.returncode != 0 and "Traceback" not in r.stderr and named in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "o.wav").exists() and not (tmp_path / "v.txt").exists()


def test_traverse_plots_the_dimensions_that_vary_most(voices, model, tmp_path):
    src = voices / "low" / "low_3.wav"
    r = run_cli("traverse", src, "-o", tmp_path / "t.png", "--model", model, "--dims", "3", "--steps", "4")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dims = [int(d) for d in re.search(r"dimensions ([\d, ]+)\)", r.stdout).group(1).split(", ")]
    ckpt = load_checkpoint(model)
    z = latent.encode(audio.load(src, SR)[0], ckpt)
    assert dims == z.var(dim=-1).argsort(descending=True)[:3].tolist()
    r = run_cli("traverse", src, "-o", tmp_path / "u.png", "--model", model, "--dims", "0,5")
    assert r.returncode == 0 and "dimensions 0, 5" in r.stdout
    for bad in ("99", "0,9", "x"):
        r = run_cli("traverse", src, "-o", tmp_path / "b.png", "--model", model, "--dims", bad)
        assert r.returncode != 0 and "Traceback" not in r.stderr and "dimension" in r.stderr.lower(), r.stderr
    assert not (tmp_path / "b.png").exists()


def test_latent_map_separates_the_two_voices(voices, model, tmp_path):
    r = run_cli("latent-map", voices, "-o", tmp_path / "m.png", "--model", model)
    assert r.returncode == 0, r.stderr
    assert "12 recordings of 2 speakers; nearest-centroid accuracy 1.00, chance 0.50" in r.stdout
    assert (tmp_path / "m.png").stat().st_size > 5000
    r = run_cli("latent-map", voices / "low", "-o", tmp_path / "n.png", "--model", model)
    assert r.returncode != 0 and "two" in r.stderr and not (tmp_path / "n.png").exists()


def test_nearest_centroid_accuracy_is_perfect_on_clusters_and_near_chance_on_noise():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 6, generator=g) * 10
    points = [centres[i % 3] + torch.randn(6, generator=g) for i in range(60)]
    labels = [f"s{i % 3}" for i in range(60)]
    clustered = latent_map(points, labels)
    assert clustered.accuracy == 1.0 and clustered.points.shape == (60, 2)
    assert clustered.explained[0] + clustered.explained[1] > 0.9  # three clusters span a plane
    noise = latent_map([torch.randn(6, generator=g) for _ in range(300)], [f"s{i % 3}" for i in range(300)])
    assert abs(noise.accuracy - 1 / 3) < 0.12


def test_python_api_makes_the_same_vector_and_edit(voices, model, tmp_path):
    import audiovae

    m = audiovae.load(model, vocoder="griffin-lim")
    low, high = sorted((voices / "low").iterdir()), sorted((voices / "high").iterdir())
    v = m.vector(low, high)
    assert run_cli("vector", voices / "low", voices / "high", "-o", tmp_path / "v.npy", "--model", model
                   ).returncode == 0
    np.testing.assert_allclose(v.numpy(), np.load(tmp_path / "v.npy"), atol=1e-5)
    wave, sr = m.edit(high[0], v, scale=0.5)
    r = run_cli("edit", high[0], "-o", tmp_path / "e.wav", "--vector", tmp_path / "v.npy", "--scale", "0.5",
                "--model", model, "--vocoder", "griffin-lim")
    assert r.returncode == 0 and sr == SR
    np.testing.assert_allclose(wave.numpy(), audio.load(tmp_path / "e.wav", SR)[0].numpy(), atol=2e-4)
