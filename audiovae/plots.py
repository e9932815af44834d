"""Figures written as PNG (headless, Agg backend), always atomically."""

from __future__ import annotations

import os
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


def plot_logmel(path: str | os.PathLike[str], logmel: torch.Tensor | np.ndarray, config: MelConfig,
                title: str | None = None) -> Path:
    """Write a log-mel spectrogram ``[n_mels, frames]`` as a PNG with time (s) and frequency (Hz, mel-spaced) axes."""
    import librosa.display

    plt = _pyplot()
    data = logmel.detach().cpu().numpy() if isinstance(logmel, torch.Tensor) else np.asarray(logmel)
    db = data * (20.0 / np.log(10.0))  # natural-log magnitude -> dB
    seconds = data.shape[-1] / config.frame_rate
    fig, ax = plt.subplots(figsize=(min(16.0, max(6.0, 1.2 * seconds + 2.0)), 4.0), dpi=100)
    try:
        img = librosa.display.specshow(db, sr=config.sample_rate, hop_length=config.hop_length, x_axis="time",
                                       y_axis="mel", fmin=config.f_min, fmax=config.f_max,
                                       htk=config.mel_scale == "htk", cmap="magma", ax=ax, vmin=db.max() - 80.0,
                                       vmax=db.max())
        ax.set_xlabel("Time (s)")
        ax.set_ylabel("Frequency (Hz)")
        ax.set_title(title or "log-mel spectrogram")
        fig.colorbar(img, ax=ax, format="%+.0f dB")
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return Path(path)
