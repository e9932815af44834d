"""Figures written as PNG (headless, Agg backend), always atomically."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .features import MelConfig
from .fileio import write_atomic


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display needed, and no GUI backend probing
    import matplotlib.pyplot as plt

    return plt


def _db(logmel: torch.Tensor | np.ndarray) -> np.ndarray:
    data = logmel.detach().float().cpu().numpy() if isinstance(logmel, torch.Tensor) else np.asarray(logmel)
    return data * (20.0 / np.log(10.0))  # natural-log magnitude -> dB


def _logmels_figure(panels: Sequence[tuple[str, torch.Tensor | np.ndarray]], config: MelConfig):  # noqa: ANN202
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
    except BaseException:
        plt.close(fig)
        raise
    return fig


def _png(fig) -> bytes:  # noqa: ANN001 - a matplotlib Figure
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png")
    finally:
        _pyplot().close(fig)
    return buf.getvalue()


def logmels_png(panels: Sequence[tuple[str, torch.Tensor | np.ndarray]], config: MelConfig) -> bytes:
    """:func:`plot_logmels` as PNG bytes (for the web page), no file written."""
    return _png(_logmels_figure(panels, config))


def plot_logmels(path: str | os.PathLike[str], panels: Sequence[tuple[str, torch.Tensor | np.ndarray]],
                 config: MelConfig) -> Path:
    """Write log-mel spectrograms ``[n_mels, frames]`` stacked top to bottom, on one colour scale (the first panel's
    top 80 dB), with time (s) and frequency (Hz, mel-spaced) axes."""
    png = logmels_png(panels, config)
    write_atomic(path, png)
    return Path(path)


def curves_png(rows: Sequence[dict], title: str = "training") -> bytes | None:
    """Training curves from ``log.csv`` rows: the training terms and, below, the validation terms (columns
    ``valid_*``), against the step, on log scales where every value is positive. ``None`` when nothing numeric."""
    skip = {"step", "epoch", "lr", "audio_s_per_s", "skipped"}
    rows = [r for r in rows if r.get("step") not in (None, "")]

    def series(name: str) -> tuple[np.ndarray, np.ndarray]:
        pts = [(float(r["step"]), float(r[name])) for r in rows if r.get(name) not in (None, "")]
        return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])

    data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for k in dict.fromkeys(k for r in rows for k in r if k not in skip):
        try:
            x, y = series(k)
        except (TypeError, ValueError):  # a column that is not numbers
            continue
        if len(x):
            data[k] = (x, y)
    groups = [g for g in ([k for k in data if not k.startswith("valid")], [k for k in data if k.startswith("valid")])
              if g]
    if not groups:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(groups), 1, figsize=(8, 3.0 * len(groups) + 0.4), dpi=100, squeeze=False,
                             sharex=True)
    for ax, group in zip(axes[:, 0], groups, strict=True):
        positive = True
        for k in group:
            x, y = data[k]
            ax.plot(x, y, label=k, linewidth=1.2)
            positive &= bool((y > 0).all())
        if positive:
            from matplotlib.ticker import FuncFormatter

            ax.set_yscale("log")
            plain = FuncFormatter(lambda v, _: f"{v:g}")  # 0.3, 1, 4 rather than 3x10^-1
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(plain)
        ax.legend(fontsize=8, ncol=2)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    return _png(fig)


def plot_logmel(path: str | os.PathLike[str], logmel: torch.Tensor | np.ndarray, config: MelConfig,
                title: str | None = None) -> Path:
    """Write one log-mel spectrogram ``[n_mels, frames]`` as a PNG."""
    return plot_logmels(path, [(title or "log-mel spectrogram", logmel)], config)


def anomaly_png(logmel: torch.Tensor | np.ndarray, frame_scores: np.ndarray, config: MelConfig,
                threshold: float | None, title: str) -> bytes:
    """A clip's log-mel above its per-frame anomaly scores (with the clip threshold as a line): where in the clip
    the sound stops fitting what the detector learnt as normal."""
    import librosa.display

    plt = _pyplot()
    db = _db(logmel)
    seconds = db.shape[-1] / config.frame_rate
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(min(16.0, max(6.0, 1.2 * seconds + 2.0)), 5.6), dpi=100,
                                      sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    try:
        librosa.display.specshow(db, sr=config.sample_rate, hop_length=config.hop_length, x_axis="time",
                                 y_axis="mel", fmin=config.f_min, fmax=config.f_max, htk=config.mel_scale == "htk",
                                 cmap="magma", ax=top, vmin=float(db.max()) - 80.0, vmax=float(db.max()))
        top.set(title=title, xlabel="", ylabel="Frequency (Hz)")
        t = (np.arange(len(frame_scores)) + 0.5) / config.frame_rate
        bottom.plot(t, frame_scores, linewidth=1.0, color="tab:red", label="frame score")
        if threshold is not None:
            bottom.axhline(threshold, color="black", linestyle="--", linewidth=0.9, label="clip threshold")
        bottom.set(xlabel="Time (s)", ylabel="anomaly score", xlim=(0, seconds))
        bottom.legend(fontsize=8, loc="upper right")
        bottom.grid(alpha=0.3)
        fig.tight_layout()
    except BaseException:
        plt.close(fig)
        raise
    return _png(fig)


def comparison_png(tables: dict[str, Sequence[dict]], columns: dict[str, str]) -> bytes:
    """A bar chart per column (``key -> title``), one group of bars per table (a domain: speech, music), one bar
    per row (a model, by ``row["name"]``); missing values are left out, not drawn as zero."""
    plt = _pyplot()
    names = list(dict.fromkeys(r["name"] for rows in tables.values() for r in rows))
    fig, axes = plt.subplots(2, -(-len(columns) // 2), figsize=(3.4 * -(-len(columns) // 2), 6.4), dpi=100,
                             squeeze=False)
    colours = plt.get_cmap("tab10").colors
    width = 0.8 / max(1, len(names))
    for ax, (key, title) in zip(axes.flat, columns.items(), strict=False):
        for j, name in enumerate(names):
            xs, ys = [], []
            for i, rows in enumerate(tables.values()):
                value = next((r.get(key) for r in rows if r["name"] == name), None)
                if value is not None:
                    xs.append(i + (j - (len(names) - 1) / 2) * width)
                    ys.append(float(value))
            ax.bar(xs, ys, width, color=colours[j % len(colours)], label=name)
        ax.set_xticks(range(len(tables)), list(tables))
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(names), fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _png(fig)


def traversal_png(dims: Sequence[int], rows: Sequence[Sequence[torch.Tensor]], values: Sequence[float],
                  config: MelConfig, title: str = "latent traversal") -> bytes:
    """A grid of log-mels: one row per latent dimension, one column per offset (one colour scale: the grid's top
    80 dB), so what each dimension controls reads along its row."""
    plt = _pyplot()
    data = [[_db(m) for m in row] for row in rows]
    vmax = max(float(m.max()) for row in data for m in row)
    fig, axes = plt.subplots(len(data), len(values), figsize=(2.2 * len(values) + 0.8, 1.5 * len(data) + 0.8),
                             dpi=100, squeeze=False, sharex=True, sharey=True)
    seconds = data[0][0].shape[-1] / config.frame_rate
    for i, (d, row) in enumerate(zip(dims, data, strict=True)):
        for j, (v, m) in enumerate(zip(values, row, strict=True)):
            ax = axes[i, j]
            ax.imshow(m, origin="lower", aspect="auto", cmap="magma", vmin=vmax - 80.0, vmax=vmax,
                      extent=(0.0, seconds, 0, m.shape[0]))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"{v:+g}", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"z[{d}]", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _png(fig)


def latent_map_png(points: np.ndarray, labels: Sequence[str], explained: tuple[float, float], title: str) -> bytes:
    """A scatter of 2-D latent points, one colour per label (legend outside when there are many)."""
    plt = _pyplot()
    names = sorted(set(labels))
    fig, ax = plt.subplots(figsize=(7.5 if len(names) <= 10 else 9.0, 6.0), dpi=100)
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    for k, name in enumerate(names):
        sel = np.array([lab == name for lab in labels])
        ax.scatter(points[sel, 0], points[sel, 1], s=14, alpha=0.8, color=cmap(k % cmap.N), label=name)
    ax.set_xlabel(f"PC 1 ({100 * explained[0]:.0f} % of the variance)")
    ax.set_ylabel(f"PC 2 ({100 * explained[1]:.0f} % of the variance)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best" if len(names) <= 10 else "center left",
              bbox_to_anchor=None if len(names) <= 10 else (1.0, 0.5))
    fig.tight_layout()
    return _png(fig)
