"""Objective measures shared by tests, benchmarks and ``audiovae evaluate``. Pure, batched where it matters."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .features import MelConfig, hann_window, stft

MAX_FPR = 0.1  # the partial AUC's false-positive range, as DCASE Task 2 reports it


def spectral_convergence(wave: torch.Tensor, target_magnitude: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """``|| |STFT(wave)| - S ||_F / ||S||_F`` per item: how well a waveform realises a target magnitude ``S``.

    ``wave`` is ``[..., T]``, ``target_magnitude`` ``[..., n_freqs, frames]`` (power 1) on the same STFT grid.
    """
    window = hann_window(config, wave.device)
    mag = stft(wave.float(), config, window).abs()
    frames = min(mag.shape[-1], target_magnitude.shape[-1])
    mag, ref = mag[..., :frames], target_magnitude[..., :frames].to(mag)
    norm = torch.linalg.vector_norm
    return norm(mag - ref, dim=(-2, -1)) / norm(ref, dim=(-2, -1)).clamp_min(1e-12)


def mel_l1(logmel_a: torch.Tensor, logmel_b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of two natural-log mel spectrograms, per item (frames trimmed to the shorter)."""
    frames = min(logmel_a.shape[-1], logmel_b.shape[-1])
    return (logmel_a[..., :frames] - logmel_b[..., :frames]).abs().mean(dim=(-2, -1))


def mel_cepstrum(logmel: torch.Tensor, n_coeffs: int = 24) -> torch.Tensor:
    """Cepstral coefficients 1..n_coeffs (c0, the level, excluded) of a natural-log mel spectrogram
    ``[..., n_mels, frames]``: ``c_d = (1/M) sum_m L_m cos(pi d (m + 1/2) / M)``, the real cepstrum of the log-mel
    envelope extended symmetrically, so that the usual mel-cepstral-distortion formula applies to it."""
    n_mels = logmel.shape[-2]
    k = torch.arange(n_mels, dtype=torch.float64, device=logmel.device)
    basis = torch.cos(torch.pi / n_mels * (k[:, None] + 0.5) * k[None, :]) / n_mels
    cep = torch.einsum("...mt,mk->...kt", logmel.double(), basis)
    return cep[..., 1: n_coeffs + 1, :].float()


def mel_cepstral_distortion(logmel: torch.Tensor, reference: torch.Tensor, n_coeffs: int = 24) -> float:
    """Mel-cepstral distortion in dB, ``(10 / ln 10) * sqrt(2 * sum_d (c_d - c'_d)^2)`` averaged over frames aligned
    by dynamic time warping (so different durations and timing are not counted as distortion). Inputs are
    ``[n_mels, frames]`` natural-log mel spectrograms; silent frames of either side are dropped first."""
    import librosa

    def voiced(x: torch.Tensor) -> torch.Tensor:
        energy = x.exp().sum(0)
        return x[:, energy > energy.max() * 1e-3]  # frames within 30 dB of the loudest

    a, b = (mel_cepstrum(voiced(x), n_coeffs).double().numpy() for x in (logmel, reference))
    _, path = librosa.sequence.dtw(X=a, Y=b, metric="euclidean")
    diff = a[:, path[:, 0]] - b[:, path[:, 1]]
    return float(10.0 / math.log(10.0) * np.sqrt(2.0 * (diff ** 2).sum(0)).mean())


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al., 2019), means removed; ``[T]`` each."""
    ref = np.asarray(reference, dtype=np.float64) - np.mean(reference)
    est = np.asarray(estimate, dtype=np.float64) - np.mean(estimate)
    n = min(len(ref), len(est))
    ref, est = ref[:n], est[:n]
    target = (est @ ref) / max(ref @ ref, 1e-12) * ref
    noise = est - target
    return float(10 * np.log10(max(target @ target, 1e-12) / max(noise @ noise, 1e-12)))


def auc_pair(labels: Sequence[int], scores: Sequence[float]) -> tuple[float, float]:
    """(AUC, pAUC at ``MAX_FPR``) of ``scores`` for binary ``labels`` (1 = anomalous); NaN without both classes.

    The partial AUC is scikit-learn's ``roc_auc_score(max_fpr=...)``, McClish-standardised (0.5 is chance, 1
    perfect), the form the DCASE baseline code reports."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels)
    if len(set(y.tolist())) < 2:
        return float("nan"), float("nan")
    s = np.asarray(scores, dtype=np.float64)
    return float(roc_auc_score(y, s)), float(roc_auc_score(y, s, max_fpr=MAX_FPR))
