"""Inference through a trained model's latent space: reconstruct, encode, decode, interpolate (and walk).

Each function takes waveforms (at the checkpoint's rate) and a loaded :class:`~audiovae.checkpoint.Checkpoint` and
returns waveforms or latents; file handling stays with the caller (:mod:`.batch` maps a pipeline over files).
Latents are posterior means ``[D, T']`` (float32); on disk they are ``.npz`` files
(:func:`save_latents`, :func:`load_latents`) with one array per level (``z0``, ``z1``, ... so hierarchical models
fit) beside scalar metadata (hop factor, sample rate); the single ``.npy`` arrays of earlier versions still load.
"""

from __future__ import annotations

import math
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import Checkpoint, mel_difference
from ..data.datasets import SpeakerMap
from ..errors import AudiovaeError, ConfigError
from ..features import MelConfig, MelSpectrogram
from ..fileio import atomic_path, check_output_path
from ..vocoders import DEFAULT_SYNTHESIS, VOCODERS, Vocoder, build_vocoder
from ..vocoders.neural import NeuralVocoder


def speaker_id(ckpt: Checkpoint, speaker: str | int | None) -> torch.Tensor | None:
    """Speaker name or index -> id tensor ``[1]``; ``None`` for unconditioned models. Errors list the speakers.
    A bundled model's speakers are letters; the names of the voices they were trained on work too."""
    if not ckpt.speakers:
        if speaker is not None:
            raise ConfigError("this model has no speakers; drop --speaker")
        return None
    if speaker is None:
        raise ConfigError(f"this model needs a speaker; choose one of: {', '.join(ckpt.speakers)}")
    aliases = ckpt.info.get("trained_speakers", [])  # a bundled model's letters stand for these voice names
    if isinstance(speaker, str) and speaker not in ckpt.speakers and speaker in aliases:
        speaker = aliases.index(speaker)
    index = SpeakerMap(tuple(ckpt.speakers)).lookup(speaker)
    return torch.tensor([index], device=ckpt.model.mel_mean.device)


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
    from ..checkpoint import DEFAULT_VOCODER, load_vocoder
    from ..pretrained import bundled_vocoder

    stored = stored or dict(DEFAULT_VOCODER)
    trained: Vocoder | None = None
    if carried is not None and spec in (None, NeuralVocoder.vocoder_type, carried.vocoder_type):
        trained = carried
    elif spec == NeuralVocoder.vocoder_type:
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
    from ..checkpoint import load_vocoder

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
    from ..pretrained import bundled_vocoder

    carried = ckpt.trained_vocoder
    if prefer_trained and name in (None, NeuralVocoder.vocoder_type) and not overrides and (
            carried is None or (isinstance(carried, NeuralVocoder) and not carried.exportable)):
        network = bundled_vocoder(ckpt.mel, streaming=True)
        if network is not None:
            return network.to(ckpt.model.mel_mean.device)
    vocoder = choose_vocoder(name, ckpt.mel, carried, ckpt.vocoder, **overrides)
    return vocoder.to(ckpt.model.mel_mean.device)


def logmel(wave: torch.Tensor, ckpt: Checkpoint) -> torch.Tensor:
    """Waveform ``[T]`` -> the model's log-mel input ``[1, n_mels, frames]`` on the model's device."""
    mel = MelSpectrogram(ckpt.mel).to(ckpt.model.mel_mean.device)
    return mel(wave.to(ckpt.model.mel_mean.device).reshape(1, -1))


@torch.inference_mode()
def encode(wave: torch.Tensor, ckpt: Checkpoint, speaker: str | int | None = None) -> torch.Tensor:
    """Waveform ``[T]`` -> posterior mean ``[D, T']``."""
    return ckpt.model.encode(logmel(wave, ckpt), speaker_id(ckpt, speaker)).mode()[0].float().cpu()


@torch.inference_mode()
def decode(z: torch.Tensor, ckpt: Checkpoint, speaker: str | int | None = None, vocoder: Vocoder | None = None,
           length: int | None = None) -> torch.Tensor:
    """Latents ``[D, T']`` -> waveform ``[T]``."""
    dim = ckpt.model.config.latent_dim
    if z.ndim != 2 or z.shape[0] != dim:
        raise ConfigError(f"latents of shape {tuple(z.shape)} do not fit this model (expects [{dim}, frames])")
    device = ckpt.model.mel_mean.device
    mel = ckpt.model.decode(z.to(device).unsqueeze(0).float(), speaker_id(ckpt, speaker))
    return (vocoder or vocoder_for(ckpt))(mel, length=length)[0].cpu()


@torch.inference_mode()
def reconstruct(wave: torch.Tensor, ckpt: Checkpoint, speaker: str | int | None = None,
                vocoder: Vocoder | None = None) -> torch.Tensor:
    """Waveform -> log-mel -> model -> log-mel -> vocoder -> waveform of the same length."""
    estimate = ckpt.model.reconstruct(logmel(wave, ckpt), speaker_id(ckpt, speaker))
    return (vocoder or vocoder_for(ckpt))(estimate, length=wave.numel())[0].cpu()


@dataclass
class Latents:
    """What :func:`load_latents` returns: the levels (``z0`` first) and the metadata saved with them."""

    levels: list[torch.Tensor]
    meta: dict[str, str | int | float | bool] = field(default_factory=dict)


_LEVEL = re.compile(r"z(\d+)")


def check_latents_path(path: str | os.PathLike[str]) -> Path:
    """An output path for :func:`save_latents`: writable, and named ``.npz`` (checked before any work)."""
    out = check_output_path(path)
    if out.suffix != ".npz":
        raise ConfigError(f"{out}: latents are saved as .npz (levels z0, z1, ... and metadata); name it "
                          f"{out.with_suffix('.npz').name}")
    return out


def save_latents(path: str | os.PathLike[str], levels: list[torch.Tensor] | dict[str, torch.Tensor],
                 **meta: str | int | float | bool) -> Path:
    """Write latents atomically as ``.npz``: ``levels`` (a list, or a dict keyed ``z0``, ``z1``, ...) as float32
    arrays ``z0``, ``z1``, ..., and each ``meta`` value (a string or number) as a scalar array of its name."""
    if not isinstance(levels, dict):
        levels = {f"z{i}": z for i, z in enumerate(levels)}
    if not levels or sorted(levels) != [f"z{i}" for i in range(len(levels))]:
        raise ConfigError(f"save_latents: levels {sorted(levels)} must be z0, z1, ... (at least one)")
    for name, value in meta.items():
        if _LEVEL.fullmatch(name) or not isinstance(value, str | int | float | bool):
            raise ConfigError(f"save_latents: metadata {name}={value!r} must be a string or number not named zN")
    check_latents_path(path)
    arrays = {name: torch.as_tensor(z).detach().float().cpu().numpy() for name, z in levels.items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays, **{name: np.asarray(value) for name, value in meta.items()})
    return Path(path)


def load_latents(path: str | os.PathLike[str]) -> Latents:
    """Read a ``.npz`` from :func:`save_latents`, or a single ``.npy`` array (earlier versions: one level, no
    metadata). Unreadable files raise :class:`~audiovae.errors.AudiovaeError` with a one-line reason."""
    p = Path(path)
    if not p.is_file():
        raise AudiovaeError(f"{p}: no such latents file" if not p.exists() else f"{p}: is not a file")
    with open(p, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY" and magic[:2] != b"PK":
        raise AudiovaeError(f"{p}: not a latent file (a .npz from `audiovae encode`, or a .npy array)")
    try:
        data = np.load(p, allow_pickle=False)
        if isinstance(data, np.ndarray):  # .npy
            return Latents([torch.from_numpy(data).float()])
        with data:
            names = set(data.files)
            count = sum(1 for n in names if _LEVEL.fullmatch(n))
            if count == 0 or {f"z{i}" for i in range(count)} - names:
                raise AudiovaeError(f"{p}: an .npz without latents z0, z1, ... (not from `audiovae encode`)")
            levels = [torch.from_numpy(data[f"z{i}"]).float() for i in range(count)]
            meta = {n: data[n].item() for n in sorted(names) if not _LEVEL.fullmatch(n) and data[n].ndim == 0}
    except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as e:
        raise AudiovaeError(f"{p}: not a readable .npy or .npz latent file ({str(e).splitlines()[0][:120]})"
                            ) from None
    return Latents(levels, meta)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of latent vectors along dim 0 (per frame); linear where they are nearly parallel."""
    na, nb = a.norm(dim=0, keepdim=True), b.norm(dim=0, keepdim=True)
    cos = ((a * b).sum(dim=0, keepdim=True) / (na * nb).clamp_min(1e-8)).clamp(-1.0, 1.0)
    omega = torch.acos(cos)
    so = torch.sin(omega)
    linear = (1 - t) * a + t * b
    spherical = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / so.clamp_min(1e-8)
    return torch.where(so > 1e-4, spherical, linear)


def interpolate(wave_a: torch.Tensor, wave_b: torch.Tensor, ckpt: Checkpoint, steps: int = 5, path: str = "linear",
                speaker: str | int | None = None, vocoder: Vocoder | None = None) -> list[torch.Tensor]:
    """Decode ``steps`` points on the path from ``encode(a)`` to ``encode(b)`` (cropped to the shorter one)."""
    if steps < 2:
        raise ConfigError(f"--steps {steps}: need at least 2 (the two ends)")
    if path not in ("linear", "slerp"):
        raise ConfigError(f"--path {path!r}: choose linear or slerp")
    za, zb = encode(wave_a, ckpt, speaker), encode(wave_b, ckpt, speaker)
    frames = min(za.shape[-1], zb.shape[-1])
    za, zb = za[:, :frames], zb[:, :frames]
    vocoder = vocoder or vocoder_for(ckpt)
    out = []
    for i in range(steps):
        t = i / (steps - 1)
        z = (1 - t) * za + t * zb if path == "linear" else slerp(za, zb, t)
        out.append(decode(z, ckpt, speaker, vocoder))
    return out


def gap(seconds: float, sample_rate: int) -> torch.Tensor:
    """Silence placed between concatenated results."""
    return torch.zeros(int(math.ceil(seconds * sample_rate)))


def join(waves: list[torch.Tensor], sample_rate: int, pause: float = 0.3) -> torch.Tensor:
    """One waveform: ``waves`` one after another, ``pause`` seconds of silence between them."""
    silence = gap(pause, sample_rate)
    return torch.cat([x for w in waves for x in (w, silence)][:-1])


def walk(wave_a: torch.Tensor, wave_b: torch.Tensor, ckpt: Checkpoint, steps: int = 5, path: str = "linear",
         speaker: str | int | None = None, vocoder: Vocoder | None = None, pause: float = 0.3
         ) -> torch.Tensor:
    """The :func:`interpolate` steps from A to B as one waveform, ``pause`` seconds apart (to listen to)."""
    return join(interpolate(wave_a, wave_b, ckpt, steps, path, speaker, vocoder), ckpt.mel.sample_rate, pause)
