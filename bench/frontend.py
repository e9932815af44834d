"""Log-mel front end: audiovae.MelSpectrogram vs librosa.feature.melspectrogram on the same 60 s signal.

Run: ``python bench/frontend.py [--seconds 60] [--batch 64]``. Prints x-realtime for both, their ratio, and the max
log-domain difference; on CUDA (when present) also a batched run. Then thread contention (audiovae.threads): the
front end alone and right after a matrix product in numpy (whose OpenBLAS workers keep spinning for a while), in a
fresh process each with numpy's BLAS bounded (the default) and as numpy left it (``AUDIOVAE_BLAS_THREADS=keep``),
median of 15 calls on 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import librosa
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, header, race  # noqa: E402

from audiovae.features import MelConfig, MelSpectrogram  # noqa: E402


def librosa_logmel(y: np.ndarray, cfg: MelConfig) -> np.ndarray:
    mel = librosa.feature.melspectrogram(y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                                         win_length=cfg.win_length, n_mels=cfg.n_mels, fmin=cfg.f_min, fmax=cfg.f_max,
                                         power=cfg.power, center=cfg.center, pad_mode=cfg.pad_mode,
                                         htk=cfg.mel_scale == "htk", norm=cfg.mel_norm)
    return np.log(np.maximum(mel, cfg.log_floor))


def contention_probe(seconds: float, reps: int = 15) -> dict[str, float]:
    """Median x-realtime of the front end alone and right after a numpy matrix product, in this process."""
    cfg = MelConfig()
    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.standard_normal(int(seconds * cfg.sample_rate)).astype(np.float32))
    a = rng.standard_normal((1024, 400))
    mel = MelSpectrogram(cfg)
    out = {}
    with torch.inference_mode():
        for label, blas in (("alone", False), ("after_blas", True), ("alone_again", False)):
            times = []
            for _ in range(reps):
                if blas:
                    a @ a.T
                t0 = time.perf_counter()
                mel(y)
                times.append(time.perf_counter() - t0)
            out[label] = seconds / sorted(times)[reps // 2]
    return out


def contention(seconds: float) -> None:
    for setting in ("1", "keep"):
        env = dict(os.environ, AUDIOVAE_BLAS_THREADS=setting)
        res = subprocess.run([sys.executable, __file__, "--probe", "--seconds", str(seconds)], env=env,
                             capture_output=True, text=True, check=True)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        alone = max(r["alone"], r["alone_again"])
        label = "bounded (default)" if setting == "1" else "keep (numpy's own)"
        print(f"cpu    BLAS {label:18s} alone {alone:7.0f}x  after numpy BLAS {r['after_blas']:7.0f}x  "
              f"ratio {r['after_blas'] / alone:5.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--batch", type=int, default=64, help="batch size for the CUDA run")
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    if args.probe:
        print(json.dumps(contention_probe(args.seconds)))
        return
    cfg = MelConfig()
    header("log-mel front end")
    rng = np.random.default_rng(0)
    n = int(args.seconds * cfg.sample_rate)
    y = (0.5 * librosa.chirp(fmin=50, fmax=8000, sr=cfg.sample_rate, length=n)
         + 0.05 * rng.standard_normal(n)).astype(np.float32)
    mel = MelSpectrogram(cfg)
    yt = torch.from_numpy(y)
    with torch.inference_mode():
        diff = float(np.abs(mel(yt).numpy() - librosa_logmel(y, cfg)).max())
        t = race({"ours": lambda: mel(yt), "librosa": lambda: librosa_logmel(y, cfg)}, args.repeat)
    t_ours, t_ref = t["ours"], t["librosa"]
    print(f"cpu    ours    {args.seconds / t_ours:10.0f}x realtime")
    print(f"cpu    librosa {args.seconds / t_ref:10.0f}x realtime")
    print(f"cpu    ratio   {t_ref / t_ours:10.2f}x   (max |log-mel difference| {diff:.2e})")
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        mel_gpu = MelSpectrogram(cfg).to(dev)
        batch = yt.to(dev).unsqueeze(0).repeat(args.batch, 1)
        with torch.inference_mode():
            t_gpu = best_of(lambda: mel_gpu(batch), args.repeat, sync=True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                t_amp = best_of(lambda: mel_gpu(batch), args.repeat, sync=True)
        total = args.seconds * args.batch
        print(f"cuda   ours    {total / t_gpu:10.0f}x realtime (batch {args.batch} x {args.seconds:g} s)")
        print(f"cuda   bf16-ac {total / t_amp:10.0f}x realtime (inside bf16 autocast)")
        print(f"cuda   ratio   {t_ref / t_gpu * args.batch:10.1f}x vs librosa on CPU")
    contention(args.seconds)


if __name__ == "__main__":
    main()
