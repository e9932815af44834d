"""Denoising evaluation on a held-out noisy/clean test set: PESQ (wide-band), STOI and SI-SDR of the noisy input and
of the output, overall, per SNR, per noise type (types never seen in training marked) and per voice kind.

Every file is denoised at its own rate, as ``audiovae denoise`` would; PESQ-wb is computed at 16 kHz (its only
rate), STOI and SI-SDR at the file's rate. The headline row is the 0-10 dB mixtures of synthetic voices; mixtures of
a real recorded voice (the noisy corpus's ``ru_nsh``, or any speaker listed in ``real_speakers``) get their own rows.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .. import audio
from ..data.corpora.noisy import REAL_SPEAKER
from ..data.manifest import Entry
from ..errors import AudiovaeError
from ..metrics import si_sdr
from ..pipelines.denoise import Denoiser
from ..progress import bar_off

METRICS = ("pesq", "stoi", "si_sdr")
REAL_SPEAKERS = (REAL_SPEAKER,)  # the noisy corpus's recorded (not synthesised) voice


def _metric_fns():  # noqa: ANN202
    try:
        from pesq import pesq
        from pystoi import stoi
    except ImportError:
        raise AudiovaeError("evaluate denoise needs pesq and pystoi: pip install 'audiovae[eval]'") from None
    return pesq, stoi


@dataclass
class Row:
    """Means over ``n`` files of each metric, for the noisy input and for the output."""

    name: str
    n: int
    noisy: dict[str, float]
    output: dict[str, float]

    def delta(self, metric: str) -> float:
        return self.output[metric] - self.noisy[metric]


@dataclass
class DenoiseReport:
    rows: list[Row]
    unseen_noises: list[str] = field(default_factory=list)
    files: int = 0

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)

    def table(self) -> str:
        head = f"{'':26s} {'n':>4s}  " + "  ".join(f"{m + ' in→out':>21s}" for m in ("PESQ-wb", "STOI", "SI-SDR dB"))
        lines = [head]
        for r in self.rows:
            cells = "  ".join(f"{r.noisy[m]:6.2f} → {r.output[m]:5.2f} ({r.delta(m):+5.2f})" for m in METRICS)
            lines.append(f"{r.name:26s} {r.n:4d}  {cells}")
        if self.unseen_noises:
            lines.append(f"(unseen: noise types absent from the training split: {', '.join(self.unseen_noises)})")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_denoise(denoiser: Denoiser | Callable, test: list[Entry], train_noises: set[str] | None = None,
                     real_speakers: tuple[str, ...] = REAL_SPEAKERS, limit: int = 0,
                     progress: bool = True) -> DenoiseReport:
    """Score ``denoiser`` on ``test`` entries (absolute ``path`` and ``clean`` set; ``snr``/``noise``/``speaker``
    used for grouping when present). ``limit`` > 0 takes an evenly spaced subset of that many files."""
    pesq, stoi = _metric_fns()
    test = [e for e in test if e.clean]
    if not test:
        raise AudiovaeError("evaluate denoise needs noisy files with their clean reference (the `clean` field of a "
                            "manifest, e.g. the test split of `audiovae corpus noisy` or VoiceBank-DEMAND)")
    if 0 < limit < len(test):
        test = [test[i] for i in np.linspace(0, len(test) - 1, limit).round().astype(int)]
    records = []
    for e in tqdm(test, desc="evaluate denoise", unit="file", disable=bar_off(progress)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            noisy, sr = audio.load(e.path)
            clean, _ = audio.load(e.clean, sr)
        n = min(noisy.numel(), clean.numel())
        noisy, clean = noisy[:n], clean[:n]
        out = np.asarray(denoiser(noisy, sr), dtype=np.float32)  # any callable (wave [T], sr) -> [T]
        scores = {}
        for kind, y in (("noisy", noisy.numpy()), ("output", out)):
            ref16, y16 = audio.resample(clean.numpy(), sr, 16000), audio.resample(y, sr, 16000)
            try:
                p = float(pesq(16000, ref16, y16, "wb"))
            except Exception:  # noqa: BLE001 - pesq raises its own types for silent or too-short input
                p = float("nan")
            scores[kind] = {"pesq": p, "stoi": float(stoi(clean.numpy(), y, sr, extended=False)),
                            "si_sdr": si_sdr(clean.numpy(), y)}
        records.append((e, scores))

    def row(name: str, chosen: list) -> Row | None:
        if not chosen:
            return None
        mean = {k: {m: float(np.nanmean([s[k][m] for _, s in chosen])) for m in METRICS} for k in ("noisy", "output")}
        return Row(name, len(chosen), mean["noisy"], mean["output"])

    def real(e: Entry) -> bool:
        return e.speaker in real_speakers

    unseen = sorted({e.noise for e, _ in records if e.noise} - train_noises) if train_noises else []
    rows = [row("all", records),
            row("synthetic voices, 0-10 dB", [r for r in records if not real(r[0]) and r[0].snr is not None
                                              and 0 <= r[0].snr <= 10]),
            row("real voice, 0-10 dB", [r for r in records if real(r[0]) and r[0].snr is not None
                                        and 0 <= r[0].snr <= 10])]
    by_snr, by_noise = defaultdict(list), defaultdict(list)
    for r in records:
        if r[0].snr is not None:
            by_snr[r[0].snr].append(r)
        if r[0].noise:
            by_noise[r[0].noise].append(r)
    rows += [row(f"SNR {snr:g} dB", by_snr[snr]) for snr in sorted(by_snr)]
    rows += [row(f"noise {name}" + (" (unseen)" if name in unseen else ""), by_noise[name])
             for name in sorted(by_noise)]
    return DenoiseReport([r for r in rows if r is not None], unseen, len(records))
