"""Checkpoints written by earlier versions keep loading and give the same output (a small format-1 CVAE, fp16 as
the bundled models are exported; made by ``tests/data/make_v1_fixture.py`` before the engine was reshaped)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from audiovae.checkpoint import load_checkpoint

DATA = Path(__file__).parent / "data"


def test_format_1_checkpoint_loads_and_gives_the_same_output() -> None:
    ckpt = load_checkpoint(DATA / "v1_cvae_tiny.safetensors")
    expected = np.load(DATA / "v1_cvae_tiny_expected.npz")
    assert ckpt.speakers == ["a", "b", "c"] and ckpt.task == "convert"
    mel = torch.from_numpy(expected["mel"])
    speaker = torch.tensor([1])
    with torch.no_grad():
        posterior = ckpt.model.encode(mel, speaker)
        reconstruction = ckpt.model.reconstruct(mel, speaker)
    np.testing.assert_allclose(posterior.mode().numpy(), expected["mean"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(reconstruction.numpy(), expected["reconstruction"], rtol=1e-5, atol=1e-5)
    # the other speaker really changes the output: the comparison above is not vacuous
    with torch.no_grad():
        other = ckpt.model.reconstruct(mel, torch.tensor([2]))
    assert float((other - reconstruction).abs().mean()) > 1e-3
