"""Vector quantisation: the VQ-VAE's bottleneck (van den Oord et al. 2017), with the fixes that keep a codebook alive.

Each latent frame ``[D]`` is split into ``groups`` slices (product quantisation, as in wav2vec 2.0), each replaced by
its nearest entry of its own codebook of ``codebook_size`` vectors. The codebooks are not trained by gradient but as
exponential moving averages of the encoder outputs assigned to them (EMA k-means, Razavi et al. 2019), which
converges faster and more stably; the encoder is held near its codes by the commitment loss; gradients reach the
encoder through the straight-through estimator. A code that no longer wins a share of the frames is restarted on a
random encoder output of the batch (Dhariwal et al. 2020, Jukebox), so the codebook does not collapse onto a few
entries. Code usage is counted by the same EMA, which is also the prior ``sample`` draws code indices from.

Written here rather than taken from ``vector-quantize-pytorch``: the ~150 lines below are the whole method, the
codebook lives in plain buffers that the checkpoint, the Trainer's EMA copy and DDP already handle, and the package
would add a dependency (with its own ``einops``/``einx`` stack) for no behaviour we need.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..errors import ConfigError
from .bottlenecks import Bottleneck, Regularisation, valid_frames
from .layers import conv1d


def perplexity(counts: torch.Tensor) -> torch.Tensor:
    """``exp`` of the entropy of code usage, per codebook ``[G]`` from counts ``[G, K]``: the number of equally
    used codes that would give the same entropy (``K`` at best, 1 for a collapsed codebook)."""
    p = counts / counts.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum(dim=-1))


class Quantized:
    """The VQ "posterior": the encoder output ``z_e`` and its nearest codes. ``sample`` passes the decoder's
    gradient straight through to ``z_e``; ``mode`` is the codes themselves; ``regulariser`` is the commitment loss,
    and in training it updates the codebook from this batch's valid frames."""

    def __init__(self, quantizer: VectorQuantizer, z_e: torch.Tensor) -> None:
        self.quantizer, self.z_e = quantizer, z_e
        self.codes, z_q = quantizer.quantize(z_e.detach())
        self.z_q = z_q.to(z_e.dtype)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.z_e + (self.z_q - self.z_e).detach()

    def mode(self) -> torch.Tensor:
        return self.z_q

    def regulariser(self, mask: torch.Tensor | None, step: int) -> Regularisation:
        q = self.quantizer
        err = (self.z_e.float() - self.z_q.float()).square().sum(dim=1, keepdim=True)  # [B, 1, T'] nats-like units
        m = torch.ones_like(err) if mask is None else mask.to(err.dtype)
        commit = (err * m).sum() / m.sum().clamp_min(1.0)
        counts = q.count(self.codes, mask)
        if q.training:
            q.update(self.z_e.detach(), self.codes, mask, counts)
        with torch.no_grad():
            logs = {"commitment": commit.detach(), "perplexity": perplexity(counts).mean(),
                    "codes_used": (counts > 0).float().mean()}
        return Regularisation(q.commitment * commit, logs, {"codes": self.codes})


class VectorQuantizer(Bottleneck):
    """Encoder features ``[B, C, T']`` -> a 3-wide convolution to ``latent_dim`` channels -> ``groups`` codebooks of
    ``codebook_size`` entries over ``latent_dim / groups`` channels each.

    ``decay``: the EMA's; ``commitment``: weight of ``|z_e - sg(z_q)|^2``; a code whose EMA count falls under
    ``restart`` times its fair share of a batch's frames is moved onto a random encoder output of that batch.
    """

    def __init__(self, in_channels: int, latent_dim: int, codebook_size: int = 256, groups: int = 4,
                 decay: float = 0.99, commitment: float = 0.25, restart: float = 0.05) -> None:
        super().__init__()
        if latent_dim % groups:
            raise ConfigError(f"VQ: latent_dim={latent_dim} must be a multiple of codebook_groups={groups}")
        if codebook_size < 2 or not 0.0 < decay < 1.0 or commitment < 0 or restart < 0:
            raise ConfigError(f"VQ: codebook_size={codebook_size} must be >= 2, decay={decay} in (0, 1), "
                              f"commitment={commitment} and restart={restart} >= 0")
        self.latent_dim, self.groups, self.size = latent_dim, groups, codebook_size
        self.decay, self.commitment, self.restart = decay, commitment, restart
        self.head = conv1d(in_channels, latent_dim, 3)
        dim = latent_dim // groups
        self.register_buffer("embed", torch.randn(groups, codebook_size, dim))
        self.register_buffer("embed_sum", self.embed.clone())
        self.register_buffer("cluster_size", torch.ones(groups, codebook_size))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def forward(self, features: torch.Tensor) -> Quantized:
        return Quantized(self, self.head(features))

    def _slices(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, D, T']`` -> ``[G, B * T', D / G]``."""
        b, _, t = z.shape
        return z.float().reshape(b, self.groups, -1, t).permute(1, 0, 3, 2).reshape(self.groups, b * t, -1)

    @torch.no_grad()
    def quantize(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest codes: indices ``[B, G, T']`` and the quantised latents ``[B, D, T']`` (float32)."""
        x = self._slices(z_e)
        dist2 = (x.square().sum(-1, keepdim=True) - 2 * torch.bmm(x, self.embed.transpose(1, 2))
                 + self.embed.square().sum(-1)[:, None, :])
        b, t = z_e.shape[0], z_e.shape[-1]
        codes = dist2.argmin(dim=-1).reshape(self.groups, b, t).transpose(0, 1)
        return codes, self.lookup(codes)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Code indices ``[B, G, T']`` -> latents ``[B, D, T']``."""
        b, g, t = codes.shape
        picked = torch.stack([self.embed[i][codes[:, i]] for i in range(g)], dim=1)  # [B, G, T', D / G]
        return picked.permute(0, 1, 3, 2).reshape(b, -1, t)

    def count(self, codes: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """How often each code is used on the valid frames ``[G, K]``."""
        weights = torch.ones_like(codes[:, 0], dtype=torch.float32) if mask is None else mask[:, 0].float()
        counts = torch.zeros(self.groups, self.size, device=codes.device)
        for i in range(self.groups):
            counts[i].index_add_(0, codes[:, i].reshape(-1), weights.reshape(-1))
        return counts

    @torch.no_grad()
    def update(self, z_e: torch.Tensor, codes: torch.Tensor, mask: torch.Tensor | None, counts: torch.Tensor) -> None:
        """One EMA k-means step on the batch's valid frames, then restarts of dead codes (summed over processes
        under DDP, so every process keeps the same codebook)."""
        rows = valid_frames(z_e.float(), mask)  # [N, D]
        if rows.shape[0] == 0:
            return
        x = rows.reshape(rows.shape[0], self.groups, -1).transpose(0, 1)  # [G, N, D / G]
        idx = valid_frames(codes.float(), mask).long().T  # [G, N]
        if not bool(self.initialised):  # start on data, not on N(0, I)
            for g in range(self.groups):
                self.embed[g] = x[g][torch.randint(x.shape[1], (self.size,), device=x.device)]
            self._sync_codebook()
            self.embed_sum.copy_(self.embed)
            self.cluster_size.fill_(1.0)
            self.initialised.fill_(True)
            return
        sums = torch.zeros_like(self.embed_sum)
        for g in range(self.groups):
            sums[g].index_add_(0, idx[g], x[g])
        counts = counts.clone()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(sums)
            dist.all_reduce(counts)
        self.cluster_size.lerp_(counts, 1.0 - self.decay)
        self.embed_sum.lerp_(sums, 1.0 - self.decay)
        total = self.cluster_size.sum(dim=-1, keepdim=True)
        smoothed = (self.cluster_size + 1e-5) / (total + self.size * 1e-5) * total  # Laplace: no division by zero
        self.embed.copy_(self.embed_sum / smoothed.unsqueeze(-1))
        dead = self.cluster_size < self.restart * counts.sum(dim=-1, keepdim=True) / self.size
        if bool(dead.any()):
            for g in range(self.groups):
                n = int(dead[g].sum())
                if n:
                    self.embed[g, dead[g]] = x[g][torch.randint(x.shape[1], (n,), device=x.device)]
            self._sync_codebook()
            self.embed_sum[dead] = self.embed[dead]
            self.cluster_size[dead] = 1.0

    def _sync_codebook(self) -> None:
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(self.embed, 0)

    def prior(self, n: int, frames: int, temperature: float = 1.0, generator: torch.Generator | None = None,
              device: torch.device | None = None) -> torch.Tensor:
        """Codes drawn independently per frame from each codebook's usage (the EMA counts), sharpened (temperature
        < 1) or flattened (> 1); a learnt prior over code sequences would add the time structure this lacks."""
        logits = torch.log(self.cluster_size.float().clamp_min(1e-8)) / max(temperature, 1e-3)
        probs = torch.softmax(logits, dim=-1).to(generator.device if generator is not None else self.embed.device)
        codes = torch.stack([torch.multinomial(probs[g], n * frames, replacement=True, generator=generator)
                             for g in range(self.groups)]).reshape(self.groups, n, frames).transpose(0, 1)
        return self.lookup(codes.to(self.embed.device)).to(device or self.embed.device)
