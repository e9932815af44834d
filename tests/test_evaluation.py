"""The reconstruction evaluation (the recipe's numbers) on a tiny untrained model: rows, baseline, report."""

from __future__ import annotations

import json

import torch
from conftest import SR, chirp, write

from audiovae.checkpoint import Checkpoint
from audiovae.data.manifest import Entry
from audiovae.evaluation.reconstruction import ROWS, evaluate_reconstruction
from audiovae.features import MelConfig
from audiovae.models import build_model
from audiovae.vocoders import GriffinLim


def test_reconstruction_report_beside_the_vocoder_baseline(tmp_path):
    torch.manual_seed(0)
    ckpt = Checkpoint(build_model("vae", {"channels": (32, 32), "latent_dim": 8, "blocks": 1}).eval(), MelConfig())
    entries = [Entry(str(write(tmp_path / f"{i}.wav", chirp(0.8, fmin=100.0 * (i + 1)), SR)), 0.8, "test")
               for i in range(3)]
    report = evaluate_reconstruction(ckpt, entries, files=2, vocoder=GriffinLim(ckpt.mel, n_iter=16))
    assert report.files == [entries[0].path, entries[1].path] and list(report.scores) == list(ROWS)
    model, through_model, vocoder_only = (report.mean(row) for row in ROWS)
    assert vocoder_only < 1.0  # Griffin-Lim alone keeps a sweep close (as resynth does)
    assert through_model > vocoder_only and model > vocoder_only  # an untrained model only loses
    assert "2 held-out files" in report.table() and json.loads(json.dumps(report.to_dict()))["means"]
