"""Vocoders turn a log-mel spectrogram back into a waveform; every command picks one by name.

:class:`Vocoder` is the contract every one of them keeps; ``VOCODERS`` maps names to classes (``register_vocoder``
adds one) and ``build_vocoder`` makes one for a :class:`~audiovae.features.MelConfig`. :class:`GriffinLim` and
:class:`MelGriffinLim` need no training; :class:`NeuralVocoder` is trained by ``audiovae train vocoder``
(:mod:`.training`), and one ships with the package (``--vocoder neural``). Which one a command uses is decided in
:mod:`audiovae.pipelines.vocoder_choice`, through the :class:`Vocoder` contract alone.
"""

from __future__ import annotations

from .base import Vocoder, fit_length
from .griffin_lim import GriffinLim, MelGriffinLim, griffin_lim
from .neural import NeuralVocoder
from .registry import VOCODERS, build_vocoder, register_vocoder

DEFAULT_SYNTHESIS = MelGriffinLim.vocoder_type  # what turns log-mels into audio when nothing else is asked for
NEURAL = NeuralVocoder.vocoder_type  # what `--vocoder neural` names: a trained network (a checkpoint's, or the bundled)

__all__ = ["Vocoder", "fit_length", "GriffinLim", "MelGriffinLim", "griffin_lim", "NeuralVocoder", "VOCODERS",
           "DEFAULT_SYNTHESIS", "NEURAL", "build_vocoder", "register_vocoder"]
