"""Anomalous sound detection by reconstruction: a model trained on normal sounds only scores each frame by how
badly it reconstructs it; a clip's score pools the frames (plus, where ``fit`` added them, the machine lines'
exceedance: :mod:`audiovae.machine_lines`); a threshold set on held-out normal clips decides.

    detector = Detector(load_checkpoint("fan.safetensors"))
    result = detector.score_file("clip.wav")        # result.score, result.anomalous, result.frames

The detector's settings (:class:`DetectorSettings`: what a frame's score is, how frames pool, the threshold and
the percentile of held-out normal scores it came from, the machine type) live in the checkpoint's ``info`` under
``"anomaly"``, written by :func:`audiovae.training.anomaly.fit_detector`; any model with ``frame_scores`` can be a
detector (a VAE of the family, or the DCASE baseline :class:`~audiovae.models.dense.DenseAE`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from .. import audio
from ..checkpoint import Checkpoint
from ..errors import AudiovaeError, ConfigError
from ..fileio import atomic_path, write_atomic
from .latent import logmel

SCORES = ("recon", "nelbo")


def check_pooling(pooling: str) -> str:
    """``mean``, ``max`` or ``pNN`` (a percentile of the frame scores, 0 < NN < 100)."""
    m = re.fullmatch(r"p(\d{1,2}(?:\.\d+)?)", pooling)
    if pooling not in ("mean", "max") and (m is None or not 0 < float(m.group(1)) < 100):
        raise ConfigError(f"pooling {pooling!r} must be mean, max or pNN (a percentile, e.g. p90)")
    return pooling


def pool(frames: np.ndarray, pooling: str) -> float:
    """One clip score from its frame scores."""
    if pooling == "mean":
        return float(np.mean(frames))
    if pooling == "max":
        return float(np.max(frames))
    return float(np.percentile(frames, float(check_pooling(pooling)[1:])))


def check_percentile(percentile: float) -> float:
    """A threshold percentile: strictly between 0 and 100."""
    if not 0 < percentile < 100:
        raise ConfigError(f"threshold percentile {percentile} must be in (0, 100)")
    return percentile


def threshold_at(normal_scores: np.ndarray | list[float], percentile: float) -> float:
    """The decision threshold: the ``percentile`` of held-out normal clip scores (so about ``100 - percentile`` %
    of normal clips are flagged)."""
    scores = np.asarray(normal_scores, dtype=np.float64)
    if scores.size == 0:
        raise ConfigError("no held-out normal clips to set the threshold on")
    return float(np.percentile(scores, check_percentile(percentile)))


@dataclass
class DetectorSettings:
    """How a detector scores and decides; stored in the checkpoint (``info["anomaly"]``).

    Attributes:
        score: ``recon`` (mean squared error of a frame, normalised units) or ``nelbo`` (negative ELBO per frame:
            with ``recon: nll`` the error is weighed by each band's learnt scale, so bands that are noisy in normal
            sound count less).
        pooling: frames -> clip: ``mean``, ``max`` or ``pNN``.
        threshold: clip score above which a clip is anomalous (``None`` until set).
        percentile: the percentile of held-out normal scores the threshold was set at.
        machine: the machine type it was trained on (``""``: any); evaluation scores that type's clips with it.
        unit: the one machine of that type it was trained on (``""``: every unit); evaluation scores that unit's
            clips with it, before any detector of the whole type.
        edge_frames: frames left out of the pooling at each end of a clip (where the STFT's padding and the
            model's receptive field see past the clip), when the clip has more than four times as many.
        normal: summary of the held-out normal scores (count, mean, std) the threshold came from.
        config: the name of the run config the model was trained from.
        selection: when ``fit`` chose among several configs, each one's AUC (and pAUC) on the valid split's
            anomalous clips, or on faults injected into the held-out normal clips (then per kind of fault too); and
            ``"<config> + machine lines"``: the kept config with machine lines added, judged the same way.
        chosen: which config ``fit`` kept and why, in one line.
        lines: weight of the machine-lines exceedance added to the pooled frame score (0: off). Needs the
            checkpoint's ``lines`` component (:class:`~audiovae.machine_lines.MachineLines`); ``fit`` of a few
            clips sets it to half the spread of the held-out normal clips' scores unless that scores the injected
            faults more than 0.01 lower (``training.anomaly.LINES_TOLERANCE``).
    """

    score: str = "recon"
    pooling: str = "mean"
    threshold: float | None = None
    percentile: float = 90.0
    machine: str = ""
    unit: str = ""
    edge_frames: int = 2
    normal: dict = field(default_factory=dict)
    config: str = ""
    selection: dict = field(default_factory=dict)
    chosen: str = ""
    lines: float = 0.0

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ConfigError(f"anomaly score {self.score!r} must be one of {', '.join(SCORES)}")
        check_pooling(self.pooling)
        check_percentile(self.percentile)
        if not self.lines >= 0:
            raise ConfigError(f"machine-lines weight {self.lines} must be >= 0")

    @classmethod
    def of(cls, ckpt: Checkpoint) -> DetectorSettings:
        """The settings a checkpoint stores (keys of a later version ignored), or the defaults for a plain model."""
        stored = ckpt.info.get("anomaly")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in stored.items() if k in known}) if isinstance(stored, dict) else cls()

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ClipScore:
    """A clip's score, its decision (``None`` without a threshold), its frame scores and log-mel (for plots)."""

    score: float
    anomalous: bool | None
    frames: np.ndarray
    seconds: float
    logmel: torch.Tensor


class Detector:
    """A loaded checkpoint used as an anomaly detector. ``overrides`` replace stored settings (e.g. ``pooling``)."""

    def __init__(self, ckpt: Checkpoint, **overrides) -> None:
        self.ckpt = ckpt
        try:
            self.settings = replace(DetectorSettings.of(ckpt), **overrides)
        except TypeError as e:
            raise ConfigError(f"detector settings: {e}") from None
        if self.settings.lines > 0 and "lines" not in ckpt.components:
            raise ConfigError(f"detector settings: machine-lines weight {self.settings.lines:g}, but the checkpoint "
                              "carries no machine lines")

    @property
    def sample_rate(self) -> int:
        return self.ckpt.mel.sample_rate

    @torch.no_grad()
    def score(self, wave: torch.Tensor) -> ClipScore:
        """Score a mono waveform at the model's rate."""
        model = self.ckpt.model
        model.eval()
        mel = logmel(wave, self.ckpt)
        frames = model.frame_scores(mel, self.settings.score)[0].float().cpu().numpy()
        edge = self.settings.edge_frames
        value = pool(frames[edge: len(frames) - edge] if len(frames) > 4 * edge else frames, self.settings.pooling)
        if self.settings.lines > 0:  # __init__ made sure the checkpoint carries the lines
            value += self.settings.lines * self.ckpt.components["lines"].score(wave.detach().cpu().float().numpy(),
                                                                                self.sample_rate)
        t = self.settings.threshold
        return ClipScore(value, None if t is None else value > t, frames, wave.numel() / self.sample_rate,
                         mel[0].cpu())

    def score_file(self, path: str | os.PathLike[str]) -> ClipScore:
        """Score an audio file (any format, rate, channels); unreadable or too short: ``AudioError``."""
        wave, _ = audio.load(path, self.sample_rate, min_samples=self.ckpt.mel.min_samples)
        return self.score(wave)



@dataclass
class FileScore:
    """One file of :func:`score_source`: its score, or the error that stopped it; the plot written, if any."""

    path: Path
    result: ClipScore | None
    error: str = ""
    plot: Path | None = None

    @property
    def peak_seconds(self) -> float:
        """When in the clip the frame score is highest."""
        return float(np.argmax(self.result.frames)) * self.result.seconds / max(len(self.result.frames), 1)


def score_source(detector: Detector, source: str | os.PathLike[str], plot_dir: str | os.PathLike[str] | None = None,
                 on_file: Callable[[FileScore, int, int], None] | None = None) -> list[FileScore]:
    """Score a file or every audio file under a folder; with ``plot_dir``, a ``<stem>_anomaly.png`` per file
    (log-mel above frame scores; a folder's tree is mirrored). A file that cannot be read is recorded with its
    error and the rest are scored; plot destinations are all checked before the first file (as for any batch)."""
    from ..plots import anomaly_png
    from .batch import audio_files, plan

    src = Path(source)
    if not src.exists():
        raise AudiovaeError(f"{src}: no such file or folder")
    if plot_dir is not None:
        out = Path(plot_dir)
        out.mkdir(parents=True, exist_ok=True)
        name = lambda p: f"{p.stem}_anomaly.png"  # noqa: E731
        jobs, _ = plan(src, name, None if src.is_dir() else out / name(src), out)
        files, plots = [j.source for j in jobs], [j.output for j in jobs]
    else:
        files = audio_files(src) if src.is_dir() else [src]
        plots = [None] * len(files)
        if not files:
            raise AudiovaeError(f"{src}: no audio files in this folder")
    results = []
    for i, (path, png) in enumerate(zip(files, plots, strict=True), 1):
        try:
            result = detector.score_file(path)
            if png is not None:
                png.parent.mkdir(parents=True, exist_ok=True)
                verdict = "" if result.anomalous is None else (" - ANOMALOUS" if result.anomalous else " - normal")
                image = anomaly_png(result.logmel, result.frames, detector.ckpt.mel,
                                    detector.settings.threshold, f"{path.name}: score {result.score:.4g}{verdict}")
                write_atomic(png, image)
            item = FileScore(path, result, plot=png)
        except AudiovaeError as e:
            item = FileScore(path, None, str(e))
        results.append(item)
        if on_file is not None:
            on_file(item, i, len(files))
    return results


def write_csv(path: str | os.PathLike[str], results: list[FileScore], settings: DetectorSettings) -> Path:
    """One row per scored file: file, score, decision, threshold, duration and the time of the highest frame
    score (files that failed are left out; they were reported)."""
    import csv

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "score", "anomalous", "threshold", "pooling", "seconds", "peak_seconds"])
        for r in results:
            if r.result is None:
                continue
            c = r.result
            w.writerow([str(r.path), f"{c.score:.6g}", "" if c.anomalous is None else int(c.anomalous),
                        "" if settings.threshold is None else f"{settings.threshold:.6g}", settings.pooling,
                        f"{c.seconds:.3f}", f"{r.peak_seconds:.3f}"])
    return Path(path)
