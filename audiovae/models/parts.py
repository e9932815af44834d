"""The two halves every convolutional model shares: a :class:`ConvEncoder` (log-mel -> features at the latent rate)
and a :class:`ConvDecoder` (latents -> log-mel). Kept apart from the bottleneck between them (Gaussian, vector-
quantised, MMD, plain; see ``bottlenecks.py``) so that each variant is a composition, not a subclass of the VAE.

Both work on *normalised* log-mel (the model normalises and denormalises); conditioning vectors (speaker
embeddings) enter each residual block by FiLM.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .layers import ResBlock, Stage, conv1d


def zero_conv1d(c_in: int, c_out: int, kernel: int, bias: bool = True) -> nn.Conv1d:
    """A plain 'same' convolution whose weights (and bias) start at zero: a part added to a trained model that must
    start by changing nothing (weight normalisation cannot start at zero)."""
    conv = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, bias=bias)
    nn.init.zeros_(conv.weight)
    if bias:
        nn.init.zeros_(conv.bias)
    return conv


class ConvEncoder(nn.Module):
    """Normalised log-mel ``[B, n_mels, T]`` -> features ``[B, channels[-1], ceil(T / hop_factor)]`` (after SiLU).

    Residual stages downsample time by ``prod(factors)``; the input is padded (replicating its last frame) to a
    multiple of that. ``instance_norm`` strips per-utterance channel statistics (timbre) in every block; ``cond_dim``
    > 0 conditions the blocks on a vector (the speaker) by FiLM. ``floor_window`` > 0 adds the input's
    :func:`noise_floor` over that many frames each way through a layer that starts at zero.
    """

    def __init__(self, n_mels: int, channels: tuple[int, ...], factors: tuple[int, ...], blocks: int,
                 instance_norm: bool = False, cond_dim: int = 0, floor_window: int = 0) -> None:
        super().__init__()
        self.hop_factor = math.prod(factors)
        self.out_channels = channels[-1]
        self.floor_window = floor_window
        self.inp = conv1d(n_mels, channels[0], 5)
        self.floor = zero_conv1d(n_mels, channels[0], 5, bias=False) if floor_window else None
        outs = channels[1:] + (channels[-1],)
        self.stages = nn.ModuleList(Stage(ci, co, f, blocks, up=False, instance_norm=instance_norm, cond_dim=cond_dim)
                                    for ci, co, f in zip(channels, outs, factors, strict=True))

    @property
    def floor_context(self) -> int:
        """Frames each way that the noise floor adds to what one feature sees (its layer is as wide as ``inp``)."""
        return floor_reach(self.floor_window) if self.floor is not None else 0

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        # unconditional (a zero pad is a no-op) so that an exported graph has no branch on the input's length
        x = F.pad(x, (0, (-x.shape[-1]) % self.hop_factor), mode="replicate")
        h = self.inp(x)
        if self.floor is not None:
            h = h + self.floor(noise_floor(x, self.floor_window))
        for stage in self.stages:
            h = stage(h, cond)
        return F.silu(h)


class ConvDecoder(nn.Module):
    """Latents ``[B, latent_dim, T']`` -> normalised log-mel ``[B, n_mels, T' * hop_factor]``; the mirror image of
    :class:`ConvEncoder` with the same ``channels``/``factors``, conditioned by FiLM when ``cond_dim`` > 0.

    ``film_offset`` (``[B, film_width]``, optional) adds to every block's FiLM modulation, block after block in
    order (:attr:`film_sizes`): how a voice adapted to recordings outside the speaker table is decoded."""

    def __init__(self, latent_dim: int, n_mels: int, channels: tuple[int, ...], factors: tuple[int, ...],
                 blocks: int, cond_dim: int = 0) -> None:
        super().__init__()
        self.hop_factor = math.prod(factors)
        outs = channels[1:] + (channels[-1],)
        self.inp = conv1d(latent_dim, channels[-1], 3)
        self.stages = nn.ModuleList(Stage(co, ci, f, blocks, up=True, cond_dim=cond_dim)
                                    for ci, co, f in reversed(list(zip(channels, outs, factors, strict=True))))
        self.out = conv1d(channels[0], n_mels, 5)
        # the size of each block's FiLM modulation (2 * channels), in the order they are applied
        self.film_sizes = [block.film.proj.out_features for stage in self.stages for block in stage.blocks
                           if block.film]
        self.film_width = sum(self.film_sizes)

    def check_film_offset(self, offset: torch.Tensor) -> None:
        """A ``[B, film_width]`` offset, or a one-line error."""
        if offset.ndim != 2 or offset.shape[-1] != self.film_width:
            raise ConfigError(f"FiLM offsets of shape {tuple(offset.shape)}, not this model's "
                              f"(batch, {self.film_width})")

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None, film_offset: torch.Tensor | None = None
                ) -> torch.Tensor:
        offsets = None
        if film_offset is not None:
            self.check_film_offset(film_offset)
            offsets = iter(film_offset.split(self.film_sizes, dim=-1))
        h = self.inp(z)
        for stage in self.stages:
            h = stage(h, cond, None if offsets is None else [next(offsets) for _ in stage.blocks])
        return self.out(F.silu(h))


FLOOR_SMOOTH = 5  # frames the log-mel is averaged over before its minimum is taken


def floor_reach(window: int) -> int:
    """Frames each way that :func:`noise_floor` over ``window`` frames reads beyond the frame it is for."""
    return window + FLOOR_SMOOTH // 2


def noise_floor(logmel: torch.Tensor, window: int, smooth: int = FLOOR_SMOOTH) -> torch.Tensor:
    """Per band and frame, the lowest level of ``logmel`` ``[B, M, T]`` (averaged over ``smooth`` frames) within
    ``window`` frames each way: minimum statistics (Martin, 2001), the level that stays when nobody speaks. It is a
    cue of what is noise that holds for noises never heard in training, whatever they sound like, as long as they
    last longer than speech's pauses. Any per-band increasing affine map of the input commutes with it."""
    x = F.avg_pool1d(logmel, smooth, 1, smooth // 2, count_include_pad=False) if smooth > 1 else logmel
    return -F.max_pool1d(-x, 2 * window + 1, 1, window)


class GainRefiner(nn.Module):
    """A frame-rate correction to a decoded log-gain from the input it applies to: ``[gain | input]`` ``[B, 2M, T]``
    -> ``gain + delta``. The decoder reaches the gain only through latents at 1/``hop_factor`` of the frame rate; this
    head sees the noisy log-mel itself, frame by frame, so the gain can follow the input's onsets and gaps (what STOI's
    band envelopes measure). Its output layer starts at zero: an untrained refiner leaves the decoded gain as it is.

    ``floor_window`` > 0 also gives it the input's :func:`noise_floor` over that many frames each way, through a
    layer that starts at zero (so a refiner trained without it is where a warm start begins)."""

    def __init__(self, n_mels: int, channels: int, blocks: int, floor_window: int = 0) -> None:
        super().__init__()
        self.floor_window = floor_window
        self.inp = conv1d(2 * n_mels, channels, 3)
        self.blocks = nn.ModuleList(ResBlock(channels, 3 ** (i % 3)) for i in range(blocks))
        self.out = zero_conv1d(channels, n_mels, 3)
        self.floor = zero_conv1d(n_mels, channels, 3, bias=False) if floor_window else None

    @property
    def context(self) -> int:
        """Frames each side that one output frame sees."""
        own = 2 + sum(3 ** (i % 3) + 1 for i in range(len(self.blocks)))
        return own + (floor_reach(self.floor_window) if self.floor is not None else 0)  # its layer is as wide as inp

    def forward(self, gain: torch.Tensor, normalized_input: torch.Tensor) -> torch.Tensor:
        h = self.inp(torch.cat([gain, normalized_input], dim=1))
        if self.floor is not None:
            h = h + self.floor(noise_floor(normalized_input, self.floor_window))
        for block in self.blocks:
            h = block(h)
        return gain + self.out(F.silu(h))
