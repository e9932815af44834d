"""The one interface every model fits: ``encode``, ``decode``, ``sample``, ``loss`` (after AntixK/PyTorch-VAE).

Models see log-mel spectrograms ``[B, n_mels, frames]`` in nats, exactly what ``MelSpectrogram`` returns; they
normalise internally with per-band statistics kept as buffers (so they travel in the checkpoint), and everything
they return is back in nats. They know nothing of files, devices or optimisers.

``loss`` returns one loss per *optimiser group* (``param_groups``): a plain VAE has one group, ``"model"``; a variant
with an adversary (AAE, a GAN vocoder) adds ``"disc"``. The Trainer steps one optimiser per group, each loss
restricted to its own parameters, so adversarial variants need no special path in the engine.

``encode`` returns a :class:`~.bottlenecks.Posterior` (``sample``, ``mode``, ``regulariser``), re-exported here, so
callers see one type whatever the bottleneck; every model's config extends :class:`ModelConfig` (``n_mels``,
``latent_dim``), which is all that code outside ``models/`` may assume of it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from .bottlenecks import DiagonalGaussian, Posterior, Regularisation

__all__ = ["DiagonalGaussian", "LatentModel", "LossOutput", "ModelConfig", "Posterior", "Regularisation"]


@dataclass
class ModelConfig:
    """What every model's config declares; each model's config dataclass extends it with its own options.

    Attributes:
        n_mels: input bands (must equal the ``MelConfig``'s).
        latent_dim: latent channels per latent frame.
    """

    n_mels: int = 80
    latent_dim: int = 32

    def __post_init__(self) -> None:
        for name in ("n_mels", "latent_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{type(self).__name__}.{name}={getattr(self, name)} must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LossOutput:
    """What ``loss`` returns: a scalar per optimiser group, scalars to log, tensors for plots."""

    losses: dict[str, torch.Tensor]
    logs: dict[str, float | torch.Tensor] = field(default_factory=dict)
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)


class LatentModel(nn.Module):
    """Base of every model. Subclasses set ``model_type``/``config_class`` and implement the four methods."""

    model_type: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]]

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        n_mels = config.n_mels
        # Per-band log-mel statistics, set from training data by the Trainer (set_normalization) and saved with
        # the weights; identity until then.
        self.register_buffer("mel_mean", torch.zeros(n_mels))
        self.register_buffer("mel_std", torch.ones(n_mels))

    # --- normalisation ----------------------------------------------------------------------------------------------
    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mel_mean.copy_(mean)
        self.mel_std.copy_(std.clamp_min(1e-3))

    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        return (mel - self.mel_mean[:, None]) / self.mel_std[:, None]

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mel_std[:, None] + self.mel_mean[:, None]

    # --- the interface ----------------------------------------------------------------------------------------------
    @property
    def hop_factor(self) -> int:
        """Spectrogram frames per latent frame."""
        raise NotImplementedError

    def encode(self, mel: torch.Tensor, speaker: torch.Tensor | None = None) -> Posterior:
        """Log-mel ``[B, n_mels, T]`` -> posterior over latent frames ``[B, D, ceil(T / hop_factor)]``."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        """Latents ``[B, D, T']`` -> log-mel ``[B, n_mels, T' * hop_factor]`` (nats)."""
        raise NotImplementedError

    def sample(self, n: int, frames: int, speaker: torch.Tensor | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` log-mels of ``frames`` frames from the prior."""
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor], step: int) -> LossOutput:
        """Training objective for one batch (keys: ``mel``, ``length``, optional ``speaker``, ``clean``)."""
        raise NotImplementedError

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters per optimiser group; one group unless the model trains an adversary."""
        return {"model": [p for p in self.parameters() if p.requires_grad]}

    # --- conveniences built on the interface ------------------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, mel: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        """Encode, take the posterior mode, decode; cropped to the input's length."""
        return self.decode(self.encode(mel, speaker).mode(), speaker)[..., : mel.shape[-1]]
