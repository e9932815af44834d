"""Deterministic encoders whose *aggregate* posterior is matched to the prior ``N(0, I)``, instead of each
posterior's KL: the cure for blurry reconstructions and collapsed posteriors that the per-example KL causes.

- :class:`MMDBottleneck` (WAE-MMD, Tolstikhin et al. 2018): the maximum mean discrepancy between the batch's latent
  frames and as many prior draws, under an inverse multiquadric kernel.
- :class:`AdversarialBottleneck` (adversarial autoencoder, Makhzani et al. 2016): a discriminator on latent frames
  tells prior draws from encoder outputs; the encoder is trained to fool it. The discriminator is a parameter group of
  its own (``"disc"``), trained by the engine's second optimiser on ``Regularisation.group_losses``.

Both draw from ``N(0, I)`` per latent frame when sampling, like the Gaussian VAE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..losses import mmd_imq
from .bottlenecks import Bottleneck, Point, Regularisation, standard_normal, valid_frames
from .layers import conv1d


def _subsample(rows: torch.Tensor, n: int) -> torch.Tensor:
    """At most ``n`` rows, evenly spaced (deterministic, so a resumed run computes the same loss)."""
    if rows.shape[0] <= n:
        return rows
    return rows[torch.linspace(0, rows.shape[0] - 1, n, device=rows.device).long()]


class Matched(Point):
    """A point posterior whose regulariser matches the batch's latent frames to the prior (the bottleneck's
    ``match``)."""

    def __init__(self, z: torch.Tensor, bottleneck: _Deterministic) -> None:
        super().__init__(z)
        self.bottleneck = bottleneck

    def regulariser(self, mask: torch.Tensor | None, step: int) -> Regularisation:
        rows = _subsample(valid_frames(self.z.float(), mask), self.bottleneck.max_frames)
        reg = self.bottleneck.match(rows)
        with torch.no_grad():  # how close the aggregate posterior's moments are to N(0, I)
            reg.logs.update(z_mean=rows.mean(), z_std=rows.std(dim=0).mean() if rows.shape[0] > 1 else rows.sum() * 0)
        return reg


class _Deterministic(Bottleneck):
    """A 3-wide convolution to ``latent_dim`` channels, a :class:`Matched` posterior, the prior ``N(0, I)``;
    subclasses define ``match`` (rows ``[N, D]`` -> :class:`Regularisation`) and ``max_frames``."""

    max_frames: int

    def __init__(self, in_channels: int, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.head = conv1d(in_channels, latent_dim, 3)

    def forward(self, features: torch.Tensor) -> Matched:
        return Matched(self.head(features), self)

    def match(self, rows: torch.Tensor) -> Regularisation:
        raise NotImplementedError

    def prior(self, n: int, frames: int, temperature: float = 1.0, generator: torch.Generator | None = None,
              device: torch.device | None = None) -> torch.Tensor:
        return standard_normal(n, self.latent_dim, frames, temperature, generator, device)


class MMDBottleneck(_Deterministic):
    """WAE-MMD: ``weight * MMD(z frames, N(0, I) draws)`` with the inverse multiquadric kernel, on at most
    ``max_frames`` latent frames of each batch (the estimate costs their square)."""

    def __init__(self, in_channels: int, latent_dim: int, weight: float = 100.0, max_frames: int = 512) -> None:
        super().__init__(in_channels, latent_dim)
        if weight < 0 or max_frames < 2:
            raise ConfigError(f"WAE: mmd_weight={weight} must be >= 0 and max_frames={max_frames} >= 2")
        self.weight, self.max_frames = weight, max_frames

    def match(self, rows: torch.Tensor) -> Regularisation:
        prior = torch.randn_like(rows)
        mmd = mmd_imq(rows, prior)
        return Regularisation(self.weight * mmd, {"mmd": mmd.detach()})


class AdversarialBottleneck(_Deterministic):
    """Adversarial autoencoder: a discriminator (pointwise MLP of ``disc_width`` over latent frames) learns to tell
    ``N(0, I)`` draws (real) from encoder outputs (fake) by the logistic loss; the encoder pays ``weight`` times the
    non-saturating generator loss for frames it recognises."""

    def __init__(self, in_channels: int, latent_dim: int, weight: float = 1.0, disc_width: int = 256,
                 max_frames: int = 1024) -> None:
        super().__init__(in_channels, latent_dim)
        if weight < 0 or disc_width < 1 or max_frames < 2:
            raise ConfigError(f"AAE: disc_weight={weight} must be >= 0, disc_width={disc_width} >= 1 and "
                              f"max_frames={max_frames} >= 2")
        self.weight, self.max_frames = weight, max_frames
        self.disc = nn.Sequential(nn.Linear(latent_dim, disc_width), nn.LeakyReLU(0.2),
                                  nn.Linear(disc_width, disc_width), nn.LeakyReLU(0.2), nn.Linear(disc_width, 1))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"disc": list(self.disc.parameters())}

    def match(self, rows: torch.Tensor) -> Regularisation:
        prior = torch.randn_like(rows)
        fake = self.disc(rows.detach())
        real = self.disc(prior)
        disc_loss = F.softplus(-real).mean() + F.softplus(fake).mean()
        fool = F.softplus(-self.disc(rows)).mean()  # the encoder's: its frames should look like prior draws
        with torch.no_grad():
            accuracy = 0.5 * ((real > 0).float().mean() + (fake < 0).float().mean())
        return Regularisation(self.weight * fool, {"adv": fool.detach(), "disc_accuracy": accuracy},
                              group_losses={"disc": disc_loss})
