"""Export: ``export`` (TorchScript or ONNX graphs that run without audiovae)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._shared import EXPORT, VocoderOpt, choice, command

FORMATS = ("torchscript", "onnx")


@command("Export a model's networks as TorchScript or ONNX graphs.", EXPORT)
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A model checkpoint or a vocoder file (or a bundled model's name: "
                                               "voice_conversion, denoise, music, vocoder).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The folder to write (created; it must not exist "
                                         "or be empty, unless --force).", file_okay=False)],
    fmt: Annotated[str, typer.Option("--format", "-f", help="torchscript (.pt, torch.jit.load in C++ or Python) "
                                     "or onnx (.onnx, needs the export extra: pip install 'audiovae[export]').",
                                     **choice(*FORMATS))
                   ] = "onnx",
    parts: Annotated[str | None, typer.Option(help="Comma-separated: frontend, encoder, decoder, vocoder "
                                              "(default: all the file has).")] = None,
    vocoder: VocoderOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing folder.")] = False,
) -> None:
    """Export a model's networks (front end, encoder, decoder and a neural vocoder) as TorchScript or ONNX graphs
    that run without audiovae, each checked against PyTorch on real speech at two lengths (tolerance in
    export.json), with export.json describing inputs, outputs, the front end and the speakers.

    Examples: audiovae export voice_conversion -o vc_onnx;  audiovae export runs/speech_vae/model.safetensors
    --format torchscript -o speech_vae_ts
    """
    from ..export import export as run

    chosen = [p.strip() for p in parts.split(",") if p.strip()] if parts else None
    report = run(checkpoint, output, fmt, chosen, vocoder, force)
    for part in report.parts:
        typer.echo(f"  {part.name:<9} {part.file:<13} max |exported - PyTorch| {part.max_abs_error:.1e} "
                   f"(tolerance {part.tolerance:.0e})")
    for note in report.notes:
        typer.echo(f"  note: {note}")
    typer.echo(f"wrote {output}/ ({report.format}: {', '.join(p.name for p in report.parts)}; export.json)")
