"""Models that ship inside the package, usable by name wherever a checkpoint path is accepted.

Each one is an fp16 safetensors checkpoint of at most 15 MB, reproduced by a recipe (named below), so that the
headline commands work offline right after ``pip install``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError
from .features import MelConfig

if TYPE_CHECKING:
    from .vocoders import Vocoder

MODELS_DIR = Path(__file__).resolve().parent / "assets" / "models"
BUNDLED: dict[str, str] = {
    "voice_conversion": "CVAE over 8 synthetic voices named A-H, with a speaker encoder; "
                        "recipes/voice_conversion/synthetic.sh",
    "denoise": "denoising VAE (noisy log-mel in, clean log-mel out, used as a gain on the noisy STFT), trained on "
               "the offline noisy corpus; recipes/denoise/run.sh",
    "music": "music VAE (21.5 latent frames/s) with a GRU prior over its latent sequences, trained on the offline "
             "music corpus; recipes/music/run.sh",
}
DEFAULT_VC = "voice_conversion"
VOCODER = MODELS_DIR / "vocoder.safetensors"  # the bundled neural vocoder (recipes/vocoder/run.sh); not a model
# the bundled network that predicts its own phase: audio made window by window and crossfaded, and export, need it
STREAM_VOCODER = MODELS_DIR / "vocoder_stream.safetensors"


def bundled_vocoder(mel: MelConfig, required: bool = False, streaming: bool = False) -> Vocoder | None:
    """The bundled neural vocoder when it exists and was made for front end ``mel``; else ``None``, or a
    ``ConfigError`` saying why when ``required`` (``--vocoder neural``).

    ``streaming``: the bundled network that predicts its own phase (:data:`STREAM_VOCODER`) instead of the one whose
    phase starts from PGHI (:data:`VOCODER`). PGHI fixes a window's phase only up to a constant, so two crossfaded
    windows could cancel; a network's phase follows the signal, and it is a graph that export can hold.
    """
    from .checkpoint import load_vocoder, mel_difference  # the checkpoint module imports this one

    path = STREAM_VOCODER if streaming else VOCODER
    if not path.is_file():
        if required:
            raise ConfigError(f"--vocoder neural: no trained vocoder here ({path} is missing); give a vocoder "
                              "file (audiovae train vocoder) as --vocoder PATH")
        return None
    vocoder = load_vocoder(path)
    if vocoder.config.fingerprint() != mel.fingerprint():
        if required:
            raise ConfigError("--vocoder neural: the bundled vocoder was made for other features than the model's "
                              f"({mel_difference(mel, vocoder.config)}); train one for them (audiovae train vocoder)")
        return None
    return vocoder


def bundled_path(name: str) -> Path:
    """Path of a bundled model by name (``voice-conversion`` and ``voice_conversion`` are the same)."""
    name = name.replace("-", "_")
    if name not in BUNDLED:
        raise ConfigError(f"no bundled model {name!r}; bundled: {', '.join(BUNDLED)}")
    return MODELS_DIR / f"{name}.safetensors"


def resolve_model(model: str | os.PathLike[str]) -> Path:
    """A checkpoint path as given, or a bundled model's file when ``model`` is one of their names."""
    path = Path(model)
    if path.exists():
        return path
    if str(model).replace("-", "_") in BUNDLED:
        return bundled_path(str(model))
    if not path.suffix:  # a name, not a file path: say what names there are
        raise ConfigError(f"{model}: no such checkpoint, and no bundled model of that name (bundled: "
                          f"{', '.join(BUNDLED)})")
    return path
