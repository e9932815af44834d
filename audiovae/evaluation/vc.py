"""Voice-conversion evaluation on parallel held-out sentences, for every ordered pair of the model's speakers.

For each sentence read by all speakers and each pair (source, target): convert the source's reading to the target
voice and compare it with the target's real reading of the same sentence — mel-cepstral distortion after DTW
alignment, and speaker similarity with resemblyzer (cosine to each speaker's reference embedding, made from *other*
held-out sentences so content does not leak in); speaker identification is the nearest reference; the pitch
register error is the distance in semitones between the mean log-F0 of the converted and of the real target
utterance. Two references
are measured the same way: the **ceiling**, the target's real reading passed through the same vocoder (what perfect
conversion would score), and the **floor**, the source's reading unconverted.

:func:`evaluate_one_shot` scores conversion to voices the model never heard (left out of training with
``data.exclude_speakers``): each is given by a few reference sentences, fitted into a voice (:mod:`..pipelines.voices`),
and the table's voices are converted to it. Beside it, on the same pairs: the **nearest known speaker** (convert to
the table voice whose resemblyzer reference is closest to the references': what a model without one-shot conversion
could do at best), the vocoder ceiling and the floor; and the **in-table** conversion between voices the model knows,
the ceiling for one-shot conversion.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import audio
from ..checkpoint import Checkpoint
from ..data.manifest import Entry
from ..errors import AudiovaeError
from ..features import MelSpectrogram
from ..metrics import mel_cepstral_distortion
from ..pipelines.convert import Voice, convert, table_voice
from ..pipelines.vocoder_choice import vocoder_for
from ..pipelines.voices import reference_seconds, reference_voice
from ..pitch import register, track_f0
from ..progress import bar_off


@dataclass
class Scores:
    """Means over all ordered pairs and sentences (``closer_to_target``: share of ordered pairs whose mean
    similarity to the target's reference beats the source's; ``f0_off``: share of ordered pairs whose mean pitch
    register error exceeds 15 %, i.e. 2.42 semitones)."""

    mcd_db: float | None  # None where nothing is parallel (real recordings)
    f0_error_st: float
    sim_target: float
    sim_source: float
    closer_to_target: float
    speaker_id_accuracy: float
    f0_off: float = 0.0
    dnsmos_ovrl: float | None = None  # DNSMOS (non-intrusive naturalness), where the evaluation measured it
    dnsmos_p808: float | None = None


def _scores_table(title: str, rows: list[tuple[str, Scores]], *, mcd: bool) -> str:
    """The plain-text table every report prints; ``mcd=False`` drops the MCD column (undefined without a reference);
    DNSMOS columns appear when any row has them."""
    mos = any(s.dnsmos_ovrl is not None for _, s in rows)
    head = (f"{'':10s} " + (f"{'MCD dB':>8s} " if mcd else "") + f"{'F0 err st':>9s} {'F0 off>15%':>10s} "
            f"{'sim→target':>11s} {'sim→source':>11s} {'closer→tgt':>11s} {'spk-ID acc':>11s}"
            + (f" {'DNSMOS OVRL':>11s} {'P.808':>6s}" if mos else ""))
    lines = [title, head]
    for name, s in rows:
        lines.append(f"{name:10s} " + (f"{s.mcd_db:8.2f} " if mcd else "") + f"{s.f0_error_st:9.2f} "
                     f"{100 * s.f0_off:9.0f}% {s.sim_target:11.3f} {s.sim_source:11.3f} "
                     f"{100 * s.closer_to_target:10.0f}% {100 * s.speaker_id_accuracy:10.0f}%"
                     + (f" {s.dnsmos_ovrl or float('nan'):11.2f} {s.dnsmos_p808 or float('nan'):6.2f}" if mos
                        else ""))
    return "\n".join(lines)


@dataclass
class VCReport:
    converted: Scores
    ceiling: Scores
    floor: Scores
    speakers: list[str]
    sentences: int
    pairs: int
    per_pair: dict[str, dict[str, float]] = field(default_factory=dict)
    pitch: str | float = "model"

    def table(self) -> str:
        title = f"{self.pairs} ordered speaker pairs x {self.sentences} held-out sentences, --pitch {self.pitch}"
        return _scores_table(title, [("converted", self.converted), ("ceiling", self.ceiling), ("floor", self.floor)],
                             mcd=True)

    def to_dict(self) -> dict:
        return asdict(self)


def _speaker_encoder():  # noqa: ANN202
    try:
        from resemblyzer import VoiceEncoder
    except ImportError:
        raise AudiovaeError("speaker similarity needs resemblyzer: pip install 'audiovae[eval]' && "
                            "pip install --no-deps resemblyzer") from None
    return VoiceEncoder(device="cpu", verbose=False)


F0_OFF_ST = 12 * math.log2(1.15)  # a register more than 15 % off
DNSMOS_RATE = 16000


class _Judge:
    """What every evaluation here measures with: audio loading at the model's rate, resemblyzer embeddings
    (unit-norm), speaker references (the normalised mean over several utterances), mean log-F0."""

    def __init__(self, ckpt: Checkpoint, vocoder: str | None = None) -> None:
        self.ckpt, self.encoder = ckpt, _speaker_encoder()
        self.mel = MelSpectrogram(ckpt.mel)
        self.vocoder = vocoder_for(ckpt, vocoder)  # `--vocoder`; the model's default when None
        self._mos: dict[str, dict[str, float]] = {}

    def load(self, path: str | Path) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return audio.load(path, self.ckpt.mel.sample_rate, min_samples=self.ckpt.mel.min_samples)[0]

    def embed(self, wave: torch.Tensor) -> np.ndarray:
        from resemblyzer import preprocess_wav

        e = self.encoder.embed_utterance(preprocess_wav(wave.numpy(), source_sr=self.ckpt.mel.sample_rate))
        return e / np.linalg.norm(e)

    def reference(self, paths: list[str] | list[Path]) -> np.ndarray:
        ref = np.mean([self.embed(self.load(p)) for p in paths], axis=0)
        return ref / np.linalg.norm(ref)

    @torch.inference_mode()
    def resynth(self, wave: torch.Tensor) -> torch.Tensor:
        """``wave`` through the vocoder (a ceiling: what perfect conversion would sound like)."""
        return self.vocoder(self.mel(wave)[None], length=wave.numel())[0]

    def naturalness(self, wave: torch.Tensor, key: str | None = None) -> dict[str, float]:
        """DNSMOS OVRL and P.808 of ``wave`` (Reddy et al. 2022; speechmos ships the ONNX models: works offline);
        ``key`` (a recording's path) remembers the result: an unconverted recording is scored once, not per pair."""
        if key is not None and key in self._mos:
            return self._mos[key]
        try:
            from speechmos import dnsmos
        except ImportError:
            raise AudiovaeError("DNSMOS needs speechmos and onnxruntime: pip install 'audiovae[eval]'") from None
        x = audio.resample(wave.float().numpy(), self.ckpt.mel.sample_rate, DNSMOS_RATE)
        mos = dnsmos.run(np.clip(x, -1.0, 1.0).astype(np.float32), DNSMOS_RATE)
        out = {"ovrl": float(mos["ovrl_mos"]), "p808": float(mos["p808_mos"])}
        if key is not None:
            self._mos[key] = out
        return out

    def log_f0(self, wave: torch.Tensor) -> float:
        f0, voiced = track_f0(wave, self.ckpt.mel)
        found = register([f0], [voiced])
        return found.mean if found is not None else float("nan")


def _scores(records: list[dict]) -> Scores:
    by_pair = defaultdict(list)
    for r in records:
        by_pair[(r["source"], r["target"])].append(r)
    closer = [np.mean([r["sim_target"] for r in rs]) > np.mean([r["sim_source"] for r in rs])
              for rs in by_pair.values()]
    with warnings.catch_warnings():  # an unvoiced output has no F0: NaN, left out of the means
        warnings.simplefilter("ignore", RuntimeWarning)
        pair_f0 = [np.nanmean([r["f0_error"] for r in rs]) for rs in by_pair.values()]
        f0_error = float(np.nanmean([r["f0_error"] for r in records]))
    mcds = [r["mcd"] for r in records if not math.isnan(r["mcd"])]
    mos = {k: [r[k] for r in records if r.get(k) is not None] for k in ("ovrl", "p808")}
    return Scores(float(np.mean(mcds)) if mcds else None, f0_error,
                  float(np.mean([r["sim_target"] for r in records])),
                  float(np.mean([r["sim_source"] for r in records])), float(np.mean(closer)),
                  float(np.mean([r["predicted"] == r["target"] for r in records])),
                  float(np.mean([e > F0_OFF_ST for e in pair_f0])),
                  *(float(np.mean(v)) if v else None for v in mos.values()))


def _parallel(entries: list[Entry], speakers: list[str]) -> dict[str, dict[str, str]]:
    """Text -> speaker -> path, for the sentences read by every one of ``speakers`` (sorted by text)."""
    by_text: dict[str, dict[str, str]] = defaultdict(dict)
    for e in entries:
        if e.speaker in speakers and e.text:
            by_text[e.text][e.speaker] = e.path
    parallel = {t: by_text[t] for t in sorted(by_text) if set(by_text[t]) == set(speakers)}
    if len(speakers) < 2 or not parallel:
        raise AudiovaeError("evaluate vc needs sentences read by every speaker of the model (a parallel test set, "
                            f"e.g. the test split of `audiovae corpus speech`); found {len(parallel)}")
    return parallel


class _Scorer:
    """One record per converted utterance: MCD against the target's real reading, the pitch register error,
    resemblyzer similarity to the target's and source's references and the nearest reference (speaker ID)."""

    def __init__(self, judge: _Judge, refs: dict[str, np.ndarray], naturalness: bool = False) -> None:
        self.judge, self.refs, self.naturalness = judge, refs, naturalness
        self.names, self.matrix = list(refs), np.stack(list(refs.values()))

    def __call__(self, wave: torch.Tensor, real_target: torch.Tensor | None, target_f0: float, source: str,
                 target: str, key: str | None = None) -> dict:
        """``real_target``: the target's reading of the same text, for MCD (``None``: no parallel reading, NaN);
        ``key``: a recording's path when ``wave`` is that recording unconverted (its DNSMOS is measured once)."""
        return self.for_sources(wave, real_target, target_f0, [source], target, key)[0]

    def for_sources(self, wave: torch.Tensor, real_target: torch.Tensor | None, target_f0: float,
                    sources: Sequence[str], target: str, key: str | None = None) -> list[dict]:
        """One record per source for the same audio (a ceiling: the target resynthesised), measured once."""
        e = self.judge.embed(wave)
        mcd = float("nan")
        if real_target is not None:
            with torch.inference_mode():
                mcd = mel_cepstral_distortion(self.judge.mel(wave), self.judge.mel(real_target))
        f0 = self.judge.log_f0(wave)
        mos = self.judge.naturalness(wave, key) if self.naturalness else {}
        return [self._record(e, mcd, f0, target_f0, s, target) | mos for s in sources]

    def _record(self, e: np.ndarray, mcd: float, f0: float, target_f0: float, source: str, target: str) -> dict:
        return {"source": source, "target": target, "mcd": mcd,
                "f0_error": abs(f0 - target_f0) * 12 / math.log(2),  # semitones
                "sim_target": float(e @ self.refs[target]), "sim_source": float(e @ self.refs[source]),
                "predicted": self.names[int(np.argmax(self.matrix @ e))]}


def evaluate_vc(ckpt: Checkpoint, entries: list[Entry], sentences: int = 4, progress: bool = True,
                pitch: str | float = "model", vocoder: str | None = None, naturalness: bool = False) -> VCReport:
    """Evaluate ``ckpt`` on ``entries`` (a parallel test set: speaker, text and absolute path set)."""
    speakers = list(ckpt.speakers)
    by_text = _parallel(entries, speakers)
    parallel = list(by_text)
    chosen, others = parallel[:sentences], parallel[sentences:] or parallel
    judge = _Judge(ckpt, vocoder)
    score = _Scorer(judge, {s: judge.reference([by_text[t][s] for t in others[:8]]) for s in speakers}, naturalness)
    targets = {s: table_voice(ckpt, s) for s in speakers}
    converted, ceiling, floor = [], [], []
    pairs = list(itertools.permutations(speakers, 2))
    for text in tqdm(chosen, desc="evaluate vc", unit="sentence", disable=bar_off(progress)):
        waves = {s: judge.load(by_text[text][s]) for s in speakers}
        f0 = {s: judge.log_f0(w) for s, w in waves.items()}
        resynth = {s: judge.resynth(w) for s, w in waves.items()}
        for src, tgt in pairs:
            out, _ = convert(waves[src], ckpt, targets[tgt], src, judge.vocoder, pitch)
            converted.append(score(out, waves[tgt], f0[tgt], src, tgt))
            floor.append(score(waves[src], waves[tgt], f0[tgt], src, tgt, key=by_text[text][src]))
        for tgt in speakers:
            ceiling += score.for_sources(resynth[tgt], waves[tgt], f0[tgt], [s for s in speakers if s != tgt], tgt)
    per_pair = {}
    for src, tgt in pairs:
        rs = [r for r in converted if (r["source"], r["target"]) == (src, tgt)]
        per_pair[f"{src}->{tgt}"] = {"mcd_db": float(np.mean([r["mcd"] for r in rs])),
                                     "f0_error_st": float(np.nanmean([r["f0_error"] for r in rs])),
                                     "sim_target": float(np.mean([r["sim_target"] for r in rs])),
                                     "sim_source": float(np.mean([r["sim_source"] for r in rs]))}
    return VCReport(_scores(converted), _scores(ceiling), _scores(floor), speakers, len(chosen), len(pairs), per_pair,
                    pitch)


@dataclass
class OneShotReport:
    """Conversion of the table's voices to voices outside it (``targets``), each fitted from ``reference_seconds``
    of its held-out sentences by each of ``methods`` (``one_shot`` and ``fit_seconds`` by method); ``nearest`` maps
    each target to the table voice the baseline converts to."""

    one_shot: dict[str, Scores]
    nearest_known: Scores
    in_table: Scores | None  # None for a real target: nothing parallel to compare with
    ceiling: Scores
    floor: Scores
    targets: list[str]
    sources: list[str]
    nearest: dict[str, str]
    sentences: int
    reference_seconds: dict[str, float]
    fit_seconds: dict[str, dict[str, float]]
    per_target: dict[str, dict[str, float]] = field(default_factory=dict)
    in_table_pairs: int = 0
    pitch: str | float = "model"

    def table(self) -> str:
        refs = np.mean(list(self.reference_seconds.values()))
        title = (f"one-shot to {len(self.targets)} voice(s) outside the table ({', '.join(self.targets)}) from "
                 f"{len(self.sources)} table voices x {self.sentences} held-out sentences; references {refs:.1f} s "
                 f"per voice; --pitch {self.pitch}")
        rows = [(f"one-shot {m}", s) for m, s in self.one_shot.items()] + [("nearest", self.nearest_known)]
        if self.in_table is not None:
            rows.append((f"in-table ({self.in_table_pairs} pairs)", self.in_table))
        rows += [("ceiling", self.ceiling), ("floor", self.floor)]
        lines = [_scores_table(title, rows, mcd=self.nearest_known.mcd_db is not None),
                 "similarity to the target, per target voice:"]
        for t, d in self.per_target.items():
            lines.append(f"  {t:10s} " + "  ".join(f"{k} {v:.3f}" for k, v in d.items())
                         + f"  (nearest known: {self.nearest[t]})")
        lines.append("fitting time (s, mean per voice): " + ", ".join(
            f"{m} {np.mean(list(by_voice.values())):.1f}" for m, by_voice in self.fit_seconds.items()))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)


def _spread(items: list[str], n: int) -> list[str]:
    """At most ``n`` of ``items``, evenly spaced (a fixed, representative subset)."""
    if len(items) <= n or n < 2:
        return items[: max(n, 0)]
    return [items[round(k * (len(items) - 1) / (n - 1))] for k in range(n)]


@dataclass
class _Fitted:
    """Each target voice made by each method (``voices[method, target]``, with the fitting time), and the table voice
    nearest to it by resemblyzer (the baseline's target)."""

    voices: dict[tuple[str, str], Voice]
    seconds: dict[str, dict[str, float]]
    reference_seconds: dict[str, float]
    nearest: dict[str, str]


def _fit_voices(ckpt: Checkpoint, judge: _Judge, score: _Scorer, references: dict[str, list[torch.Tensor]],
                methods: Sequence[str], sources: list[str]) -> _Fitted:
    """Make each target's voice from its reference recordings by each of ``methods``."""
    fitted = _Fitted({}, {m: {} for m in methods}, {}, {})
    for t, waves in references.items():
        for m in methods:
            start = time.perf_counter()
            fitted.voices[m, t] = reference_voice(ckpt, waves, t, m)
            fitted.seconds[m][t] = round(time.perf_counter() - start, 2)
        fitted.reference_seconds[t] = round(reference_seconds(waves, ckpt.mel.sample_rate), 2)
        heard = np.mean([judge.embed(w) for w in waves], axis=0)
        fitted.nearest[t] = max(sources, key=lambda s: float(heard @ score.refs[s]))
    return fitted


def evaluate_one_shot(ckpt: Checkpoint, entries: list[Entry], sentences: int = 3, references: int = 3,
                      methods: Sequence[str] = ("adapt",), progress: bool = True, pitch: str | float = "model",
                      in_table_targets: int = 6, skip: int = 0, vocoder: str | None = None,
                      naturalness: bool = False) -> OneShotReport:
    """Convert the table's voices in ``entries`` (a parallel test set) to its voices outside the table.

    Per target: ``references`` held-out sentences (never scored, never in the judge's references, which are made
    from up to 8 more) make its voice, once per method of ``methods``; ``sentences`` others are converted from every
    table voice. The in-table row converts the same sources to up to ``in_table_targets`` table voices (evenly
    spaced in name order) by their table entry. ``skip`` passes over the first parallel sentences: another draw of
    the same test set, to check a choice made on the first.
    """
    present = sorted({e.speaker for e in entries if e.speaker})
    targets = [s for s in present if s not in ckpt.speakers]
    sources = [s for s in present if s in ckpt.speakers]
    if not targets:
        raise AudiovaeError("evaluate vc --one-shot needs voices the model never heard in the test set: train with "
                            "data.exclude_speakers=[...] (recipes/voice_conversion/one_shot.sh)")
    if len(sources) < 2:
        raise AudiovaeError(f"evaluate vc --one-shot: {len(sources)} of the model's speakers in the test set; "
                            "it needs at least two to convert from")
    by_text = _parallel(entries, present)
    parallel = list(by_text)[skip:]
    chosen, given, others = parallel[:sentences], parallel[sentences: sentences + references], \
        parallel[sentences + references: sentences + references + 8]
    if not others:
        after = f" after skipping {skip}" if skip else ""
        raise AudiovaeError(f"evaluate vc --one-shot: {len(parallel)} parallel test sentences{after}; it needs at "
                            f"least {sentences + references + 1} (scored, the voices' references, the judge's "
                            "references)")
    judge = _Judge(ckpt, vocoder)
    score = _Scorer(judge, {s: judge.reference([by_text[t][s] for t in others]) for s in present}, naturalness)
    fitted = _fit_voices(ckpt, judge, score, {t: [judge.load(by_text[text][t]) for text in given] for t in targets},
                         methods, sources)
    voices, nearest = fitted.voices, fitted.nearest
    in_table_pairs = [(s, t) for s in sources for t in _spread(sources, in_table_targets) if s != t]
    known = {s: table_voice(ckpt, s) for s in sources}
    rows: dict[str, list[dict]] = defaultdict(list)
    for text in tqdm(chosen, desc="evaluate vc --one-shot", unit="sentence", disable=bar_off(progress)):
        waves = {s: judge.load(by_text[text][s]) for s in present}
        f0 = {s: judge.log_f0(w) for s, w in waves.items()}
        for tgt in targets:
            resynth = judge.resynth(waves[tgt])
            rows["ceiling"] += score.for_sources(resynth, waves[tgt], f0[tgt], sources, tgt)
            for src in sources:
                for m in methods:
                    out, _ = convert(waves[src], ckpt, voices[m, tgt], src, judge.vocoder, pitch)
                    rows[m].append(score(out, waves[tgt], f0[tgt], src, tgt))
                out, _ = convert(waves[src], ckpt, known[nearest[tgt]], src, judge.vocoder, pitch)
                rows["nearest"].append(score(out, waves[tgt], f0[tgt], src, tgt))
                rows["floor"].append(score(waves[src], waves[tgt], f0[tgt], src, tgt, key=by_text[text][src]))
        for src, tgt in in_table_pairs:
            out, _ = convert(waves[src], ckpt, known[tgt], src, judge.vocoder, pitch)
            rows["in_table"].append(score(out, waves[tgt], f0[tgt], src, tgt))
    per_target = {t: {name: _scores([r for r in rows[name] if r["target"] == t]).sim_target
                      for name in (*methods, "nearest")} for t in targets}
    return OneShotReport({m: _scores(rows[m]) for m in methods}, _scores(rows["nearest"]), _scores(rows["in_table"]),
                         _scores(rows["ceiling"]), _scores(rows["floor"]), targets, sources, nearest, len(chosen),
                         fitted.reference_seconds, fitted.seconds, per_target, len(in_table_pairs), pitch)


@dataclass
class RealReport:
    """Conversion of real recordings (not in any training corpus, no parallel reference): the converted audio and,
    as the floor, the recordings unconverted. MCD is not defined here (nothing to align against)."""

    converted: Scores
    floor: Scores
    source: str
    targets: list[str]
    files: int
    pitch: str | float = "model"

    def table(self) -> str:
        title = f"{self.files} real recordings of {self.source} x {len(self.targets)} targets, --pitch {self.pitch}"
        return _scores_table(title, [("converted", self.converted), ("floor", self.floor)], mcd=False)

    def to_dict(self) -> dict:
        return asdict(self)


def _speaker_name(recordings: list[Path]) -> str:
    """The name of the speaker of a folder of recordings: the folder's (its parent's for ``wav/``, ``audio/``…)."""
    folder = Path(recordings[0]).parent
    return (folder.parent.name if folder.name.lower() in ("wav", "wavs", "audio") else folder.name) or "speaker"


def _test_paths(entries: list[Entry], speakers: list[str]) -> dict[str, list[str]]:
    """Speaker -> its test recordings in ``entries`` (sorted), for each of ``speakers``; an error names any with
    none."""
    paths = defaultdict(list)
    for e in sorted(entries, key=lambda e: e.path):
        if e.speaker in speakers:
            paths[e.speaker].append(e.path)
    short = [s for s in speakers if not paths[s]]
    if short:
        raise AudiovaeError(f"no test recordings of speaker(s) {', '.join(short)} to make their references from")
    return paths


def evaluate_one_shot_real(ckpt: Checkpoint, entries: list[Entry], recordings: list[Path], sentences: int = 3,
                           references: int = 3, methods: Sequence[str] = ("adapt",), progress: bool = True,
                           pitch: str | float = "model", vocoder: str | None = None,
                           naturalness: bool = False) -> OneShotReport:
    """One-shot conversion into a real speaker: the voice of ``recordings`` (one speaker, outside any corpus) is made
    from the first ``references`` of them and judged against up to 8 others; the first ``sentences`` test
    recordings of each of the model's voices in ``entries`` are converted into it.

    Beside it: the nearest known speaker and the floor (the source unconverted), as in :func:`evaluate_one_shot`;
    the ceiling is ``sentences`` further recordings of the speaker through the vocoder. No MCD and no in-table row:
    nothing is parallel.
    """
    sources = list(ckpt.speakers)
    if len(recordings) < references + sentences + 1:
        raise AudiovaeError(f"{len(recordings)} recording(s): need {references} for the voice, {sentences} for the "
                            "ceiling and at least one more for the judge's reference")
    paths = _test_paths(entries, sources)
    few = [s for s in sources if len(paths[s]) <= sentences]
    if few:
        raise AudiovaeError(f"speaker(s) {', '.join(few)}: {sentences} test recording(s) or fewer; each needs "
                            f"{sentences} to convert and more for the judge's reference")
    target = _speaker_name(recordings)
    if target in sources:
        raise AudiovaeError(f"{Path(recordings[0]).parent}: the recordings' speaker, {target}, has the name of a "
                            "speaker of the model; rename the folder")
    judge = _Judge(ckpt, vocoder)
    held_out = recordings[references + sentences: references + sentences + 8]
    refs = {s: judge.reference(paths[s][sentences: sentences + 8]) for s in sources}
    score = _Scorer(judge, refs | {target: judge.reference(held_out)}, naturalness)
    target_f0 = float(np.nanmean([judge.log_f0(judge.load(p)) for p in held_out]))
    fitted = _fit_voices(ckpt, judge, score, {target: [judge.load(p) for p in recordings[:references]]}, methods,
                         sources)
    known = table_voice(ckpt, fitted.nearest[target])
    rows: dict[str, list[dict]] = defaultdict(list)
    for src in tqdm(sources, desc="evaluate vc --one-shot --real", unit="voice", disable=bar_off(progress)):
        for path in paths[src][:sentences]:
            wave = judge.load(path)
            for m in methods:
                out, _ = convert(wave, ckpt, fitted.voices[m, target], src, judge.vocoder, pitch)
                rows[m].append(score(out, None, target_f0, src, target))
            out, _ = convert(wave, ckpt, known, src, judge.vocoder, pitch)
            rows["nearest"].append(score(out, None, target_f0, src, target))
            rows["floor"].append(score(wave, None, target_f0, src, target, key=str(path)))
    for path in recordings[references: references + sentences]:
        resynth = judge.resynth(judge.load(path))
        rows["ceiling"] += score.for_sources(resynth, None, target_f0, sources, target)
    per_target = {target: {name: _scores(rows[name]).sim_target for name in (*methods, "nearest")}}
    return OneShotReport({m: _scores(rows[m]) for m in methods}, _scores(rows["nearest"]), None,
                         _scores(rows["ceiling"]), _scores(rows["floor"]), [target], sources, fitted.nearest,
                         sentences, fitted.reference_seconds, fitted.seconds, per_target, 0, pitch)


def evaluate_vc_real(ckpt: Checkpoint, entries: list[Entry], recordings: list[Path], files: int = 5,
                     progress: bool = True, pitch: str | float = "model", vocoder: str | None = None,
                     naturalness: bool = False) -> RealReport:
    """Convert the first ``files`` of ``recordings`` (one real speaker) to every speaker of the model.

    Speaker similarity (resemblyzer) is to each target's reference, made from 8 of its held-out sentences in
    ``entries``, and to the source's, made from up to 8 *other* recordings; speaker identification picks the nearest
    of all those references (the source's included). The F0 error is the distance in semitones between the mean
    log-F0 of the converted audio and of the target's reference sentences.
    """
    speakers = list(ckpt.speakers)
    if len(recordings) < files + 1:
        raise AudiovaeError(f"{len(recordings)} recording(s): need {files} to convert and at least one more for the "
                            "source speaker's reference")
    judge = _Judge(ckpt, vocoder)
    paths = _test_paths(entries, speakers)
    source = _speaker_name(recordings)
    refs = {s: judge.reference(paths[s][:8]) for s in speakers}
    refs[source] = judge.reference(recordings[files: files + 8])
    target_f0 = {s: float(np.nanmean([judge.log_f0(judge.load(p)) for p in paths[s][:8]])) for s in speakers}
    score = _Scorer(judge, refs, naturalness)
    converted, floor = [], []
    for path in tqdm(recordings[:files], desc="evaluate vc (real)", unit="file", disable=bar_off(progress)):
        wave = judge.load(path)
        for target in speakers:
            out, _ = convert(wave, ckpt, table_voice(ckpt, target), vocoder=judge.vocoder, pitch=pitch)
            converted.append(score(out, None, target_f0[target], source, target))
            floor.append(score(wave, None, target_f0[target], source, target, key=str(path)))
    return RealReport(_scores(converted), _scores(floor), source, speakers, files, pitch)
