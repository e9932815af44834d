"""Voice conversion with a speaker-conditioned model: encode the content, decode it in the target's voice.

The target is a :class:`Voice`: a speaker of the model's table (:func:`table_voice`, by name or index) or, one-shot,
a vector made from reference recordings of a voice outside the table (:mod:`.voices`).

**Pitch register.** The decoder draws the harmonics itself, so it moves F0 to the register it learnt for each
table speaker: measured on all 56 ordered pairs of the bundled model's voices, the converted register is within
15 % of the target's in every pair (mean error 0.76 semitones; recipes/voice_conversion/README.md). It knows
nothing of a one-shot voice's register, though. ``pitch="shift"`` moves the source's log-F0 mean and spread to the
target's (the classic linear log-F0 transform) *before* encoding, by warping each frame's frequency axis
(:mod:`audiovae.pitch`); the target's register is measured on the training data (stored in the checkpoint) or on the
reference recordings. Measured on the bundled model it costs quality, on table voices (MCD 3.2 against 2.4 dB,
resemblyzer similarity to the target 0.81 against 0.87) and on one-shot references of voices it was trained on
alike, so the default is ``pitch="model"``: leave the register to the decoder. ``shift`` stays for voices whose
register the decoder cannot know; a number shifts by that many semitones.

The source speaker matters only when the encoder is speaker-conditioned (``encoder_speaker``); then, if not given,
it is estimated by analysis-by-synthesis: the utterance is decoded with every speaker of the table and the one
whose decoding matches the input best (mel L1) is taken.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..checkpoint import Checkpoint
from ..errors import ConfigError
from ..features import MelSpectrogram
from ..metrics import mel_l1
from ..pitch import Register, register, track_f0, warp_frequency, warp_ratios
from .latent import logmel, speaker_id
from .stream import Process, StreamConfig
from .vocoder_choice import vocoder_for

PITCH_MODES = ("model", "shift")


@dataclass
class Voice:
    """A conversion target: what conditions the decoder (an id ``[1]`` or an embedding ``[1, speaker_dim]``),
    when known, the voice's pitch register, and for a voice adapted to recordings its offsets to the decoder's FiLM
    modulations (``[1, film_width]``, :mod:`.voices`)."""

    name: str
    condition: torch.Tensor
    register: Register | None = None
    film_offset: torch.Tensor | None = None

    @property
    def in_table(self) -> bool:
        """A speaker of the model's table (the decoder learnt its register), not an embedding of a reference."""
        return not self.condition.is_floating_point()


def _require_speakers(ckpt: Checkpoint) -> None:
    if not ckpt.speakers:
        raise ConfigError(f"this model ({ckpt.model.model_type}, task {ckpt.task}) has no speakers: "
                          "voice conversion needs a speaker-conditioned model (e.g. `audiovae train speech_cvae`)")


def table_voice(ckpt: Checkpoint, speaker: str | int) -> Voice:
    """A speaker of the model's table, by name or index; its register from the checkpoint when recorded."""
    _require_speakers(ckpt)
    ids = speaker_id(ckpt, speaker)
    name = ckpt.speakers[int(ids)]
    stored = ckpt.info.get("pitch", {}).get(name)
    return Voice(name, ids, Register.from_list(stored) if stored else None)


def speaker_rows(ckpt: Checkpoint) -> list[dict[str, object]]:
    """One row per speaker of the table: index, name and, where the checkpoint records them, the voice it comes from
    (``voices``, written by the export of a bundled model: voice, sex, how it was made) and its median F0 in Hz
    (from the pitch registers measured on the training data)."""
    voices, pitch = ckpt.info.get("voices", {}), ckpt.info.get("pitch", {})
    rows = []
    for i, name in enumerate(ckpt.speakers):
        row: dict[str, object] = {"index": i, "name": name}
        voice = voices.get(name)
        row |= voice if isinstance(voice, dict) else ({"about": voice} if voice else {})
        if name in pitch:
            row["median_f0_hz"] = round(Register.from_list(pitch[name]).median_hz, 1)
        rows.append(row)
    return rows


def check_pitch(pitch: str | float) -> str | float:
    """``model``, ``shift`` or a number of semitones (also as a string, as typed on the command line)."""
    if isinstance(pitch, int | float):
        return float(pitch)
    if pitch in PITCH_MODES:
        return pitch
    try:
        return float(pitch)
    except ValueError:
        raise ConfigError(f"--pitch {pitch!r}: give model, shift or a number of semitones (e.g. -4)"
                          ) from None


def source_logmel(wave: torch.Tensor, ckpt: Checkpoint, target: Voice, pitch: str | float = "model") -> torch.Tensor:
    """The model's input ``[1, n_mels, frames]`` for ``wave``, its pitch register moved as ``pitch`` asks."""
    pitch = check_pitch(pitch)
    if pitch == "model" or pitch == 0.0 or (pitch == "shift" and target.register is None):
        return logmel(wave, ckpt)
    device = ckpt.model.mel_mean.device
    analysis = MelSpectrogram(ckpt.mel).to(device)
    magnitude = analysis.magnitude(wave.to(device).reshape(1, -1))
    if pitch == "shift":
        f0, voiced = track_f0(wave.float().cpu(), ckpt.mel)
        source = register([f0], [voiced])
        if source is None:  # nothing voiced: nothing to move
            return analysis.from_magnitude(magnitude)
        ratio = warp_ratios(f0, voiced, source, target.register).to(device)
    else:
        ratio = 2.0 ** (pitch / 12.0)
    return analysis.from_magnitude(warp_frequency(magnitude, ratio))


@torch.inference_mode()
def estimate_speaker(mel: torch.Tensor, ckpt: Checkpoint) -> int:
    """Index of the speaker whose decoding of ``mel`` ``[1, n_mels, T]`` reproduces it best."""
    _require_speakers(ckpt)
    model, n = ckpt.model, len(ckpt.speakers)
    ids = torch.arange(n, device=mel.device)
    batch = mel.expand(n, -1, -1)
    z = model.encode(batch, ids).mode()  # per-speaker encoding when the encoder is conditioned too
    errors = mel_l1(model.decode(z, ids)[..., : mel.shape[-1]], batch)
    return int(errors.argmin())


@torch.inference_mode()
def convert(wave: torch.Tensor, ckpt: Checkpoint, target: Voice | str | int, source: str | int | None = None,
            vocoder: torch.nn.Module | None = None, pitch: str | float = "model") -> tuple[torch.Tensor, str | None]:
    """Convert ``wave`` (``[T]`` at the checkpoint's rate) to the ``target`` voice.

    ``target`` is a :class:`Voice` or a speaker name or index of the table; ``pitch`` is ``model``, ``shift``
    or semitones (see the module's docstring). Returns the converted waveform (same length) and the source
    speaker's name: as given, as estimated when the encoder needs it, else ``None``.
    """
    _require_speakers(ckpt)
    model = ckpt.model
    voice = target if isinstance(target, Voice) else table_voice(ckpt, target)
    mel = source_logmel(wave, ckpt, voice, pitch)
    src = speaker_id(ckpt, source) if source is not None else None
    if src is None and model.config.encoder_speaker:
        src = torch.tensor([estimate_speaker(mel, ckpt)], device=mel.device)
    z = model.encode(mel, src).mode()
    offset = None if voice.film_offset is None else voice.film_offset.to(mel.device)
    converted = model.decode(z, voice.condition.to(mel.device), offset)[..., : mel.shape[-1]]
    wave_out = (vocoder or vocoder_for(ckpt))(converted, length=wave.numel())[0].cpu()
    return wave_out, None if src is None else ckpt.speakers[int(src)]


# Input kept on each side of a streamed block: the bundled model's encoder and decoder see 54 log-mel frames (0.63 s)
# each way and the vocoder's network 21 more. Its encoder's instance norm and the vocoder's Griffin-Lim refinement
# see the window, not the utterance; the difference from offline conversion falls as the context grows (log-mel L1
# 0.078 at 0.75 s, 0.057 at 1.5 s on the 10-s test clip), and the crossfade hides the seams.
STREAM_CONTEXT = 1.0
STREAM_FADE = 0.05


def stream_processor(ckpt: Checkpoint, target: Voice | str | int, source: str | int | None = None,
                     vocoder: torch.nn.Module | None = None, pitch: str | float = "model", block: float = 0.5
                     ) -> tuple[Process, StreamConfig]:
    """What :mod:`.stream` needs to convert mono audio at the model's rate block by block (``--stream``)."""
    _require_speakers(ckpt)
    voice = target if isinstance(target, Voice) else table_voice(ckpt, target)
    synth = vocoder or vocoder_for(ckpt, prefer_trained=True)  # windows crossfaded: a phase that agrees across them
    if check_pitch(pitch) == "shift":
        raise ConfigError("--stream with --pitch shift: the register is measured on the whole input; give "
                          "--pitch model or a number of semitones")
    if source is None and ckpt.model.config.encoder_speaker:
        raise ConfigError("--stream: this model's encoder needs the source speaker, which is otherwise estimated "
                          "on the whole input; give --source-speaker")

    def process(x: np.ndarray) -> np.ndarray:
        return convert(torch.from_numpy(x[0]), ckpt, voice, source, synth, pitch)[0].numpy()[None]

    align = ckpt.mel.hop_length * ckpt.model.hop_factor
    return process, StreamConfig.seconds(ckpt.mel.sample_rate, block, STREAM_CONTEXT, STREAM_FADE, align)
