"""Training and data: ``train``, ``configs``, ``cache`` and the ``corpus`` group (speech, noisy, noise, music,
machines)."""

from __future__ import annotations

import os
import shutil
import textwrap
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from ..errors import AudiovaeError
from ._shared import DATA, DeviceOpt, WorkersOpt, _config_names, choice, command, group, names_or_files

LAYOUTS = ("auto", "manifest", "speakers", "vctk", "libritts", "voicebank", "speechocean762", "mimii", "dcase",
           "music")  # "auto" and data.layouts.LAYOUTS (it imports torch; help is built at start-up)
SeedOpt = Annotated[int, typer.Option(help="Seed of every random choice (the output is identical for a seed).")]


@command("Train a model from a YAML config (see configs).", DATA)
def train(
    config: Annotated[str, typer.Argument(help="A YAML file, or a packaged config (`audiovae configs` describes "
                                          f"each): {', '.join(_config_names())}.",
                                          autocompletion=names_or_files(_config_names))],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides, e.g. train.steps=500 "
                                                                "data.train=corpora/speech.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in train.out_dir exactly where its last "
                                                          "checkpoint left it.")] = False,
    device: DeviceOpt = "auto",
) -> None:
    """Train a model; checkpoints, CSV log and validation plots go to train.out_dir. Multi-GPU/CPU: torchrun.

    Example: audiovae train speech_vae data.train=corpora/speech train.steps=3000
    """
    from ..training import train as run

    path = run(config, overrides or [], device=device, resume=resume)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line, not one per process
        typer.echo(f"wrote {path}")


@command("List the packaged configs, each with its description.", DATA)
def configs() -> None:
    """List the packaged configs that `audiovae train NAME` takes, each with the first line of its description.

    Example: audiovae configs;  audiovae train speech_cvae data.train=corpora/speech
    """
    root = resources.files("audiovae").joinpath("configs")
    names = _config_names()
    width = max(map(len, names))
    columns = max(shutil.get_terminal_size().columns, 60)
    for name in names:
        text = root.joinpath(f"{name}.yaml").read_text(encoding="utf-8")
        first = next((ln.lstrip("#").strip() for ln in text.splitlines() if ln.startswith("#")), "")
        typer.echo(textwrap.fill(f"{name:<{width}}  {first}", columns - 1, subsequent_indent=" " * (width + 2),
                                 break_on_hyphens=False, break_long_words=False))
    typer.echo(f"\nEach is a YAML file in {root}; train one with `audiovae train NAME [key=value ...]`, or copy one "
               "and train from your copy.")


corpus_app = group("corpus", "Build the offline corpora (speech, noisy speech, music, machine sounds) used by recipes "
                   "and tests.", "Build the offline corpora (speech, noise, music, machines).", DATA)


@command("Synthesise a parallel multi-speaker English corpus.", on=corpus_app)
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
    from ..data.corpora.speech import SPEAKER_SETS, SpeechCorpusConfig, build_speech_corpus

    speakers = speakers or "default"
    names = SPEAKER_SETS.get(speakers) or tuple(s.strip() for s in speakers.split(","))
    cfg = SpeechCorpusConfig(sentences=sentences, speakers=names, holdout_speaker=holdout_speaker, workers=workers,
                             seed=seed)
    typer.echo(str(build_speech_corpus(out, cfg)))


@command("Split a recorded multi-speaker dataset for voice conversion.", on=corpus_app)
def voices(
    out: Annotated[Path, typer.Argument(help="Output folder (a manifest; no audio is copied).", file_okay=False)],
    source: Annotated[Path, typer.Option("--source", help="Recorded speech with speaker labels: speechocean762 as "
                                         "released, a folder per speaker, VCTK, LibriTTS or a manifest.")],
    unheard_per_sex: Annotated[int, typer.Option(help="Whole speakers per sex left out of training for one-shot "
                                                 "evaluation (from the dataset's test speakers where it has "
                                                 "them).", min=0)] = 10,
    test_per_speaker: Annotated[int, typer.Option(help="Utterances of each table speaker held out for scoring.",
                                                  min=1)] = 3,
    valid_per_speaker: Annotated[int, typer.Option(help="Utterances of each table speaker for validation.",
                                                   min=0)] = 1,
    seed: SeedOpt = 0,
) -> None:
    """Split real recordings for voice conversion: the table speakers' utterances into train/valid/test (a few of each
    speaker held out), and whole unheard speakers, balanced by sex, into test for one-shot conversion.

    Example: audiovae corpus voices corpora/voices --source speechocean762
    """
    from ..data.corpora.voices import VoiceCorpusConfig, build_voice_corpus

    if not source.exists():
        raise AudiovaeError(f"{source}: no such file or folder")
    cfg = VoiceCorpusConfig(str(source), unheard_per_sex, test_per_speaker, valid_per_speaker, seed=seed)
    typer.echo(str(build_voice_corpus(out, cfg)))


@command("Mix clean speech with noises at several SNRs.", on=corpus_app)
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
    vary_recorded: Annotated[float, typer.Option(help="Share of training and validation mixtures of recorded noise "
                                                 "whose noise is played at a random speed (0.5-2x) under a random "
                                                 "spectral tilt: more kinds of machine, engine and weather than the "
                                                 "recordings hold (never in test).", min=0.0, max=1.0)] = 0.0,
    pulse_recorded: Annotated[float, typer.Option(help="Share of training and validation mixtures of recorded noise "
                                                  "heard in pulses (2-15 a second, a fresh stretch of the recording "
                                                  "in each): transient noise such as chuffs, strokes and footsteps "
                                                  "(never in test).", min=0.0, max=1.0)] = 0.0,
    train_only_noise: Annotated[list[str] | None, typer.Option(help="A noise type heard only in training and "
                                                               "validation: a synthetic family (engine: harmonics "
                                                               "of a wandering rotation over broadband noise) or a "
                                                               "recorded type (a folder of --noise-dir); "
                                                               "repeatable. The test split is unchanged by it.")]
    = None,
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
    from ..data.corpora.noisy import NoisyCorpusConfig, build_noisy_corpus, composition, split_train_only
    from ..data.manifest import read_manifest
    from ..errors import ConfigError

    try:
        snr_values = tuple(float(x) for x in snrs.split(","))
    except ValueError:
        raise ConfigError(f"--snrs {snrs!r}: expected comma-separated numbers, e.g. -5,0,5,10") from None
    families, recorded_only = split_train_only(train_only_noise or ())
    cfg = NoisyCorpusConfig(clean=str(clean) if clean else None, clean_sentences=sentences,
                            music=str(music) if music else None, snrs=snr_values, real_voice=real_voice,
                            noise_dir=str(noise_dir) if noise_dir else None,
                            test_only_recorded=tuple(test_only_noise or ()), clean_fraction=clean_fraction,
                            vary_recorded=vary_recorded, pulse_recorded=pulse_recorded,
                            train_only_noises=families, train_only_recorded=recorded_only,
                            test_files_per_speaker=test_files_per_speaker, mixtures_per_file=mixtures_per_file,
                            workers=workers, seed=seed)
    typer.echo(str(build_noisy_corpus(out, cfg)))
    typer.echo("\n" + composition(read_manifest(out / "manifest.jsonl")))


@command("Gather the real recorded noise Debian packages ship.", on=corpus_app)
def noise(
    out: Annotated[Path, typer.Argument(help="Output folder: one folder of recordings per noise type.",
                                        file_okay=False)],
    root: Annotated[Path, typer.Option(help="Where the packages' files are: / when they are installed, or the "
                                       "folder recipes/denoise/fetch_noise.sh unpacked them into.",
                                       file_okay=False)] = Path("/"),
    sample_rate: Annotated[int, typer.Option(help="Sample rate of the files written.", min=8000)] = 22050,
    clatter: Annotated[int, typer.Option(help="Also write this many 30-s scenes of short recorded events "
                                         "(footsteps, doors, keys, glass) scattered at random: the clatter type of "
                                         "a house or an office (0: none). `corpus noisy` mixes it into every split "
                                         "unless named by --train-only-noise or --test-only-noise.", min=0)] = 0,
    seed: SeedOpt = 0,
) -> None:
    """Gather the real recorded noise that Debian's game and simulator data packages ship (rain, wind, water,
    nature, crowds, thunder, vehicles, fire, machinery; CC0, CC-BY, CC-BY-SA or GPL) into a noise folder for
    `corpus noisy --noise-dir`, with sources.csv (package, path, licence, seconds).

    Example: bash recipes/denoise/fetch_noise.sh debs && audiovae corpus noise corpora/noise --root debs/root
    """
    from ..data.corpora.noise import build_noise_folder

    seconds = build_noise_folder(out, root, sample_rate, clatter_scenes=clatter, seed=seed)
    for kind, secs in seconds.items():
        typer.echo(f"  {kind:10s} {secs / 60:5.1f} min")


@command("Render music21's scores with fluidsynth on several instruments.", on=corpus_app)
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
    from ..data.corpora.music import MusicCorpusConfig, build_music_corpus

    cfg = MusicCorpusConfig(minutes=minutes, soundfont=str(soundfont) if soundfont else None, workers=workers,
                            seed=seed)
    typer.echo(str(build_music_corpus(out, cfg)))


@command("Synthesise machine sounds for anomaly detection (MIMII layout).", on=corpus_app)
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
    normal training clips; valid and test clips with anomalies (drift, click, imbalance; rub, leak, looseness and
    bearing wear in test only), in factory noise at each SNR.

    Example: audiovae corpus machines corpora/machines
    """
    from ..data.corpora.machines import MachineCorpusConfig, build_machine_corpus
    from ..errors import ConfigError

    try:
        snr_values = tuple(float(x) for x in snrs.split(","))
    except ValueError:
        raise ConfigError(f"--snrs {snrs!r}: expected comma-separated numbers, e.g. -6,0,6") from None
    cfg = MachineCorpusConfig(machines=tuple(m.strip() for m in types.split(",") if m.strip()), units=units,
                              train=train, seconds=seconds, snrs=snr_values, workers=workers, seed=seed)
    typer.echo(str(build_machine_corpus(out, cfg)))


@command("Precompute a dataset's log-mel features into shards.", DATA)
def cache(
    data: Annotated[Path, typer.Argument(help="A corpus folder, a manifest.jsonl or a dataset folder.")],
    cache_dir: Annotated[Path, typer.Option("--cache-dir", help="Where feature shards go.", file_okay=False)]
    = Path(".audiovae-cache"),
    layout: Annotated[str, typer.Option(help="How the files are laid out: auto (recognised), a manifest, a folder per "
                                        "speaker, or a dataset as released.", **choice(*LAYOUTS))] = "auto",
    workers: WorkersOpt = 0,
) -> None:
    """Precompute log-mel features of a dataset into memory-mapped shards (reused until files or MelConfig change).

    Unreadable files are listed and skipped. Example: audiovae cache corpora/speech --cache-dir cache
    """
    from ..data.cache import FeatureCache
    from ..data.layouts import discover
    from ..features import MelConfig

    entries = discover(data, layout)
    paths = [e.path for e in entries] + [e.clean for e in entries if e.clean]
    store = FeatureCache(cache_dir, MelConfig())
    before = len(store)
    skipped = store.update(paths, workers=workers)
    typer.echo(f"{store.dir}: {len(store)} files cached ({len(store) - before} new), {len(skipped)} skipped")
    for s in skipped:
        typer.echo(f"  skipped {s}")
