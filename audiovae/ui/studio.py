"""What the web page does, without the web: a catalogue of models, checked uploads, and one method per tab.

Each method calls the same Python API the CLI and scripts use (:mod:`audiovae.api`, itself a thin layer over
:mod:`audiovae.pipelines`) and returns what a page shows: audio as WAV bytes and pictures as PNG bytes. Nothing here
knows about HTTP (that is :mod:`audiovae.ui.server`), so all of it is testable without a browser.

Uploads are written to a private scratch folder only while a request needs them (``soundfile`` reads paths, and
error messages then name the uploaded file, not the scratch path); the folder is removed by :meth:`Studio.close`.

Each tab's method reports what it is doing to a :class:`Progress` (its stage, and its step where a loop can count
them: the one-shot voice fit's optimiser steps, the music clips) and stops with :class:`Cancelled` when that progress
is cancelled: checked between stages and after every step (cooperative; a stage that is one call into the API runs
to its end, and none of them takes more than a few seconds on a CPU).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, is_dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .. import api, audio
from ..errors import AudiovaeError, ConfigError
from ..pipelines.batch import output_name
from ..pipelines.convert import Voice
from ..pipelines.denoise import METHODS
from ..pipelines.latent import logmel
from ..pipelines.voices import steps_of
from ..plots import curves_png, logmels_png
from ..pretrained import BUNDLED, bundled_path
from ..vocoders import VOCODERS

DENOISE_METHODS = tuple(m for m in METHODS if m != "prior")  # prior: a clean-speech VAE, minutes per file: CLI only
MUSIC_MODES = ("sample", "walk", "interpolate")
MAX_REFERENCES = 3
REFERENCE_METHOD = "adapt"  # the one-shot fit the page runs (the API's default)
# The example inputs the page's "Example" buttons load: the bundled clip (``audiovae example`` writes the same file),
# and for the Denoise tab that clip in noise, made here (the package ships no noisy recording).
EXAMPLES = {"example.wav": "the bundled example: 5 s of synthetic speech at 22.05 kHz",
            "example_noisy.wav": "the bundled example in white noise at 5 dB SNR (seed 0: the same file every time)"}
NOISY_SNR_DB = 5.0


class UploadError(AudiovaeError):
    """An upload the page cannot use (empty, too big, too long, not audio); the message is shown on the page."""


class Cancelled(AudiovaeError):
    """The job was cancelled (from the page's Cancel button) and stopped at its next check."""


class Progress:
    """A job's progress, read by another thread (the page polls it), and its cancellation, requested from another
    thread and acted on by the job itself at :meth:`check` (between stages, after every counted step)."""

    def __init__(self) -> None:
        self._state: tuple[str, int, int] = ("waiting for the server", 0, 0)  # one tuple: read and written whole
        self._cancel = threading.Event()
        self.started = time.perf_counter()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def check(self) -> None:
        if self._cancel.is_set():
            stage, step, total = self._state
            raise Cancelled(f"cancelled while {stage}" + (f" (step {step} of {total})" if total else ""))

    def stage(self, name: str, total: int = 0) -> None:
        """A new stage (``total``: its steps, 0 where they are not counted); a cancelled job stops here."""
        self.check()
        self._state = (name, 0, total)

    def advance(self) -> None:
        """One step of the stage done; a cancelled job stops here."""
        name, step, total = self._state
        self._state = (name, step + 1, total)
        self.check()

    def snapshot(self) -> dict:
        stage, step, total = self._state
        return {"stage": stage, "step": step, "total": total,
                "elapsed_s": round(time.perf_counter() - self.started, 2)}


@contextmanager
def counting_steps(progress: Progress) -> Iterator[None]:
    """Every optimiser step taken on this thread while the block runs (the one-shot voice fit's Adam steps) advances
    ``progress``, and stops a cancelled job: a global torch hook, so the fit's code needs no callback of its own."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    owner = threading.get_ident()

    def hook(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        if threading.get_ident() == owner:  # another thread's optimiser is none of this job's business
            progress.advance()

    handle = register_optimizer_step_post_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; stated on the page and enforced here (and, for the whole request's size, by
    the server as the body arrives)."""

    max_upload_mb: float = 25.0
    max_seconds: float = 120.0  # per uploaded clip
    max_music_seconds: float = 60.0  # per generated clip
    max_count: int = 8  # music clips per request

    @property
    def max_request_mb(self) -> float:
        """One request's body: a source and the most references, each at the upload limit, plus the form fields."""
        return (1 + MAX_REFERENCES) * self.max_upload_mb + 1.0


@dataclass(frozen=True)
class Upload:
    """A file as the browser sent it."""

    filename: str
    data: bytes


@dataclass
class Clip:
    """One audio result: a WAV file to play and download."""

    name: str
    wav: bytes
    seconds: float
    sample_rate: int


@dataclass
class Result:
    """What a tab shows after a run: clips, pictures (PNG) by title, and notes (warnings about the input)."""

    clips: list[Clip]
    images: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Entry:
    """A model the page offers: bundled (by name) or a checkpoint found under ``--models``."""

    name: str
    path: Path
    bundled: bool


def _task(model: api.Model) -> str:
    return ("convert" if isinstance(model, api.VoiceConverter) else "denoise"
            if isinstance(model, api.SpeechDenoiser) else "music" if isinstance(model, api.MusicGenerator)
            else "model")


def discover(models_dir: str | Path | None) -> list[Entry]:
    """The bundled models, then every ``*.safetensors`` under ``models_dir``, named by their path inside it (a
    training run's ``model.safetensors`` by its run folder)."""
    entries = [Entry(name, bundled_path(name), True) for name in BUNDLED if bundled_path(name).is_file()]
    if models_dir is None:
        return entries
    root = Path(models_dir)
    if not root.is_dir():
        raise ConfigError(f"--models {root}: no such folder")
    taken = {e.name for e in entries}
    for path in sorted(root.rglob("*.safetensors")):
        rel = path.relative_to(root)
        name = str(rel.parent if rel.name == "model.safetensors" and rel.parent != Path(".") else rel.with_suffix(""))
        while name in taken:
            name += "'"
        taken.add(name)
        entries.append(Entry(name, path, False))
    return entries


def _renamed(text: str, uploads: dict[Path, str]) -> str:
    """A message about staged files with each scratch path replaced by the name the file was uploaded as."""
    for path, name in uploads.items():
        text = text.replace(str(path), name)
    return text


def _safe_suffix(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".bin"


def _safe(text: str) -> str:
    """A browser-given name reduced to what is safe in a file name and a URL."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:60] or "audio"


def _output(filename: str, tag: str) -> str:
    """The CLI's output name for ``filename`` (``<stem>_<tag>.wav``), made safe."""
    return output_name(_safe(tag))(Path(_safe(Path(filename).stem) + ".wav"))


class Studio:
    """The models and the work behind ``audiovae ui``. Not thread-safe: the server runs one request at a time."""

    def __init__(self, models_dir: str | Path | None = None, device: str = "auto", limits: Limits | None = None
                 ) -> None:
        self.limits = limits or Limits()
        self.device = device
        self.entries = {e.name: e for e in discover(models_dir)}
        self.scratch = Path(tempfile.mkdtemp(prefix="audiovae-ui-"))
        self._models: dict[str, api.Model] = {}
        self._examples: dict[str, bytes] = {}

    # --- models ---------------------------------------------------------------------------------------------------
    def model(self, name: str) -> api.Model:
        """A model by catalogue name, loaded once."""
        if name not in self.entries:
            raise ConfigError(f"no model named {name!r} (available: {', '.join(self.entries)})")
        if name not in self._models:
            self._models[name] = api.load(self.entries[name].path, self.device)
        return self._models[name]

    def catalogue(self) -> list[dict]:
        """One row per model, for the page's menus and the Models tab. Every model is loaded here (the server builds
        this once, at start, so the first request is as fast as the rest); one that fails to load is listed with
        its error instead of stopping the server."""
        rows = []
        for name, entry in self.entries.items():
            row: dict = {"name": name, "bundled": entry.bundled, "path": str(entry.path)}
            try:
                m = self.model(name)
            except AudiovaeError as e:
                rows.append(row | {"task": "error", "error": str(e)})
                continue
            ckpt = m.checkpoint
            cfg = ckpt.model.config
            row |= {"task": _task(m), "about": BUNDLED.get(name, ""),
                    "summary": {k: v for k, v in ckpt.summary().items() if k != "speakers"},
                    "mel": asdict(ckpt.mel), "config": asdict(cfg) if is_dataclass(cfg) else {},
                    "speakers": m.describe() if isinstance(m, api.VoiceConverter) else [],
                    "one_shot": bool(ckpt.speakers),
                    "info": {k: v for k, v in ckpt.info.items() if k != "pitch"},  # pitch: per-speaker numbers
                    "curve": self._log_path(entry) is not None}
            rows.append(row)
        return rows

    @staticmethod
    def _log_path(entry: Entry) -> Path | None:
        """The log of the training run that wrote this checkpoint: its folder's log.csv, beside model.safetensors."""
        from ..training.engine import LOG_FILE, MODEL_FILE

        log = entry.path.parent / LOG_FILE
        return log if not entry.bundled and entry.path.name == MODEL_FILE and log.is_file() else None

    def curve(self, name: str) -> bytes | None:
        """The training curves of a model trained in a run folder (its ``log.csv``), as PNG; ``None`` without one
        (the bundled files hold no log)."""
        from ..training.logging import read_log

        if name not in self.entries:
            raise ConfigError(f"no model named {name!r}")
        log = self._log_path(self.entries[name])
        return None if log is None else curves_png(read_log(log), title=name)

    # --- examples -------------------------------------------------------------------------------------------------
    def example(self, name: str) -> bytes:
        """An example input as WAV bytes (:data:`EXAMPLES`): the bundled clip, or that clip in white noise at
        :data:`NOISY_SNR_DB` (seeded, so the same file every time; scaled down together if the sum would clip)."""
        if name not in EXAMPLES:
            raise ConfigError(f"no example named {name!r} (available: {', '.join(EXAMPLES)})")
        if name not in self._examples:
            with resources.as_file(resources.files("audiovae") / "assets" / "example.wav") as path:
                data = path.read_bytes()
                if name == "example_noisy.wav":
                    tensor, rate = audio.load(path)
                    wave = tensor.numpy()
                    noise = np.random.default_rng(0).standard_normal(wave.shape).astype(np.float32)
                    noise *= np.sqrt(np.mean(wave ** 2) / np.mean(noise ** 2)) * 10 ** (-NOISY_SNR_DB / 20)
                    noisy = wave + noise
                    data = audio.wav_bytes(noisy * min(1.0, 0.95 / float(np.abs(noisy).max())), rate)
            self._examples[name] = data
        return self._examples[name]

    # --- uploads --------------------------------------------------------------------------------------------------
    @contextmanager
    def staged(self, upload: Upload) -> Iterator[Path]:
        """``upload`` as a file in the scratch folder for as long as the block runs; size and duration checked."""
        name = upload.filename or "upload"
        if not upload.data:
            raise UploadError(f"{name}: the file is empty")
        if len(upload.data) > self.limits.max_upload_mb * 1e6:
            raise UploadError(f"{name}: {len(upload.data) / 1e6:.1f} MB is over the {self.limits.max_upload_mb:g} MB "
                              "upload limit")
        path = self.scratch / f"{uuid.uuid4().hex}{_safe_suffix(name)}"
        try:
            path.write_bytes(upload.data)
            try:
                seconds = audio.info(path).duration
            except AudiovaeError as e:
                raise UploadError(_renamed(str(e), {path: name})) from None
            if seconds > self.limits.max_seconds:
                raise UploadError(f"{name}: {seconds:.1f} s is over the {self.limits.max_seconds:g} s limit per clip")
            yield path
        finally:
            path.unlink(missing_ok=True)

    @contextmanager
    def _reading(self, uploads: dict[Path, str], notes: list[str]) -> Iterator[None]:
        """Errors and warnings from reading staged files, with the uploaded name in place of the scratch path."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield
            except AudiovaeError as e:
                e.args = (_renamed(str(e), uploads),)  # the same error, naming the uploaded file
                raise
            finally:
                notes += list(dict.fromkeys(_renamed(str(w.message), uploads) for w in caught))

    def _spectrogram(self, m: api.Model, panels: Sequence[tuple[str, torch.Tensor]]) -> bytes:
        return logmels_png([(title, logmel(w, m.checkpoint)[0]) for title, w in panels], m.checkpoint.mel)

    def _clip(self, name: str, wave: torch.Tensor, rate: int) -> Clip:
        return Clip(name, audio.wav_bytes(wave, rate), wave.shape[-1] / rate, rate)

    def _typed(self, name: str, task: str) -> api.Model:
        m = self.model(name)
        if _task(m) != task:
            raise ConfigError(f"model {name!r} is a {_task(m)} model, not a {task} model")
        return m

    # --- the tabs -------------------------------------------------------------------------------------------------
    def convert(self, source: Upload, model: str = "voice_conversion", speaker: str | None = None,
                references: Sequence[Upload] = (), pitch: str = "model", vocoder: str | None = None,
                progress: Progress | None = None) -> Result:
        """Convert ``source`` into ``speaker`` of ``model`` or into the voice of ``references`` (one-shot: the
        voice is fitted first, its optimiser steps counted in ``progress``)."""
        p = progress or Progress()
        p.stage("loading the model")
        m = self._typed(model, "convert")
        if len(references) > MAX_REFERENCES:
            raise UploadError(f"give at most {MAX_REFERENCES} reference recordings (got {len(references)})")
        if vocoder and vocoder not in VOCODERS:  # names only: a web request never names a file to load
            raise ConfigError(f"unknown vocoder {vocoder!r}; choose one of: {', '.join(sorted(VOCODERS))}")
        vc = api.VoiceConverter(m.checkpoint, vocoder or None)
        notes: list[str] = []
        with ExitStack() as stack:
            src = stack.enter_context(self.staged(source))
            refs = [stack.enter_context(self.staged(r)) for r in references]
            names = {src: source.filename} | {path: r.filename for path, r in zip(refs, references, strict=True)}
            with self._reading(names, notes):
                p.stage("reading the input")
                wave = vc.load_audio(src)
                voice: str | Voice | None = speaker or None
                if refs:
                    p.stage("fitting the reference voice", steps_of(REFERENCE_METHOD))
                    with counting_steps(p):
                        voice = vc.voice(refs, method=REFERENCE_METHOD)
                p.stage("converting")
                out, rate = vc.convert(wave, voice, pitch=pitch, sample_rate=vc.sample_rate)
        p.stage("drawing the spectrogram")
        target = str(speaker) if not refs else Path(references[0].filename).stem or "reference"
        png = self._spectrogram(vc, [(f"input: {source.filename}", wave), (f"converted to {target}", out)])
        return Result([self._clip(_output(source.filename, target), out, rate)], {"spectrogram": png}, notes)

    def denoise(self, source: Upload, model: str = "denoise", strength: float = 1.0, method: str = "mask",
                progress: Progress | None = None) -> Result:
        """Denoise ``source`` at its own rate and channel count."""
        p = progress or Progress()
        p.stage("loading the model")
        m = self._typed(model, "denoise")
        if method not in DENOISE_METHODS:
            raise ConfigError(f"method {method!r}: choose {' or '.join(DENOISE_METHODS)}")
        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"strength {strength}: give a value from 0 to 1")
        notes: list[str] = []
        with self.staged(source) as src, self._reading({src: source.filename}, notes):
            p.stage("reading the input")
            noisy, rate = audio.load(src, mono=False)
            p.stage("denoising")
            clean, _ = m.denoise(noisy, strength=strength, sample_rate=rate, method=method)
        p.stage("drawing the spectrogram")
        sr = m.sample_rate
        mono = [torch.from_numpy(audio.resample(w.mean(dim=0).numpy(), rate, sr)) for w in (noisy, clean)]
        png = self._spectrogram(m, [(f"input: {source.filename}", mono[0]), (f"denoised (strength {strength:g})",
                                                                             mono[1])])
        return Result([self._clip(_output(source.filename, "denoised"), clean, rate)], {"spectrogram": png}, notes)

    def music(self, model: str = "music", mode: str = "sample", seed: int = 0, seconds: float = 10.0,
              temperature: float = 1.0, count: int = 1, a: Upload | None = None, b: Upload | None = None,
              steps: int = 5, path: str = "linear", progress: Progress | None = None) -> Result:
        """Prior samples (``count`` clips, seeds ``seed + i``), a latent random walk, or an interpolation from
        upload ``a`` to upload ``b``."""
        p = progress or Progress()
        p.stage("loading the model")
        m = self._typed(model, "music") if mode != "interpolate" else self.model(model)
        lim = self.limits
        if mode not in MUSIC_MODES:
            raise ConfigError(f"mode {mode!r}: choose {', '.join(MUSIC_MODES)}")
        if mode == "interpolate":
            if a is None or b is None:
                raise UploadError("interpolation needs two clips, A and B")
            if not 2 <= steps <= 16:
                raise ConfigError(f"steps {steps}: give 2 to 16")
            notes: list[str] = []
            with self.staged(a) as pa, self.staged(b) as pb, self._reading({pa: a.filename, pb: b.filename}, notes):
                p.stage("interpolating")
                wave, rate = m.interpolate(pa, pb, steps, path)
            p.stage("drawing the spectrogram")
            name = _output(a.filename, f"to_{Path(b.filename).stem}")
            return Result([self._clip(name, wave, rate)],
                          {"spectrogram": self._spectrogram(m, [(f"{steps} steps, {path}", wave)])}, notes)
        if not 0.1 <= seconds <= lim.max_music_seconds:
            raise ConfigError(f"seconds {seconds:g}: give 0.1 to {lim.max_music_seconds:g}")
        if not 1 <= count <= lim.max_count:
            raise ConfigError(f"count {count}: give 1 to {lim.max_count}")
        if mode == "walk":
            p.stage("walking the latent space")
            wave, rate = m.walk(seconds, temperature, seed)
            clips = [(f"walk_{seed:03d}.wav", wave)]
        else:
            clips = []
            p.stage("sampling clips", count)
            for i in range(count):  # one at a time, as the CLI: memory does not grow with the count
                waves, rate = m.sample(1, seconds, temperature, seed + i)
                clips.append((f"sample_{seed + i:03d}.wav", waves[0]))
                p.advance()
        p.stage("drawing the spectrogram")
        png = self._spectrogram(m, clips[:4])  # a picture of the first few: enough to see what came out
        return Result([self._clip(name, w, rate) for name, w in clips], {"spectrogram": png})

    def close(self) -> None:
        """Remove the scratch folder."""
        shutil.rmtree(self.scratch, ignore_errors=True)


def options() -> dict:
    """Choices for the page's menus that depend on what is installed."""
    return {"vocoders": sorted(VOCODERS)}
