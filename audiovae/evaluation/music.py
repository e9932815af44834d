"""Music model evaluation: reconstruction of held-out pieces, and how close generated music is to real music.

**Reconstruction.** Held-out clips through the model (posterior mean) and the model's vocoder: the mel L1 of the
model's log-mel against the input's, and of the audio (analysed again) with its multi-resolution STFT distance
(Yamamoto et al. 2020), beside the vocoder alone on the true log-mel (``resynth``): the gap is what the model costs.

**Generation.** A Fréchet distance (as FID/FAD, here over hand-made features) between frame statistics of two sets of
clips: per frame (librosa, hop 512) 20 MFCCs, 12 chroma and 7 spectral-contrast bands, each dimension standardised by
the held-out set's spread so that no feature family dominates; the distance between the Gaussians fitted to the frames
of each set. Measured in the same run for: the prior's samples, per-frame ``N(0, I)`` samples through the same decoder
(the no-prior baseline), held-out clips reconstructed by the model (what the decoder and vocoder can reach at best),
and real training clips (the floor: two samples of the same music). Lower is closer to the held-out music.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import audio
from ..checkpoint import Checkpoint
from ..data.manifest import Entry
from ..errors import AudiovaeError
from ..features import MelSpectrogram
from ..losses import multi_resolution_stft
from ..pipelines import music
from ..pipelines.vocoder_choice import vocoder_for
from .reconstruction import reconstruct_and_score

FEATURE_HOP = 512
ROW_FLOOR = "real train clips (floor)"
ROW_PRIOR = "prior samples"
ROW_NORMAL = "N(0, I) samples (no prior)"
ROW_RECON = "held-out, reconstructed"


def frame_features(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per-frame features ``[frames, 39]``: 20 MFCCs, 12 chroma, 7 spectral-contrast bands (librosa defaults)."""
    import librosa

    y = np.asarray(wave, dtype=np.float32)
    mfcc = librosa.feature.mfcc(y=y, sr=sample_rate, n_mfcc=20, hop_length=FEATURE_HOP)
    chroma = librosa.feature.chroma_stft(y=y, sr=sample_rate, hop_length=FEATURE_HOP)
    contrast = librosa.feature.spectral_contrast(y=y, sr=sample_rate, hop_length=FEATURE_HOP)
    frames = min(mfcc.shape[1], chroma.shape[1], contrast.shape[1])
    return np.concatenate([mfcc[:, :frames], chroma[:, :frames], contrast[:, :frames]]).T.astype(np.float64)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` and ``b`` (``[n, d]`` each):
    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``. The trace of the root is taken as that of the symmetric
    ``(S_a^(1/2) S_b S_a^(1/2))^(1/2)`` (the same eigenvalues), which stays real and stable when a covariance is
    singular (a constant feature, e.g. the chroma of one held note)."""
    def root(m: np.ndarray) -> np.ndarray:
        w, v = np.linalg.eigh((m + m.T) / 2)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    half = root(cov_a)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(half @ cov_b @ half), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def clips(entries: Sequence[Entry], sample_rate: int, seconds: float, count: int) -> list[torch.Tensor]:
    """``count`` clips of ``seconds``, evenly spaced over all the whole clips the files hold (in order)."""
    size = round(seconds * sample_rate)
    spans: list[tuple[Entry, int]] = []
    for e in entries:
        n = int((e.duration or audio.info(e.path).duration) * sample_rate) // size
        spans += [(e, i) for i in range(n)]
    if not spans:
        raise AudiovaeError(f"no file holds a whole clip of {seconds:g} s")
    picks = [spans[i] for i in np.linspace(0, len(spans) - 1, min(count, len(spans))).round().astype(int)]
    out, loaded = [], {}
    for e, i in picks:
        if e.path not in loaded:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                loaded = {e.path: audio.load(e.path, sample_rate)[0]}
        wave = loaded[e.path][i * size: (i + 1) * size]
        if wave.numel() == size:
            out.append(wave)
    return out


@dataclass
class MusicReport:
    """Reconstruction (means over held-out clips) and Fréchet distances to held-out music, with the settings."""

    reconstruction: dict[str, float]
    frechet: dict[str, float]
    settings: dict[str, float | int | str] = field(default_factory=dict)
    speed: dict[str, float] = field(default_factory=dict)

    def table(self) -> str:
        s = self.settings
        lines = [f"reconstruction of {s['clips']} held-out clips of {s['seconds']:g} s (mel L1 in nats "
                 "against the input's log-mel: of the model's log-mel, and of the audio analysed again)",
                 f"  {'':34s} {'log-mel':>8s} {'audio':>8s} {'MR-STFT':>8s}"]
        r = self.reconstruction
        lines.append(f"  {'model + vocoder':34s} {r['model_mel_l1']:8.3f} {r['model_audio_mel_l1']:8.3f} "
                     f"{r['model_mrstft']:8.3f}")
        lines.append(f"  {'vocoder alone (resynth)':34s} {'':8s} {r['resynth_mel_l1']:8.3f} {r['resynth_mrstft']:8.3f}")
        lines.append(f"Fréchet distance to the held-out clips ({s['clips']} clips each, temperature "
                     f"{s['temperature']:g}; lower is closer)")
        lines += [f"  {name:34s} {value:8.2f}" for name, value in self.frechet.items()]
        if self.speed:
            rates = [f"{self.speed[f'{source}_x_realtime']:.0f}x realtime {label}" for source, label in
                     (("prior", "with the prior"), ("normal", "without")) if f"{source}_x_realtime" in self.speed]
            lines.append(f"generation: {', '.join(rates)} ({s['vocoder']}, {s['device']})")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"reconstruction": self.reconstruction, "frechet": self.frechet, "settings": self.settings,
                "speed": self.speed}


def evaluate_music(ckpt: Checkpoint, held_out: Sequence[Entry], train: Sequence[Entry], count: int = 32,
                   seconds: float = 10.0, temperature: float = 1.0, seed: int = 0, vocoder: str | None = None
                   ) -> MusicReport:
    """Score ``ckpt`` against ``held_out`` files (and ``train`` files for the floor; none: no floor row)."""
    sr = ckpt.mel.sample_rate
    real = clips(held_out, sr, seconds, count)
    if len(real) < 2:
        raise AudiovaeError(f"the held-out files hold {len(real)} clip(s) of {seconds:g} s; need at least 2")
    synth = vocoder_for(ckpt, vocoder)  # `--vocoder`; the model's default when None
    device = ckpt.model.mel_mean.device
    mel = MelSpectrogram(ckpt.mel).to(device)
    recon: dict[str, list[float]] = {k: [] for k in ("model_mel_l1", "model_audio_mel_l1", "model_mrstft",
                                                     "resynth_mel_l1", "resynth_mrstft")}
    recon_waves = []
    for wave in real:
        r = reconstruct_and_score(wave, ckpt, synth, mel)
        recon_waves.append(r.audio)
        for key, value in (("model_mel_l1", r.model_mel_l1), ("model_audio_mel_l1", r.audio_mel_l1),
                           ("model_mrstft", float(multi_resolution_stft(r.audio, wave))),
                           ("resynth_mel_l1", r.resynth_mel_l1),
                           ("resynth_mrstft", float(multi_resolution_stft(r.resynth, wave)))):
            recon[key].append(value)

    def features(waves: Sequence[torch.Tensor]) -> np.ndarray:
        return np.concatenate([frame_features(w.numpy(), sr) for w in waves])

    reference = features(real)
    mu, sd = reference.mean(0), reference.std(0) + 1e-8

    def distance(waves: Sequence[torch.Tensor]) -> float:
        return frechet_distance((reference - mu) / sd, (features(waves) - mu) / sd)

    frechet: dict[str, float] = {}
    if train:
        frechet[ROW_FLOOR] = distance(clips(train, sr, seconds, len(real)))
    speed = {}
    sources = [("prior", ROW_PRIOR)] if ckpt.prior is not None else []
    for source, row in sources + [("normal", ROW_NORMAL)]:
        t0 = time.perf_counter()
        _, waves = music.generate(ckpt, len(real), seconds, temperature, seed, source, vocoder=synth)
        speed[f"{source}_x_realtime"] = len(real) * seconds / (time.perf_counter() - t0)
        frechet[row] = distance(list(waves))
    frechet[ROW_RECON] = distance(recon_waves)
    settings = {"clips": len(real), "seconds": seconds, "temperature": temperature,
                "seed": seed, "vocoder": getattr(synth, "vocoder_type", type(synth).__name__),
                "device": str(device)}
    return MusicReport({k: float(np.mean(v)) for k, v in recon.items()}, frechet, settings, speed)
