"""Vocoder speed: the bundled neural vocoder and mel-constrained Griffin-Lim against classic Griffin-Lim 32, same
log-mel, same run.

Run: ``python bench/vocoder.py [--vocoder neural|mel-griffin-lim|PATH ...] [--seconds 5 30] [--repeat 3]``. Prints
x-realtime of each (log-mel -> waveform; the front end excluded) and its speed ratio to Griffin-Lim 32, on the CPU
with the threads torch uses, and on CUDA when present (also a batch of 16 clips).
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, race  # noqa: E402

from audiovae import audio  # noqa: E402
from audiovae.features import MelSpectrogram  # noqa: E402
from audiovae.pipelines.latent import choose_vocoder, choose_vocoders  # noqa: E402

BASELINE = "Griffin-Lim 32"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--vocoder", action="append", help="a vocoder to time (repeatable): neural (the bundled one), "
                    "a vocoder by name or a vocoder file; default: neural and mel-griffin-lim")
    ap.add_argument("--seconds", type=float, nargs="+", default=[5.0, 30.0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    names = args.vocoder or ["neural", "mel-griffin-lim"]
    vocoders = {name: v.eval() for name, v in choose_vocoders(names).items()}  # names: a file's features
    cfg = next(iter(vocoders.values())).config
    vocoders[BASELINE] = choose_vocoder("griffin-lim", cfg, n_iter=32)
    header(f"vocoder speed: {', '.join(names)} vs {BASELINE}")
    with resources.as_file(resources.files("audiovae") / "assets" / "example.wav") as p:
        speech, _ = audio.load(p, cfg.sample_rate)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"{'device':6s} {'batch':>5s} {'seconds':>8s} " + " ".join(f"{k + ' x rt':>22s}" for k in vocoders)
          + " " + " ".join(f"{k + ' / GL32':>22s}" for k in names))
    for device in devices:
        for seconds in args.seconds:
            for batch in (1, 16) if device == "cuda" else (1,):
                n = int(seconds * cfg.sample_rate)
                wave = speech.repeat(n // len(speech) + 1)[:n].to(device)
                logmel = MelSpectrogram(cfg).to(device)(wave[None]).repeat(batch, 1, 1)

                def run(vocoder: torch.nn.Module, logmel: torch.Tensor = logmel, n: int = n) -> object:
                    with torch.inference_mode():
                        return vocoder(logmel, length=n)

                on = {k: v.to(device) for k, v in vocoders.items()}
                best = race({k: lambda v=v: run(v) for k, v in on.items()}, repeat=args.repeat, rounds=2,
                            sync=device == "cuda")
                rt = {k: batch * seconds / t for k, t in best.items()}
                print(f"{device:6s} {batch:5d} {seconds:8.1f} " + " ".join(f"{rt[k]:22.0f}" for k in vocoders)
                      + " " + " ".join(f"{rt[k] / rt[BASELINE]:22.2f}" for k in names))


if __name__ == "__main__":
    main()
