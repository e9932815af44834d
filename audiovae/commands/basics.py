"""Inspect: ``info``, ``example``, ``resynth``, ``plot``."""

from __future__ import annotations

import math
import shutil
import time
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from ._shared import INSPECT, DeviceOpt, OutOpt, VocoderOpt, _seconds, choice, command


@command("Describe an audio file or a checkpoint.", INSPECT)
def info(path: Annotated[Path, typer.Argument(help="An audio file or a model checkpoint (.safetensors).")]) -> None:
    """Describe an audio file (duration, rate, channels, format, levels) or a checkpoint (model, speakers, training).

    Examples: audiovae info speech.wav; audiovae info voice_conversion (a bundled model)
    """
    from ..pretrained import BUNDLED, resolve_model

    if path.suffix in (".safetensors", ".pt", ".ckpt") or (str(path) in BUNDLED and not path.exists()):
        _checkpoint_info(resolve_model(path))
        return
    from ..audio import info as audio_info

    i = audio_info(path)
    typer.echo(f"{i.path}\n"
               f"  duration     {_seconds(i.duration)} ({i.frames} frames)\n"
               f"  sample rate  {i.sample_rate} Hz\n"
               f"  channels     {i.channels}\n"
               f"  format       {i.format} / {i.subtype}\n"
               f"  peak         {i.peak_dbfs:.1f} dBFS\n"
               f"  RMS          {i.rms_dbfs:.1f} dBFS"
               + (f"\n  clipped      {i.clipped_samples} samples at full scale" if i.clipped_samples else ""))


def _register(values: list[float]) -> str:
    """A pitch register as the checkpoint stores it (natural-log F0: mean, standard deviation, median where
    recorded), in Hz and semitones."""
    mean, std, *median = values
    return f"median F0 {math.exp(median[0] if median else mean):.0f} Hz (s.d. {std * 12 / math.log(2):.1f} semitones)"


def _checkpoint_info(path: Path) -> None:
    from ..checkpoint import NoModelError, front_end, load_checkpoint, load_vocoder

    try:
        ckpt = load_checkpoint(path)
    except NoModelError:  # a vocoder file
        voc = load_vocoder(path)
        params = sum(p.numel() for p in voc.parameters()) / 1e6
        typer.echo(f"{path}\n  vocoder    {voc.vocoder_type}, {params:.2f} M parameters, trained\n"
                   f"  front end  {front_end(voc.config)}")
        return
    rows: list[tuple[str, object]] = list(ckpt.summary().items())
    rows += list(ckpt.info.items())
    width = max(len(k) for k, _ in rows)
    lines = [str(path)]
    for k, v in rows:
        if k == "pitch" and isinstance(v, dict):  # each speaker's register, stored as log-F0
            v = {name: _register(r) if isinstance(r, list) and len(r) >= 2 else r for name, r in v.items()}
        if isinstance(v, dict):  # e.g. the bundled model's voices and evaluation
            lines.append(f"  {k}")
            lines += [f"    {kk:<{width - 2}} " + (", ".join(f"{a}={b}" for a, b in vv.items()) if isinstance(vv, dict)
                                                else str(vv)) for kk, vv in v.items()]
            continue
        if isinstance(v, list) and len(v) > 8 and all(isinstance(x, int | float) for x in v):
            v = f"{len(v)} values, {min(v):.3g} to {max(v):.3g}"
        elif isinstance(v, float):
            v = f"{v:.4g}"
        lines.append(f"  {k:<{width}} {v}")
    typer.echo("\n".join(lines))


@command("Write the bundled example clip (5 s of speech).", INSPECT)
def example(output: OutOpt = Path("example.wav")) -> None:
    """Write the bundled example clip (5 s of synthetic speech, 22.05 kHz) to try the other commands on.

    Example: audiovae example -o example.wav && audiovae resynth example.wav -o out.wav
    """
    from ..fileio import atomic_path

    src = resources.files("audiovae") / "assets" / "example.wav"
    with resources.as_file(src) as p, atomic_path(output) as tmp:
        shutil.copyfile(p, tmp)
    typer.echo(f"wrote {output}")


@command("Wave -> log-mel -> vocoder -> wave: the baseline.", INSPECT)
def resynth(
    input: Annotated[Path, typer.Argument(help="Audio file to analyse and resynthesise.")],
    output: OutOpt,
    vocoder: VocoderOpt = None,
    n_iter: Annotated[int | None, typer.Option("--n-iter", min=0, help="Griffin-Lim iterations (default 32 for "
                                               "griffin-lim, 12 for mel-griffin-lim; without --vocoder it means "
                                               "griffin-lim).")] = None,
    momentum: Annotated[float | None, typer.Option(min=0.0, max=0.999, help="Fast Griffin-Lim momentum (default "
                                                   "0.99; 0 = classic).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of Griffin-Lim's random initial phase (default 0).")] = None,
    init: Annotated[str | None, typer.Option(help="Griffin-Lim's initial phase: random (griffin-lim's default) or "
                                             "pghi (phase-gradient heap integration, estimated from the magnitude; "
                                             "mel-griffin-lim's).", **choice("random", "pghi"))]
    = None,
    device: DeviceOpt = "auto",
) -> None:
    """Wave -> log-mel -> vocoder -> wave: the analysis-synthesis baseline every model is compared with.
    --n-iter, --momentum, --seed and --init set Griffin-Lim; without --vocoder they mean classic Griffin-Lim.

    The output is at the model rate (22.05 kHz), mono, 16-bit unless the extension says otherwise.

    Examples: audiovae resynth speech.wav -o speech_out.wav   (mel-griffin-lim);
    audiovae resynth speech.wav -o speech_gl.wav --n-iter 64   (classic Griffin-Lim);
    audiovae resynth speech.wav -o speech_neural.wav --vocoder neural
    """
    from .. import audio
    from ..device import resolve_device
    from ..features import MelConfig
    from ..fileio import check_output_path
    from ..pipelines.latent import choose_vocoder
    from ..pipelines.resynth import resynthesize

    config = MelConfig()
    dev = resolve_device(device)
    check_output_path(output, (input,))
    wave, sr = audio.load(input, config.sample_rate, min_samples=config.min_samples)
    t0 = time.perf_counter()
    settings = {k: v for k, v in (("n_iter", n_iter), ("momentum", momentum), ("seed", seed), ("init", init))
                if v is not None}
    synth = choose_vocoder(vocoder or ("griffin-lim" if settings else None), config, **settings).to(dev)
    out = resynthesize(wave, synth, progress=True)
    elapsed = time.perf_counter() - t0
    audio.save(output, out, sr)
    seconds = wave.numel() / sr
    typer.echo(f"wrote {output} ({_seconds(seconds)}, {synth.vocoder_type}, "
               f"{seconds / max(elapsed, 1e-9):.0f}x realtime on {dev})")


@command("Plot a file's log-mel spectrogram as a PNG.", INSPECT)
def plot(
    input: Annotated[Path, typer.Argument(help="Audio file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file to write.", dir_okay=False)],
    title: Annotated[str | None, typer.Option(help="Figure title (default: the file name).")] = None,
) -> None:
    """Plot the log-mel spectrogram of a file as a PNG with labelled time and frequency axes.

    Example: audiovae plot speech.wav -o speech.png
    """
    from .. import audio
    from ..features import MelConfig, MelSpectrogram
    from ..fileio import check_output_path
    from ..plots import plot_logmel

    config = MelConfig()
    check_output_path(output, (input,))
    wave, _ = audio.load(input, config.sample_rate, min_samples=config.min_samples)
    plot_logmel(output, MelSpectrogram(config)(wave), config, title=title or input.name)
    typer.echo(f"wrote {output}")

