"""The ``audiovae`` command: parse, call a library function, report. No logic lives here that the API lacks."""

from __future__ import annotations

import functools
import os
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


StreamOpt = Annotated[bool, typer.Option("--stream", help="Process in blocks with a fixed latency (block + "
                                         "lookahead), memory bounded by the block: for live use and for very long "
                                         "files.")]
BlockOpt = Annotated[float, typer.Option("--block", min=0.05, help="With --stream: seconds of audio out per step.")]


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


def command(fn: F) -> F:
    """Register ``fn`` as a top-level command, guarded by :func:`_guarded`."""
    app.command(help=fn.__doc__)(_guarded(fn))
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
def info(path: Annotated[Path, typer.Argument(help="An audio file or a model checkpoint (.safetensors).")]) -> None:
    """Describe an audio file (duration, rate, channels, format, levels) or a checkpoint (model, speakers, training).

    Examples: audiovae info speech.wav; audiovae info voice_conversion (a bundled model)
    """
    from .pretrained import BUNDLED, resolve_model

    if path.suffix in (".safetensors", ".pt", ".ckpt") or (str(path) in BUNDLED and not path.exists()):
        _checkpoint_info(resolve_model(path))
        return
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


def _checkpoint_info(path: Path) -> None:
    from .checkpoint import NoModelError, front_end, load_checkpoint, load_vocoder

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
    vocoder: VocoderOpt = None,
    n_iter: Annotated[int | None, typer.Option("--n-iter", min=0, help="Griffin-Lim iterations (default 32 for "
                                               "griffin-lim, 12 for mel-griffin-lim; without --vocoder it means "
                                               "griffin-lim).")] = None,
    momentum: Annotated[float | None, typer.Option(min=0.0, max=0.999, help="Fast Griffin-Lim momentum (default "
                                                   "0.99; 0 = classic).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of Griffin-Lim's random initial phase (default 0).")] = None,
    init: Annotated[str | None, typer.Option(help="Griffin-Lim's initial phase: random (griffin-lim's default) or "
                                             "pghi (phase-gradient heap integration, estimated from the magnitude; "
                                             "mel-griffin-lim's).")]
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
    from . import audio
    from .device import resolve_device
    from .features import MelConfig
    from .fileio import check_output_path
    from .pipelines.latent import choose_vocoder
    from .pipelines.resynth import resynthesize

    config = MelConfig()
    dev = resolve_device(device)
    check_output_path(output, (input,))
    wave, sr = audio.load(input, config.sample_rate, min_samples=config.min_samples)
    t0 = time.perf_counter()
    if init not in (None, "random", "pghi"):
        raise AudiovaeError(f"--init {init!r}: choose random or pghi")
    settings = {k: v for k, v in (("n_iter", n_iter), ("momentum", momentum), ("seed", seed), ("init", init))
                if v is not None}
    synth = choose_vocoder(vocoder or ("griffin-lim" if settings else None), config, **settings).to(dev)
    out = resynthesize(wave, synth, progress=True)
    elapsed = time.perf_counter() - t0
    audio.save(output, out, sr)
    seconds = wave.numel() / sr
    typer.echo(f"wrote {output} ({_seconds(seconds)}, {synth.vocoder_type}, "
               f"{seconds / max(elapsed, 1e-9):.0f}x realtime on {dev})")


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
    check_output_path(output, (input,))
    wave, _ = audio.load(input, config.sample_rate, min_samples=config.min_samples)
    plot_logmel(output, MelSpectrogram(config)(wave), config, title=title or input.name)
    typer.echo(f"wrote {output}")


ModelOpt = Annotated[Path, typer.Option("--model", "-m", help="Checkpoint (.safetensors) from `audiovae train`, "
                                         "or a bundled model's name.", dir_okay=False)]
VCModelOpt = Annotated[Path, typer.Option("--model", "-m", help="Checkpoint (.safetensors) of a speaker-conditioned "
                                          "model, or a bundled model's name.", dir_okay=False)]
VocoderOpt = Annotated[str | None, typer.Option("--vocoder", help="What turns log-mels into audio: "
                                               "mel-griffin-lim (Griffin-Lim held to the log-mel, no training), "
                                               "griffin-lim (classic), neural (the bundled neural vocoder) or a "
                                               "vocoder file from `audiovae train vocoder`. Default: the model's own "
                                               "trained vocoder, else mel-griffin-lim. Streamed and chunked output "
                                               "use the bundled streaming network for the default and for neural "
                                               "(its phase lets windows crossfade).")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON.", dir_okay=False)]
SpeakerOpt = Annotated[str | None, typer.Option("--speaker", "-s", help="Speaker name or index (conditioned models; "
                                                "see `audiovae info CKPT`).")]


def _load(model: Path, device: str):  # noqa: ANN202
    from .checkpoint import load_checkpoint
    from .device import resolve_device
    from .pretrained import resolve_model

    return load_checkpoint(resolve_model(model), resolve_device(device))


@command
def train(
    config: Annotated[str, typer.Argument(help="A YAML file, or a packaged config name: speech_vae, speech_cvae.")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides, e.g. train.steps=500 "
                                                                "data.train=corpora/speech.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in train.out_dir exactly where its last "
                                                          "checkpoint left it.")] = False,
    device: DeviceOpt = "auto",
) -> None:
    """Train a model; checkpoints, CSV log and validation plots go to train.out_dir. Multi-GPU/CPU: torchrun.

    Example: audiovae train speech_vae data.train=corpora/speech train.steps=3000
    """
    from .training import train as run

    path = run(config, overrides or [], device=device, resume=resume)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line, not one per process
        typer.echo(f"wrote {path}")


@command
def reconstruct(input: Annotated[Path, typer.Argument(help="Audio file.")], output: OutOpt,
                model: ModelOpt = Path("voice_conversion"), speaker: SpeakerOpt = None, vocoder: VocoderOpt = None,
                device: DeviceOpt = "auto") -> None:
    """Pass a file through a trained model: encode, decode (posterior mean), vocode. Compare with `resynth`.
    Without --model, the bundled voice-conversion model (then --speaker picks the voice it is decoded in).

    Example: audiovae reconstruct speech.wav -o speech_vae.wav --model runs/speech_vae/model.safetensors
    """
    from . import audio
    from .fileio import check_output_path
    from .pipelines import latent

    check_output_path(output, (input,))
    ckpt = _load(model, device)
    wave, sr = audio.load(input, ckpt.mel.sample_rate, min_samples=ckpt.mel.min_samples)
    audio.save(output, latent.reconstruct(wave, ckpt, speaker, latent.vocoder_for(ckpt, vocoder)), sr)
    typer.echo(f"wrote {output}")


@command
def encode(input: Annotated[Path, typer.Argument(help="Audio file.")],
           output: Annotated[Path, typer.Option("--output", "-o", help="Latents (.npz: z0 [dim, frames], metadata).",
                                                dir_okay=False)],
           model: ModelOpt, speaker: SpeakerOpt = None, device: DeviceOpt = "auto") -> None:
    """Encode a file to its latent sequence (posterior means) as a .npz: array z0 [latent_dim, latent_frames] (z1,
    ... for models with several levels) and the hop factor, sample rate and hop length it was made at.

    Example: audiovae encode speech.wav -o z.npz --model model.safetensors
    """
    from . import audio
    from .pipelines import latent

    latent.check_latents_path(output)
    ckpt = _load(model, device)
    wave, _ = audio.load(input, ckpt.mel.sample_rate, min_samples=ckpt.mel.min_samples)
    z = latent.encode(wave, ckpt, speaker)
    latent.save_latents(output, [z], hop_factor=ckpt.model.hop_factor, sample_rate=ckpt.mel.sample_rate,
                        hop_length=ckpt.mel.hop_length)
    typer.echo(f"wrote {output} z0 {tuple(z.shape)}")


@command
def decode(latents: Annotated[Path, typer.Argument(help="Latents (.npz from `audiovae encode`, or an older .npy).")],
           output: OutOpt, model: ModelOpt, speaker: SpeakerOpt = None, vocoder: VocoderOpt = None,
           device: DeviceOpt = "auto") -> None:
    """Decode latents (.npz from `audiovae encode`, or a .npy array [latent_dim, frames]) to audio.

    Example: audiovae decode z.npz -o out.wav --model model.safetensors
    """
    from . import audio
    from .fileio import check_output_path
    from .pipelines import latent

    check_output_path(output, (latents,))
    saved = latent.load_latents(latents)
    ckpt = _load(model, device)
    if len(saved.levels) != 1:
        raise AudiovaeError(f"{latents}: {len(saved.levels)} latent levels; this model takes one (z0)")
    hop = saved.meta.get("hop_factor", ckpt.model.hop_factor)
    if hop != ckpt.model.hop_factor:
        raise AudiovaeError(f"{latents}: latents at hop factor {hop}; this model's is {ckpt.model.hop_factor} "
                            "(encoded with another model?)")
    audio.save(output, latent.decode(saved.levels[0], ckpt, speaker, latent.vocoder_for(ckpt, vocoder)),
               ckpt.mel.sample_rate)
    typer.echo(f"wrote {output}")


@command
def interpolate(a: Annotated[Path, typer.Argument(help="First audio file.")],
                b: Annotated[Path, typer.Argument(help="Second audio file.")], output: OutOpt, model: ModelOpt,
                steps: Annotated[int, typer.Option(help="Points on the path, ends included.", min=2)] = 5,
                path: Annotated[str, typer.Option(help="linear or slerp (spherical, per latent frame).")] = "linear",
                speaker: SpeakerOpt = None, vocoder: VocoderOpt = None, device: DeviceOpt = "auto") -> None:
    """Walk the latent space from A to B; the output holds the steps one after another, 0.3 s apart.

    Example: audiovae interpolate a.wav b.wav -o walk.wav --steps 5 --path slerp --model model.safetensors
    """
    from . import audio
    from .api import Model
    from .fileio import check_output_path

    check_output_path(output, (a, b))
    wave, sr = Model(_load(model, device), vocoder).interpolate(a, b, steps, path, speaker)
    audio.save(output, wave, sr)
    typer.echo(f"wrote {output} ({steps} steps)")


def _audio_list(source: Path) -> list[Path]:
    """A folder's audio files (recursively), or one file; none is a one-line error naming the folder."""
    from .pipelines.batch import audio_files

    if not source.exists():
        raise AudiovaeError(f"{source}: no such file or folder")
    files = audio_files(source) if source.is_dir() else [source]
    if not files:
        raise AudiovaeError(f"{source}: no audio files in this folder")
    return files


@command
def vector(a: Annotated[Path, typer.Argument(help="Set A: a folder of recordings (or one file).")],
           b: Annotated[Path, typer.Argument(help="Set B: a folder of recordings (or one file).")],
           output: Annotated[Path, typer.Option("--output", "-o", help="The vector (.npy, float32 [latent_dim]).",
                                                dir_okay=False)],
           model: ModelOpt, speaker: SpeakerOpt = None, device: DeviceOpt = "auto") -> None:
    """An attribute vector: the mean latent of set A minus that of set B (each recording's posterior means averaged
    over time), to add to other recordings with `audiovae edit`. A: one speaker or instrument, B: another.

    Example: audiovae vector voices/alice voices/bob -o alice_minus_bob.npy --model model.safetensors
    """
    from tqdm.auto import tqdm

    from .fileio import check_output_path
    from .pipelines.attributes import attribute_vector, save_vector
    from .progress import bar_off

    check_output_path(output)
    if output.suffix != ".npy":
        raise AudiovaeError(f"{output}: the vector is saved as .npy; name it {output.with_suffix('.npy').name}")
    files_a, files_b = _audio_list(a), _audio_list(b)
    ckpt = _load(model, device)
    with tqdm(total=len(files_a) + len(files_b), unit="file", disable=bar_off(True), leave=False) as bar:
        result = attribute_vector(files_a, files_b, ckpt, speaker, on_file=lambda _: bar.update())
    save_vector(output, result.vector)
    typer.echo(f"wrote {output} (mean of {result.count_a} files minus mean of {result.count_b}; norm "
               f"{result.norm:.3f} over {result.vector.numel()} dimensions)")


@command
def edit(input: Annotated[Path, typer.Argument(help="Audio file.")], output: OutOpt, model: ModelOpt,
         vector_file: Annotated[Path, typer.Option("--vector", help="A vector from `audiovae vector` (.npy).",
                                                   dir_okay=False)],
         scale: Annotated[float, typer.Option(help="How far to move: 0 reconstructs, 1 adds the vector once, "
                                              "negative moves the other way.", min=-10.0, max=10.0)] = 1.0,
         speaker: SpeakerOpt = None, vocoder: VocoderOpt = None, device: DeviceOpt = "auto") -> None:
    """Move a recording along an attribute vector: encode, add SCALE x VECTOR to every latent frame, decode.

    Example: audiovae edit bob.wav -o bob_to_alice.wav --vector alice_minus_bob.npy --scale 0.8 --model m.safetensors
    """
    from . import audio
    from .fileio import check_output_path
    from .pipelines import attributes, latent

    check_output_path(output, (input,))
    ckpt = _load(model, device)
    direction = attributes.load_vector(vector_file, ckpt.model.config.latent_dim)
    wave, sr = audio.load(input, ckpt.mel.sample_rate, min_samples=ckpt.mel.min_samples)
    audio.save(output, attributes.edit(wave, ckpt, direction, scale, speaker, latent.vocoder_for(ckpt, vocoder)), sr)
    typer.echo(f"wrote {output} (scale {scale:g})")


@command
def traverse(input: Annotated[Path, typer.Argument(help="Audio file: the point of the latent space to start from.")],
             output: Annotated[Path, typer.Option("--output", "-o", help="The plot (.png).", dir_okay=False)],
             model: ModelOpt,
             dims: Annotated[str, typer.Option(help="How many dimensions (those that vary most over the file), or "
                                               "a comma-separated list of them, e.g. 0,3,7.")] = "6",
             span: Annotated[float, typer.Option(help="Largest offset, in the prior's standard deviations.",
                                                 min=0.1, max=10.0)] = 3.0,
             steps: Annotated[int, typer.Option(help="Offsets per dimension, from -SPAN to +SPAN.", min=2, max=15)
                              ] = 5,
             seconds: Annotated[float, typer.Option(help="Plot the first SECONDS of the file.", min=0.1)] = 3.0,
             speaker: SpeakerOpt = None, device: DeviceOpt = "auto") -> None:
    """Latent traversal: one dimension at a time offset from the file's latents and decoded, as a grid of log-mel
    spectrograms (a row per dimension, a column per offset): what each dimension controls.

    Example: audiovae traverse speech.wav -o traversal.png --dims 8 --model runs/speech_beta_vae/model.safetensors
    """
    from . import audio
    from .fileio import check_output_path, write_atomic
    from .pipelines.attributes import traversal
    from .plots import traversal_png

    check_output_path(output, (input,))
    try:
        chosen: int | list[int] = int(dims) if "," not in dims else [int(d) for d in dims.split(",") if d.strip()]
    except ValueError:
        raise AudiovaeError(f"--dims {dims!r}: a count (6) or a list of dimensions (0,3,7)") from None
    ckpt = _load(model, device)
    wave, _ = audio.load(input, ckpt.mel.sample_rate, min_samples=ckpt.mel.min_samples)
    wave = wave[: max(ckpt.mel.min_samples, round(seconds * ckpt.mel.sample_rate))]
    values = [-span + 2 * span * i / (steps - 1) for i in range(steps)]
    picked, rows = traversal(wave, ckpt, chosen, values, speaker)
    png = traversal_png(picked, rows, values, ckpt.mel, title=f"{input.name}: latent traversal "
                        f"({type(ckpt.model).model_type}, offsets in prior standard deviations)")
    write_atomic(output, png)
    typer.echo(f"wrote {output} (dimensions {', '.join(map(str, picked))})")


@command
def latent_map(
    data: Annotated[Path, typer.Argument(help="Recordings by speaker: a corpus, a manifest, or a folder per "
                                              "speaker (or instrument).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The map (.png).", dir_okay=False)],
    model: ModelOpt,
    per_label: Annotated[int, typer.Option("--per-speaker", help="Recordings per speaker at most (evenly spread).",
                                           min=1)] = 40,
    split: Annotated[str, typer.Option(help="Which split of a corpus: train, valid, test or all.")] = "all",
    speaker: SpeakerOpt = None, device: DeviceOpt = "auto",
) -> None:
    """A 2-D map of utterance latents (posterior means averaged over each recording, on their two principal axes),
    coloured by speaker, and how well the speakers separate in the full latent space (nearest-centroid accuracy).

    Example: audiovae latent-map corpora/speech -o speakers.png --split test --model runs/speech_vae/model.safetensors
    """
    import numpy as np
    from tqdm.auto import tqdm

    from .data.layouts import discover
    from .fileio import check_output_path, write_atomic
    from .pipelines.attributes import file_latents
    from .pipelines.attributes import latent_map as build_map
    from .plots import latent_map_png
    from .progress import bar_off

    check_output_path(output)
    if split not in ("train", "valid", "test", "all"):
        raise AudiovaeError(f"--split {split!r}: choose train, valid, test or all")
    entries = [e for e in discover(data) if split == "all" or e.split == split]
    by_label: dict[str, list[Path]] = {}
    for e in entries:
        by_label.setdefault(e.speaker or e.instrument or "unlabelled", []).append(Path(e.path))
    if len(by_label) < 2:
        raise AudiovaeError(f"{data}: recordings of {len(by_label)} speaker(s) in split {split}; a map needs two "
                            "or more (a folder per speaker)")
    picked = {k: [v[i] for i in dict.fromkeys(np.linspace(0, len(v) - 1, min(per_label, len(v))).round().astype(int))]
              for k, v in by_label.items()}  # evenly spread over each speaker's files
    ckpt = _load(model, device)
    latents, labels, files = [], [], []
    with tqdm(total=sum(map(len, picked.values())), unit="file", disable=bar_off(True), leave=False) as bar:
        for label, paths in sorted(picked.items()):
            z, used = file_latents(paths, ckpt, speaker, on_file=lambda _: bar.update())
            latents += z
            labels += [label] * len(z)
            files += used
    result = build_map(latents, labels, files)
    png = latent_map_png(result.points, result.labels, result.explained,
                         f"{data.name}: utterance latents ({type(ckpt.model).model_type}), {len(labels)} recordings; "
                         f"nearest-centroid accuracy {result.accuracy:.2f} (chance {1 / len(picked):.2f})")
    write_atomic(output, png)
    typer.echo(f"wrote {output} ({len(labels)} recordings of {len(picked)} speakers; nearest-centroid accuracy "
               f"{result.accuracy:.2f}, chance {1 / len(picked):.2f})")


@command
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
    from . import audio
    from .fileio import check_output_path
    from .pipelines import music
    from .pipelines.latent import vocoder_for
    from .plots import plot_logmel

    ckpt = _load(model, device)
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


def _batch(source: Path, output: Path | None, out_dir: Path, name: Callable[[Path], str], verb: str,
           work: Callable[[Path, Path], str]) -> None:
    """Run ``work(src, dst)`` on a file or a folder's audio files (every output checked before any work), printing
    ``wrote DST (note)`` per file. One file's failure is the command's error; in a folder a bad file is reported
    and skipped, the rest still written, and the exit code is 1 if any failed."""
    from .pipelines.batch import map_files

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


@command
def speakers(model: VCModelOpt = Path("voice_conversion")) -> None:
    """List the speakers of a voice-conversion model: index and name (either works for --speaker) and, where the
    model records them, the voice each comes from, its sex and its median F0 on the training data.

    Example: audiovae speakers   (the bundled model: voices A-H and where they come from)
    """
    from .pipelines.convert import speaker_rows

    ckpt = _load(model, "cpu")
    if not ckpt.speakers:
        typer.echo(f"{model}: no speakers (a {ckpt.model.model_type} model for task {ckpt.task})")
    rows = speaker_rows(ckpt)
    width = max((len(str(r["name"])) for r in rows), default=0)
    for r in rows:
        line = f"{r['index']:3d}  {r['name']:<{width}}"
        if "voice" in r:
            line += f"  {r['voice']:<7} {r.get('sex', ''):<7}"
        if "median_f0_hz" in r:
            line += f"  F0 {r['median_f0_hz']:3.0f} Hz"
        if "made_by" in r or "about" in r:
            line += "  " + ": ".join(str(r[k]) for k in ("made_by", "about") if k in r)
        typer.echo(line.rstrip())
    if ckpt.speakers:
        typer.echo("any other voice: --speaker-ref REF.wav (one-shot, 3 s or more; `audiovae voice` saves it)")


@command
def convert(
    source: Annotated[Path, typer.Argument(help="An audio file, or a folder of them (converted in batch).")],
    speaker: Annotated[str | None, typer.Option("--speaker", "-s", help="Target speaker: name or index "
                                                "(see `audiovae speakers`), or a voice file made by `audiovae voice`.")
                       ] = None,
    speaker_ref: Annotated[list[Path] | None, typer.Option(
        "--speaker-ref", "-r", help="Target voice given by recordings of it instead (one-shot; repeat for "
        "more files, one to three is typical, 3 s or more in all, ~10 s is better). Fitted on every run: "
        "`audiovae voice` saves it.",
        dir_okay=False)] = None,
    model: VCModelOpt = Path("voice_conversion"),
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output file (single input; default "
                                                "<name>_<speaker>.wav).", dir_okay=False)] = None,
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Output folder for a folder of inputs.",
                                          file_okay=False)] = Path("converted"),
    source_speaker: Annotated[str | None, typer.Option(help="Speaker of the input, for models whose encoder is "
                                                            "speaker-conditioned (default: estimated).")] = None,
    pitch: Annotated[str, typer.Option(help="Pitch register: model (the decoder moves it to the target's), shift "
                                       "(move the input's log-F0 mean and spread to the target's before encoding) "
                                       "or semitones (e.g. -5).")] = "model",
    vocoder: VocoderOpt = None,
    stream: StreamOpt = False,
    block: BlockOpt = 0.5,
    device: DeviceOpt = "auto",
) -> None:
    """Convert speech to another voice: a speaker of the model, or one given by a reference recording.

    The content is encoded (the encoder is trained to drop the voice), then decoded with the target speaker and
    resynthesised. The decoder puts the speech in the target's pitch register; --pitch shift moves the input's
    register to the target's before encoding instead (measured on the model's training data or on the reference). A
    folder is converted file by file; unreadable files are reported and skipped, the rest still written.

    Examples: audiovae convert speech.wav --speaker B;
    audiovae convert speech.wav --speaker-ref someone.wav;
    audiovae voice someone1.wav someone2.wav -o someone.safetensors && audiovae convert speech.wav --speaker
    someone.safetensors;
    audiovae convert clips/ --speaker slt --model runs/speech_cvae/model.safetensors --out-dir converted
    """
    from . import audio
    from .pipelines.batch import output_name
    from .pipelines.convert import check_pitch
    from .pipelines.convert import convert as run
    from .pipelines.latent import vocoder_for
    from .pipelines.voices import target_voice

    if (speaker is None) == (not speaker_ref):
        raise AudiovaeError("give the target voice as --speaker NAME or as --speaker-ref REF.wav (one of the two)")
    pitch_mode = check_pitch(pitch)
    ckpt = _load(model, device)
    sr, min_samples = ckpt.mel.sample_rate, ckpt.mel.min_samples
    if speaker_ref:  # a bad reference fails before any work
        voice = _fit_voice(ckpt, speaker_ref)
    else:
        voice = target_voice(ckpt, speaker)  # an unknown target or a bad voice file fails before any work
    synth = vocoder_for(ckpt, vocoder, prefer_trained=stream)  # streamed windows are crossfaded

    if stream:
        from .pipelines.convert import stream_processor
        from .pipelines.stream import stream_file

        streamed = stream_processor(ckpt, voice, source_speaker, synth, pitch_mode, block)

        def work(src: Path, dst: Path) -> str:
            _, latency = stream_file(src, dst, lambda rate: streamed, rate=sr, mono=True, min_samples=min_samples)
            return f"-> {voice.name}, streamed with {latency:.2f} s latency"
    else:
        def work(src: Path, dst: Path) -> str:
            wave, _ = audio.load(src, sr, min_samples=min_samples)
            out, estimated = run(wave, ckpt, voice, source_speaker, synth, pitch_mode)
            audio.save(dst, out, sr)
            return f"{estimated + ' ' if estimated else ''}-> {voice.name}"

    _batch(source, output, out_dir, output_name(voice.name), "converted", work)


def _fit_voice(ckpt, references: list[Path], name: str | None = None, method: str = "adapt",  # noqa: ANN001, ANN202
               steps: int | None = None):
    from . import audio
    from .pipelines.voices import reference_voice

    waves = [audio.load(p, ckpt.mel.sample_rate, min_samples=ckpt.mel.min_samples)[0] for p in references]
    return reference_voice(ckpt, waves, name or references[0].stem, method, steps, [str(p) for p in references])


@command
def voice(
    references: Annotated[list[Path], typer.Argument(help="Recordings of the voice (one to three is typical), 3 s or "
                                                     "more in all (about 10 s is better).", dir_okay=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The voice file to write (.safetensors).",
                                         dir_okay=False)],
    model: VCModelOpt = Path("voice_conversion"),
    name: Annotated[str | None, typer.Option(help="The voice's name (default: the first file's).")] = None,
    method: Annotated[str, typer.Option(help="adapt: fit, then adapt the decoder's FiLM modulations to the "
                                        "references too (the model's weights untouched; the best measured, "
                                        "seconds); fit: optimise the voice vector alone so that the model's "
                                        "decoding of the references matches them (analysis-by-synthesis; a plain "
                                        "vector, as an exported decoder takes it); blend: the same over mixtures "
                                        "of the table's voices; encoder: the model's speaker encoder (one pass; it "
                                        "lands near the table's voices).")] = "adapt",
    steps: Annotated[int | None, typer.Option(help="Optimisation steps: of --method fit and blend (default 400), "
                                              "of adapt's FiLM offsets (default 200, after 150 of the vector).",
                                              min=1)] = None,
    device: DeviceOpt = "auto",
) -> None:
    """Fit a voice outside the model's table from recordings of it, and save it for `convert --speaker FILE`.

    The voice file holds the model's voice vector for these recordings (with --method adapt, also its offsets to
    the decoder's FiLM modulations) and their pitch register; it is tied to the model it was fitted to (another
    model refuses it).

    Example: audiovae voice me1.wav me2.wav -o me.safetensors;  audiovae convert speech.wav --speaker me.safetensors
    """
    from .fileio import check_output_path
    from .pipelines.voices import is_voice_file, save_voice, steps_of

    if not is_voice_file(output):
        raise AudiovaeError(f"{output}: a voice file ends in .safetensors")
    check_output_path(output, tuple(references))
    ckpt = _load(model, device)
    t0 = time.perf_counter()
    fitted = _fit_voice(ckpt, references, name, method, steps)
    seconds = time.perf_counter() - t0
    save_voice(fitted, output, ckpt, method=method, steps=steps_of(method, steps),
               references=[p.name for p in references])
    register = f", median F0 {fitted.register.median_hz:.0f} Hz" if fitted.register else ""
    typer.echo(f"{output}: voice {fitted.name} from {len(references)} recording(s) ({method}, {_seconds(seconds)})"
               f"{register}")


@command
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
    method: Annotated[str, typer.Option(help="mask: the model's clean estimate as a gain on the noisy STFT "
                                        "(keeps the input's phase, rate and channels); vocoder: decode the clean "
                                        "log-mel with the vocoder; prior: no denoiser, a VAE of clean speech "
                                        "(--model, e.g. from `audiovae train speech_vae`) with a noise model fitted "
                                        "to each file (VAE-NMF; slow).")] = "mask",
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

    from .pipelines.batch import output_name
    from .pipelines.denoise import Denoiser, denoise_file

    if vocoder is not None and method != "vocoder":
        raise AudiovaeError(f"--vocoder applies to --method vocoder only (this is --method {method})")
    chosen = {} if keep_above is None else {"keep_above": keep_above}
    denoiser = Denoiser(_load(model, device), strength, method, vocoder=vocoder, **chosen)

    if stream:
        from .pipelines.denoise import stream_processor
        from .pipelines.stream import stream_file

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


anomaly_app = typer.Typer(help="Anomalous sound detection: fit a detector on normal sounds, score clips.",
                          no_args_is_help=True)
app.add_typer(anomaly_app, name="anomaly")
PoolingOpt = Annotated[str | None, typer.Option(help="How frame scores make a clip score: mean, max or pNN (a "
                                                "percentile, e.g. p90). Default: the detector's own.")]


@anomaly_app.command(name="fit")
@_guarded
def anomaly_fit(
    normal: Annotated[Path, typer.Argument(help="Normal sounds only: a folder of recordings of healthy machines, a "
                                           "machine corpus (`audiovae corpus machines`), or MIMII / DCASE data "
                                           "(anomalous files are never used).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The detector file to write (.safetensors).",
                                         dir_okay=False)],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides of the config, e.g. "
                                                          "train.steps=3000.")] = None,
    config: Annotated[list[str] | None, typer.Option(help="A YAML file or packaged config: anomaly_vae (a small "
                                                     "conv VAE; anomaly_vae_fine at twice its time resolution) or "
                                                     "anomaly_dense_ae (the DCASE baseline); any model type can "
                                                     "detect. Repeat it to fit each and keep the one with the "
                                                     "highest AUC on the valid split (needs anomalous valid "
                                                     "clips).")] = None,
    machine: Annotated[str, typer.Option(help="The machine type to fit (needed when NORMAL holds several).")] = "",
    percentile: Annotated[float, typer.Option(help="Threshold: this percentile of the scores of held-out normal "
                                              "clips (about 100 - P % of normal clips are flagged).",
                                              min=0.1, max=99.9)] = 90.0,
    pooling: Annotated[str, typer.Option(help="How frame scores make a clip score: mean, max or pNN (e.g. "
                                         "p90).")] = "mean",
    score: Annotated[str | None, typer.Option(help="A frame's score: nelbo (negative ELBO: the error under the "
                                              "learnt band scales plus KL; VAEs, their default) or recon (mean "
                                              "squared error; any model).")] = None,
    work: Annotated[Path | None, typer.Option(help="The training run's folder (default: OUTPUT's name + _run).",
                                              file_okay=False)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted fit from its last "
                                         "checkpoint.")] = False,
    device: DeviceOpt = "auto",
) -> None:
    """Train an anomaly detector on normal sounds and set its threshold on held-out normal clips.

    Example: audiovae anomaly fit corpora/machines --machine fan -o fan.safetensors
    """
    from .training.anomaly import fit_detector

    path, s = fit_detector(normal, output, config or ["anomaly_vae"], overrides or [], machine, percentile, pooling,
                           score, work, device, resume)
    for name, r in s.selection.items():
        typer.echo(f"{name}: valid AUC {r['auc']:.3f}, pAUC {r['pauc']:.3f} ({r['normal']} normal, "
                   f"{r['anomalous']} anomalous clips)" + ("  <- kept" if name == s.config else ""))
    typer.echo(f"wrote {path}: {s.config}, {s.score} score, {s.pooling} over frames, threshold {s.threshold:.4g} "
               f"(the {s.percentile:g}th percentile of {s.normal['clips']} held-out normal clips)"
               + (f", machine type {s.machine}" if s.machine else ""))


@anomaly_app.command(name="score")
@_guarded
def anomaly_score(
    source: Annotated[Path, typer.Argument(help="An audio file or a folder of them (searched recursively).")],
    model: Annotated[Path, typer.Option("--model", "-m", help="A detector from `audiovae anomaly fit`.",
                                        dir_okay=False)],
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Also write the scores as CSV.", dir_okay=False)]
    = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG per file here: its log-mel above its "
                                              "frame scores (when in the clip it sounded wrong).",
                                              file_okay=False)] = None,
    pooling: PoolingOpt = None,
    threshold: Annotated[float | None, typer.Option(help="Decide against this clip score instead of the "
                                                    "detector's.")] = None,
    device: DeviceOpt = "auto",
) -> None:
    """Score clips with an anomaly detector: one line per file (score, decision against the threshold, when the
    frame score peaked). Unreadable files in a folder are reported and the rest scored (exit code 1).

    Example: audiovae anomaly score recordings/ --model fan.safetensors --csv scores.csv --plot plots/
    """
    from .fileio import check_output_path
    from .pipelines.anomaly import Detector, score_source, write_csv

    overrides = {k: v for k, v in (("pooling", pooling), ("threshold", threshold)) if v is not None}
    detector = Detector(_load(model, device), **overrides)
    if csv_out is not None:
        check_output_path(csv_out, (source,))
    s = detector.settings

    def report(item, done: int, total: int) -> None:  # noqa: ANN001 - a FileScore
        if item.result is None:
            if source.is_dir():  # a single file's failure is the command's error, below
                typer.echo(f"audiovae: skipped {item.error}", err=True)
            return
        r = item.result
        verdict = "" if r.anomalous is None else ("ANOMALOUS" if r.anomalous else "normal")
        typer.echo(f"{item.path}  {r.score:.4g}  {verdict:9s}  peak at {item.peak_seconds:.2f} s"
                   + (f"  (plot {item.plot})" if item.plot else ""))

    results = score_source(detector, source, plot, on_file=report)
    failed = [r for r in results if r.result is None]
    if len(results) == 1 and failed:
        raise AudiovaeError(failed[0].error)
    if csv_out is not None:
        typer.echo(f"wrote {write_csv(csv_out, results, s)}")
    flagged = sum(bool(r.result.anomalous) for r in results if r.result is not None)
    typer.echo(f"scored {len(results) - len(failed)} of {len(results)} files: {flagged} anomalous"
               + ("" if s.threshold is None else f" (threshold {s.threshold:.4g}, {s.pooling} of frame scores)"))
    if failed:
        raise typer.Exit(1)


evaluate_app = typer.Typer(help="Objective evaluations of trained models, as tables (and JSON).",
                           no_args_is_help=True)
app.add_typer(evaluate_app, name="evaluate")


def _print_report(report, json_out: Path | None) -> None:  # noqa: ANN001 - any report with table() and to_dict()
    """Print an evaluation report's table and, with --json, write it whole (atomically)."""
    import json

    from .fileio import write_atomic

    typer.echo(report.table())
    if json_out:
        write_atomic(json_out, json.dumps(report.to_dict(), indent=2) + "\n")


@evaluate_app.command(name="vc")
@_guarded
def evaluate_vc(
    data: Annotated[Path, typer.Option("--data", help="A parallel test set: a speech corpus folder or manifest "
                                                      "(its test split is used).")],
    model: VCModelOpt = Path("voice_conversion"),
    sentences: Annotated[int, typer.Option(help="Held-out sentences per ordered speaker pair.", min=1)] = 4,
    one_shot: Annotated[bool, typer.Option("--one-shot", help="Instead: convert the model's voices to the test "
                                           "set's voices it never heard (left out of training), each fitted from "
                                           "--references held-out sentences; beside the nearest-known-speaker "
                                           "baseline and in-table conversion.")] = False,
    references: Annotated[int, typer.Option(help="With --one-shot: reference sentences per voice.", min=1)] = 3,
    skip: Annotated[int, typer.Option(help="With --one-shot: pass over the first N parallel test sentences (another "
                                      "draw of scored and reference sentences, to check a choice made on the "
                                      "first).", min=0)] = 0,
    method: Annotated[str, typer.Option(help="With --one-shot: how a voice is made, as in `audiovae voice`; "
                                        "several, comma-separated, are compared on the same pairs (e.g. "
                                        "adapt,fit,blend,encoder).")] = "adapt",
    pitch: Annotated[str, typer.Option(help="Pitch register handling, as in `audiovae convert`.")] = "model",
    real: Annotated[Path | None, typer.Option("--real", help="Instead: a folder of real recordings of one speaker "
                                              "(e.g. /usr/share/festival/voices/russian/msu_ru_nsh_clunits/wav), "
                                              "converted to every speaker of the model; with --one-shot, the voice "
                                              "the model's speakers are converted into (made from its first "
                                              "--references recordings).", file_okay=False)] = None,
    files: Annotated[int, typer.Option(help="With --real: recordings to convert (the next 8 make the source's "
                                       "reference).", min=1)] = 5,
    vocoder: VocoderOpt = None,
    json_out: JsonOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Voice conversion on parallel held-out sentences, all ordered speaker pairs: MCD (DTW), pitch register error,
    resemblyzer similarity to target and source, speaker-ID accuracy; with the ceiling (target resynthesised) and
    the floor (source unconverted). --one-shot scores conversion to voices left out of training; --real
    scores conversion of real recordings of a speaker outside the corpus (no MCD: there is no parallel reading);
    --one-shot --real scores conversion of the model's speakers into that real speaker's voice.

    Example: audiovae evaluate vc --data corpora/speech --json vc.json   (the bundled model)
    """
    from .data.layouts import AUDIO_EXTENSIONS, discover
    from .evaluation.vc import evaluate_one_shot, evaluate_one_shot_real, evaluate_vc_real
    from .evaluation.vc import evaluate_vc as run
    from .pipelines.convert import check_pitch
    from .pipelines.voices import METHODS

    methods = tuple(m.strip() for m in method.split(","))
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise AudiovaeError(f"--method {','.join(bad)}: choose from {', '.join(METHODS)}")
    if skip and (real is not None or not one_shot):
        raise AudiovaeError("--skip applies to --one-shot on the corpus's voices (not with --real)")
    ckpt = _load(model, device)
    test = [e for e in discover(data) if e.split == "test"]
    if real is not None:
        if not real.is_dir():
            raise AudiovaeError(f"{real}: no such folder")
        recordings = sorted(p for p in real.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
        if one_shot:
            report = evaluate_one_shot_real(ckpt, test, recordings, sentences, references, methods,
                                            pitch=check_pitch(pitch), vocoder=vocoder)
        else:
            report = evaluate_vc_real(ckpt, test, recordings, files, pitch=check_pitch(pitch), vocoder=vocoder)
    elif one_shot:
        report = evaluate_one_shot(ckpt, test, sentences, references, methods, pitch=check_pitch(pitch), skip=skip,
                                   vocoder=vocoder)
    else:
        report = run(ckpt, test, sentences, pitch=check_pitch(pitch), vocoder=vocoder)
    _print_report(report, json_out)


@evaluate_app.command(name="denoise")
@_guarded
def evaluate_denoise(
    data: Annotated[Path, typer.Option("--data", help="Noisy/clean pairs: a noisy corpus folder, a manifest with "
                                                      "`clean`, or VoiceBank-DEMAND (its test split is used).")],
    model: Annotated[Path, typer.Option("--model", "-m", help="A denoising checkpoint (default: the bundled "
                                        "one); with --method prior a VAE of clean speech.",
                                        dir_okay=False)] = Path("denoise"),
    method: Annotated[str, typer.Option(help="mask, vocoder or prior (see `audiovae denoise "
                                        "--help`).")] = "mask",
    limit: Annotated[int, typer.Option(help="Score an evenly spaced subset of this many files (0 = all).",
                                       min=0)] = 0,
    clean_speech: Annotated[bool, typer.Option(help="Also denoise the real voices' clean references and score "
                                               "the output against its input (does it leave speech alone?).")]
    = True,
    keep_above: Annotated[float | None, typer.Option(min=0.01, max=1.0, help="As `audiovae denoise "
                                                     "--keep-above` (default: the denoiser's own).")] = None,
    split: Annotated[str, typer.Option(help="The split to score: test, or valid to tune settings without "
                                       "touching test.")] = "test",
    json_out: JsonOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Denoising on held-out mixtures: PESQ-wb, STOI and SI-SDR of the noisy input and of the output, overall,
    per SNR, per noise type (types absent from training marked unseen) and for the real voices apart; and clean
    real speech through the denoiser.

    Example: audiovae evaluate denoise --data corpora/noisy --json denoise.json
    """
    from .data.layouts import discover
    from .evaluation.denoise import evaluate_denoise as run
    from .pipelines.denoise import Denoiser

    if split not in ("test", "valid"):
        raise AudiovaeError(f"--split {split!r}: choose test or valid")
    chosen = {} if keep_above is None else {"keep_above": keep_above}
    denoiser = Denoiser(_load(model, device), method=method, **chosen)
    entries = discover(data)
    train_noises = {e.noise for e in entries if e.split == "train" and e.noise}
    report = run(denoiser, [e for e in entries if e.split == split], train_noises, limit=limit,
                 clean_pass=clean_speech, train_speakers={e.speaker for e in entries if e.split == "train"})
    _print_report(report, json_out)


@evaluate_app.command(name="vocoder")
@_guarded
def evaluate_vocoder(
    data: Annotated[Path, typer.Option("--data", help="A corpus folder or manifest (its test split is scored), "
                                                      "or a folder of audio files.")],
    vocoders: Annotated[list[str] | None, typer.Option("--vocoder", help="A vocoder to score (repeatable): "
                                                       "a vocoder by name (mel-griffin-lim), neural (the bundled "
                                                       "one) or a vocoder file; names are built for the first "
                                                       "file's features. Griffin-Lim 32 and 100 are always scored "
                                                       "beside them. Default: mel-griffin-lim and neural.")] = None,
    voices: Annotated[str, typer.Option(help="real (the recorded voice, festvox-ru's ru_nsh), synthetic (the "
                                        "corpus's TTS voices) or all.")] = "all",
    files: Annotated[int, typer.Option(help="Score an evenly spaced subset of this many files (0 = all).",
                                       min=0)] = 24,
    pghi: Annotated[bool, typer.Option("--pghi", help="Also score phase-gradient heap integration alone and "
                                       "Griffin-Lim 32 started from it.")] = False,
    json_out: JsonOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Vocoders from the true log-mels of held-out audio: DNSMOS (P.808, OVRL, SIG, BAK), PESQ-wb, mel L1 and
    multi-resolution STFT distance to the original, and speed, beside Griffin-Lim 32 and 100 and the original.

    Example: audiovae evaluate vocoder --data corpora/speech --vocoder runs/vocoder/model.safetensors --json v.json
    """
    from .data.corpora.noisy import REAL_SPEAKER
    from .data.layouts import discover
    from .device import resolve_device
    from .evaluation.vocoder import evaluate_vocoders
    from .pipelines.latent import choose_vocoder, choose_vocoders
    from .vocoders import DEFAULT_SYNTHESIS, VOCODERS

    if voices not in ("real", "synthetic", "all"):
        raise AudiovaeError(f"--voices {voices!r}: choose real, synthetic or all")
    dev = resolve_device(device)
    specs = vocoders or [DEFAULT_SYNTHESIS, "neural"]
    twice = sorted({spec for spec in specs if specs.count(spec) > 1})
    if twice:
        raise AudiovaeError(f"--vocoder {', '.join(twice)}: given more than once")
    chosen = {}
    for spec, v in choose_vocoders(specs).items():
        where = "bundled" if spec == "neural" else Path(spec).stem
        where = Path(spec).parent.name if where == "model" else where  # a training run's model.safetensors
        label = spec if spec in VOCODERS else f"{v.vocoder_type} ({where})"  # a vocoder by name: its name
        if label in chosen:
            raise AudiovaeError(f"--vocoder {spec}: another --vocoder is also called {label!r}; rename one file")
        chosen[label] = v.to(dev)
    mel = next(iter(chosen.values())).config
    for label, v in list(chosen.items()):
        if v.config.fingerprint() != mel.fingerprint():
            raise AudiovaeError(f"--vocoder {label}: made for other features than the first --vocoder")
    for n in (32, 100):
        chosen[f"Griffin-Lim {n}"] = choose_vocoder("griffin-lim", mel, n_iter=n).to(dev)
    if pghi:
        for n, label in ((0, "PGHI alone"), (32, "Griffin-Lim 32 from PGHI")):
            chosen[label] = choose_vocoder("griffin-lim", mel, n_iter=n, init="pghi").to(dev)
    entries = discover(data)
    test = [e for e in entries if e.split == "test"] or entries
    if voices != "all":
        test = [e for e in test if (e.speaker == REAL_SPEAKER) == (voices == "real")]
    if not test:
        raise AudiovaeError(f"{data}: no held-out ({voices}) files to score")
    report = evaluate_vocoders(chosen, test, mel, files)
    _print_report(report, json_out)


@evaluate_app.command(name="anomaly")
@_guarded
def evaluate_anomaly(
    models: Annotated[list[Path], typer.Option("--model", "-m", help="A detector (repeatable: one per machine "
                                               "type; detectors of another model type are a second system, "
                                               "compared in the same table).", dir_okay=False)],
    data: Annotated[Path, typer.Option("--data", help="A machine corpus, MIMII or DCASE folder, or a manifest "
                                                      "(its test split is scored).")],
    split: Annotated[str, typer.Option(help="The split to score: test, or valid (tuning).")] = "test",
    pooling: PoolingOpt = None,
    roc: Annotated[Path | None, typer.Option("--roc", help="Also write the ROC curves as PNG.", dir_okay=False)]
    = None,
    json_out: JsonOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Anomaly detectors on labelled clips, as DCASE Task 2 reports them: AUC and pAUC (FPR <= 0.1) per machine
    type, and per unit, anomaly type (test-only types marked) and SNR; precision, recall and F1 at each
    detector's threshold; scoring speed.

    Example: audiovae evaluate anomaly --model fan.safetensors --model pump.safetensors --data corpora/machines
    """
    from .data.layouts import discover
    from .evaluation.anomaly import evaluate_anomaly as run
    from .fileio import check_output_path
    from .pipelines.anomaly import Detector

    if split not in ("test", "valid"):
        raise AudiovaeError(f"--split {split!r}: choose test or valid")
    if roc is not None:
        check_output_path(roc)
    systems: dict[str, list] = {}
    for path in models:
        detector = Detector(_load(path, device), **({"pooling": pooling} if pooling else {}))
        systems.setdefault(detector.ckpt.model.model_type, []).append(detector)
    report = run(systems, discover(data), split)
    _print_report(report, json_out)
    if roc is not None:
        from .fileio import write_atomic

        write_atomic(roc, report.roc_png())
        typer.echo(f"wrote {roc}")


@evaluate_app.command(name="music")
@_guarded
def evaluate_music(
    data: Annotated[Path, typer.Option("--data", help="A music corpus folder or manifest: its test split is the "
                                                      "held-out music, its train split the floor's sample.")],
    model: Annotated[Path, typer.Option("--model", "-m", help="A music model (default: the bundled one).",
                                        dir_okay=False)] = Path("music"),
    clips: Annotated[int, typer.Option(help="Clips per set (held-out, train, prior, N(0, I)).", min=2)] = 32,
    seconds: Annotated[float, typer.Option(help="Length of each clip.", min=1.0)] = 10.0,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.", min=0.0, max=5.0)] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the first sample.")] = 0,
    vocoder: VocoderOpt = None,
    json_out: JsonOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Music model: reconstruction of held-out pieces (mel L1, multi-resolution STFT distance, beside the vocoder
    alone) and the Fréchet distance of MFCC/chroma/spectral-contrast frame statistics to the held-out music, for
    prior samples, per-frame N(0, I) samples (the baseline) and real training clips (the floor), in one run.

    Example: audiovae evaluate music --data corpora/music --json music.json   (the bundled model)
    """
    from .data.layouts import discover
    from .evaluation.music import evaluate_music as run

    ckpt = _load(model, device)
    entries = discover(data)
    test = [e for e in entries if e.split == "test"]
    if not test:
        raise AudiovaeError(f"{data}: no test split to hold out (a music corpus from `audiovae corpus music` "
                            "has one)")
    train = [e for e in entries if e.split == "train"]
    _print_report(run(ckpt, test, train, clips, seconds, temperature, seed, vocoder), json_out)


@evaluate_app.command(name="variants")
@_guarded
def evaluate_variants(
    models: Annotated[list[Path], typer.Argument(help="Models to compare (trained on the same front end).",
                                                 dir_okay=False)],
    data: Annotated[Path, typer.Option("--data", help="A corpus folder or manifest: its test split is held out, "
                                                      "its train split gives the Fréchet floor.")],
    clips: Annotated[int, typer.Option(help="Held-out clips (and prior samples) per model.", min=2)] = 32,
    seconds: Annotated[float, typer.Option(help="Length of each clip.", min=0.5)] = 4.0,
    seed: Annotated[int, typer.Option(help="Seed of the first prior sample.")] = 0,
    vocoder: VocoderOpt = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Also write the table as Markdown.",
                                                  dir_okay=False)] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Also write the table as CSV.", dir_okay=False)
                       ] = None,
    json_out: JsonOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Compare models of the VAE family on the same held-out clips: mel L1 and multi-resolution STFT distance of
    the reconstruction, rate (KL, or code entropy for a VQ-VAE, in bits per second), active units, codebook
    perplexity, the Fréchet distance of each model's prior samples to the held-out audio, and training speed
    (a few timed steps of each, one after another).

    Example: audiovae evaluate variants runs/speech_vae/model.safetensors runs/speech_vqvae/model.safetensors
    --data corpora/speech --markdown table.md
    """
    from .data.layouts import discover
    from .evaluation.variants import evaluate_variants as run
    from .fileio import check_output_path, write_atomic

    for path in (markdown, csv_out):  # checked before any work
        if path is not None:
            check_output_path(path)
    loaded = [(m, _load(m, device)) for m in models]
    types = [type(c.model).model_type for _, c in loaded]
    named = [(t if types.count(t) == 1 else f"{t} ({m.parent.name or m.stem})", c)
             for t, (m, c) in zip(types, loaded, strict=True)]
    entries = discover(data)
    test = [e for e in entries if e.split == "test"]
    if not test:
        raise AudiovaeError(f"{data}: no test split to hold out (corpora from `audiovae corpus` have one)")
    report = run(named, test, [e for e in entries if e.split == "train"], clips, seconds, seed, vocoder)
    for path, text in ((markdown, report.markdown()), (csv_out, report.csv())):
        if path is not None:
            write_atomic(path, text + ("\n" if not text.endswith("\n") else ""))
    _print_report(report, json_out)


corpus_app = typer.Typer(help="Build the offline corpora (speech, noisy speech, music, machine sounds) used by "
                              "recipes and tests.",
                         no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")

WorkersOpt = Annotated[int, typer.Option(help="Parallel processes (0 = one per CPU core).", min=0)]
SeedOpt = Annotated[int, typer.Option(help="Seed of every random choice (the output is identical for a seed).")]


def corpus_command(fn: F) -> F:
    """Like :func:`command`, on the ``corpus`` sub-app."""
    corpus_app.command(help=fn.__doc__)(_guarded(fn))
    return fn


@corpus_command
def speech(
    out: Annotated[Path, typer.Argument(help="Output folder.", file_okay=False)],
    sentences: Annotated[int, typer.Option(help="Harvard sentences per speaker (720 = all).", min=1, max=720)] = 720,
    speakers: Annotated[str | None, typer.Option(help="Comma-separated voices, or a set: default (the 8 voices of "
                                                 "the bundled model) or extended (24, for one-shot conversion).")
                        ] = None,
    holdout_speaker: Annotated[str | None, typer.Option(help="Put every file of this speaker in the test split.")]
    = None,
    workers: WorkersOpt = 0,
    seed: SeedOpt = 0,
) -> None:
    """Synthesise a parallel multi-speaker English corpus with festival and flite (every speaker, same sentences).

    Splits are by sentence: a test sentence never appears in training.

    Example: audiovae corpus speech corpora/speech --sentences 100
    """
    from .data.corpora.speech import SPEAKER_SETS, SpeechCorpusConfig, build_speech_corpus

    speakers = speakers or "default"
    names = SPEAKER_SETS.get(speakers) or tuple(s.strip() for s in speakers.split(","))
    cfg = SpeechCorpusConfig(sentences=sentences, speakers=names, holdout_speaker=holdout_speaker, workers=workers,
                             seed=seed)
    typer.echo(str(build_speech_corpus(out, cfg)))


@corpus_command
def noisy(
    out: Annotated[Path, typer.Argument(help="Output folder.", file_okay=False)],
    clean: Annotated[Path | None, typer.Option(help="Clean speech: a built speech corpus or a dataset of a known "
                                                    "layout, e.g. speechocean762 as released (its speaker splits are "
                                                    "kept). Default: build a synthetic one inside OUT.")] = None,
    sentences: Annotated[int, typer.Option(help="Sentences per speaker when building the clean corpus.", min=1)]
    = 120,
    music: Annotated[Path | None, typer.Option(help="A built music corpus for the music noise (default: "
                                                    "synthesised notes).")] = None,
    snrs: Annotated[str, typer.Option(help="Comma-separated SNRs in dB.")] = "-5,0,5,10,15,20",
    real_voice: Annotated[bool, typer.Option(help="Add festvox-ru's real recordings (speaker ru_nsh).")] = True,
    noise_dir: Annotated[Path | None, typer.Option(help="Recorded noises, one folder per type (`audiovae corpus "
                                                        "noise` gathers the ones Debian packages ship).",
                                                   file_okay=False)] = None,
    test_only_noise: Annotated[list[str] | None, typer.Option(help="A recorded noise type (a folder of "
                                                              "--noise-dir) heard only in the test split; "
                                                              "repeatable.")] = None,
    clean_fraction: Annotated[float, typer.Option(help="Share of training mixtures with no noise at all, so the "
                                                  "model learns to leave clean speech alone.", min=0.0,
                                                  max=0.99)] = 0.0,
    test_files_per_speaker: Annotated[int, typer.Option(help="At most this many clean test files per speaker "
                                                        "(0 = all).", min=0)] = 0,
    mixtures_per_file: Annotated[int, typer.Option(help="Training mixtures made of each clean file, each with its "
                                                   "own noise, noise segment and SNR (test keeps 2).", min=1)] = 2,
    workers: WorkersOpt = 0,
    seed: SeedOpt = 0,
) -> None:
    """Mix clean speech with white/pink/brown noise, hum, babble, reverberation (music and factory: test only) and
    recorded noises (--noise-dir).

    Examples: audiovae corpus noisy corpora/noisy --clean corpora/speech --music corpora/music;
    audiovae corpus noisy corpora/real --clean speechocean762 --noise-dir corpora/noise --test-only-noise rain
    """
    from .data.corpora.noisy import NoisyCorpusConfig, build_noisy_corpus, composition
    from .data.manifest import read_manifest
    from .errors import ConfigError

    try:
        snr_values = tuple(float(x) for x in snrs.split(","))
    except ValueError:
        raise ConfigError(f"--snrs {snrs!r}: expected comma-separated numbers, e.g. -5,0,5,10") from None
    cfg = NoisyCorpusConfig(clean=str(clean) if clean else None, clean_sentences=sentences,
                            music=str(music) if music else None, snrs=snr_values, real_voice=real_voice,
                            noise_dir=str(noise_dir) if noise_dir else None,
                            test_only_recorded=tuple(test_only_noise or ()), clean_fraction=clean_fraction,
                            test_files_per_speaker=test_files_per_speaker, mixtures_per_file=mixtures_per_file,
                            workers=workers, seed=seed)
    typer.echo(str(build_noisy_corpus(out, cfg)))
    typer.echo("\n" + composition(read_manifest(out / "manifest.jsonl")))


@corpus_command
def noise(
    out: Annotated[Path, typer.Argument(help="Output folder: one folder of recordings per noise type.",
                                        file_okay=False)],
    root: Annotated[Path, typer.Option(help="Where the packages' files are: / when they are installed, or the "
                                       "folder recipes/denoise/fetch_noise.sh unpacked them into.",
                                       file_okay=False)] = Path("/"),
    sample_rate: Annotated[int, typer.Option(help="Sample rate of the files written.", min=8000)] = 22050,
) -> None:
    """Gather the real recorded noise that Debian's game and simulator data packages ship (rain, wind, water,
    nature, crowds, thunder, vehicles, fire, machinery; CC0, CC-BY, CC-BY-SA or GPL) into a noise folder for
    `corpus noisy --noise-dir`, with sources.csv (package, path, licence, seconds).

    Example: bash recipes/denoise/fetch_noise.sh debs && audiovae corpus noise corpora/noise --root debs/root
    """
    from .data.corpora.noise import build_noise_folder

    seconds = build_noise_folder(out, root, sample_rate)
    for kind, secs in seconds.items():
        typer.echo(f"  {kind:10s} {secs / 60:5.1f} min")


@corpus_command
def music(
    out: Annotated[Path, typer.Argument(help="Output folder.", file_okay=False)],
    minutes: Annotated[float, typer.Option(help="Total duration to render.", min=0.1)] = 75.0,
    soundfont: Annotated[Path | None, typer.Option(help="A General-MIDI .sf2 (default: FluidR3_GM, else "
                                                        "TimGM6mb).")] = None,
    workers: WorkersOpt = 0,
    seed: SeedOpt = 0,
) -> None:
    """Render music21's bundled scores (chorales, folk tunes, ...) with fluidsynth on several instruments.

    Splits are by piece. Example: audiovae corpus music corpora/music --minutes 75
    """
    from .data.corpora.music import MusicCorpusConfig, build_music_corpus

    cfg = MusicCorpusConfig(minutes=minutes, soundfont=str(soundfont) if soundfont else None, workers=workers,
                            seed=seed)
    typer.echo(str(build_music_corpus(out, cfg)))


@corpus_command
def machines(
    out: Annotated[Path, typer.Argument(help="Output folder.", file_okay=False)],
    types: Annotated[str, typer.Option("--machines", help="Comma-separated machine types.")]
    = "fan,pump,bearing,slider",
    units: Annotated[int, typer.Option(help="Units (machines) per type, each of slightly different character.",
                                       min=1)] = 4,
    train: Annotated[int, typer.Option(help="Normal training clips per unit.", min=1)] = 40,
    seconds: Annotated[float, typer.Option(help="Clip length.", min=0.5)] = 4.0,
    snrs: Annotated[str, typer.Option(help="Comma-separated SNRs in dB (machine to factory noise).")] = "-6,0,6",
    workers: WorkersOpt = 0,
    seed: SeedOpt = 0,
) -> None:
    """Synthesise machine sounds for anomaly detection (fan, pump, bearing, slide rail) in the MIMII layout:
    normal training clips; valid and test clips with anomalies (drift, click, imbalance; rub and leak in test only),
    in factory noise at each SNR.

    Example: audiovae corpus machines corpora/machines
    """
    from .data.corpora.machines import MachineCorpusConfig, build_machine_corpus
    from .errors import ConfigError

    try:
        snr_values = tuple(float(x) for x in snrs.split(","))
    except ValueError:
        raise ConfigError(f"--snrs {snrs!r}: expected comma-separated numbers, e.g. -6,0,6") from None
    cfg = MachineCorpusConfig(machines=tuple(m.strip() for m in types.split(",") if m.strip()), units=units,
                              train=train, seconds=seconds, snrs=snr_values, workers=workers, seed=seed)
    typer.echo(str(build_machine_corpus(out, cfg)))


@command
def cache(
    data: Annotated[Path, typer.Argument(help="A corpus folder, a manifest.jsonl or a dataset folder.")],
    cache_dir: Annotated[Path, typer.Option("--cache-dir", help="Where feature shards go.", file_okay=False)]
    = Path(".audiovae-cache"),
    layout: Annotated[str, typer.Option(help="auto, manifest, speakers, vctk, libritts, voicebank, mimii, dcase or "
                                        "music.")]
    = "auto",
    workers: WorkersOpt = 0,
) -> None:
    """Precompute log-mel features of a dataset into memory-mapped shards (reused until files or MelConfig change).

    Unreadable files are listed and skipped. Example: audiovae cache corpora/speech --cache-dir cache
    """
    from .data.cache import FeatureCache
    from .data.layouts import discover
    from .features import MelConfig

    entries = discover(data, layout)
    paths = [e.path for e in entries] + [e.clean for e in entries if e.clean]
    store = FeatureCache(cache_dir, MelConfig())
    before = len(store)
    skipped = store.update(paths, workers=workers)
    typer.echo(f"{store.dir}: {len(store)} files cached ({len(store) - before} new), {len(skipped)} skipped")
    for s in skipped:
        typer.echo(f"  skipped {s}")


@command
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
    r"""Serve a local web page for conversion, denoising and music, with the models listed (needs the ui extra:
    pip install 'audiovae\[ui]'). The page calls the same functions as these commands; stop it with Ctrl-C.

    Examples: audiovae ui;  audiovae ui --port 8000 --models runs/
    """
    from .ui import require_extra

    require_extra()
    from .ui.server import is_loopback, serve
    from .ui.studio import Limits

    if not is_loopback(host):
        typer.echo(f"audiovae: warning: listening on {host}: anyone who can reach this address can use the page",
                   err=True)
    limits = Limits(max_upload_mb=max_upload_mb, max_seconds=max_seconds)
    serve(host, port, str(models) if models else None, device, max_queue, limits,
          on_ready=lambda url: typer.echo(f"audiovae ui: serving at {url} (Ctrl-C to stop)"))


@command
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A model checkpoint or a vocoder file (or a bundled model's name: "
                                               "voice_conversion, denoise, music, vocoder).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The folder to write (created; it must not exist "
                                         "or be empty, unless --force).", file_okay=False)],
    fmt: Annotated[str, typer.Option("--format", "-f", help="torchscript (.pt, torch.jit.load in C++ or Python) "
                                     "or onnx (.onnx, needs the export extra: pip install 'audiovae[export]').")
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
    from .export import export as run

    chosen = [p.strip() for p in parts.split(",") if p.strip()] if parts else None
    report = run(checkpoint, output, fmt, chosen, vocoder, force)
    for part in report.parts:
        typer.echo(f"  {part.name:<9} {part.file:<13} max |exported - PyTorch| {part.max_abs_error:.1e} "
                   f"(tolerance {part.tolerance:.0e})")
    for note in report.notes:
        typer.echo(f"  note: {note}")
    typer.echo(f"wrote {output}/ ({report.format}: {', '.join(p.name for p in report.parts)}; export.json)")


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
