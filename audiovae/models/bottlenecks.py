"""Bottlenecks: what sits between encoder and decoder, and the only place where model variants differ.

A :class:`Bottleneck` turns encoder features ``[B, C, T']`` into a :class:`Posterior` over latents
``[B, latent_dim, T']``. The posterior knows how to draw (``sample``), how to give its point estimate (``mode``) and
its own regularising term (``regulariser``): the KL with its beta schedule and free bits for a VAE, the commitment
and codebook terms for a VQ-VAE, an MMD to the prior for a WAE, nothing for a plain autoencoder. The model adds
that term to its reconstruction loss without knowing which it is, so a new bottleneck drops in with no change to
the model class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from ..errors import ConfigError
from ..losses import CapacitySchedule, KLSchedule, free_bits, gaussian_kl, kl_per_dim
from .layers import conv1d


@dataclass
class Regularisation:
    """A posterior's term in the objective.

    Attributes:
        loss: scalar to add to the objective, weighted (schedules applied) and summed over latent dimensions, per
            latent frame; the model spreads it over ``hop_factor`` spectrogram frames.
        logs: scalars to log (detached tensors or floats).
        outputs: detached tensors for diagnostics (e.g. ``kl_dims``, the KL of each latent dimension).
        group_losses: losses of the bottleneck's own optimiser groups (an adversary's, under ``"disc"``), beside the
            model's; see :meth:`Bottleneck.param_groups`.
    """

    loss: torch.Tensor
    logs: dict[str, float | torch.Tensor] = field(default_factory=dict)
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    group_losses: dict[str, torch.Tensor] = field(default_factory=dict)


def valid_frames(z: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The latent frames of ``[B, D, T']`` that ``mask`` ``[B, 1, T']`` marks valid, as rows ``[N, D]``."""
    rows = z.transpose(1, 2).reshape(-1, z.shape[1])
    if mask is None:
        return rows
    return rows[mask.expand(-1, 1, -1).reshape(-1) > 0]


@runtime_checkable
class Posterior(Protocol):
    """What ``encode`` returns: a distribution (or point) over latent frames ``[B, D, T']``."""

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A draw used in training (differentiable with respect to the encoder)."""
        ...

    def mode(self) -> torch.Tensor:
        """The point estimate used at inference (encode, reconstruct, convert)."""
        ...

    def regulariser(self, mask: torch.Tensor | None, step: int) -> Regularisation:
        """The term that keeps the latent space usable; ``mask`` ``[B, 1, T']`` marks valid latent frames."""
        ...


class DiagonalGaussian:
    """Posterior ``q(z|x) = N(mean, exp(logvar))`` over latent frames ``[B, D, T']``; its regulariser is the KL to
    ``N(0, I)`` weighted by ``schedule(step)`` (1 without one) with ``free_bits`` nats per dimension free, or, given a
    ``capacity`` schedule, ``gamma * |KL - C|`` (the beta-VAE of Burgess et al. 2018)."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor, schedule: KLSchedule | None = None,
                 free_bits: float = 0.0, capacity: CapacitySchedule | None = None) -> None:
        self.mean, self.logvar = mean, logvar.clamp(-30.0, 20.0)
        self.schedule, self.free_bits, self.capacity = schedule, free_bits, capacity

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised draw ``z = mean + std * eps``: differentiable in ``mean`` and ``logvar``."""
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + torch.exp(0.5 * self.logvar) * eps

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl_dims(self, mask: torch.Tensor | None = None) -> torch.Tensor:
        """KL of each latent dimension ``[D]``, averaged over batch and valid latent frames (nats)."""
        return kl_per_dim(gaussian_kl(self.mean, self.logvar), mask)

    def regulariser(self, mask: torch.Tensor | None, step: int) -> Regularisation:
        kl_dims = self.kl_dims(mask)
        logs: dict[str, float | torch.Tensor] = {"kl": kl_dims.sum().detach(), "min_kl_dim": kl_dims.min().detach()}
        if self.capacity is not None:
            loss = self.capacity.loss(kl_dims.sum(), step)
            logs["capacity"] = self.capacity.target(step)
        else:
            weight = self.schedule(step) if self.schedule is not None else 1.0
            loss = weight * free_bits(kl_dims, self.free_bits)
            logs["kl_weight"] = weight
        return Regularisation(loss, logs, {"kl_dims": kl_dims.detach()})


class Point:
    """A deterministic "posterior": the encoder's output itself, with no regulariser (a plain autoencoder)."""

    def __init__(self, z: torch.Tensor) -> None:
        self.z = z

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.z

    def mode(self) -> torch.Tensor:
        return self.z

    def regulariser(self, mask: torch.Tensor | None, step: int) -> Regularisation:
        return Regularisation(self.z.new_zeros(()))


def standard_normal(n: int, dim: int, frames: int, temperature: float = 1.0,
                    generator: torch.Generator | None = None, device: torch.device | None = None) -> torch.Tensor:
    """``n`` draws ``[n, dim, frames]`` of the per-frame prior ``N(0, I)``, scaled by ``temperature``."""
    return torch.randn(n, dim, frames, generator=generator, device=device) * temperature


class Bottleneck(nn.Module):
    """Encoder features ``[B, in_channels, T']`` -> :class:`Posterior` over ``[B, latent_dim, T']``.

    Subclasses implement ``forward`` and, when they have a prior to draw from, ``prior``. One with an adversary of
    its own (an adversarial autoencoder's discriminator) names its parameters in :meth:`param_groups`; the model
    trains them with their own optimiser on the regulariser's ``group_losses``.
    """

    latent_dim: int

    def forward(self, features: torch.Tensor) -> Posterior:
        raise NotImplementedError

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters trained by losses of their own (not the model's), by group name; none by default."""
        return {}

    def prior(self, n: int, frames: int, temperature: float = 1.0, generator: torch.Generator | None = None,
              device: torch.device | None = None) -> torch.Tensor:
        """``n`` latent sequences of ``frames`` frames drawn from the prior ``[n, latent_dim, frames]``."""
        raise ConfigError(f"{type(self).__name__} has no prior to sample from")


class GaussianBottleneck(Bottleneck):
    """The VAE's head: a convolution to per-frame mean and log-variance; prior ``N(0, I)``; KL regulariser with the
    ``schedule`` (beta, annealing) and ``free_bits``."""

    def __init__(self, in_channels: int, latent_dim: int, schedule: KLSchedule | None = None,
                 free_bits: float = 0.0, capacity: CapacitySchedule | None = None) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.schedule = schedule  # None: weight 1 (DiagonalGaussian)
        self.free_bits = free_bits
        self.capacity = capacity
        self.head = conv1d(in_channels, 2 * latent_dim, 3)

    def forward(self, features: torch.Tensor) -> DiagonalGaussian:
        mean, logvar = self.head(features).chunk(2, dim=1)
        return DiagonalGaussian(mean, logvar, self.schedule, self.free_bits, self.capacity)

    def prior(self, n: int, frames: int, temperature: float = 1.0, generator: torch.Generator | None = None,
              device: torch.device | None = None) -> torch.Tensor:
        return standard_normal(n, self.latent_dim, frames, temperature, generator, device)
