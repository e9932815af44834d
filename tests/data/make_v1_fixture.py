# ruff: noqa  (a record of how the fixture was made, kept as it was run)
# How tests/data/v1_cvae_tiny.* were made, with audiovae at commit e9712c0 (checkpoint format 1). Kept for the record:
# the fixture must NOT be regenerated with newer code, since its point is that old checkpoints keep loading.
import numpy as np, torch
from audiovae.models import build_model
from audiovae.checkpoint import Checkpoint, save_checkpoint
from audiovae.features import MelConfig, MelSpectrogram
torch.manual_seed(0)
mel_cfg = MelConfig(sample_rate=16000, n_mels=40) if 'n_mels' in MelConfig.__dataclass_fields__ else MelConfig()
m = build_model("cvae", dict(n_mels=mel_cfg.n_mels, channels=(32, 32), factors=(2, 2), blocks=1, latent_dim=8,
                             n_speakers=3, speaker_dim=8, adversary_weight=0.1, recon="nll"))
with torch.no_grad():
    for p in m.parameters(): p.add_(0.05 * torch.randn_like(p))
m.set_normalization(torch.linspace(-6, -2, mel_cfg.n_mels), torch.linspace(1, 2, mel_cfg.n_mels))
m.eval()
save_checkpoint("tests/data/v1_cvae_tiny.safetensors", Checkpoint(m, mel_cfg, ["a", "b", "c"], "convert", info={"step": 1}), dtype=torch.float16)
from audiovae.checkpoint import load_checkpoint
m = load_checkpoint("tests/data/v1_cvae_tiny.safetensors").model
t = torch.arange(16000) / 16000
wave = torch.sin(2 * torch.pi * (200 + 1500 * t) * t) * 0.5
mel = MelSpectrogram(mel_cfg)(wave[None])
spk = torch.tensor([1])
with torch.no_grad():
    post = m.encode(mel, spk)
    rec = m.reconstruct(mel, spk)
np.savez("tests/data/v1_cvae_tiny_expected.npz", mel=mel.numpy(), mean=post.mean.numpy(), logvar=post.logvar.numpy(), reconstruction=rec.numpy())
print(mel.shape, rec.shape)
