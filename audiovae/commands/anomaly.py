"""Detect: the ``anomaly`` group (``fit``, ``score``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import AudiovaeError
from ._shared import EVALUATE, DeviceOpt, PoolingOpt, _config_names, _load, choice, command, group, names_or_files

DETECTOR = "an anomaly detector"
anomaly_app = group("anomaly", "Anomalous sound detection: fit a detector on normal sounds, score clips.",
                    "Anomalous sound detection: fit a detector, score clips.", EVALUATE)


@command("Train a detector on normal sounds and set its threshold.", on=anomaly_app, name="fit")
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
                                                     "highest AUC: on the valid split's anomalous clips where there "
                                                     "are some, else on faults injected into the held-out normal "
                                                     "clips. Default: anomaly_vae and anomaly_vae_fine.",
                                                     autocompletion=names_or_files(_config_names))] = None,
    clips: Annotated[int, typer.Option(help="Use only this many normal clips (spread over units and noise "
                                       "levels), split afresh and chosen among without anomalous clips, as a user "
                                       "with a few recordings would be; 0: all. Under 100 clips split afresh "
                                       "(this, or a folder of recordings), the kept detector is tried with "
                                       "machine lines added (lines at orders of the "
                                       "machine's rotation, new or lost; envelope lines of the high bands; "
                                       "bursts) and keeps them unless that scores the injected faults more than "
                                       "0.01 lower.", min=0)] = 0,
    lines: Annotated[bool, typer.Option(help="Under 100 clips split afresh, try machine lines beside the frame "
                                        "model (off: the frame model alone, e.g. for the DCASE baseline as "
                                        "published).")] = True,
    machine: Annotated[str, typer.Option(help="The machine type to fit (needed when NORMAL holds several).")] = "",
    unit: Annotated[str, typer.Option(help="Only this machine of the type (a unit id such as id_00): one detector "
                                      "per machine, as the MIMII baseline trains them.")] = "",
    percentile: Annotated[float, typer.Option(help="Threshold: this percentile of the scores of held-out normal "
                                              "clips (about 100 - P % of normal clips are flagged).",
                                              min=0.1, max=99.9)] = 90.0,
    pooling: Annotated[str, typer.Option(help="How frame scores make a clip score: mean, max or pNN (e.g. "
                                         "p90).")] = "mean",
    score: Annotated[str | None, typer.Option(help="A frame's score: nelbo (negative ELBO: the error under the "
                                              "learnt band scales plus KL; VAEs, their default) or recon (mean "
                                              "squared error; any model).", **choice("nelbo", "recon"))] = None,
    work: Annotated[Path | None, typer.Option(help="The training run's folder (default: OUTPUT's name + _run).",
                                              file_okay=False)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted fit from its last "
                                         "checkpoint.")] = False,
    device: DeviceOpt = "auto",
) -> None:
    """Train an anomaly detector on normal sounds and set its threshold on held-out normal clips.

    Example: audiovae anomaly fit corpora/machines --machine fan -o fan.safetensors
    """
    from ..training.anomaly import DEFAULT_CONFIGS, fit_detector, lines_name

    path, s = fit_detector(normal, output, config or DEFAULT_CONFIGS, overrides or [], machine, percentile, pooling,
                           score, work, device, resume, clips=clips, unit=unit, lines=lines)
    kept = lines_name(s.config) if s.lines > 0 else s.config
    for name, r in s.selection.items():
        figures = (f"injected-fault AUC {r['auc']:.3f} (" + ", ".join(f"{k} {v:.2f}" for k, v in r["faults"].items())
                   + f"; {r['normal']} normal clips, {r['anomalous']} faulted copies)" if "faults" in r else
                   f"valid AUC {r['auc']:.3f}, pAUC {r['pauc']:.3f} ({r['normal']} normal, {r['anomalous']} "
                   "anomalous clips)")
        typer.echo(f"{name}: {figures}" + ("  <- kept" if name == kept else ""))
    typer.echo(f"wrote {path}: {s.config}, {s.score} score, {s.pooling} over frames, threshold {s.threshold:.4g} "
               f"(the {s.percentile:g}th percentile of {s.normal['clips']} held-out normal clips)"
               + (f", machine type {s.machine}" if s.machine else "") + (f", unit {s.unit}" if s.unit else "")
               + (", machine lines added" if s.lines > 0 else ""))


@command("Score clips with a detector: a line per file, CSV, plots.", on=anomaly_app, name="score")
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
    from ..fileio import check_output_path
    from ..pipelines.anomaly import Detector, score_source, write_csv

    overrides = {k: v for k, v in (("pooling", pooling), ("threshold", threshold)) if v is not None}
    detector = Detector(_load(model, device, DETECTOR), **overrides)
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
