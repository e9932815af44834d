"""Vocoders turn a log-mel spectrogram back into a waveform; every command picks one by name."""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from ..features import MelConfig
from .griffin_lim import GriffinLim, griffin_lim

__all__ = ["GriffinLim", "griffin_lim", "VOCODERS", "build_vocoder"]

VOCODERS: dict[str, type[nn.Module]] = {"griffin-lim": GriffinLim}


def build_vocoder(name: str, config: MelConfig, **kwargs) -> nn.Module:
    """Instantiate a registered vocoder for ``config``; unknown names list the known ones."""
    try:
        cls = VOCODERS[name]
    except KeyError:
        raise ConfigError(f"unknown vocoder {name!r}; choose one of: {', '.join(sorted(VOCODERS))}") from None
    return cls(config, **kwargs)
