"""The DCASE Task 2 baseline autoencoder: dense layers over a few stacked log-mel frames (Koizumi et al. 2020;
Purohit et al. 2019 for MIMII), kept as the reference an anomaly detector must beat.

Each frame's window of ``context`` frames (5: 640 values for 128 bands) goes through ``layers`` dense layers of
``hidden`` units with batch normalisation and ReLU to a ``latent_dim``-wide code (8) and back; the loss and the
anomaly score are the mean squared error over the whole window. Dense layers applied at every frame are 1x1
convolutions, so one forward pass scores a whole clip. Unlike the original (which feeds raw dB), the input is
normalised per band like every model here; the architecture and objective are the baseline's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import LatentModel, LossOutput, ModelConfig
from .bottlenecks import Point


@dataclass
class DenseAEConfig(ModelConfig):
    """Attributes: context (frames per window, odd), hidden (units per dense layer), layers (dense layers on each
    side of the code)."""

    latent_dim: int = 8
    n_mels: int = 128
    context: int = 5
    hidden: int = 128
    layers: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.context < 1 or self.context % 2 == 0:
            raise ConfigError(f"DenseAEConfig.context={self.context} must be odd and >= 1")
        if self.hidden < 1 or self.layers < 1:
            raise ConfigError("DenseAEConfig: hidden and layers must be >= 1")


def _dense(sizes: list[int]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Conv1d(a, b, 1), nn.BatchNorm1d(b), nn.ReLU()]
    return layers


class DenseAE(LatentModel):
    """Dense autoencoder over stacked frames; latents ``[B, latent_dim, T]`` (one code per frame, hop factor 1)."""

    model_type = "dense_ae"
    config_class = DenseAEConfig
    default_task = "anomaly"

    def __init__(self, config: DenseAEConfig) -> None:
        super().__init__(config)
        c, width = config, config.n_mels * config.context
        self.encoder = nn.Sequential(*_dense([width] + [c.hidden] * c.layers + [c.latent_dim]))
        self.decoder = nn.Sequential(*_dense([c.latent_dim] + [c.hidden] * c.layers), nn.Conv1d(c.hidden, width, 1))

    @property
    def hop_factor(self) -> int:
        return 1

    def windows(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel ``[B, M, T]`` -> the window centred on each frame ``[B, M * context, T]`` (edges
        repeated)."""
        k = self.config.context
        x = F.pad(self.normalize(mel), (k // 2, k // 2), mode="replicate")
        w = x.unfold(-1, k, 1)  # [B, M, T, k]
        return w.permute(0, 1, 3, 2).reshape(mel.shape[0], -1, mel.shape[-1])

    def encode(self, mel: torch.Tensor, speaker: torch.Tensor | None = None) -> Point:
        return Point(self.encoder(self.windows(mel)))

    def decode(self, z: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        w = self.decoder(z).reshape(z.shape[0], c.n_mels, c.context, z.shape[-1])
        return self.denormalize(w[:, :, c.context // 2])

    def sample(self, n: int, frames: int, speaker: torch.Tensor | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        raise ConfigError("dense_ae is a plain autoencoder: it has no prior to sample from")

    def _window_errors(self, mel: torch.Tensor) -> torch.Tensor:
        w = self.windows(mel)
        return (self.decoder(self.encoder(w)) - w).square().mean(dim=1)

    @torch.no_grad()
    def frame_scores(self, mel: torch.Tensor, kind: str = "recon", speaker: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """The baseline's score: the mean squared error over each frame's whole window."""
        if kind not in self.anomaly_scores:
            raise ConfigError(f"dense_ae scores frames by recon (its reconstruction error) only, not {kind!r}")
        return self._window_errors(mel)

    def loss(self, batch: dict[str, torch.Tensor], step: int) -> LossOutput:
        mel = batch["mel"]
        lengths = batch.get("length", torch.full((mel.shape[0],), mel.shape[-1], device=mel.device))
        mask = (torch.arange(mel.shape[-1], device=mel.device)[None] < lengths.to(mel.device)[:, None]).float()
        err = self._window_errors(mel)
        recon = (err * mask).sum() / mask.sum().clamp_min(1.0)
        return LossOutput({"model": recon}, {"recon": recon.detach()}, {})
