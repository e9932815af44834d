"""Vocoder evaluation: held-out audio -> its true log-mel -> each vocoder -> audio, scored beside the original.

Griffin-Lim's artefacts are in the phase, which PESQ barely hears (it rates Griffin-Lim 100 at 3.5 on read speech)
but the non-intrusive DNSMOS does (Reddy et al. 2022, Microsoft's DNS Challenge models shipped in ``speechmos``: SIG,
BAK, OVRL and the P.808 MOS fall by about 0.6 from the original). So the table has both, plus two distances to the
original that need no judge: the mean L1 between the log-mels of the output and of the input (nats), and the
multi-resolution STFT distance (spectral convergence + log-magnitude L1 at three resolutions). PESQ-wb and DNSMOS
run at 16 kHz, their only rate. Speed is each vocoder's own time on the log-mels (the front end excluded), as
x-realtime on the device it ran on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import audio
from ..data.manifest import Entry
from ..errors import AudiovaeError
from ..features import MelConfig, MelSpectrogram
from ..losses import multi_resolution_stft
from ..metrics import mel_l1
from ..progress import bar_off
from ..vocoders import Vocoder

__all__ = ["VocoderReport", "evaluate_vocoders", "METRICS", "ORIGINAL"]

METRICS = ("p808", "ovrl", "sig", "bak", "pesq", "mel_l1", "mrstft")
ORIGINAL = "original"
JUDGE_RATE = 16000


def _judges():  # noqa: ANN202
    try:
        from pesq import NoUtterancesError, pesq
        from speechmos import dnsmos
    except ImportError:
        raise AudiovaeError("evaluate vocoder needs pesq, speechmos and onnxruntime: pip install 'audiovae[eval]'"
                            ) from None

    def pesq_wb(ref: np.ndarray, out: np.ndarray) -> float | None:
        """PESQ-wb of one clip; None where the judge finds no speech in the reference (music, silence)."""
        try:
            return float(pesq(JUDGE_RATE, ref, out, "wb"))
        except NoUtterancesError:
            return None

    return pesq_wb, dnsmos


@dataclass
class VocoderReport:
    """Mean of each metric per system over ``files`` clips (``original``: the input itself)."""

    rows: dict[str, dict[str, float]]
    files: int
    seconds: float
    device: str
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        head = (f"{'':28s} {'P.808':>6s} {'OVRL':>6s} {'SIG':>6s} {'BAK':>6s} {'PESQ-wb':>8s} {'mel L1':>7s} "
                f"{'MR-STFT':>8s} {'x realtime':>11s}")
        lines = [f"{self.files} held-out clips, {self.seconds:.0f} s; DNSMOS and PESQ-wb at 16 kHz; speed on "
                 f"{self.device}", head]
        for name, r in self.rows.items():
            cells = [f"{r[m]:6.2f}" for m in ("p808", "ovrl", "sig", "bak")]
            if name == ORIGINAL:
                cells += [f"{'-':>8s}", f"{'-':>7s}", f"{'-':>8s}", f"{'-':>11s}"]
            else:
                cells += [f"{r['pesq']:8.2f}", f"{r['mel_l1']:7.3f}", f"{r['mrstft']:8.3f}", f"{r['realtime']:11.0f}"]
            lines.append(f"{name:28s} " + " ".join(cells))
        return "\n".join(lines + self.notes)

    def to_dict(self) -> dict:
        return asdict(self)


def _time(vocoder: Vocoder, logmel: torch.Tensor, length: int) -> tuple[torch.Tensor, float]:
    if vocoder.device.type == "cuda":
        torch.cuda.synchronize(vocoder.device)
    t0 = time.perf_counter()
    out = vocoder(logmel.to(vocoder.device), length=length)
    if vocoder.device.type == "cuda":
        torch.cuda.synchronize(vocoder.device)
    return out[0].float().cpu(), time.perf_counter() - t0


@torch.inference_mode()
def evaluate_vocoders(vocoders: dict[str, Vocoder], entries: Sequence[Entry], mel: MelConfig, files: int = 24,
                      progress: bool = True) -> VocoderReport:
    """Score each named vocoder (all made for ``mel``) on an evenly spaced choice of ``files`` of ``entries``
    (0: every one), beside the original audio."""
    pesq, dnsmos = _judges()
    if not entries:
        raise AudiovaeError("evaluate vocoder: no held-out files to score")
    step = max(1, len(entries) / files) if files else 1
    chosen = [entries[int(i * step)] for i in range(min(len(entries), files or len(entries)))]
    analysis = MelSpectrogram(mel)
    sums: dict[str, dict[str, float]] = {name: dict.fromkeys(METRICS, 0.0) for name in (ORIGINAL, *vocoders)}
    busy = dict.fromkeys(vocoders, 0.0)
    total = 0.0
    judged = 0  # clips PESQ could score for every vocoder (it finds no speech in some music)
    for e in tqdm(chosen, desc="evaluate vocoder", unit="file", disable=bar_off(progress)):
        wave, _ = audio.load(e.path, mel.sample_rate, min_samples=mel.min_samples)
        total += wave.numel() / mel.sample_rate
        logmel = analysis(wave[None])
        ref16 = audio.resample(wave.numpy(), mel.sample_rate, JUDGE_RATE)
        outputs = {ORIGINAL: wave}
        for name, vocoder in vocoders.items():
            outputs[name], spent = _time(vocoder, logmel, wave.numel())
            busy[name] += spent
        scores = {}
        for name, out in outputs.items():
            out16 = np.clip(audio.resample(out.numpy(), mel.sample_rate, JUDGE_RATE), -1.0, 1.0).astype(np.float32)
            mos = dnsmos.run(out16, JUDGE_RATE)
            row = sums[name]
            row["p808"] += float(mos["p808_mos"])
            row["ovrl"] += float(mos["ovrl_mos"])
            row["sig"] += float(mos["sig_mos"])
            row["bak"] += float(mos["bak_mos"])
            if name != ORIGINAL:
                scores[name] = pesq(ref16, out16)
                row["mel_l1"] += float(mel_l1(analysis(out[None]), logmel))
                row["mrstft"] += float(multi_resolution_stft(out, wave))
        if None not in scores.values():  # every row's PESQ mean is over the same clips
            judged += 1
            for name, score in scores.items():
                sums[name]["pesq"] += score
    n = len(chosen)
    counts = {m: judged if m == "pesq" else n for m in METRICS}
    rows = {name: {m: v / counts[m] if counts[m] else float("nan") for m, v in row.items()}
            for name, row in sums.items()}
    for name in vocoders:
        rows[name]["realtime"] = total / max(busy[name], 1e-9)
    device = ", ".join(sorted({str(v.device) for v in vocoders.values()})) or "cpu"
    notes = [] if judged == n else [f"PESQ-wb over {judged} of {n} clips: it finds no speech in the others "
                                    "(music, silence); DNSMOS, too, judges speech only"]
    return VocoderReport(rows, n, total, device, notes)
