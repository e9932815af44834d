"""The few-line Python API: load a model by name or path, then work on files or waveforms.

    import audiovae
    vc = audiovae.load("voice-conversion")           # the bundled model, or a path to any speech_cvae checkpoint
    vc.speakers                                       # ['A', 'B', ...]
    wave, sr = vc.convert("in.wav", speaker="B")      # torch.Tensor [T] at vc.sample_rate
    clean, sr = audiovae.load("denoise").denoise("noisy.wav")   # [C, T] at the file's own rate
    waves, sr = audiovae.load("music").sample(n=4, seconds=10, seed=0)   # [4, T] from the learned prior

Like ``Vocos.from_pretrained`` or DAC's ``load_model``: one call that needs no config and no network. Every method is
a thin wrapper over :mod:`audiovae.pipelines` (the CLI calls the same functions).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from . import audio
from .checkpoint import Checkpoint, load_checkpoint
from .device import resolve_device
from .errors import ConfigError
from .pipelines import attributes, latent, music, voices
from .pipelines import convert as vc
from .pipelines.denoise import Denoiser
from .pipelines.vocoder_choice import vocoder_for
from .pretrained import resolve_model

Audio = str | os.PathLike[str] | torch.Tensor | np.ndarray


class Model:
    """A loaded checkpoint with its front end and vocoder: reconstruct, encode, decode."""

    def __init__(self, checkpoint: Checkpoint, vocoder: str | None = None) -> None:
        self.checkpoint = checkpoint
        self.vocoder = vocoder_for(checkpoint, vocoder)

    @property
    def sample_rate(self) -> int:
        """Rate of every waveform this model takes (after resampling) and returns."""
        return self.checkpoint.mel.sample_rate

    @property
    def speakers(self) -> list[str]:
        """Names accepted by ``speaker=`` (indices work too); empty for unconditioned models."""
        return list(self.checkpoint.speakers)

    def load_audio(self, source: Audio, sample_rate: int | None = None) -> torch.Tensor:
        """A file (any format, rate, channels) or a waveform ``[T]``/``[C, T]`` at ``sample_rate`` -> mono ``[T]``
        at the model's rate."""
        mel = self.checkpoint.mel
        if isinstance(source, str | os.PathLike):
            return audio.load(source, mel.sample_rate, min_samples=mel.min_samples)[0]
        wave = torch.as_tensor(source, dtype=torch.float32)
        if wave.ndim == 2:
            wave = wave.mean(dim=0)
        if wave.ndim != 1:
            raise ConfigError(f"expected a waveform [T] or [channels, T], got shape {tuple(wave.shape)}")
        if sample_rate is None:
            raise ConfigError("a waveform needs its sample_rate (or pass a file path)")
        if sample_rate != mel.sample_rate:
            wave = torch.from_numpy(audio.resample(wave.numpy(), sample_rate, mel.sample_rate))
        if wave.numel() < mel.min_samples:
            raise ConfigError(f"waveform of {wave.numel()} samples is too short (at least {mel.min_samples})")
        return wave

    def reconstruct(self, source: Audio, speaker: str | int | None = None, sample_rate: int | None = None
                    ) -> tuple[torch.Tensor, int]:
        """Through the model and back: ``(wave [T], rate)``."""
        wave = self.load_audio(source, sample_rate)
        return latent.reconstruct(wave, self.checkpoint, speaker, self.vocoder), self.sample_rate

    def encode(self, source: Audio, speaker: str | int | None = None, sample_rate: int | None = None
               ) -> torch.Tensor:
        """Posterior means ``[latent_dim, latent_frames]``."""
        return latent.encode(self.load_audio(source, sample_rate), self.checkpoint, speaker)

    def decode(self, z: torch.Tensor, speaker: str | int | None = None) -> tuple[torch.Tensor, int]:
        """Latents ``[latent_dim, latent_frames]`` -> ``(wave [T], rate)``."""
        return latent.decode(z, self.checkpoint, speaker, self.vocoder), self.sample_rate

    def interpolate(self, a: Audio, b: Audio, steps: int = 5, path: str = "linear", speaker: str | int | None = None,
                    sample_rate: int | None = None) -> tuple[torch.Tensor, int]:
        """Walk the latent space from ``a`` to ``b`` (``path``: ``linear`` or ``slerp``): the ``steps`` decodings
        one after another, 0.3 s apart, as ``audiovae interpolate`` writes them. Returns ``(wave [T], rate)``."""
        wa, wb = self.load_audio(a, sample_rate), self.load_audio(b, sample_rate)
        return latent.walk(wa, wb, self.checkpoint, steps, path, speaker, self.vocoder), self.sample_rate

    def vector(self, a: Sequence[Audio], b: Sequence[Audio], speaker: str | int | None = None,
               sample_rate: int | None = None) -> torch.Tensor:
        """An attribute vector ``[latent_dim]``: the mean utterance latent of recordings ``a`` minus that of ``b``
        (files or waveforms), as ``audiovae vector`` makes it."""
        means = []
        for group in (a, b):
            if not len(group):
                raise ConfigError("vector: each set needs at least one recording")
            means.append(torch.stack([attributes.utterance_latent(self.load_audio(x, sample_rate), self.checkpoint,
                                                                  speaker) for x in group]).mean(dim=0))
        return means[0] - means[1]

    def edit(self, source: Audio, vector: torch.Tensor, scale: float = 1.0, speaker: str | int | None = None,
             sample_rate: int | None = None) -> tuple[torch.Tensor, int]:
        """``source`` moved along ``vector`` (from :meth:`vector`): ``scale * vector`` added to every latent frame.
        Returns ``(wave [T], rate)``."""
        wave = self.load_audio(source, sample_rate)
        vector = torch.as_tensor(vector, dtype=torch.float32)
        return attributes.edit(wave, self.checkpoint, vector, scale, speaker, self.vocoder), self.sample_rate


class VoiceConverter(Model):
    """A speaker-conditioned model: convert speech into one of its speakers, or into a voice given by recordings."""

    def convert(self, source: Audio, speaker: str | int | os.PathLike[str] | vc.Voice | None = None, *,
                reference: Audio | Sequence[Audio] | None = None, pitch: str | float = "model",
                sample_rate: int | None = None) -> tuple[torch.Tensor, int]:
        """Convert ``source`` to ``speaker`` (a name or index of the table, a voice file from ``audiovae voice``, or
        a :class:`~audiovae.pipelines.convert.Voice` from :meth:`voice`) or to the voice of ``reference`` recordings
        (one-shot: fitted on every call; :meth:`voice` fits once).

        ``pitch``: ``model`` leaves the pitch register to the decoder, ``shift`` moves the input's register to
        the target's first, a number shifts by that many semitones. Returns ``(wave [T], rate)``, as long as the input.
        """
        if (speaker is None) == (reference is None):
            raise ConfigError("give the target as speaker=NAME or as reference=RECORDING (one of the two)")
        if reference is not None:
            voice = self.voice(reference, sample_rate=sample_rate)
        else:
            voice = voices.target_voice(self.checkpoint, speaker)
        wave = self.load_audio(source, sample_rate)
        out, _ = vc.convert(wave, self.checkpoint, voice, vocoder=self.vocoder, pitch=pitch)
        return out, self.sample_rate

    def voice(self, reference: Audio | Sequence[Audio], *, name: str = "reference", method: str = "adapt",
              steps: int | None = None, sample_rate: int | None = None) -> vc.Voice:
        """A voice outside the table from recordings of it (one to three is typical; 3 s or more in all), as
        ``audiovae voice`` fits it; :meth:`save_voice` writes it for later."""
        refs = list(reference) if isinstance(reference, list | tuple) else [reference]
        return voices.reference_voice(self.checkpoint, [self.load_audio(r, sample_rate) for r in refs], name,
                                      method, steps)

    def save_voice(self, voice: vc.Voice, path: str | os.PathLike[str]) -> None:
        """Write ``voice`` (from :meth:`voice`) as a voice file for ``speaker=PATH`` or ``--speaker PATH``."""
        voices.save_voice(voice, path, self.checkpoint)

    def describe(self) -> list[dict[str, object]]:
        """One row per speaker, as ``audiovae speakers`` prints it: index, name and, where recorded, the voice it
        comes from, its sex and its median F0 in Hz."""
        return vc.speaker_rows(self.checkpoint)


class SpeechDenoiser(Model):
    """A denoising model (trained on noisy/clean pairs): its clean estimate becomes a gain on the noisy STFT."""

    def denoise(self, source: Audio, *, strength: float = 1.0, sample_rate: int | None = None,
                method: str = "mask") -> tuple[torch.Tensor, int]:
        """Denoise a file, or a waveform ``[T]``/``[C, T]`` at ``sample_rate``, at its own rate and channel count
        (one gain, estimated on the channel average, for every channel). ``strength`` mixes dry (0) and wet (1);
        ``method`` as in ``audiovae denoise``. Returns ``(wave, rate)`` of the input's shape. For long files,
        :func:`audiovae.pipelines.denoise.denoise_file` works in chunks with bounded memory."""
        if isinstance(source, str | os.PathLike):
            wave, rate = audio.load(source, mono=False)
        elif sample_rate is None:
            raise ConfigError("a waveform needs its sample_rate (or pass a file path)")
        else:
            wave, rate = torch.as_tensor(source, dtype=torch.float32), sample_rate
        return Denoiser(self.checkpoint, strength, method, vocoder=self.vocoder)(wave, rate), rate


class MusicGenerator(Model):
    """A music model: a VAE with a learned prior over its latent sequences. Sample from the prior, walk the latent
    space, and (as every model) reconstruct, encode, decode and interpolate."""

    def sample(self, n: int = 4, seconds: float = 10.0, temperature: float = 1.0, seed: int = 0,
               prior: bool = True) -> tuple[torch.Tensor, int]:
        """``n`` clips ``[n, T]`` of ``seconds`` from the learned prior (``prior=False``: per-frame ``N(0, I)``,
        the baseline); clip ``i`` is drawn with seed ``seed + i``. Returns ``(waves, rate)``."""
        _, waves = music.generate(self.checkpoint, n, seconds, temperature, seed, "prior" if prior else "normal",
                                  vocoder=self.vocoder)
        return waves, self.sample_rate

    def walk(self, seconds: float = 30.0, temperature: float = 1.0, seed: int = 0) -> tuple[torch.Tensor, int]:
        """A latent random walk ``[T]``: a slow continuous drift through the music's region of the latent space."""
        _, waves = music.generate(self.checkpoint, 1, seconds, temperature, seed, walk=True, vocoder=self.vocoder)
        return waves[0], self.sample_rate


def load(model: str | os.PathLike[str] = "voice-conversion", device: str = "auto", vocoder: str | None = None
         ) -> Model:
    """A bundled model by name (``voice-conversion``, ``denoise``, ``music``) or a checkpoint path -> a ready
    :class:`Model` (a :class:`VoiceConverter` for speaker-conditioned checkpoints, a :class:`SpeechDenoiser` for
    denoisers, a :class:`MusicGenerator` for models with a learned prior).
    Loading never executes code from the file."""
    ckpt = load_checkpoint(resolve_model(model), resolve_device(device))
    kind = (VoiceConverter if ckpt.speakers else SpeechDenoiser if ckpt.task == "denoise"
            else MusicGenerator if ckpt.prior is not None else Model)
    return kind(ckpt, vocoder)
