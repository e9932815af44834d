"""Griffin-Lim: audiovae.griffin_lim vs librosa.griffinlim, same magnitude, same parameters, same iterations.

Run: ``python bench/griffin_lim.py [--seconds 10] [--n-iter 32] [--batch 32]``. Prints x-realtime for both, their
ratio, and the spectral convergence each reaches (plus classic Griffin-Lim without momentum, for reference); on CUDA
(when present) also a batched run.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

import librosa
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, header, race  # noqa: E402

from audiovae import audio  # noqa: E402
from audiovae.features import MelConfig, hann_window, stft  # noqa: E402
from audiovae.metrics import spectral_convergence  # noqa: E402
from audiovae.vocoders import griffin_lim  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--n-iter", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32, help="batch size for the CUDA run")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    cfg = MelConfig()
    header(f"Griffin-Lim, {args.n_iter} iterations, momentum 0.99")
    with resources.as_file(resources.files("audiovae") / "assets" / "example.wav") as p:
        speech, _ = audio.load(p, cfg.sample_rate)
    n = int(args.seconds * cfg.sample_rate)
    y = speech.repeat(n // len(speech) + 1)[:n]  # the bundled speech clip, tiled to the requested length
    mag = stft(y, cfg, hann_window(cfg)).abs()
    mag_np = mag.numpy()

    def ours():
        return griffin_lim(mag, cfg, n_iter=args.n_iter, momentum=0.99, seed=0, length=n)

    def ref():
        return librosa.griffinlim(mag_np, n_iter=args.n_iter, hop_length=cfg.hop_length, win_length=cfg.win_length,
                                  n_fft=cfg.n_fft, window="hann", center=cfg.center, pad_mode=cfg.pad_mode,
                                  momentum=0.99, init="random", random_state=0, length=n)

    t = race({"ours": ours, "librosa": ref}, args.repeat)

    def sc(w) -> float:
        return float(spectral_convergence(torch.as_tensor(w), mag, cfg))

    sc_ours, sc_ref = sc(ours()), sc(ref())
    sc_plain = sc(griffin_lim(mag, cfg, n_iter=args.n_iter, momentum=0.0, seed=0, length=n))
    print(f"cpu    ours    {args.seconds / t['ours']:8.1f}x realtime   spectral convergence {sc_ours:.4f}")
    print(f"cpu    librosa {args.seconds / t['librosa']:8.1f}x realtime   spectral convergence {sc_ref:.4f}")
    print(f"cpu    ratio   {t['librosa'] / t['ours']:8.2f}x            "
          f"(classic Griffin-Lim, no momentum: {sc_plain:.4f})")
    if torch.cuda.is_available():
        batch = mag.cuda().unsqueeze(0).repeat(args.batch, 1, 1)
        t_gpu = best_of(lambda: griffin_lim(batch, cfg, n_iter=args.n_iter, seed=0, length=n), args.repeat, sync=True)
        sc_gpu = float(spectral_convergence(griffin_lim(batch[:1], cfg, n_iter=args.n_iter, seed=0, length=n).cpu(),
                                            mag, cfg))
        print(f"cuda   ours    {args.seconds * args.batch / t_gpu:8.0f}x realtime   (batch {args.batch} x "
              f"{args.seconds:g} s; spectral convergence {sc_gpu:.4f})")
        print(f"cuda   ratio   {t['librosa'] / t_gpu * args.batch:8.1f}x vs librosa on CPU")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
