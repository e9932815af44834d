"""A portable copy of the vocoder's training data, for a machine that cannot build it (a lent GPU with no TTS
engines and no network): FLAC at each file's own rate, a manifest with relative paths, within a size budget.

Files are taken in manifest order, per speaker, until each speaker's share of the minutes is used: ``--real`` minutes
for the recorded voice(s) (``--real-speakers``), ``--synthetic`` minutes shared by the others; ``--valid`` files of
each speaker's validation split. Test files never travel. The same manifest and budget give the same pack.

Usage: python recipes/vocoder/pack.py MANIFEST OUT_DIR [--real 24] [--synthetic 14] [--valid 2]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import soundfile as sf

from audiovae.data.layouts import from_manifest
from audiovae.data.manifest import write_manifest
from audiovae.fileio import atomic_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--real", type=float, default=24.0, help="minutes of the recorded voice(s)")
    ap.add_argument("--synthetic", type=float, default=14.0, help="minutes shared by the synthetic voices")
    ap.add_argument("--real-speakers", default="ru_nsh", help="comma-separated")
    ap.add_argument("--valid", type=int, default=2, help="validation files per speaker")
    args = ap.parse_args()

    entries = from_manifest(args.manifest)
    real = set(args.real_speakers.split(","))
    speakers = sorted({e.speaker for e in entries})
    synthetic = [s for s in speakers if s not in real]
    budget = {s: 60 * (args.real / len(real) if s in real else args.synthetic / max(1, len(synthetic)))
              for s in speakers}
    used: dict[str, float] = defaultdict(float)
    valid: dict[str, int] = defaultdict(int)
    chosen, size = [], 0
    for e in entries:
        if e.split == "train" and used[e.speaker] + e.duration <= budget[e.speaker]:
            used[e.speaker] += e.duration
        elif e.split == "valid" and valid[e.speaker] < args.valid:
            valid[e.speaker] += 1
        else:
            continue
        rel = Path("audio") / e.speaker / f"{Path(e.path).stem}.flac"
        (args.out / rel).parent.mkdir(parents=True, exist_ok=True)
        data, rate = sf.read(e.path, dtype="int16", always_2d=False)
        with atomic_path(args.out / rel) as tmp:
            sf.write(tmp, data, rate, format="FLAC", subtype="PCM_16")
        size += (args.out / rel).stat().st_size
        e.path = str(rel)
        chosen.append(e)
    write_manifest(args.out / "manifest.jsonl", chosen)
    minutes = sum(used.values()) / 60
    print(f"wrote {args.out}: {len(chosen)} files, {minutes:.1f} min of training audio "
          f"({', '.join(f'{s} {used[s] / 60:.1f}' for s in speakers)}), {size / 2**20:.1f} MB")


if __name__ == "__main__":
    main()
