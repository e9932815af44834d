"""How ``tests/data/v1_cvae_tiny.*`` were made, with audiovae at commit e9712c0 (checkpoint format 1).

Kept for the record only: never regenerate the fixture with newer code, since its point is that checkpoints written
before the engine was reshaped keep loading and give the same output (``tests/test_compat.py``).
"""

import numpy as np
import torch

from audiovae.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from audiovae.features import MelConfig, MelSpectrogram
from audiovae.models import build_model

PATH = "tests/data/v1_cvae_tiny.safetensors"

torch.manual_seed(0)
mel_cfg = MelConfig(sample_rate=16000, n_mels=40)
m = build_model("cvae", dict(n_mels=40, channels=(32, 32), factors=(2, 2), blocks=1, latent_dim=8, n_speakers=3,
                             speaker_dim=8, adversary_weight=0.1, recon="nll"))
with torch.no_grad():
    for p in m.parameters():
        p.add_(0.05 * torch.randn_like(p))
m.set_normalization(torch.linspace(-6, -2, 40), torch.linspace(1, 2, 40))
save_checkpoint(PATH, Checkpoint(m, mel_cfg, ["a", "b", "c"], "convert", info={"step": 1}), dtype=torch.float16)
m = load_checkpoint(PATH).model  # the expected outputs are those of the fp16 weights, as loaded
t = torch.arange(16000) / 16000
mel = MelSpectrogram(mel_cfg)((0.5 * torch.sin(2 * torch.pi * (200 + 1500 * t) * t))[None])
with torch.no_grad():
    post = m.encode(mel, torch.tensor([1]))
    rec = m.reconstruct(mel, torch.tensor([1]))
np.savez("tests/data/v1_cvae_tiny_expected.npz", mel=mel.numpy(), mean=post.mean.numpy(), logvar=post.logvar.numpy(),
         reconstruction=rec.numpy())
