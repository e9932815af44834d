"""The vocoder contract: log-mel ``[B, n_mels, frames]`` -> waveform ``[B, T]``, for one :class:`MelConfig`.

Every consumer (pipelines, evaluation, checkpoints) talks to a vocoder only through this class, so a trained neural
vocoder drops in where Griffin-Lim is used today: it is called the same way, reports its device the same way, and
``vocoder_type`` + ``settings()`` + its ``state_dict()`` are all a checkpoint needs to rebuild it.
"""

from __future__ import annotations

import inspect
from itertools import chain
from typing import ClassVar

import torch
from torch import nn

from ..features import MelConfig

__all__ = ["Vocoder", "fit_length"]


def fit_length(wave: torch.Tensor, length: int | None) -> torch.Tensor:
    """Cut or zero-pad the last axis of ``wave`` to ``length`` samples (unchanged when ``length`` is None)."""
    if length is None or length == wave.shape[-1]:
        return wave
    if length < wave.shape[-1]:
        return wave[..., :length]
    return torch.nn.functional.pad(wave, (0, length - wave.shape[-1]))


class Vocoder(nn.Module):
    """Base of every vocoder. Subclasses set ``vocoder_type``, take ``config`` as their first constructor argument
    and implement :meth:`forward`.

    ``settings()`` returns the other constructor arguments: by default each one is read back from the attribute of
    the same name, so a subclass that stores its arguments under their own names needs nothing more.
    """

    vocoder_type: ClassVar[str]
    network: ClassVar[bool] = False
    """A trained network (its weights are what it is, saved with it), not an algorithm built from settings alone."""
    config: MelConfig

    def forward(self, logmel: torch.Tensor, length: int | None = None, *, progress: bool = False) -> torch.Tensor:
        """Log-mel ``[B, n_mels, frames]`` (as :class:`~audiovae.features.MelSpectrogram` makes it) -> waveform
        ``[B, T]``, float32, on the vocoder's device. ``length`` cuts or zero-pads the result to that many samples;
        ``progress`` may show a progress bar (vocoders that are fast ignore it)."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        """Where the vocoder computes: its first parameter's or buffer's device; CPU for a vocoder with neither."""
        first = next(chain(self.parameters(), self.buffers()), None)
        return first.device if first is not None else torch.device("cpu")

    @property
    def exportable(self) -> bool:
        """Whether the waveform is a network's alone, so that an exported graph (``audiovae export``) can hold it; an
        algorithm, or a network whose phase comes from a sequential loop, is not. A vocoder that says so has
        ``polar(logmel)`` (STFT magnitude and phase) and ``generate(logmel, length)`` (their waveform), which export
        traces and checks against."""
        return False

    def settings(self) -> dict:
        """Constructor keyword arguments other than ``config``, JSON-serialisable, to rebuild this vocoder."""
        params = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name, p in params.items()
                if name not in ("self", "config") and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
