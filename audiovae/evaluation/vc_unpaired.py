"""Voice conversion scored on real speakers who read different texts (``audiovae corpus voices``).

Recorded multi-speaker corpora are rarely parallel, so nothing can be aligned against a target's reading: no MCD.
What is scored is what a listener would judge, on speech the model never heard:

- **in-table** (:func:`evaluate_vc_unpaired`): held-out utterances of table speakers converted into other table
  speakers. Resemblyzer similarity to the target's and the source's references, speaker identification among *all*
  table voices, the pitch register against the target's, DNSMOS of the output beside the source recordings' own;
- **one-shot** (:func:`evaluate_one_shot_unpaired`): table speakers converted into whole speakers left out of
  training, each made from ``reference_seconds`` of its recordings, beside the nearest table voice (what a model
  without one-shot conversion could do at best).

The judge's reference of a voice is the normalised mean resemblyzer embedding of up to 8 of its recordings that are
never converted or used to make a voice: a table speaker's training recordings (the judge, not the model, uses them;
they share no utterance with the scored ones), an unheard speaker's recordings other than its voice's references.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..checkpoint import Checkpoint
from ..data.corpora.voices import unheard_speakers
from ..data.manifest import Entry
from ..errors import AudiovaeError
from ..pipelines.convert import convert, table_voice
from ..progress import bar_off
from .vc import OneShotReport, Scores, _fit_voices, _Judge, _Scorer, _scores, _scores_table, _spread

JUDGE_FILES = 8


@dataclass
class UnpairedReport:
    """In-table conversion on held-out utterances of ``voices`` (every ordered pair), speaker ID among
    ``table_size`` voices (the whole table); ``floor``: the source recordings unconverted (their DNSMOS is the real
    recordings' own); ``ceiling``: the target's own held-out recordings through the vocoder."""

    converted: Scores
    ceiling: Scores
    floor: Scores
    voices: list[str]
    table_size: int
    sentences: int
    pairs: int
    pitch: str | float = "model"

    def table(self) -> str:
        title = (f"{self.pairs} ordered pairs of {len(self.voices)} table voices x {self.sentences} held-out "
                 f"utterances (no parallel text: no MCD); speaker ID among {self.table_size} voices; "
                 f"--pitch {self.pitch}")
        return _scores_table(title, [("converted", self.converted), ("ceiling", self.ceiling),
                                     ("floor", self.floor)], mcd=False)

    def to_dict(self) -> dict:
        return asdict(self)


def corpus_names(ckpt: Checkpoint) -> dict[str, str]:
    """The model's speaker name -> the speaker's name in its training corpus (they differ once lettered)."""
    trained = ckpt.info.get("trained_speakers") or list(ckpt.speakers)
    return dict(zip(ckpt.speakers, trained, strict=True))


def is_parallel(entries: Sequence[Entry]) -> bool:
    """Whether some test text is read by every test speaker (the parallel evaluations apply)."""
    test = [e for e in entries if e.split == "test" and e.speaker]
    readers: dict[str, set[str]] = defaultdict(set)
    for e in test:
        if e.text:
            readers[e.text].add(e.speaker)
    speakers = {e.speaker for e in test}
    return len(speakers) > 1 and any(r == speakers for r in readers.values())


def _files(entries: Sequence[Entry]) -> dict[str, dict[str, list[str]]]:
    """Speaker -> split -> paths (sorted)."""
    out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for e in sorted(entries, key=lambda e: e.path):
        if e.speaker:
            out[e.speaker][e.split].append(e.path)
    return out


class _Voices:
    """Each voice's judge reference (embedding) and register (mean log-F0), from recordings loaded once."""

    def __init__(self, judge: _Judge) -> None:
        self.judge, self.refs, self.f0 = judge, {}, {}

    def add(self, name: str, paths: Sequence[str]) -> None:
        waves = [self.judge.load(p) for p in paths[:JUDGE_FILES]]
        ref = np.mean([self.judge.embed(w) for w in waves], axis=0)
        self.refs[name] = ref / np.linalg.norm(ref)
        with np.errstate(all="ignore"):
            self.f0[name] = float(np.nanmean([self.judge.log_f0(w) for w in waves]))


def _table(ckpt: Checkpoint, files: dict[str, dict[str, list[str]]], sentences: int) -> list[str]:
    """The model's speakers with enough held-out and training recordings in the corpus to be scored."""
    names = corpus_names(ckpt)
    table = [s for s in ckpt.speakers if len(files.get(names[s], {}).get("test", [])) >= sentences
             and files[names[s]].get("train")]
    if len(table) < 2:
        raise AudiovaeError(f"{len(table)} of the model's speakers have {sentences} held-out and some training "
                            "recordings in this corpus; evaluating conversion needs two (is it the model's corpus, "
                            "e.g. one built by `audiovae corpus voices`?)")
    return table


@dataclass
class _Setup:
    """What both evaluations start from: corpus names, files by speaker and split, the scorable table, the voices
    chosen from it, the judge and every table voice's reference."""

    names: dict[str, str]
    files: dict[str, dict[str, list[str]]]
    table: list[str]
    chosen: list[str]
    judge: _Judge
    refs: _Voices


def _setup(ckpt: Checkpoint, entries: Sequence[Entry], sentences: int, n: int, vocoder: str | None,
           progress: bool) -> _Setup:
    names, files = corpus_names(ckpt), _files(entries)
    table = _table(ckpt, files, sentences)
    judge = _Judge(ckpt, vocoder)
    refs = _Voices(judge)
    for s in tqdm(table, desc="judge references", unit="voice", disable=bar_off(progress)):
        refs.add(s, files[names[s]]["train"])
    return _Setup(names, files, table, _spread(table, n), judge, refs)


def evaluate_vc_unpaired(ckpt: Checkpoint, entries: Sequence[Entry], voices: int = 12, sentences: int = 2,
                         progress: bool = True, pitch: str | float = "model", vocoder: str | None = None,
                         naturalness: bool = True) -> UnpairedReport:
    """Convert ``sentences`` held-out utterances of each of ``voices`` table speakers (evenly spaced in the table's
    order) into every other; score as the module says. ``entries``: the whole corpus (train and test splits)."""
    setup = _setup(ckpt, entries, sentences, voices, vocoder, progress)
    names, files, table, chosen, judge, refs = (setup.names, setup.files, setup.table, setup.chosen, setup.judge,
                                                setup.refs)
    score = _Scorer(judge, refs.refs, naturalness)
    targets = {s: table_voice(ckpt, s) for s in chosen}
    rows: dict[str, list[dict]] = defaultdict(list)
    pairs = list(itertools.permutations(chosen, 2))
    for src in tqdm(chosen, desc="evaluate vc", unit="voice", disable=bar_off(progress)):
        held_out = files[names[src]]["test"]
        for path in held_out[:sentences]:
            wave = judge.load(path)
            for tgt in chosen:
                if tgt == src:
                    continue
                out, _ = convert(wave, ckpt, targets[tgt], src, judge.vocoder, pitch)
                rows["converted"].append(score(out, None, refs.f0[tgt], src, tgt))
                rows["floor"].append(score(wave, None, refs.f0[tgt], src, tgt, key=path))
        if len(held_out) > sentences:  # the voice itself through the vocoder, on an utterance not converted
            resynth = judge.resynth(judge.load(held_out[sentences]))
            rows["ceiling"] += score.for_sources(resynth, None, refs.f0[src], [s for s in chosen if s != src], src)
    if not rows["ceiling"]:
        raise AudiovaeError(f"no table voice has more than {sentences} held-out recordings for the ceiling")
    return UnpairedReport(_scores(rows["converted"]), _scores(rows["ceiling"]), _scores(rows["floor"]), chosen,
                          len(table), sentences, len(pairs), pitch)


def _references(judge: _Judge, paths: list[str], seconds: float) -> tuple[list[torch.Tensor], int]:
    """The first recordings of ``paths`` that together last ``seconds`` (at least one); how many were taken."""
    waves, total = [], 0.0
    for path in paths:
        if total >= seconds:
            break
        waves.append(judge.load(path))
        total += waves[-1].numel() / judge.ckpt.mel.sample_rate
    return waves, len(waves)


def evaluate_one_shot_unpaired(ckpt: Checkpoint, entries: Sequence[Entry], reference_seconds: float = 10.0,
                               sources: int = 6, sentences: int = 2, methods: Sequence[str] = ("adapt",),
                               progress: bool = True, pitch: str | float = "model", vocoder: str | None = None,
                               naturalness: bool = True) -> OneShotReport:
    """Convert ``sentences`` held-out utterances of ``sources`` table voices into each unheard speaker of
    ``entries`` (speakers with recordings only in test, none in the model's table), each made by each of ``methods``
    from its first recordings lasting ``reference_seconds``; beside the nearest table voice (of the whole table),
    the floor and the ceiling (two further recordings of the target through the vocoder)."""
    known = set(corpus_names(ckpt).values())
    targets = [s for s in unheard_speakers(list(entries)) if s not in known]
    if not targets:
        raise AudiovaeError("evaluate vc --one-shot: no unheard speakers in the corpus (speakers with test "
                            "recordings only; `audiovae corpus voices --unheard-per-sex N` leaves them out)")
    setup = _setup(ckpt, entries, sentences, sources, vocoder, progress)
    names, files, table, chosen, judge, refs = (setup.names, setup.files, setup.table, setup.chosen, setup.judge,
                                                setup.refs)
    given, ceiling_files = {}, {}
    for t in targets:
        waves, n = _references(judge, files[t]["test"], reference_seconds)
        rest = files[t]["test"][n:]
        if len(rest) < 3:
            raise AudiovaeError(f"speaker {t}: {len(files[t]['test'])} recordings; one-shot evaluation needs "
                                f"{reference_seconds:g} s for the voice and 3 more (ceiling and the judge)")
        given[t], ceiling_files[t] = waves, rest[:2]
        refs.add(t, rest[2:])
    score = _Scorer(judge, refs.refs, naturalness)
    fitted = _fit_voices(ckpt, judge, score, given, methods, table)
    voice_of = {s: table_voice(ckpt, s) for s in {*chosen, *fitted.nearest.values()}}
    rows: dict[str, list[dict]] = defaultdict(list)
    for tgt in tqdm(targets, desc="evaluate vc --one-shot", unit="voice", disable=bar_off(progress)):
        for src in chosen:
            for path in files[names[src]]["test"][:sentences]:
                wave = judge.load(path)
                for m in methods:
                    out, _ = convert(wave, ckpt, fitted.voices[m, tgt], src, judge.vocoder, pitch)
                    rows[m].append(score(out, None, refs.f0[tgt], src, tgt))
                out, _ = convert(wave, ckpt, voice_of[fitted.nearest[tgt]], src, judge.vocoder, pitch)
                rows["nearest"].append(score(out, None, refs.f0[tgt], src, tgt))
                rows["floor"].append(score(wave, None, refs.f0[tgt], src, tgt, key=path))
        for path in ceiling_files[tgt]:
            rows["ceiling"] += score.for_sources(judge.resynth(judge.load(path)), None, refs.f0[tgt], chosen, tgt)
    per_target = {t: {name: _scores([r for r in rows[name] if r["target"] == t]).sim_target
                      for name in (*methods, "nearest")} for t in targets}
    return OneShotReport({m: _scores(rows[m]) for m in methods}, _scores(rows["nearest"]), None,
                         _scores(rows["ceiling"]), _scores(rows["floor"]), targets, chosen, fitted.nearest,
                         sentences, fitted.reference_seconds, fitted.seconds, per_target, 0, pitch)
