"""A learned prior over latent sequences (the trainable that fits it to a frozen VAE's latents is one layer up).

Per-frame ``N(0, I)`` samples of a VAE's latent space decode to texture without time structure: nothing ties one
latent frame to the next, and the frames a VAE actually uses fill only part of the Gaussian. Like RAVE, which trains
its prior on the latents of a trained encoder, :class:`LatentPrior` is an autoregressive model of the posterior-mean
sequence ``z_1, z_2, ...`` at the latent frame rate (about 21.5 Hz for the music VAE): a GRU reads ``z_<t`` and
predicts ``z_t`` as a mixture of diagonal Gaussians (the mixture component ties the dimensions of one frame together,
which a single diagonal Gaussian would draw independently). Latents are standardised per dimension with statistics
learned from the data, so the network sees unit-scale inputs.

:class:`~audiovae.training.prior.PriorTraining` (in the training package: it loads the VAE from a checkpoint) is
what ``audiovae train music_prior`` builds: the frozen VAE (loaded from ``model.vae``) and the prior, trained on the
VAE's posterior means of training crops; its checkpoint is the VAE with the prior beside it (component ``prior``), so
one file both reconstructs and generates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

__all__ = ["PRIORS", "LatentPrior", "PriorConfig", "build_prior"]

LOG_2PI = math.log(2 * math.pi)


@dataclass
class PriorConfig:
    """Size of a :class:`LatentPrior`.

    Attributes:
        latent_dim: channels of the latent frames it models (the VAE's ``latent_dim``).
        hidden: GRU width.
        layers: stacked GRU layers.
        mixtures: Gaussian components per frame.
    """

    latent_dim: int = 32
    hidden: int = 384
    layers: int = 2
    mixtures: int = 8

    def __post_init__(self) -> None:
        for name in ("latent_dim", "hidden", "layers", "mixtures"):
            if getattr(self, name) < 1:
                raise ConfigError(f"prior {name}={getattr(self, name)} must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


class LatentPrior(nn.Module):
    """``p(z_t | z_<t)``: a GRU over standardised latent frames with a mixture-of-Gaussians head.

    ``log_prob`` scores sequences ``[B, D, T]`` (teacher forcing); ``sample`` draws them frame by frame.
    """

    prior_type: ClassVar[str] = "gru"

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.config = c = config
        self.register_buffer("z_mean", torch.zeros(c.latent_dim))
        self.register_buffer("z_std", torch.ones(c.latent_dim))
        self.inp = nn.Linear(c.latent_dim, c.hidden)
        self.start = nn.Parameter(torch.zeros(c.hidden))  # the input before the first frame
        self.gru = nn.GRU(c.hidden, c.hidden, c.layers, batch_first=True)
        self.head = nn.Linear(c.hidden, c.mixtures * (1 + 2 * c.latent_dim))

    def set_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.z_mean.copy_(mean)
        self.z_std.copy_(std.clamp_min(1e-3))

    def _params(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """GRU outputs ``[..., H]`` -> mixture logits ``[..., K]``, means and log-scales ``[..., K, D]``."""
        k, d = self.config.mixtures, self.config.latent_dim
        out = self.head(h)
        logits, rest = out[..., :k], out[..., k:].unflatten(-1, (k, 2 * d))
        mean, log_scale = rest.chunk(2, dim=-1)
        return logits, mean, log_scale.clamp(-7.0, 5.0)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Log-density of each frame given the ones before it ``[B, T]`` (nats, in the units of ``z``)."""
        x = ((z - self.z_mean[:, None]) / self.z_std[:, None]).transpose(1, 2)  # [B, T, D]
        start = self.start.expand(x.shape[0], 1, -1)
        inputs = torch.cat([start, self.inp(x[:, :-1])], dim=1)
        h, _ = self.gru(inputs)
        logits, mean, log_scale = self._params(h)
        per_dim = -0.5 * (((x[:, :, None] - mean) * torch.exp(-log_scale)) ** 2 + LOG_2PI) - log_scale  # [B,T,K,D]
        lp = torch.logsumexp(F.log_softmax(logits, dim=-1) + per_dim.sum(-1), dim=-1)
        return lp - self.z_std.log().sum()  # back from standardised units to those of z

    @torch.no_grad()
    def sample(self, n: int, frames: int, temperature: float = 1.0,
               generator: torch.Generator | Sequence[torch.Generator] | None = None) -> torch.Tensor:
        """``n`` sequences of ``frames`` latent frames ``[n, D, frames]``, drawn together (one batched GRU step per
        frame). ``temperature`` scales each draw's spread around its component's mean (1: the model's own, lower:
        tamer). ``generator`` may be one per sequence: each sequence's randomness then comes from its own generator
        only, so a sequence does not depend on how many are drawn beside it."""
        if frames < 1 or n < 1:
            raise ConfigError(f"sample: n={n} and frames={frames} must be >= 1")
        device, dim = self.z_mean.device, self.config.latent_dim
        gens = list(generator) if isinstance(generator, Sequence) else None
        if gens is not None and len(gens) != n:
            raise ConfigError(f"sample: {len(gens)} generators for {n} sequences")
        # all the randomness up front: a uniform for the component choice and a normal draw per frame
        if gens is None:
            u = torch.rand(n, frames, generator=generator, device=device)
            eps = torch.randn(n, frames, dim, generator=generator, device=device)
        else:
            u = torch.stack([torch.rand(frames, generator=g, device=device) for g in gens])
            eps = torch.stack([torch.randn(frames, dim, generator=g, device=device) for g in gens])
        pick = torch.arange(n, device=device)
        x_in, state, out = self.start.expand(n, 1, -1), None, []
        for t in range(frames):
            h, state = self.gru(x_in, state)
            logits, mean, log_scale = self._params(h[:, 0])
            cdf = F.softmax(logits, dim=-1).cumsum(-1)
            k = (cdf < u[:, t, None]).sum(-1).clamp_max(self.config.mixtures - 1)  # inverse-CDF draw
            x = mean[pick, k] + temperature * torch.exp(log_scale[pick, k]) * eps[:, t]
            out.append(x)
            x_in = self.inp(x)[:, None]
        x = torch.stack(out, dim=-1)  # [n, D, frames]
        return x * self.z_std[:, None] + self.z_mean[:, None]


PRIORS: dict[str, type[LatentPrior]] = {LatentPrior.prior_type: LatentPrior}


def build_prior(prior_type: str, values: dict) -> LatentPrior:
    """A registered prior from its type and config values (how checkpoints rebuild the ``prior`` component)."""
    if prior_type not in PRIORS:
        raise ConfigError(f"unknown prior type {prior_type!r}; known: {', '.join(sorted(PRIORS))}")
    return PRIORS[prior_type](PriorConfig(**values))
