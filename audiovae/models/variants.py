"""The VAE family beside the plain :class:`~.vae.ConvVAE`: each is a :class:`~.vae.ConvAutoencoder` (same encoder,
decoder, objective, checkpoint and Trainer) with another bottleneck, and a config dataclass of the options that
bottleneck adds. Packaged configs: ``speech_beta_vae``, ``speech_vqvae``, ``speech_hvae``, ``speech_wae``,
``speech_aae`` (and the ``music_*`` forms), compared by ``recipes/variants``.

- ``beta_vae``: the Gaussian VAE with Burgess et al.'s capacity objective ``gamma * |KL - C|``, ``C`` annealed from
  0 to ``capacity`` nats per latent frame (``capacity: 0`` falls back to the plain ``beta`` weight);
- ``vqvae``: discrete latents (:mod:`.quantize`): EMA codebooks, commitment loss, dead-code restarts;
- ``hvae``: two latent levels at different frame rates with top-down inference (:mod:`.ladder`);
- ``wae``: a deterministic encoder, MMD to ``N(0, I)`` in place of the KL (:class:`~.matching.MMDBottleneck`);
- ``aae``: a deterministic encoder, a discriminator on z in place of the KL (:class:`~.matching.AdversarialBottleneck`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..losses import CapacitySchedule
from ..trainable import ValidationResult
from .bottlenecks import Bottleneck, GaussianBottleneck
from .ladder import LadderBottleneck
from .matching import AdversarialBottleneck, MMDBottleneck
from .quantize import VectorQuantizer, perplexity
from .vae import ConvAutoencoder, ConvConfig, ConvVAE, VAEConfig


@dataclass
class BetaVAEConfig(VAEConfig):
    """A :class:`VAEConfig` with a capacity schedule (:class:`~audiovae.losses.CapacitySchedule`).

    Attributes:
        capacity: target KL in nats per latent frame (all dimensions) at the end of the ramp; 0 uses ``beta``.
        capacity_steps: steps over which the target grows from 0 to ``capacity``.
        gamma: weight of ``|KL - C|``.
    """

    capacity: float = 25.0
    capacity_steps: int = 1000
    gamma: float = 5.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.capacity_schedule()

    def capacity_schedule(self) -> CapacitySchedule | None:
        return CapacitySchedule(self.capacity, self.capacity_steps, self.gamma) if self.capacity > 0 else None


class BetaVAE(ConvVAE):
    """beta-VAE: plain beta weighting (``capacity: 0``) or the controlled-capacity objective."""

    model_type = "beta_vae"
    config_class = BetaVAEConfig

    def make_bottleneck(self, in_channels: int) -> Bottleneck:
        c = self.config
        return GaussianBottleneck(in_channels, c.latent_dim, c.kl_schedule(), c.free_bits, c.capacity_schedule())


@dataclass
class VQVAEConfig(ConvConfig):
    """Options of :class:`VQVAE` (:class:`~.quantize.VectorQuantizer`).

    Attributes:
        codebook_size: entries per codebook.
        codebook_groups: codebooks per latent frame, each over ``latent_dim / codebook_groups`` channels.
        commitment: weight of the commitment loss.
        codebook_decay: EMA decay of the codebook updates.
        codebook_restart: a code is restarted when its EMA count is below this fraction of its fair share.
    """

    codebook_size: int = 256
    codebook_groups: int = 4
    commitment: float = 0.25
    codebook_decay: float = 0.99
    codebook_restart: float = 0.05


class VQVAE(ConvAutoencoder):
    """VQ-VAE over log-mel frames; :meth:`sample` draws codes from their usage counts."""

    model_type = "vqvae"
    config_class = VQVAEConfig

    def make_bottleneck(self, in_channels: int) -> Bottleneck:
        c = self.config
        return VectorQuantizer(in_channels, c.latent_dim, c.codebook_size, c.codebook_groups, c.codebook_decay,
                               c.commitment, c.codebook_restart)

    @torch.no_grad()
    def validation_metrics(self, results: list[ValidationResult], step: int) -> dict:
        """Active units, plus codebook use over all valid frames: perplexity (mean over codebooks), the fraction of
        codes used at all, and the code's rate in bits per latent frame (``log2`` perplexity, summed over groups)."""
        metrics = super().validation_metrics(results, step)
        q: VectorQuantizer = self.bottleneck  # type: ignore[assignment]
        counts = torch.zeros(q.groups, q.size)
        for batch, out in results:
            codes = out.outputs["codes"].cpu()
            _, latent_mask = self._masks(batch, codes.shape[-1] * self.hop_factor)  # as many latent frames as codes
            counts += q.count(codes, latent_mask)
        ppl = perplexity(counts)
        metrics.update(valid_perplexity=float(ppl.mean()), valid_codes_used=float((counts > 0).float().mean()),
                       valid_bits_per_frame=float(torch.log2(ppl).sum()))
        return metrics


@dataclass
class HVAEConfig(VAEConfig):
    """Options of :class:`HVAE` (:class:`~.ladder.LadderBottleneck`); ``latent_dim`` counts both levels.

    Attributes:
        top_dim: channels of the top (coarse) level; the bottom level has ``latent_dim - top_dim``.
        top_factor: how many latent frames one top frame spans.
        top_width: channels of the top level's own paths.
    """

    top_dim: int = 8
    top_factor: int = 4
    top_width: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.top_dim < self.latent_dim:
            raise ConfigError(f"HVAEConfig.top_dim={self.top_dim} must be between 1 and latent_dim - 1 "
                              f"({self.latent_dim - 1})")


class HVAE(ConvAutoencoder):
    """Hierarchical VAE: a fine level at the latent rate under a coarse one ``top_factor`` times slower."""

    model_type = "hvae"
    config_class = HVAEConfig

    def make_bottleneck(self, in_channels: int) -> Bottleneck:
        c = self.config
        return LadderBottleneck(in_channels, c.latent_dim - c.top_dim, c.top_dim, c.top_factor, c.top_width,
                                c.kl_schedule(), c.free_bits)


@dataclass
class WAEConfig(ConvConfig):
    """Options of :class:`WAE`. Attributes: ``mmd_weight``, the MMD's weight; ``mmd_frames``, latent frames per
    batch it compares (its cost grows with their square)."""

    mmd_weight: float = 100.0
    mmd_frames: int = 512


class WAE(ConvAutoencoder):
    """Wasserstein autoencoder with the MMD penalty (WAE-MMD, inverse multiquadric kernel)."""

    model_type = "wae"
    config_class = WAEConfig

    def make_bottleneck(self, in_channels: int) -> Bottleneck:
        return MMDBottleneck(in_channels, self.config.latent_dim, self.config.mmd_weight, self.config.mmd_frames)


@dataclass
class AAEConfig(ConvConfig):
    """Options of :class:`AAE`. Attributes: ``disc_weight``, the encoder's adversarial loss weight; ``disc_width``,
    the discriminator's hidden width (its learning rate: ``train.optim.disc.lr``)."""

    disc_weight: float = 1.0
    disc_width: int = 256


class AAE(ConvAutoencoder):
    """Adversarial autoencoder: a discriminator on latent frames (its own optimiser group, ``disc``)."""

    model_type = "aae"
    config_class = AAEConfig

    def make_bottleneck(self, in_channels: int) -> Bottleneck:
        return AdversarialBottleneck(in_channels, self.config.latent_dim, self.config.disc_weight,
                                     self.config.disc_width)
