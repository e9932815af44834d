"""Music: ``sample-music``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ._shared import MUSIC, DeviceOpt, VocoderOpt, _load, _seconds, command


@command("Generate music from a music model's learned prior.", MUSIC)
def sample_music(
    n: Annotated[int, typer.Option("-n", "--count", help="Files to write.", min=1)] = 4,
    seconds: Annotated[float, typer.Option(help="Length of each file.", min=0.1, max=600.0)] = 10.0,
    temperature: Annotated[float, typer.Option(help="Spread of each draw around the prior's prediction (1: the "
                                               "model's own; lower: tamer, higher: wilder).", min=0.0, max=5.0)
                           ] = 1.0,
    seed: Annotated[int, typer.Option(help="File i is drawn with seed SEED + i: the same seed, the same files.")] = 0,
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Output folder (created if missing).", file_okay=False)
                       ] = Path("samples"),
    model: Annotated[Path, typer.Option("--model", "-m", help="A music model: a VAE with a learned prior "
                                        "(`audiovae train music_prior`), or a bundled model's name.",
                                        dir_okay=False)] = Path("music"),
    plot: Annotated[bool, typer.Option("--plot", help="Also write each file's log-mel spectrogram as a PNG "
                                       "beside it.")] = False,
    walk: Annotated[bool, typer.Option("--walk", help="A latent random walk instead: a slow, continuous drift "
                                       "through the region of the latent space the music occupies.")] = False,
    no_prior: Annotated[bool, typer.Option("--no-prior", help="Draw every latent frame from the model's own prior "
                                           "instead of the learned one: N(0, I) for a VAE (the baseline, to hear "
                                           "what the learned prior adds), code usage for a VQ-VAE, the top-down "
                                           "ladder for a hierarchical VAE.")
                        ] = False,
    vocoder: VocoderOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Generate music from a music model's latent space: latent sequences drawn from its learned prior (a GRU over
    latent frames at 21.5 Hz), decoded to log-mels and vocoded. Deterministic for a seed.

    Examples: audiovae sample-music -n 4 --seconds 10 --seed 1 --plot;  audiovae sample-music --walk --seconds 30
    """
    from .. import audio
    from ..fileio import check_output_path
    from ..pipelines import music
    from ..pipelines.latent import vocoder_for
    from ..plots import plot_logmel

    ckpt = _load(model, device, "a music model")
    source = "normal" if no_prior else "prior"
    music.check_request(ckpt, n, seconds, temperature, source)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "walk" if walk else "sample" if source == "prior" else "normal"
    paths = [out_dir / f"{stem}_{seed + i:03d}.wav" for i in range(n)]
    for p in paths:
        check_output_path(p)
    synth = vocoder_for(ckpt, vocoder)
    busy = 0.0
    for i, p in enumerate(paths):  # one file at a time: memory does not grow with -n
        t0 = time.perf_counter()
        mels, waves = music.generate(ckpt, 1, seconds, temperature, seed + i, source, walk, synth)
        busy += time.perf_counter() - t0
        audio.save(p, waves[0], ckpt.mel.sample_rate)
        if plot:
            plot_logmel(p.with_suffix(".png"), mels[0], ckpt.mel, title=p.name)
        typer.echo(f"wrote {p}" + (f" and {p.with_suffix('.png').name}" if plot else ""))
    typer.echo(f"{n} x {_seconds(seconds)} at {ckpt.mel.sample_rate} Hz, generated at "
               f"{n * seconds / max(busy, 1e-9):.0f}x realtime")
