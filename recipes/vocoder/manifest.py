"""The vocoder's data: the speech corpus's voices plus the real recorded voice of Debian's festvox-ru, one manifest.

A vocoder trained on synthetic voices alone is judged on real speech it never heard the like of; the real voice's
training split (the same split the noisy corpus uses: held-out files never train) teaches it recorded speech too.

Usage: python recipes/vocoder/manifest.py SPEECH_CORPUS OUT_DIR   (writes OUT_DIR/manifest.jsonl)
"""

from __future__ import annotations

import sys
from pathlib import Path

import soundfile as sf

from audiovae.data.corpora.noisy import NoisyCorpusConfig, real_voice
from audiovae.data.layouts import from_manifest
from audiovae.data.manifest import write_manifest


def main(corpus: str, out_dir: str) -> None:
    entries = from_manifest(Path(corpus) / "manifest.jsonl")
    real = real_voice(NoisyCorpusConfig(), test_files=48)  # the noisy corpus's real test files
    for e in real:
        e.duration = round(sf.info(e.path).duration, 4)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    out = write_manifest(Path(out_dir) / "manifest.jsonl", entries + real)
    counts = {s: sum(e.split == s for e in real) for s in ("train", "valid", "test")}
    print(f"wrote {out}: {len(entries)} corpus files + {len(real)} real recordings ({counts})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    main(sys.argv[1], sys.argv[2])
