"""A two-level hierarchical latent: a coarse ``z_top`` at a lower frame rate over a fine ``z_bottom``, with top-down
(ladder) inference as in the Ladder VAE (Sønderby et al. 2016) and NVAE (Vahdat & Kautz 2020).

Bottom-up, the encoder's features ``h`` (at the latent rate) are downsampled ``top_factor`` times more to ``h_top``.
Top-down, ``z_top ~ q(z_top | h_top)`` is decoded by a small up-path to ``d`` at the latent rate; ``d`` gives both the
learnt prior ``p(z_bottom | z_top)`` and, with ``h``, the posterior ``q(z_bottom | h, z_top)`` (a residual on the
prior's mean and log-variance, as NVAE does, which starts out close to zero). The regulariser is
``KL(q(z_top) || N(0, I)) + KL(q(z_bottom) || p(z_bottom | z_top))``; generation draws ``z_top`` from ``N(0, I)``
and ``z_bottom`` from the learnt prior, so slow structure (phrasing, timbre over a second) comes from the top level.

The decoder is the ordinary one: the latent it receives is ``[z_bottom, z_top]`` stacked along channels, ``z_top``
repeated to the latent rate, so ``latent_dim = bottom_dim + top_dim``, and ``encode``/``decode``/``interpolate``
treat it as any other latent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ..errors import ConfigError
from ..losses import KLSchedule, free_bits, gaussian_kl, gaussian_kl_between, kl_per_dim
from .bottlenecks import Bottleneck, Regularisation, standard_normal
from .layers import ResBlock, conv1d


def _draw(mean: torch.Tensor, logvar: torch.Tensor, stochastic: bool, scale: float = 1.0,
          generator: torch.Generator | None = None) -> torch.Tensor:
    if not stochastic:
        return mean
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + scale * torch.exp(0.5 * logvar) * eps


class LadderPosterior:
    """Posterior over both levels. A draw runs the top-down path (the bottom level depends on the drawn top), so
    ``sample`` and ``mode`` each make one pass and ``regulariser`` uses the KLs of the last pass made."""

    def __init__(self, bottleneck: LadderBottleneck, h: torch.Tensor, h_top: torch.Tensor) -> None:
        self.net, self.h = bottleneck, h
        self.top_mean, top_logvar = bottleneck.top_head(h_top).chunk(2, dim=1)
        self.top_logvar = top_logvar.clamp(-30.0, 20.0)
        self._last: tuple[torch.Tensor, ...] | None = None

    def _pass(self, stochastic: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        net = self.net
        z_top = _draw(self.top_mean, self.top_logvar, stochastic, generator=generator)
        d = net.top_down(z_top, self.h.shape[-1])
        p_mean, p_logvar = net.prior_head(d).chunk(2, dim=1)
        dq_mean, dq_logvar = net.posterior_head(torch.cat([self.h, d], dim=1)).chunk(2, dim=1)
        p_logvar = p_logvar.clamp(-30.0, 20.0)
        q_mean, q_logvar = p_mean + dq_mean, (p_logvar + dq_logvar).clamp(-30.0, 20.0)
        z_bottom = _draw(q_mean, q_logvar, stochastic, generator=generator)
        self._last = (q_mean, q_logvar, p_mean, p_logvar)
        return net.join(z_bottom, z_top)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self._pass(True, generator)

    def mode(self) -> torch.Tensor:
        return self._pass(False)

    def regulariser(self, mask: torch.Tensor | None, step: int) -> Regularisation:
        if self._last is None:
            self.mode()
        assert self._last is not None
        net = self.net
        q_mean, q_logvar, p_mean, p_logvar = self._last
        bottom = kl_per_dim(gaussian_kl_between(q_mean, q_logvar, p_mean, p_logvar), mask)
        top_mask = None if mask is None else F.max_pool1d(mask, net.top_factor, ceil_mode=True)
        # the top level's KL per top frame, spread over the top_factor latent frames it covers
        top = kl_per_dim(gaussian_kl(self.top_mean, self.top_logvar), top_mask) / net.top_factor
        weight = net.schedule(step) if net.schedule is not None else 1.0
        loss = weight * (free_bits(bottom, net.free_bits) + free_bits(top, net.free_bits / net.top_factor))
        kl_dims = torch.cat([bottom, top]).detach()
        logs = {"kl": kl_dims.sum(), "kl_bottom": bottom.sum().detach(), "kl_top": top.sum().detach(),
                "kl_weight": weight}
        return Regularisation(loss, logs, {"kl_dims": kl_dims})


class LadderBottleneck(Bottleneck):
    """Features ``[B, C, T']`` -> :class:`LadderPosterior` over ``[B, bottom_dim + top_dim, T']``; ``width``
    channels in the top level's own down- and up-paths (kept narrow: they add parameters beside the shared
    encoder and decoder)."""

    def __init__(self, in_channels: int, bottom_dim: int, top_dim: int, top_factor: int = 4, width: int = 128,
                 schedule: KLSchedule | None = None, free_bits: float = 0.0) -> None:
        super().__init__()
        if top_factor < 2 or top_factor % 2:
            raise ConfigError(f"hierarchical VAE: top_factor={top_factor} must be even and >= 2")
        if bottom_dim < 1 or top_dim < 1:
            raise ConfigError(f"hierarchical VAE: bottom_dim={bottom_dim} and top_dim={top_dim} must be >= 1")
        self.latent_dim, self.bottom_dim, self.top_dim = bottom_dim + top_dim, bottom_dim, top_dim
        self.top_factor, self.schedule, self.free_bits = top_factor, schedule, free_bits
        f = top_factor
        self.top_in = nn.Sequential(conv1d(in_channels, width, 1), nn.SiLU())
        self.down = weight_norm(nn.Conv1d(width, width, 2 * f, stride=f, padding=f // 2))
        self.down_block = ResBlock(width)
        self.top_head = conv1d(width, 2 * top_dim, 3)
        self.td_in = conv1d(top_dim, width, 3)
        self.up = weight_norm(nn.ConvTranspose1d(width, width, 2 * f, stride=f, padding=f // 2))
        self.up_block = ResBlock(width)
        self.prior_head = conv1d(width, 2 * bottom_dim, 3)
        self.posterior_head = conv1d(in_channels + width, 2 * bottom_dim, 3)
        # q starts close to p (NVAE's residual posterior): a small weight-norm gain (a zero one would stop the
        # direction's gradient), no bias
        with torch.no_grad():
            self.posterior_head.parametrizations.weight.original0.mul_(1e-2)
        nn.init.zeros_(self.posterior_head.bias)

    def forward(self, features: torch.Tensor) -> LadderPosterior:
        pad = (-features.shape[-1]) % self.top_factor
        h = self.top_in(F.pad(features, (0, pad), mode="replicate") if pad else features)
        h_top = F.silu(self.down_block(self.down(h)))
        return LadderPosterior(self, features, h_top)

    def top_down(self, z_top: torch.Tensor, frames: int) -> torch.Tensor:
        """``z_top`` ``[B, top_dim, T' / f]`` -> features at the latent rate ``[B, width, frames]``."""
        return F.silu(self.up_block(self.up(self.td_in(z_top))))[..., :frames]

    def join(self, z_bottom: torch.Tensor, z_top: torch.Tensor) -> torch.Tensor:
        """The decoder's latent: both levels at the latent rate."""
        top = z_top.repeat_interleave(self.top_factor, dim=-1)[..., : z_bottom.shape[-1]]
        return torch.cat([z_bottom, top], dim=1)

    def prior(self, n: int, frames: int, temperature: float = 1.0, generator: torch.Generator | None = None,
              device: torch.device | None = None) -> torch.Tensor:
        """``z_top`` from ``N(0, I)``, then ``z_bottom`` from the learnt ``p(z_bottom | z_top)``."""
        device = device or self.top_head.bias.device
        top_frames = -(-frames // self.top_factor)
        z_top = standard_normal(n, self.top_dim, top_frames, temperature, generator, device)
        d = self.top_down(z_top, frames)
        p_mean, p_logvar = self.prior_head(d).chunk(2, dim=1)
        return self.join(_draw(p_mean, p_logvar.clamp(-30.0, 20.0), True, temperature, generator), z_top)
