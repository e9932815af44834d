"""Anomaly detection as DCASE Task 2 reports it: AUC and partial AUC (false-positive rate up to p = 0.1) of clip
scores, normal against anomalous, per machine type; here also per unit, per anomaly type (that type's clips against
every normal clip of the machine; types absent from the data's valid split are marked test-only) and per SNR.
Beside them, the decision at each detector's stored threshold (precision, recall, F1) and the scoring speed.

The partial AUC is scikit-learn's ``roc_auc_score(max_fpr=0.1)``, which is McClish-standardised (0.5 is chance, 1
perfect), the form the DCASE baseline code reports.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm.auto import tqdm

from ..data.manifest import Entry
from ..errors import AudiovaeError, ConfigError
from ..metrics import MAX_FPR, auc_pair
from ..pipelines.anomaly import Detector
from ..progress import bar_off

__all__ = ["AnomalyReport", "evaluate_anomaly", "auc_pair"]

@dataclass
class Scored:
    """One test clip's score by one system."""

    path: str
    machine: str
    unit: str
    label: str
    anomaly: str
    snr: float | None
    score: float
    anomalous: bool | None


@dataclass
class AnomalyReport:
    """``rows``: one per (machine, group) with each system's AUC and pAUC; ``decisions``: precision/recall/F1 per
    system and machine at the stored thresholds; ``clips``: every score (for ROC curves)."""

    systems: list[str]
    rows: list[dict]
    decisions: list[dict]
    clips: dict[str, list[Scored]]
    seconds: float
    realtime: dict[str, float]
    device: str
    notes: list[str] = field(default_factory=list)
    split: str = "test"

    def table(self) -> str:
        head = f"{'machine':10s} {'group':22s} {'normal':>6s} {'anom.':>5s}" + "".join(
            f" {s[:12] + ' AUC':>16s} {'pAUC':>6s}" for s in self.systems)
        n_clips = len(next(iter(self.clips.values()), []))
        lines = [f"AUC and pAUC (FPR <= {MAX_FPR}) on {n_clips} {self.split} clips ({self.seconds / 60:.1f} min); "
                 "scored at " + ", ".join(f"{s} {self.realtime[s]:.0f}x" for s in self.systems)
                 + f" realtime on {self.device}",
                 head]
        for r in self.rows:
            cells = "".join(f" {r[s]['auc']:16.3f} {r[s]['pauc']:6.3f}" for s in self.systems)
            lines.append(f"{r['machine']:10s} {r['group']:22s} {r['normal']:6d} {r['anomalous']:5d}{cells}")
        lines += ["", f"{'machine':10s} {'system':16s} {'threshold':>10s} {'precision':>9s} {'recall':>7s} "
                  f"{'F1':>6s}"]
        for d in self.decisions:
            lines.append(f"{d['machine']:10s} {d['system']:16s} {d['threshold']:10.4g} {d['precision']:9.3f} "
                         f"{d['recall']:7.3f} {d['f1']:6.3f}")
        return "\n".join(lines + self.notes)

    def to_dict(self) -> dict:
        return asdict(self)

    def roc_png(self) -> bytes:
        """ROC curves, one panel per machine type, one curve per system (pAUC's FPR limit dotted)."""
        from sklearn.metrics import roc_curve

        from ..plots import _png, _pyplot

        machines = sorted({c.machine for clips in self.clips.values() for c in clips})
        plt = _pyplot()
        fig, axes = plt.subplots(1, len(machines), figsize=(3.2 * len(machines), 3.4), dpi=100, squeeze=False)
        for ax, machine in zip(axes[0], machines, strict=True):
            for system in self.systems:
                clips = [c for c in self.clips[system] if c.machine == machine]
                y = [int(c.label == "anomaly") for c in clips]
                if len(set(y)) < 2:
                    continue
                fpr, tpr, _ = roc_curve(y, [c.score for c in clips])
                auc = next(r[system]["auc"] for r in self.rows if r["machine"] == machine and r["group"] == "all")
                ax.plot(fpr, tpr, label=f"{system} ({auc:.3f})", linewidth=1.3)
            ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
            ax.axvline(MAX_FPR, color="grey", linewidth=0.8, linestyle=":")
            ax.set(title=machine, xlabel="false-positive rate", xlim=(0, 1), ylim=(0, 1.01))
            ax.legend(fontsize=7, loc="lower right")
            ax.grid(alpha=0.3)
        axes[0, 0].set_ylabel("true-positive rate")
        fig.tight_layout()
        return _png(fig)


def _groups(clips: list[Scored], test_only: set[str]) -> list[tuple[str, str, list[Scored]]]:
    """(machine, group name, clips) for every row of the table: all, each unit, each anomaly type, each SNR."""
    out = []
    for machine in sorted({c.machine for c in clips}):
        mine = [c for c in clips if c.machine == machine]
        normal = [c for c in mine if c.label == "normal"]
        out.append((machine, "all", mine))
        for unit in sorted({c.unit for c in mine if c.unit}):
            out.append((machine, unit, [c for c in mine if c.unit == unit]))
        for kind in sorted({c.anomaly for c in mine if c.anomaly}):
            name = f"{kind} (test-only)" if kind in test_only else kind
            out.append((machine, name, normal + [c for c in mine if c.anomaly == kind]))
        snrs = sorted({c.snr for c in mine if c.snr is not None})
        if len(snrs) > 1:
            out += [(machine, f"{snr:g} dB", [c for c in mine if c.snr == snr]) for snr in snrs]
    return out


def _decision(clips: list[Scored]) -> dict:
    flagged = [c for c in clips if c.anomalous]
    positives = [c for c in clips if c.label == "anomaly"]
    hits = sum(c.label == "anomaly" for c in flagged)
    precision, recall = hits / max(len(flagged), 1), hits / max(len(positives), 1)
    return {"precision": precision, "recall": recall,
            "f1": 2 * precision * recall / max(precision + recall, 1e-12)}


def evaluate_anomaly(systems: dict[str, list[Detector]], entries: Sequence[Entry], split: str = "test",
                     progress: bool = True) -> AnomalyReport:
    """Score the ``split`` clips of ``entries`` with every system (a name -> its detectors, one per machine type, or
    one for any type) and tabulate. A clip whose machine type no detector of a system covers is left out, with a
    note; a clip that cannot be read is left out too, with a note."""
    test = [e for e in entries if e.split == split and e.label in ("normal", "anomaly")]
    if not test:
        raise AudiovaeError(f"no labelled (normal/anomalous) clips in the {split} split")
    seen = {e.anomaly for e in entries if e.split == "valid" and e.anomaly}
    test_only = {e.anomaly for e in test if e.anomaly} - seen if seen else set()
    clips: dict[str, list[Scored]] = {}
    busy: dict[str, float] = {}
    notes: list[str] = []
    audio_seconds = 0.0
    for name, detectors in systems.items():
        by_machine: dict[tuple[str, str], Detector] = {}
        for d in detectors:
            key = (d.settings.machine, d.settings.unit)
            if key in by_machine:
                raise ConfigError(f"system {name}: two detectors for machine type {key[0] or '(any)'}"
                                  + (f", unit {key[1]}" if key[1] else ""))
            by_machine[key] = d
        scored, spent, seconds, skipped = [], 0.0, 0.0, defaultdict(int)
        for e in tqdm(test, desc=f"scoring ({name})", unit="clip", disable=bar_off(progress)):
            detector = (by_machine.get((e.machine, e.unit)) or by_machine.get((e.machine, ""))
                        or by_machine.get(("", "")))
            if detector is None:
                skipped[e.machine or "(none)"] += 1
                continue
            t0 = time.perf_counter()
            try:
                result = detector.score_file(e.path)
            except AudiovaeError as err:
                notes.append(f"{name}: skipped {err}")
                continue
            spent += time.perf_counter() - t0
            seconds += result.seconds
            scored.append(Scored(e.path, e.machine, e.unit, e.label, e.anomaly, e.snr, result.score,
                                 result.anomalous))
        if skipped:
            notes.append(f"{name}: no detector for " + ", ".join(f"{m} ({n} clips)" for m, n in skipped.items()))
        clips[name], busy[name] = scored, seconds / max(spent, 1e-9)
        audio_seconds = max(audio_seconds, seconds)
    names = list(systems)
    keys = {(c.machine, c.path) for c in clips[names[0]]}
    for name in names[1:]:
        keys &= {(c.machine, c.path) for c in clips[name]}
    if not keys:
        raise AudiovaeError(f"no {split} clip could be scored by every system" + "".join(f"; {n}" for n in notes[:3]))
    common = {name: [c for c in clips[name] if (c.machine, c.path) in keys] for name in names}
    rows = []
    for machine, group, members in _groups(common[names[0]], test_only):
        paths = {c.path for c in members}
        row: dict = {"machine": machine, "group": group, "normal": sum(c.label == "normal" for c in members),
                     "anomalous": sum(c.label == "anomaly" for c in members)}
        for name in names:
            mine = [c for c in common[name] if c.path in paths]
            auc, pauc = auc_pair([int(c.label == "anomaly") for c in mine], [c.score for c in mine])
            row[name] = {"auc": auc, "pauc": pauc}
        rows.append(row)
    units = {c.unit for c in common[names[0]] if c.unit}
    for machine in sorted({r["machine"] for r in rows}):  # DCASE 2020's figure: the mean over the machines (units)
        mine = [r for r in rows if r["machine"] == machine and r["group"] in units]
        if len(mine) > 1:
            rows.insert(rows.index(next(r for r in rows if r["machine"] == machine and r["group"] == "all")) + 1,
                        {"machine": machine, "group": "mean of units", "normal": sum(r["normal"] for r in mine),
                         "anomalous": sum(r["anomalous"] for r in mine),
                         **{n: {k: float(np.nanmean([r[n][k] for r in mine])) for k in ("auc", "pauc")}
                            for n in names}})
    alls = [r for r in rows if r["group"] == "all"]
    if len(alls) > 1:  # DCASE's summary: the mean over machine types
        rows.append({"machine": "mean", "group": "all", "normal": sum(r["normal"] for r in alls),
                     "anomalous": sum(r["anomalous"] for r in alls),
                     **{n: {k: float(np.mean([r[n][k] for r in alls])) for k in ("auc", "pauc")} for n in names}})
    decisions = []
    for name in names:
        for machine in sorted({c.machine for c in common[name]}):
            mine = [c for c in common[name] if c.machine == machine]
            thresholds = {d.settings.threshold for d in systems[name] if d.settings.machine in (machine, "")}
            if not thresholds or None in thresholds:
                continue
            # one detector per unit: each clip was decided at its own unit's threshold (shown as nan here)
            decisions.append({"system": name, "machine": machine,
                              "threshold": thresholds.pop() if len(thresholds) == 1 else float("nan"),
                              **_decision(mine)})
    device = ", ".join(sorted({str(d.ckpt.model.mel_mean.device) for ds in systems.values() for d in ds}))
    return AnomalyReport(names, rows, decisions, common, audio_seconds, busy, device, notes, split)
