"""Feature cache: training segments read from the cache vs computed on the fly (decode + resample + log-mel).

Run: ``python bench/cache.py [--files 64] [--seconds 4] [--rate 44100]``. Writes FLAC files at ``--rate`` into a
temporary folder (like VCTK or music at 44.1/48 kHz, so the on-the-fly path must decode and resample as it would in
training), caches them, then times one pass of ``MelSegments`` over all files both ways and prints the ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, race  # noqa: E402

from audiovae.data.cache import FeatureCache  # noqa: E402
from audiovae.data.datasets import MelSegments  # noqa: E402
from audiovae.data.manifest import Entry  # noqa: E402
from audiovae.data.mixing import coloured_noise  # noqa: E402
from audiovae.features import MelConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rate", type=int, default=44100)
    ap.add_argument("--segment-frames", type=int, default=128)
    args = ap.parse_args()
    header("feature cache vs on-the-fly features")
    cfg = MelConfig()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        entries = []
        for i in range(args.files):
            n = int(args.seconds * args.rate)
            t = np.arange(n) / args.rate
            y = 0.3 * np.sin(2 * np.pi * (200 + 20 * i) * t * (1 + t)) + 0.05 * coloured_noise(n, 1.0, rng)
            path = Path(tmp) / f"{i:03d}.flac"
            sf.write(path, y.astype(np.float32), args.rate, subtype="PCM_16")
            entries.append(Entry(str(path), args.seconds))
        cache = FeatureCache(Path(tmp) / "cache", cfg)
        t0 = time.perf_counter()
        cache.update([e.path for e in entries], progress=False)
        build = time.perf_counter() - t0
        cached = MelSegments(entries, cfg, args.segment_frames, cache=cache)
        fly = MelSegments(entries, cfg, args.segment_frames)

        def epoch(ds: MelSegments) -> None:
            for i in range(len(ds)):
                ds[i]

        t = race({"cache": lambda: epoch(cached), "fly": lambda: epoch(fly)}, repeat=3, rounds=2)
    audio_s = args.files * args.seconds
    print(f"cache build    {build:8.2f} s for {audio_s:.0f} s of audio ({audio_s / build:.0f}x realtime, all cores)")
    print(f"from cache     {args.files / t['cache']:8.0f} segments/s")
    print(f"on the fly     {args.files / t['fly']:8.0f} segments/s")
    print(f"ratio          {t['fly'] / t['cache']:8.1f}x")


if __name__ == "__main__":
    main()
