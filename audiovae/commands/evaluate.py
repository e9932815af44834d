"""Evaluate: the ``evaluate`` group (``vc``, ``denoise``, ``vocoder``, ``anomaly``, ``music``, ``variants``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import AudiovaeError
from ._shared import (
    EVALUATE,
    DeviceOpt,
    JsonOpt,
    PoolingOpt,
    VCModelOpt,
    VocoderOpt,
    _load,
    _print_report,
    choice,
    command,
    group,
)
from .anomaly import DETECTOR
from .denoise import METHODS as DENOISE_METHODS
from .denoise import _denoiser

evaluate_app = group("evaluate", "Objective evaluations of trained models, as tables (and JSON).",
                     "Objective evaluations of trained models, as tables.", EVALUATE)


@command("Voice conversion: MCD, pitch, similarity, speaker ID.", on=evaluate_app, name="vc")
def evaluate_vc(
    data: Annotated[Path, typer.Option("--data", help="A parallel test set: a speech corpus folder or manifest "
                                                      "(its test split is used).")],
    model: VCModelOpt = Path("voice_conversion"),
    sentences: Annotated[int | None, typer.Option(help="Held-out sentences per ordered speaker pair (default 4; "
                                                 "on real speakers without parallel text, 2 per source voice).",
                                                 min=1, show_default=False)] = None,
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
    voices: Annotated[int, typer.Option(help="On real speakers without parallel text (`audiovae corpus voices`): "
                                        "table voices converted into each other (evenly spaced in the table).",
                                        min=2)] = 12,
    reference_seconds: Annotated[float, typer.Option(help="On real speakers with --one-shot: seconds of each "
                                                     "unheard speaker's recordings its voice is made from.",
                                                     min=1.0)] = 10.0,
    sources: Annotated[int, typer.Option(help="On real speakers with --one-shot: table voices converted into each "
                                         "unheard speaker.", min=1)] = 6,
    dnsmos: Annotated[bool, typer.Option("--dnsmos/--no-dnsmos", help="Also score naturalness with DNSMOS (OVRL, "
                                         "P.808) beside the recordings' own (the floor row).")] = True,
    vocoder: VocoderOpt = None,
    json_out: JsonOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Voice conversion on parallel held-out sentences, all ordered speaker pairs: MCD (DTW), pitch register error,
    resemblyzer similarity to target and source, speaker-ID accuracy; with the ceiling (target resynthesised) and
    the floor (source unconverted). --one-shot scores conversion to voices left out of training; --real
    scores conversion of real recordings of a speaker outside the corpus (no MCD: there is no parallel reading);
    --one-shot --real scores conversion of the model's speakers into that real speaker's voice. A corpus of real
    speakers without parallel text (`audiovae corpus voices`) is scored without MCD: held-out utterances of --voices
    table voices into each other, or with --one-shot into its unheard speakers (--reference-seconds each).

    Examples: audiovae evaluate vc --data corpora/speech --json vc.json   (the bundled model);
    audiovae evaluate vc --data corpora/voices --one-shot
    """
    from ..data.layouts import AUDIO_EXTENSIONS, discover
    from ..evaluation.vc import evaluate_one_shot, evaluate_one_shot_real, evaluate_vc_real
    from ..evaluation.vc import evaluate_vc as run
    from ..evaluation.vc_unpaired import evaluate_one_shot_unpaired, evaluate_vc_unpaired, is_parallel
    from ..pipelines.convert import check_pitch
    from ..pipelines.voices import METHODS

    methods = tuple(m.strip() for m in method.split(","))
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise AudiovaeError(f"--method {','.join(bad)}: choose from {', '.join(METHODS)}")
    if skip and (real is not None or not one_shot):
        raise AudiovaeError("--skip applies to --one-shot on the corpus's voices (not with --real)")
    ckpt = _load(model, device, "a voice-conversion model")
    entries = discover(data)
    test = [e for e in entries if e.split == "test"]
    options = {"pitch": check_pitch(pitch), "vocoder": vocoder, "naturalness": dnsmos}
    parallel = real is not None or is_parallel(entries)
    sentences = sentences or (4 if parallel else 2)
    if not parallel:
        if skip:
            raise AudiovaeError("--skip applies to a parallel test set; this corpus has no text every speaker reads")
        if one_shot:
            report = evaluate_one_shot_unpaired(ckpt, entries, reference_seconds, sources, sentences, methods,
                                                **options)
        else:
            report = evaluate_vc_unpaired(ckpt, entries, voices, sentences, **options)
    elif real is not None:
        if not real.is_dir():
            raise AudiovaeError(f"{real}: no such folder")
        recordings = sorted(p for p in real.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
        if one_shot:
            report = evaluate_one_shot_real(ckpt, test, recordings, sentences, references, methods, **options)
        else:
            report = evaluate_vc_real(ckpt, test, recordings, files, **options)
    elif one_shot:
        report = evaluate_one_shot(ckpt, test, sentences, references, methods, skip=skip, **options)
    else:
        report = run(ckpt, test, sentences, **options)
    _print_report(report, json_out)


@command("Denoising: PESQ-wb, STOI, SI-SDR per SNR and noise type.", on=evaluate_app, name="denoise")
def evaluate_denoise(
    data: Annotated[Path, typer.Option("--data", help="Noisy/clean pairs: a noisy corpus folder, a manifest with "
                                                      "`clean`, or VoiceBank-DEMAND (its test split is used).")],
    model: Annotated[Path, typer.Option("--model", "-m", help="A denoising checkpoint (default: the bundled "
                                        "one); with --method prior a VAE of clean speech.",
                                        dir_okay=False)] = Path("denoise"),
    method: Annotated[str, typer.Option(help="mask, vocoder or prior (see `audiovae denoise --help`).",
                                        **choice(*DENOISE_METHODS))] = "mask",
    limit: Annotated[int, typer.Option(help="Score an evenly spaced subset of this many files (0 = all).",
                                       min=0)] = 0,
    clean_speech: Annotated[bool, typer.Option(help="Also denoise the real voices' clean references and score "
                                               "the output against its input (does it leave speech alone?).")]
    = True,
    keep_above: Annotated[float | None, typer.Option(min=0.01, max=1.0, help="As `audiovae denoise "
                                                     "--keep-above` (default: the denoiser's own).")] = None,
    split: Annotated[str, typer.Option(help="The split to score: test, or valid to tune settings without "
                                       "touching test.", **choice("test", "valid"))] = "test",
    json_out: JsonOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Denoising on held-out mixtures: PESQ-wb, STOI and SI-SDR of the noisy input and of the output, overall,
    per SNR, per noise type (types absent from training marked unseen) and for the real voices apart; and clean
    real speech through the denoiser.

    Example: audiovae evaluate denoise --data corpora/noisy --json denoise.json
    """
    from ..data.layouts import discover
    from ..evaluation.denoise import evaluate_denoise as run

    chosen = {} if keep_above is None else {"keep_above": keep_above}
    denoiser = _denoiser(model, device, method, **chosen)
    entries = discover(data)
    train_noises = {e.noise for e in entries if e.split == "train" and e.noise}
    report = run(denoiser, [e for e in entries if e.split == split], train_noises, limit=limit,
                 clean_pass=clean_speech, train_speakers={e.speaker for e in entries if e.split == "train"})
    _print_report(report, json_out)


@command("Vocoders from true log-mels: DNSMOS, PESQ-wb, mel L1, speed.", on=evaluate_app, name="vocoder")
def evaluate_vocoder(
    data: Annotated[Path, typer.Option("--data", help="A corpus folder or manifest (its test split is scored), "
                                                      "or a folder of audio files.")],
    vocoders: Annotated[list[str] | None, typer.Option("--vocoder", help="A vocoder to score (repeatable): "
                                                       "a vocoder by name (mel-griffin-lim), neural (the bundled "
                                                       "one) or a vocoder file; names are built for the first "
                                                       "file's features. Griffin-Lim 32 and 100 are always scored "
                                                       "beside them. Default: mel-griffin-lim and neural.")] = None,
    voices: Annotated[str, typer.Option(help="real (the recorded voice, festvox-ru's ru_nsh), synthetic (the "
                                        "corpus's TTS voices) or all.", **choice("real", "synthetic", "all"))
                        ] = "all",
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
    from ..data.corpora.noisy import REAL_SPEAKER
    from ..data.layouts import discover
    from ..device import resolve_device
    from ..evaluation.vocoder import evaluate_vocoders
    from ..pipelines.latent import choose_vocoder, choose_vocoders
    from ..vocoders import DEFAULT_SYNTHESIS, VOCODERS

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


@command("Anomaly detectors: AUC and pAUC per machine type (DCASE).", on=evaluate_app, name="anomaly")
def evaluate_anomaly(
    models: Annotated[list[Path], typer.Option("--model", "-m", help="A detector (repeatable: one per machine "
                                               "type; detectors of another model type are a second system, "
                                               "compared in the same table).", dir_okay=False)],
    data: Annotated[Path, typer.Option("--data", help="A machine corpus, MIMII or DCASE folder, or a manifest "
                                                      "(its test split is scored).")],
    split: Annotated[str, typer.Option(help="The split to score: test, or valid (tuning).",
                                       **choice("test", "valid"))] = "test",
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
    from ..data.layouts import discover
    from ..evaluation.anomaly import evaluate_anomaly as run
    from ..fileio import check_output_path
    from ..pipelines.anomaly import Detector

    if roc is not None:
        check_output_path(roc)
    systems: dict[str, list] = {}
    for path in models:
        detector = Detector(_load(path, device, DETECTOR), **({"pooling": pooling} if pooling else {}))
        systems.setdefault(detector.ckpt.model.model_type, []).append(detector)
    report = run(systems, discover(data), split)
    _print_report(report, json_out)
    if roc is not None:
        from ..fileio import write_atomic

        write_atomic(roc, report.roc_png())
        typer.echo(f"wrote {roc}")


@command("A music model: reconstruction, Fréchet distance of samples.", on=evaluate_app, name="music")
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
    from ..data.layouts import discover
    from ..evaluation.music import evaluate_music as run

    ckpt = _load(model, device, "a music model")
    entries = discover(data)
    test = [e for e in entries if e.split == "test"]
    if not test:
        raise AudiovaeError(f"{data}: no test split to hold out (a music corpus from `audiovae corpus music` "
                            "has one)")
    train = [e for e in entries if e.split == "train"]
    _print_report(run(ckpt, test, train, clips, seconds, temperature, seed, vocoder), json_out)


@command("Compare models of the VAE family on the same clips.", on=evaluate_app, name="variants")
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
    from ..data.layouts import discover
    from ..evaluation.variants import evaluate_variants as run
    from ..fileio import check_output_path, write_atomic

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
