"""Every path of audiovae on one device, each checked against the CPU, and training speed: one table, one JSON file.

Run: ``python bench/gpu.py [--device cuda] [--json gpu.json] [--batch 64] [--seconds 10]``. Made for one run on a
lent GPU, sized to end within 8 minutes on an H100-class card (not yet run on one: no GPU has been lent since it was
written; ``--skip-training`` or ``--train-steps`` shorten it); ``--device cpu --quick`` runs the same code at tiny
sizes, which is how CI keeps it from rotting (tests/test_bench_gpu.py).

Paths (speech is the bundled example clip, looped to ``--seconds``): the log-mel front end; Griffin-Lim (classic, 32
iterations) and mel-constrained Griffin-Lim (the default vocoder); the two bundled neural vocoders; voice conversion
with the bundled model (log-mel, encoder, decoder, vocoder); denoising with the bundled denoiser (log-mel, model,
gain on the STFT); music sampling with the bundled music model (the prior's latents, then decoder and vocoder);
anomaly scoring (frame scores of an untrained ``anomaly_vae``; speed does not depend on the weights). Each is timed
at batch 1 and at ``--batch`` (best of a few runs, synchronised), as x-realtime (seconds of audio per second), with
its peak GPU memory; its output at batch 1 is compared with the same path built on the CPU (max absolute difference,
and for audio the log-mel L1 between the two outputs, which phase differences of Griffin-Lim do not inflate; the
prior's latents are drawn from each device's own generator, so they are not compared). Then the one-shot voice fit
(``adapt``) on 10 s of the clip (3 s with ``--quick``), in seconds.

Training: steps/s and seconds of audio per second of ``speech_cvae``, ``denoise_vae`` and ``vocoder`` at their
configs' batch sizes, bf16 autocast and fp32 (bf16 only where it is native), ``train.compile`` off and on (on for
``speech_cvae`` only unless ``--compile-all``: each compilation takes a minute or more), on a small corpus written
here (the example clip at four speeds as four speakers, and with white noise at 5 dB as their noisy copies): the
first log interval (start-up, compilation) is dropped and the median of the rest kept.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, example_path, header, short_run  # noqa: E402

from audiovae import audio  # noqa: E402
from audiovae.checkpoint import Checkpoint, load_checkpoint  # noqa: E402
from audiovae.config import load_run_config  # noqa: E402
from audiovae.data.manifest import Entry, write_manifest  # noqa: E402
from audiovae.device import cpu_has_bf16, resolve_device  # noqa: E402
from audiovae.features import MelConfig, MelSpectrogram  # noqa: E402
from audiovae.metrics import mel_l1  # noqa: E402
from audiovae.models import build_model  # noqa: E402
from audiovae.pipelines.denoise import apply_mel_gain, mel_gain  # noqa: E402
from audiovae.pipelines.music import render, sample_latents  # noqa: E402
from audiovae.pipelines.vocoder_choice import choose_vocoder, vocoder_for  # noqa: E402
from audiovae.pretrained import bundled_path, bundled_vocoder  # noqa: E402

TRAIN_CONFIGS = ("speech_cvae", "denoise_vae", "vocoder")

Run = Callable[[torch.Tensor], torch.Tensor]  # input batch (on the CPU) -> output (on the CPU)


@dataclass
class Path_:
    """One path: ``build(device)`` gives its function, ``inputs(batch)`` its input of ``seconds`` per item."""

    name: str
    build: Callable[[torch.device], Run]
    inputs: Callable[[int], torch.Tensor]
    seconds: float
    audio_out: int | None = None  # the sample rate of an audio output (compared on its log-mel), else None
    comparable: bool = True  # False: the device draws its own random numbers, so its output is not the CPU's


def example_speech(seconds: float, sample_rate: int) -> torch.Tensor:
    """The bundled example clip at ``sample_rate``, looped to ``seconds``."""
    wave, _ = audio.load(example_path(), sample_rate)
    n = round(seconds * sample_rate)
    return wave.repeat(math.ceil(n / wave.numel()))[:n]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _bundled(name: str, device: torch.device) -> Checkpoint:
    ckpt = load_checkpoint(bundled_path(name), device)
    ckpt.model.eval()
    return ckpt


def speech_paths(seconds: float) -> list[Path_]:
    """The paths of the table (see the module's docstring)."""
    vc_cpu = _bundled("voice_conversion", torch.device("cpu"))
    mel_cfg = vc_cpu.mel
    sr = mel_cfg.sample_rate

    def speech_batch(rate: int) -> Callable[[int], torch.Tensor]:
        one = example_speech(seconds, rate)
        return lambda b: one.expand(b, -1).clone()

    def vocoder_path(make: Callable[[], torch.nn.Module]) -> Callable[[torch.device], Run]:
        def build(device: torch.device) -> Run:
            front, voc = MelSpectrogram(mel_cfg).to(device), make().to(device)
            return lambda w: voc(front(w.to(device)), length=w.shape[-1]).float().cpu()
        return build

    def front_end(device: torch.device) -> Run:
        front = MelSpectrogram(mel_cfg).to(device)
        return lambda w: front(w.to(device)).float().cpu()

    def conversion(device: torch.device) -> Run:
        ckpt = _bundled("voice_conversion", device)
        front, voc, model = MelSpectrogram(ckpt.mel).to(device), vocoder_for(ckpt), ckpt.model
        target = torch.tensor([1], device=device)  # speaker B

        def run(w: torch.Tensor) -> torch.Tensor:
            mel = front(w.to(device))
            out = model.decode(model.encode(mel, None).mode(), target.expand(len(w)))[..., : mel.shape[-1]]
            return voc(out, length=w.shape[-1]).float().cpu()
        return run

    def denoising(device: torch.device) -> Run:
        ckpt = _bundled("denoise", device)
        front, model, cfg = MelSpectrogram(ckpt.mel).to(device), ckpt.model, ckpt.mel

        def run(w: torch.Tensor) -> torch.Tensor:  # the gain goes on the input's STFT on the CPU, as in Denoiser
            noisy = front(w.to(device))
            gains = mel_gain(noisy, model.reconstruct(noisy)).float().cpu()
            return torch.cat([apply_mel_gain(w[i: i + 1], cfg.sample_rate, gains[i], cfg) for i in range(len(w))])
        return run

    music_cpu = _bundled("music", torch.device("cpu"))

    def music(device: torch.device) -> Run:
        ckpt = _bundled("music", device)
        voc = vocoder_for(ckpt)
        return lambda z: render(ckpt, z.to(device), seconds, voc)[1].float().cpu()

    def music_prior(device: torch.device) -> Run:
        ckpt = _bundled("music", device)
        return lambda z: sample_latents(ckpt, len(z), seconds).float().cpu()

    anomaly_cfg = load_run_config("anomaly_vae")

    def anomaly(device: torch.device) -> Run:
        torch.manual_seed(0)
        model = build_model(anomaly_cfg.model["type"], {k: v for k, v in anomaly_cfg.model.items()
                                                        if k != "type"}).eval().to(device)
        front = MelSpectrogram(anomaly_cfg.mel).to(device)
        kind = model.anomaly_scores[0]
        return lambda w: model.frame_scores(front(w.to(device)), kind).float().cpu()

    latents = sample_latents(music_cpu, 1, seconds)
    speech = speech_batch(sr)
    return [
        Path_("front end (log-mel)", front_end, speech, seconds),
        Path_("griffin-lim 32", vocoder_path(lambda: choose_vocoder("griffin-lim", mel_cfg)), speech, seconds,
              sr),
        Path_("mel-griffin-lim", vocoder_path(lambda: choose_vocoder("mel-griffin-lim", mel_cfg)), speech,
              seconds, sr),
        Path_("neural vocoder", vocoder_path(lambda: bundled_vocoder(mel_cfg, required=True)), speech, seconds,
              sr),
        Path_("neural vocoder (stream)", vocoder_path(lambda: bundled_vocoder(mel_cfg, required=True,
                                                                                streaming=True)),
              speech, seconds, sr),
        Path_("conversion", conversion, speech, seconds, sr),
        Path_("denoising", denoising, speech, seconds, sr),
        Path_("music: prior", music_prior, lambda b: latents.expand(b, -1, -1).clone(), seconds, comparable=False),
        Path_("music: decode + vocoder", music, lambda b: latents.expand(b, -1, -1).clone(), seconds,
              music_cpu.mel.sample_rate),
        Path_("anomaly scoring", anomaly, speech_batch(anomaly_cfg.mel.sample_rate), seconds),
    ]


def _logmel_l1(a: torch.Tensor, b: torch.Tensor, sample_rate: int) -> float:
    front = MelSpectrogram(MelConfig(sample_rate=sample_rate, f_max=min(8000.0, sample_rate / 2)))
    return float(mel_l1(front(a.reshape(1, -1)), front(b.reshape(1, -1)))[0])


def measure_path(path: Path_, device: torch.device, batch: int, repeat: int) -> dict:
    """x-realtime at batch 1 and ``batch``, peak memory, and the batch-1 output against the CPU's."""
    row: dict = {"batch": batch}
    with torch.inference_mode():
        run = path.build(device)
        for b in (1, batch):
            x = path.inputs(b)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            t = best_of(lambda x=x: run(x), repeat=repeat, warmup=1, sync=device.type == "cuda")
            row[f"x_realtime_batch{'1' if b == 1 else 'N'}"] = round(b * path.seconds / t, 1)
            if device.type == "cuda":
                row[f"peak_mb_batch{'1' if b == 1 else 'N'}"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
        x = path.inputs(1)
        out = run(x)
        row["finite"] = bool(torch.isfinite(out).all())
        if path.comparable or device.type == "cpu":  # on the CPU: built again, the same path must give the same
            ref = path.build(torch.device("cpu"))(x)
            n = min(out.shape[-1], ref.shape[-1])
            row["max_abs_diff"] = float((out[..., :n] - ref[..., :n]).abs().max())
            if path.audio_out:
                row["logmel_l1_vs_cpu"] = round(_logmel_l1(out, ref, path.audio_out), 5)
    return row


def one_shot_fit(device: torch.device, seconds: float) -> dict:
    """Seconds of the default one-shot fit (``adapt``) on ``seconds`` of the example clip."""
    from audiovae.pipelines.voices import reference_voice

    ckpt = _bundled("voice_conversion", device)
    reference = example_speech(seconds, ckpt.mel.sample_rate)
    t0 = time.perf_counter()
    voice = reference_voice(ckpt, [reference])
    _sync(device)
    return {"reference_s": seconds, "fit_s": round(time.perf_counter() - t0, 2),
            "finite": bool(torch.isfinite(voice.condition).all())}


def training_corpus(root: Path, seconds: float, files: int) -> tuple[Path, Path]:
    """Four 'speakers' (the example clip at four speeds) and their noisy copies, as two manifests."""
    import soundfile as sf

    sr = 22050
    base = example_speech(seconds, sr).numpy()
    rng = np.random.default_rng(0)
    clean, noisy = [], []
    for s, speed in enumerate((0.9, 1.0, 1.1, 1.2)):
        voice = audio.resample(base, round(sr * speed), sr)
        for i in range(files):
            split = "valid" if i == files - 1 else "train"
            piece = np.roll(voice, i * sr // 3)[: round(seconds * sr)].astype(np.float32)
            c = root / "speech" / f"s{s}_{i}.wav"
            c.parent.mkdir(parents=True, exist_ok=True)
            sf.write(c, piece, sr)
            clean.append(Entry(path=c.name, duration=seconds, split=split, speaker=f"s{s}"))
            noise = rng.standard_normal(piece.size).astype(np.float32)
            noise *= np.sqrt(np.mean(piece**2) / np.mean(noise**2) / 10 ** 0.5)
            n = root / "noisy" / f"s{s}_{i}.wav"
            n.parent.mkdir(parents=True, exist_ok=True)
            sf.write(n, np.clip(piece + noise, -1, 1), sr)
            noisy.append(Entry(path=n.name, duration=seconds, split=split, clean=str(c), noise="white", snr=5.0))
    write_manifest(root / "speech" / "manifest.jsonl", clean)
    write_manifest(root / "noisy" / "manifest.jsonl", noisy)
    return root / "speech", root / "noisy"


def measure_training(device: torch.device, steps: int, quick: bool, tmp: Path, compile_all: bool = False) -> dict:
    speech, noisy = training_corpus(tmp / "corpus", 2.0 if quick else 4.0, 3 if quick else 12)
    amps = ["bf16", "fp32"] if device.type == "cuda" or cpu_has_bf16() else ["fp32"]
    results: dict = {}
    for config in TRAIN_CONFIGS:
        data = noisy if config == "denoise_vae" else speech
        extra = ["train.batch_size=4", "data.segment_frames=32"] if quick else []
        compiles = [False] if quick else [False, True] if compile_all or config == "speech_cvae" else [False]
        for amp in amps:
            for compiled in compiles:
                torch._dynamo.reset()  # each variant compiles afresh, within dynamo's recompile limits
                key = f"{amp}{', compile' if compiled else ''}"
                out = tmp / f"run_{config}_{amp}_{compiled}"
                try:
                    trainer, wall = short_run(config, str(data), None, steps, str(device), out, "train.ema_decay=0",
                                              f"train.amp={'true' if amp == 'bf16' else 'false'}",
                                              f"train.compile={'true' if compiled else 'false'}",
                                              f"train.log_every={max(1, steps // 4)}", *extra)
                except Exception as e:  # noqa: BLE001 - one failing variant is a row, not the end of the run
                    results.setdefault(config, {})[key] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
                    continue
                rows = trainer.history[1:] or trainer.history
                audio_rate = statistics.median(r["audio_s_per_s"] for r in rows)
                cfg = trainer.config
                batch = cfg.train.batch_size
                seg = cfg.data.segment_frames * cfg.mel.hop_length / cfg.mel.sample_rate  # seconds of one item
                results.setdefault(config, {})[key] = {
                    "audio_s_per_s": round(audio_rate, 1), "steps_per_s": round(audio_rate / (batch * seg), 2),
                    "batch": batch, "wall_s": round(wall, 1)}
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: 2 s, batch 2, 3 repeats, 8 training steps")
    ap.add_argument("--batch", type=int, default=None, help="the large batch (default 64; 2 with --quick)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per item (default 10; 2 with --quick)")
    ap.add_argument("--train-steps", type=int, default=None, help="steps per training variant (default 60)")
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--compile-all", action="store_true", help="train.compile=true for every config, not only "
                    "speech_cvae")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    device = resolve_device(args.device)
    batch = args.batch or (2 if args.quick else 64)
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    steps = args.train_steps or (8 if args.quick else 60)
    repeat = 2 if args.quick else 5
    header(f"every path on {device}, against the CPU")
    result: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    "torch": torch.__version__, "batch": batch, "seconds": seconds, "paths": {}, "training": {}}
    started = time.perf_counter()
    print(f"{'path':26s} {'x rt, batch 1':>14s} {f'x rt, batch {batch}':>15s} {'peak MB':>8s} {'max |diff|':>11s} "
          f"{'log-mel L1':>11s}")
    for path in speech_paths(seconds):
        row = measure_path(path, device, batch, repeat)
        result["paths"][path.name] = row
        l1, diff = row.get("logmel_l1_vs_cpu"), row.get("max_abs_diff")
        print(f"{path.name:26s} {row['x_realtime_batch1']:14.1f} {row['x_realtime_batchN']:15.1f} "
              f"{row.get('peak_mb_batchN', 0):8d} {'not compared' if diff is None else f'{diff:.2e}':>11s} "
              f"{'' if l1 is None else f'{l1:.4f}':>11s}", flush=True)
    result["one_shot"] = one_shot_fit(device, 3.0 if args.quick else 10.0)
    print(f"one-shot voice fit (adapt), {result['one_shot']['reference_s']:g} s of reference: "
          f"{result['one_shot']['fit_s']:.1f} s", flush=True)
    if not args.skip_training:
        with tempfile.TemporaryDirectory() as tmp:
            result["training"] = measure_training(device, steps, args.quick, Path(tmp), args.compile_all)
        print(f"\n{'training':14s} {'variant':14s} {'steps/s':>8s} {'audio s/s':>10s} {'batch':>6s}")
        for config, variants in result["training"].items():
            for key, r in variants.items():
                if "error" in r:
                    print(f"{config:14s} {key:14s} {r['error']}")
                else:
                    print(f"{config:14s} {key:14s} {r['steps_per_s']:8.2f} {r['audio_s_per_s']:10.1f} {r['batch']:6d}")
    result["wall_s"] = round(time.perf_counter() - started, 1)
    print(f"\n{result['wall_s']:.0f} s in all")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
