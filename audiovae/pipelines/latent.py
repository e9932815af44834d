"""Inference through a trained model's latent space: reconstruct, encode, decode, interpolate (and walk).

Each function takes waveforms (at the checkpoint's rate) and a loaded :class:`~audiovae.checkpoint.Checkpoint` and
returns waveforms or latents; file handling stays with the caller (:mod:`.batch` maps a pipeline over files).
Latents are posterior means ``[D, T']`` (float32).
"""

from __future__ import annotations

import math

import torch

from ..checkpoint import Checkpoint
from ..data.datasets import SpeakerMap
from ..errors import ConfigError
from ..features import MelSpectrogram
from ..vocoders import build_vocoder


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


def vocoder_for(ckpt: Checkpoint, name: str | None = None, **overrides) -> torch.nn.Module:
    """The checkpoint's default vocoder (or ``name``), on the model's device."""
    settings = dict(ckpt.vocoder)
    settings.pop("name", None)
    settings.update(overrides)
    return build_vocoder(name or ckpt.vocoder.get("name", "griffin-lim"), ckpt.mel, **settings).to(
        ckpt.model.mel_mean.device)


def logmel(wave: torch.Tensor, ckpt: Checkpoint) -> torch.Tensor:
    """Waveform ``[T]`` -> the model's log-mel input ``[1, n_mels, frames]`` on the model's device."""
    mel = MelSpectrogram(ckpt.mel).to(ckpt.model.mel_mean.device)
    return mel(wave.to(ckpt.model.mel_mean.device).reshape(1, -1))


@torch.inference_mode()
def encode(wave: torch.Tensor, ckpt: Checkpoint, speaker: str | int | None = None) -> torch.Tensor:
    """Waveform ``[T]`` -> posterior mean ``[D, T']``."""
    return ckpt.model.encode(logmel(wave, ckpt), speaker_id(ckpt, speaker)).mode()[0].float().cpu()


@torch.inference_mode()
def decode(z: torch.Tensor, ckpt: Checkpoint, speaker: str | int | None = None, vocoder: torch.nn.Module | None = None,
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
                vocoder: torch.nn.Module | None = None) -> torch.Tensor:
    """Waveform -> log-mel -> model -> log-mel -> vocoder -> waveform of the same length."""
    estimate = ckpt.model.reconstruct(logmel(wave, ckpt), speaker_id(ckpt, speaker))
    return (vocoder or vocoder_for(ckpt))(estimate, length=wave.numel())[0].cpu()


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
                speaker: str | int | None = None, vocoder: torch.nn.Module | None = None) -> list[torch.Tensor]:
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
         speaker: str | int | None = None, vocoder: torch.nn.Module | None = None, pause: float = 0.3
         ) -> torch.Tensor:
    """The :func:`interpolate` steps from A to B as one waveform, ``pause`` seconds apart (to listen to)."""
    return join(interpolate(wave_a, wave_b, ckpt, steps, path, speaker, vocoder), ckpt.mel.sample_rate, pause)
