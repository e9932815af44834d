"""Denoising speed (x-realtime) and the peak memory of a 1-hour file.

Run: ``python bench/denoise.py --model CKPT --data corpora/noisy [--prior-model SPEECH_VAE] [--hour] [--device auto]``

Times, on 60 s of held-out noisy speech at 22.05 kHz, best of 3: ``method=mask`` (the model + a gain on the STFT),
``method=vocoder`` (the model + Griffin-Lim 32) and, with ``--prior-model``, the unsupervised VAE-NMF on 10 s; the
baseline measured in the same run is the STFT analysis/synthesis alone (unity gain), so the ratio is what the model
costs on top of touching the signal at all. ``--hour`` writes a 1-hour file (mixtures repeated) and runs
``audiovae denoise`` on it in a subprocess, reporting its wall time and peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, header  # noqa: E402

from audiovae import audio  # noqa: E402
from audiovae.checkpoint import load_checkpoint  # noqa: E402
from audiovae.data.layouts import discover  # noqa: E402
from audiovae.device import resolve_device  # noqa: E402
from audiovae.pipelines.denoise import Denoiser, apply_mel_gain  # noqa: E402
from audiovae.pretrained import resolve_model  # noqa: E402


def noisy_speech(data: str, seconds: float, sr: int) -> np.ndarray:
    """Held-out mixtures concatenated to ``seconds``."""
    chunks, total = [], 0
    for e in discover(data):
        if e.split == "test" and e.clean:
            y, _ = audio.load(e.path, sr)
            chunks.append(y.numpy())
            total += len(y)
            if total >= seconds * sr:
                break
    return np.concatenate(chunks)[: int(seconds * sr)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="denoise")
    ap.add_argument("--data", required=True)
    ap.add_argument("--prior-model", help="a clean-speech VAE for --method prior")
    ap.add_argument("--hour", action="store_true", help="also measure a 1-hour file through the CLI")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    header("denoising")
    device = resolve_device(args.device)
    ckpt = load_checkpoint(resolve_model(args.model), device)
    sr = ckpt.mel.sample_rate
    x = torch.from_numpy(noisy_speech(args.data, 60.0, sr))[None]
    seconds = x.shape[-1] / sr
    base = best_of(lambda: apply_mel_gain(x, sr, torch.ones(ckpt.mel.n_mels, 1 + x.shape[-1] // 256), ckpt.mel), 3)
    mask, vocoder = Denoiser(ckpt), Denoiser(ckpt, method="vocoder")
    times = {"mask": best_of(lambda: mask(x, sr), 3), "vocoder": best_of(lambda: vocoder(x, sr), 3)}
    print(f"{device.type:5s} STFT analysis/synthesis only  {seconds / base:7.0f}x realtime (baseline)")
    for name, t in times.items():
        print(f"{device.type:5s} denoise --method {name:9s}  {seconds / t:7.0f}x realtime  ({t / base:.1f}x the "
              "baseline's time)")
    if args.prior_model:
        prior = Denoiser(load_checkpoint(args.prior_model, device), method="prior")
        clip = x[..., : 10 * sr]
        t = best_of(lambda: prior(clip, sr), 1, warmup=0)
        print(f"{device.type:5s} denoise --method prior      {10 / t:7.1f}x realtime  (VAE-NMF, "
              f"{prior.prior.n_iter if prior.prior else 60} iterations)")
    if args.hour:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "hour.wav"
            with sf.SoundFile(src, "w", sr, 1, subtype="PCM_16") as f:
                block = np.clip(x[0].numpy(), -1, 1)
                for _ in range(60):
                    f.write(block)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "audiovae", "denoise", str(src), "-o", str(Path(tmp) / "out.wav"),
                            "--model", str(args.model), "--device", args.device], check=True, capture_output=True)
            wall = time.perf_counter() - t0
            peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(f"{device.type:5s} 1-hour file through `audiovae denoise`: {wall:.0f} s ({3600 / wall:.0f}x "
                  f"realtime), peak resident memory {peak_mb:.0f} MB (input file {src.stat().st_size / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
