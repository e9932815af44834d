"""The one exception family that commands turn into a one-line message and a non-zero exit."""

from __future__ import annotations


class AudiovaeError(Exception):
    """Base of every error audiovae raises on purpose (bad input, bad option, missing model).

    The message is a complete sentence for a person: the CLI prints it on one line, without a traceback.
    """


class ConfigError(AudiovaeError, ValueError):
    """A parameter or config value is out of range; the message names the parameter."""
