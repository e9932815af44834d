"""What ``audiovae train music_prior`` builds: a frozen VAE (loaded from ``model.vae``) and the
:class:`~audiovae.models.prior.LatentPrior` learning its posterior-mean sequences, as one
:class:`~audiovae.trainable.Trainable`; its checkpoint is the VAE with the prior beside it (component ``prior``).

It lives in the training package, not beside the prior in ``models/``, because it loads the VAE from a checkpoint and
the checkpoint module builds models: from ``models/`` that was an import circle (models -> prior -> checkpoint ->
models).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..checkpoint import load_checkpoint
from ..errors import ConfigError
from ..features import MelConfig
from ..models.base import LatentModel, ModelConfig
from ..models.prior import LOG_2PI, LatentPrior, PriorConfig
from ..trainable import LossOutput, TrainableMixin

__all__ = ["PriorTraining", "PriorTrainingConfig"]


@dataclass
class PriorTrainingConfig(ModelConfig):
    """``model`` section of a prior's run (``type: latent_prior``).

    Attributes:
        vae: the trained VAE checkpoint whose latents the prior learns (frozen; the run's ``mel`` must be its own).
        hidden, layers, mixtures: the :class:`PriorConfig`.
    """

    vae: str = ""
    hidden: int = 384
    layers: int = 2
    mixtures: int = 8

    def prior_config(self) -> PriorConfig:
        return PriorConfig(self.latent_dim, self.hidden, self.layers, self.mixtures)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.prior_config()  # validates the sizes now
        if not self.vae:
            raise ConfigError("model.vae is not set: give the VAE checkpoint whose latents the prior learns "
                              "(e.g. model.vae=runs/music_vae/model.safetensors)")


class PriorTraining(TrainableMixin, nn.Module):
    """A frozen VAE and the :class:`LatentPrior` learning its posterior-mean sequences; exports both."""

    model_type: ClassVar[str] = "latent_prior"
    config_class: ClassVar[type[ModelConfig]] = PriorTrainingConfig
    default_task: ClassVar[str] = "music"

    def __init__(self, config: PriorTrainingConfig) -> None:
        super().__init__()
        self.config = config
        ckpt = load_checkpoint(config.vae)
        vae: LatentModel = ckpt.model
        for name in ("n_mels", "latent_dim"):
            if getattr(vae.config, name) != getattr(config, name):
                raise ConfigError(f"model.{name}={getattr(config, name)}, but the VAE {config.vae} has "
                                  f"{name}={getattr(vae.config, name)}")
        self.vae = vae.requires_grad_(False).eval()
        self.vae_mel = ckpt.mel
        self.prior = LatentPrior(config.prior_config())

    def check_features(self, mel: MelConfig) -> None:
        if mel.fingerprint() != self.vae_mel.fingerprint():
            ours, theirs = mel.to_dict(), self.vae_mel.to_dict()
            diff = ", ".join(f"mel.{k}={ours[k]} (the VAE's: {theirs[k]})" for k in ours if ours[k] != theirs.get(k))
            raise ConfigError(f"the run's front end differs from the VAE's ({self.config.vae}): {diff}")

    def train(self, mode: bool = True) -> PriorTraining:
        super().train(mode)
        self.vae.eval()  # frozen: always in inference mode
        return self

    @torch.no_grad()
    def latents(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior means ``[B, D, T']`` of a batch's crops and the mask ``[B, T']`` of their valid frames."""
        mel = batch["mel"].float()
        with torch.autocast(mel.device.type, enabled=False):  # the latents inference sees: fp32
            z = self.vae.encode(mel).mode().float()
        hop = self.vae.hop_factor
        lengths = batch.get("length", torch.full((mel.shape[0],), mel.shape[-1], device=mel.device))
        valid = -(-lengths.to(mel.device) // hop)
        mask = (torch.arange(z.shape[-1], device=mel.device)[None, :] < valid[:, None]).float()
        return z, mask

    @torch.no_grad()
    def prepare(self, batches: Iterable[dict[str, torch.Tensor]]) -> None:
        """Per-dimension mean and spread of the VAE's latents over a sample of training crops."""
        zs = []
        for batch in batches:
            z, mask = self.latents(batch)
            zs += [z[i][:, mask[i] > 0] for i in range(z.shape[0])]
        flat = torch.cat(zs, dim=-1).double()
        self.prior.set_statistics(flat.mean(-1).float(), flat.std(-1).float())

    def loss(self, batch: dict[str, torch.Tensor], step: int) -> LossOutput:
        z, mask = self.latents(batch)
        with torch.autocast(z.device.type, enabled=False):
            lp = self.prior.log_prob(z)
        frames = mask.sum().clamp_min(1)
        dim = self.config.latent_dim
        nll = -(lp * mask).sum() / frames / dim  # nats per latent dimension and frame
        with torch.no_grad():  # the same latents under the per-frame N(0, I) the VAE was trained towards
            standard = (0.5 * (z ** 2 + LOG_2PI) * mask[:, None]).sum() / frames / dim
        return LossOutput({"model": nll}, {"nll": nll.detach(), "nll_standard_normal": standard})

    @torch.no_grad()
    def preview(self, batch: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        """A validation crop, and a sample of the same length from the prior (seeded: comparable across steps)."""
        mel = batch["mel"][:1].float()
        frames = -(-mel.shape[-1] // self.vae.hop_factor)
        generator = torch.Generator(mel.device).manual_seed(0)
        sample = self.vae.decode(self.prior.sample(1, frames, generator=generator))[..., : mel.shape[-1]]
        return [("real crop", mel[0]), ("prior sample", sample[0])]

    def export(self) -> dict[str, nn.Module]:
        return {"model": self.vae, "prior": self.prior}
