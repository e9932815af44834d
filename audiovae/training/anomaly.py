"""``audiovae anomaly fit``: train a detector on normal sounds only, then set its threshold on held-out normal clips.

The normal clips come from any source :func:`~audiovae.data.layouts.discover` reads: a folder of recordings of one
healthy machine, a machine-sound corpus (its ``train`` split trains and its normal ``valid`` clips set the
threshold), or MIMII / DCASE trees. A source with several machine types needs ``machine=`` (one detector per type,
as in DCASE). The run goes through the ordinary engine (``train.out_dir`` is ``work_dir``, so ``resume`` works),
and the detector file is the trained checkpoint with its :class:`~audiovae.pipelines.anomaly.DetectorSettings`.
Given several configs (front ends, model types), it fits each and keeps the best on the valid split.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..checkpoint import load_checkpoint, save_checkpoint
from ..data.datasets import DataWarning
from ..data.layouts import discover, held_out_count, ranked_splits
from ..data.manifest import Entry, write_manifest
from ..device import resolve_device
from ..errors import AudiovaeError, ConfigError
from ..fileio import check_output_path
from ..metrics import auc_pair
from ..pipelines.anomaly import Detector, DetectorSettings, threshold_at
from ..progress import bar_off
from .config import load_run_config
from .engine import train
from .registry import TRAINABLES

MIN_HELD_OUT = 4


def normal_clips(source: str | os.PathLike[str], machine: str = "", held_out: float = 0.1,
                 entries: Sequence[Entry] | None = None) -> tuple[list[Entry], list[Entry], str]:
    """(training clips, held-out clips for the threshold, machine type) of the normal sounds in ``source``.

    A labelled corpus keeps its own splits (normal ``train`` trains, normal ``valid`` is held out; test clips are
    never used). Unlabelled recordings, and a corpus with fewer than :data:`MIN_HELD_OUT` valid clips, are split
    afresh: ``held_out`` of them (at least :data:`MIN_HELD_OUT`) by a seeded hash of the path. ``entries``: the
    source's, when the caller has already discovered them.
    """
    entries = discover(source) if entries is None else entries
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


def fit_detector(source: str | os.PathLike[str], output: str | os.PathLike[str],
                 config: str | Sequence[str] = "anomaly_vae", overrides: Sequence[str] = (), machine: str = "",
                 percentile: float = 90.0, pooling: str = "mean", score: str | None = None,
                 work_dir: str | os.PathLike[str] | None = None, device: str = "auto", resume: bool = False,
                 progress: bool = True) -> tuple[Path, DetectorSettings]:
    """Train ``config`` on the normal clips of ``source`` and write the detector to ``output``; returns its path and
    settings. ``score`` defaults to the model's own first kind (``nelbo`` for a VAE, ``recon`` for the dense AE).

    Several configs (e.g. two front ends) are each fitted, and the one with the highest AUC on the valid split
    (its held-out normal clips against its anomalous ones; pAUC breaks ties) is kept, with every candidate's figures
    in ``settings.selection``; that needs a labelled corpus with anomalous valid clips. The test split is never
    looked at. The runs (checkpoints, log, the manifest they trained on) are kept in ``work_dir`` (default:
    ``output``'s name with ``_run``; one sub-folder per config when there are several), so ``resume=True``
    continues them."""
    out = Path(output)
    check_output_path(out)
    configs = [str(config)] if isinstance(config, (str, os.PathLike)) else [str(c) for c in config]
    names = [Path(c).name.removesuffix(".yaml") for c in configs]
    if not configs or len(set(names)) < len(names):
        raise ConfigError(f"configs {', '.join(configs) or '(none)'}: give one or more, with distinct names")
    scores = [_score_kind(c, overrides, score) for c in configs]
    DetectorSettings(score=scores[0], pooling=pooling, percentile=percentile)  # fail before an hour of training
    entries = discover(source)
    train_set, held, machine = normal_clips(source, machine, entries=entries)
    anomalous = [e for e in entries if e.label == "anomaly" and e.split == "valid" and e.machine == machine]
    if len(configs) > 1 and not anomalous:
        raise ConfigError(f"{source}: choosing among {len(configs)} configs needs anomalous clips of "
                          f"{machine or 'the machine'} in the valid split (a labelled corpus); give one --config")
    run = Path(work_dir) if work_dir is not None else out.with_name(out.stem + "_run")
    run.mkdir(parents=True, exist_ok=True)
    manifest = run / "normal.jsonl"
    for e, split in [(e, "train") for e in train_set] + [(e, "valid") for e in held]:
        e.path, e.split = str(Path(e.path).resolve()), split
    write_manifest(manifest, train_set + held)
    best, selection = None, {}
    for config_name, name, kind in zip(configs, names, scores, strict=True):
        out_dir = run if len(configs) == 1 else run / name
        path = train(config_name, [*overrides, f"data.train={manifest}", f"train.out_dir={out_dir}"],
                     device=device, resume=resume)
        ckpt = load_checkpoint(path, resolve_device(device))
        detector = Detector(ckpt, score=kind, pooling=pooling, threshold=None)
        normal = _clip_scores(detector, held, f"threshold ({name})", progress)
        settings = DetectorSettings(score=kind, pooling=pooling, threshold=threshold_at(normal, percentile),
                                    percentile=percentile, machine=machine, config=name,
                                    normal={"clips": int(normal.size), "mean": float(normal.mean()),
                                            "std": float(normal.std())})
        if len(configs) > 1:
            bad = _clip_scores(detector, anomalous, f"valid anomalies ({name})", progress)
            auc, pauc = auc_pair([0] * normal.size + [1] * bad.size, np.concatenate([normal, bad]).tolist())
            selection[name] = {"auc": auc, "pauc": pauc, "normal": int(normal.size), "anomalous": int(bad.size)}
            key = (auc, pauc)
        else:
            key = (0.0, 0.0)
        if best is None or key > best[0]:
            best = (key, ckpt, settings)
    _, ckpt, settings = best
    settings.selection = selection
    ckpt.info["anomaly"] = settings.to_dict()
    ckpt.task = "anomaly"
    return save_checkpoint(out, ckpt), settings


def _score_kind(config: str, overrides: Sequence[str], score: str | None) -> str:
    """The frame score a detector of ``config`` uses: ``score``, else its model's first kind; checked up front."""
    model_type = load_run_config(config, overrides).model["type"]
    kinds = getattr(TRAINABLES[model_type], "anomaly_scores", ())
    if not kinds:
        raise ConfigError(f"{config}: a {model_type} model cannot score frames, so it cannot detect anomalies")
    if score is not None and score not in kinds:
        raise ConfigError(f"{config}: a {model_type} model scores frames by {' or '.join(kinds)}, not {score!r}")
    return score or kinds[0]


def _clip_scores(detector: Detector, clips: Sequence[Entry], desc: str, progress: bool) -> np.ndarray:
    """Pooled scores of ``clips``; an unreadable one is skipped with a warning."""
    scores = []
    for e in tqdm(clips, desc=desc, unit="clip", disable=bar_off(progress)):
        try:
            scores.append(detector.score_file(e.path).score)
        except AudiovaeError as err:
            warnings.warn(f"{desc}: skipping {err}", DataWarning, stacklevel=2)
    return np.asarray(scores, dtype=np.float64)
