"""The local web page: ``ui``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._shared import EXPORT, DeviceOpt, command


@command("Serve a local web page for conversion, denoising and music.", EXPORT)
def ui(
    host: Annotated[str, typer.Option(help="Address to listen on. The default serves this computer only; 0.0.0.0 "
                                      "lets anyone on the network use it (and its CPU).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 7860,
    models: Annotated[Path | None, typer.Option("--models", help="A folder of checkpoints to offer beside the "
                                                "bundled ones (searched recursively; a training run's "
                                                "model.safetensors is named by its folder, and its log.csv gives "
                                                "the Models tab its training curves).", file_okay=False)] = None,
    max_upload_mb: Annotated[float, typer.Option(help="Largest upload accepted, per file.", min=0.1)] = 25.0,
    max_seconds: Annotated[float, typer.Option(help="Longest uploaded clip accepted.", min=1.0)] = 120.0,
    max_queue: Annotated[int, typer.Option(help="Requests running or waiting at once; one more is told the "
                                           "server is busy. They run one at a time.", min=1)] = 4,
    device: DeviceOpt = "auto",
) -> None:
    """Serve a local web page for conversion, denoising and music, with the models listed (needs the ui extra:
    pip install 'audiovae[ui]'). The page calls the same functions as these commands; stop it with Ctrl-C.

    Examples: audiovae ui;  audiovae ui --port 8000 --models runs/
    """
    from ..ui import require_extra

    require_extra()
    from ..ui.server import is_loopback, serve
    from ..ui.studio import Limits

    if not is_loopback(host):
        typer.echo(f"audiovae: warning: listening on {host}: anyone who can reach this address can use the page",
                   err=True)
    limits = Limits(max_upload_mb=max_upload_mb, max_seconds=max_seconds)
    serve(host, port, str(models) if models else None, device, max_queue, limits,
          on_ready=lambda url: typer.echo(f"audiovae ui: serving at {url} (Ctrl-C to stop)"))
