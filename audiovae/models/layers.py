"""Building blocks shared by the models: weight-normalised 1-D convolutions over time with mel bins (or latent
dimensions) as channels. No batch norm anywhere: its batch statistics fight the KL term (DESIGN.md)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


def conv1d(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> nn.Conv1d:
    """Weight-normalised 'same' convolution (for odd kernels and stride 1)."""
    return weight_norm(nn.Conv1d(c_in, c_out, kernel, stride=stride, dilation=dilation,
                                 padding=dilation * (kernel - 1) // 2))


class FiLM(nn.Module):
    """Feature-wise affine modulation from a conditioning vector (speaker embedding): ``x * (1 + g) + b``.

    ``offset`` (``[B, 2 * channels]``, optional) is added to the projection's ``(g, b)``: a voice adapted to
    recordings beyond what the vector alone can say (:mod:`audiovae.pipelines.voices`, ``adapt``)."""

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)  # starts as the identity, so conditioning is learnt, not imposed
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        modulation = self.proj(cond)
        if offset is not None:
            modulation = modulation + offset
        gamma, beta = modulation.unsqueeze(-1).chunk(2, dim=1)
        return x * (1 + gamma) + beta


class ResBlock(nn.Module):
    """Two dilated convolutions with a skip; optional instance norm (removes per-utterance channel statistics, e.g.
    speaker timbre, in a CVAE encoder) and optional FiLM conditioning (speaker, in a CVAE decoder)."""

    def __init__(self, channels: int, dilation: int = 1, instance_norm: bool = False, cond_dim: int = 0) -> None:
        super().__init__()
        self.conv1 = conv1d(channels, channels, 3, dilation=dilation)
        self.conv2 = conv1d(channels, channels, 3)
        self.norm = nn.InstanceNorm1d(channels, affine=False) if instance_norm else nn.Identity()
        self.film = FiLM(cond_dim, channels) if cond_dim else None
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None, offset: torch.Tensor | None = None
                ) -> torch.Tensor:
        h = self.norm(self.conv1(self.act(x)))
        if self.film is not None and cond is not None:
            h = self.film(h, cond, offset)
        return x + self.conv2(self.act(h))


class Stage(nn.Module):
    """ResBlocks (dilations 1, 3, 9, ...) then a strided resampling by ``factor`` (down: conv, up: transposed).

    ``factor`` is 1 or even, so that ``T`` frames map to exactly ``T / factor`` and back.
    """

    def __init__(self, c_in: int, c_out: int, factor: int, blocks: int, up: bool, instance_norm: bool = False,
                 cond_dim: int = 0) -> None:
        super().__init__()
        if factor != 1 and factor % 2:
            raise ValueError(f"Stage: factor={factor} must be 1 or even")
        channels = c_out if up else c_in
        self.blocks = nn.ModuleList(ResBlock(channels, 3 ** (i % 3), instance_norm, cond_dim) for i in range(blocks))
        self.up = up
        if factor == 1:
            self.resample: nn.Module = conv1d(c_in, c_out, 3)
        elif up:
            self.resample = weight_norm(nn.ConvTranspose1d(c_in, c_out, 2 * factor, stride=factor,
                                                           padding=factor // 2))
        else:
            self.resample = weight_norm(nn.Conv1d(c_in, c_out, 2 * factor, stride=factor, padding=factor // 2))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None,
                offsets: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """``offsets``: one FiLM offset per block (see :class:`FiLM`), or none."""
        if self.up:
            x = self.resample(x)
        for i, block in enumerate(self.blocks):
            x = block(x, cond, None if offsets is None else offsets[i])
        return x if self.up else self.resample(x)


class GradientReversal(torch.autograd.Function):
    """Identity forward, gradient times ``-scale`` backward: trains a classifier while pushing its input to hide
    what the classifier looks for (speaker identity in a CVAE's z)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # noqa: ANN001
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        return -ctx.scale * grad, None


class SpeakerEncoder(nn.Module):
    """Utterance -> speaker embedding: residual convolutions over (normalised) log-mel frames, then the mean and
    standard deviation of each channel over the valid frames (statistics pooling, as in x-vectors), projected to
    ``out_dim``. No instance norm: per-utterance channel statistics are exactly the timbre it should capture."""

    def __init__(self, n_mels: int, out_dim: int, channels: int = 256, blocks: int = 3) -> None:
        super().__init__()
        self.inp = conv1d(n_mels, channels, 5)
        self.blocks = nn.ModuleList(ResBlock(channels, 3 ** (i % 3)) for i in range(blocks))
        self.out = nn.Linear(2 * channels, out_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[B, n_mels, T]``, ``mask`` ``[B, 1, T]`` (1 on valid frames) -> ``[B, out_dim]``."""
        h = self.inp(x)
        for block in self.blocks:
            h = block(h)
        h = torch.nn.functional.silu(h)
        if mask is None:
            mask = torch.ones_like(h[:, :1])
        n = mask.sum(dim=-1).clamp_min(1.0)
        mean = (h * mask).sum(dim=-1) / n
        var = (((h - mean.unsqueeze(-1)) ** 2) * mask).sum(dim=-1) / n
        return self.out(torch.cat([mean, (var + 1e-5).sqrt()], dim=1))
