"""Export a trained vocoder as the bundled one: fp16 safetensors of at most 15 MB, its evaluation in the info.

Usage: ``python recipes/vocoder/export.py RUN/model.safetensors -o OUT.safetensors [--refine N]
[--evaluation EVAL.json] [--install audiovae/assets/models/vocoder.safetensors]``

``--refine N`` stores N fast Griffin-Lim iterations from the network's phase as the file's inference setting
(:class:`~audiovae.vocoders.NeuralVocoder`'s ``refine``).

The bundled file is replaced only when it is missing or the new evaluation is better: a higher DNSMOS P.808 on the
held-out real voice with no lower PESQ-wb. The fp16 weights' output is compared with fp32's on the package's example
clip (printed: the difference is far below the vocoder's own error).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from audiovae import audio
from audiovae.checkpoint import load_vocoder, read_metadata, save_vocoder
from audiovae.features import MelSpectrogram
from audiovae.fileio import atomic_path

LIMIT_MB = 15.0
EXAMPLE = Path(__file__).resolve().parents[2] / "audiovae" / "assets" / "example.wav"


def neural_row(evaluation: dict) -> dict:
    """The trained vocoder's row of an ``evaluate vocoder`` JSON (the first one that is not a baseline)."""
    return next(r for name, r in evaluation["rows"].items() if name.startswith("neural"))


def better(new: dict, old: dict) -> bool:
    a, b = neural_row(new), neural_row(old)
    return a["p808"] > b["p808"] and a["pesq"] >= b["pesq"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="model.safetensors of an `audiovae train vocoder` run")
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--evaluation", type=Path, help="`audiovae evaluate vocoder --json` of the same vocoder")
    ap.add_argument("--recipe", default="recipes/vocoder/run.sh")
    ap.add_argument("--refine", type=int, default=0, help="Griffin-Lim iterations from the network's phase")
    ap.add_argument("--install", type=Path, help="the bundled file, replaced only when missing or worse")
    args = ap.parse_args()

    info = dict(read_metadata(args.model).get("info", {}), recipe=args.recipe)  # step, validation: kept
    evaluation = json.loads(args.evaluation.read_text()) if args.evaluation else None
    if evaluation:
        info["evaluation"] = {"files": evaluation["files"], "rows": evaluation["rows"]}
    vocoder = load_vocoder(args.model)
    vocoder.refine = args.refine
    save_vocoder(args.output, vocoder, dtype=torch.float16, info=info)
    size = args.output.stat().st_size / 2**20
    if size > LIMIT_MB:
        raise SystemExit(f"{args.output}: {size:.1f} MB is over the {LIMIT_MB} MB limit of a bundled file")
    wave, _ = audio.load(EXAMPLE, vocoder.config.sample_rate)
    with torch.inference_mode():
        logmel = MelSpectrogram(vocoder.config)(wave[None])
        a, b = vocoder(logmel)[0], load_vocoder(args.output)(logmel)[0]
    snr = 10 * torch.log10(a.pow(2).sum() / (a - b).pow(2).sum().clamp_min(1e-20))
    print(f"wrote {args.output} ({size:.1f} MB); fp16 vs fp32 output on {EXAMPLE.name}: {snr:.1f} dB SNR")
    if args.install:
        old = read_metadata(args.install).get("info", {}).get("evaluation") if args.install.is_file() else None
        if args.install.is_file() and not (evaluation and old and better(evaluation, old)):
            print(f"kept {args.install}: the new evaluation is not better")
            return
        with atomic_path(args.install) as tmp:
            shutil.copyfile(args.output, tmp)
        print(f"installed {args.install}")


if __name__ == "__main__":
    main()
