"""Training and validation sets from a run's ``data`` section, whatever is being trained.

The sources are found and split the same way for every kind of item (:func:`audiovae.data.layouts.discover`, the
manifest's ``train``/``valid`` splits, too-short files skipped); ``data.dataset`` then picks what an item is
(:data:`DATASETS`). What the data decides about the model (``n_speakers``) and what the checkpoint should remember
about it (each voice's pitch register) come back with the sets, so the engine never needs to know the model's type.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch.distributed as dist
from torch.utils.data import Dataset

from ..data.cache import FeatureCache
from ..data.datasets import MelSegments, MixedPairs, SpeakerMap, WaveSegments, select
from ..data.layouts import discover
from ..data.manifest import Entry
from ..errors import ConfigError
from ..pitch import speaker_registers
from .config import RunConfig

__all__ = ["TrainData", "DATASETS", "build_data"]


@dataclass
class TrainData:
    """The two sets and what the data says beyond them."""

    train: Dataset
    valid: Dataset
    speakers: SpeakerMap | None = None
    info: dict = field(default_factory=dict)  # facts the checkpoint keeps (used at inference)
    model_options: dict = field(default_factory=dict)  # model options that come from the data


@dataclass
class _Sources:
    train: list[Entry]
    valid: list[Entry]
    speakers: SpeakerMap | None


def _sources(config: RunConfig, is_main: bool) -> _Sources:
    dc, mel = config.data, config.mel
    if not dc.train:
        raise ConfigError("data.train is not set: point it at a corpus folder, a manifest or a dataset folder "
                          "(e.g. data.train=corpora/speech)")
    entries = discover(dc.train, dc.layout)
    if dc.exclude_speakers:
        unknown = sorted(set(dc.exclude_speakers) - {e.speaker for e in entries})
        if unknown:
            raise ConfigError(f"data.exclude_speakers: {', '.join(unknown)} not in {dc.train}")
        entries = [e for e in entries if e.speaker not in dc.exclude_speakers]
    min_seconds = mel.min_samples / mel.sample_rate
    entries = [e for e in entries if e.label != "anomaly"]  # a detector learns what normal sounds like, only that
    train, skipped = select(entries, "train", min_seconds)
    if dc.max_snr is not None and train:
        snrs = [e.snr for e in train if e.snr is not None]
        if not snrs:
            raise ConfigError(f"{dc.train}: data.max_snr={dc.max_snr:g} but no training file has an SNR (it filters "
                              "a noisy corpus's mixtures)")
        train = [e for e in train if e.snr is None or e.snr <= dc.max_snr]
        if not train:
            raise ConfigError(f"{dc.train}: no training file at or below data.max_snr={dc.max_snr:g} dB (the lowest "
                              f"SNR is {min(snrs):g} dB)")
    if dc.valid:
        valid, skipped_valid = select([e for e in discover(dc.valid, dc.layout) if e.label != "anomaly"], None,
                                      min_seconds)
    else:
        valid, skipped_valid = select(entries, "valid", min_seconds)
    if (skipped or skipped_valid) and is_main:
        warnings.warn(f"{len(skipped) + len(skipped_valid)} file(s) skipped, e.g. {(skipped + skipped_valid)[0]}",
                      stacklevel=4)
    if not train:
        raise ConfigError(f"{dc.train}: no usable files in the train split")
    if not valid:
        if is_main:
            warnings.warn(f"{dc.train}: no validation files; validating on training files instead", stacklevel=4)
        valid = train
    speakers = None
    if dc.conditioning == "speaker":
        speakers = SpeakerMap.from_entries(train)
        if not len(speakers):
            raise ConfigError(f"{dc.train}: data.conditioning=speaker but the files have no speaker labels")
        train = [e for e in train if e.speaker]
        valid = [e for e in valid if e.speaker in speakers.names] or train
    return _Sources(train, valid, speakers)


def _valid_subset(valid: list[Entry], config: RunConfig) -> list[Entry]:
    """A seeded choice of ``data.valid_items`` validation files (all when 0 or fewer)."""
    n = config.data.valid_items
    if n and len(valid) > n:
        pick = np.random.default_rng((config.train.seed, 1)).choice(len(valid), n, replace=False)
        valid = [valid[i] for i in sorted(pick)]
    return valid


def _cache(entries: list[Entry], config: RunConfig, is_main: bool, world: int, progress: bool) -> FeatureCache:
    """Fill the feature cache on rank 0 while the others wait, then open it everywhere."""
    paths = sorted({p for e in entries for p in (e.path, e.clean) if p})
    if is_main:
        skipped = FeatureCache(config.data.cache_dir, config.mel).update(paths, progress=progress)
        if skipped:
            warnings.warn(f"feature cache: {len(skipped)} file(s) unreadable, e.g. {skipped[0]}", stacklevel=4)
    if world > 1:
        dist.barrier()
    return FeatureCache(config.data.cache_dir, config.mel)


def _segments(src: _Sources, config: RunConfig, is_main: bool, world: int, progress: bool) -> tuple[Dataset, Dataset]:
    """Log-mel crops (``mel``, ``length``, ``speaker``; ``clean`` where the entries are noisy/clean pairs)."""
    dc, train, valid = config.data, src.train, src.valid
    cache = _cache(train + valid, config, is_main, world, progress) if dc.cache_dir else None
    if cache is not None:
        train = [e for e in train if e.path in cache and (not e.clean or e.clean in cache)]
        valid = [e for e in valid if e.path in cache and (not e.clean or e.clean in cache)] or train
        if not train:
            raise ConfigError(f"{dc.train}: no training file could be read")
    seed = config.train.seed
    return (MelSegments(train, config.mel, dc.segment_frames, cache=cache, speakers=src.speakers, seed=seed),
            MelSegments(_valid_subset(valid, config), config.mel, dc.segment_frames, cache=cache,
                        speakers=src.speakers, seed=seed + 1))  # epoch never advances: the same crops every time


def _pairs(src: _Sources, config: RunConfig, is_main: bool, world: int, progress: bool) -> tuple[Dataset, Dataset]:
    """Clean speech mixed with noise on the fly (``mel`` noisy, ``clean`` the target, ``snr``)."""
    dc = config.data
    noise = select(discover(dc.noise, "auto"), None, 0.0)[0] if dc.noise else []
    if dc.noise and not noise:
        raise ConfigError(f"data.noise={dc.noise}: no readable noise files")
    seed = config.train.seed
    return (MixedPairs(src.train, config.mel, noise, dc.snr_range, dc.segment_frames, seed=seed),
            MixedPairs(_valid_subset(src.valid, config), config.mel, noise, dc.snr_range, dc.segment_frames,
                       seed=seed + 1))


def _waveform(src: _Sources, config: RunConfig, is_main: bool, world: int, progress: bool
              ) -> tuple[Dataset, Dataset]:
    """Waveform crops with their log-mel (``wave``, ``mel``, ``length``, ``speaker``), for vocoders."""
    dc, seed = config.data, config.train.seed
    return (WaveSegments(src.train, config.mel, dc.segment_frames, speakers=src.speakers, seed=seed),
            WaveSegments(_valid_subset(src.valid, config), config.mel, dc.segment_frames, speakers=src.speakers,
                         seed=seed + 1))


DATASETS: dict[str, Callable[[_Sources, RunConfig, bool, int, bool], tuple[Dataset, Dataset]]] = {
    "segments": _segments, "pairs": _pairs, "waveform": _waveform}


def build_data(config: RunConfig, is_main: bool = True, world: int = 1, progress: bool = True) -> TrainData:
    """The training and validation sets of ``config.data`` (see :class:`~audiovae.training.config.DataConfig`)."""
    src = _sources(config, is_main)
    train, valid = DATASETS[config.data.dataset](src, config, is_main, world, progress)
    data = TrainData(train, valid, src.speakers)
    if src.speakers is not None:
        data.model_options["n_speakers"] = len(src.speakers)
        if is_main:  # each voice's pitch register, for `convert --pitch auto`
            registers = speaker_registers(src.train, config.mel)
            data.info["pitch"] = {name: r.to_list() for name, r in registers.items()}
    return data
