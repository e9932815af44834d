"""Models, loss terms and checkpoints: shapes, the KL, the reparameterisation, conditioning, safe loading."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from conftest import TEST_SEED, chirp
from safetensors.torch import save_file

from audiovae.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from audiovae.errors import ConfigError
from audiovae.features import MelConfig, MelSpectrogram
from audiovae.losses import KLSchedule, active_units, free_bits, gaussian_kl, masked_magnitude, reconstruction
from audiovae.models import CVAE, ConvVAE, DiagonalGaussian, build_model
from audiovae.models.layers import GradientReversal

TINY = {"channels": (32, 48), "factors": (2, 2), "blocks": 1, "latent_dim": 8}


def speech_like(batch: int = 2, frames: int = 70) -> torch.Tensor:
    mel = MelSpectrogram()
    waves = torch.stack([torch.from_numpy(chirp(1.0, fmin=100.0 * (i + 1))) for i in range(batch)])
    return mel(waves)[..., :frames]


@pytest.mark.parametrize("frames", [64, 70, 1])
def test_shapes_and_hop_factor(frames):
    model = build_model("vae", TINY)
    mel = speech_like(frames=max(frames, 1))
    post = model.encode(mel)
    assert model.hop_factor == 4 and post.mean.shape == (2, 8, -(-frames // 4))
    assert model.decode(post.sample()).shape == (2, 80, 4 * post.mean.shape[-1])
    assert model.reconstruct(mel).shape == mel.shape
    assert model.sample(3, frames).shape == (3, 80, frames)


def test_analytic_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mean, logvar = torch.randn(4, 3, 1) * 0.7, torch.randn(4, 3, 1) * 0.5
    post = DiagonalGaussian(mean, logvar)
    z = torch.stack([post.sample() for _ in range(40000)])  # [S, ...]
    std = torch.exp(0.5 * logvar)
    log_q = torch.distributions.Normal(mean, std).log_prob(z)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z)
    monte_carlo = (log_q - log_p).mean(0)
    torch.testing.assert_close(monte_carlo, gaussian_kl(mean, logvar), atol=0.03, rtol=0.03)


def test_gradients_flow_through_the_reparameterisation():
    mean = torch.zeros(2, 4, 5, requires_grad=True)
    logvar = torch.zeros(2, 4, 5, requires_grad=True)
    z = DiagonalGaussian(mean, logvar).sample(torch.Generator().manual_seed(0))
    (z ** 2).sum().backward()
    assert mean.grad is not None and logvar.grad is not None
    assert float(mean.grad.abs().sum()) > 0 and float(logvar.grad.abs().sum()) > 0


def test_loss_terms_and_gradients_reach_every_parameter():
    model = build_model("vae", TINY | {"recon": "nll"})
    mel = speech_like()
    out = model.loss({"mel": mel, "length": torch.tensor([70, 40])}, step=10)
    assert set(out.losses) == {"model"} and torch.isfinite(out.losses["model"])
    assert {"recon", "kl", "kl_weight", "mel_l1"} <= set(out.logs)
    out.losses["model"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_masked_magnitude_weighs_bins_by_energy_and_caps_the_gain_at_one():
    """The denoising (signal-approximation) loss: zero for the true clean log-mel, the same for any estimate at or
    above the noisy input (the gain is capped at one), and an error in a loud bin costs more than in a quiet one."""
    noisy = torch.tensor([[[0.0, 0.0], [-4.0, -4.0]]])  # band 0 loud, band 1 quiet (nats)
    clean = noisy - 1.0
    assert float(masked_magnitude(noisy, clean, clean)) == pytest.approx(0.0, abs=1e-7)
    assert float(masked_magnitude(noisy, clean, noisy)) == pytest.approx(float(masked_magnitude(noisy, clean,
                                                                                                noisy + 3.0)))
    loud, quiet = clean.clone(), clean.clone()
    loud[0, 0] -= 0.5
    quiet[0, 1] -= 0.5
    assert float(masked_magnitude(noisy, clean, loud)) > 10 * float(masked_magnitude(noisy, clean, quiet))
    model = build_model("vae", TINY | {"mask_loss": 1.0})  # in the model's loss only where there is a clean target
    mel = speech_like()
    assert "mask" not in model.loss({"mel": mel}, step=5).logs
    out = model.loss({"mel": mel, "clean": mel - 0.5}, step=5)
    assert float(out.logs["mask"]) > 0 and torch.isfinite(out.losses["model"])


def loss_terms(model: ConvVAE, mel: torch.Tensor, lengths: torch.Tensor) -> dict[str, float]:
    """Every logged loss term and the total, with the same posterior sample (same RNG seed) each call."""
    torch.manual_seed(0)
    out = model.loss({"mel": mel, "length": lengths}, step=5)
    return {k: float(v) for k, v in out.logs.items()} | {"total": float(out.losses["model"].detach())}


def with_garbage(mel: torch.Tensor, starts: list[int]) -> torch.Tensor:
    """``mel`` with large random values from frame ``starts[i]`` of item ``i`` on."""
    garbage, gen = mel.clone(), torch.Generator().manual_seed(1)
    for i, start in enumerate(starts):
        garbage[i, :, start:] = 1000.0 * torch.randn(mel.shape[1], mel.shape[2] - start, generator=gen)
    return garbage


def test_padded_frames_do_not_change_the_loss():
    model = build_model("vae", TINY)
    mel, lengths = speech_like(frames=70), torch.tensor([40, 70])
    clean = loss_terms(model, mel, lengths)
    assert loss_terms(model, with_garbage(mel, [40, 70]), lengths) == pytest.approx(clean, rel=1e-5)


def test_padding_is_masked_out_of_the_loss():
    """The loss's masks on a short item: garbage in its padded frames changes no loss term, while the same garbage in
    frames counted as valid swamps the reconstruction error (so the comparison is not vacuous)."""
    model = build_model("vae", TINY)
    mel, lengths = speech_like(frames=87), torch.tensor([24, 87])
    clean = loss_terms(model, mel, lengths)
    garbage = with_garbage(mel, [64, 87])
    assert loss_terms(model, garbage, lengths) == pytest.approx(clean, rel=1e-6)
    unmasked = loss_terms(model, garbage, torch.tensor([87, 87]))
    assert unmasked["mel_l1"] > 10 * loss_terms(model, mel, torch.tensor([87, 87]))["mel_l1"]


def test_kl_schedules_free_bits_and_active_units():
    assert [KLSchedule(2.0, "linear", warmup=10)(s) for s in (0, 5, 10, 50)] == [0.0, 1.0, 2.0, 2.0]
    cyc = KLSchedule(1.0, "cyclical", total=100, cycles=2, ratio=0.5)
    assert [cyc(s) for s in (0, 25, 49, 50, 75)] == [0.0, 1.0, 1.0, 0.0, 1.0]
    with pytest.raises(ConfigError, match="mode"):
        KLSchedule(1.0, "sigmoid")
    kl = torch.tensor([0.01, 0.5, 2.0], requires_grad=True)
    free_bits(kl, 0.25).backward()
    assert kl.grad.tolist() == [0.0, 1.0, 1.0]  # a dimension under its free nats gets no push towards zero
    means = torch.zeros(16, 4, 10)
    means[:, 1] = torch.randn(16, 10)
    means[:, 3] = torch.randn(16, 10) * 0.01
    assert active_units(means) == 1
    with pytest.raises(ConfigError, match="nll"):
        reconstruction(torch.zeros(1), torch.zeros(1), "nll")


def test_cvae_conditions_on_speaker_and_reverses_the_adversary_gradient():
    model = build_model("cvae", TINY | {"n_speakers": 3, "adversary_weight": 0.5, "instance_norm": True})
    assert isinstance(model, CVAE) and isinstance(model, ConvVAE)
    with torch.no_grad():
        model.speakers.weight.normal_()
        for p in model.decoder.stages.parameters():
            p.add_(0.05 * torch.randn_like(p))
    mel = speech_like()
    z = model.encode(mel, torch.tensor([0, 0])).mode()
    a = model.decode(z, torch.tensor([0, 0]))
    b = model.decode(z, torch.tensor([2, 2]))
    assert float((a - b).abs().mean().detach()) > 1e-3
    out = model.loss({"mel": mel, "speaker": torch.tensor([0, 2])}, step=0)
    assert "speaker_adversary" in out.logs
    with pytest.raises(ConfigError, match="speaker id is needed"):
        model.decode(z)
    with pytest.raises(ConfigError, match="n_speakers"):
        build_model("cvae", TINY)
    x = torch.ones(3, requires_grad=True)
    GradientReversal.apply(x, 2.0).sum().backward()
    assert x.grad.tolist() == [-2.0, -2.0, -2.0]


def test_unknown_model_options_are_named():
    with pytest.raises(ConfigError, match="unknown model type 'gan'"):
        build_model("gan", {})
    with pytest.raises(ConfigError, match="no option.*latent_dims"):
        build_model("vae", {"latent_dims": 3})
    with pytest.raises(ConfigError, match="factors"):
        build_model("vae", {"factors": (3, 2)})


def test_checkpoint_round_trip_and_fp16_export(tmp_path):
    model = build_model("cvae", TINY | {"n_speakers": 2}).eval()
    model.set_normalization(torch.full((80,), -5.0), torch.full((80,), 2.0))
    ckpt = Checkpoint(model, MelConfig(), ["alice", "bob"], task="convert", info={"step": 7})
    path = save_checkpoint(tmp_path / "m.safetensors", ckpt)
    back = load_checkpoint(path)
    assert back.speakers == ["alice", "bob"] and back.task == "convert" and back.info == {"step": 7}
    assert back.mel == MelConfig() and back.model.config == model.config
    mel, spk = speech_like(), torch.tensor([0, 1])
    torch.testing.assert_close(back.model.reconstruct(mel, spk), model.reconstruct(mel, spk))
    half = save_checkpoint(tmp_path / "h.safetensors", ckpt, dtype=torch.float16)
    assert half.stat().st_size < 0.55 * path.stat().st_size
    torch.testing.assert_close(load_checkpoint(half).model.reconstruct(mel, spk), model.reconstruct(mel, spk),
                               atol=0.05, rtol=0.01)


class _Payload:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_malicious_truncated_and_foreign_files_are_refused(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "audiovae": _Payload(str(tmp_path / "pwned"))}, evil)
    with pytest.raises(CheckpointError, match="refusing to load a pickle that needs code execution"):
        load_checkpoint(evil)
    assert not (tmp_path / "pwned").exists()
    good = save_checkpoint(tmp_path / "m.safetensors", Checkpoint(build_model("vae", TINY), MelConfig()))
    (tmp_path / "cut.safetensors").write_bytes(good.read_bytes()[:3000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "cut.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="without audiovae metadata"):
        load_checkpoint(tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors")
    # a plain torch file that weights_only accepts is fine if it has the audiovae structure
    meta = Checkpoint(build_model("vae", TINY), MelConfig()).metadata()
    state = {f"model.{k}": v for k, v in build_model("vae", TINY).state_dict().items()}
    torch.save({"state_dict": state, "audiovae": json.dumps(meta)}, tmp_path / "plain.pt")
    assert load_checkpoint(tmp_path / "plain.pt").model.model_type == "vae"


def test_multi_resolution_stft_distance():
    from audiovae.losses import multi_resolution_stft

    clean = torch.from_numpy(chirp(1.0))
    assert float(multi_resolution_stft(clean, clean)) == pytest.approx(0.0, abs=1e-6)
    small = multi_resolution_stft(clean + 0.001 * torch.randn_like(clean), clean)
    large = multi_resolution_stft(clean + 0.1 * torch.randn_like(clean), clean)
    assert 0 < float(small) < float(large)
    estimate = (clean + 0.05 * torch.randn_like(clean)).requires_grad_()
    multi_resolution_stft(estimate, clean).backward()
    assert estimate.grad is not None and float(estimate.grad.abs().sum()) > 0


def test_checkpoint_file_gets_normal_permissions(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", Checkpoint(build_model("vae", TINY), MelConfig()))
    mask = os.umask(0)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~mask)


def voice(f0: float, formant: float, seconds: float, rng: np.random.Generator) -> torch.Tensor:
    """A synthetic 'speaker': harmonics of a wandering F0 under one resonance (its timbre)."""
    t = np.arange(int(seconds * 22050)) / 22050
    f = f0 * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f) / 22050
    y = sum(np.sin(k * phase) / (1 + ((k * f0 - formant) / 300) ** 2) for k in range(1, 40))
    return torch.from_numpy((0.3 * y / np.abs(y).max()).astype(np.float32))


def test_embeddings_condition_like_the_table_and_the_speaker_encoder_learns_the_voices():
    rng = np.random.default_rng(TEST_SEED)
    model = build_model("cvae", TINY | {"n_speakers": 3, "speaker_dim": 16, "speaker_encoder": True})
    mel = MelSpectrogram()
    voices = [(110, 700), (210, 2000), (300, 1200)]
    z = model.encode(speech_like(3), torch.tensor([0, 1, 2])).mode()
    ids = torch.tensor([2, 0, 1])  # an embedding is a speaker: decoding with the table's rows is the same
    torch.testing.assert_close(model.decode(z, ids), model.decode(z, model.speakers(ids)))
    with pytest.raises(ConfigError, match=r"\[batch, 16\]"):
        model.decode(z, torch.zeros(3, 8))
    ids = torch.tensor([0, 1, 2])
    batch = {"mel": mel(torch.stack([voice(*voices[i], 0.75, rng) for i in ids.tolist()])), "speaker": ids}
    assert model.loss(batch, 0).logs["speaker_encoder"] > 0
    optimizer = torch.optim.Adam(model.speaker_encoder.parameters(), 3e-3)
    for step in range(60):  # the encoder's own objective: regress each voice onto its table row
        ids = torch.tensor([step % 3, (step + 1) % 3, (step + 2) % 3] * 2)
        batch = mel(torch.stack([voice(*voices[i], 0.75, rng) for i in ids.tolist()]))
        _, losses = model.training_condition({"mel": batch, "speaker": ids}, torch.ones(6, 1, batch.shape[-1]))
        optimizer.zero_grad()
        losses["speaker_encoder"].backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        fresh = mel(torch.stack([voice(*v, 1.2, rng) for v in voices]))  # longer clips than in training
        distances = torch.cdist(model.embed_speaker(fresh), model.speakers.weight)
    assert distances.argmin(dim=1).tolist() == [0, 1, 2]
    with pytest.raises(ConfigError, match="no speaker encoder"):
        build_model("cvae", TINY | {"n_speakers": 2}).embed_speaker(fresh)
