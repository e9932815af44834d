"""``audiovae anomaly fit``: train a detector on normal sounds only, then set its threshold on held-out normal clips.

The normal clips come from any source :func:`~audiovae.data.layouts.discover` reads: a folder of recordings of one
healthy machine, a machine-sound corpus (its ``train`` split trains and its normal ``valid`` clips set the
threshold), or MIMII / DCASE trees. A source with several machine types needs ``machine=`` (one detector per type,
as in DCASE). The run goes through the ordinary engine (``train.out_dir`` is ``work_dir``, so ``resume`` works),
and the detector file is the trained checkpoint with its :class:`~audiovae.pipelines.anomaly.DetectorSettings`.
Given several configs (front ends, model types), it fits each and keeps the best: on the valid split's anomalous
clips when a labelled corpus has them, else on faults injected into the held-out normal clips
(:mod:`audiovae.training.faults`), which is all a user with a few healthy recordings can offer. Unless the overrides
set ``train.steps``, the training budget follows the data (:func:`budget_steps`): about 100 passes over it, so 13
clips train for seconds, not for the 3,000 steps 480 clips need.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ..data.datasets import DataWarning
from ..data.layouts import discover, held_out_count, ranked_splits
from ..data.manifest import Entry, write_manifest
from ..device import resolve_device
from ..errors import AudiovaeError, ConfigError
from ..fileio import check_output_path
from ..machine_lines import LinesConfig, MachineLines, envelope_windows
from ..metrics import auc_pair
from ..pipelines.anomaly import Detector, DetectorSettings, threshold_at
from ..progress import bar_off
from .config import RunConfig, load_run_config
from .engine import train
from .faults import FAULTS, inject
from .registry import TRAINABLES

MIN_HELD_OUT = 4
DEFAULT_CONFIGS = ("anomaly_vae", "anomaly_vae_fine")  # DCASE's 64-ms frames, and twice their time resolution
PASSES = 100  # the recipe's 3,000 steps of 32 crops of 2 s over 480 clips of 4 s: 100 passes over the data
MIN_STEPS = 200
FAULTS_PER_CLIP = 2  # injected copies of each held-out clip, per kind of fault
MAX_FAULTED = 32  # held-out clips that get faulted copies (the copies are kept in memory while candidates score)
REFIT_BELOW = 100  # fewer normal clips than this, split afresh: the kept config is trained again on all of them


def budget_steps(cfg: RunConfig, train_seconds: float) -> int:
    """Training steps that follow the data: :data:`PASSES` passes of the config's crops over ``train_seconds`` of
    audio, at least :data:`MIN_STEPS` and at most the config's own ``train.steps``. Measured on the machine corpus
    (fan, 13 clips): 300 steps AUC 0.854, 1,000 steps 0.827; a small model overfits a few clips soon."""
    crop = cfg.data.segment_frames * cfg.mel.hop_length / cfg.mel.sample_rate
    steps = round(PASSES * train_seconds / (cfg.train.batch_size * crop))
    return int(min(cfg.train.steps, max(MIN_STEPS, steps)))


def recording(e: Entry) -> tuple[str, ...]:
    """What identifies a recording apart from its noise level: a corpus renders one clip at each SNR, in folders
    that differ only in the SNR (``-6dB/fan/id_00/normal/train_0003.wav``), and those copies are one recording."""
    return (e.machine, e.unit, Path(e.path).name) if e.snr is not None else (e.path,)


def few_clips(entries: Sequence[Entry], n: int, seed: int = 0) -> list[Entry]:
    """``n`` of ``entries``, distinct recordings (never one clip at two SNRs), drawn in turn from each (unit, SNR)
    group in a seeded order, so a few clips still span the units and noise levels the full set has."""
    rng = np.random.default_rng(seed)
    groups: dict[tuple, list[Entry]] = {}
    for e in sorted(entries, key=lambda e: e.path):
        groups.setdefault((e.unit, e.snr), []).append(e)
    order = list(groups)
    rng.shuffle(order)
    for key in order:
        rng.shuffle(groups[key])
    picked: list[Entry] = []
    seen: set[tuple[str, ...]] = set()
    while len(picked) < n and any(groups.values()):
        for key in order:
            while groups[key] and len(picked) < n:
                e = groups[key].pop()
                if recording(e) not in seen:
                    seen.add(recording(e))
                    picked.append(e)
                    break
    return picked


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
    labelled, train_set = _training_pool(normal)
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


def _training_pool(normal: list[Entry]) -> tuple[bool, list[Entry]]:
    """Whether ``normal`` is labelled (a corpus), and the clips that may train: a corpus's ``train`` split, or
    every clip of a plain folder (whose layout's own split means nothing for a detector)."""
    labelled = any(e.label for e in normal)
    return labelled, [e for e in normal if e.split == "train"] if labelled else normal


def fit_detector(source: str | os.PathLike[str], output: str | os.PathLike[str],
                 config: str | Sequence[str] = DEFAULT_CONFIGS, overrides: Sequence[str] = (), machine: str = "",
                 percentile: float = 90.0, pooling: str = "mean", score: str | None = None,
                 work_dir: str | os.PathLike[str] | None = None, device: str = "auto", resume: bool = False,
                 progress: bool = True, clips: int = 0, unit: str = "", lines: bool = True
                 ) -> tuple[Path, DetectorSettings]:
    """Train ``config`` on the normal clips of ``source`` and write the detector to ``output``; returns its path and
    settings. ``score`` defaults to the model's own first kind (``nelbo`` for a VAE, ``recon`` for the dense AE).

    Several configs (e.g. two front ends) are each fitted, and the one with the highest AUC is kept, with every
    candidate's figures in ``settings.selection`` and the reason in ``settings.chosen``: the AUC of the held-out
    normal clips against the valid split's anomalous ones where a labelled corpus has them (pAUC breaks ties), else
    against copies of the held-out clips with injected faults (:mod:`~audiovae.training.faults`, the mean over the
    kinds). The test split is never looked at. ``unit``: only that machine of the type (``id_00``), one detector per
    machine as the MIMII baseline trains them (a corpus's other units are left out, anomalous clips included).
    ``clips``: use only that many normal clips (:func:`few_clips`),
    held out and split afresh as for a folder of recordings, and no anomalous clip: what a user with a few
    recordings of one healthy machine has. Fewer than :data:`REFIT_BELOW` clips held out afresh: the kept config is
    then trained again on all of them (:func:`_refit`), and with ``lines`` the kept detector is also tried with
    machine lines added (:func:`_try_lines`). The runs (checkpoints, log, the manifests) are kept in
    ``work_dir`` (default: ``output``'s name with ``_run``; one sub-folder per config when there are several), so
    ``resume=True`` continues them."""
    out = Path(output)
    check_output_path(out)
    configs = [str(config)] if isinstance(config, (str, os.PathLike)) else [str(c) for c in config]
    names = [Path(c).name.removesuffix(".yaml") for c in configs]
    if not configs or len(set(names)) < len(names):
        raise ConfigError(f"configs {', '.join(configs) or '(none)'}: give one or more, with distinct names")
    scores = [_score_kind(c, overrides, score) for c in configs]
    DetectorSettings(score=scores[0], pooling=pooling, percentile=percentile)  # fail before an hour of training
    entries = discover(source)
    if unit:
        entries = [e for e in entries if e.unit == unit and (not machine or e.machine == machine)]
        if not entries:
            raise ConfigError(f"{source}: no clips of unit {unit!r}"
                              + (f" of machine type {machine}" if machine else ""))
    if clips:
        entries = _subset(source, entries, machine, clips)
    train_set, held, machine = normal_clips(source, machine, entries=entries)
    anomalous = [e for e in entries if e.label == "anomaly" and e.split == "valid" and e.machine == machine]
    fresh = not all(e.label and e.split == "valid" for e in held)  # held out here, not by the corpus
    run = Path(work_dir) if work_dir is not None else out.with_name(out.stem + "_run")
    run.mkdir(parents=True, exist_ok=True)
    manifest = run / "normal.jsonl"
    for e, split in [(e, "train") for e in train_set] + [(e, "valid") for e in held]:
        e.path, e.split = str(Path(e.path).resolve()), split
    write_manifest(manifest, train_set + held)
    seconds = sum(e.duration for e in train_set)
    few = fresh and len(train_set) + len(held) < REFIT_BELOW
    lines = lines and few and len(train_set) >= 3  # machine lines need 3 clips to compare each with the others
    choose = len(configs) > 1 or lines  # among configs, or whether to add machine lines
    faulted = _faulted(held, progress) if choose and not anomalous else []
    best, selection = None, {}
    for config_name, name, kind in zip(configs, names, scores, strict=True):
        out_dir = run if len(configs) == 1 else run / name
        budget = _budget(config_name, overrides, seconds)
        path = train(config_name, [*overrides, *budget, f"data.train={manifest}", f"train.out_dir={out_dir}"],
                     device=device, resume=_resumable(out_dir, resume))
        ckpt = load_checkpoint(path, resolve_device(device))
        detector = Detector(ckpt, score=kind, pooling=pooling, threshold=None)
        normal = _clip_scores(detector, held, f"threshold ({name})", progress)
        settings = DetectorSettings(score=kind, pooling=pooling, threshold=threshold_at(normal, percentile),
                                    percentile=percentile, machine=machine, unit=unit, config=name,
                                    normal=_summary(normal))
        figures = _choice_figures(detector, normal, anomalous, faulted, name, progress) if choose else {}
        if figures:
            selection[name] = figures
        key = (figures.get("auc", 0.0), figures.get("pauc", 0.0))
        if best is None or key > best[0]:
            best = (key, ckpt, settings, detector, normal)
    _, ckpt, settings, detector, normal = best
    machine_lines = _try_lines(detector, normal, train_set, held, anomalous, faulted, selection, settings, progress) \
        if lines else None
    if few:
        ckpt = _refit(configs[names.index(settings.config)], overrides, train_set, held, run, device, resume)
        settings.normal["refit_clips"] = len(train_set) + len(held)
        if machine_lines is not None:  # the normal figures of every clip, as the refitted model heard them all
            features, windows = _line_features(held, detector.sample_rate, machine_lines.config)
            kept = machine_lines.clip_features()  # their windows: the median the trial's lines were calibrated with
            windows = [machine_lines.calibration.get("envelope_windows", 0)] * len(kept) + windows
            machine_lines = MachineLines.from_features([*kept, *features], machine_lines.config, windows)
    if machine_lines is not None:
        ckpt.components["lines"] = machine_lines
    settings.selection = selection
    if selection:
        how = ("the valid split's anomalous clips" if anomalous else
               f"faults injected into them ({', '.join(FAULTS)}; {FAULTS_PER_CLIP} copies of each clip per kind)")
        others = ", ".join(f"{n} {r['auc']:.3f}" for n, r in selection.items()
                           if n != settings.config and n in names)
        settings.chosen = (f"{settings.config}: the highest AUC of {len(held)} held-out normal clips against "
                           f"{how}, {selection[settings.config]['auc']:.3f}" + (f" (against {others})" if others
                                                                                   else ""))
        with_lines = selection.get(lines_name(settings.config))
        if with_lines is not None:
            settings.chosen += (f"; with machine lines {with_lines['auc']:.3f}: "
                                + ("added" if settings.lines > 0 else f"not added (more than {LINES_TOLERANCE} "
                                                                      "lower)"))
    ckpt.info["anomaly"] = settings.to_dict()
    ckpt.task = "anomaly"
    return save_checkpoint(out, ckpt), settings


def lines_name(config: str) -> str:
    """The name under which ``fit`` records a config tried with machine lines added."""
    return f"{config} + machine lines"


def _summary(normal: np.ndarray) -> dict:
    return {"clips": int(normal.size), "mean": float(normal.mean()), "std": float(normal.std())}


def _choice_figures(detector: Detector, normal: np.ndarray, anomalous: Sequence[Entry],
                    faulted: dict[str, list[tuple[np.ndarray, int]]], name: str, progress: bool) -> dict:
    """What a candidate is chosen by: the valid split's anomalous clips against the held-out normal scores, else the
    injected faults; ``{}`` when there is neither."""
    if anomalous:
        bad = _clip_scores(detector, anomalous, f"valid anomalies ({name})", progress)
        auc, pauc = auc_pair([0] * normal.size + [1] * bad.size, np.concatenate([normal, bad]).tolist())
        return {"auc": auc, "pauc": pauc, "normal": int(normal.size), "anomalous": int(bad.size)}
    return _injected_auc(detector, normal, faulted) if faulted else {}


LINES_TOLERANCE = 0.01  # machine lines stay unless the injected faults score them this much lower: with 4 held-out
# clips (13 clips in all) one normal clip trading places with one faulted copy moves that AUC by 0.006, and each
# part of the lines adds nothing to 3 in 4 normal clips by construction (an exceedance over the normal clips' own)


def _try_lines(detector: Detector, normal: np.ndarray, train_set: list[Entry], held: list[Entry],
               anomalous: Sequence[Entry], faulted: dict[str, list[tuple[np.ndarray, int]]], selection: dict,
               settings: DetectorSettings, progress: bool) -> MachineLines | None:
    """The kept detector with :class:`~audiovae.machine_lines.MachineLines` of the training clips added (weight:
    half the spread of the held-out normal scores), judged as the configs were; unless it scores more than
    :data:`LINES_TOLERANCE` lower, ``settings`` take its weight, threshold and normal scores and the lines are
    returned, else ``None``. Either way its figures go into ``selection``."""
    weight = 0.5 * float(normal.std())
    before = selection.get(settings.config)
    config = LinesConfig().for_rate(detector.sample_rate)
    if detector.sample_rate / 2 < config.f_hi or weight <= 0 or before is None:
        return None  # lines up to 1 kHz need 2 kHz audio; a spread of 0 gives no scale
    features, windows = _line_features(train_set, detector.sample_rate, config)
    if len(features) < 3:
        return None
    lines = MachineLines.from_features(features, config, windows)
    trial = Detector(replace(detector.ckpt, components={**detector.ckpt.components, "lines": lines}),
                     **{**settings.to_dict(), "threshold": None, "lines": weight})
    fused = _clip_scores(trial, held, "threshold (machine lines)", progress)
    figures = _choice_figures(trial, fused, anomalous, faulted, lines_name(settings.config), progress)
    selection[lines_name(settings.config)] = figures
    if figures["auc"] < before["auc"] - LINES_TOLERANCE:
        return None
    settings.lines = weight
    settings.threshold = threshold_at(fused, settings.percentile)
    settings.normal = _summary(fused)
    return lines


def _line_features(clips: Sequence[Entry], sample_rate: int, config: LinesConfig
                   ) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], list[int]]:
    """The clips' :meth:`~audiovae.machine_lines.MachineLines.features` and the windows their envelope spectra
    averaged, one clip in memory at a time (an unreadable one is skipped with a warning)."""
    from .. import audio

    features, windows = [], []
    for e in clips:
        try:
            wave = audio.load(e.path, sample_rate)[0].numpy()
        except AudiovaeError as err:
            warnings.warn(f"machine lines: skipping {err}", DataWarning, stacklevel=2)
            continue
        features.append(MachineLines.features(wave, sample_rate, config))
        windows.append(envelope_windows(wave.size, sample_rate, config))
    return features, windows


def _refit(config: str, overrides: Sequence[str], train_set: list[Entry], held: list[Entry], run: Path,
           device: str, resume: bool) -> Checkpoint:
    """The kept config trained again on every clip, the held-out ones included (``run/refit``), with the budget of
    that much data. With a few clips each one counts: on the machine corpus's fan, 9 training clips scored AUC 0.73
    and 13 clips 0.85, 4 clips held out or not. The threshold stays the one set on the held-out clips by a model that
    had not heard them, not recalibrated for the refitted one (recipes/anomaly/README.md measures how many normal
    clips it then flags)."""
    everything, valid = run / "refit.jsonl", run / "refit_valid.jsonl"
    write_manifest(everything, [replace(e, split="train") for e in train_set + held])
    write_manifest(valid, held)
    seconds = sum(e.duration for e in train_set + held)
    path = train(config, [*overrides, *_budget(config, overrides, seconds), f"data.train={everything}",
                          f"data.valid={valid}", f"train.out_dir={run / 'refit'}"], device=device,
                 resume=_resumable(run / "refit", resume))
    return load_checkpoint(path, resolve_device(device))


def _subset(source: str | os.PathLike[str], entries: list[Entry], machine: str, clips: int) -> list[Entry]:
    """``clips`` normal clips of ``machine`` (from the training split, when the source has one), unlabelled: they
    are then split afresh, as a folder of recordings is, and no anomalous clip is left to choose with."""
    labelled, pool = _training_pool([e for e in entries if e.label != "anomaly"
                                     and (not machine or e.machine == machine)])
    distinct = len({recording(e) for e in pool})
    if clips < MIN_HELD_OUT + 1 or distinct < clips:
        raise ConfigError(f"{source}: --clips {clips}: give at least {MIN_HELD_OUT + 1} and at most the "
                          f"{distinct} normal recordings{f' of {machine}' if machine else ''} it holds"
                          + (" in its training split" if labelled else ""))
    picked = few_clips(pool, clips)
    return [Entry(path=e.path, duration=e.duration, machine=e.machine, unit=e.unit, snr=e.snr) for e in picked]


def _resumable(out_dir: Path, resume: bool) -> bool:
    """Resume a stage of the fit (a config, the refit) only where it saved training state: a fit stopped in its
    first stage has none for the later ones, which then start afresh."""
    from .engine import STATE_FILE

    return resume and (out_dir / STATE_FILE).exists()


def _budget(config: str, overrides: Sequence[str], seconds: float) -> list[str]:
    """``train.steps`` (and a warm-up that fits in it) from :func:`budget_steps`, unless the overrides set it."""
    if any(o.startswith("train.steps=") for o in overrides):
        return []
    cfg = load_run_config(config, overrides)
    steps = budget_steps(cfg, seconds)
    return [f"train.steps={steps}", f"train.warmup_steps={min(cfg.train.warmup_steps, steps // 5)}",
            f"train.checkpoint_every={min(cfg.train.checkpoint_every, max(steps // 4, 1))}"]


def _faulted(held: Sequence[Entry], progress: bool) -> dict[str, list[tuple[np.ndarray, int]]]:
    """Copies of the held-out clips (the first :data:`MAX_FAULTED`) with each kind of injected fault, seeded by the
    clip's place in the list."""
    from .. import audio

    out: dict[str, list[tuple[np.ndarray, int]]] = {k: [] for k in FAULTS}
    for i, e in enumerate(tqdm(held[:MAX_FAULTED], desc="injecting faults", unit="clip", disable=bar_off(progress))):
        try:
            wave, sr = audio.load(e.path)
        except AudiovaeError as err:
            warnings.warn(f"injecting faults: skipping {err}", DataWarning, stacklevel=2)
            continue
        x = wave.numpy()
        for j, kind in enumerate(FAULTS):
            for c in range(FAULTS_PER_CLIP):
                out[kind].append((inject(x, sr, kind, np.random.default_rng([i, j, c])), sr))
    return out


def _injected_auc(detector: Detector, normal: np.ndarray, faulted: dict[str, list[tuple[np.ndarray, int]]]
                  ) -> dict:
    """AUC of the held-out normal scores against each kind's faulted copies, and their mean (``auc``)."""
    import torch

    from ..audio import resample

    per = {}
    for kind, waves in faulted.items():
        bad = [detector.score(torch.from_numpy(np.ascontiguousarray(resample(w, sr, detector.sample_rate),
                                                                    dtype=np.float32))).score for w, sr in waves]
        per[kind] = auc_pair([0] * normal.size + [1] * len(bad), [*normal.tolist(), *bad])[0]
    return {"auc": float(np.mean(list(per.values()))), "faults": per, "normal": int(normal.size),
            "anomalous": sum(len(w) for w in faulted.values()), "criterion": "injected faults"}


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
