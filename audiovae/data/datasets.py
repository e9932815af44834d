"""PyTorch datasets over manifest entries: random log-mel segments, speaker ids, noisy/clean pairs, on-the-fly mixing.

Crops are drawn from a generator seeded by ``(seed, epoch, index)``, so an epoch is reproducible and a resumed run
sees the same data as an uninterrupted one (``set_epoch``). Features come from a :class:`FeatureCache` when one is
given (fast), else are computed on the fly. A file that turns out to be unreadable is reported with its path and
replaced by another item, never fatal.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import audio
from ..errors import AudiovaeError, ConfigError
from ..features import MelConfig, MelSpectrogram
from .cache import FeatureCache
from .manifest import Entry
from .mixing import audible_crop, coloured_noise, mix_at_snr


class DataWarning(UserWarning):
    """A file of a dataset was skipped (the message names it and says why)."""


@dataclass(frozen=True)
class SpeakerMap:
    """Speaker name <-> integer id, in sorted name order (stable across runs; saved in checkpoints)."""

    names: tuple[str, ...]

    @classmethod
    def from_entries(cls, entries: Sequence[Entry]) -> SpeakerMap:
        return cls(tuple(sorted({e.speaker for e in entries if e.speaker})))

    def id(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ConfigError(f"unknown speaker {name!r}; known: {', '.join(self.names)}") from None

    def name(self, index: int) -> str:
        if not 0 <= index < len(self.names):
            raise ConfigError(f"speaker index {index} out of range 0..{len(self.names) - 1}")
        return self.names[index]

    def lookup(self, speaker: str | int) -> int:
        """Id of a speaker given by name or index (as users type either on the command line)."""
        if isinstance(speaker, int) or str(speaker).isdigit():
            index = int(speaker)
            if not 0 <= index < len(self.names):
                raise ConfigError(f"speaker index {index} out of range; choose 0..{len(self.names) - 1} or a name: "
                                  f"{', '.join(self.names)}")
            return index
        if speaker not in self.names:
            raise ConfigError(f"unknown speaker {speaker!r}; choose one of: {', '.join(self.names)}")
        return self.names.index(speaker)

    def __len__(self) -> int:
        return len(self.names)


def select(entries: Sequence[Entry], split: str | None = None,
           min_seconds: float = 0.0) -> tuple[list[Entry], list[str]]:
    """Entries of one split whose header was readable and long enough; the rest as ``"path: reason"``."""
    keep, skipped = [], []
    for e in entries:
        if split is not None and e.split != split:
            continue
        if e.duration < 0:
            skipped.append(f"{e.path}: not a readable audio file")
        elif e.duration < min_seconds:
            skipped.append(f"{e.path}: too short ({e.duration:.3f} s)")
        else:
            keep.append(e)
    return keep, skipped


def _read_wave(path: str, config: MelConfig) -> torch.Tensor:
    """A file as mono at the front end's rate, long enough for one frame; its quality warnings are not repeated per
    crop (unreadable files raise :class:`AudiovaeError`, which the datasets report once)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return audio.load(path, config.sample_rate, min_samples=config.min_samples)[0]


class _Crops(Dataset):
    """What the crop datasets share: one item per file per epoch, crops drawn from a generator seeded by
    ``(seed, epoch, index)``, a file that fails to load reported once and replaced by the next one."""

    def __init__(self, entries: Sequence[Entry], config: MelConfig, segment_frames: int,
                 speakers: SpeakerMap | None, seed: int) -> None:
        if segment_frames <= 0:
            raise ConfigError(f"segment_frames={segment_frames} must be > 0")
        self.entries = list(entries)
        if not self.entries:
            raise ConfigError(f"{type(self).__name__}: no entries (empty split, or every file was skipped)")
        self.config, self.segment_frames, self.seed = config, segment_frames, seed
        self.speakers = speakers or SpeakerMap.from_entries(self.entries)
        self.epoch = 0
        self.failed: dict[str, str] = {}
        self._mel: MelSpectrogram | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.entries)

    def _mel_fn(self) -> MelSpectrogram:
        """The front end, built on first use (in the worker process that needs it)."""
        if self._mel is None:
            self._mel = MelSpectrogram(self.config)
        return self._mel

    def _speaker(self, e: Entry) -> int:
        return self.speakers.id(e.speaker) if e.speaker else -1

    def _load(self, e: Entry):  # noqa: ANN202 - whatever _item needs
        """Read what one entry's item needs; raises :class:`AudiovaeError` for an unreadable file."""
        raise NotImplementedError

    def _item(self, e: Entry, loaded, rng: np.random.Generator) -> dict:  # noqa: ANN001
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        for attempt in range(len(self.entries)):
            i = (index + attempt) % len(self.entries)
            e = self.entries[i]
            if e.path in self.failed:
                continue
            try:
                loaded = self._load(e)
            except AudiovaeError as err:
                self.failed[e.path] = str(err)
                warnings.warn(f"skipping {err}", DataWarning, stacklevel=2)
                continue
            return self._item(e, loaded, np.random.default_rng((self.seed, self.epoch, i)))
        raise AudiovaeError(f"{type(self).__name__}: every file of the dataset failed to load")


class MelSegments(_Crops):
    """Random fixed-length log-mel crops ``[n_mels, segment_frames]`` of each file, one item per file per epoch.

    Items are dicts: ``mel`` (float32), ``length`` (valid frames; shorter files are padded with the log floor),
    ``speaker`` (id, or -1), and for noisy/clean entries ``clean`` cropped at the same frames.
    """

    def __init__(self, entries: Sequence[Entry], config: MelConfig, segment_frames: int = 128,
                 cache: FeatureCache | None = None, speakers: SpeakerMap | None = None, seed: int = 0) -> None:
        super().__init__(entries, config, segment_frames, speakers, seed)
        self.cache = cache

    def _features(self, path: str) -> np.ndarray:
        """``[frames, n_mels]`` log-mel of a file: from the cache, else computed now."""
        if self.cache is not None and path in self.cache:
            return self.cache[path]
        with torch.inference_mode():
            return self._mel_fn()(_read_wave(path, self.config)).T.numpy()

    def _crop(self, feats: np.ndarray, start: int) -> tuple[torch.Tensor, int]:
        seg = np.asarray(feats[start: start + self.segment_frames], dtype=np.float32)
        length = len(seg)
        if length < self.segment_frames:
            pad = np.full((self.segment_frames - length, seg.shape[1]), np.log(self.config.log_floor), np.float32)
            seg = np.concatenate([seg, pad])
        return torch.from_numpy(seg.T.copy()), length

    def _load(self, e: Entry) -> tuple[np.ndarray, np.ndarray | None]:
        return self._features(e.path), self._features(e.clean) if e.clean else None

    def _item(self, e: Entry, loaded: tuple[np.ndarray, np.ndarray | None], rng: np.random.Generator) -> dict:
        feats, clean = loaded
        frames = len(feats) if clean is None else min(len(feats), len(clean))
        start = int(rng.integers(0, max(1, frames - self.segment_frames + 1)))
        mel, length = self._crop(feats, start)
        item: dict[str, torch.Tensor | int] = {"mel": mel, "length": length, "speaker": self._speaker(e)}
        if clean is not None:
            item["clean"] = self._crop(clean, start)[0]
        return item


class MixedPairs(_Crops):
    """Noisy/clean pairs mixed on the fly: a clean crop plus a noise crop (from files, or coloured noise when no
    noise files are given) at an SNR drawn from ``snr_range``. Items are ``mel`` (noisy), ``clean``, ``snr``,
    ``length`` (every frame is valid)."""

    def __init__(self, clean: Sequence[Entry], config: MelConfig, noise: Sequence[Entry] = (),
                 snr_range: tuple[float, float] = (-5.0, 20.0), segment_frames: int = 128, seed: int = 0) -> None:
        super().__init__(clean, config, segment_frames, None, seed)
        self.noise, self.snr_range = list(noise), snr_range

    def _load(self, e: Entry) -> np.ndarray:
        return _read_wave(e.path, self.config).numpy()

    def _item(self, e: Entry, speech: np.ndarray, rng: np.random.Generator) -> dict:
        n = (self.segment_frames - 1) * self.config.hop_length
        start = int(rng.integers(0, max(1, len(speech) - n + 1)))
        speech = np.pad(speech[start: start + n], (0, max(0, n - len(speech[start:]))))
        if self.noise:
            recording = _read_wave(self.noise[int(rng.integers(len(self.noise)))].path, self.config).numpy()
            noise = audible_crop(recording, n, rng)
        else:
            noise = coloured_noise(n, float(rng.uniform(0.0, 2.0)), rng)
        snr = float(rng.uniform(*self.snr_range))
        mixture, target = mix_at_snr(speech, noise, snr)
        with torch.inference_mode():
            mels = self._mel_fn()(torch.from_numpy(np.stack([mixture, target])))
        return {"mel": mels[0].clone(), "clean": mels[1].clone(), "snr": snr, "length": mels.shape[-1]}


class WaveSegments(_Crops):
    """Random waveform crops with their log-mel, for vocoders: ``wave`` ``[segment_frames * hop_length]`` and ``mel``
    ``[n_mels, segment_frames]`` (the frames whose centres fall in the crop), ``length`` (valid frames; short files
    are zero-padded), ``speaker`` (id, or -1). Crops are seeded by ``(seed, epoch, index)`` like :class:`MelSegments`.
    """

    def __init__(self, entries: Sequence[Entry], config: MelConfig, segment_frames: int = 32,
                 speakers: SpeakerMap | None = None, seed: int = 0) -> None:
        super().__init__(entries, config, segment_frames, speakers, seed)

    def _load(self, e: Entry) -> torch.Tensor:
        return _read_wave(e.path, self.config)

    def _item(self, e: Entry, wave: torch.Tensor, rng: np.random.Generator) -> dict:
        n = self.segment_frames * self.config.hop_length
        start = int(rng.integers(0, max(1, len(wave) - n + 1)))
        crop = wave[start: start + n]
        length = min(self.segment_frames, -(-len(crop) // self.config.hop_length))
        crop = torch.nn.functional.pad(crop, (0, n - len(crop)))
        with torch.inference_mode():
            mel = self._mel_fn()(crop)[:, : self.segment_frames].clone()
        return {"wave": crop, "mel": mel, "length": length, "speaker": self._speaker(e)}
