"""Voice-conversion evaluation on parallel held-out sentences, for every ordered pair of the model's speakers.

For each sentence read by all speakers and each pair (source, target): convert the source's reading to the target
voice and compare it with the target's real reading of the same sentence — mel-cepstral distortion after DTW
alignment, and speaker similarity with resemblyzer (cosine to each speaker's reference embedding, made from *other*
held-out sentences so content does not leak in); speaker identification is the nearest reference; the pitch
register error is the distance in semitones between the mean log-F0 of the converted and of the real target
utterance. Two references
are measured the same way: the **ceiling**, the target's real reading passed through the same vocoder (what perfect
conversion would score), and the **floor**, the source's reading unconverted.

``one_shot``: every target is given to the model by one reference recording (another held-out sentence of the
target, never one scored or used for the resemblyzer references) through its speaker encoder, and the speakers are
all those of the test set, so voices the model never heard (``data.exclude_speakers`` at training) are scored too,
in their own row.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections import defaultdict
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
from ..pipelines.convert import convert, reference_voice, table_voice
from ..pipelines.latent import vocoder_for
from ..pitch import register, track_f0
from ..progress import bar_off


@dataclass
class Scores:
    """Means over all ordered pairs and sentences (``closer_to_target``: share of ordered pairs whose mean
    similarity to the target's reference beats the source's; ``f0_off``: share of ordered pairs whose mean pitch
    register error exceeds 15 %, i.e. 2.42 semitones)."""

    mcd_db: float
    f0_error_st: float
    sim_target: float
    sim_source: float
    closer_to_target: float
    speaker_id_accuracy: float
    f0_off: float = 0.0


def _scores_table(title: str, rows: list[tuple[str, Scores]], *, mcd: bool) -> str:
    """The plain-text table both reports print; ``mcd=False`` drops the MCD column (undefined without a reference)."""
    head = (f"{'':10s} " + (f"{'MCD dB':>8s} " if mcd else "") + f"{'F0 err st':>9s} {'F0 off>15%':>10s} "
            f"{'sim→target':>11s} {'sim→source':>11s} {'closer→tgt':>11s} {'spk-ID acc':>11s}")
    lines = [title, head]
    for name, s in rows:
        lines.append(f"{name:10s} " + (f"{s.mcd_db:8.2f} " if mcd else "") + f"{s.f0_error_st:9.2f} "
                     f"{100 * s.f0_off:9.0f}% {s.sim_target:11.3f} {s.sim_source:11.3f} "
                     f"{100 * s.closer_to_target:10.0f}% {100 * s.speaker_id_accuracy:10.0f}%")
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
    unseen: Scores | None = None  # one-shot: pairs whose target is not in the model's table
    unseen_speakers: list[str] = field(default_factory=list)
    pitch: str | float = "model"

    def table(self) -> str:
        title = f"{self.pairs} ordered speaker pairs x {self.sentences} held-out sentences, --pitch {self.pitch}"
        if self.unseen is not None:
            title += (f"; one-shot targets, 'unseen' = targets {', '.join(self.unseen_speakers)} "
                      "(not in the model's table)")
        rows = [("converted", self.converted)]
        if self.unseen is not None:
            rows.append(("  unseen", self.unseen))
        rows += [("ceiling", self.ceiling), ("floor", self.floor)]
        return _scores_table(title, rows, mcd=True)

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


class _Judge:
    """What every evaluation here measures with: audio loading at the model's rate, resemblyzer embeddings
    (unit-norm), speaker references (the normalised mean over several utterances), mean log-F0."""

    def __init__(self, ckpt: Checkpoint) -> None:
        self.ckpt, self.encoder = ckpt, _speaker_encoder()
        self.mel = MelSpectrogram(ckpt.mel)
        self.vocoder = vocoder_for(ckpt)

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
    return Scores(float(np.mean([r["mcd"] for r in records])), f0_error,
                  float(np.mean([r["sim_target"] for r in records])),
                  float(np.mean([r["sim_source"] for r in records])), float(np.mean(closer)),
                  float(np.mean([r["predicted"] == r["target"] for r in records])),
                  float(np.mean([e > F0_OFF_ST for e in pair_f0])))


def evaluate_vc(ckpt: Checkpoint, entries: list[Entry], sentences: int = 4, progress: bool = True,
                one_shot: bool = False, pitch: str | float = "model") -> VCReport:
    """Evaluate ``ckpt`` on ``entries`` (a parallel test set: speaker, text and absolute path set)."""
    if one_shot:
        speakers = sorted({e.speaker for e in entries if e.speaker})
    else:
        speakers = list(ckpt.speakers)
    by_text: dict[str, dict[str, str]] = defaultdict(dict)
    for e in entries:
        if e.speaker in speakers and e.text:
            by_text[e.text][e.speaker] = e.path
    parallel = sorted(t for t, readers in by_text.items() if set(readers) == set(speakers))
    if len(speakers) < 2 or not parallel:
        raise AudiovaeError("evaluate vc needs sentences read by every speaker of the model (a parallel test set, "
                            f"e.g. the test split of `audiovae corpus speech`); found {len(parallel)}")
    chosen, others = parallel[:sentences], parallel[sentences:] or parallel
    judge = _Judge(ckpt)
    mel, vocoder, load, embed = judge.mel, judge.vocoder, judge.load, judge.embed
    refs = {s: judge.reference([by_text[t][s] for t in others[:8]]) for s in speakers}
    names, matrix = list(refs), np.stack(list(refs.values()))
    if one_shot:  # the target as the model sees it: one held-out sentence, disjoint from everything scored
        reference = others[8] if len(others) > 8 else others[-1]
        targets = {s: reference_voice(ckpt, [load(by_text[reference][s])], s) for s in speakers}
    else:
        targets = {s: table_voice(ckpt, s) for s in speakers}
    unseen = [s for s in speakers if s not in ckpt.speakers]

    log_f0 = judge.log_f0

    def record(wave: torch.Tensor, real_target: torch.Tensor, source: str, target: str) -> dict:
        e = embed(wave)
        with torch.inference_mode():
            mcd = mel_cepstral_distortion(mel(wave), mel(real_target))
        f0_error = abs(log_f0(wave) - target_f0[target]) * 12 / math.log(2)  # semitones
        return {"source": source, "target": target, "mcd": mcd, "f0_error": f0_error,
                "sim_target": float(e @ refs[target]),
                "sim_source": float(e @ refs[source]), "predicted": names[int(np.argmax(matrix @ e))]}

    converted, ceiling, floor = [], [], []
    pairs = list(itertools.permutations(speakers, 2))
    for text in tqdm(chosen, desc="evaluate vc", unit="sentence", disable=bar_off(progress)):
        waves = {s: load(by_text[text][s]) for s in speakers}
        target_f0 = {s: log_f0(w) for s, w in waves.items()}
        with torch.inference_mode():
            resynth = {s: vocoder(mel(w)[None], length=w.numel())[0] for s, w in waves.items()}
        for src, tgt in pairs:
            out, _ = convert(waves[src], ckpt, targets[tgt], src if src in ckpt.speakers else None, vocoder, pitch)
            converted.append(record(out, waves[tgt], src, tgt))
            ceiling.append(record(resynth[tgt], waves[tgt], src, tgt))
            floor.append(record(waves[src], waves[tgt], src, tgt))
    per_pair = {}
    for src, tgt in pairs:
        rs = [r for r in converted if (r["source"], r["target"]) == (src, tgt)]
        per_pair[f"{src}->{tgt}"] = {"mcd_db": float(np.mean([r["mcd"] for r in rs])),
                                     "f0_error_st": float(np.nanmean([r["f0_error"] for r in rs])),
                                     "sim_target": float(np.mean([r["sim_target"] for r in rs])),
                                     "sim_source": float(np.mean([r["sim_source"] for r in rs]))}
    unseen_records = [r for r in converted if r["target"] in unseen]
    return VCReport(_scores(converted), _scores(ceiling), _scores(floor), speakers, len(chosen), len(pairs), per_pair,
                    _scores(unseen_records) if unseen_records else None, unseen, pitch)


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


def evaluate_vc_real(ckpt: Checkpoint, entries: list[Entry], recordings: list[Path], files: int = 5,
                     progress: bool = True, pitch: str | float = "model") -> RealReport:
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
    judge = _Judge(ckpt)
    paths = defaultdict(list)
    for e in sorted(entries, key=lambda e: e.path):
        if e.speaker in speakers:
            paths[e.speaker].append(e.path)
    short = [s for s in speakers if not paths[s]]
    if short:
        raise AudiovaeError(f"no test recordings of speaker(s) {', '.join(short)} to make their references from")
    folder = Path(recordings[0]).parent
    source = (folder.parent.name if folder.name.lower() in ("wav", "wavs", "audio") else folder.name) or "source"
    refs = {s: judge.reference(paths[s][:8]) for s in speakers}
    refs[source] = judge.reference(recordings[files: files + 8])
    target_f0 = {s: float(np.nanmean([judge.log_f0(judge.load(p)) for p in paths[s][:8]])) for s in speakers}
    names, matrix = list(refs), np.stack(list(refs.values()))

    def record(wave: torch.Tensor, target: str) -> dict:
        e = judge.embed(wave)
        return {"source": source, "target": target, "mcd": float("nan"),
                "f0_error": abs(judge.log_f0(wave) - target_f0[target]) * 12 / math.log(2),
                "sim_target": float(e @ refs[target]), "sim_source": float(e @ refs[source]),
                "predicted": names[int(np.argmax(matrix @ e))]}

    converted, floor = [], []
    for path in tqdm(recordings[:files], desc="evaluate vc (real)", unit="file", disable=bar_off(progress)):
        wave = judge.load(path)
        for target in speakers:
            out, _ = convert(wave, ckpt, table_voice(ckpt, target), vocoder=judge.vocoder, pitch=pitch)
            converted.append(record(out, target))
            floor.append(record(wave, target))
    return RealReport(_scores(converted), _scores(floor), source, speakers, files, pitch)
