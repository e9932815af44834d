"""Loss terms and their schedules: reconstruction on normalised log-mel, KL with beta, annealing and free bits,
and the diagnostics that catch posterior collapse. Pure functions; the models compose them in ``loss()``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import ConfigError


def reconstruction(target: torch.Tensor, estimate: torch.Tensor, kind: str = "l1",
                   logscale: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean reconstruction error per element: ``l1``, ``l2``, or Gaussian negative log-likelihood (``nll``, with a
    learnt log standard deviation ``logscale``). ``mask`` ``[B, 1, T]`` excludes padded frames."""
    diff = estimate - target
    if kind == "l1":
        err = diff.abs()
    elif kind == "l2":
        err = diff.square()
    elif kind == "nll":
        if logscale is None:
            raise ConfigError("reconstruction: kind='nll' needs a logscale")
        err = 0.5 * (diff * torch.exp(-logscale)).square() + logscale + 0.5 * math.log(2 * math.pi)
    else:
        raise ConfigError(f"reconstruction: kind={kind!r} must be 'l1', 'l2' or 'nll'")
    if mask is None:
        return err.mean()
    mask = mask.expand_as(err)
    return (err * mask).sum() / mask.sum().clamp_min(1.0)


def masked_magnitude(noisy: torch.Tensor, clean: torch.Tensor, estimate: torch.Tensor,
                     mask: torch.Tensor | None = None) -> torch.Tensor:
    """Signal-approximation error of a denoising estimate, per element: the L1 distance between the noisy mel
    magnitude under the estimate's gain, ``exp(min(estimate, noisy))``, and under the true one (log-mels in nats),
    over each item's mean noisy magnitude.

    A log-mel loss weighs every band and frame alike; this one weighs them by their energy, as the output's error
    does once the gain is applied to the noisy STFT (Weninger et al. 2014), and, as that gain is capped at one, an
    estimate above the noisy input costs nothing more than one equal to it."""
    est = torch.exp(torch.minimum(estimate, noisy))
    ref = torch.exp(torch.minimum(clean, noisy))
    m = torch.ones_like(noisy[:, :1]) if mask is None else mask
    scale = (torch.exp(noisy) * m).sum(dim=(1, 2), keepdim=True) / (m.sum(dim=(1, 2), keepdim=True)
                                                                  * noisy.shape[1]).clamp_min(1.0)
    return reconstruction(ref / scale, est / scale, "l1", mask=mask)


def deepen_pauses(clean: torch.Tensor, noisy: torch.Tensor, below_db: float = 30.0, cut_db: float = 20.0,
                  mask: torch.Tensor | None = None, ramp_db: float = 6.0) -> torch.Tensor:
    """A denoising target whose pauses lie deeper than the clean recording's own floor.

    Frames of ``clean`` (log-mel in nats, ``[B, M, F]``) more than ``below_db`` under the item's loudest clean frame
    (in training, the loudest of its crop) come down: by all of ``cut_db`` from ``below_db + ramp_db`` under it, by
    their share of it on the ``ramp_db`` ramp between. Items whose input is their clean reference
    (``noisy == clean``: a corpus's noise-free share) and frames outside ``mask`` keep their target, so clean speech
    still teaches the denoiser to leave it alone.

    Why: a clean reference is a recording whose pauses hold its room's and microphone's noise, and a model trained
    towards it stops at that floor. An oracle that cut the output's pauses 30 dB was worth +0.009 STOI to the bundled
    denoiser; trained in, this target did not help (recipes/denoise/README.md), so it is off by default."""
    energy = torch.logsumexp(2.0 * clean.float(), dim=1, keepdim=True) * (10.0 / math.log(10.0))  # dB per frame
    valid = torch.ones_like(energy, dtype=torch.bool) if mask is None else mask.bool()
    energy = torch.where(valid, energy, torch.full_like(energy, -1e4))
    depth = (energy.amax(dim=-1, keepdim=True) - below_db - energy) / ramp_db
    cut = depth.clamp(0.0, 1.0) * (cut_db * math.log(10.0) / 20.0) * valid  # nats of magnitude
    noise_free = (noisy - clean).abs().amax(dim=(1, 2), keepdim=True) < 1e-4
    return clean - torch.where(noise_free, torch.zeros_like(cut), cut).to(clean.dtype)


def envelope_correlation(noisy: torch.Tensor, clean: torch.Tensor, estimate: torch.Tensor,
                         mask: torch.Tensor | None = None, segment: int = 30, stride: int = 10,
                         clip_db: float = -15.0, silence_db: float = 40.0) -> torch.Tensor:
    """One minus the mean correlation of the clean and the estimated band envelopes over short segments: STOI's
    intermediate measure (Taal et al. 2011) on mel bands, differentiable, for a gain estimate (log-mels in nats).

    The estimate's magnitude is the noisy one under the gain, ``exp(min(estimate, noisy))``. As in STOI, each band's
    estimated envelope over a segment (``segment`` frames, about STOI's 384 ms at 86 frames/s; one every ``stride``)
    is scaled to the clean one's energy and clipped at ``clip_db`` signal-to-distortion ratio, and segments with
    fewer than half their frames within ``silence_db`` of the item's loudest clean frame do not count. A log-mel or
    energy-weighted loss lets the quiet stretches of speech under noise go; this one counts every band's envelope
    in every spoken segment alike, which is what intelligibility measures score."""
    frames = noisy.shape[-1]
    if frames < segment:
        return noisy.new_zeros(())
    est = torch.exp(torch.minimum(estimate, noisy).float())
    ref = torch.exp(clean.float())
    valid = torch.ones_like(ref[:, :1]) if mask is None else mask.float()
    energy = ref.square().sum(dim=1, keepdim=True) * valid
    active = (energy > energy.amax(dim=-1, keepdim=True) * 10 ** (-silence_db / 10)).float() * valid
    # [B, M, S, N] segments, and [B, 1, S] whether each is mostly speech
    ref_s, est_s = ref.unfold(-1, segment, stride), est.unfold(-1, segment, stride)
    keep = (active.unfold(-1, segment, stride).mean(dim=-1) >= 0.5).float()
    scale = ref_s.norm(dim=-1, keepdim=True) / est_s.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    est_s = torch.minimum(est_s * scale, ref_s * (1 + 10 ** (-clip_db / 20)))
    ref_c = ref_s - ref_s.mean(dim=-1, keepdim=True)
    est_c = est_s - est_s.mean(dim=-1, keepdim=True)
    corr = (ref_c * est_c).sum(dim=-1) / (ref_c.norm(dim=-1) * est_c.norm(dim=-1)).clamp_min(1e-8)
    weight = keep.expand_as(corr)
    return 1.0 - (corr * weight).sum() / weight.sum().clamp_min(1.0)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per element, in nats."""
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar)


def gaussian_kl_between(mean: torch.Tensor, logvar: torch.Tensor, prior_mean: torch.Tensor,
                        prior_logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(prior_mean, exp(prior_logvar))) per element, in nats (a learnt conditional
    prior, as in a hierarchical VAE's lower levels)."""
    return 0.5 * (prior_logvar - logvar + (logvar.exp() + (mean - prior_mean).square()) * torch.exp(-prior_logvar)
                  - 1.0)


def kl_per_dim(kl: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Average KL of each latent dimension ``[D]`` over batch and (unmasked) latent frames, from ``[B, D, T]``."""
    if mask is None:
        return kl.mean(dim=(0, 2))
    mask = mask.expand_as(kl)
    return (kl * mask).sum(dim=(0, 2)) / mask.sum(dim=(0, 2)).clamp_min(1.0)


def free_bits(kl_dims: torch.Tensor, nats: float) -> torch.Tensor:
    """Free bits (Kingma et al. 2016): dimensions under ``nats`` cost nothing, so the optimiser has no reason to push
    them to zero. Returns the KL to optimise, summed over dimensions."""
    return kl_dims.clamp_min(nats).sum() if nats > 0 else kl_dims.sum()


@dataclass(frozen=True)
class KLSchedule:
    """Weight of the KL term over training steps: ``beta`` times an annealing factor in [0, 1].

    ``mode``: ``constant``, ``linear`` (0 -> 1 over ``warmup`` steps) or ``cyclical`` (Fu et al. 2019: ``cycles``
    repetitions of a linear ramp over the first ``ratio`` of each cycle, then flat, across ``total`` steps).
    """

    beta: float = 1.0
    mode: str = "linear"
    warmup: int = 5000
    total: int = 100_000
    cycles: int = 4
    ratio: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in ("constant", "linear", "cyclical"):
            raise ConfigError(f"KLSchedule.mode={self.mode!r} must be 'constant', 'linear' or 'cyclical'")
        if self.beta < 0:
            raise ConfigError(f"KLSchedule.beta={self.beta} must be >= 0")

    def __call__(self, step: int) -> float:
        if self.mode == "constant":
            return self.beta
        if self.mode == "linear":
            return self.beta * min(1.0, step / max(1, self.warmup))
        period = max(1, self.total // max(1, self.cycles))
        phase = (step % period) / period
        return self.beta * min(1.0, phase / self.ratio)


@dataclass(frozen=True)
class CapacitySchedule:
    """Burgess et al. (2018)'s controlled capacity: the KL is held near a target ``C`` that grows linearly from 0 to
    ``capacity`` nats over ``steps`` steps, by the loss ``gamma * |KL - C|``. The latent channel opens gradually,
    the factors that lower the reconstruction error most first, instead of trading it against a fixed beta."""

    capacity: float = 25.0
    steps: int = 2000
    gamma: float = 10.0

    def __post_init__(self) -> None:
        if self.capacity < 0 or self.steps < 1 or self.gamma <= 0:
            raise ConfigError(f"CapacitySchedule: capacity={self.capacity} must be >= 0, steps={self.steps} >= 1 and "
                              f"gamma={self.gamma} > 0")

    def target(self, step: int) -> float:
        return self.capacity * min(1.0, step / self.steps)

    def loss(self, kl: torch.Tensor, step: int) -> torch.Tensor:
        """The capacity term for a total KL (summed over latent dimensions)."""
        return self.gamma * (kl - self.target(step)).abs()


IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # multiples of 2 * dim, as in Tolstikhin et al.'s WAE code


def mmd_imq(x: torch.Tensor, y: torch.Tensor, scales: tuple[float, ...] = IMQ_SCALES) -> torch.Tensor:
    """Unbiased squared maximum mean discrepancy between samples ``x`` ``[N, D]`` and ``y`` ``[M, D]`` under the
    inverse multiquadric kernel ``k(a, b) = C / (C + |a - b|^2)`` (Tolstikhin et al. 2018, WAE-MMD), summed over
    ``C = 2 * D * s`` for each scale ``s``: heavy tails keep a gradient on outliers that an RBF kernel flattens."""
    n, m, dim = x.shape[0], y.shape[0], x.shape[1]
    if n < 2 or m < 2:
        return x.new_zeros(())
    xx, yy, xy = torch.cdist(x, x).square(), torch.cdist(y, y).square(), torch.cdist(x, y).square()
    off_x = 1.0 - torch.eye(n, device=x.device, dtype=x.dtype)
    off_y = 1.0 - torch.eye(m, device=y.device, dtype=y.dtype)
    total = x.new_zeros(())
    for s in scales:
        c = 2.0 * dim * s
        total = total + ((c / (c + xx)) * off_x).sum() / (n * (n - 1)) + ((c / (c + yy)) * off_y).sum() / (
            m * (m - 1)) - 2.0 * (c / (c + xy)).mean()
    return total


def active_units(means: torch.Tensor, threshold: float = 1e-2) -> int:
    """Active latent units (Burda et al. 2016): dimensions whose posterior mean varies across data by more than
    ``threshold`` (variance over batch and frames of ``[B, D, T]`` means). Few active units = posterior collapse."""
    return int((means.transpose(0, 1).reshape(means.shape[1], -1).var(dim=1) > threshold).sum())


STFT_RESOLUTIONS = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))  # (n_fft, hop, win), Parallel WaveGAN's


def multi_resolution_stft(estimate: torch.Tensor, target: torch.Tensor,
                          resolutions: tuple[tuple[int, int, int], ...] = STFT_RESOLUTIONS) -> torch.Tensor:
    """Multi-resolution STFT distance between waveforms ``[..., T]`` (Yamamoto et al. 2020): per resolution, spectral
    convergence plus L1 of log magnitudes, averaged. A training term wherever waveforms are produced (the neural
    vocoder) and a quality measure in the evaluations; a log-mel model can only use it through a differentiable
    vocoder."""
    n = min(estimate.shape[-1], target.shape[-1])
    x, y = estimate[..., :n].reshape(-1, n).float(), target[..., :n].reshape(-1, n).float()
    total = x.new_zeros(())
    for n_fft, hop, win in resolutions:
        window = torch.hann_window(win, device=x.device)
        spec = [torch.stft(s, n_fft, hop, win, window, return_complex=True).abs().clamp_min(1e-7) for s in (x, y)]
        sc = torch.linalg.vector_norm(spec[1] - spec[0], dim=(-2, -1)) / torch.linalg.vector_norm(
            spec[1], dim=(-2, -1)).clamp_min(1e-7)
        total = total + sc.mean() + (spec[1].log() - spec[0].log()).abs().mean()
    return total / len(resolutions)
