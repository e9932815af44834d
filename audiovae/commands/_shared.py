"""What the command modules share: the ``audiovae`` app and its help panels, the option types, the one-line error
guard, and the helpers several commands use. Nothing here imports torch, so ``audiovae --help`` stays quick; command
bodies import what they need."""

from __future__ import annotations

import functools
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import typer.core

from .. import __version__
from ..errors import AudiovaeError

F = TypeVar("F", bound=Callable[..., object])

# The panels of `audiovae --help`, in this order; a panel's commands in the order they are registered.
VOICE, DENOISE, MUSIC, LATENT = "Voice", "Denoise", "Music", "Latent tools"
DATA, EVALUATE, EXPORT, INSPECT = "Training and data", "Evaluate and detect", "Export and page", "Inspect"
PANELS = (VOICE, DENOISE, MUSIC, LATENT, DATA, EVALUATE, EXPORT, INSPECT)


class _LiteralHelp:
    """Help shown as written. Typer renders help with Rich markup, which takes ``[export]`` in
    ``pip install 'audiovae[export]'`` or ``[dim, frames]`` for a style tag and drops it; the texts are escaped for the
    time of the rendering (a group's listing of its commands included) and restored after."""

    def format_help(self, ctx, formatter) -> None:  # noqa: ANN001 - click's
        if not getattr(typer.core, "HAS_RICH", True) or getattr(self, "rich_markup_mode", "rich") != "rich":
            return super().format_help(ctx, formatter)  # plain click help: nothing is read as markup
        from rich.markup import escape

        owners = [self, *self.params, *getattr(self, "commands", {}).values()]
        saved = [(o, a, getattr(o, a)) for o in owners for a in ("help", "short_help", "epilog")
                 if isinstance(getattr(o, a, None), str)]
        for owner, attr, text in saved:
            setattr(owner, attr, escape(text))
        try:
            return super().format_help(ctx, formatter)
        finally:
            for owner, attr, text in saved:
                setattr(owner, attr, text)


class LiteralCommand(_LiteralHelp, typer.core.TyperCommand):
    """A command whose help is shown as written (see :class:`_LiteralHelp`)."""


class LiteralGroup(_LiteralHelp, typer.core.TyperGroup):
    """A command group whose help, and its listing of commands, is shown as written; its commands are listed panel
    by panel, in the order of :data:`PANELS` (whatever the order the modules registering them were imported in)."""

    def list_commands(self, ctx) -> list[str]:  # noqa: ANN001 - click's
        rank = {panel: i for i, panel in enumerate(PANELS)}
        return sorted(super().list_commands(ctx),
                      key=lambda name: rank.get(getattr(self.commands[name], "rich_help_panel", None), -1))


app = typer.Typer(
    name="audiovae",
    help="Variational autoencoders for audio: voice conversion, denoising, music generation.",
    cls=LiteralGroup,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"audiovae: error: {message}", err=True)
    return typer.Exit(code)


def _guarded(fn: F) -> F:
    """Wrap ``fn`` so that expected failures end in one line on stderr and exit code 1, never a traceback."""

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
        except OSError as e:  # the last resort for the system's refusals (permissions, space) we did not foresee
            where = f"{e.filename}: " if e.filename else ""
            raise _fail(f"{where}{e.strerror or e}") from None

    return wrapper  # type: ignore[return-value]


def command(short: str, panel: str | None = None, *, on: typer.Typer = app, name: str | None = None
            ) -> Callable[[F], F]:
    """Register the decorated function as a command (of ``on``: the app, or a group from :func:`group`), guarded by
    :func:`_guarded`: its docstring is its help, ``short`` (a line) its entry in the list of commands, under
    ``panel``."""

    def register(fn: F) -> F:
        on.command(name, help=fn.__doc__, short_help=short, cls=LiteralCommand, rich_help_panel=panel)(_guarded(fn))
        return fn

    return register


def group(name: str, help: str, short: str, panel: str) -> typer.Typer:
    """A group of commands (``audiovae NAME ...``), listed as ``short`` under ``panel``."""
    sub = typer.Typer(help=help, cls=LiteralGroup, no_args_is_help=True)
    app.add_typer(sub, name=name, short_help=short, rich_help_panel=panel)
    return sub


def names_or_files(names: Callable[[], Sequence[str]]) -> Callable[[str], list[str]]:
    """A shell completion (``autocompletion=``) offering ``names()`` that start as typed; none, and the shell offers
    files (the scripts typer installs fall back to them)."""
    return lambda incomplete: [n for n in names() if n.startswith(incomplete)]


def choice(*values: str) -> dict[str, Any]:
    """``typer.Option`` settings for an option with a fixed set of values: listed in the help, checked when the
    command line is parsed (a usage error, exit code 2, naming the valid values) and offered by shell completion."""

    def parse(value: str) -> str:
        if value not in values:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(values)}")
        return value

    return {"metavar": f"[{'|'.join(values)}]", "autocompletion": names_or_files(lambda: values), "parser": parse}


DEVICES = ("auto", "cpu", "cuda")  # and cuda:N


def _device(value: str) -> str:
    if value.lower() in DEVICES or re.fullmatch(r"cuda:\d+", value.lower()):
        return value
    raise typer.BadParameter(f"{value!r} is not one of {', '.join(DEVICES)} or cuda:N (the Nth GPU)")


DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu or cuda.", parser=_device,
                                        metavar="[auto|cpu|cuda|cuda:N]",
                                        autocompletion=names_or_files(lambda: DEVICES))]
OutOpt = Annotated[Path, typer.Option("--output", "-o", help="Output file.", dir_okay=False)]
StreamOpt = Annotated[bool, typer.Option("--stream", help="Process in blocks with a fixed latency (block + "
                                         "lookahead), memory bounded by the block: for live use and for very long "
                                         "files.")]
BlockOpt = Annotated[float, typer.Option("--block", min=0.05, help="With --stream: seconds of audio out per step.")]
ModelOpt = Annotated[Path, typer.Option("--model", "-m", help="Checkpoint (.safetensors) from `audiovae train`, "
                                        "or a bundled model's name.", dir_okay=False)]
VCModelOpt = Annotated[Path, typer.Option("--model", "-m", help="Checkpoint (.safetensors) of a speaker-conditioned "
                                          "model, or a bundled model's name.", dir_okay=False)]


def vocoder_names() -> list[str]:
    """The registered vocoders' names, for completion: read from the registry when asked, so that importing the CLI
    (and ``--help``) does not import torch, and a vocoder added with ``register_vocoder`` is offered too."""
    from ..vocoders import VOCODERS

    return list(VOCODERS)


VocoderOpt = Annotated[str | None, typer.Option("--vocoder", help="What turns log-mels into audio: "
                                               "mel-griffin-lim (Griffin-Lim held to the log-mel, no training), "
                                               "griffin-lim (classic), neural (the bundled neural vocoder) or a "
                                               "vocoder file from `audiovae train vocoder`. Default: the model's own "
                                               "trained vocoder, else mel-griffin-lim. Streamed and chunked output "
                                               "use the bundled streaming network for the default and for neural "
                                               "(its phase lets windows crossfade).",
                                               autocompletion=names_or_files(vocoder_names))]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON.", dir_okay=False)]
SpeakerOpt = Annotated[str | None, typer.Option("--speaker", "-s", help="Speaker name or index (conditioned models; "
                                                "see `audiovae info CKPT`).")]
PoolingOpt = Annotated[str | None, typer.Option(help="How frame scores make a clip score: mean, max or pNN (a "
                                                "percentile, e.g. p90). Default: the detector's own.")]
WorkersOpt = Annotated[int, typer.Option(help="Parallel processes (0 = one per CPU core).", min=0)]


def _seconds(s: float) -> str:
    return f"{s:.2f} s" if s < 120 else f"{int(s // 60)} min {s % 60:04.1f} s"


def _config_names() -> list[str]:
    """The packaged configs (``audiovae/configs/*.yaml``), as :func:`audiovae.config.packaged_configs` finds them
    (that module imports torch; help texts are built at start-up)."""
    root = resources.files("audiovae").joinpath("configs")
    return sorted(p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml"))


# ------------------------------------------------------------------------------------------- models of a kind
def _kind(ckpt) -> str:  # noqa: ANN001 - a Checkpoint
    """What a checkpoint is, in words: ``a voice-conversion model``, ``a denoiser``, ..."""
    if ckpt.speakers:
        return "a voice-conversion model"
    if ckpt.task == "denoise":
        return "a denoiser"
    if ckpt.task == "anomaly":
        return "an anomaly detector"
    if ckpt.task == "music" or ckpt.prior is not None:
        return "a music model"
    return f"a {ckpt.model.model_type} model (task {ckpt.task})"


def _plain(ckpt, *others: str) -> bool:  # noqa: ANN001
    """No speakers, no learned prior, and a task that is none of ``others``."""
    return not ckpt.speakers and ckpt.prior is None and ckpt.task not in others


# what a command needs -> (does a checkpoint serve, what the error adds)
KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "a voice-conversion model": (lambda c: bool(c.speakers),
                                 "it has no speakers; train one with `audiovae train speech_cvae`"),
    "a denoiser": (lambda c: c.task == "denoise" and not c.speakers,
                   "train one with `audiovae train denoise_vae`, or use a VAE of clean speech with --method prior"),
    "a VAE of clean speech": (lambda c: not c.speakers and c.task != "denoise",
                              "--method prior needs one, e.g. from `audiovae train speech_vae`"),
    "a music model": (lambda c: c.prior is not None or _plain(c, "denoise", "anomaly", "convert"),
                      "it has no learned prior"),
    "an anomaly detector": (lambda c: _plain(c, "denoise", "music", "convert"), "fit one with `audiovae anomaly fit`"),
}


def _load(model: Path, device: str, kind: str | None = None):  # noqa: ANN202
    """Load a checkpoint (a file or a bundled model's name); with ``kind`` (a key of :data:`KINDS`), one of another
    kind is refused in one line: ``voice_conversion is a voice-conversion model, not an anomaly detector (...)``."""
    from ..checkpoint import load_checkpoint
    from ..device import resolve_device
    from ..pretrained import resolve_model

    ckpt = load_checkpoint(resolve_model(model), resolve_device(device))
    if kind is not None:
        serves, hint = KINDS[kind]
        if not serves(ckpt):
            raise AudiovaeError(f"{model} is {_kind(ckpt)}, not {kind} ({hint})")
    return ckpt


# ---------------------------------------------------------------------------------------- files and reports
def _audio_list(source: Path) -> list[Path]:
    """A folder's audio files (recursively), or one file; none is a one-line error naming the folder."""
    from ..pipelines.batch import audio_files

    if not source.exists():
        raise AudiovaeError(f"{source}: no such file or folder")
    files = audio_files(source) if source.is_dir() else [source]
    if not files:
        raise AudiovaeError(f"{source}: no audio files in this folder")
    return files


def _batch(source: Path, output: Path | None, out_dir: Path, name: Callable[[Path], str], verb: str,
           work: Callable[[Path, Path], str]) -> None:
    """Run ``work(src, dst)`` on a file or a folder's audio files (every output checked before any work), printing
    ``wrote DST (note)`` per file. One file's failure is the command's error; in a folder a bad file is reported
    and skipped, the rest still written, and the exit code is 1 if any failed."""
    from ..pipelines.batch import map_files

    def report(o, done: int, total: int) -> None:  # noqa: ANN001 - a batch.Outcome
        if o.ok:
            typer.echo(f"wrote {o.job.output} ({o.note})")
        elif source.is_dir():
            typer.echo(f"audiovae: skipped {o.note}", err=True)

    summary = map_files(source, work, name, output, out_dir, on_file=report)
    if summary.out_dir is None:
        if summary.failed:
            raise AudiovaeError(summary.failed[0].note)
        return
    typer.echo(summary.line(verb))
    if summary.failed:
        raise typer.Exit(1)


def _print_report(report, json_out: Path | None) -> None:  # noqa: ANN001 - any report with table() and to_dict()
    """Print an evaluation report's table and, with --json, write it whole (atomically)."""
    import json

    from ..fileio import write_atomic

    typer.echo(report.table())
    if json_out:
        write_atomic(json_out, json.dumps(report.to_dict(), indent=2) + "\n")
