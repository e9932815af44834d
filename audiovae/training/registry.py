"""Everything ``audiovae train`` can build from a config's ``model.type``: every model of
:data:`audiovae.models.MODELS`, and the trainables that are not models (a prior's training, a vocoder's training).

The registry lives here, above ``models/`` and ``vocoders/``, so that neither of those packages imports training
code. ``TRAINABLES`` reads through to ``MODELS``: a model family registered there (or a model type added to it at run
time) is trainable with nothing more; a trainable that is not a model is added here.
"""

from __future__ import annotations

from collections import ChainMap

from ..models import MODELS, build_model, model_options
from ..trainable import Trainable
from ..vocoders.training import VocoderTraining
from .prior import PriorTraining

__all__ = ["TRAINABLES", "trainable_options", "build_trainable"]

TRAINABLES: ChainMap[str, type] = ChainMap({cls.model_type: cls for cls in (PriorTraining, VocoderTraining)}, MODELS)


def trainable_options(model_type: str) -> set[str]:
    """The option names the config of ``model_type`` (any trainable) declares."""
    return model_options(model_type, TRAINABLES)


def build_trainable(model_type: str, values: dict) -> Trainable:
    """Instantiate a registered trainable from its type and config values."""
    return build_model(model_type, values, TRAINABLES)
