"""Latent tools: ``reconstruct``, ``encode``, ``decode``, ``interpolate``, ``vector``, ``edit``, ``traverse``,
``latent-map``: what a model's latent space holds, and moving recordings through it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import AudiovaeError
from ._shared import LATENT, DeviceOpt, ModelOpt, OutOpt, SpeakerOpt, VocoderOpt, _audio_list, _load, choice, command


@command("Encode and decode a file through a model (compare resynth).", LATENT)
def reconstruct(input: Annotated[Path, typer.Argument(help="Audio file.")], output: OutOpt,
                model: ModelOpt = Path("voice_conversion"), speaker: SpeakerOpt = None, vocoder: VocoderOpt = None,
                device: DeviceOpt = "auto") -> None:
    """Pass a file through a trained model: encode, decode (posterior mean), vocode. Compare with `resynth`.
    Without --model, the bundled voice-conversion model (then --speaker picks the voice it is decoded in).

    Example: audiovae reconstruct speech.wav -o speech_vae.wav --model runs/speech_vae/model.safetensors
    """
    from .. import audio
    from ..fileio import check_output_path
    from ..pipelines import latent

    check_output_path(output, (input,))
    ckpt = _load(model, device)
    wave, sr = audio.load(input, ckpt.mel.sample_rate, min_samples=ckpt.mel.min_samples)
    audio.save(output, latent.reconstruct(wave, ckpt, speaker, latent.vocoder_for(ckpt, vocoder)), sr)
    typer.echo(f"wrote {output}")


@command("Encode a file to its latent sequence (.npz).", LATENT)
def encode(input: Annotated[Path, typer.Argument(help="Audio file.")],
           output: Annotated[Path, typer.Option("--output", "-o", help="Latents (.npz: z0 [dim, frames], metadata).",
                                                dir_okay=False)],
           model: ModelOpt, speaker: SpeakerOpt = None, device: DeviceOpt = "auto") -> None:
    """Encode a file to its latent sequence (posterior means) as a .npz: array z0 [latent_dim, latent_frames] (z1,
    ... for models with several levels) and the hop factor, sample rate and hop length it was made at.

    Example: audiovae encode speech.wav -o z.npz --model model.safetensors
    """
    from .. import audio
    from ..pipelines import latent

    latent.check_latents_path(output)
    ckpt = _load(model, device)
    wave, _ = audio.load(input, ckpt.mel.sample_rate, min_samples=ckpt.mel.min_samples)
    z = latent.encode(wave, ckpt, speaker)
    latent.save_latents(output, [z], hop_factor=ckpt.model.hop_factor, sample_rate=ckpt.mel.sample_rate,
                        hop_length=ckpt.mel.hop_length)
    typer.echo(f"wrote {output} z0 {tuple(z.shape)}")


@command("Decode latents (.npz or .npy) to audio.", LATENT)
def decode(latents: Annotated[Path, typer.Argument(help="Latents (.npz from `audiovae encode`, or an older .npy).")],
           output: OutOpt, model: ModelOpt, speaker: SpeakerOpt = None, vocoder: VocoderOpt = None,
           device: DeviceOpt = "auto") -> None:
    """Decode latents (.npz from `audiovae encode`, or a .npy array [latent_dim, frames]) to audio.

    Example: audiovae decode z.npz -o out.wav --model model.safetensors
    """
    from .. import audio
    from ..fileio import check_output_path
    from ..pipelines import latent

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


@command("Walk the latent space from one file to another.", LATENT)
def interpolate(a: Annotated[Path, typer.Argument(help="First audio file.")],
                b: Annotated[Path, typer.Argument(help="Second audio file.")], output: OutOpt, model: ModelOpt,
                steps: Annotated[int, typer.Option(help="Points on the path, ends included.", min=2)] = 5,
                path: Annotated[str, typer.Option(help="linear or slerp (spherical, per latent frame).",
                                                 **choice("linear", "slerp"))] = "linear",
                speaker: SpeakerOpt = None, vocoder: VocoderOpt = None, device: DeviceOpt = "auto") -> None:
    """Walk the latent space from A to B; the output holds the steps one after another, 0.3 s apart.

    Example: audiovae interpolate a.wav b.wav -o walk.wav --steps 5 --path slerp --model model.safetensors
    """
    from .. import audio
    from ..api import Model
    from ..fileio import check_output_path

    check_output_path(output, (a, b))
    wave, sr = Model(_load(model, device), vocoder).interpolate(a, b, steps, path, speaker)
    audio.save(output, wave, sr)
    typer.echo(f"wrote {output} ({steps} steps)")


@command("An attribute vector: the mean latent of set A minus set B's.", LATENT)
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

    from ..fileio import check_output_path
    from ..pipelines.attributes import attribute_vector, save_vector
    from ..progress import bar_off

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


@command("Move a recording along an attribute vector.", LATENT)
def edit(input: Annotated[Path, typer.Argument(help="Audio file.")], output: OutOpt, model: ModelOpt,
         vector_file: Annotated[Path, typer.Option("--vector", help="A vector from `audiovae vector` (.npy).",
                                                   dir_okay=False)],
         scale: Annotated[float, typer.Option(help="How far to move: 0 reconstructs, 1 adds the vector once, "
                                              "negative moves the other way.", min=-10.0, max=10.0)] = 1.0,
         speaker: SpeakerOpt = None, vocoder: VocoderOpt = None, device: DeviceOpt = "auto") -> None:
    """Move a recording along an attribute vector: encode, add SCALE x VECTOR to every latent frame, decode.

    Example: audiovae edit bob.wav -o bob_to_alice.wav --vector alice_minus_bob.npy --scale 0.8 --model m.safetensors
    """
    from .. import audio
    from ..fileio import check_output_path
    from ..pipelines import attributes, latent

    check_output_path(output, (input,))
    ckpt = _load(model, device)
    direction = attributes.load_vector(vector_file, ckpt.model.config.latent_dim)
    wave, sr = audio.load(input, ckpt.mel.sample_rate, min_samples=ckpt.mel.min_samples)
    audio.save(output, attributes.edit(wave, ckpt, direction, scale, speaker, latent.vocoder_for(ckpt, vocoder)), sr)
    typer.echo(f"wrote {output} (scale {scale:g})")


@command("Plot what each latent dimension controls (a traversal).", LATENT)
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
    from .. import audio
    from ..fileio import check_output_path, write_atomic
    from ..pipelines.attributes import traversal
    from ..plots import traversal_png

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


@command("Map recordings' latents in 2-D, coloured by speaker.", LATENT)
def latent_map(
    data: Annotated[Path, typer.Argument(help="Recordings by speaker: a corpus, a manifest, or a folder per "
                                              "speaker (or instrument).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The map (.png).", dir_okay=False)],
    model: ModelOpt,
    per_label: Annotated[int, typer.Option("--per-speaker", help="Recordings per speaker at most (evenly spread).",
                                           min=1)] = 40,
    split: Annotated[str, typer.Option(help="Which split of a corpus: train, valid, test or all.",
                                       **choice("train", "valid", "test", "all"))] = "all",
    speaker: SpeakerOpt = None, device: DeviceOpt = "auto",
) -> None:
    """A 2-D map of utterance latents (posterior means averaged over each recording, on their two principal axes),
    coloured by speaker, and how well the speakers separate in the full latent space (nearest-centroid accuracy).

    Example: audiovae latent-map corpora/speech -o speakers.png --split test --model runs/speech_vae/model.safetensors
    """
    import numpy as np
    from tqdm.auto import tqdm

    from ..data.layouts import discover
    from ..fileio import check_output_path, write_atomic
    from ..pipelines.attributes import file_latents
    from ..pipelines.attributes import latent_map as build_map
    from ..plots import latent_map_png
    from ..progress import bar_off

    check_output_path(output)
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
