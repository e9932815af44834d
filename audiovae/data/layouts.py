"""Directory layouts -> manifest entries, so a corpus built here and a dataset a user brings look the same.

Supported: a ``manifest.jsonl`` (what the corpus builders write), a folder per speaker, VCTK
(``wav48_silence_trimmed/pXXX/*_mic1.flac`` + ``txt/``), LibriTTS (``speaker/chapter/*.wav`` + ``*.normalized.txt``),
VoiceBank-DEMAND (``clean_*`` / ``noisy_*`` folders of paired files) and a plain folder of music. Layouts without
splits get a deterministic one: by transcript where there is one (a sentence never lands in two splits), else by file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import soundfile as sf

from ..errors import AudiovaeError
from .manifest import Entry, read_manifest, resolve

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
LAYOUTS = ("manifest", "speakers", "vctk", "libritts", "voicebank", "music")


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


def music_folder(root: Path) -> list[Entry]:
    """Any folder of music files; each file is a piece, split by file."""
    return [_entry(f, str(f.relative_to(root)), piece=str(f.relative_to(root).with_suffix(""))) for f in
            _audio_files(root)]


_READERS: dict[str, Callable[[Path], list[Entry]]] = {
    "speakers": speaker_folders, "vctk": vctk, "libritts": libritts, "voicebank": voicebank, "music": music_folder}


def detect_layout(root: Path) -> str:
    """Guess the layout of ``root`` (a manifest file counts as ``manifest``)."""
    if root.is_file():
        return "manifest"
    if (root / "manifest.jsonl").is_file():
        return "manifest"
    if (root / "wav48_silence_trimmed").is_dir():
        return "vctk"
    if any(d.name.startswith("noisy_") for d in root.iterdir() if d.is_dir()):
        return "voicebank"
    if any(root.glob("*/*/*.normalized.txt")):
        return "libritts"
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
