"""Directory layouts -> manifest entries, so a corpus built here and a dataset a user brings look the same.

Supported: a ``manifest.jsonl`` (what the corpus builders write), a folder per speaker, VCTK
(``wav48_silence_trimmed/pXXX/*_mic1.flac`` + ``txt/``), LibriTTS (``speaker/chapter/*.wav`` + ``*.normalized.txt``),
VoiceBank-DEMAND (``clean_*`` / ``noisy_*`` folders of paired files), the machine-sound layouts of MIMII
(``<snr>/<machine>/<id>/{normal,abnormal}/*.wav``) and DCASE Task 2
(``<machine>/{train,test}/{normal,anomaly}_id_XX_*.wav``), speechocean762 (``WAVE/SPEAKERnnnn/*`` with Kaldi-style
``train/`` and ``test/`` speaker splits), and a plain folder of music. Layouts without
splits get a deterministic one: by transcript where there is one (a sentence never lands in two splits), else by file.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import soundfile as sf

from ..errors import AudiovaeError
from .manifest import Entry, read_manifest, resolve

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
LAYOUTS = ("manifest", "speakers", "vctk", "libritts", "voicebank", "speechocean762", "mimii", "dcase", "music")
SPEECHOCEAN_PREFIX = "so762_"  # speaker names from speechocean762: the prefix + the corpus's own id


class LayoutError(AudiovaeError):
    """A folder does not have the layout asked for (or none that can be detected)."""


def _audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def split_of(key: str, valid_fraction: float = 0.05, test_fraction: float = 0.05) -> str:
    """Deterministic split from a key (a transcript, a piece, a file stem): stable across machines and runs."""
    u = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0x100000000
    return "test" if u < test_fraction else "valid" if u < test_fraction + valid_fraction else "train"


def held_out_count(n: int, fraction: float) -> int:
    """Items for a held-out split of ``n``: at least one whenever the fraction is not zero, so tiny builds have one."""
    return max(1, round(n * fraction)) if fraction > 0 else 0


def ranked_splits(keys: list[str], n_test: int, n_valid: int, seed: int) -> dict[str, str]:
    """Key -> split with exact counts: the first ``n_test`` keys ranked by a seeded hash go to test, the next
    ``n_valid`` to valid, the rest to train; the same on every machine and numpy version."""
    order = sorted(keys, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).digest())
    held = dict.fromkeys(order[:n_test], "test") | dict.fromkeys(order[n_test:n_test + n_valid], "valid")
    return {k: held.get(k, "train") for k in keys}


def _duration(path: Path) -> float:
    """Duration from the header; unreadable files get -1 and are reported when the dataset loads them."""
    try:
        i = sf.info(path)
        return i.frames / i.samplerate
    except Exception:  # noqa: BLE001 - any header failure means "unreadable"; the dataset reports it with its path
        return -1.0


def _entry(path: Path, split_key: str, **kw) -> Entry:
    return Entry(path=str(path), duration=round(_duration(path), 4), split=split_of(split_key), **kw)


def from_manifest(path: Path) -> list[Entry]:
    """Entries of a manifest with their paths made absolute."""
    out = []
    for e in read_manifest(path):
        e.path = str(resolve(path, e.path))
        if e.clean:
            e.clean = str(resolve(path, e.clean))
        out.append(e)
    return out


def speaker_folders(root: Path) -> list[Entry]:
    """``root/<speaker>/**/<audio>``: the speaker is the first folder level; a ``<stem>.txt`` beside is the text."""
    entries = []
    for f in _audio_files(root):
        rel = f.relative_to(root)
        if len(rel.parts) < 2:
            continue
        txt = f.with_suffix(".txt")
        text = txt.read_text(encoding="utf-8").strip() if txt.is_file() else ""
        entries.append(_entry(f, text or f.stem, speaker=rel.parts[0], text=text))
    return entries


def vctk(root: Path, mic: str = "mic1") -> list[Entry]:
    """VCTK 0.92: ``wav48_silence_trimmed/pXXX/pXXX_NNN_mic1.flac`` with transcripts in ``txt/pXXX/pXXX_NNN.txt``."""
    entries = []
    for f in sorted((root / "wav48_silence_trimmed").glob(f"p*/*_{mic}.flac")):
        speaker = f.parent.name
        utt = f.stem.removesuffix(f"_{mic}")
        txt = root / "txt" / speaker / f"{utt}.txt"
        text = txt.read_text(encoding="utf-8").strip() if txt.is_file() else ""
        entries.append(_entry(f, text or utt, speaker=speaker, text=text))
    return entries


def libritts(root: Path) -> list[Entry]:
    """LibriTTS: ``<speaker>/<chapter>/<utt>.wav`` with ``<utt>.normalized.txt`` beside."""
    entries = []
    for f in sorted(root.glob("*/*/*.wav")):
        txt = f.with_name(f.stem + ".normalized.txt")
        text = txt.read_text(encoding="utf-8").strip() if txt.is_file() else ""
        entries.append(_entry(f, text or f.stem, speaker=f.parent.parent.name, text=text))
    return entries


def voicebank(root: Path) -> list[Entry]:
    """VoiceBank-DEMAND: ``noisy_<set>_wav/x.wav`` paired with ``clean_<set>_wav/x.wav``; ``*test*`` sets are test."""
    entries = []
    for noisy_dir in sorted(d for d in root.iterdir() if d.is_dir() and d.name.startswith("noisy_")):
        clean_dir = root / ("clean_" + noisy_dir.name.removeprefix("noisy_"))
        if not clean_dir.is_dir():
            raise LayoutError(f"{noisy_dir}: no matching clean folder {clean_dir.name}")
        test = "test" in noisy_dir.name
        for f in _audio_files(noisy_dir):
            clean = clean_dir / f.relative_to(noisy_dir)
            if not clean.is_file():
                continue
            e = _entry(f, f.stem, speaker=f.stem.split("_")[0], clean=str(clean))
            if test:
                e.split = "test"
            elif e.split == "test":
                e.split = "valid"  # the official test set is the test split; carve validation from training
            entries.append(e)
    return entries


def _kaldi_table(path: Path) -> dict[str, str]:
    """``key value...`` per line (Kaldi's ``wav.scp``, ``text``, ``utt2spk``, ``spk2gender``); missing file: empty."""
    if not path.is_file():
        return {}
    table = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split(None, 1)  # the key, then the rest after any run of spaces or tabs
        if parts:
            table[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return table


def _speechocean_audio(root: Path, listed: str, speaker: str, utt: str) -> Path | None:
    """The audio of one utterance: the path ``wav.scp`` gives, else ``WAVE/SPEAKERnnnn/<utt>`` in any audio
    format (the authors release WAV, ``.WAV``; a copy may hold FLAC)."""
    candidates = [root / listed] if listed else []
    folder = root / "WAVE" / f"SPEAKER{speaker}"
    candidates += [folder / f"{utt}{ext}" for ext in (".WAV", ".wav", ".flac", ".FLAC")]
    if listed:
        candidates += [(root / listed).with_suffix(ext) for ext in (".WAV", ".wav", ".flac")]
    return next((c for c in candidates if c.is_file()), None)


def speechocean762(root: Path, valid_speakers: float = 0.05) -> list[Entry]:
    """speechocean762 as its authors release it: ``WAVE/SPEAKERnnnn/<utt>.WAV`` (or FLAC), and for each of its two
    speaker splits ``train/`` and ``test/`` the Kaldi tables ``wav.scp``, ``utt2spk``, ``text``, ``spk2gender``.

    The authors' speaker split is kept: their ``test`` speakers are the test split, so whole speakers stay out of
    training. ``valid_speakers`` of the ``train`` speakers (at least one, chosen by a seeded hash of the id) are the
    validation split, also as whole speakers. Speakers are named ``so762_<id>``; ``sex`` is ``spk2gender``'s.
    """
    entries = []
    for split in ("train", "test"):
        folder = root / split
        utt2spk = _kaldi_table(folder / "utt2spk")
        if not utt2spk:
            continue
        scp, text, gender = (_kaldi_table(folder / n) for n in ("wav.scp", "text", "spk2gender"))
        speakers = sorted(set(utt2spk.values()))
        valid = ranked_splits(speakers, 0, held_out_count(len(speakers), valid_speakers), seed=0) \
            if split == "train" else {}
        for utt in sorted(utt2spk):
            spk = utt2spk[utt]
            path = _speechocean_audio(root, scp.get(utt, ""), spk, utt)
            if path is None:
                continue
            entries.append(Entry(path=str(path), duration=round(_duration(path), 4),
                                 split="test" if split == "test" else valid.get(spk, "train"),
                                 speaker=SPEECHOCEAN_PREFIX + spk, sex=gender.get(spk, ""),
                                 text=text.get(utt, "").lower()))
    if not entries and (root / "WAVE").is_dir():
        raise LayoutError(f"{root}: speechocean762 needs train/utt2spk and test/utt2spk beside WAVE/ (the release's "
                          "speaker splits)")
    return entries


def music_folder(root: Path) -> list[Entry]:
    """Any folder of music files; each file is a piece, split by file."""
    return [_entry(f, str(f.relative_to(root)), piece=str(f.relative_to(root).with_suffix(""))) for f in
            _audio_files(root)]


def _snr_of(name: str) -> float | None:
    """The SNR a MIMII folder name states (``-6_dB_fan``, ``6dB``, ``min6dB``, ``0_dB``), or ``None``."""
    m = re.match(r"^(min|-|\+)?(\d+(?:\.\d+)?)_?dB", name, re.IGNORECASE)
    if m is None:
        return None
    return -float(m.group(2)) if m.group(1) in ("min", "-") else float(m.group(2))


def _machine_splits(entries: list[Entry], root: Path, anomalous_test: bool, valid_fraction: float = 0.1
                    ) -> list[Entry]:
    """Splits for a machine-sound set without them: per (SNR, machine, unit), as many normal files go to test as
    there are anomalous ones (the MIMII baseline's protocol; with ``anomalous_test`` every anomalous file is test),
    a tenth of the rest to valid, the remaining normal files to train. Ranked by the path under ``root``, so the
    splits do not change when the data moves."""
    groups: dict[tuple, list[Entry]] = defaultdict(list)
    for e in entries:
        groups[(e.snr, e.machine, e.unit)].append(e)
    for group in groups.values():
        normal = [e for e in group if e.label == "normal" and e.split != "test"]
        n_test = sum(e.label == "anomaly" for e in group) if anomalous_test else 0
        rest = len(normal) - n_test
        key = {e.path: str(Path(e.path).relative_to(root)) for e in group}
        splits = ranked_splits([key[e.path] for e in normal], n_test, held_out_count(max(rest, 0), valid_fraction),
                               seed=0)
        for e in group:
            e.split = "test" if e.label == "anomaly" and anomalous_test else splits.get(key[e.path], e.split)
    return entries


def mimii(root: Path) -> list[Entry]:
    """MIMII: ``[<snr>/]<machine>/<id>/{normal,abnormal}/*.wav`` (the SNR folder as unpacked: ``-6_dB_fan``,
    ``6dB``...; left out for a single SNR). No splits are given: :func:`_machine_splits` makes them."""
    entries = []
    for f in _audio_files(root):
        parts = f.relative_to(root).parts
        if len(parts) < 4 or parts[-2] not in ("normal", "abnormal"):
            continue
        snr = _snr_of(parts[-5]) if len(parts) >= 5 else None
        entries.append(Entry(path=str(f), duration=round(_duration(f), 4), machine=parts[-4], unit=parts[-3],
                             label="normal" if parts[-2] == "normal" else "anomaly", snr=snr))
    return _machine_splits(entries, root, anomalous_test=True)


_DCASE_NAME = re.compile(r"(normal|anomaly)_(?:id|section)_(\d+)_", re.IGNORECASE)
_DCASE_SECTION = re.compile(r"section_(\d+)_.*?_(normal|anomaly)_", re.IGNORECASE)


def dcase(root: Path) -> list[Entry]:
    """DCASE Task 2: ``<machine>/{train,test}/{normal,anomaly}_id_XX_*.wav`` (2020) or
    ``section_XX_<domain>_{train,test}_{normal,anomaly}_*.wav`` (2021 on). ``train`` is train (a tenth of it valid);
    ``test`` is test."""
    entries = []
    for f in _audio_files(root):
        parts = f.relative_to(root).parts
        if len(parts) < 3 or parts[-2] not in ("train", "test", "source_test", "target_test"):
            continue
        m, s = _DCASE_NAME.search(f.name), _DCASE_SECTION.search(f.name)
        if m is not None:
            label, unit = m.group(1).lower(), f"id_{m.group(2)}"
        elif s is not None:
            label, unit = s.group(2).lower(), f"section_{s.group(1)}"
        else:
            continue
        entries.append(Entry(path=str(f), duration=round(_duration(f), 4), machine=parts[-3], unit=unit,
                             label=label, split="train" if parts[-2] == "train" else "test"))
    return _machine_splits(entries, root, anomalous_test=False)


_READERS: dict[str, Callable[[Path], list[Entry]]] = {
    "speakers": speaker_folders, "vctk": vctk, "libritts": libritts, "voicebank": voicebank,
    "speechocean762": speechocean762, "mimii": mimii,
    "dcase": dcase, "music": music_folder}


def detect_layout(root: Path) -> str:
    """Guess the layout of ``root`` (a manifest file counts as ``manifest``)."""
    if root.is_file():
        return "manifest"
    if (root / "manifest.jsonl").is_file():
        return "manifest"
    if (root / "wav48_silence_trimmed").is_dir():
        return "vctk"
    if (root / "WAVE").is_dir() and any((root / s / "utt2spk").is_file() for s in ("train", "test")):
        return "speechocean762"
    if any(d.name.startswith("noisy_") for d in root.iterdir() if d.is_dir()):
        return "voicebank"
    if any(root.glob("*/*/*.normalized.txt")):
        return "libritts"
    if any(root.glob("*/train/*_id_*.wav")) or any(root.glob("*/train/section_*.wav")):
        return "dcase"
    if any(root.glob("*/*/normal/*")) or any(root.glob("*/*/*/normal/*")):
        return "mimii"
    if any(p.suffix.lower() in AUDIO_EXTENSIONS for p in root.glob("*/*")) and not any(
            p.suffix.lower() in AUDIO_EXTENSIONS for p in root.glob("*")):
        return "speakers"
    return "music"


def discover(source: str | os.PathLike[str], layout: str = "auto") -> list[Entry]:
    """Entries (absolute paths) from a manifest file, a corpus folder or a dataset folder of a known layout."""
    root = Path(source)
    if not root.exists():
        raise LayoutError(f"{root}: no such file or folder")
    if layout == "auto":
        layout = detect_layout(root)
    if layout == "manifest":
        return from_manifest(root if root.is_file() else root / "manifest.jsonl")
    if layout not in _READERS:
        raise LayoutError(f"unknown layout {layout!r}; choose one of: auto, {', '.join(LAYOUTS)}")
    if not root.is_dir():
        raise LayoutError(f"{root}: layout {layout!r} needs a folder")
    entries = _READERS[layout](root)
    if not entries:
        raise LayoutError(f"{root}: no audio files found for layout {layout!r}")
    return entries
