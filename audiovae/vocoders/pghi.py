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
reached so far, so errors start where the estimate is most reliable. Bins more than ``tol`` below the maximum are
left out of the heap (they hardly count, and they are most of the work at a low ``tol``); each gets its own
instantaneous frequency integrated along time instead, a vectorised pass. torch's STFT references each frame's phase
to the frame's start, not its centre, which adds ``pi m``; that is applied at the end. The loop is compiled with
numba (a librosa dependency) on first use, so importing the vocoders does not import numba.
"""

from __future__ import annotations

import functools
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
    """Heap integration over one ``[F, T]`` spectrogram (plain Python; compiled by numba when available).

    The heap is a binary max-heap of flat bin indices in an array, keyed by log-magnitude, ties to the lower index
    (the order of ``heapq`` on ``(-log magnitude, bin, frame)``): every bin enters it once (it is marked done when
    pushed), so the array never grows. Only bins above ``floor`` are sorted for the starts.
    """
    n_f, n_t = logmag.shape
    key = logmag.ravel()
    dt, df = dt.ravel(), df.ravel()
    phase = np.zeros(n_f * n_t)
    done = key < floor  # too quiet to matter: left out (the caller gives them a phase)
    loud = np.flatnonzero(~done)
    order = loud[np.argsort(-key[loud], kind="mergesort")]  # loudest first; stable, so ties go by index
    heap = np.empty(loud.size, np.int64)
    for start in order:
        if done[start]:
            continue
        done[start] = True
        heap[0], size = start, 1
        while size > 0:
            here = heap[0]  # pop the loudest bin reached so far
            size -= 1
            last, i = heap[size], 0
            while 2 * i + 1 < size:  # sift `last` down from the root
                child = 2 * i + 1
                a, b = heap[child + 1] if child + 1 < size else -1, heap[child]
                if a >= 0 and (key[a] > key[b] or (key[a] == key[b] and a < b)):
                    child += 1
                c = heap[child]
                if key[c] < key[last] or (key[c] == key[last] and c > last):
                    break
                heap[i] = heap[child]
                i = child
            heap[i] = last
            f, t = here // n_t, here % n_t
            for k in range(4):  # neighbours: next frame, previous frame, bin above, bin below
                if k == 0:
                    if t + 1 >= n_t:
                        continue
                    there = here + 1
                    step = 0.5 * (dt[here] + dt[there])
                elif k == 1:
                    if t == 0:
                        continue
                    there = here - 1
                    step = -0.5 * (dt[here] + dt[there])
                elif k == 2:
                    if f + 1 >= n_f:
                        continue
                    there = here + n_t
                    step = 0.5 * (df[here] + df[there])
                else:
                    if f == 0:
                        continue
                    there = here - n_t
                    step = -0.5 * (df[here] + df[there])
                if done[there]:
                    continue
                phase[there] = phase[here] + step
                done[there] = True
                i = size  # push: sift up from the end
                size += 1
                while i > 0 and (key[heap[(i - 1) // 2]] < key[there]
                                 or (key[heap[(i - 1) // 2]] == key[there] and heap[(i - 1) // 2] > there)):
                    heap[i] = heap[(i - 1) // 2]
                    i = (i - 1) // 2
                heap[i] = there
    return phase.reshape(n_f, n_t)


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
        tol: bins below ``tol`` times the spectrogram's maximum are left out of the heap integration (their phase
            is integrated along time alone).
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
        floor = float(logmag.max() + math.log(tol))
        phase = integrate(logmag, dt, df, floor)
        quiet = logmag < floor
        if quiet.any():  # not integrated: each bin's own instantaneous frequency, integrated along time
            along = np.zeros_like(dt)
            np.cumsum(0.5 * (dt[:, 1:] + dt[:, :-1]), axis=1, out=along[:, 1:])
            phase[quiet] = along[quiet]
        out[i] = phase + frame_start
    return torch.from_numpy(out.reshape(mag.shape)).to(magnitude.device, torch.float32)
