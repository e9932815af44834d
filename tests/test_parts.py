"""Models from parts: encoder, bottleneck and decoder compose to the same output as the models before the split, a
new bottleneck drops in without touching the model class, and latents travel as ``.npz`` (old ``.npy`` still read)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import run_cli
from safetensors.torch import load_file

from audiovae.checkpoint import load_checkpoint
from audiovae.errors import AudiovaeError, ConfigError
from audiovae.losses import KLSchedule, free_bits, gaussian_kl
from audiovae.models import (
    ConvAutoencoder,
    ConvConfig,
    ConvDecoder,
    ConvEncoder,
    DiagonalGaussian,
    GaussianBottleneck,
    Posterior,
    Regularisation,
    build_model,
)
from audiovae.models.bottlenecks import Bottleneck, Point
from audiovae.models.layers import conv1d
from audiovae.models.vae import FORMAT_1_KEYS, rename_keys
from audiovae.pipelines.latent import load_latents, save_latents

DATA = Path(__file__).parent / "data"
TINY = {"channels": (16, 24), "factors": (2, 2), "blocks": 1, "latent_dim": 4, "n_mels": 20}


class DeterministicBottleneck(Bottleneck):
    """Defined here, outside the package, to show that a bottleneck drops in without touching the model class."""

    def __init__(self, in_channels: int, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.proj = conv1d(in_channels, latent_dim, 3)

    def forward(self, features: torch.Tensor) -> Point:
        return Point(self.proj(features))


def _sub(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v.float() for k, v in state.items() if k.startswith(prefix)}


def test_parts_alone_compose_to_the_format_1_models_output():
    """Encoder, Gaussian bottleneck and decoder built by hand from the fixture's format-1 weights give its output."""
    expected = np.load(DATA / "v1_cvae_tiny_expected.npz")
    state = load_file(str(DATA / "v1_cvae_tiny.safetensors"))
    rename_keys(state, "", FORMAT_1_KEYS)
    c = load_checkpoint(DATA / "v1_cvae_tiny.safetensors").model.config
    encoder = ConvEncoder(c.n_mels, c.channels, c.factors, c.blocks)
    bottleneck = GaussianBottleneck(encoder.out_channels, c.latent_dim)
    decoder = ConvDecoder(c.latent_dim, c.n_mels, c.channels, c.factors, c.blocks, cond_dim=c.speaker_dim)
    for part, prefix in ((encoder, "encoder."), (bottleneck, "bottleneck."), (decoder, "decoder.")):
        part.load_state_dict(_sub(state, prefix))
    mel = torch.from_numpy(expected["mel"])
    mean, std = state["mel_mean"].float()[:, None], state["mel_std"].float()[:, None]
    with torch.no_grad():
        posterior = bottleneck(encoder((mel - mean) / std))
        speaker = state["speakers.weight"].float()[[1]]
        reconstruction = decoder(posterior.mode(), speaker) * std + mean
    np.testing.assert_allclose(posterior.mode().numpy(), expected["mean"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(posterior.logvar.numpy(), expected["logvar"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(reconstruction[..., : mel.shape[-1]].numpy(), expected["reconstruction"], rtol=1e-5,
                               atol=1e-5)


def test_format_1_keys_load_into_a_model_and_todays_keys_round_trip():
    torch.manual_seed(0)
    model = build_model("cvae", TINY | {"n_speakers": 2, "adversary_weight": 0.1, "recon": "nll"})
    state = model.state_dict()
    old = {k: v for k, v in state.items()}
    for old_name, new_name in FORMAT_1_KEYS.items():  # today's keys back to format-1 names
        old = {(old_name + k[len(new_name):] if k.startswith(new_name) else k): v for k, v in old.items()}
    assert any(k.startswith("enc_out.") for k in old) and not any(k.startswith("encoder.") for k in old)
    for source in (old, state):
        fresh = build_model("cvae", TINY | {"n_speakers": 2, "adversary_weight": 0.1, "recon": "nll"})
        fresh.load_state_dict(source)  # strict: every key found, none left over
        assert all(torch.equal(fresh.state_dict()[k], v) for k, v in state.items())
    # a model nested in another module (an EMA wrapper, say) is renamed under its own prefix only
    nested = {"inner." + k: v for k, v in old.items()} | {"other.enc.x": torch.zeros(1)}
    rename_keys(nested, "inner.", FORMAT_1_KEYS)
    assert "inner.encoder.inp.bias" in nested and "other.enc.x" in nested and "inner.enc_in.bias" not in nested


def test_both_posteriors_honour_the_protocol():
    torch.manual_seed(0)
    mean, logvar = torch.randn(2, 4, 5), torch.randn(2, 4, 5)
    mask = torch.ones(2, 1, 5)
    mask[1, :, 3:] = 0
    schedule = KLSchedule(2.0, "linear", warmup=10)
    gaussian = DiagonalGaussian(mean, logvar, schedule, free_bits=0.5)
    point = Point(mean)
    for posterior in (gaussian, point):
        assert isinstance(posterior, Posterior)
        assert posterior.sample(torch.Generator().manual_seed(1)).shape == posterior.mode().shape == mean.shape
        reg = posterior.regulariser(mask, step=5)
        assert isinstance(reg, Regularisation) and reg.loss.ndim == 0
    kl = gaussian_kl(mean, logvar)
    kl_dims = (kl * mask).sum(dim=(0, 2)) / mask.sum(dim=(0, 2))
    reg = gaussian.regulariser(mask, step=5)
    torch.testing.assert_close(reg.loss, 1.0 * free_bits(kl_dims, 0.5))  # weight 2 * 5/10
    torch.testing.assert_close(reg.outputs["kl_dims"], kl_dims)
    assert reg.logs["kl_weight"] == 1.0 and float(reg.logs["kl"]) == pytest.approx(float(kl_dims.sum()))
    assert float(point.regulariser(mask, 5).loss) == 0.0
    assert torch.equal(gaussian.mode(), mean)
    a, b = (gaussian.sample(torch.Generator().manual_seed(3)) for _ in range(2))
    assert torch.equal(a, b) and not torch.equal(a, mean)


def test_a_plain_autoencoder_from_the_same_parts_trains():
    config = ConvConfig(**TINY)
    model = ConvAutoencoder(config, bottleneck=DeterministicBottleneck(TINY["channels"][-1], TINY["latent_dim"]))
    t = torch.linspace(0, 1, 48)
    mel = torch.stack([torch.sin(2 * torch.pi * (k + 1) * t)[None] * torch.linspace(-1, 1, 20)[:, None] - 4
                       for k in range(4)])
    model.set_normalization(mel.mean(dim=(0, 2)), mel.std(dim=(0, 2)))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(30):
        out = model.loss({"mel": mel}, step)
        optimiser.zero_grad()
        out.losses["model"].backward()
        optimiser.step()
        losses.append(float(out.losses["model"].detach()))
    assert "kl" not in out.logs and "kl_dims" not in out.outputs and out.outputs["z"].shape == (4, 4, 12)
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses
    assert model.reconstruct(mel).shape == mel.shape
    with pytest.raises(ConfigError, match="no prior"):
        model.sample(1, 16)
    with pytest.raises(ConfigError, match="latent_dim"):
        ConvAutoencoder(config, bottleneck=DeterministicBottleneck(24, 3))
    with pytest.raises(ConfigError, match="needs a bottleneck"):
        ConvAutoencoder(config)


def test_vae_config_extends_the_base_config():
    config = build_model("vae", TINY).config
    assert {"n_mels", "latent_dim", "channels", "beta", "free_bits"} <= set(config.to_dict())
    assert not {"beta", "free_bits", "kl_mode"} & set(ConvConfig().to_dict())
    with pytest.raises(ConfigError, match="latent_dim"):
        ConvConfig(latent_dim=0)


def test_latents_npz_round_trip_and_old_npy(tmp_path):
    z0, z1 = torch.randn(8, 22), torch.randn(4, 11)
    save_latents(tmp_path / "z.npz", [z0, z1], hop_factor=4, sample_rate=16000, source="a.wav")
    saved = load_latents(tmp_path / "z.npz")
    assert len(saved.levels) == 2 and torch.equal(saved.levels[0], z0) and torch.equal(saved.levels[1], z1)
    assert saved.meta == {"hop_factor": 4, "sample_rate": 16000, "source": "a.wav"}
    save_latents(tmp_path / "d.npz", {"z0": z0})
    assert torch.equal(load_latents(tmp_path / "d.npz").levels[0], z0)
    np.save(tmp_path / "old.npy", z0.numpy())
    old = load_latents(tmp_path / "old.npy")
    assert torch.equal(old.levels[0], z0) and old.meta == {}
    with pytest.raises(ConfigError, match="z0, z1"):
        save_latents(tmp_path / "e.npz", {"z1": z0})
    with pytest.raises(ConfigError, match="saved as .npz"):
        save_latents(tmp_path / "e.npy", [z0])
    with pytest.raises(ConfigError, match="metadata"):
        save_latents(tmp_path / "e.npz", [z0], extra=[1, 2])
    assert not list(tmp_path.glob("e.*")) and not list(tmp_path.glob(".*tmp*"))
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    for name, message in (("bad.npz", "not a readable .npy or .npz"), ("other.npz", "without latents"),
                          ("none.npz", "no such latents file")):
        with pytest.raises(AudiovaeError, match=message) as e:
            load_latents(tmp_path / name)
        assert "\n" not in str(e.value)


def test_decode_command_reads_old_npy_and_names_bad_latents(tmp_path):
    ckpt = DATA / "v1_cvae_tiny.safetensors"
    np.save(tmp_path / "z.npy", np.zeros((8, 5), np.float32))
    r = run_cli("decode", tmp_path / "z.npy", "-o", tmp_path / "d.wav", "-m", ckpt, "-s", "b")
    assert r.returncode == 0, r.stderr
    assert sf.info(tmp_path / "d.wav").frames > 0
    save_latents(tmp_path / "h.npz", [torch.zeros(8, 5)], hop_factor=8)
    r = run_cli("decode", tmp_path / "h.npz", "-o", tmp_path / "o.wav", "-m", ckpt, "-s", "b")
    assert r.returncode == 1 and "hop factor 8" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "o.wav").exists()

