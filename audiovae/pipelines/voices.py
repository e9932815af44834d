"""One-shot voices: a voice outside a model's speaker table, made from a few seconds of recordings of it.

A speaker-conditioned decoder takes its voice as a vector (``speaker_dim`` floats) that every decoder block turns into
a FiLM modulation, and the table's rows are only the points it was trained on. Four ways to make a voice outside the
table are here (``method``):

* ``adapt`` (the default): ``fit`` (below, 150 steps), then the voice is allowed an offset to each decoder block's
  FiLM modulation (2,048 numbers for the bundled architecture), fitted the same way (200 steps): the decoder's
  conditioning space was only ever trained on the table's rows, and off them a vector alone keeps too much of the
  source voice. The model's weights stay as they are.
* ``fit``: analysis-by-synthesis. The references' content is encoded once (the encoder is trained to drop the
  voice), then the voice vector alone is optimised so that decoding that content reproduces the references' log-mel
  (L1), the model frozen. It starts from the better of the speaker encoder's embedding and the best-matching table
  row and ends below both in reconstruction error. A plain vector: what an exported decoder takes as its speaker.
* ``blend``: the same, but searching only mixtures (convex combinations) of the table's rows.
* ``encoder``: the speaker encoder trained with the model (``model.speaker_encoder``): one forward pass, but it
  was only taught to land on the table's rows, so for a voice unlike them it lands near one of them.

Measured with ``audiovae evaluate vc --one-shot`` on two voices left out of training (recipes/voice_conversion/
README.md, "One-shot"), ``adapt`` is ahead on every count: 98 % of the (source, target) pairs come out closer to the
unheard target than to the source (resemblyzer; 89 % on a second draw of sentences), against 70 % for ``fit`` and
under 40 % for ``blend`` and ``encoder``; similarity to the target 0.769 against 0.702, 0.619 and 0.612; MCD 3.20 dB
against 3.33–3.49. Hence the default.

A fitted voice is saved as a small safetensors file (:func:`save_voice`): its vector, its FiLM offsets (``adapt``),
its register and the fingerprint of the model it was fitted to (of its decoder's FiLM layers too, for offsets), so
``audiovae convert SRC --speaker voice.safetensors`` reuses it without refitting and a voice of another model is
refused with a one-line error.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..checkpoint import Checkpoint
from ..device import fast_float
from ..errors import AudiovaeError, ConfigError
from ..fileio import write_atomic
from ..models.layers import FiLM
from ..pitch import Register, voice_register
from .convert import Voice, _require_speakers, table_voice
from .latent import logmel

METHODS = ("adapt", "fit", "blend", "encoder")
FIT_STEPS = 400  # measured: resemblyzer similarity 0.702 at 400 steps, 0.705 at 600 for 1.75 x the time
# adapt: the vector first, in fewer steps (the offsets take it further), then the FiLM offsets (unregularised: the
# step count is what keeps them near the decoder's trained range). Measured on 7 s of reference: 150 + 200 steps
# reach the similarity of 400 + 200 (0.769) in 12 s against 26 s; offsets alone (300 steps) scored the same, 0.770.
ADAPT_VECTOR_STEPS = 150
ADAPT_STEPS = 200
ADAPT_LR = 0.01
FIT_LR = 0.05
# Seconds of the references' content that one step of a fit decodes (None: all of it; see _FitWindows). Measured
# with the bundled model into 6 unheard real speakers (13-17 s of reference, 2-core AVX2, fp32): adapt took 9.2 s
# instead of 28.7 s, resemblyzer similarity 0.689 against 0.690 (README, "One-shot").
FIT_CROP_SECONDS: float | None = 4.0
MIN_REFERENCE_SECONDS = 3.0
VOICE_FORMAT = "audiovae-voice"
VOICE_VERSION = 2  # 2: an adapted voice's FiLM offsets (``film_offset``); a vector alone is still written as version 1


class VoiceFileError(AudiovaeError):
    """A voice file that is unreadable, of another format, or fitted to another model."""


def reference_seconds(references: Sequence[torch.Tensor], sample_rate: int) -> float:
    return sum(w.numel() for w in references) / sample_rate


def check_references(references: Sequence[torch.Tensor], sample_rate: int, names: Sequence[str] = ()) -> None:
    """One or more recordings (one to three is typical), :data:`MIN_REFERENCE_SECONDS` in all."""
    if not references:
        raise ConfigError("no reference recordings given")
    seconds = reference_seconds(references, sample_rate)
    if seconds < MIN_REFERENCE_SECONDS:
        what = ", ".join(str(n) for n in names) or f"{len(references)} reference(s)"
        raise ConfigError(f"{what}: {seconds:.1f} s of reference speech; a voice needs at least "
                          f"{MIN_REFERENCE_SECONDS:g} s (about 10 s is better)")


@torch.inference_mode()
def encoder_embedding(references: Sequence[torch.Tensor], ckpt: Checkpoint) -> torch.Tensor:
    """``[1, speaker_dim]``: the mean of the speaker encoder's embedding of each reference."""
    _require_speakers(ckpt)
    if getattr(ckpt.model, "speaker_encoder", None) is None:
        raise ConfigError("this model has no speaker encoder, so --method encoder is not available; use --method "
                          "adapt (the default) or fit")
    return _mean_embedding(ckpt.model, [logmel(w, ckpt) for w in references])


def _mean_embedding(model: torch.nn.Module, mels: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([model.embed_speaker(m) for m in mels]).mean(dim=0, keepdim=True)


def _reconstruction_error(model: torch.nn.Module, zs: list[torch.Tensor], mels: list[torch.Tensor],
                          voice: torch.Tensor, film_offset: torch.Tensor | None = None, margin: int = 0
                          ) -> torch.Tensor:
    """Mean L1 over the references between their log-mel and their content decoded with ``voice`` (``[B, D]``,
    one error per row) and ``film_offset``, leaving out ``margin`` log-mel frames at each end."""
    errors = []
    for z, mel in zip(zs, mels, strict=True):
        out = model.decode(z.expand(voice.shape[0], -1, -1), voice, film_offset)[..., : mel.shape[-1]]
        if margin:
            out, mel = out[..., margin: -margin], mel[..., margin: -margin]  # noqa: PLW2901
        errors.append((out.float() - mel).abs().mean(dim=(1, 2)))
    return torch.stack(errors).mean(dim=0)


class _FitWindows:
    """Each optimisation step sees one window of at most :data:`FIT_CROP_SECONDS` of the references' content (a
    reference drawn in proportion to its length, the window at random in it, all of it when shorter; seeded, so a
    fit is repeatable), not all of it: a step costs what its frames cost, and the steps together still see every
    reference. Each latent frame decodes to ``hop_factor`` log-mel frames. The decoder's convolutions see past a
    window's edges (zero padding there instead of the neighbouring content), so the frames near them decode a little
    differently from a decoding of the whole reference; the first and last latent frame's log-mel frames stay out of
    the loss, the rest are scored as decoded. Measured against whole references, the fitted voices convert as well
    (see :data:`FIT_CROP_SECONDS`)."""

    def __init__(self, model: torch.nn.Module, content: Content, seconds: float | None, frame_rate: float) -> None:
        self.mels, self.zs = content
        self.hop = model.hop_factor
        lengths = torch.tensor([float(z.shape[-1]) for z in self.zs])
        width = None if seconds is None else max(4, round(seconds * frame_rate / self.hop))  # latent frames
        self.width = None if width is None or lengths.sum() <= width else width  # None: every step sees it all
        self.weights = lengths / lengths.sum()
        self.generator = torch.Generator().manual_seed(0)

    def whole(self) -> bool:
        """All the content fits one step's window (or windows are off)."""
        return self.width is None

    def draw(self) -> tuple[list[torch.Tensor], list[torch.Tensor], int]:
        """``(zs, mels, margin)`` of this step: the content, its log-mel and the log-mel frames at each end to leave
        out of the loss."""
        if self.whole():
            return self.zs, self.mels, 0
        i = int(torch.multinomial(self.weights, 1, generator=self.generator))
        z, mel = self.zs[i], self.mels[i]
        width = min(self.width, z.shape[-1])
        start = int(torch.randint(0, z.shape[-1] - width + 1, (1,), generator=self.generator))
        mel = mel[..., start * self.hop: (start + width) * self.hop]
        return [z[..., start: start + width]], [mel], min(self.hop, (mel.shape[-1] - 1) // 2)

    def error(self, model: torch.nn.Module, voice: torch.Tensor, film_offset: torch.Tensor | None = None
              ) -> torch.Tensor:
        """This step's :func:`_reconstruction_error` (mean over rows)."""
        zs, mels, margin = self.draw()
        return _reconstruction_error(model, zs, mels, voice, film_offset, margin).mean()


def fit_embedding(references: Sequence[torch.Tensor], ckpt: Checkpoint, steps: int = FIT_STEPS, lr: float = FIT_LR,
                  blend: bool = False) -> torch.Tensor:
    """``[1, speaker_dim]``: the voice vector whose decoding of the references' content matches them best.

    ``blend`` searches only mixtures of the table's voices (convex combinations of its rows) instead of the whole
    space.
    """
    _require_speakers(ckpt)
    model = ckpt.model
    with fast_float(model.mel_mean.device):
        return _fit(model, _content(model, references, ckpt), steps, lr, blend, ckpt.mel.frame_rate)


Content = tuple[list[torch.Tensor], list[torch.Tensor]]


def _content(model: torch.nn.Module, references: Sequence[torch.Tensor], ckpt: Checkpoint) -> Content:
    """The references' log-mel and encoded content (posterior means), as tensors autograd can use."""
    with torch.inference_mode():
        mels = [logmel(w, ckpt) for w in references]
        zs = [model.encode(m, None).mode() for m in mels]
    return [m.clone() for m in mels], [z.clone() for z in zs]  # out of inference mode, for autograd


def _optimise(param: torch.Tensor, loss: Callable[[torch.Tensor], torch.Tensor], steps: int, lr: float
              ) -> torch.Tensor:
    """Adam on ``param`` alone (the model's own gradients are never computed, so it is left untouched).

    The loss sees a copy: under autocast a leaf that requires grad is cast to bf16 once and cached until the context
    ends (the cache is meant for weights), so it would never see the steps taken on ``param`` itself.
    """
    param = param.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([param], lr=lr)
    for _ in range(steps):
        (grad,) = torch.autograd.grad(loss(param.clone()), [param])
        param.grad = grad
        optimiser.step()
    return param.detach()


def _fit(model: torch.nn.Module, content: Content, steps: int, lr: float, blend: bool, frame_rate: float
         ) -> torch.Tensor:
    table = model.speakers.weight.detach().float()
    mels, zs = content
    with torch.inference_mode():
        starts = [table]
        if getattr(model, "speaker_encoder", None) is not None and not blend:
            starts.append(_mean_embedding(model, mels).float())
        candidates = torch.cat(starts)
        best = int(_reconstruction_error(model, zs, mels, candidates).argmin())
    if blend:  # logits of the mixture, starting on the best row
        start = torch.nn.functional.one_hot(torch.tensor(best), len(table)).float()[None].mul(4.0)
    else:
        start = candidates[best].clone()[None]

    def voice_of(p: torch.Tensor) -> torch.Tensor:
        return p.softmax(dim=-1) @ table if blend else p

    crops = _FitWindows(model, content, FIT_CROP_SECONDS, frame_rate)
    param = _optimise(start, lambda p: crops.error(model, voice_of(p)), steps, lr)
    return voice_of(param)


def _adapt(model: torch.nn.Module, content: Content, embedding: torch.Tensor, steps: int, lr: float,
           frame_rate: float) -> torch.Tensor:
    embedding = embedding.float()
    start = torch.zeros(1, model.decoder.film_width, device=embedding.device)
    crops = _FitWindows(model, content, FIT_CROP_SECONDS, frame_rate)
    return _optimise(start, lambda p: crops.error(model, embedding, p), steps, lr)


def _adapted(references: Sequence[torch.Tensor], ckpt: Checkpoint, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``adapt``: the voice vector (:data:`ADAPT_VECTOR_STEPS`), then ``steps`` of its FiLM offsets (``[1,
    film_width]``, added to each decoder block's modulation), on one encoding of the references."""
    model = ckpt.model
    with fast_float(model.mel_mean.device):
        content = _content(model, references, ckpt)
        embedding = _fit(model, content, ADAPT_VECTOR_STEPS, FIT_LR, False, ckpt.mel.frame_rate)
        return embedding, _adapt(model, content, embedding, steps, ADAPT_LR, ckpt.mel.frame_rate)


def steps_of(method: str, steps: int | None = None) -> int:
    """The optimisation steps ``method`` takes (``steps`` or its default; the vector's and the offsets' for
    ``adapt``; none for ``encoder``)."""
    if method == "encoder":
        return 0
    if method == "adapt":
        return ADAPT_VECTOR_STEPS + (steps or ADAPT_STEPS)
    return steps or FIT_STEPS


def reference_voice(ckpt: Checkpoint, references: Sequence[torch.Tensor], name: str = "reference",
                    method: str = "adapt", steps: int | None = None, names: Sequence[str] = ()) -> Voice:
    """A voice outside the table from recordings of it (``[T]`` each at the model's rate): its vector (and, for
    ``adapt``, its FiLM offsets) and register. ``steps``: of the fit (``adapt``: of its offsets). ``names`` (the
    files) are what a too-short reference's error names."""
    _require_speakers(ckpt)
    if method not in METHODS:
        raise ConfigError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    check_references(references, ckpt.mel.sample_rate, names)
    offset = None
    if method == "encoder":
        embedding = encoder_embedding(references, ckpt)
    elif method == "adapt":
        embedding, offset = _adapted(references, ckpt, steps or ADAPT_STEPS)
    else:
        embedding = fit_embedding(references, ckpt, steps or FIT_STEPS, blend=method == "blend")
    if not all(bool(torch.isfinite(t).all()) for t in (embedding, offset) if t is not None):
        raise ConfigError(f"the {method} fit of {name} diverged (not finite); try --method fit or other references")
    return Voice(name, embedding.float(), voice_register(references, ckpt.mel), offset)


def _digest(tensors: Sequence[torch.Tensor]) -> str:
    """Rounded to fp16, so that a run's checkpoint and its fp16 export agree."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().half().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def model_fingerprint(ckpt: Checkpoint) -> str:
    """What a voice vector means depends on the decoder it was fitted to: its speaker table identifies it."""
    return _digest([ckpt.model.speakers.weight])


def film_fingerprint(ckpt: Checkpoint) -> str:
    """What FiLM offsets mean depends on the layers they are added to: their projections identify them."""
    return _digest([p for m in ckpt.model.decoder.modules() if isinstance(m, FiLM) for p in m.proj.parameters()])


def save_voice(voice: Voice, path: str | os.PathLike[str], ckpt: Checkpoint, **about: object) -> Path:
    """Write ``voice`` (a vector, not a table id) as safetensors; ``about`` goes into the metadata (JSON)."""
    from safetensors.torch import save

    if voice.in_table:
        raise ConfigError(f"{voice.name} is a speaker of the model's table: use --speaker {voice.name}")
    adapted = voice.film_offset is not None
    if adapted:
        _check_offset(voice.film_offset, ckpt, voice.name)
    meta = {"format": VOICE_FORMAT, "version": str(VOICE_VERSION if adapted else 1), "name": voice.name,
            "model": model_fingerprint(ckpt), "speaker_dim": str(voice.condition.shape[-1]),
            "register": json.dumps(voice.register.to_list() if voice.register else None),
            "about": json.dumps(about)}
    tensors = {"embedding": voice.condition}
    if adapted:
        tensors["film_offset"] = voice.film_offset
        meta["film"] = film_fingerprint(ckpt)
    data = save({k: v.detach().float().cpu().contiguous() for k, v in tensors.items()}, metadata=meta)
    path = Path(path)
    write_atomic(path, data)
    return path


def _check_offset(offset: torch.Tensor, ckpt: Checkpoint, what: object) -> None:
    """The decoder's own check (a voice holds one offset row), its error naming ``what``."""
    try:
        if offset.shape[0] != 1:
            raise ConfigError(f"FiLM offsets of shape {tuple(offset.shape)}, not one voice's")
        ckpt.model.decoder.check_film_offset(offset)
    except ConfigError as e:
        raise ConfigError(f"{what}: {e}") from None


def is_voice_file(spec: str | os.PathLike[str]) -> bool:
    return str(spec).endswith(".safetensors")


def load_voice(path: str | os.PathLike[str], ckpt: Checkpoint) -> Voice:
    """A voice written by :func:`save_voice` for this model; one-line errors for anything else."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise VoiceFileError(f"{path}: no such voice file (make one with `audiovae voice REF.wav -o {path.name}`)")
    try:
        with safe_open(path, "pt") as f:
            meta = f.metadata() or {}
            ours = meta.get("format") == VOICE_FORMAT
            tensors = {k: f.get_tensor(k) for k in f.keys()} if ours else {}  # noqa: SIM118 (safe_open has no iter)
    except (SafetensorError, OSError, ValueError) as e:
        raise VoiceFileError(f"{path}: not a readable voice file ({e})") from None
    if ours and (not meta.get("version", "").isdigit() or int(meta["version"]) > VOICE_VERSION):
        raise VoiceFileError(f"{path}: a voice file of version {meta.get('version')!r}; this audiovae reads "
                             f"versions up to {VOICE_VERSION} (upgrade audiovae)")
    if "embedding" not in tensors:
        raise VoiceFileError(f"{path}: not a voice file (a model checkpoint? voices are made by `audiovae voice`)")
    offset = tensors.get("film_offset")
    foreign_film = offset is not None and meta.get("film") != film_fingerprint(ckpt)
    if meta.get("model") != model_fingerprint(ckpt) or foreign_film:
        raise VoiceFileError(f"{path}: this voice was fitted to another model; fit it again for this one with "
                             "`audiovae voice REF.wav --model …`")
    if not all(bool(torch.isfinite(t).all()) for t in tensors.values()):
        raise VoiceFileError(f"{path}: the voice holds values that are not finite")
    if offset is not None:
        try:
            _check_offset(offset, ckpt, path)
        except ConfigError as e:
            raise VoiceFileError(str(e)) from None
    stored = json.loads(meta.get("register") or "null")
    device = ckpt.model.mel_mean.device
    return Voice(meta.get("name", path.stem), tensors["embedding"].float().to(device),
                 Register.from_list(stored) if stored else None,
                 None if offset is None else offset.float().to(device))


def target_voice(ckpt: Checkpoint, speaker: str | int | os.PathLike[str] | Voice) -> Voice:
    """A conversion target as the command line gives it: a table speaker (name or index), or a voice file."""
    if isinstance(speaker, Voice):
        return speaker
    if isinstance(speaker, os.PathLike) or (isinstance(speaker, str) and is_voice_file(speaker)):
        _require_speakers(ckpt)
        return load_voice(speaker, ckpt)
    return table_voice(ckpt, speaker)
