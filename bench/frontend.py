"""Log-mel front end: audiovae.MelSpectrogram vs librosa.feature.melspectrogram on the same 60 s signal.

Run: ``python bench/frontend.py [--seconds 60] [--batch 64]``. Prints x-realtime for both, their ratio, and the max
log-domain difference; on CUDA (when present) also a batched run.
"""

from __future__ import annotations

import argparse
import sys
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--batch", type=int, default=64, help="batch size for the CUDA run")
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()
