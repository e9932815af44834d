"""The VAE family side by side on held-out audio: what each variant keeps, what it spends, what it can generate.

Per model, on ``clips`` held-out clips of ``seconds`` (every model sees the same clips, and the same vocoder where
the front ends agree):

- **mel L1** (nats) of the posterior-mode reconstruction against the input's log-mel, and the **multi-resolution STFT
  distance** of its vocoded audio to the input audio (Yamamoto et al. 2020), beside the vocoder alone on the true
  log-mel (the floor: what no model can beat through this vocoder);
- **rate** in bits per second of audio: the KL of the posterior to the prior (summed over latent dimensions, and over
  both levels of a hierarchical VAE, at the posterior means) for Gaussian posteriors; for a VQ-VAE the entropy of its
  code usage on these clips (``log2`` perplexity summed over codebooks), the length of an ideal code for its
  indices. Deterministic encoders (WAE, AAE) have no rate: their latents are points, not distributions;
- **active units** (Burda et al. 2016) over the posterior means, and for a VQ-VAE the codebook **perplexity** (mean
  over codebooks) beside the codebook size;
- **Fréchet distance** of the model's own prior samples (``model.sample``: ``N(0, I)`` per frame, the code usage of a
  VQ-VAE, the learnt ladder of a hierarchical VAE) to the held-out clips, on the music evaluation's frame features
  (:mod:`.music`), with real training clips as the floor;
- **training speed** (seconds of audio per second): a few timed training steps of every model in turn, in the same
  process, on crops of the held-out log-mels (:func:`training_speed`).
"""

from __future__ import annotations

import csv
import io
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import Checkpoint
from ..data.manifest import Entry
from ..errors import AudiovaeError
from ..features import MelSpectrogram
from ..losses import active_units, multi_resolution_stft
from ..metrics import mel_l1
from ..models.quantize import perplexity
from ..pipelines.vocoder_choice import vocoder_for
from .music import clips, frame_features, frechet_distance

COLUMNS = {  # key -> (header, format)
    "params_m": ("params (M)", "{:.2f}"),
    "mel_l1": ("mel L1", "{:.3f}"),
    "mrstft": ("MR-STFT", "{:.3f}"),
    "rate_bps": ("rate (bit/s)", "{:.0f}"),
    "active_units": ("active units", "{}"),
    "perplexity": ("perplexity", "{:.0f}"),
    "frechet": ("Fréchet (samples)", "{:.2f}"),
    "train_speed": ("train (audio s/s)", "{:.0f}"),
}

CSV_KEYS = ["name", "type", "latent_dim", "codebook_size", "steps", *COLUMNS]


def training_speed(model: torch.nn.Module, mels: Sequence[torch.Tensor], hop_seconds: float, batch_size: int = 16,
                   frames: int = 128, steps: int = 12, warmup: int = 3) -> float:
    """Seconds of audio trained per second: ``steps`` full training steps (the loss of every parameter group, its
    backward pass, AdamW) on a copy of ``model``, in batches of ``batch_size`` crops of ``frames`` frames cut from
    ``mels``, with the engine's ``amp: auto`` setting; the first ``warmup`` steps are not timed. Models timed one
    after another in one process share the machine's state, so their ratios are what to read."""
    import copy

    from ..training.engine import amp_enabled, backward_groups

    net = copy.deepcopy(model).train().requires_grad_(True)
    device = next(net.parameters()).device
    groups = net.param_groups()
    optimisers = {g: torch.optim.AdamW(p, lr=1e-4) for g, p in groups.items()}
    pool = torch.cat(list(mels), dim=-1)  # crops may straddle two clips: only the time is measured
    if pool.shape[-1] < frames:
        raise AudiovaeError(f"training speed: the clips hold fewer than {frames} frames")
    gen = torch.Generator().manual_seed(0)
    amp = amp_enabled("auto", device)
    elapsed = 0.0
    for step in range(warmup + steps):
        starts = torch.randint(0, pool.shape[-1] - frames + 1, (batch_size,), generator=gen).tolist()
        batch = {"mel": torch.stack([pool[:, s: s + frames] for s in starts]).to(device),
                 "length": torch.full((batch_size,), frames, device=device)}
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            losses = net.loss(batch, step).losses
        for opt in optimisers.values():
            opt.zero_grad(set_to_none=True)
        backward_groups(losses, groups)
        for opt in optimisers.values():
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= warmup:
            elapsed += time.perf_counter() - t0
    return steps * batch_size * frames * hop_seconds / elapsed


@dataclass
class VariantsReport:
    """One row per model (:data:`COLUMNS`, plus its type, latent size, steps), the floor, and the settings."""

    rows: list[dict]
    settings: dict = field(default_factory=dict)

    def _cells(self, row: dict) -> list[str]:
        cells = []
        for key, (_, fmt) in COLUMNS.items():
            value = row.get(key)
            if value is None:
                cells.append("—")
            elif key == "active_units":
                cells.append(f"{value} / {row['latent_dim']}")
            elif key == "perplexity":
                cells.append(f"{value:.0f} / {row['codebook_size']}")
            else:
                cells.append(fmt.format(value))
        return cells

    def caption(self) -> str:
        """What was scored, and the floors (the vocoder alone; real training clips)."""
        s = self.settings
        return (f"{s['clips']} held-out clips of {s['seconds']:g} s; {s['vocoder']} vocoder (alone on the true "
                f"log-mel: MR-STFT {s['resynth_mrstft']:.3f})"
                + (f"; Fréchet floor (real training clips): {s['floor']:.2f}" if s.get("floor") is not None else ""))

    def table(self) -> str:
        head = ["variant", *(h for h, _ in COLUMNS.values())]
        body = [[r["name"], *self._cells(r)] for r in self.rows]
        widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
        lines = [self.caption()]
        for row in [head, *body]:
            lines.append("  " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(
                zip(row, widths, strict=True))))
        return "\n".join(lines)

    def markdown(self) -> str:
        head = ["variant", *(h for h, _ in COLUMNS.values())]
        lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * len(COLUMNS)]
        lines += ["| " + " | ".join([r["name"], *self._cells(r)]) + " |" for r in self.rows]
        return "\n".join(lines)

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_KEYS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return out.getvalue()

    def to_dict(self) -> dict:
        return {"rows": self.rows, "settings": self.settings}


@torch.inference_mode()
def _score(ckpt: Checkpoint, real: Sequence[torch.Tensor], mels: Sequence[torch.Tensor],
           distance: Callable[[Sequence[np.ndarray]], float], vocoder: torch.nn.Module, seconds: float,
           seed: int) -> dict:
    """One model's row: ``real`` clips and their log-mels ``mels``; ``distance`` is the Fréchet distance of
    waveforms to the held-out clips."""
    model = ckpt.model.eval()
    sr = ckpt.mel.sample_rate
    device = model.mel_mean.device
    l1, stft, kl, means, counts = [], [], [], [], None
    for wave, logmel in zip(real, mels, strict=True):
        ref = logmel.to(device)[None]
        posterior = model.encode(ref)
        z = posterior.mode()
        estimate = model.decode(z)[..., : ref.shape[-1]]
        l1.append(float(mel_l1(estimate[0], ref[0])))
        audio = vocoder(estimate, length=wave.numel())[0].cpu()
        stft.append(float(multi_resolution_stft(audio, wave)))
        means.append(z[0].float().cpu())
        reg = posterior.regulariser(None, 0)
        if "codes" in reg.outputs:  # discrete: count code use
            c = model.bottleneck.count(reg.outputs["codes"], None).cpu()
            counts = c if counts is None else counts + c
        elif "kl" in reg.logs:
            kl.append(float(reg.logs["kl"]))
    latent_rate = ckpt.mel.frame_rate / model.hop_factor
    row: dict = {"latent_dim": model.config.latent_dim, "active_units": active_units(torch.cat(means, -1)[None]),
                 "mel_l1": statistics.mean(l1), "mrstft": statistics.mean(stft), "rate_bps": None,
                 "perplexity": None, "codebook_size": None}
    if counts is not None:
        ppl = perplexity(counts)
        row.update(perplexity=float(ppl.mean()), codebook_size=int(counts.shape[-1]),
                   rate_bps=float(torch.log2(ppl).sum()) * latent_rate)
    elif kl:
        row["rate_bps"] = statistics.mean(kl) / math.log(2) * latent_rate
    frames = round(seconds * ckpt.mel.frame_rate)
    samples = []
    for i in range(len(real)):
        logmel = model.sample(1, frames, generator=torch.Generator(device).manual_seed(seed + i))
        samples.append(vocoder(logmel, length=round(seconds * sr))[0].cpu().numpy())
    row["frechet"] = distance(samples)
    return row


def evaluate_variants(models: Sequence[tuple[str, Checkpoint]], held_out: Sequence[Entry],
                      train: Sequence[Entry] = (), count: int = 32, seconds: float = 4.0, seed: int = 0,
                      vocoder: str | None = None) -> VariantsReport:
    """Score each ``(name, checkpoint)`` on the same held-out clips; ``train`` entries give the Fréchet floor.
    The models must share one front end (their log-mels are compared with one another); ``vocoder`` is a
    ``--vocoder`` choice (default: the first model's)."""
    if not models:
        raise AudiovaeError("no models to compare")
    first = models[0][1]
    for name, ckpt in models[1:]:
        if ckpt.mel != first.mel:
            raise AudiovaeError(f"{name}: its front end differs from {models[0][0]}'s; compare models trained on the "
                                "same features")
    sr = first.mel.sample_rate
    real = clips(held_out, sr, seconds, count)
    if len(real) < 2:
        raise AudiovaeError(f"the held-out files hold {len(real)} clip(s) of {seconds:g} s; need at least 2")
    device = first.model.mel_mean.device
    mel = MelSpectrogram(first.mel).to(device)
    with torch.no_grad():  # once: scored by every model, and the crops timed by training_speed
        mels = [mel(w.to(device)[None])[0] for w in real]
    reference = np.concatenate([frame_features(w.numpy(), sr) for w in real])
    mu, sd = reference.mean(0), reference.std(0) + 1e-8  # each feature in the held-out clips' units

    def distance(waves: Sequence[np.ndarray]) -> float:
        features = np.concatenate([frame_features(w, sr) for w in waves])
        return frechet_distance((reference - mu) / sd, (features - mu) / sd)

    floor = distance([w.numpy() for w in clips(train, sr, seconds, len(real))]) if train else None
    synth = vocoder_for(first, vocoder)
    with torch.inference_mode():  # the vocoder alone on the true log-mel: the floor of every model's MR-STFT
        resynth = statistics.mean(float(multi_resolution_stft(synth(m[None], length=w.numel())[0].cpu(), w))
                                  for w, m in zip(real, mels, strict=True))
    rows = []
    for name, ckpt in models:
        rows.append({"name": name, "type": type(ckpt.model).model_type, "steps": ckpt.info.get("step"),
                     "params_m": sum(p.numel() for p in ckpt.model.param_groups()["model"]) / 1e6,
                     **_score(ckpt, real, mels, distance, synth, seconds, seed)})
    for row, (_, ckpt) in zip(rows, models, strict=True):  # after the scoring, one after another
        row["train_speed"] = training_speed(ckpt.model, mels, first.mel.hop_length / sr)
    settings = {"clips": len(real), "seconds": seconds, "seed": seed, "floor": floor, "resynth_mrstft": resynth,
                "vocoder": getattr(synth, "vocoder_type", type(synth).__name__),
                "sample_rate": sr, "latent_rate": first.mel.frame_rate / first.model.hop_factor}
    return VariantsReport(rows, settings)


def write_comparison(reports: dict[str, VariantsReport], out: str | Path) -> list[Path]:
    """``out``.md, .csv and .png: the reports of several domains (``{"speech": ..., "music": ...}``) as one table
    each in Markdown (with their settings), one CSV with a ``domain`` column, and one bar chart per column."""
    from ..fileio import write_atomic
    from ..plots import comparison_png

    out = Path(out)
    md = []
    for domain, report in reports.items():
        md += [f"### {domain}", "", report.caption() + ".", "", report.markdown(), ""]
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=["domain", *CSV_KEYS], extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({"domain": domain, **row} for domain, r in reports.items() for row in r.rows)
    png = comparison_png({d: r.rows for d, r in reports.items()}, {k: h for k, (h, _) in COLUMNS.items()
                                                                  if k not in ("params_m", "perplexity")})
    return [write_atomic(out.with_suffix(".md"), "\n".join(md)),
            write_atomic(out.with_suffix(".csv"), table.getvalue()), write_atomic(out.with_suffix(".png"), png)]


def load_report(path: str | Path) -> VariantsReport:
    """A report written by ``audiovae evaluate variants --json``."""
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return VariantsReport(data["rows"], data["settings"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AudiovaeError(f"{path}: not a report of `audiovae evaluate variants --json` ({e})") from None
