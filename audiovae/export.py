"""Export a checkpoint's networks to TorchScript or ONNX, so they run outside Python, and prove them equal.

A model checkpoint exports four graphs, each a pure tensor function with a dynamic batch and number of frames:

* ``frontend``: waveform ``[B, T]`` at the model's rate -> log-mel ``[B, n_mels, frames]`` (the STFT as a strided
  convolution with a windowed DFT basis, so the graph needs no complex numbers and no FFT operator);
* ``encoder``: log-mel -> posterior mean ``[B, latent_dim, frames / hop_factor]``;
* ``decoder``: latents (and, for a speaker-conditioned model, a speaker vector ``[B, speaker_dim]``: a row of the
  table in ``export.json``, or a voice file's ``embedding``; and offsets to its FiLM modulations ``[B, film_width]``:
  zeros, or an adapted voice file's ``film_offset``) -> log-mel; for a model with ``output: log_gain`` (the denoiser)
  -> a log-gain ``g``, the clean log-mel being ``input_logmel + log(sigmoid(g + 3))`` (``decoder_output`` in
  ``export.json`` says which); a denoiser with a gain refiner also takes that ``input_logmel`` (``logmel``);
* ``vocoder``: log-mel -> waveform ``[B, (frames - 1) * hop]``, when the model's vocoder is a network (the network's
  own waveform: the Griffin-Lim refinement a bundled vocoder may add at inference is not part of the graph).

A vocoder file exports ``frontend`` and ``vocoder``. ``export.json`` beside the graphs lists every input and output,
the front end's parameters, the speakers and the measured difference from PyTorch.

**The check.** Every graph is loaded back (``torch.jit.load``; ``onnxruntime``) and run on the bundled example clip
and its reversal (a batch of two), then on a shorter cut of one of them; its output must match the library's own
path within :data:`TOLERANCE` (largest absolute difference), or the export fails and nothing is written.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import __version__
from .checkpoint import Checkpoint, NoModelError, load_checkpoint, load_vocoder
from .errors import AudiovaeError, ConfigError
from .features import MelConfig, MelSpectrogram, hann_window
from .fileio import _umask, write_failure
from .models.vae import GAIN_BIAS
from .pretrained import STREAM_VOCODER, resolve_model
from .vocoders import Vocoder

FORMATS = ("torchscript", "onnx")
PARTS = ("frontend", "encoder", "decoder", "vocoder")
SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}
# Largest absolute difference allowed between an exported graph and PyTorch, per part. Log-mel and latents are in
# nats / standardised units, waveforms in samples of full scale 1. The front end's is the loosest: in bands within a
# few dB of the log floor (1e-5), float32 round-off of two different STFT algorithms is a visible fraction of the
# magnitude (a chirp's quiet bands differ by up to 6e-3 nats; speech by 2e-4; the mean is 1e-4).
DECODER_OUTPUTS = {
    "logmel": "log-mel (nats)",
    "log_gain": f"log-gain g per band and frame, not a log-mel: the clean log-mel is input_logmel + "
                f"log(sigmoid(g + {GAIN_BIAS:g})), the gain on the input sigmoid(g + {GAIN_BIAS:g}) in (0, 1)"}
TOLERANCE = {"frontend": 1e-2, "encoder": 1e-3, "decoder": 1e-3, "vocoder": 1e-4}


class ExportError(AudiovaeError):
    """A checkpoint cannot be exported, or its export does not compute what PyTorch computes."""


# ---------------------------------------------------------------------------------------------------- graph modules
class FrontEnd(nn.Module):
    """Waveform ``[B, T]`` -> log-mel ``[B, n_mels, frames]``, equal to :class:`MelSpectrogram` to round-off.

    The STFT is a strided ``conv1d`` whose kernels are the windowed cosines and sines of the DFT bins the mel
    filterbank uses, so the graph has only convolutions, a padding and matrix products."""

    def __init__(self, config: MelConfig) -> None:
        super().__init__()
        c = self.config = config
        mel = MelSpectrogram(c)  # its filterbank up to the last bin it uses (above f_max the DFT is not needed)
        angle = _angles(c, mel.n_used_bins)
        basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * _frame_window(c)  # [2 * used, n_fft]
        self.register_buffer("basis", basis.float()[:, None, :])
        self.register_buffer("mel_fb", mel.mel_fb_used)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        c = self.config
        x = wave.unsqueeze(1)
        if c.center:
            x = nn.functional.pad(x, (c.n_fft // 2, c.n_fft // 2), mode=c.pad_mode)
        re, im = nn.functional.conv1d(x, self.basis, stride=c.hop_length).chunk(2, dim=1)
        mag = torch.sqrt(re * re + im * im)
        if c.power != 1.0:
            mag = mag.pow(c.power)
        return torch.log(torch.clamp(self.mel_fb @ mag, min=c.log_floor))


def _frame_window(c: MelConfig) -> torch.Tensor:
    """The analysis window centred in an ``n_fft`` frame (float64), as :func:`audiovae.features.istft` pads it."""
    left = (c.n_fft - c.win_length) // 2
    return nn.functional.pad(hann_window(c).double(), (left, c.n_fft - c.win_length - left))


def _angles(c: MelConfig, bins: int) -> torch.Tensor:
    """``2 pi k n / n_fft`` for DFT bins ``k < bins`` and frame samples ``n`` (float64), ``[bins, n_fft]``."""
    n = torch.arange(c.n_fft, dtype=torch.float64)
    return 2 * math.pi * torch.arange(bins, dtype=torch.float64)[:, None] * n / c.n_fft


def overlap_add_istft(mag: torch.Tensor, phase: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """Inverse STFT of magnitude and phase ``[B, n_freqs, frames]`` -> ``[B, (frames - 1) * hop]``, in real
    arithmetic: the inverse DFT as a matrix product, the overlap-add as a transposed convolution. Equal to
    :func:`audiovae.features.istft` (a centred STFT) to float32 round-off."""
    c = config
    n_fft, hop = c.n_fft, c.hop_length
    window = _frame_window(c)
    weight = torch.full((c.n_freqs, 1), 2.0, dtype=torch.float64)  # each bin but DC and Nyquist stands for two
    weight[0] = 1.0
    if n_fft % 2 == 0:
        weight[-1] = 1.0
    angle = _angles(c, c.n_freqs)
    cos = (weight * torch.cos(angle) / n_fft * window).float().to(mag.device)  # [n_freqs, n_fft]
    sin = (-weight * torch.sin(angle) / n_fft * window).float().to(mag.device)
    frames = (mag * torch.cos(phase)).transpose(1, 2) @ cos + (mag * torch.sin(phase)).transpose(1, 2) @ sin
    eye = torch.eye(n_fft, device=mag.device)[:, None, :]
    out = nn.functional.conv_transpose1d(frames.transpose(1, 2), eye, stride=hop)  # [B, 1, (F - 1) * hop + n_fft]
    win_sq = (window.float().to(mag.device) ** 2)[None, :, None].expand(1, n_fft, frames.shape[1])
    envelope = nn.functional.conv_transpose1d(win_sq, eye, stride=hop)
    out = out / torch.clamp(envelope, min=1e-11)
    return out[:, 0, n_fft // 2: out.shape[-1] - n_fft // 2]


class EncoderGraph(nn.Module):
    """Log-mel -> posterior mean (the latents every command uses)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.model.encode(logmel).mode()


class DecoderGraph(nn.Module):
    """Latents (and a speaker vector and FiLM offsets) -> log-mel."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, speaker: torch.Tensor | None = None, film_offset: torch.Tensor | None = None
                ) -> torch.Tensor:
        return self.model.decode(z, speaker, film_offset)


class RefinedDecoderGraph(nn.Module):
    """Latents and the input log-mel -> the log-gain of a denoiser with a gain refiner (the decoder's gain corrected
    frame by frame from the input it applies to)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, logmel: torch.Tensor) -> torch.Tensor:
        gain = self.model.decode(z)[..., : logmel.shape[-1]]
        return self.model.refiner(gain, self.model.normalize(logmel[..., : gain.shape[-1]]))


class VocoderGraph(nn.Module):
    """Log-mel -> the neural vocoder network's waveform (no Griffin-Lim refinement)."""

    def __init__(self, vocoder: Vocoder) -> None:
        super().__init__()
        self.vocoder = vocoder

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        mag, phase = self.vocoder.polar(logmel)
        return overlap_add_istft(mag, phase, self.vocoder.config)


# ------------------------------------------------------------------------------------------------------ the export
@dataclass
class Graph:
    """One part to export: the module traced, the library's own path it must equal, example inputs (names, and
    the axes that vary)."""

    module: nn.Module
    reference: Callable[..., torch.Tensor]
    args: tuple[torch.Tensor, ...]
    names: list[str]
    dynamic: dict[str, dict[int, str]]
    output: list[str]


@dataclass
class ExportedPart:
    name: str
    file: str
    inputs: dict[str, list[str]]
    outputs: dict[str, list[str]]
    max_abs_error: float
    tolerance: float


@dataclass
class ExportReport:
    """What :func:`export` wrote: the folder, each part with its measured error, and notes (parts left out)."""

    out_dir: Path
    format: str
    parts: list[ExportedPart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _plain(module: nn.Module) -> nn.Module:
    """A float32, eval-mode copy without gradients. (Weight norm stays a parametrisation: removing it from a copy
    would remove it from the class the original shares.)"""
    module = copy.deepcopy(module).float().eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


@contextlib.contextmanager
def _quiet():
    """The exporters' progress lines and deprecation chatter are not the user's business."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _example_wave(config: MelConfig) -> torch.Tensor:
    """A batch of two real-speech waveforms ``[2, T]``: the bundled example clip (5 s) and its reversal. Two, so
    that the exporter cannot take the batch size for a constant."""
    from . import audio

    with resources.as_file(resources.files("audiovae") / "assets" / "example.wav") as p:
        wave, _ = audio.load(p, config.sample_rate)
    return torch.stack([wave, wave.flip(-1)])


def _save(graph: nn.Module, args: tuple[torch.Tensor, ...], names: list[str], dynamic: dict[str, dict[int, str]],
          fmt: str, path: Path) -> None:
    with _quiet(), torch.no_grad():
        if fmt == "torchscript":
            traced = torch.jit.trace(graph, args, check_trace=False)
            buffer = io.BytesIO()  # torch.jit.save aborts the process when the disk fills; Python raises OSError
            torch.jit.save(traced, buffer)
            path.write_bytes(buffer.getvalue())
            return
        shapes = tuple({axis: torch.export.Dim.DYNAMIC for axis in dynamic[name]} if name in dynamic else None
                       for name in names)
        torch.onnx.export(graph, args, str(path), input_names=names, output_names=["output"], dynamo=True,
                          dynamic_shapes=shapes, external_data=False, verbose=False)


def _runner(fmt: str, path: Path, names: list[str]) -> Callable[[tuple[torch.Tensor, ...]], torch.Tensor]:
    """The exported file, loaded once, as a function of its inputs."""
    if fmt == "torchscript":
        module = torch.jit.load(str(path))

        def run_torchscript(args: tuple[torch.Tensor, ...]) -> torch.Tensor:
            with torch.no_grad():
                return module(*args)

        return run_torchscript
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run_onnx(args: tuple[torch.Tensor, ...]) -> torch.Tensor:
        feeds = {name: a.numpy() for name, a in zip(names, args, strict=True)}
        return torch.from_numpy(np.asarray(session.run(None, feeds)[0]))

    return run_onnx


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _check_available(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt}: give {' or '.join(FORMATS)}")
    if fmt == "onnx":
        missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if not _importable(m)]
        if missing:
            raise ExportError(f"ONNX export needs {', '.join(missing)}: pip install 'audiovae[export]'")


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def export(checkpoint: str | os.PathLike[str], out_dir: str | os.PathLike[str], fmt: str = "onnx",
           parts: list[str] | None = None, vocoder: str | None = None, force: bool = False) -> ExportReport:
    """Export ``checkpoint`` (a model or a vocoder file) as ``fmt`` into ``out_dir``, check every graph against
    PyTorch, and write ``export.json``. ``parts`` defaults to all the file has; ``vocoder`` is ``--vocoder``
    (default: the model's own). The folder appears whole or not at all; an existing one is replaced only with
    ``force``."""
    from .pipelines.vocoder_choice import vocoder_for

    _check_available(fmt)
    out = Path(out_dir)
    if out.exists() and not (out.is_dir() and (force or not any(out.iterdir()))):
        raise ExportError(f"{out}: exists" + (" and is not a folder" if not out.is_dir()
                                             else " and is not empty (use --force to replace it)"))
    if not out.parent.is_dir():
        raise ExportError(f"{out}: output folder {out.parent} does not exist")
    unknown = sorted(set(parts or []) - set(PARTS))
    if unknown:
        raise ConfigError(f"--parts {','.join(unknown)}: unknown (choose from {', '.join(PARTS)})")

    bundled_vocoder = str(checkpoint) == "vocoder" and not Path(checkpoint).exists()
    path = STREAM_VOCODER if bundled_vocoder else resolve_model(checkpoint)
    _check_replaceable(out, [path] + ([Path(vocoder)] if vocoder and Path(vocoder).exists() else []))
    ckpt: Checkpoint | None
    try:
        ckpt = load_checkpoint(path)
        mel, voc = ckpt.mel, vocoder_for(ckpt, vocoder, prefer_trained=True)  # a network, where one fits
    except NoModelError:
        ckpt, voc = None, load_vocoder(path)
        mel = voc.config
    wanted = list(parts or PARTS)
    report = ExportReport(out, fmt)
    graphs: dict[str, Graph] = {}
    wave = _example_wave(mel)
    logmel = MelSpectrogram(mel)(wave)
    if "frontend" in wanted:
        graphs["frontend"] = Graph(FrontEnd(mel), MelSpectrogram(mel), (wave,), ["wave"],
                                   {"wave": {0: "batch", 1: "samples"}}, ["batch", str(mel.n_mels), "frames"])
    speakers: dict[str, list[float]] = {}
    if ckpt is not None:
        model, original = _plain(ckpt.model), ckpt.model.float().eval()
        if getattr(model.config, "encoder_speaker", False):
            raise ExportError(f"{path}: its encoder is speaker-conditioned; only the decoder's conditioning is "
                              "exported (train with model.encoder_speaker=false)")
        with torch.no_grad():
            z = model.encode(logmel).mode().contiguous()  # a view of the posterior: strides would be traced
        if "encoder" in wanted:
            graphs["encoder"] = Graph(EncoderGraph(model), EncoderGraph(original), (logmel,), ["logmel"],
                                      {"logmel": {0: "batch", 2: "frames"}},
                                      ["batch", str(z.shape[1]), "latent_frames"])
        if "decoder" in wanted:
            args: tuple[torch.Tensor, ...] = (z,)
            names = ["z"]
            dynamic: dict[str, dict[int, str]] = {"z": {0: "batch", 2: "latent_frames"}}
            if ckpt.speakers:
                table = model.speakers.weight.detach()
                speakers = {name: [round(float(v), 7) for v in row] for name, row in zip(ckpt.speakers, table,
                                                                                         strict=True)}
                # offsets on the scale of an adapted voice's (std 0.78 measured), so that the check exercises them
                seed = torch.Generator().manual_seed(0)
                offset = 0.8 * torch.randn(2, model.decoder.film_width, generator=seed)
                args, names = (z, table[:2].clone(), offset), ["z", "speaker", "film_offset"]
                dynamic |= {"speaker": {0: "batch"}, "film_offset": {0: "batch"}}
            decoder: type[nn.Module] = DecoderGraph
            if getattr(model, "refiner", None) is not None:  # its gain also reads the input log-mel
                decoder, args, names = RefinedDecoderGraph, (z, logmel), ["z", "logmel"]
                dynamic |= {"logmel": {0: "batch", 2: "frames"}}
            graphs["decoder"] = Graph(decoder(model), decoder(original), args, names,
                                      dynamic, ["batch", str(mel.n_mels), "frames"])
    elif any(p in wanted for p in ("encoder", "decoder")) and parts:
        raise ExportError(f"{path}: a vocoder file has no encoder or decoder")
    if "vocoder" in wanted:
        pghi = ("its vocoder's phase comes from PGHI or unrolled Griffin-Lim iterations, which no graph holds; "
                "pass --vocoder with a network that predicts its phase")
        if voc.network and not voc.exportable:
            if parts or ckpt is None:
                raise ExportError(f"{path}: {pghi}")
            report.notes.append(f"vocoder: not exported ({pghi})")
        elif voc.network:  # exportable: it has polar() and generate() (Vocoder.exportable)
            graphs["vocoder"] = Graph(VocoderGraph(_plain(voc)), voc.float().eval().generate, (logmel,), ["logmel"],
                                      {"logmel": {0: "batch", 2: "frames"}}, ["batch", "samples"])
        elif parts:
            raise ExportError(f"{path}: its vocoder is {voc.vocoder_type}, not a network; pass --vocoder neural or "
                              "a vocoder file")
        else:
            report.notes.append(f"vocoder: {voc.vocoder_type} is not a network; not exported (--vocoder neural or "
                                "PATH exports a neural one)")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for name, graph in graphs.items():
            report.parts.append(_export_part(name, graph, fmt, tmp, out))
        manifest = _manifest(report, path, mel, speakers, ckpt)
        (tmp / "export.json").write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the result is an ordinary folder
        old = None
        if out.exists():  # --force: the old folder goes aside, the new one in, then the old one away
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _check_replaceable(out: Path, inputs: list[Path]) -> None:
    """``--force`` replaces a folder of earlier exports, never one that holds what is being exported, nor the
    working folder or one above it."""
    target = out.resolve()
    if target == Path.cwd().resolve() or target in Path.cwd().resolve().parents:
        raise ExportError(f"{out}: is the working folder or holds it; export into a folder of its own")
    for given in inputs:
        if given.resolve().is_relative_to(target):
            raise ExportError(f"{out}: holds {given}, the file being exported; export into a folder of its own")


def _export_part(name: str, part: Graph, fmt: str, folder: Path, out: Path) -> ExportedPart:
    """Export one graph into ``folder`` (becoming ``out``), run the file back on two inputs and compare with the
    library's own path."""
    file = folder / f"{name}{SUFFIX[fmt]}"
    graph, args, names, dynamic = part.module.eval(), part.args, part.names, part.dynamic
    try:
        _save(graph, args, names, dynamic, fmt, file)
    except OSError as e:  # a full disk
        raise write_failure(out, e) from None
    except Exception as e:  # the exporters raise many types; the message names the part
        raise ExportError(f"{name}: {fmt} export failed: {_first_line(e)}") from e
    error = 0.0
    try:
        run = _runner(fmt, file, names)
    except Exception as e:  # onnxruntime's and torch.jit's own errors: the file is not usable as written
        raise ExportError(f"{name}: the exported graph does not load: {_first_line(e)}") from e
    for trial in _trials(args, dynamic, names):
        with torch.no_grad():
            expected = part.reference(*trial)
        try:
            got = run(trial)
        except Exception as e:
            raise ExportError(f"{name}: the exported graph does not run: {_first_line(e)}") from e
        if got.shape != expected.shape:
            raise ExportError(f"{name}: the exported graph gives shape {tuple(got.shape)} where PyTorch gives "
                              f"{tuple(expected.shape)}")
        diff = (got - expected).abs().nan_to_num(nan=math.inf)  # a NaN anywhere is a failure, not a 0
        error = max(error, float(diff.max()))
    if not error <= TOLERANCE[name]:
        raise ExportError(f"{name}: the exported graph differs from PyTorch by up to {error:.2e} "
                          f"(tolerance {TOLERANCE[name]:.0e})")
    shapes = {n: _axes(a, dynamic.get(n, {})) for n, a in zip(names, args, strict=True)}
    return ExportedPart(name, file.name, shapes, {"output": part.output}, error, TOLERANCE[name])


def _axes(a: torch.Tensor, dynamic: dict[int, str]) -> list[str]:
    return [dynamic.get(i, str(a.shape[i])) for i in range(a.ndim)]


def _trials(args: tuple[torch.Tensor, ...], dynamic: dict[str, dict[int, str]], names: list[str]
            ) -> list[tuple[torch.Tensor, ...]]:
    """The example itself (a batch of two) and a shorter cut of its second item alone: another batch size and
    another length than those exported, not a multiple of the encoder's hop factor."""
    short = []
    for n, a in zip(names, args, strict=True):
        for axis in dynamic.get(n, {}):
            keep = 1 if axis == 0 else a.shape[axis] * 5 // 8 // 4 * 4 + 1
            a = a.narrow(axis, a.shape[axis] - 1 if axis == 0 else 0, keep)
        short.append(a.contiguous())
    return [args, tuple(short)]


def _manifest(report: ExportReport, source: Path, mel: MelConfig, speakers: dict[str, list[float]],
              ckpt: Checkpoint | None) -> dict:
    parts = {p.name: {"file": p.file, "inputs": p.inputs, "outputs": p.outputs,
                      "max_abs_error": float(f"{p.max_abs_error:.3g}"), "tolerance": p.tolerance}
             for p in report.parts}
    doc = {"audiovae": __version__, "source": str(source), "format": report.format, "parts": parts,
           "mel": mel.to_dict(), "notes": report.notes}
    if ckpt is not None:
        doc |= {"task": ckpt.task, "model": ckpt.model.model_type, "hop_factor": ckpt.model.hop_factor}
        doc["latent_frames"] = f"ceil(frames / {ckpt.model.hop_factor}); the decoder gives {ckpt.model.hop_factor} " \
                               "log-mel frames per latent frame (cut them to the input's)"
        doc["decoder_output"] = DECODER_OUTPUTS[getattr(getattr(ckpt.model, "config", None), "output", "logmel")]
        if getattr(ckpt.model, "refiner", None) is not None:
            doc["decoder_output"] += "; the decoder also reads input_logmel (its input `logmel`: a gain refiner)"
    if speakers:
        doc["speakers"] = speakers
    return doc
