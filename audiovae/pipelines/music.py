"""Music from a trained model's latent space: samples from its learned prior, the per-frame ``N(0, I)`` baseline,
and a latent random walk.

Every function takes a loaded :class:`~audiovae.checkpoint.Checkpoint` (a VAE; the music model also carries a
:class:`~audiovae.models.prior.LatentPrior`) and returns log-mels or waveforms; writing files is the caller's job.
Results are deterministic for a seed (the prior's draws, the baseline's noise and the vocoder's initial phase).
"""

from __future__ import annotations

import math

import torch

from ..checkpoint import Checkpoint
from ..errors import ConfigError
from ..vocoders import Vocoder
from .vocoder_choice import vocoder_for

SOURCES = ("prior", "normal")  # the learned prior, or the model's own per-frame prior (N(0, I) for a VAE: the baseline)
MAX_SECONDS = 600.0


def mel_frames(ckpt: Checkpoint, seconds: float) -> int:
    """Log-mel frames of ``seconds`` of audio (centred frames: one more than whole hops)."""
    return math.ceil(round(seconds * ckpt.mel.sample_rate) / ckpt.mel.hop_length) + 1


def latent_frames(ckpt: Checkpoint, seconds: float) -> int:
    """Latent frames that decode to at least the log-mel frames of ``seconds`` of audio."""
    return math.ceil(mel_frames(ckpt, seconds) / ckpt.model.hop_factor)


def check_request(ckpt: Checkpoint, n: int, seconds: float, temperature: float, source: str) -> None:
    """Refuse a request that cannot be served, before any work (one-line errors)."""
    if source not in SOURCES:
        raise ConfigError(f"source {source!r}: choose {' or '.join(SOURCES)}")
    if source == "prior" and ckpt.prior is None:
        raise ConfigError(f"this model ({ckpt.model.model_type}, task {ckpt.task}) has no learned prior: train one "
                          "with `audiovae train music_prior model.vae=CKPT`, or sample per-frame N(0, I) "
                          "with --no-prior")
    if n < 1:
        raise ConfigError(f"-n {n}: at least one sample")
    if not 0.1 <= seconds <= MAX_SECONDS:
        raise ConfigError(f"--seconds {seconds:g}: between 0.1 and {MAX_SECONDS:g}")
    if not 0.0 <= temperature <= 5.0:
        raise ConfigError(f"--temperature {temperature:g}: between 0 and 5")


@torch.inference_mode()
def sample_latents(ckpt: Checkpoint, n: int, seconds: float, temperature: float = 1.0, seed: int = 0,
                   source: str = "prior") -> torch.Tensor:
    """``n`` latent sequences ``[n, D, T']`` covering ``seconds``, from the learned prior or from ``N(0, I)``;
    sequence ``i`` is drawn with seed ``seed + i``, so it does not depend on ``n`` (up to float rounding in
    the batched network)."""
    check_request(ckpt, n, seconds, temperature, source)
    device = ckpt.model.mel_mean.device
    frames, dim = latent_frames(ckpt, seconds), ckpt.model.config.latent_dim
    generators = [torch.Generator(device).manual_seed(seed + i) for i in range(n)]
    if source == "prior":
        return ckpt.prior.sample(n, frames, temperature, generators)
    bottleneck = getattr(ckpt.model, "bottleneck", None)
    if bottleneck is not None:  # the model's own prior: N(0, I) for a Gaussian VAE (the same draws), the code usage
        return torch.cat([bottleneck.prior(1, frames, temperature, g, device) for g in generators])  # of a VQ-VAE, ...
    return torch.stack([torch.randn(dim, frames, generator=g, device=device) for g in generators]) * temperature


@torch.inference_mode()
def walk_latents(ckpt: Checkpoint, seconds: float, temperature: float = 1.0, seed: int = 0,
                 correlation_seconds: float = 2.0, source: str = "prior") -> torch.Tensor:
    """A latent random walk ``[1, D, T']``: an Ornstein-Uhlenbeck path whose every frame is distributed like the
    music's latents (the prior's per-dimension mean and spread; ``N(0, I)`` without a prior) and which forgets where
    it was over ``correlation_seconds``: a slow, continuous drift through the latent space."""
    check_request(ckpt, 1, seconds, temperature, source)
    if not correlation_seconds > 0:
        raise ConfigError(f"correlation_seconds={correlation_seconds:g} must be > 0")
    device = ckpt.model.mel_mean.device
    generator = torch.Generator(device).manual_seed(seed)
    frames = latent_frames(ckpt, seconds)
    dim = ckpt.model.config.latent_dim
    rate = ckpt.mel.frame_rate / ckpt.model.hop_factor
    rho = math.exp(-1.0 / (correlation_seconds * rate))
    eps = torch.randn(dim, frames, generator=generator, device=device)
    u = torch.empty_like(eps)
    u[:, 0] = eps[:, 0]
    for t in range(1, frames):
        u[:, t] = rho * u[:, t - 1] + math.sqrt(1 - rho * rho) * eps[:, t]
    mean, std = ((ckpt.prior.z_mean, ckpt.prior.z_std) if source == "prior"
                 else (torch.zeros(dim, device=device), torch.ones(dim, device=device)))
    return (mean[:, None] + temperature * std[:, None] * u)[None]


@torch.inference_mode()
def render(ckpt: Checkpoint, z: torch.Tensor, seconds: float, vocoder: Vocoder | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode latents ``[n, D, T']`` to log-mels ``[n, n_mels, frames]`` and waveforms ``[n, samples]`` of exactly
    ``seconds``. Each clip is decoded and vocoded on its own: memory stays that of one clip, and a vocoder's seeded
    randomness (Griffin-Lim's initial phase) is the same for a clip whatever its place in the batch."""
    samples, frames = round(seconds * ckpt.mel.sample_rate), mel_frames(ckpt, seconds)
    vocoder, device = vocoder or vocoder_for(ckpt), ckpt.model.mel_mean.device
    mels, waves = [], []
    for one in z.to(device).float():
        mel = ckpt.model.decode(one[None])[..., :frames]
        waves.append(vocoder(mel, length=samples).float().cpu())
        mels.append(mel.float().cpu())
    return torch.cat(mels), torch.cat(waves)


def generate(ckpt: Checkpoint, n: int = 4, seconds: float = 10.0, temperature: float = 1.0, seed: int = 0,
             source: str = "prior", walk: bool = False, vocoder: Vocoder | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """What ``audiovae sample-music`` writes: ``(log-mels [n, n_mels, frames], waves [n, samples])``: ``n`` samples
    (or with ``walk``, ``n`` random walks), the ``i``-th seeded ``seed + i``."""
    if walk:
        z = torch.cat([walk_latents(ckpt, seconds, temperature, seed + i, source=source) for i in range(n)])
    else:
        z = sample_latents(ckpt, n, seconds, temperature, seed, source)
    return render(ckpt, z, seconds, vocoder)
