"""Inference through a trained model's latent space: reconstruct, encode, decode, interpolate (and walk).

Each function takes waveforms (at the checkpoint's rate) and a loaded :class:`~audiovae.checkpoint.Checkpoint` and
returns waveforms or latents; file handling stays with the caller (:mod:`.batch` maps a pipeline over files).
Latents are posterior means ``[D, T']`` (float32); on disk they are ``.npz`` files
(:func:`save_latents`, :func:`load_latents`) with one array per level (``z0``, ``z1``, ... so hierarchical models
fit) beside scalar metadata (hop factor, sample rate); the single ``.npy`` arrays of earlier versions still load.
Which vocoder renders the log-mels is :mod:`.vocoder_choice`'s business (re-exported here: :func:`vocoder_for`,
:func:`choose_vocoder`, :func:`choose_vocoders`).
"""

from __future__ import annotations

import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import Checkpoint
from ..data.datasets import SpeakerMap
from ..errors import AudiovaeError, ConfigError
from ..features import MelSpectrogram
from ..fileio import atomic_path, check_output_path
from ..vocoders import Vocoder
from .vocoder_choice import choose_vocoder, choose_vocoders, vocoder_for  # noqa: F401 - re-exported


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
