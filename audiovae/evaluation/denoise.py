"""Denoising evaluation on a held-out noisy/clean test set: PESQ (wide-band), STOI and SI-SDR of the noisy input and
of the output, overall, per SNR, per noise type (types never seen in training marked) and per voice kind.

Every file is denoised at its own rate, as ``audiovae denoise`` would; PESQ-wb is computed at 16 kHz (its only
rate), STOI and SI-SDR at the file's rate. Mixtures of real recorded voices (speechocean762's speakers, festvox-ru's
``ru_nsh``, or any speaker listed in ``real_speakers``) get their own rows, and the headline row is theirs in the
recorded noise types that training never heard, at 0-10 dB, for the real speakers that training never heard either
(``train_speakers``); the synthetic voices' rows follow.

``clean_pass`` also sends each test mixture's *clean* reference through the denoiser and scores the output against
its own input: a denoiser should leave clean speech alone (PESQ-wb of an unchanged file is 4.64).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .. import audio
from ..data.corpora.noisy import CLEAN, REAL_SPEAKER, TEST_ONLY_NOISES, TRAIN_NOISES
from ..data.layouts import SPEECHOCEAN_PREFIX
from ..data.manifest import Entry
from ..errors import AudiovaeError
from ..metrics import si_sdr
from ..pipelines.denoise import Denoiser
from ..progress import bar_off

METRICS = ("pesq", "stoi", "si_sdr")
REAL_SPEAKERS = (REAL_SPEAKER,)  # the noisy corpus's recorded (not synthesised) voice
REAL_PREFIXES = (SPEECHOCEAN_PREFIX,)  # speaker names of real-speech layouts
SYNTHETIC_NOISES = (*TRAIN_NOISES, *TEST_ONLY_NOISES, CLEAN)  # every other noise type of a mixture was recorded
HEADLINE = "unheard real speakers, unheard recorded noise, 0-10 dB"


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
    clean_pass: Row | None = None  # clean speech in: the input as "noisy", the output scored against the input

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
        if self.clean_pass is not None:
            c = self.clean_pass
            lines.append(f"clean speech in, output against input ({c.n} files): PESQ-wb {c.output['pesq']:.2f}, "
                         f"STOI {c.output['stoi']:.3f}, SI-SDR {c.output['si_sdr']:.1f} dB (unchanged: 4.64, 1, inf)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)


def is_real_speaker(name: str, real_speakers: tuple[str, ...] = REAL_SPEAKERS) -> bool:
    """Whether a speaker name is a recorded person (not a synthetic voice) in the corpora known here."""
    return name in real_speakers or name.startswith(REAL_PREFIXES)


def _scores(pesq, stoi, reference: np.ndarray, y: np.ndarray, sr: int) -> dict[str, float]:  # noqa: ANN001
    ref16, y16 = audio.resample(reference, sr, 16000), audio.resample(y, sr, 16000)
    try:
        p = float(pesq(16000, ref16, y16, "wb"))
    except Exception:  # noqa: BLE001 - pesq raises its own types for silent or too-short input
        p = float("nan")
    return {"pesq": p, "stoi": float(stoi(reference, y, sr, extended=False)), "si_sdr": si_sdr(reference, y)}


def scored_subset(test: list[Entry], limit: int = 0) -> list[Entry]:
    """The mixtures an evaluation scores: those with a clean reference, ``limit`` > 0 of them evenly spaced (so every
    tool that scores a subset scores the same files)."""
    test = [e for e in test if e.clean]
    if not test:
        raise AudiovaeError("evaluate denoise needs noisy files with their clean reference (the `clean` field of a "
                            "manifest, e.g. the test split of `audiovae corpus noisy` or VoiceBank-DEMAND)")
    if 0 < limit < len(test):
        test = [test[i] for i in np.linspace(0, len(test) - 1, limit).round().astype(int)]
    return test


def evaluate_denoise(denoiser: Denoiser | Callable, test: list[Entry], train_noises: set[str] | None = None,
                     real_speakers: tuple[str, ...] = REAL_SPEAKERS, limit: int = 0,
                     progress: bool = True, clean_pass: bool = False,
                     train_speakers: set[str] | None = None) -> DenoiseReport:
    """Score ``denoiser`` on ``test`` entries (absolute ``path`` and ``clean`` set; ``snr``/``noise``/``speaker``
    used for grouping when present). ``limit`` > 0 takes an evenly spaced subset of that many files.
    ``clean_pass`` also denoises the clean references of the unheard real speakers' mixtures (each file once) and
    scores the output against them. ``train_speakers``: the speakers training heard (their mixtures stay out of the
    headline and the clean pass)."""
    heard = train_speakers or set()
    pesq, stoi = _metric_fns()
    test = scored_subset(test, limit)
    records = []
    for e in tqdm(test, desc="evaluate denoise", unit="file", disable=bar_off(progress)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            noisy, sr = audio.load(e.path)
            clean, _ = audio.load(e.clean, sr)
        n = min(noisy.numel(), clean.numel())
        noisy, clean = noisy[:n], clean[:n]
        out = np.asarray(denoiser(noisy, sr), dtype=np.float32)  # any callable (wave [T], sr) -> [T]
        scores = {kind: _scores(pesq, stoi, clean.numpy(), y, sr) for kind, y in (("noisy", noisy.numpy()),
                                                                                   ("output", out))}
        records.append((e, scores))
    passes = []
    if clean_pass:
        refs = sorted({e.clean for e in test if is_real_speaker(e.speaker, real_speakers) and e.speaker not in heard})
        for path in tqdm(refs, desc="clean speech through", unit="file", disable=bar_off(progress)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clean, sr = audio.load(path)
            out = np.asarray(denoiser(clean, sr), dtype=np.float32)
            passes.append((None, {"noisy": _scores(pesq, stoi, clean.numpy(), clean.numpy(), sr),
                                  "output": _scores(pesq, stoi, clean.numpy(), out, sr)}))

    def row(name: str, chosen: list) -> Row | None:
        if not chosen:
            return None
        mean = {k: {m: float(np.nanmean([s[k][m] for _, s in chosen])) for m in METRICS} for k in ("noisy", "output")}
        return Row(name, len(chosen), mean["noisy"], mean["output"])

    def real(e: Entry) -> bool:
        return is_real_speaker(e.speaker, real_speakers)

    def mid(e: Entry) -> bool:
        return e.snr is not None and 0 <= e.snr <= 10

    def recorded(e: Entry) -> bool:
        return bool(e.noise) and e.noise not in SYNTHETIC_NOISES

    unseen = sorted({e.noise for e, _ in records if e.noise} - train_noises) if train_noises else []
    def unheard(e: Entry) -> bool:
        return real(e) and e.speaker not in heard

    rows = [row(HEADLINE, [r for r in records if unheard(r[0]) and mid(r[0]) and recorded(r[0])
                           and r[0].noise in unseen]),
            row("unheard real speakers, recorded noise, 0-10 dB", [r for r in records if unheard(r[0]) and mid(r[0])
                                                                   and recorded(r[0])]),
            row("unheard real speakers, 0-10 dB", [r for r in records if unheard(r[0]) and mid(r[0])]),
            row("all", records),
            row("synthetic voices, 0-10 dB", [r for r in records if not real(r[0]) and mid(r[0])]),
            row("real voices, 0-10 dB", [r for r in records if real(r[0]) and mid(r[0])])]
    by_snr, by_noise = defaultdict(list), defaultdict(list)
    for r in records:
        if r[0].snr is not None:
            by_snr[r[0].snr].append(r)
        if r[0].noise:
            by_noise[r[0].noise].append(r)
    rows += [row(f"SNR {snr:g} dB", by_snr[snr]) for snr in sorted(by_snr)]
    rows += [row(f"noise {name}" + (" (unseen)" if name in unseen else ""), by_noise[name])
             for name in sorted(by_noise)]
    return DenoiseReport([r for r in rows if r is not None], unseen, len(records), row("clean speech", passes))
