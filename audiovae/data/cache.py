"""Log-mel feature cache: computed once, in parallel, into memory-mapped shards keyed by the ``MelConfig``.

Training on CPU is otherwise bound by decoding, resampling and the STFT. The cache lives in
``<root>/<MelConfig.fingerprint()>/``, so a config change means a fresh cache rather than stale features; within one
config, files are keyed by path, size and modification time, and only new or changed files are computed on update.
Shards are ``.npy`` files of float16 ``[frames, n_mels]`` (log-mel quantisation error < 4e-3 nats), opened with
``mmap_mode='r'`` so DataLoader workers share the page cache instead of copying.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import audio
from ..errors import AudiovaeError
from ..features import MelConfig, MelSpectrogram
from ..fileio import atomic_path, write_atomic
from ..progress import bar_off

INDEX = "index.json"
SHARD_FRAMES = 1 << 20  # ~160 MB of float16 at 80 mels


@dataclass(frozen=True)
class _Item:
    shard: str
    start: int
    frames: int
    key: str


def file_key(path: str | os.PathLike[str]) -> str:
    """Identity of a file's content for the cache: size and modification time (no hashing of gigabytes)."""
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


_worker_mel: MelSpectrogram | None = None


def _init_worker(config: MelConfig) -> None:
    global _worker_mel
    torch.set_num_threads(1)  # one process per core; threads inside would oversubscribe
    warnings.simplefilter("ignore")  # silent/clipped warnings would interleave; errors are what we report
    _worker_mel = MelSpectrogram(config)


def _features(path: str) -> tuple[str, np.ndarray | None, str]:
    """Worker: one file -> float16 ``[frames, n_mels]`` or an error message."""
    assert _worker_mel is not None
    cfg = _worker_mel.config
    try:
        wave, _ = audio.load(path, cfg.sample_rate, min_samples=cfg.min_samples)
    except AudiovaeError as e:
        return path, None, str(e)
    with torch.inference_mode():
        mel = _worker_mel(wave)
    return path, mel.T.contiguous().numpy().astype(np.float16), ""


class FeatureCache:
    """Read side of the cache: ``cache[path]`` is a float16 ``[frames, n_mels]`` memory-mapped view."""

    def __init__(self, root: str | os.PathLike[str], config: MelConfig) -> None:
        self.config = config
        self.dir = Path(root) / config.fingerprint()
        self._items: dict[str, _Item] = {}
        self._shards: dict[str, np.ndarray] = {}
        index = self.dir / INDEX
        if index.is_file():
            data = json.loads(index.read_text())
            if MelConfig.from_dict(data["config"]) != config:
                raise AudiovaeError(f"{index}: cache written for another MelConfig (fingerprint collision?)")
            self._items = {p: _Item(**v) for p, v in data["files"].items()}

    def __contains__(self, path: str | os.PathLike[str]) -> bool:
        item = self._items.get(str(path))
        return item is not None and os.path.exists(path) and item.key == file_key(path)

    def __len__(self) -> int:
        return len(self._items)

    def frames(self, path: str | os.PathLike[str]) -> int:
        return self._items[str(path)].frames

    def __getitem__(self, path: str | os.PathLike[str]) -> np.ndarray:
        item = self._items[str(path)]
        shard = self._shards.get(item.shard)
        if shard is None:
            shard = self._shards[item.shard] = np.load(self.dir / item.shard, mmap_mode="r")
        return shard[item.start: item.start + item.frames]

    def update(self, paths: list[str], workers: int = 0, progress: bool = True) -> list[str]:
        """Compute features for the paths not yet cached (or changed); return ``"path: reason"`` for bad files.

        Bad files (corrupt, empty, too short, NaN) are reported and skipped, never fatal. The index is rewritten
        atomically after the new shard is complete, so an interrupted update leaves the previous cache valid.
        """
        todo = sorted({str(p) for p in paths if p not in self})
        if not todo:
            return []
        self.dir.mkdir(parents=True, exist_ok=True)
        workers = workers or os.cpu_count() or 1
        skipped: list[str] = []
        pending: list[tuple[str, np.ndarray]] = []
        n_pending = 0
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(self.config,)) as pool:
            results = pool.map(_features, todo, chunksize=max(1, min(32, len(todo) // (4 * workers) or 1)))
            for path, feats, error in tqdm(results, total=len(todo), desc="features", unit="file",
                                           disable=bar_off(progress)):
                if feats is None:
                    skipped.append(error)
                    continue
                pending.append((path, feats))
                n_pending += len(feats)
                if n_pending >= SHARD_FRAMES:
                    self._write_shard(pending)
                    pending, n_pending = [], 0
        if pending:
            self._write_shard(pending)
        return skipped

    def _write_shard(self, pending: list[tuple[str, np.ndarray]]) -> None:
        n = len(list(self.dir.glob("shard-*.npy")))
        name = f"shard-{n:05d}.npy"
        while (self.dir / name).exists():
            n += 1
            name = f"shard-{n:05d}.npy"
        with atomic_path(self.dir / name) as tmp:
            np.save(tmp, np.concatenate([f for _, f in pending]))
        start = 0
        for path, feats in pending:
            self._items[path] = _Item(name, start, len(feats), file_key(path))
            start += len(feats)
        self._write_index()

    def _write_index(self) -> None:
        data = {"config": self.config.to_dict(), "files": {p: vars(i) for p, i in sorted(self._items.items())}}
        write_atomic(self.dir / INDEX, json.dumps(data))

    def clear(self) -> None:
        """Delete this config's cache."""
        shutil.rmtree(self.dir, ignore_errors=True)
        self._items, self._shards = {}, {}
