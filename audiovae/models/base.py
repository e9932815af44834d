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

import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from ..losses import active_units, gaussian_kl
from ..trainable import LossOutput, TrainableMixin, ValidationResult
from .bottlenecks import DiagonalGaussian, Posterior, Regularisation

COLLAPSE_FRACTION = 0.25  # warn when fewer than this fraction of latent dimensions are active


class CollapseWarning(UserWarning):
    """Few latent dimensions carry information (posterior collapse): the model ignores most of its latent code."""


__all__ = ["CollapseWarning", "DiagonalGaussian", "LatentModel", "LossOutput", "ModelConfig", "Posterior",
           "Regularisation"]


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


class LatentModel(TrainableMixin, nn.Module):
    """Base of every model. Subclasses set ``model_type``/``config_class`` and implement the four methods."""

    model_type: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]]
    anomaly_scores: ClassVar[tuple[str, ...]] = ("recon",)
    """The kinds of :meth:`frame_scores` this model has, its default first."""

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
        """Latents ``[B, D, T']`` -> log-mel ``[B, n_mels, T' * hop_factor]`` (nats). (A FiLM-conditioned decoder
        also takes an adapted voice's ``film_offset``: :class:`~.parts.ConvDecoder`.)"""
        raise NotImplementedError

    def sample(self, n: int, frames: int, speaker: torch.Tensor | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` log-mels of ``frames`` frames from the prior."""
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor], step: int) -> LossOutput:
        """Training objective for one batch (keys: ``mel``, ``length``, optional ``speaker``, ``clean``)."""
        raise NotImplementedError

    # --- conveniences built on the interface ------------------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, mel: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        """Encode, take the posterior mode, decode; cropped to the input's length."""
        return self.decode(self.encode(mel, speaker).mode(), speaker)[..., : mel.shape[-1]]

    @torch.no_grad()
    def frame_scores(self, mel: torch.Tensor, kind: str = "recon", speaker: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """How badly each frame ``[B, T]`` fits the model, for anomaly detection: ``recon``, the mean squared
        reconstruction error over bands in normalised units; ``nelbo``, the negative ELBO per frame (half the squared
        error summed over bands, plus each latent frame's KL spread over its ``hop_factor`` frames; Gaussian
        posteriors only). A model that reconstructs more than one frame at a time overrides this."""
        posterior = self.encode(mel, speaker)
        x = self.normalize(mel)
        err = (self.normalize(self.decode(posterior.mode(), speaker)[..., : mel.shape[-1]]) - x).square()
        if kind not in self.anomaly_scores:
            raise ConfigError(f"{self.model_type} scores frames by {' or '.join(self.anomaly_scores)}, not {kind!r}")
        if kind == "recon":
            return err.mean(dim=1)
        if not isinstance(posterior, DiagonalGaussian):
            raise ConfigError(f"{self.model_type}: the nelbo score needs a Gaussian posterior; use recon")
        logscale = getattr(self, "logscale", None)  # a learnt per-band scale (recon: nll) weighs bands by reliability
        if logscale is not None:
            err = err * torch.exp(-2 * logscale) + 2 * logscale
        kl = gaussian_kl(posterior.mean, posterior.logvar).sum(dim=1) / self.hop_factor
        return 0.5 * err.sum(dim=1) + kl.repeat_interleave(self.hop_factor, dim=-1)[..., : mel.shape[-1]]

    # --- what the training engine asks (audiovae.trainable.Trainable) ------------------------------------------------
    @torch.no_grad()
    def prepare(self, batches: Iterable[dict[str, torch.Tensor]]) -> None:
        """Per-band mean/std of log-mel over the given training crops, padding excluded (a fresh run's first act)."""
        total = torch.zeros((), dtype=torch.float64)
        s1 = torch.zeros(self.config.n_mels, dtype=torch.float64)
        s2 = torch.zeros_like(s1)
        for batch in batches:
            mel = batch["mel"].double().cpu()
            mask = (torch.arange(mel.shape[-1])[None, :] < batch["length"].cpu()[:, None]).double()[:, None, :]
            s1 += (mel * mask).sum(dim=(0, 2))
            s2 += (mel.square() * mask).sum(dim=(0, 2))
            total += mask.sum()
        mean = s1 / total.clamp_min(1)
        std = (s2 / total.clamp_min(1) - mean.square()).clamp_min(0).sqrt()
        self.set_normalization(mean.float().to(self.mel_mean.device), std.float().to(self.mel_mean.device))

    def validation_metrics(self, results: list[ValidationResult], step: int) -> dict:
        """Active latent units over the valid (unpadded) latent frames and the mean KL per dimension, from the
        ``z`` / ``kl_dims`` outputs of :meth:`loss`; a :class:`CollapseWarning` when few units are active."""
        means, kl_dims, n = [], None, 0
        for batch, out in results:
            size = batch["mel"].shape[0]
            n += size
            if "z" in out.outputs:
                z, hop = out.outputs["z"].float().cpu(), self.hop_factor
                means += [z[i, :, : -(-int(length) // hop)] for i, length in enumerate(batch["length"])]
            if "kl_dims" in out.outputs:
                kd = out.outputs["kl_dims"].float().cpu() * size
                kl_dims = kd if kl_dims is None else kl_dims + kd
        metrics: dict = {}
        latent_dim = self.config.latent_dim
        if means:
            units = active_units(torch.cat(means, dim=-1)[None])
            metrics["valid_active_units"] = units
            if units < COLLAPSE_FRACTION * latent_dim:
                warnings.warn(f"step {step}: posterior collapse? only {units} of {latent_dim} latent dimensions "
                              "are active; consider free_bits, a slower kl_warmup or a smaller beta",
                              CollapseWarning, stacklevel=2)
        if kl_dims is not None:
            metrics["valid_kl_per_dim"] = [round(float(v), 4) for v in kl_dims / n]
        return metrics

    @torch.no_grad()
    def preview(self, batch: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        """The first validation crop and its reconstruction."""
        mel = batch["mel"][:1].float()
        speaker = batch["speaker"][:1] if "speaker" in batch else None
        return [("input", mel[0]), ("reconstruction", self.reconstruct(mel, speaker)[0])]
