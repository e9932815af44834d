"""``audiovae anomaly fit``: train a detector on normal sounds only, then set its threshold on held-out normal clips.

The normal clips come from any source :func:`~audiovae.data.layouts.discover` reads: a folder of recordings of one
healthy machine, a machine-sound corpus (its ``train`` split trains and its normal ``valid`` clips set the
threshold), or MIMII / DCASE trees. A source with several machine types needs ``machine=`` (one detector per type,
as in DCASE). The run goes through the ordinary engine (``train.out_dir`` is ``work_dir``, so ``resume`` works),
and the detector file is the trained checkpoint with its :class:`~audiovae.pipelines.anomaly.DetectorSettings`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import load_run_config
from ..data.layouts import discover, held_out_count, ranked_splits
from ..data.manifest import Entry, write_manifest
from ..device import resolve_device
from ..errors import AudiovaeError, ConfigError
from ..fileio import check_output_path
from ..models import MODELS
from ..pipelines.anomaly import Detector, DetectorSettings, threshold_at
from ..progress import bar_off
from .engine import train

MIN_HELD_OUT = 4


def normal_clips(source: str | os.PathLike[str], machine: str = "", held_out: float = 0.1
                 ) -> tuple[list[Entry], list[Entry], str]:
    """(training clips, held-out clips for the threshold, machine type) of the normal sounds in ``source``.

    A labelled corpus keeps its own splits (normal ``train`` trains, normal ``valid`` is held out; test clips are
    never used). Unlabelled recordings, and a corpus with fewer than :data:`MIN_HELD_OUT` valid clips, are split
    afresh: ``held_out`` of them (at least :data:`MIN_HELD_OUT`) by a seeded hash of the path.
    """
    entries = discover(source)
    normal = [e for e in entries if e.label != "anomaly" and (not machine or e.machine == machine)]
    types = sorted({e.machine for e in entries if e.machine})
    if machine and not normal:
        raise ConfigError(f"{source}: no normal clips of machine type {machine!r}"
                          + (f" (types: {', '.join(types)})" if types else ""))
    if not machine and len(types) > 1:
        raise ConfigError(f"{source} holds {len(types)} machine types ({', '.join(types)}): fit one detector per "
                          "type with --machine")
    machine = machine or (types[0] if types else "")
    labelled = any(e.label for e in normal)
    train_set = [e for e in normal if e.split == "train"] if labelled else normal
    held = [e for e in normal if e.split == "valid"] if labelled else []
    if len(held) < MIN_HELD_OUT:
        pool = train_set + held
        n_held = max(MIN_HELD_OUT, held_out_count(len(pool), held_out))
        if len(pool) < n_held + 1:
            raise ConfigError(f"{source}: {len(pool)} normal clip(s); a detector needs at least {n_held + 1} "
                              f"({n_held} held out to set its threshold)")
        split = ranked_splits([e.path for e in pool], 0, n_held, seed=0)
        train_set = [e for e in pool if split[e.path] == "train"]
        held = [e for e in pool if split[e.path] == "valid"]
    return train_set, held, machine


def fit_detector(source: str | os.PathLike[str], output: str | os.PathLike[str], config: str = "anomaly_vae",
                 overrides: Sequence[str] = (), machine: str = "", percentile: float = 90.0, pooling: str = "mean",
                 score: str | None = None, work_dir: str | os.PathLike[str] | None = None, device: str = "auto",
                 resume: bool = False, progress: bool = True) -> tuple[Path, DetectorSettings]:
    """Train ``config`` on the normal clips of ``source`` and write the detector to ``output``; returns its path and
    settings. ``score`` defaults to the model's own first kind (``nelbo`` for a VAE, ``recon`` for the dense AE).
    The run (checkpoints, log, the manifest it trained on) is kept in ``work_dir`` (default: ``output``'s name with
    ``_run``), so ``resume=True`` continues it."""
    out = Path(output)
    check_output_path(out)
    model_type = load_run_config(config, overrides).model["type"]
    kinds = getattr(MODELS[model_type], "anomaly_scores", ())
    if not kinds:
        raise ConfigError(f"{config}: a {model_type} model cannot score frames, so it cannot detect anomalies")
    score = score or kinds[0]
    if score not in kinds:
        raise ConfigError(f"{config}: a {model_type} model scores frames by {' or '.join(kinds)}, not {score!r}")
    DetectorSettings(score=score, pooling=pooling, percentile=percentile)  # fail before an hour of training
    train_set, held, machine = normal_clips(source, machine)
    run = Path(work_dir) if work_dir is not None else out.with_name(out.stem + "_run")
    run.mkdir(parents=True, exist_ok=True)
    manifest = run / "normal.jsonl"
    for e, split in [(e, "train") for e in train_set] + [(e, "valid") for e in held]:
        e.path, e.split = str(Path(e.path).resolve()), split
    write_manifest(manifest, train_set + held)
    path = train(config, [*overrides, f"data.train={manifest}", f"train.out_dir={run}"], device=device,
                 resume=resume)
    ckpt = load_checkpoint(path, resolve_device(device))
    detector = Detector(ckpt, score=score, pooling=pooling, threshold=None)
    scores = []
    for e in tqdm(held, desc="threshold", unit="clip", disable=bar_off(progress)):
        try:
            scores.append(detector.score_file(e.path).score)
        except AudiovaeError:
            continue  # an unreadable held-out file was already reported by the training run
    values = np.asarray(scores)
    settings = DetectorSettings(score=score, pooling=pooling, threshold=threshold_at(values, percentile),
                                percentile=percentile, machine=machine,
                                normal={"clips": int(values.size), "mean": float(values.mean()),
                                        "std": float(values.std())})
    ckpt.info["anomaly"] = settings.to_dict()
    ckpt.task = "anomaly"
    return save_checkpoint(out, ckpt), settings
