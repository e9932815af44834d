"""Held-out reconstruction of a trained model beside the analysis-synthesis baseline, on the same files
(:mod:`audiovae.evaluation.reconstruction`). Usage: python recipes/speech_vae/evaluate.py MODEL CORPUS [--files 40]
"""

from __future__ import annotations

import argparse

from audiovae.checkpoint import load_checkpoint
from audiovae.data.datasets import select
from audiovae.data.layouts import discover
from audiovae.evaluation.reconstruction import evaluate_reconstruction


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model")
    ap.add_argument("corpus")
    ap.add_argument("--files", type=int, default=40)
    args = ap.parse_args()
    entries, _ = select(discover(args.corpus), "test")
    report = evaluate_reconstruction(load_checkpoint(args.model), entries, args.files)
    print(f"{args.corpus}: " + report.table())


if __name__ == "__main__":
    main()
