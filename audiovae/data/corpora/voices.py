"""A voice-conversion corpus of real speakers: a manifest over a recorded multi-speaker dataset, split for conversion.

Conversion needs two kinds of held-out data, which a dataset's own speaker split does not give:

- **table speakers** (the model learns their voices): a few utterances of each stay out of training (``test``), so
  conversion into and out of a known voice is scored on speech the model never heard;
- **unheard speakers** (whole speakers left out): the one-shot voices, made from a few seconds of reference.

The unheard speakers are drawn from the dataset's own test speakers where it has them (speechocean762's ``test``),
balanced by sex, by a seeded hash of their ids: the same on every machine. No audio is copied: the manifest names the
source files by absolute path.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

from ...errors import ConfigError
from ..layouts import discover, ranked_splits
from ..manifest import CorpusSummary, Entry, write_manifest


@dataclass
class VoiceCorpusConfig:
    """``source``: a dataset of a known layout with speaker labels (speechocean762 as released, a folder per
    speaker, VCTK, LibriTTS, a manifest). ``unheard_per_sex``: whole speakers left out per sex (``f``, ``m``; where
    the dataset gives no sex, twice this many of any). ``test_per_speaker``/``valid_per_speaker``: utterances of each
    table speaker held out."""

    source: str
    unheard_per_sex: int = 10
    test_per_speaker: int = 3
    valid_per_speaker: int = 1
    min_train: int = 4  # a table speaker needs at least this many training utterances
    seed: int = 0


def _unheard(by_speaker: dict[str, list[Entry]], cfg: VoiceCorpusConfig) -> set[str]:
    """The whole speakers left out: from the dataset's test speakers when it has any, balanced by sex."""
    pool = [s for s, es in by_speaker.items() if all(e.split == "test" for e in es)] or sorted(by_speaker)
    by_sex: dict[str, list[str]] = defaultdict(list)
    for s in pool:
        by_sex[by_speaker[s][0].sex or "?"].append(s)
    chosen: set[str] = set()
    for sex, names in sorted(by_sex.items()):
        n = cfg.unheard_per_sex * (2 if sex == "?" else 1)
        ranks = ranked_splits(sorted(names), min(n, len(names)), 0, cfg.seed)
        chosen |= {s for s, split in ranks.items() if split == "test"}
    return chosen


def voice_entries(cfg: VoiceCorpusConfig) -> list[Entry]:
    """The corpus's entries: table speakers' utterances split train/valid/test, unheard speakers' all in test."""
    entries = [e for e in discover(cfg.source) if e.speaker]
    if not entries:
        raise ConfigError(f"{cfg.source}: no recordings with speaker labels (a voice corpus needs speakers)")
    by_speaker: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        by_speaker[e.speaker].append(e)
    unheard = _unheard(by_speaker, cfg)
    out = []
    for speaker, es in sorted(by_speaker.items()):
        es = sorted(es, key=lambda e: e.path)
        if speaker in unheard:
            out += [replace(e, split="test") for e in es]
            continue
        if len(es) < cfg.test_per_speaker + cfg.valid_per_speaker + cfg.min_train:
            continue  # too few recordings to learn the voice and score it
        keys = {e.path: f"{speaker}/{Path(e.path).name}" for e in es}  # not the path: the same wherever it lies
        split = ranked_splits(sorted(keys.values()), cfg.test_per_speaker, cfg.valid_per_speaker, cfg.seed)
        out += [replace(e, split=split[keys[e.path]]) for e in es]
    if len({e.speaker for e in out if e.split == "train"}) < 2:
        raise ConfigError(f"{cfg.source}: fewer than two speakers with enough recordings for a voice table (each "
                          f"needs {cfg.test_per_speaker + cfg.valid_per_speaker + cfg.min_train})")
    return out


def build_voice_corpus(out: str | Path, cfg: VoiceCorpusConfig) -> CorpusSummary:
    """Write ``OUT/manifest.jsonl`` (absolute paths into ``cfg.source``) and ``OUT/summary.json``."""
    start = time.perf_counter()
    out = Path(out)
    entries = [replace(e, path=str(Path(e.path).resolve())) for e in voice_entries(cfg)]
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out / "manifest.jsonl", entries)
    summary = CorpusSummary.from_entries("voices", entries, build_seconds=time.perf_counter() - start)
    summary.write(out / "summary.json")
    return summary


def unheard_speakers(entries: list[Entry]) -> list[str]:
    """Speakers with no training utterance: the corpus's one-shot voices."""
    trained = {e.speaker for e in entries if e.split != "test"}
    return sorted({e.speaker for e in entries if e.speaker and e.speaker not in trained})
