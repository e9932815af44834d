"""Denoise: ``denoise``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ..errors import AudiovaeError
from ._shared import DENOISE, BlockOpt, DeviceOpt, StreamOpt, VocoderOpt, _batch, _load, _seconds, choice, command

METHODS = ("mask", "vocoder", "prior")  # pipelines.denoise.METHODS (it imports torch; help is built at start-up)
MethodOpt = Annotated[str, typer.Option(help="mask: the model's clean estimate as a gain on the noisy STFT "
                                        "(keeps the input's phase, rate and channels); vocoder: decode the clean "
                                        "log-mel with the vocoder; prior: no denoiser, a VAE of clean speech "
                                        "(--model, e.g. from `audiovae train speech_vae`) with a noise model fitted "
                                        "to each file (VAE-NMF; slow).", **choice(*METHODS))]


def _denoiser(model: Path, device: str, method: str, **settings):  # noqa: ANN003, ANN202
    """A :class:`~audiovae.pipelines.denoise.Denoiser` of ``model``; a model of another kind (a voice-conversion or
    music model, a denoiser for --method prior) is refused in one line."""
    from ..pipelines.denoise import Denoiser

    kind = "a VAE of clean speech" if method == "prior" else "a denoiser"
    return Denoiser(_load(model, device, kind), method=method, **settings)


@command("Remove noise from speech: files or folders, any length.", DENOISE)
def denoise(
    source: Annotated[Path, typer.Argument(help="A noisy audio file, or a folder of them (denoised in batch).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output file (single input; default "
                                                "<name>_denoised.<ext>).", dir_okay=False)] = None,
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Output folder for a folder of inputs.",
                                          file_okay=False)] = Path("denoised"),
    model: Annotated[Path, typer.Option("--model", "-m", help="A denoising checkpoint (`audiovae train "
                                        "denoise_vae` or recipes/denoise/run.sh); default: the bundled denoiser. "
                                        "With --method prior: a VAE of clean speech.", dir_okay=False)
                     ] = Path("denoise"),
    strength: Annotated[float, typer.Option(min=0.0, max=1.0, help="Dry/wet mix: 0 returns the input, 1 the "
                                            "fully denoised signal.")] = 1.0,
    method: MethodOpt = "mask",
    keep_above: Annotated[float | None, typer.Option(min=0.01, max=1.0, help="--method mask: a gain at or above "
                                                     "this becomes 1, so speech the model only slightly doubts "
                                                     "passes untouched (1: every gain as estimated). Default: "
                                                     "the denoiser's own, 1.")] = None,
    vocoder: VocoderOpt = None,
    stream: StreamOpt = False,
    block: BlockOpt = 0.5,
    device: DeviceOpt = "auto",
) -> None:
    """Remove noise from speech. Files of any length are processed in 30-s chunks with crossfades (memory does
    not grow with the file); the output keeps the input's sample rate and channels (one gain, estimated on the
    channel average, applied to every channel) and, when the output format allows it, its sample format.

    Examples: audiovae denoise noisy.wav;  audiovae denoise recordings/ --out-dir clean --strength 0.8
    """
    from tqdm.auto import tqdm

    from ..pipelines.batch import output_name
    from ..pipelines.denoise import denoise_file

    if vocoder is not None and method != "vocoder":
        raise AudiovaeError(f"--vocoder applies to --method vocoder only (this is --method {method})")
    chosen = {} if keep_above is None else {"keep_above": keep_above}
    denoiser = _denoiser(model, device, method, strength=strength, vocoder=vocoder, **chosen)

    if stream:
        from ..pipelines.denoise import stream_processor
        from ..pipelines.stream import stream_file

        stream_processor(denoiser, denoiser.ckpt.mel.sample_rate, block)  # a method that cannot stream fails now

        def work(src: Path, dst: Path) -> str:
            t0 = time.perf_counter()
            seconds, latency = stream_file(src, dst, lambda rate: stream_processor(denoiser, rate, block))
            speed = seconds / max(time.perf_counter() - t0, 1e-9)
            return f"{_seconds(seconds)}, streamed with {latency:.2f} s latency, {speed:.0f}x realtime"
    else:
        def work(src: Path, dst: Path) -> str:
            t0, bars = time.perf_counter(), []

            def progress(done: float, total: float) -> None:  # a bar for files of a minute or more
                if not bars:
                    bars.append(tqdm(total=round(total, 1), unit="s", desc=src.name, disable=total < 60, leave=False))
                bars[0].update(round(done, 1) - bars[0].n)

            try:
                result = denoise_file(src, dst, denoiser, on_progress=progress)
            finally:
                for bar in bars:
                    bar.close()
            speed = result.seconds / max(time.perf_counter() - t0, 1e-9)
            return f"{_seconds(result.seconds)}, {result.sample_rate} Hz, {result.channels} ch, {speed:.0f}x realtime"

    _batch(source, output, out_dir, output_name("denoised", keep_format=True), "denoised", work)
