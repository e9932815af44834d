"""The clip-statistics detectors beside the recipe's, at the same training sizes and on the same clips.

Two generic detectors that need no training, as a user would try first: each clip is summarised by the mean and
standard deviation over time of its log-mel bands (DCASE's front end: 16 kHz, 64-ms windows, 32-ms hop, 128 bands).

* ``band z-score``: the mean squared z-score of a clip's band means against the training clips' (per band);
* ``kNN clip statistics``: the distance from a clip's standardised statistics to the nearest training clip's.

With ``N`` clips the training clips are :func:`audiovae.training.anomaly.few_clips` of the machine type's training
split, the same ``N`` that ``audiovae anomaly fit --clips N`` draws (and trains on in the end); with 480, the whole
training split. AUC on the test split, per machine type and anomaly kind.

Run: ``python recipes/anomaly/clip_statistics.py WORK_DIR/machines [--sizes 13 50 480] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from audiovae import audio
from audiovae.data.layouts import discover
from audiovae.features import MelConfig, MelSpectrogram
from audiovae.metrics import auc_pair
from audiovae.training.anomaly import few_clips

FRONT_END = MelConfig(sample_rate=16000, n_fft=1024, hop_length=512, win_length=1024, n_mels=128, f_max=8000.0)


def statistics(paths: list[str]) -> np.ndarray:
    """``[clips, 2 * n_mels]``: each band's mean and standard deviation of log-mel over the clip."""
    mel = MelSpectrogram(FRONT_END)
    out = []
    with torch.no_grad():
        for p in tqdm(paths, desc="clip statistics", unit="clip"):
            wave, _ = audio.load(p, FRONT_END.sample_rate)
            lm = mel(wave[None])[0]
            out.append(torch.cat([lm.mean(-1), lm.std(-1)]).numpy())
    return np.stack(out).astype(np.float64)


def band_zscore(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    bands = train.shape[1] // 2
    mu, sd = train[:, :bands].mean(0), train[:, :bands].std(0) + 1e-3
    return (((test[:, :bands] - mu) / sd) ** 2).mean(1)


def knn_statistics(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    mu, sd = train.mean(0), train.std(0) + 1e-3
    a, b = (train - mu) / sd, (test - mu) / sd
    return np.sqrt(((b[:, None] - a[None]) ** 2).sum(-1)).min(1)


DETECTORS = {"band z-score": band_zscore, "kNN clip statistics": knn_statistics}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path, help="the machine corpus (`audiovae corpus machines`)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[13, 50, 480])
    ap.add_argument("--json", type=Path, help="write every AUC here")
    args = ap.parse_args()
    entries = discover(args.corpus)
    feats = dict(zip([e.path for e in entries], statistics([e.path for e in entries]), strict=True))
    results: dict = {}
    print(f"{'machine':8s} {'detector':20s} {'clips':>5s} {'AUC':>6s}  per anomaly kind")
    for machine in sorted({e.machine for e in entries}):
        pool = [e for e in entries if e.machine == machine and e.split == "train" and e.label != "anomaly"]
        test = [e for e in entries if e.machine == machine and e.split == "test"]
        x = np.stack([feats[e.path] for e in test])
        for name, detect in DETECTORS.items():
            for size in args.sizes:
                chosen = pool if size >= len(pool) else few_clips(pool, size)
                scores = detect(np.stack([feats[e.path] for e in chosen]), x)
                labels = [int(e.label == "anomaly") for e in test]
                auc = auc_pair(labels, scores.tolist())[0]
                kinds = {}
                for kind in sorted({e.anomaly for e in test if e.anomaly}):
                    keep = [i for i, e in enumerate(test) if e.label == "normal" or e.anomaly == kind]
                    kinds[kind] = auc_pair([labels[i] for i in keep], scores[keep].tolist())[0]
                results.setdefault(machine, {}).setdefault(name, {})[str(len(chosen))] = {"auc": auc, **kinds}
                print(f"{machine:8s} {name:20s} {len(chosen):5d} {auc:6.3f}  "
                      + " ".join(f"{k} {v:.2f}" for k, v in kinds.items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
