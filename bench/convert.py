"""End-to-end voice conversion speed (load -> log-mel -> encode -> decode -> vocoder -> save), x-realtime.

Run: ``python bench/convert.py --model CKPT --data corpora/speech [--files 20] [--device auto]``. Converts held-out
files one after another as the CLI's folder mode does (batch), each to the next speaker of the table, and one-shot
to a voice fitted (``adapt``, timed) to ~10 s of another speaker's training recordings; then one file through the
real command line (``audiovae convert`` on the bundled 5-s example: start-up and model loading included; median
of 5, beside the time of importing torch alone). Prints x-realtime beside the analysis-synthesis baseline
(`resynth`: the same vocoder without a model), measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import example_path, header  # noqa: E402

from audiovae import audio  # noqa: E402
from audiovae.checkpoint import load_checkpoint  # noqa: E402
from audiovae.data.layouts import discover  # noqa: E402
from audiovae.device import cpu_has_bf16, resolve_device  # noqa: E402
from audiovae.pipelines.convert import convert  # noqa: E402
from audiovae.pipelines.latent import vocoder_for  # noqa: E402
from audiovae.pipelines.resynth import resynthesize  # noqa: E402
from audiovae.pipelines.voices import reference_voice  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    header("voice conversion, end to end")
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.model, device)
    vocoder = vocoder_for(ckpt)
    names = list(ckpt.info.get("trained_speakers") or ckpt.speakers)  # a bundled model's letters stand for these
    files = [e for e in discover(args.data) if e.split == "test" and e.speaker in names][: args.files]
    if not files:
        sys.exit(f"{args.data}: no test-split file of the model's speakers ({', '.join(names)})")
    sr = ckpt.mel.sample_rate
    target = {s: names[(i + 1) % len(names)] for i, s in enumerate(names)}
    convert(audio.load(files[0].path, sr)[0], ckpt, target[files[0].speaker], files[0].speaker, vocoder)  # warm-up

    def run(process) -> tuple[float, float]:  # noqa: ANN001
        seconds, t0 = 0.0, time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            for i, e in enumerate(files):
                wave, _ = audio.load(e.path, sr, min_samples=ckpt.mel.min_samples)
                audio.save(Path(tmp) / f"{i}.wav", process(wave, e), sr)
                seconds += wave.numel() / sr
        return seconds, time.perf_counter() - t0

    audio_s, t_conv = run(lambda w, e: convert(w, ckpt, target[e.speaker], e.speaker, vocoder)[0])
    _, t_shift = run(lambda w, e: convert(w, ckpt, target[e.speaker], e.speaker, vocoder, pitch="shift")[0])
    _, t_resynth = run(lambda w, e: resynthesize(w, vocoder))
    print(f"{device.type:5s} convert, batch of files     {audio_s / t_conv:7.1f}x realtime ({len(files)} files, "
          f"{audio_s:.0f} s; --pitch model)")
    print(f"{device.type:5s} the same, --pitch shift     {audio_s / t_shift:7.1f}x realtime")
    # one-shot: a voice from ~10 s of another speaker's training recordings (the default method, ``adapt``)
    ref_speaker = names[-1]
    refs, ref_s = [], 0.0
    for e in discover(args.data):
        if e.split == "train" and e.speaker == ref_speaker and ref_s < 10.0:
            refs.append(audio.load(e.path, sr)[0])
            ref_s += refs[-1].numel() / sr
    if ref_s >= 3.0:
        t0 = time.perf_counter()
        voice = reference_voice(ckpt, refs)
        t_fit = time.perf_counter() - t0
        _, t_one_shot = run(lambda w, e: convert(w, ckpt, voice, None, vocoder)[0])
        print(f"{device.type:5s} one-shot voice fit          {t_fit:7.1f} s for {ref_s:.1f} s of reference "
              f"(bf16 autocast: {'on' if device.type == 'cuda' or cpu_has_bf16() else 'off'})")
        print(f"{device.type:5s} convert, one-shot voice     {audio_s / t_one_shot:7.1f}x realtime")
    else:
        print(f"{device.type:5s} one-shot: skipped ({ref_speaker} has {ref_s:.1f} s of training recordings here; "
              "a voice needs 3 s)")
    print(f"{device.type:5s} resynth (vocoder only)      {audio_s / t_resynth:7.1f}x realtime")
    print(f"{device.type:5s} ratio convert / resynth     {t_resynth / t_conv:7.2f}")
    example = example_path()
    cli_speaker = ckpt.speakers[1 % len(ckpt.speakers)]  # B for the bundled model, as in README's first command
    with tempfile.TemporaryDirectory() as tmp:
        def wall(*cmd: str) -> float:
            """Median wall time of 5 runs of a command."""
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                subprocess.run(list(cmd), check=True, capture_output=True)
                times.append(time.perf_counter() - t0)
            return statistics.median(times)

        t_cli = wall(sys.executable, "-m", "audiovae", "convert", str(example), "--speaker", cli_speaker, "--model",
                     args.model, "-o", str(Path(tmp) / "out.wav"), "--device", args.device)
        t_torch = wall(sys.executable, "-c", "import torch")
    seconds = audio.info(example).duration
    print(f"{device.type:5s} `audiovae convert example.wav --speaker {cli_speaker}`: {t_cli:.2f} s wall for "
          f"{seconds:.1f} s of audio (median of 5; start-up and model loading included); `python -c 'import torch'` "
          f"alone: {t_torch:.2f} s")
    if device.type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
