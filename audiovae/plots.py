"""Figures written as PNG (headless, Agg backend), always atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .features import MelConfig
from .fileio import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display needed, and no GUI backend probing
    import matplotlib.pyplot as plt

    return plt


def _db(logmel: torch.Tensor | np.ndarray) -> np.ndarray:
    data = logmel.detach().float().cpu().numpy() if isinstance(logmel, torch.Tensor) else np.asarray(logmel)
    return data * (20.0 / np.log(10.0))  # natural-log magnitude -> dB


def plot_logmels(path: str | os.PathLike[str], panels: Sequence[tuple[str, torch.Tensor | np.ndarray]],
                 config: MelConfig) -> Path:
    """Write log-mel spectrograms ``[n_mels, frames]`` stacked top to bottom, on one colour scale (the first panel's
    top 80 dB), with time (s) and frequency (Hz, mel-spaced) axes."""
    import librosa.display

    plt = _pyplot()
    data = [(title, _db(x)) for title, x in panels]
    vmax = float(data[0][1].max())
    seconds = max(d.shape[-1] for _, d in data) / config.frame_rate
    width = min(16.0, max(6.0, 1.2 * seconds + 2.0))
    fig, axes = plt.subplots(len(data), 1, figsize=(width, 3.2 * len(data) + 0.6), dpi=100, squeeze=False,
                             sharex=True)
    try:
        for ax, (title, db) in zip(axes[:, 0], data, strict=True):
            img = librosa.display.specshow(db, sr=config.sample_rate, hop_length=config.hop_length, x_axis="time",
                                           y_axis="mel", fmin=config.f_min, fmax=config.f_max,
                                           htk=config.mel_scale == "htk", cmap="magma", ax=ax, vmin=vmax - 80.0,
                                           vmax=vmax)
            ax.set_title(title)
            ax.set_xlabel("")
            ax.set_ylabel("Frequency (Hz)")
            fig.colorbar(img, ax=ax, format="%+.0f dB")
        axes[-1, 0].set_xlabel("Time (s)")
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def plot_logmel(path: str | os.PathLike[str], logmel: torch.Tensor | np.ndarray, config: MelConfig,
                title: str | None = None) -> Path:
    """Write one log-mel spectrogram ``[n_mels, frames]`` as a PNG."""
    return plot_logmels(path, [(title or "log-mel spectrogram", logmel)], config)
