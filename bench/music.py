"""Music generation speed: ``sample-music`` from the learned prior against the same decoding without the prior
(per-frame N(0, I)) and against the vocoder alone on the same log-mels, all in one process.

Run: ``python bench/music.py [--model music] [--n 4] [--seconds 10] [--repeat 3]``. Prints x-realtime for each and the
ratios: what the prior's frame-by-frame sampling adds, and how much of the time is Griffin-Lim's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, race  # noqa: E402

from audiovae.checkpoint import load_checkpoint  # noqa: E402
from audiovae.pipelines import music  # noqa: E402
from audiovae.pipelines.latent import vocoder_for  # noqa: E402
from audiovae.pretrained import resolve_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="music")
    ap.add_argument("--n", type=int, default=4, help="clips per call (one batched vocoder call)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    ckpt = load_checkpoint(resolve_model(args.model))
    vocoder = vocoder_for(ckpt)
    header(f"music generation, {args.n} x {args.seconds:g} s, {vocoder.vocoder_type}")
    mels, _ = music.generate(ckpt, args.n, args.seconds, vocoder=vocoder)
    samples = round(args.seconds * ckpt.mel.sample_rate)
    fns = {
        "prior": lambda: music.generate(ckpt, args.n, args.seconds, vocoder=vocoder),
        "no prior": lambda: music.generate(ckpt, args.n, args.seconds, source="normal", vocoder=vocoder),
        "vocoder alone": lambda: [vocoder(m[None], length=samples) for m in mels],  # per clip, as generate does
        "prior sampling alone": lambda: music.sample_latents(ckpt, args.n, args.seconds),
    }
    t = race(fns, args.repeat, rounds=2)
    audio_seconds = args.n * args.seconds
    for name, seconds in t.items():
        print(f"cpu    {name:22s} {audio_seconds / seconds:8.1f}x realtime")
    print(f"cpu    prior / no prior       {t['prior'] / t['no prior']:8.2f}x the time "
          f"(the vocoder is {100 * t['vocoder alone'] / t['prior']:.0f} % of the prior's)")


if __name__ == "__main__":
    main()
