"""The ``audiovae`` command: parse, call a library function, report. No logic lives here that the API lacks.

A table of contents: each module of :mod:`audiovae.commands` registers its commands on the shared app when imported;
the help lists them in panels (Voice, Denoise, Music, Latent tools, Training and data, Evaluate and detect, Export and
page, Inspect).
"""

from __future__ import annotations

import sys

import typer

from .commands import (  # noqa: F401 - imported for the commands they register
    anomaly,  # Evaluate and detect: anomaly fit, anomaly score
    basics,  # Inspect: info, example, resynth, plot
    data,  # Training and data: train, configs, corpus ..., cache
    denoise,  # Denoise: denoise
    evaluate,  # Evaluate and detect: evaluate ...
    export,  # Export and page: export
    latent,  # Latent tools: reconstruct, encode, decode, interpolate, vector, edit, traverse, latent-map
    music,  # Music: sample-music
    page,  # Export and page: ui
    voice,  # Voice: speakers, convert, voice
)
from .commands._shared import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point. Usage errors (a missing option, a bad value, a folder where a file belongs) are one
    line too, like every other error, instead of click's framed panel; exit code 2 as click gives them."""
    try:  # typer >= 0.24 vendors click
        from typer._click import exceptions as click_errors
    except ImportError:
        from click import exceptions as click_errors
    no_args = getattr(click_errors, "NoArgsIsHelpError", ())  # click >= 8.2

    try:
        code = app(standalone_mode=False)
    except no_args:  # `audiovae` or `audiovae corpus` alone: typer has shown the help
        sys.exit(2)
    except click_errors.UsageError as e:
        where = f" (see: {e.ctx.command_path} --help)" if e.ctx is not None else ""
        message = " ".join(e.format_message().split())
        typer.echo(f"audiovae: error: {message}{where}", err=True)
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("audiovae: error: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
