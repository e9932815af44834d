"""The corpus manifest: one JSON object per line, one line per audio file, paths relative to the manifest.

Every corpus builder writes one (``manifest.jsonl``) and every dataset can read one, so a corpus built here and a
folder a user brings look the same to training code.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..errors import AudiovaeError
from ..fileio import atomic_path, write_atomic

SPLITS = ("train", "valid", "test")


class ManifestError(AudiovaeError):
    """A manifest is missing, malformed, or names a bad value (the message gives file and line)."""


@dataclass
class Entry:
    """One audio file of a corpus. Fields a corpus has no use for stay empty.

    Attributes:
        path: audio file, relative to the manifest's folder (or absolute).
        duration: seconds.
        split: ``train``, ``valid`` or ``test``.
        speaker: speaker name (speech corpora).
        text: transcript (speech corpora).
        clean: path of the clean reference of a noisy mixture (denoising corpora).
        noise: noise type of a mixture.
        snr: signal-to-noise ratio of a mixture in dB.
        instrument: instrument (music corpora).
        piece: piece or source identifier (music corpora); splits never share one.
        machine: machine type (machine-sound corpora: ``fan``, ``pump``, ...).
        unit: the individual machine of that type (``id_00``).
        label: ``normal`` or ``anomaly`` (machine-sound corpora; anomalous files never train).
        anomaly: the kind of anomaly of an anomalous file (``click``, ``drift``, ...), where it is known.
        sex: the speaker's sex as the corpus states it (``f``/``m``), where it does.
    """

    path: str
    duration: float
    split: str = "train"
    speaker: str = ""
    text: str = ""
    clean: str = ""
    noise: str = ""
    snr: float | None = None
    instrument: str = ""
    piece: str = ""
    machine: str = ""
    unit: str = ""
    label: str = ""
    anomaly: str = ""
    sex: str = ""

    def to_json(self) -> str:
        d = {k: v for k, v in dataclasses.asdict(self).items() if v not in ("", None)}
        return json.dumps(d, ensure_ascii=False, sort_keys=True)


_FIELDS = {f.name for f in fields(Entry)}


def write_manifest(path: str | os.PathLike[str], entries: list[Entry]) -> Path:
    """Write entries sorted by path (so reruns give identical bytes), atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for e in sorted(entries, key=lambda e: e.path):
                f.write(e.to_json() + "\n")
    return Path(path)


def read_manifest(path: str | os.PathLike[str]) -> list[Entry]:
    """Read a JSONL manifest; errors name the file and line."""
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"{p}: no such manifest")
    entries = []
    with open(p, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{p}:{i}: not valid JSON ({e.msg})") from None
            unknown = set(d) - _FIELDS
            if unknown or "path" not in d or "duration" not in d:
                why = f"unknown field(s) {sorted(unknown)}" if unknown else "needs 'path' and 'duration'"
                raise ManifestError(f"{p}:{i}: {why}")
            e = Entry(**d)
            if e.split not in SPLITS:
                raise ManifestError(f"{p}:{i}: split {e.split!r} is not one of {', '.join(SPLITS)}")
            entries.append(e)
    return entries


def resolve(manifest: str | os.PathLike[str], entry_path: str) -> Path:
    """Absolute path of an entry's audio (entry paths are relative to the manifest's folder)."""
    p = Path(entry_path)
    return p if p.is_absolute() else Path(manifest).resolve().parent / p


@dataclass
class CorpusSummary:
    """What a builder reports: counts, hours, per-split and per-speaker numbers, skipped files, build time."""

    name: str
    files: int = 0
    seconds: float = 0.0
    splits: dict[str, int] = field(default_factory=dict)
    speakers: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)  # noise types, instruments...: counts per group
    skipped: list[str] = field(default_factory=list)  # "path: reason"
    build_seconds: float = 0.0

    @classmethod
    def from_entries(cls, name: str, entries: list[Entry], group: str = "", skipped: list[str] | None = None,
                     build_seconds: float = 0.0) -> CorpusSummary:
        return cls(name=name, files=len(entries), seconds=round(sum(e.duration for e in entries), 3),
                   splits=dict(sorted(Counter(e.split for e in entries).items())),
                   speakers=dict(sorted(Counter(e.speaker for e in entries if e.speaker).items())),
                   groups=dict(sorted(Counter(getattr(e, group) for e in entries).items())) if group else {},
                   skipped=list(skipped or []), build_seconds=round(build_seconds, 1))

    def write(self, path: str | os.PathLike[str]) -> Path:
        write_atomic(path, json.dumps(dataclasses.asdict(self), indent=2) + "\n")
        return Path(path)

    def __str__(self) -> str:
        lines = [f"{self.name}: {self.files} files, {self.seconds / 3600:.2f} h"
                 + (f", built in {self.build_seconds:.0f} s" if self.build_seconds else "")]
        lines.append("  splits    " + ", ".join(f"{k} {v}" for k, v in self.splits.items()))
        if self.speakers:
            lines.append("  speakers  " + ", ".join(f"{k} {v}" for k, v in self.speakers.items()))
        if self.groups:
            lines.append("  groups    " + ", ".join(f"{k} {v}" for k, v in self.groups.items()))
        if self.skipped:
            lines.append(f"  skipped   {len(self.skipped)} file(s):")
            lines += [f"    {s}" for s in self.skipped]
        return "\n".join(lines)
