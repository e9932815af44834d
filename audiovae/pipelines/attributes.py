"""Latent arithmetic and the views that show what a latent space has learnt.

- **Attribute vectors** (White 2016, "Sampling generative networks"): the mean utterance latent of a set A of
  recordings minus that of a set B (one speaker minus another, one instrument minus another). Added, scaled, to
  every latent frame of a recording (:func:`edit`), it moves the recording along what separates A from B; scale 0 is
  the plain reconstruction, negative scales go the other way.
- **Traversals** (:func:`traversal`): one latent dimension at a time offset over a range of values around a
  recording's latents and decoded, the dimensions that vary most over the recording first: what a beta-VAE's
  disentanglement is meant to make readable.
- **Latent maps** (:func:`latent_map`): each recording's mean latent, projected on the two principal axes of them
  all, with a label per recording (its speaker), and how well the labels separate (nearest-centroid accuracy in the
  full latent space).

An utterance latent is the time average of the posterior means ``[D]``: length-independent, so recordings of any
length compare.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import audio
from ..checkpoint import Checkpoint
from ..errors import AudiovaeError, ConfigError
from ..fileio import atomic_path
from ..vocoders import Vocoder
from . import latent


def utterance_latent(wave: torch.Tensor, ckpt: Checkpoint, speaker: str | int | None = None) -> torch.Tensor:
    """Waveform ``[T]`` -> its posterior means averaged over time ``[D]``."""
    return latent.encode(wave, ckpt, speaker).mean(dim=-1)


def file_latents(files: Sequence[Path], ckpt: Checkpoint, speaker: str | int | None = None,
                 on_file: Callable[[Path], None] | None = None) -> tuple[list[torch.Tensor], list[Path]]:
    """Utterance latents of the readable ``files`` (an unreadable one is skipped with a warning naming it) and the
    files they come from; ``on_file`` is called after each (a progress bar)."""
    out, used = [], []
    for path in files:
        try:
            wave, _ = audio.load(path, ckpt.mel.sample_rate, min_samples=ckpt.mel.min_samples)
        except AudiovaeError as e:
            warnings.warn(f"skipped {e}", stacklevel=2)
        else:
            out.append(utterance_latent(wave, ckpt, speaker))
            used.append(path)
        if on_file is not None:
            on_file(path)
    return out, used


@dataclass
class AttributeVector:
    """``mean z(A) - mean z(B)`` and how many files each mean is over."""

    vector: torch.Tensor
    count_a: int
    count_b: int

    @property
    def norm(self) -> float:
        return float(self.vector.norm())


def attribute_vector(files_a: Sequence[Path], files_b: Sequence[Path], ckpt: Checkpoint,
                     speaker: str | int | None = None, on_file: Callable[[Path], None] | None = None
                     ) -> AttributeVector:
    """The attribute that separates the recordings ``files_a`` from ``files_b``, in ``ckpt``'s latent space."""
    means = []
    for name, files in (("A", files_a), ("B", files_b)):
        z, used = file_latents(files, ckpt, speaker, on_file)
        if not used:
            raise AudiovaeError(f"set {name}: no readable audio file among {len(files)}")
        means.append((torch.stack(z).mean(dim=0), len(used)))
    return AttributeVector(means[0][0] - means[1][0], means[0][1], means[1][1])


def save_vector(path: str | os.PathLike[str], vector: torch.Tensor) -> Path:
    """Write a latent vector ``[D]`` as a float32 ``.npy`` (atomically)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, vector.detach().float().cpu().numpy())
    return Path(path)


def load_vector(path: str | os.PathLike[str], latent_dim: int) -> torch.Tensor:
    """Read a vector written by :func:`save_vector`; one that does not fit a ``latent_dim`` model is refused."""
    p = Path(path)
    if not p.is_file():
        raise AudiovaeError(f"{p}: no such vector file" if not p.exists() else f"{p}: is not a file")
    try:
        data = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise AudiovaeError(f"{p}: not a readable .npy vector ({str(e).splitlines()[0][:100]})") from None
    if not isinstance(data, np.ndarray) or data.shape != (latent_dim,) or not np.isfinite(data).all():
        shape = getattr(data, "shape", None)
        raise AudiovaeError(f"{p}: a vector of shape {shape}; this model's latents have {latent_dim} dimensions "
                            "(made with `audiovae vector` and another model?)")
    return torch.from_numpy(data.astype(np.float32))


@torch.inference_mode()
def edit(wave: torch.Tensor, ckpt: Checkpoint, vector: torch.Tensor, scale: float = 1.0,
         speaker: str | int | None = None, vocoder: Vocoder | None = None) -> torch.Tensor:
    """Waveform ``[T]`` -> the same with ``scale * vector`` added to every latent frame, decoded and vocoded."""
    z = latent.encode(wave, ckpt, speaker)
    if vector.shape != (z.shape[0],):
        raise ConfigError(f"a vector of shape {tuple(vector.shape)} for latents of {z.shape[0]} dimensions")
    return latent.decode(z + scale * vector[:, None], ckpt, speaker, vocoder, length=wave.numel())


@torch.inference_mode()
def traversal(wave: torch.Tensor, ckpt: Checkpoint, dims: int | Sequence[int] = 6,
              values: Sequence[float] = (-3.0, -1.5, 0.0, 1.5, 3.0), speaker: str | int | None = None
              ) -> tuple[list[int], list[list[torch.Tensor]]]:
    """Decoded log-mels ``[n_mels, frames]`` of ``wave``'s latents with one dimension offset by each of ``values``
    (in the prior's units), per dimension: ``dims`` names them, or, as a count, picks the dimensions whose posterior
    means vary most over the recording. Returns ``(dimensions, rows of log-mels)``."""
    z = latent.encode(wave, ckpt, speaker)
    dim = z.shape[0]
    if isinstance(dims, int):
        if not 1 <= dims <= dim:
            raise ConfigError(f"--dims {dims}: this model has {dim} latent dimensions")
        chosen = z.var(dim=-1).argsort(descending=True)[:dims].tolist()
    else:
        chosen = list(dims)
        bad = [d for d in chosen if not 0 <= d < dim]
        if bad:
            raise ConfigError(f"latent dimension {bad[0]} does not exist (0-{dim - 1})")
    model = ckpt.model
    device = model.mel_mean.device
    sid = latent.speaker_id(ckpt, speaker)
    rows = []
    for d in chosen:
        batch = z.to(device).unsqueeze(0).repeat(len(values), 1, 1)
        batch[:, d] += torch.tensor(list(values), device=device)[:, None]
        cond = sid.expand(len(values), *sid.shape[1:]) if sid is not None else None
        rows.append(list(model.decode(batch, cond).float().cpu()))
    return chosen, rows


@dataclass
class LatentMap:
    """Utterance latents projected on their two principal axes, with labels and how well the labels separate."""

    points: np.ndarray  # [N, 2]
    labels: list[str]
    explained: tuple[float, float]  # share of the variance along each axis
    accuracy: float  # nearest-centroid accuracy of the labels in the full latent space
    files: list[Path]


def latent_map(latents: Sequence[torch.Tensor], labels: Sequence[str], files: Sequence[Path] = ()) -> LatentMap:
    """Principal-component map of utterance latents ``[D]`` each, and the nearest-centroid accuracy (each utterance
    assigned to the label whose mean latent, computed without it, is closest): chance is one over the labels;
    high means the labels are readable from the latents (wanted for an instrument; for a CVAE's speaker, the
    disentanglement failed)."""
    if len(latents) < 3:
        raise AudiovaeError(f"a latent map needs at least 3 recordings, got {len(latents)}")
    x = torch.stack(list(latents)).double().numpy()
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    points = centred @ vt[:2].T
    variance = s**2 / max((s**2).sum(), 1e-12)
    names = sorted(set(labels))
    lab = np.array([names.index(v) for v in labels])
    sums = np.stack([x[lab == k].sum(0) for k in range(len(names))])
    counts = np.bincount(lab, minlength=len(names)).astype(float)
    hits = 0
    for i in range(len(x)):
        s_i, n_i = sums.copy(), counts.copy()
        s_i[lab[i]] -= x[i]
        n_i[lab[i]] -= 1
        ok = n_i > 0
        dist = np.where(ok, ((x[i] - s_i / np.maximum(n_i, 1)[:, None]) ** 2).sum(1), np.inf)
        hits += int(dist.argmin() == lab[i])
    return LatentMap(points if points.shape[1] == 2 else np.pad(points, ((0, 0), (0, 2 - points.shape[1]))),
                     list(labels), (float(variance[0]), float(variance[1]) if len(variance) > 1 else 0.0),
                     hits / len(x), list(files))
