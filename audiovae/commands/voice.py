"""Voice: ``speakers``, ``convert``, ``voice``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from ..errors import AudiovaeError
from ._shared import (
    VOICE,
    BlockOpt,
    DeviceOpt,
    StreamOpt,
    VCModelOpt,
    VocoderOpt,
    _batch,
    _load,
    _seconds,
    choice,
    command,
)

VOICE_MODEL = "a voice-conversion model"
METHODS = ("adapt", "fit", "blend", "encoder")  # pipelines.voices.METHODS (it imports torch; help is built at start)


@command("List a voice-conversion model's speakers (voice, sex, F0).", VOICE)
def speakers(
    model: VCModelOpt = Path("voice_conversion"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON: one object per speaker (index, "
                                          "name, voice, corpus, speaker_id, sex, median_f0_hz, ...).")] = False,
) -> None:
    """List the speakers of a voice-conversion model: index and name (either works for --speaker, and so does the
    voice's name) and, where the model records them, the voice each comes from (corpus and speaker id there), its sex
    and its median F0 on the training data.

    Example: audiovae speakers   (the bundled model: where each voice comes from)
    """
    from ..pipelines.convert import speaker_rows

    ckpt = _load(model, "cpu", VOICE_MODEL)
    rows = speaker_rows(ckpt)
    if as_json:
        typer.echo(json.dumps(rows, indent=1, ensure_ascii=False))
        return
    # a bundled model's lettered voices first (a table of 100+ real speakers otherwise hides them); indices unchanged
    rows = sorted(rows, key=lambda r: (len(str(r["name"])) != 1 or not str(r["name"]).isupper(), r["index"]))
    width = max((len(str(r["name"])) for r in rows), default=0)
    voice_width = max((len(str(r.get("voice", ""))) for r in rows), default=0)
    for r in rows:
        line = f"{r['index']:3d}  {r['name']:<{width}}"
        if "voice" in r:
            line += f"  {r['voice']:<{voice_width}} {r.get('sex', ''):<7}"
        if "median_f0_hz" in r:
            line += f"  F0 {r['median_f0_hz']:3.0f} Hz"
        if "made_by" in r or "about" in r:
            line += "  " + ": ".join(str(r[k]) for k in ("made_by", "about") if k in r)
        elif "corpus" in r:
            line += f"  {r['corpus']} speaker {r.get('speaker_id', '?')}"
        typer.echo(line.rstrip())
    typer.echo("any other voice: --speaker-ref REF.wav (one-shot, 3 s or more; `audiovae voice` saves it)")


@command("Convert speech to another voice: a speaker, or a recording's.", VOICE)
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
    from .. import audio
    from ..pipelines.batch import output_name
    from ..pipelines.convert import check_pitch
    from ..pipelines.convert import convert as run
    from ..pipelines.latent import vocoder_for
    from ..pipelines.voices import target_voice

    if (speaker is None) == (not speaker_ref):
        raise AudiovaeError("give the target voice as --speaker NAME or as --speaker-ref REF.wav (one of the two)")
    pitch_mode = check_pitch(pitch)
    ckpt = _load(model, device, VOICE_MODEL)
    sr, min_samples = ckpt.mel.sample_rate, ckpt.mel.min_samples
    if speaker_ref:  # a bad reference fails before any work
        voice = _fit_voice(ckpt, speaker_ref)
    else:
        voice = target_voice(ckpt, speaker)  # an unknown target or a bad voice file fails before any work
    synth = vocoder_for(ckpt, vocoder, prefer_trained=stream)  # streamed windows are crossfaded

    if stream:
        from ..pipelines.convert import stream_processor
        from ..pipelines.stream import stream_file

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
    from .. import audio
    from ..pipelines.voices import reference_voice

    waves = [audio.load(p, ckpt.mel.sample_rate, min_samples=ckpt.mel.min_samples)[0] for p in references]
    return reference_voice(ckpt, waves, name or references[0].stem, method, steps, [str(p) for p in references])


@command("Fit a voice from recordings of it, for convert --speaker.", VOICE)
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
                                        "lands near the table's voices).", **choice(*METHODS))] = "adapt",
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
    from ..fileio import check_output_path
    from ..pipelines.voices import is_voice_file, save_voice, steps_of

    if not is_voice_file(output):
        raise AudiovaeError(f"{output}: a voice file ends in .safetensors")
    check_output_path(output, tuple(references))
    ckpt = _load(model, device, VOICE_MODEL)
    t0 = time.perf_counter()
    fitted = _fit_voice(ckpt, references, name, method, steps)
    seconds = time.perf_counter() - t0
    save_voice(fitted, output, ckpt, method=method, steps=steps_of(method, steps),
               references=[p.name for p in references])
    register = f", median F0 {fitted.register.median_hz:.0f} Hz" if fitted.register else ""
    typer.echo(f"{output}: voice {fitted.name} from {len(references)} recording(s) ({method}, {_seconds(seconds)})"
               f"{register}")
