"""Vocoders by name: the name a command line, a config or a checkpoint's metadata gives maps to a class here."""

from __future__ import annotations

import inspect
from typing import Any, TypeVar

from ..errors import ConfigError
from ..features import MelConfig
from .base import Vocoder

__all__ = ["VOCODERS", "register_vocoder", "build_vocoder"]

VOCODERS: dict[str, type[Vocoder]] = {}
V = TypeVar("V", bound=type[Vocoder])


def register_vocoder(cls: V) -> V:
    """Class decorator: make ``cls`` buildable (and loadable from checkpoints) as ``cls.vocoder_type``."""
    if not (isinstance(cls, type) and issubclass(cls, Vocoder)) or not isinstance(getattr(cls, "vocoder_type", None),
                                                                                  str):
        raise ConfigError(f"register_vocoder: {cls!r} must be a Vocoder subclass with a vocoder_type string")
    known = VOCODERS.get(cls.vocoder_type)
    if known is not None and known.__qualname__ != cls.__qualname__:
        raise ConfigError(f"register_vocoder: {cls.vocoder_type!r} is already {known.__module__}.{known.__qualname__}")
    VOCODERS[cls.vocoder_type] = cls
    return cls


def build_vocoder(name: str, config: MelConfig, **kwargs: Any) -> Vocoder:
    """Instantiate the vocoder registered as ``name`` for ``config``; unknown names and settings are named."""
    try:
        cls = VOCODERS[name]
    except KeyError:
        raise ConfigError(f"unknown vocoder {name!r}; choose one of: {', '.join(sorted(VOCODERS))}") from None
    try:
        inspect.signature(cls).bind(config, **kwargs)
    except TypeError as e:
        raise ConfigError(f"vocoder {name!r}: {e}") from None
    return cls(config, **kwargs)
