"""Phase from STFT magnitude alone by phase-gradient heap integration (PGHI), a non-iterative start for Griffin-Lim.

Průša, Balazs and Søndergaard 2017 ("A noniterative method for reconstruction of phase from STFT magnitude"): for a
Gaussian window the STFT's phase gradient is a function of its log-magnitude gradient, so the phase can be integrated
from the magnitude. With ``s = log |X|``, a frame-centred phase, hop ``a``, FFT size ``M`` and the Gaussian width
``gamma`` that matches the window (0.25645 * L^2 for a Hann window of length L):

- along time, one hop at bin ``m`` turns the phase by ``2 pi a m / M + (a M / gamma) * ds/dm`` (the instantaneous
  frequency: the bin's centre plus the offset the magnitude's slope across bins reveals);
- along frequency, one bin at frame ``n`` turns it by ``-(gamma / (a M)) * ds/dn`` (the group delay from the slope
  across frames).

The heap integration spreads the phase from the loudest bin to its neighbours, always continuing from the loudest bin
reached so far, so errors start where the estimate is most reliable; bins more than ``tol`` below the maximum keep
a zero frame-centred phase (they hardly count). torch's STFT references each frame's phase to the frame's start, not
its centre, which adds ``pi m``; that is applied at the end. The loop is compiled with numba (a librosa dependency)
on first use, so importing the vocoders does not import numba.
"""

from __future__ import annotations

import functools
import heapq
import math

import numpy as np
import torch

from ..features import MelConfig

__all__ = ["pghi_phase", "HANN_GAMMA"]

HANN_GAMMA = 0.25645  # gamma / L^2 of the Gaussian that best matches a Hann window of length L (Průša et al. 2017)


def _gradients(logmag: np.ndarray, hop: int, n_fft: int, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-hop (time) and per-bin (frequency) phase increments ``[F, T]`` from the log-magnitude ``[F, T]``."""
    ds_dm = np.gradient(logmag, axis=0)  # central differences, one-sided at the edges
    ds_dn = np.gradient(logmag, axis=1) if logmag.shape[1] > 1 else np.zeros_like(logmag)
    bins = np.arange(logmag.shape[0], dtype=np.float64)[:, None]
    dt = 2 * math.pi * hop * bins / n_fft + (hop * n_fft / gamma) * ds_dm
    df = -(gamma / (hop * n_fft)) * ds_dn
    return dt, df


def _integrate(logmag: np.ndarray, dt: np.ndarray, df: np.ndarray, floor: float) -> np.ndarray:
    """Heap integration over one ``[F, T]`` spectrogram (plain Python; compiled by numba when available)."""
    n_f, n_t = logmag.shape
    phase = np.zeros((n_f, n_t))
    done = logmag < floor  # too quiet to matter: left at zero phase
    order = np.argsort(-logmag.ravel())
    heap = [(0.0, 0, 0)]  # (-log magnitude, bin, frame): numba types the list from its first item
    heap.pop()
    for start in order:
        f0, t0 = start // n_t, start % n_t
        if done[f0, t0]:
            continue
        done[f0, t0] = True
        heapq.heappush(heap, (-logmag[f0, t0], f0, t0))
        while len(heap) > 0:
            _, f, t = heapq.heappop(heap)
            if t + 1 < n_t and not done[f, t + 1]:
                phase[f, t + 1] = phase[f, t] + 0.5 * (dt[f, t] + dt[f, t + 1])
                done[f, t + 1] = True
                heapq.heappush(heap, (-logmag[f, t + 1], f, t + 1))
            if t > 0 and not done[f, t - 1]:
                phase[f, t - 1] = phase[f, t] - 0.5 * (dt[f, t] + dt[f, t - 1])
                done[f, t - 1] = True
                heapq.heappush(heap, (-logmag[f, t - 1], f, t - 1))
            if f + 1 < n_f and not done[f + 1, t]:
                phase[f + 1, t] = phase[f, t] + 0.5 * (df[f, t] + df[f + 1, t])
                done[f + 1, t] = True
                heapq.heappush(heap, (-logmag[f + 1, t], f + 1, t))
            if f > 0 and not done[f - 1, t]:
                phase[f - 1, t] = phase[f, t] - 0.5 * (df[f, t] + df[f - 1, t])
                done[f - 1, t] = True
                heapq.heappush(heap, (-logmag[f - 1, t], f - 1, t))
    return phase


@functools.cache
def _integrator():  # noqa: ANN202 - the compiled loop, or the Python one
    """:func:`_integrate` compiled by numba on first use (cached beside the module, or in numba's user cache)."""
    try:
        from numba import njit
    except ImportError:  # pragma: no cover - librosa depends on numba; plain Python is about 100x slower
        return _integrate
    try:
        return njit(cache=True)(_integrate)
    except RuntimeError:  # pragma: no cover - no writable cache location: compile in every process
        return njit(_integrate)


def pghi_phase(magnitude: torch.Tensor, config: MelConfig, tol: float = 1e-5) -> torch.Tensor:
    """The PGHI phase (radians, torch's STFT convention) of linear magnitudes ``[..., n_freqs, frames]``.

    Args:
        magnitude: STFT magnitude (power 1) computed with ``config``'s STFT (hop, FFT size, Hann window).
        config: the front end (``hop_length``, ``n_fft``, ``win_length``).
        tol: bins below ``tol`` times the spectrogram's maximum are not integrated (zero phase).
    """
    mag = magnitude.detach().to("cpu", torch.float64).numpy()
    flat = mag.reshape(-1, *mag.shape[-2:])
    gamma = HANN_GAMMA * config.win_length ** 2
    out = np.zeros_like(flat)
    frame_start = math.pi * np.arange(flat.shape[-2])[:, None]  # torch's frames start n_fft/2 before their centre
    integrate = _integrator()
    for i, spec in enumerate(flat):
        logmag = np.log(np.maximum(spec, 1e-12))
        dt, df = _gradients(logmag, config.hop_length, config.n_fft, gamma)
        phase = integrate(logmag, dt, df, float(logmag.max() + math.log(tol)))
        out[i] = phase + frame_start
    return torch.from_numpy(out.reshape(mag.shape)).to(magnitude.device, torch.float32)
