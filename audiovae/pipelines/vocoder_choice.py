"""Which vocoder turns a model's log-mels into audio: what ``--vocoder`` names (a registered name, ``neural``, or a
vocoder file), the default, and the same for a loaded checkpoint (its own trained vocoder, its stored settings, and the
network that audio made window by window needs).

Vocoder policy talks to vocoders only through the :class:`~audiovae.vocoders.Vocoder` contract (``vocoder_type``,
``network``, ``exportable``, ``config``) and the registry (:data:`~audiovae.vocoders.VOCODERS`), never a concrete
class. :mod:`.latent` re-exports these functions (``from audiovae.pipelines.latent import vocoder_for`` keeps working).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..checkpoint import DEFAULT_VOCODER, Checkpoint, load_vocoder, mel_difference
from ..errors import ConfigError
from ..features import MelConfig
from ..pretrained import bundled_vocoder
from ..vocoders import DEFAULT_SYNTHESIS, NEURAL, VOCODERS, Vocoder, build_vocoder

__all__ = ["choose_vocoder", "choose_vocoders", "vocoder_for"]


def choose_vocoder(spec: str | None, mel: MelConfig, carried: Vocoder | None = None, stored: dict | None = None,
                   **overrides) -> Vocoder:
    """The vocoder ``--vocoder SPEC`` names, for log-mels of front end ``mel`` (on the CPU; move it after).

    ``spec`` is a registered name (``mel-griffin-lim``, ``griffin-lim``), ``neural`` (the trained vocoder a
    checkpoint carries, else the bundled one), or the path of a vocoder file (``audiovae train vocoder``'s
    ``model.safetensors``, or a model checkpoint that carries one). ``None`` picks the default: ``carried`` (the
    trained vocoder a checkpoint carries), else mel-constrained Griffin-Lim (:data:`DEFAULT_SYNTHESIS`: no training,
    any front end, and ahead of the bundled neural vocoder on the quality and CPU speed the README reports).
    ``stored`` (a checkpoint's vocoder settings) applies to the vocoder of its name. ``overrides`` are settings of a
    vocoder built by name (``n_iter`` of Griffin-Lim); a trained vocoder takes none.
    """
    stored = stored or dict(DEFAULT_VOCODER)
    trained: Vocoder | None = None
    if carried is not None and spec in (None, NEURAL, carried.vocoder_type):
        trained = carried
    elif spec == NEURAL:
        trained = bundled_vocoder(mel, required=True)
    elif spec is not None and spec not in VOCODERS:
        path = Path(spec)
        if not path.is_file():
            what = "no such file" if path.suffix else "not a file"
            raise ConfigError(f"--vocoder {spec}: neither a vocoder ({', '.join(sorted(VOCODERS))}) nor a file "
                              f"({what})")
        trained = load_vocoder(path)
        if trained.config.fingerprint() != mel.fingerprint():
            raise ConfigError(f"--vocoder {spec}: made for other features than the model's "
                              f"({mel_difference(mel, trained.config)})")
    if trained is not None:
        if overrides:
            raise ConfigError(f"the trained {trained.vocoder_type} vocoder takes no settings "
                              f"({', '.join(overrides)}); ask for another vocoder by name to change them")
        return trained
    name = spec or DEFAULT_SYNTHESIS
    settings = {k: v for k, v in stored.items() if k not in ("name", "path")} if name == stored.get("name") else {}
    return build_vocoder(name, mel, **(settings | overrides))


def choose_vocoders(specs: Sequence[str]) -> dict[str, Vocoder]:
    """Several ``--vocoder`` specs to compare (on the CPU): files are loaded with their own features, and names are
    built for the first file's features (the default front end when there is no file)."""
    loaded = {spec: load_vocoder(spec) for spec in specs if Path(spec).is_file()}
    front = next(iter(loaded.values())).config if loaded else MelConfig()
    return {spec: loaded[spec] if spec in loaded else choose_vocoder(spec, front) for spec in specs}


def vocoder_for(ckpt: Checkpoint, name: str | None = None, *, prefer_trained: bool = False, **overrides) -> Vocoder:
    """The vocoder to use with ``ckpt`` (:func:`choose_vocoder`: ``name`` is ``--vocoder``), on the model's device.

    ``prefer_trained``: the default, and ``neural``, mean a network that predicts its own phase (the model's own
    trained vocoder, else the bundled :data:`~audiovae.pretrained.STREAM_VOCODER` where it fits the features).
    Audio made window by window and crossfaded (``--stream``, long files in chunks) needs it: a network's phase
    follows the signal, so overlapping windows agree, while Griffin-Lim's, and the PGHI start of the bundled
    ``neural`` vocoder, are fixed only up to a constant per window (PGHI anchors it at the window's loudest bin), so
    two windows can come out in opposite phase and cancel in the crossfade (overlapping 2.55-s windows of the example
    clip correlated at 0.02 to 0.93 over their overlap through mel-griffin-lim, the network's at 0.985 to 1.0).
    Export wants it too: a network is what it exports. A model's own trained vocoder whose phase starts from PGHI
    gives way to the streaming network there too (when it fits the features; else it is kept).
    """
    carried = ckpt.trained_vocoder
    if prefer_trained and name in (None, NEURAL) and not overrides and (
            carried is None or (carried.network and not carried.exportable)):
        network = bundled_vocoder(ckpt.mel, streaming=True)
        if network is not None:
            return network.to(ckpt.model.mel_mean.device)
    vocoder = choose_vocoder(name, ckpt.mel, carried, ckpt.vocoder, **overrides)
    return vocoder.to(ckpt.model.mel_mean.device)
