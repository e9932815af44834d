"""Anomaly scoring speed: a whole file through a detector (read, resample, log-mel, model, pooling) against the
part every detector shares (read + log-mel), for the conv VAE detector and the DCASE dense baseline, same run.

Run: ``python bench/anomaly.py [--model DETECTOR ...] [--seconds 10 60] [--repeat 3]``. Without ``--model``,
untrained detectors of the packaged configs (anomaly_vae, anomaly_dense_ae and their _fine versions) are timed, and
anomaly_vae with machine lines of 6 clips added, as ``anomaly fit`` of a few clips may add them: speed does not
depend on the weights. Prints x-realtime of each on the CPU with the threads torch uses (and CUDA
when present), and the detector's time over the front end's.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, race  # noqa: E402

from audiovae import audio  # noqa: E402
from audiovae.checkpoint import Checkpoint, load_checkpoint  # noqa: E402
from audiovae.config import load_run_config  # noqa: E402
from audiovae.data.corpora.machines import _unit, machine_sound  # noqa: E402
from audiovae.machine_lines import MachineLines  # noqa: E402
from audiovae.models import build_model  # noqa: E402
from audiovae.pipelines.anomaly import Detector  # noqa: E402
from audiovae.pipelines.latent import logmel  # noqa: E402


def packaged(name: str) -> Detector:
    cfg = load_run_config(name)
    model = build_model(cfg.model["type"], {k: v for k, v in cfg.model.items() if k != "type"}).eval()
    return Detector(Checkpoint(model, cfg.mel, task="anomaly"))


def with_lines(d: Detector) -> Detector:
    """``d`` with machine lines of 6 synthetic fan clips of 4 s added (weight 1)."""
    sr = d.sample_rate
    clips = [machine_sound("fan", _unit("fan", 0, 0), 4 * sr, sr, np.random.default_rng(s)) for s in range(1, 7)]
    lines = MachineLines.fit(clips, sr)
    return Detector(dataclasses.replace(d.ckpt, components={**d.ckpt.components, "lines": lines}), lines=1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", action="append", help="a detector file (repeatable); default: the packaged configs")
    ap.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    detectors = ({Path(p).stem: Detector(load_checkpoint(p)) for p in args.model} if args.model else
                 {name: packaged(name) for name in ("anomaly_vae", "anomaly_vae_fine", "anomaly_dense_ae",
                                                          "anomaly_dense_ae_fine")})
    if not args.model:
        detectors["anomaly_vae+lines"] = with_lines(detectors["anomaly_vae"])
    header("anomaly scoring speed: file -> clip score, against file -> log-mel")
    print(f"{'device':6s} {'seconds':>8s} {'detector':21s} {'x realtime':>11s} {'front end x rt':>15s} "
          f"{'share of time in front end':>27s}")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.seconds:
            sr = 16000
            wave = machine_sound("fan", _unit("fan", 0, 0), int(seconds * sr), sr, np.random.default_rng(0))
            path = audio.save(Path(tmp) / f"clip_{seconds:g}.wav", (0.1 * wave).astype(np.float32), sr)
            for device in devices:
                for name, d in detectors.items():
                    d.ckpt.model.to(device)

                    def front(d: Detector = d, path: Path = path) -> object:
                        w, _ = audio.load(path, d.sample_rate)
                        return logmel(w, d.ckpt)

                    best = race({"front": front, "score": lambda d=d, path=path: d.score_file(path)},
                                repeat=args.repeat, rounds=2, sync=device == "cuda")
                    print(f"{device:6s} {seconds:8.1f} {name:21s} {seconds / best['score']:11.0f} "
                          f"{seconds / best['front']:15.0f} {best['front'] / best['score']:27.0%}")


if __name__ == "__main__":
    main()
