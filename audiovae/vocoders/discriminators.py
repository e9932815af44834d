"""Waveform discriminators for adversarial vocoder training, and the least-squares GAN losses that use them.

* :class:`PeriodDiscriminator` (HiFi-GAN's MPD, Kong et al. 2020): the waveform folded into ``[T / p, p]`` and judged
  by 2-D convolutions along time, so each sub-discriminator sees one phase of a period ``p``: periodic structure
  (pitch, its harmonics) that a mel loss does not constrain.
* :class:`ResolutionDiscriminator` (UnivNet's MRD, Jang et al. 2021, as Vocos uses it): 2-D convolutions over one
  STFT magnitude; several resolutions judge the spectral detail that makes speech sound clean or buzzy.

Each returns its logits and the feature maps of every layer (for feature matching). Sizes here are chosen for CPU
training: far narrower than HiFi-GAN's (up to 1024 channels), which the budget of a bundled recipe cannot train.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["PeriodDiscriminator", "ResolutionDiscriminator", "Discriminators", "discriminator_loss",
           "generator_loss", "feature_loss"]

SLOPE = 0.1  # leaky ReLU slope of HiFi-GAN's discriminators


def _judge(x: torch.Tensor, convs: nn.ModuleList, post: nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A discriminator's stack: leaky-ReLU convolutions, then the logits layer; every layer's output is a feature."""
    features = []
    for conv in convs:
        x = F.leaky_relu(conv(x), SLOPE)
        features.append(x)
    x = post(x)
    features.append(x)
    return x.flatten(1), features


class PeriodDiscriminator(nn.Module):
    """One period of the multi-period discriminator: ``[B, T]`` -> (logits, feature maps)."""

    def __init__(self, period: int, channels: Sequence[int] = (16, 64, 128, 128)) -> None:
        super().__init__()
        self.period = period
        widths = [1, *channels]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(widths[i], widths[i + 1], (5, 1), (3 if i < len(channels) - 1 else 1, 1),
                                  padding=(2, 0)))
            for i in range(len(channels)))
        self.post = weight_norm(nn.Conv2d(widths[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, t = wave.shape
        pad = (-t) % self.period
        x = F.pad(wave, (0, pad), mode="reflect" if pad < t else "constant")
        return _judge(x.view(b, 1, -1, self.period), self.convs, self.post)


class ResolutionDiscriminator(nn.Module):
    """One STFT resolution of the multi-resolution discriminator: ``[B, T]`` -> (logits, feature maps)."""

    def __init__(self, n_fft: int, hop: int, channels: int = 16, layers: int = 4) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        # UnivNet's first layer keeps the full frequency axis; striding it too costs a quarter on a CPU
        convs = [weight_norm(nn.Conv2d(1, channels, (3, 9), stride=(1, 2), padding=(1, 4)))]
        convs += [weight_norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4)))
                  for _ in range(layers - 1)]
        convs.append(weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))))
        self.convs = nn.ModuleList(convs)
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        with torch.autocast(device_type=wave.device.type, enabled=False):
            spec = torch.stft(wave.float(), self.n_fft, self.hop, window=self.window, return_complex=True)
            x = spec.abs().transpose(1, 2).unsqueeze(1)  # [B, 1, frames, freqs]: strides halve the frequency axis
        return _judge(x, self.convs, self.post)


class Discriminators(nn.Module):
    """Every period and resolution discriminator; ``forward`` returns one (logits, features) pair per judge."""

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11),
                 resolutions: Sequence[Sequence[int]] = ((512, 128), (1024, 256), (2048, 512)),
                 period_channels: Sequence[int] = (16, 64, 128, 128), resolution_channels: int = 16) -> None:
        super().__init__()
        self.judges = nn.ModuleList([PeriodDiscriminator(p, period_channels) for p in periods]
                                    + [ResolutionDiscriminator(n, h, resolution_channels) for n, h in resolutions])

    def forward(self, wave: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [judge(wave) for judge in self.judges]


def discriminator_loss(real: Sequence[torch.Tensor], fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """Least-squares GAN (Mao et al. 2017), as HiFi-GAN: real logits towards 1, generated towards 0, summed."""
    return sum(((1 - r.float()) ** 2).mean() + (f.float() ** 2).mean() for r, f in zip(real, fake, strict=True))


def generator_loss(fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """The generator's side of the least-squares GAN: generated logits towards 1, summed over judges."""
    return sum(((1 - f.float()) ** 2).mean() for f in fake)


def feature_loss(real: Sequence[Sequence[torch.Tensor]], fake: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """Feature matching: mean L1 between the judges' feature maps of real and generated audio, averaged per judge."""
    total = 0.0
    for r_maps, f_maps in zip(real, fake, strict=True):
        total = total + sum((r.detach().float() - f.float()).abs().mean() for r, f in zip(r_maps, f_maps,
                                                                                        strict=True)) / len(r_maps)
    return total
