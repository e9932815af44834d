"""The ``audiovae`` command: parse, call a library function, report. No logic lives here that the API lacks."""

from __future__ import annotations

import functools
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from . import __version__
from .errors import AudiovaeError

app = typer.Typer(
    name="audiovae",
    help="Variational autoencoders for audio: voice conversion, denoising, music generation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

F = TypeVar("F", bound=Callable[..., object])

DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu or cuda.")]
OutOpt = Annotated[Path, typer.Option("--output", "-o", help="Output file.", dir_okay=False)]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"audiovae: error: {message}", err=True)
    return typer.Exit(code)


def command(fn: F) -> F:
    """Register ``fn`` as a command whose expected failures end in one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AudiovaeError as e:
            raise _fail(str(e)) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
        except MemoryError:
            raise _fail("out of memory (try a shorter input or --device cpu)") from None

    app.command(help=fn.__doc__)(wrapper)
    return fn


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"audiovae: warning: {message}", file=sys.stderr)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"audiovae {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Variational autoencoders for audio: voice conversion, denoising, music generation.

    Every command takes -h/--help with an example.
    """
    warnings.showwarning = _show_warning


def _seconds(s: float) -> str:
    return f"{s:.2f} s" if s < 120 else f"{int(s // 60)} min {s % 60:04.1f} s"


@command
def info(path: Annotated[Path, typer.Argument(help="An audio file.")]) -> None:
    """Describe an audio file: duration, sample rate, channels, format, peak and RMS level.

    Example: audiovae info speech.wav
    """
    from .audio import info as audio_info

    i = audio_info(path)
    typer.echo(f"{i.path}\n"
               f"  duration     {_seconds(i.duration)} ({i.frames} frames)\n"
               f"  sample rate  {i.sample_rate} Hz\n"
               f"  channels     {i.channels}\n"
               f"  format       {i.format} / {i.subtype}\n"
               f"  peak         {i.peak_dbfs:.1f} dBFS\n"
               f"  RMS          {i.rms_dbfs:.1f} dBFS"
               + (f"\n  clipped      {i.clipped_samples} samples at full scale" if i.clipped_samples else ""))


@command
def example(output: OutOpt = Path("example.wav")) -> None:
    """Write the bundled example clip (5 s of synthetic speech, 22.05 kHz) to try the other commands on.

    Example: audiovae example -o example.wav && audiovae resynth example.wav -o out.wav
    """
    from .fileio import atomic_path

    src = resources.files("audiovae") / "assets" / "example.wav"
    with resources.as_file(src) as p, atomic_path(output) as tmp:
        shutil.copyfile(p, tmp)
    typer.echo(f"wrote {output}")


@command
def resynth(
    input: Annotated[Path, typer.Argument(help="Audio file to analyse and resynthesise.")],
    output: OutOpt,
    n_iter: Annotated[int, typer.Option("--n-iter", min=0, help="Griffin-Lim iterations.")] = 32,
    momentum: Annotated[float, typer.Option(min=0.0, max=0.999,
                                            help="Fast Griffin-Lim momentum (0 = classic).")] = 0.99,
    seed: Annotated[int, typer.Option(help="Seed of the random initial phase.")] = 0,
    device: DeviceOpt = "auto",
) -> None:
    """Wave -> log-mel -> Griffin-Lim -> wave: the analysis-synthesis baseline every model is compared with.

    The output is at the model rate (22.05 kHz), mono, 16-bit unless the extension says otherwise.

    Example: audiovae resynth speech.wav -o speech_gl.wav --n-iter 64
    """
    from . import audio
    from .device import resolve_device
    from .features import MelConfig
    from .fileio import check_output_path
    from .pipelines.resynth import resynthesize
    from .vocoders import GriffinLim

    config = MelConfig()
    dev = resolve_device(device)
    check_output_path(output)
    wave, sr = audio.load(input, config.sample_rate, min_samples=config.min_samples)
    t0 = time.perf_counter()
    vocoder = GriffinLim(config, n_iter=n_iter, momentum=momentum, seed=seed).to(dev)
    out = resynthesize(wave, vocoder, progress=True)
    elapsed = time.perf_counter() - t0
    audio.save(output, out, sr)
    seconds = wave.numel() / sr
    typer.echo(f"wrote {output} ({_seconds(seconds)}, {seconds / max(elapsed, 1e-9):.0f}x realtime on {dev})")


@command
def plot(
    input: Annotated[Path, typer.Argument(help="Audio file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file to write.", dir_okay=False)],
    title: Annotated[str | None, typer.Option(help="Figure title (default: the file name).")] = None,
) -> None:
    """Plot the log-mel spectrogram of a file as a PNG with labelled time and frequency axes.

    Example: audiovae plot speech.wav -o speech.png
    """
    from . import audio
    from .features import MelConfig, MelSpectrogram
    from .fileio import check_output_path
    from .plots import plot_logmel

    config = MelConfig()
    check_output_path(output)
    wave, _ = audio.load(input, config.sample_rate, min_samples=config.min_samples)
    plot_logmel(output, MelSpectrogram(config)(wave), config, title=title or input.name)
    typer.echo(f"wrote {output}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
