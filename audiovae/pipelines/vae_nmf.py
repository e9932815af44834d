"""Unsupervised speech enhancement with a VAE speech prior and an NMF noise model (after Leglaive, Girin and Horaud,
"A variance modeling framework based on variational autoencoders for speech enhancement", MLSP 2018).

The speech model is any VAE trained on *clean* speech only (e.g. ``speech_vae``); no noisy data is needed. For a
noisy utterance with mel power ``X`` (bands x frames), speech and noise are modelled as independent with variances

    V_s = g_t * exp(2 * decode(z))        (the VAE's clean log-mel, a gain per frame)
    V_b = W @ H                           (rank-K non-negative matrix factorisation, fitted on this utterance)

and ``X`` as exponentially distributed around ``V_s + V_b`` (the Itakura-Saito likelihood of complex Gaussian
STFT coefficients, here on mel bands). Fitting alternates multiplicative IS-NMF updates of ``W, H`` with gradient
steps on ``z`` (started at the encoder's posterior mean, with its N(0, I) prior as penalty) and ``g``. The original
samples ``z`` by Metropolis-Hastings (Monte-Carlo EM); this is the point-estimate (MAP-EM) version, much cheaper.
The output is the Wiener gain ``V_s / (V_s + V_b)`` per band and frame.

Working on mel bands of *magnitude* (the toolkit's front end), squared as a power proxy, is an approximation: the
mel magnitude of a sum is not the sum of mel magnitudes. It is documented, and measured against the supervised
denoiser in ``audiovae evaluate denoise --method prior``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.base import LatentModel


@dataclass
class VAENMFConfig:
    """Attributes: rank of the noise NMF; iterations of the alternation; Adam step on ``z`` and ``log g``."""

    rank: int = 8
    n_iter: int = 60
    lr: float = 0.05
    seed: int = 0


def vae_nmf(noisy_logmel: torch.Tensor, model: LatentModel, config: VAENMFConfig | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Speech and noise variances ``[n_mels, frames]`` (mel power) of one noisy log-mel ``[1, n_mels, frames]``."""
    c = config or VAENMFConfig()
    generator = torch.Generator(device="cpu").manual_seed(c.seed)
    with torch.no_grad():
        frames = noisy_logmel.shape[-1]
        x = torch.exp(2 * noisy_logmel[0]).double()  # mel power proxy [M, T]
        z0 = model.encode(noisy_logmel).mode()
        scale = x.mean()
        w = (torch.rand(x.shape[0], c.rank, generator=generator, dtype=torch.float64) + 0.1).to(x.device)
        h = (torch.rand(c.rank, frames, generator=generator, dtype=torch.float64) * scale / c.rank * 0.5
             ).to(x.device)
    z = z0.clone().requires_grad_(True)
    log_g = torch.zeros(1, 1, frames, device=x.device, requires_grad=True)
    optimizer = torch.optim.Adam([z, log_g], lr=c.lr)
    eps = 1e-12
    for _ in range(c.n_iter):
        with torch.no_grad():  # NMF updates of the noise with the speech variance held
            vs = (torch.exp(2 * model.decode(z)[..., :frames] + log_g)[0]).double()
            for _ in range(2):
                v = vs + w @ h
                h *= (w.T @ (x / v**2)) / (w.T @ (1 / v)).clamp_min(eps)
                v = vs + w @ h
                w *= ((x / v**2) @ h.T) / ((1 / v) @ h.T).clamp_min(eps)
                norm = w.sum(dim=0, keepdim=True).clamp_min(eps)
                w /= norm
                h *= norm.T
            vb = (w @ h).float()
        vs = torch.exp(2 * model.decode(z)[..., :frames] + log_g)[0]
        v = vs + vb
        xf = x.float()
        loss = ((xf / v + torch.log(v)).sum() + 0.5 * z.pow(2).sum()) / x.numel()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        vs = torch.exp(2 * model.decode(z)[..., :frames] + log_g)[0]
    return vs.detach(), vb.detach()
