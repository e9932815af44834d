"""Music generation: the latent prior learns temporal structure, the prior's run through the engine, `sample-music`,
the Fréchet statistic and `evaluate music`, and the bundled music model (behaviour here; quality numbers in
recipes/music/README.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SR, log_rows, run_cli, run_export, sine

from audiovae.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from audiovae.errors import ConfigError
from audiovae.evaluation.music import frame_features, frechet_distance
from audiovae.features import MelConfig
from audiovae.models import LatentPrior, PriorConfig, build_model
from audiovae.pipelines import music
from audiovae.training import train

pytestmark = [pytest.mark.filterwarnings("ignore:.*no validation files"),
              pytest.mark.filterwarnings("ignore::audiovae.training.CollapseWarning")]

TINY = ["data.segment_frames=64", "data.cache_dir=null", "train.batch_size=4", "train.warmup_steps=3",
        "train.log_every=5", "train.amp=false", "train.valid_every=1000", "train.checkpoint_every=1000"]
TINY_VAE = ["model.channels=[32, 32]", "model.latent_dim=8", "model.blocks=1"]


def lag1(z: torch.Tensor) -> float:
    """Mean lag-1 autocorrelation of sequences ``[B, D, T]`` (per dimension, standardised over everything)."""
    x = (z - z.mean(dim=(0, 2), keepdim=True)) / z.std(dim=(0, 2), keepdim=True)
    return float((x[..., 1:] * x[..., :-1]).mean())


def test_latent_prior_learns_the_time_structure_that_per_frame_noise_lacks():
    """Sequences with lag-1 correlation 0.95 and a shared factor across dimensions: after training, the prior scores
    them far better than N(0, I) and its samples have their correlation in time and across dimensions."""
    dim, frames, rho = 4, 48, 0.95
    prior = LatentPrior(PriorConfig(latent_dim=dim, hidden=64, layers=1, mixtures=4))

    def data(n: int) -> torch.Tensor:
        u = torch.empty(n, frames)
        u[:, 0] = torch.randn(n)
        for t in range(1, frames):
            u[:, t] = rho * u[:, t - 1] + (1 - rho ** 2) ** 0.5 * torch.randn(n)
        scale = torch.tensor([1.0, -2.0, 0.5, 3.0])
        return 1.5 + u[:, None] * scale[:, None] + 0.05 * torch.randn(n, dim, frames)

    flat = data(256).transpose(0, 1).reshape(dim, -1)
    prior.set_statistics(flat.mean(-1), flat.std(-1))
    opt = torch.optim.Adam(prior.parameters(), lr=3e-3)
    for _ in range(250):
        loss = -prior.log_prob(data(32)).mean() / dim
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = data(64)
    with torch.no_grad():
        nll = float(-prior.log_prob(test).mean()) / dim
    standard = float((0.5 * (test ** 2 + np.log(2 * np.pi))).mean())
    assert nll < standard - 1.0, (nll, standard)
    samples = prior.sample(64, frames, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (64, dim, frames)
    # the data's lag-1 correlation is 0.95; the prior's samples measured 0.83-0.95 over seeds 0-5, noise's about 0
    assert lag1(samples) > 0.7 and lag1(torch.randn(64, dim, frames)) < 0.1
    corr = torch.corrcoef(samples.transpose(0, 1).reshape(dim, -1))
    assert corr[0, 1] < -0.8 and corr[0, 3] > 0.8  # the shared factor, with its signs
    again = prior.sample(64, frames, generator=torch.Generator().manual_seed(0))
    assert torch.equal(samples, again)
    cooler = prior.sample(64, frames, temperature=0.3, generator=torch.Generator().manual_seed(0))
    assert float(cooler.diff(dim=-1).abs().mean()) < float(samples.diff(dim=-1).abs().mean())


@pytest.fixture(scope="module")
def tunes(tmp_path_factory):
    """A music folder: 8 three-second melodies of sine notes with harmonics, split by file."""
    root = tmp_path_factory.mktemp("tunes")
    rng = np.random.default_rng(0)
    for i in range(8):
        notes = [sum(sine(f * h, 0.25, SR, 0.3 / h) for h in (1, 2, 3)) * np.hanning(int(0.25 * SR))
                 for f in 220 * 2 ** (rng.integers(0, 12, 12) / 12)]
        sf.write(root / f"tune_{i}.wav", np.concatenate(notes).astype(np.float32), SR)
    return root


@pytest.fixture(scope="module")
def music_model(tunes, tmp_path_factory):
    """A tiny music VAE, then its prior, trained through `audiovae train` configs (a few steps each)."""
    out = tmp_path_factory.mktemp("music_runs")
    vae = train("music_vae", [f"data.train={tunes}", f"train.out_dir={out / 'vae'}", "train.steps=20", *TINY,
                              *TINY_VAE])
    path = train("music_prior", [f"data.train={tunes}", f"train.out_dir={out / 'prior'}", f"model.vae={vae}",
                                 "model.latent_dim=8", "model.hidden=32", "model.layers=1", "model.mixtures=2",
                                 "data.segment_frames=128", "train.steps=20", *TINY[1:]])
    return vae, path


def test_the_prior_run_writes_the_vae_with_its_prior_and_learns(music_model):
    vae_path, path = music_model
    ckpt, vae = load_checkpoint(path), load_checkpoint(vae_path)
    assert ckpt.task == "music" and ckpt.prior is not None and vae.prior is None
    assert ckpt.prior.config.latent_dim == ckpt.model.config.latent_dim == 8
    for key, value in vae.model.state_dict().items():  # the VAE is frozen: exported as it was loaded
        assert torch.equal(value, ckpt.model.state_dict()[key]), key
    assert float(ckpt.prior.z_std.min()) > 0 and not torch.equal(ckpt.prior.z_std, torch.ones(8))
    rows = log_rows(path.parent)
    nll = [float(r["nll"]) for r in rows if r["nll"]]
    assert nll[-1] < nll[0]
    assert all(float(r["nll_standard_normal"]) > 0 for r in rows if r["nll_standard_normal"])
    assert list((path.parent / "plots").glob("*.png"))  # real crop above a prior sample


def test_prior_config_errors(tunes, tmp_path, music_model):
    vae_path, _ = music_model
    with pytest.raises(ConfigError, match="model.vae is not set"):
        train("music_prior", [f"data.train={tunes}", f"train.out_dir={tmp_path / 'a'}", "model.vae="])
    with pytest.raises(ConfigError, match="latent_dim=32, but the VAE"):
        train("music_prior", [f"data.train={tunes}", f"train.out_dir={tmp_path / 'b'}", f"model.vae={vae_path}"])
    with pytest.raises(ConfigError, match=r"front end differs .*mel.f_max=8000.0 \(the VAE's: 11025.0\)"):
        train("music_prior", [f"data.train={tunes}", f"train.out_dir={tmp_path / 'c'}", f"model.vae={vae_path}",
                              "model.latent_dim=8", "mel.f_max=8000"])


def test_sample_music_command(tmp_path, music_model):
    vae_path, path = music_model
    out = tmp_path / "out"
    r = run_cli("sample-music", "-n", "2", "--seconds", "2.5", "--seed", "3", "--plot", "--out-dir", out,
                "--model", path)
    assert r.returncode == 0, r.stderr
    files = sorted(out.glob("*"))
    assert [f.name for f in files] == ["sample_003.png", "sample_003.wav", "sample_004.png", "sample_004.wav"]
    a, sr = sf.read(out / "sample_003.wav")
    b, _ = sf.read(out / "sample_004.wav")
    assert sr == 22050 and len(a) == len(b) == round(2.5 * 22050)
    assert np.abs(a).max() > 1e-3 and not np.array_equal(a, b)
    assert "realtime" in r.stdout
    # the same seed, the same files; and sample i does not depend on -n (up to float rounding)
    r = run_cli("sample-music", "-n", "2", "--seconds", "2.5", "--seed", "3", "--out-dir", tmp_path / "again",
                "--model", path)
    assert r.returncode == 0, r.stderr
    assert np.array_equal(sf.read(tmp_path / "again" / "sample_004.wav")[0], b)
    r = run_cli("sample-music", "-n", "1", "--seconds", "2.5", "--seed", "4", "--out-dir", tmp_path / "alone",
                "--model", path)
    assert r.returncode == 0, r.stderr
    assert np.allclose(sf.read(tmp_path / "alone" / "sample_004.wav")[0], b, atol=2e-3)
    for flag, name in (("--walk", "walk_000.wav"), ("--no-prior", "normal_000.wav")):
        r = run_cli("sample-music", "-n", "1", "--seconds", "4", flag, "--out-dir", tmp_path / "other", "--model", path)
        assert r.returncode == 0, r.stderr
        y, _ = sf.read(tmp_path / "other" / name)
        assert len(y) == 4 * 22050 and np.abs(y).max() > 1e-3
    # a VAE without a prior: one line that says what to do; --no-prior still samples from it
    r = run_cli("sample-music", "--model", vae_path, "--out-dir", tmp_path / "x")
    assert r.returncode == 1 and "no learned prior" in r.stderr and "--no-prior" in r.stderr
    assert "Traceback" not in r.stderr and not list((tmp_path / "x").glob("*.wav"))
    assert run_cli("sample-music", "--model", vae_path, "--no-prior", "-n", "1", "--seconds", "1",
                   "--out-dir", tmp_path / "x").returncode == 0
    r = run_cli("sample-music", "--seconds", "0", "--model", path)
    assert r.returncode != 0 and "Traceback" not in r.stderr


def test_walk_is_continuous_and_distributed_like_the_latents(music_model):
    ckpt = load_checkpoint(music_model[1])
    z = music.walk_latents(ckpt, 60.0, seed=1)[0]
    assert z.shape == (8, music.latent_frames(ckpt, 60.0))
    assert lag1(z[None]) > 0.9  # a slow drift, not per-frame noise
    standardised = (z - ckpt.prior.z_mean[:, None]) / ckpt.prior.z_std[:, None]
    assert abs(float(standardised.mean())) < 0.5 and 0.5 < float(standardised.std()) < 1.5


def test_interpolate_works_with_a_music_model(tmp_path, tunes, music_model):
    r = run_cli("interpolate", tunes / "tune_0.wav", tunes / "tune_1.wav", "-o", tmp_path / "i.wav",
                "-m", music_model[1], "--steps", "3")
    assert r.returncode == 0, r.stderr
    y, _ = sf.read(tmp_path / "i.wav")
    assert len(y) > 3 * 2.9 * 22050


def test_frechet_distance_and_features():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, rng.normal(size=(4000, 3))) < 0.02
    assert frechet_distance(a, a + [2.0, 0.0, 0.0]) == pytest.approx(4.0, rel=1e-6)
    assert frechet_distance(a, 2 * a) == pytest.approx(3.0, rel=0.05)  # per dimension (2 - 1)^2
    tone = sine(440.0, 3.0, SR)
    noise = rng.normal(scale=0.1, size=3 * SR)
    f_tone, f_noise = frame_features(tone, SR), frame_features(noise, SR)
    assert f_tone.shape[1] == 39 and f_tone.shape[0] == f_noise.shape[0]
    assert f_tone[:, 20:32].mean(0).argmax() == 9  # chroma: A
    other = frame_features(sine(440.0, 3.0, SR, amp=0.4), SR)
    assert frechet_distance(f_tone, other) < frechet_distance(f_tone, f_noise)


def test_evaluate_music_reports_every_row(tmp_path, tunes, music_model):
    manifest = tmp_path / "manifest.jsonl"  # the tunes as a corpus: 5 train, 3 test pieces
    lines = [f'{{"path": "{p}", "duration": 3.0, "split": "{"test" if i >= 5 else "train"}"}}'
             for i, p in enumerate(sorted(tunes.glob("*.wav")))]
    manifest.write_text("\n".join(lines) + "\n")
    r = run_cli("evaluate", "music", "--data", manifest, "--model", music_model[1], "--clips", "3", "--seconds", "2",
                "--json", tmp_path / "m.json")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "m.json").read_text())
    assert set(report["frechet"]) == {"real train clips (floor)", "prior samples", "N(0, I) samples (no prior)",
                                      "held-out, reconstructed"}
    assert all(np.isfinite(v) and v >= 0 for v in report["frechet"].values())
    rec = report["reconstruction"]
    assert rec["resynth_mel_l1"] < rec["model_mel_l1"]  # a 20-step model is worse than the vocoder alone
    assert rec["resynth_mrstft"] < rec["model_mrstft"] and rec["model_audio_mel_l1"] > 0
    assert report["speed"]["prior_x_realtime"] > 0 and "Fréchet" in r.stdout
    r = run_cli("evaluate", "music", "--data", manifest, "--model", music_model[0], "--clips", "2", "--seconds", "2",
                "--json", tmp_path / "vae.json")  # a VAE without a prior: the baseline only, no empty rows
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "vae.json").read_text())
    assert "prior samples" not in report["frechet"] and set(report["speed"]) == {"normal_x_realtime"}
    assert "with the prior" not in r.stdout and "nan" not in r.stdout
    manifest.write_text("\n".join(line.replace('"test"', '"train"') for line in lines) + "\n")
    r = run_cli("evaluate", "music", "--data", manifest, "--model", music_model[1])
    assert r.returncode == 1 and "no test split" in r.stderr and "Traceback" not in r.stderr


def test_export_installs_a_music_model_only_when_it_generates_closer(tmp_path, music_model):
    path = music_model[1]
    evals = {}
    for name, fd in (("good", 5.0), ("worse", 9.0)):
        evals[name] = tmp_path / f"{name}.json"
        evals[name].write_text(json.dumps({"frechet": {"prior samples": fd}, "reconstruction": {"model_mel_l1": 0.5}}))
    bundled = tmp_path / "bundled.safetensors"
    r = run_export(path, "-o", tmp_path / "a.safetensors", "--evaluation", evals["good"], "--install", bundled,
                   cwd=tmp_path)
    assert r.returncode == 0 and "installed" in r.stdout, r.stderr
    assert load_checkpoint(bundled).prior is not None
    r = run_export(path, "-o", tmp_path / "b.safetensors", "--evaluation", evals["worse"], "--install", bundled,
                   cwd=tmp_path)
    assert r.returncode == 0 and "kept" in r.stdout and "Fréchet distance 5.00" in r.stdout


def test_a_checkpoint_refuses_a_prior_that_is_not_one(tmp_path):
    model = build_model("vae", {"channels": (32, 32), "latent_dim": 8, "blocks": 1})
    bad = Checkpoint(model, MelConfig(), components={"prior": torch.nn.Linear(2, 2)})
    with pytest.raises(CheckpointError, match="component 'prior': Linear is not a LatentPrior"):
        save_checkpoint(tmp_path / "bad.safetensors", bad)


def test_bundled_music_model_works_offline_from_the_command_line_and_python(tmp_path, tunes):
    """`audiovae sample-music` with no --model uses the bundled model; its prior's samples are not per-frame noise
    (their latents are correlated in time, as the music's are); the API gives the command's samples."""
    r = run_cli("sample-music", "-n", "2", "--seconds", "3", "--seed", "7", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    a, sr = sf.read(tmp_path / "samples" / "sample_007.wav")
    assert sr == 22050 and len(a) == 3 * 22050 and 0.01 < np.abs(a).max() <= 1.0
    import audiovae

    gen = audiovae.load("music", device="cpu")
    assert type(gen).__name__ == "MusicGenerator"
    waves, rate = gen.sample(n=1, seconds=3, seed=7)
    assert rate == 22050 and np.allclose(waves[0].numpy(), a, atol=1e-3)
    ckpt = gen.checkpoint
    z = music.sample_latents(ckpt, 4, 10.0, seed=0)
    assert lag1(z) > 0.8 and abs(lag1(music.sample_latents(ckpt, 4, 10.0, seed=0, source="normal"))) < 0.1
    walk, _ = gen.walk(seconds=2, seed=1)
    assert walk.shape == (2 * 22050,)
    r = run_cli("interpolate", tunes / "tune_0.wav", tunes / "tune_1.wav", "-o", tmp_path / "i.wav", "-m", "music")
    assert r.returncode == 0, r.stderr
