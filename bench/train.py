"""Training throughput of a packaged config, in seconds of audio per second: with and without the feature cache, and
``train.amp=auto`` against fp32, and with ``--compile`` also ``train.compile=true`` (TorchInductor) against eager.

Run: ``python bench/train.py [--config speech_vae] [--data corpora/speech] [--steps 150] [--device auto] [--compile]``.
Without ``--data`` it builds a small speech corpus (80 sentences x 8 voices) in a temporary folder first. Each
variant trains ``--steps`` steps from scratch; the first log interval (start-up, first batches) is dropped and the
median of the rest is printed. ``amp: auto`` means bf16 autocast on CUDA and on CPUs with native bf16.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, short_run, speech_data  # noqa: E402

from audiovae.training import amp_enabled  # noqa: E402


def throughput(config: str, data: str, cache: str | None, steps: int, device: str, out: Path, *extra: str) -> float:
    trainer, _ = short_run(config, data, cache, steps, device, out, "train.log_every=25", *extra)
    return statistics.median(r["audio_s_per_s"] for r in trainer.history[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="speech_vae")
    ap.add_argument("--data", default=None)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true", help="also time train.compile=true (compiling takes minutes)")
    args = ap.parse_args()
    header(f"training throughput, {args.config}")
    with tempfile.TemporaryDirectory() as tmp:
        data = speech_data(args.data, tmp)
        cached = throughput(args.config, data, str(Path(tmp) / "cache"), args.steps, args.device, Path(tmp) / "a")
        fly = throughput(args.config, data, None, args.steps, args.device, Path(tmp) / "b")
        fp32 = throughput(args.config, data, str(Path(tmp) / "cache"), args.steps, args.device, Path(tmp) / "c",
                          "train.amp=false")
        compiled = (throughput(args.config, data, str(Path(tmp) / "cache"), args.steps, args.device, Path(tmp) / "d",
                               "train.compile=true") if args.compile else None)
    device = "cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    amp = amp_enabled("auto", torch.device(device))
    print(f"{device:5s} with cache     {cached:9.0f} s of audio / s  (train.amp=auto: {'bf16' if amp else 'fp32'})")
    print(f"{device:5s} without cache  {fly:9.0f} s of audio / s")
    print(f"{device:5s} cache ratio    {cached / fly:9.2f}x")
    print(f"{device:5s} fp32, cache    {fp32:9.0f} s of audio / s  (train.amp=false)")
    print(f"{device:5s} auto / fp32    {cached / fp32:9.2f}x")
    if compiled is not None:
        print(f"{device:5s} compiled       {compiled:9.0f} s of audio / s  (train.compile=true, cache; the first log "
              "interval, which compiles, dropped)")
        print(f"{device:5s} compiled/eager {compiled / cached:9.2f}x")


if __name__ == "__main__":
    main()
