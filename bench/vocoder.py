"""Vocoder speed: the neural vocoder against Griffin-Lim 32 (the default before it), same log-mel, same run.

Run: ``python bench/vocoder.py [--vocoder neural|PATH] [--seconds 5 30] [--repeat 5]``. Prints x-realtime of each
(log-mel -> waveform; the front end excluded) and the neural/Griffin-Lim speed ratio, on the CPU with the threads
torch uses, and on CUDA when present (also a batch of 16 clips).
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
from audiovae.features import MelConfig, MelSpectrogram  # noqa: E402
from audiovae.pipelines.latent import choose_vocoder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--vocoder", default="neural", help="neural (the bundled one) or a vocoder file")
    ap.add_argument("--seconds", type=float, nargs="+", default=[5.0, 30.0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    neural = choose_vocoder(args.vocoder, MelConfig()).eval()
    cfg = neural.config
    gl = choose_vocoder("griffin-lim", cfg, n_iter=32)
    header(f"vocoder speed: {args.vocoder} vs Griffin-Lim 32")
    with resources.as_file(resources.files("audiovae") / "assets" / "example.wav") as p:
        speech, _ = audio.load(p, cfg.sample_rate)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"{'device':6s} {'batch':>5s} {'seconds':>8s} {'neural x rt':>12s} {'GL32 x rt':>10s} {'ratio':>6s}")
    for device in devices:
        for seconds in args.seconds:
            for batch in (1, 16) if device == "cuda" else (1,):
                n = int(seconds * cfg.sample_rate)
                wave = speech.repeat(n // len(speech) + 1)[:n].to(device)
                logmel = MelSpectrogram(cfg).to(device)(wave[None]).repeat(batch, 1, 1)
                v, g = neural.to(device), gl.to(device)

                def run(vocoder: torch.nn.Module, logmel: torch.Tensor = logmel, n: int = n) -> object:
                    with torch.inference_mode():
                        return vocoder(logmel, length=n)

                best = race({"neural": lambda v=v: run(v), "gl": lambda g=g: run(g)}, repeat=args.repeat, rounds=2,
                            sync=device == "cuda")
                rt = {k: batch * seconds / t for k, t in best.items()}
                print(f"{device:6s} {batch:5d} {seconds:8.1f} {rt['neural']:12.0f} {rt['gl']:10.0f} "
                      f"{rt['neural'] / rt['gl']:6.1f}")


if __name__ == "__main__":
    main()
