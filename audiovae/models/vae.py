"""Convolutional VAE over log-mel frames, and its speaker-conditioned form (CVAE) for voice conversion.

Encoder: 1-D convolutions over time with mel bins as channels, residual stages that downsample time by
``prod(factors)``, then per-latent-frame mean and log-variance. Decoder: the mirror image. The CVAE adds a speaker
embedding table that conditions every decoder block by FiLM (and optionally the encoder), instance normalisation in
the encoder to strip per-utterance timbre, and an optional adversarial speaker classifier on z (gradient reversal)
that pushes speaker identity out of the latents, and optionally a speaker encoder (reference recording -> embedding,
regressed onto the table and used in place of it for part of each batch) for one-shot conversion to voices outside
the table. ``batch["clean"]``, when present, is the decoder's target: the same
model is then a denoising VAE (noisy in, clean out).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..losses import KLSchedule, free_bits, gaussian_kl, kl_per_dim, reconstruction
from .base import DiagonalGaussian, LatentModel, LossOutput
from .layers import GradientReversal, SpeakerEncoder, Stage, conv1d


@dataclass
class VAEConfig:
    """Architecture and objective of :class:`ConvVAE` / :class:`CVAE`.

    Attributes:
        n_mels: input bands (must equal the ``MelConfig``'s).
        channels: width of each encoder stage (the decoder mirrors them).
        factors: time downsampling of each stage, 1 or even; latent rate = frame rate / prod(factors).
        blocks: residual blocks per stage.
        latent_dim: latent channels per latent frame.
        recon: ``l1``, ``l2`` or ``nll`` (Gaussian with a learnt per-band scale).
        beta, kl_mode, kl_warmup, kl_total, kl_cycles: the KL weight and its annealing (:class:`KLSchedule`).
        free_bits: nats per latent dimension that cost nothing (0 disables).
        n_speakers: speakers in the embedding table (CVAE; 0 for a plain VAE).
        speaker_dim: speaker embedding size.
        encoder_speaker: also condition the encoder on the speaker.
        instance_norm: instance normalisation in the encoder blocks.
        adversary_weight: weight of the gradient-reversed speaker classifier on z (0 disables).
        speaker_encoder: train a speaker encoder with the CVAE (one-shot conversion to voices not in the table).
        speaker_encoder_mix: share of each training batch decoded with the encoder's embedding instead of the
            table's, so the decoder learns to follow embeddings off the table's points.
        speaker_encoder_weight: weight of the encoder's regression onto the (stop-gradient) table embedding.
    """

    n_mels: int = 80
    channels: tuple[int, ...] = (256, 256)
    factors: tuple[int, ...] = (2, 2)
    blocks: int = 2
    latent_dim: int = 32
    recon: str = "l1"
    beta: float = 1.0
    kl_mode: str = "linear"
    kl_warmup: int = 2000
    kl_total: int = 20000
    kl_cycles: int = 4
    free_bits: float = 0.1
    n_speakers: int = 0
    speaker_dim: int = 64
    encoder_speaker: bool = False
    instance_norm: bool = False
    adversary_weight: float = 0.0
    speaker_encoder: bool = False
    speaker_encoder_mix: float = 0.5
    speaker_encoder_weight: float = 1.0

    def __post_init__(self) -> None:
        self.channels, self.factors = tuple(self.channels), tuple(self.factors)
        if len(self.channels) != len(self.factors):
            raise ConfigError(f"VAEConfig: channels {self.channels} and factors {self.factors} differ in length")
        if any(f != 1 and f % 2 for f in self.factors):
            raise ConfigError(f"VAEConfig.factors={self.factors}: each must be 1 or even")
        if self.recon not in ("l1", "l2", "nll"):
            raise ConfigError(f"VAEConfig.recon={self.recon!r} must be 'l1', 'l2' or 'nll'")
        KLSchedule(self.beta, self.kl_mode)  # validates beta and mode
        if not 0.0 <= self.speaker_encoder_mix <= 1.0:
            raise ConfigError(f"VAEConfig.speaker_encoder_mix={self.speaker_encoder_mix} must be in [0, 1]")

    def kl_schedule(self) -> KLSchedule:
        return KLSchedule(self.beta, self.kl_mode, self.kl_warmup, self.kl_total, self.kl_cycles)

    def to_dict(self) -> dict:
        return asdict(self)


class ConvVAE(LatentModel):
    """The plain convolutional VAE (no speaker conditioning)."""

    model_type = "vae"
    config_class = VAEConfig

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config)
        c = config
        cond = c.speaker_dim if c.n_speakers else 0
        enc_cond = cond if c.encoder_speaker else 0
        self.enc_in = conv1d(c.n_mels, c.channels[0], 5)
        outs = c.channels[1:] + (c.channels[-1],)
        self.enc = nn.ModuleList(Stage(ci, co, f, c.blocks, up=False, instance_norm=c.instance_norm, cond_dim=enc_cond)
                                 for ci, co, f in zip(c.channels, outs, c.factors, strict=True))
        self.enc_out = conv1d(c.channels[-1], 2 * c.latent_dim, 3)
        self.dec_in = conv1d(c.latent_dim, c.channels[-1], 3)
        self.dec = nn.ModuleList(Stage(co, ci, f, c.blocks, up=True, cond_dim=cond)
                                 for ci, co, f in reversed(list(zip(c.channels, outs, c.factors, strict=True))))
        self.dec_out = conv1d(c.channels[0], c.n_mels, 5)
        self.logscale = nn.Parameter(torch.zeros(c.n_mels, 1)) if c.recon == "nll" else None
        self.kl_schedule = c.kl_schedule()

    @property
    def hop_factor(self) -> int:
        return math.prod(self.config.factors)

    def condition(self, speaker: torch.Tensor | None) -> torch.Tensor | None:
        """Conditioning vector for the blocks (none for the plain VAE)."""
        return None

    def encode(self, mel: torch.Tensor, speaker: torch.Tensor | None = None) -> DiagonalGaussian:
        r = self.hop_factor
        x = self.normalize(mel)
        pad = (-x.shape[-1]) % r
        if pad:
            x = F.pad(x, (0, pad), mode="replicate")
        cond = self.condition(speaker) if self.config.encoder_speaker else None
        h = self.enc_in(x)
        for stage in self.enc:
            h = stage(h, cond)
        mean, logvar = self.enc_out(F.silu(h)).chunk(2, dim=1)
        return DiagonalGaussian(mean, logvar)

    def decode(self, z: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        cond = self.condition(speaker)
        h = self.dec_in(z)
        for stage in self.dec:
            h = stage(h, cond)
        return self.denormalize(self.dec_out(F.silu(h)))

    def sample(self, n: int, frames: int, speaker: torch.Tensor | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        device = self.mel_mean.device
        latent_frames = -(-frames // self.hop_factor)
        z = torch.randn(n, self.config.latent_dim, latent_frames, generator=generator, device=device) * temperature
        return self.decode(z, speaker)[..., :frames]

    def _masks(self, batch: dict[str, torch.Tensor], frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Valid-frame masks ``[B, 1, T]`` for spectrogram and latent frames (padding excluded)."""
        mel = batch["mel"]
        lengths = batch.get("length")
        if lengths is None:
            lengths = torch.full((mel.shape[0],), mel.shape[-1], device=mel.device)
        t = torch.arange(frames, device=mel.device)
        mask = (t[None, :] < lengths.to(mel.device)[:, None]).unsqueeze(1).float()
        r = self.hop_factor
        latent = (torch.arange(-(-frames // r), device=mel.device)[None, :] * r
                  < lengths.to(mel.device)[:, None]).unsqueeze(1).float()
        return mask, latent

    def loss(self, batch: dict[str, torch.Tensor], step: int) -> LossOutput:
        mel = batch["mel"]
        target = batch.get("clean", mel)
        frames = mel.shape[-1]
        mask, latent_mask = self._masks(batch, frames)
        speaker, extra = self.training_condition(batch, mask)
        posterior = self.encode(mel, speaker)
        z = posterior.sample()
        estimate = self.decode(z, speaker)[..., :frames]
        logscale = self.logscale
        recon = reconstruction(self.normalize(target), self.normalize(estimate), self.config.recon, logscale, mask)
        kl_dims = kl_per_dim(gaussian_kl(posterior.mean, posterior.logvar), latent_mask)
        kl = kl_dims.sum()
        weight = self.kl_schedule(step)
        # per spectrogram frame: reconstruction summed over bands, KL over dimensions spread over hop_factor frames
        total = recon * self.config.n_mels + weight * free_bits(kl_dims, self.config.free_bits) / self.hop_factor
        with torch.no_grad():  # detached tensors: the Trainer converts them only on logging steps (no GPU sync)
            logs = {"recon": recon.detach(), "kl": kl.detach(), "kl_weight": weight,
                    "mel_l1": reconstruction(target, estimate, "l1", mask=mask), "min_kl_dim": kl_dims.min()}
        extra.update(self.extra_losses(z, batch))
        for name, value in extra.items():
            total = total + value
            logs[name] = value.detach()
        return LossOutput({"model": total}, logs, {"estimate": estimate.detach(), "z": posterior.mean.detach(),
                                                   "kl_dims": kl_dims.detach()})

    def training_condition(self, batch: dict[str, torch.Tensor], mask: torch.Tensor
                           ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """What conditions encoder and decoder in training, and the losses that come with it (hook for the CVAE)."""
        return batch.get("speaker"), {}

    def extra_losses(self, z: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Hook for conditioned variants (the CVAE's speaker adversary); none here."""
        return {}


class CVAE(ConvVAE):
    """Speaker-conditioned VAE: decode the content of z in any speaker's voice.

    ``speaker`` arguments are ids into the table (``[B]`` integers) or embeddings (``[B, speaker_dim]`` floats, from
    :meth:`embed_speaker` on a reference recording when the model has a speaker encoder).
    """

    model_type = "cvae"
    default_task = "convert"

    def __init__(self, config: VAEConfig) -> None:
        if config.n_speakers < 1:
            raise ConfigError("CVAE needs n_speakers >= 1: train it with data.conditioning=speaker (the speakers come "
                              "from the data)")
        super().__init__(config)
        self.speakers = nn.Embedding(config.n_speakers, config.speaker_dim)
        nn.init.normal_(self.speakers.weight, std=0.3)
        self.adversary = nn.Sequential(conv1d(config.latent_dim, 128, 3), nn.SiLU(), conv1d(128, config.n_speakers, 1)
                                       ) if config.adversary_weight > 0 else None
        self.speaker_encoder = SpeakerEncoder(config.n_mels, config.speaker_dim) if config.speaker_encoder else None

    def condition(self, speaker: torch.Tensor | None) -> torch.Tensor:
        if speaker is None:
            raise ConfigError("CVAE: a speaker id is needed to encode/decode (see `audiovae speakers`)")
        if speaker.is_floating_point():
            if speaker.ndim != 2 or speaker.shape[1] != self.config.speaker_dim:
                raise ConfigError(f"speaker embedding of shape {tuple(speaker.shape)}; this model takes "
                                  f"[batch, {self.config.speaker_dim}]")
            return speaker
        return self.speakers(speaker)

    def embed_speaker(self, mel: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Log-mel ``[B, n_mels, T]`` of reference speech -> speaker embeddings ``[B, speaker_dim]``."""
        if self.speaker_encoder is None:
            raise ConfigError("this model has no speaker encoder (train it with model.speaker_encoder=true for "
                              "one-shot conversion); use a speaker of its table instead")
        return self.speaker_encoder(self.normalize(mel), mask)

    def training_condition(self, batch: dict[str, torch.Tensor], mask: torch.Tensor
                           ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ids = batch["speaker"]
        if self.speaker_encoder is None:
            return ids, {}
        table = self.speakers(ids)
        embedded = self.embed_speaker(batch["mel"], mask)
        match = ((embedded - table.detach()) ** 2).sum(dim=-1).mean()
        losses = {"speaker_encoder": self.config.speaker_encoder_weight * match}
        if not self.training:  # validation measures the table path, the same for every run
            return table, losses
        use = torch.rand(ids.shape[0], 1, device=ids.device) < self.config.speaker_encoder_mix
        return torch.where(use, embedded, table), losses

    def extra_losses(self, z: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.adversary is None:
            return {}
        logits = self.adversary(GradientReversal.apply(z, 1.0)).mean(dim=-1)
        ce = F.cross_entropy(logits, batch["speaker"])
        return {"speaker_adversary": self.config.adversary_weight * ce}
