"""Map any file-to-file pipeline over one file or a folder of them, the same way for the CLI and a web page.

A batch job is planned whole before any file is processed: the output names are made, every destination is checked
(a writable folder, not a directory, not one of the inputs, not shared by two inputs), so a bad ``--out-dir`` fails
at once instead of after an hour, and no output is ever written over an input. Then each file is processed; a file
that fails with an :class:`~audiovae.errors.AudiovaeError` (unreadable, too short...) is recorded and skipped, and
the rest are still written. Progress goes to a callback, and the :class:`Summary` says what was written and what
failed; printing is the caller's business.

    summary = map_files("clips/", work, output_name("B"), out_dir="converted")

where ``work(src, dst)`` writes ``dst`` from ``src`` and returns a short note on what it did.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..data.layouts import AUDIO_EXTENSIONS
from ..errors import AudiovaeError, ConfigError
from ..fileio import OutputError, check_output_path

Work = Callable[[Path, Path], str]
"""``work(src, dst)``: process ``src`` into ``dst`` and return a short note (e.g. ``"2.00 s, 44100 Hz"``)."""


KEPT_FORMATS = (".wav", ".flac", ".ogg", ".aiff", ".aif")
"""Input formats an output can keep (lossless or, for .ogg, what the input already was); others become WAV."""


def output_name(tag: str, keep_format: bool = False) -> Callable[[Path], str]:
    """A naming rule for :func:`plan`: ``<stem>_<tag>.wav``, or with ``keep_format`` the input's extension when it is
    one of :data:`KEPT_FORMATS`."""

    def name(path: Path) -> str:
        suffix = path.suffix if keep_format and path.suffix.lower() in KEPT_FORMATS else ".wav"
        return f"{path.stem}_{tag}{suffix}"

    return name


@dataclass(frozen=True)
class Job:
    """One input and the output it becomes."""

    source: Path
    output: Path


@dataclass(frozen=True)
class Outcome:
    """What became of one job: ``note`` is what the work returned, or the error message when it failed."""

    job: Job
    ok: bool
    note: str


@dataclass
class Summary:
    """The result of a batch: outcomes in input order. ``out_dir`` is the output folder of a folder of inputs,
    ``None`` for a single file."""

    outcomes: list[Outcome] = field(default_factory=list)
    out_dir: Path | None = None

    @property
    def ok(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.ok]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def line(self, verb: str) -> str:
        """One line for the end of a folder's batch, e.g. ``converted 2 of 3 files into out``."""
        return f"{verb} {len(self.ok)} of {len(self.outcomes)} files into {self.out_dir}"


def audio_files(folder: str | os.PathLike[str], exclude: str | os.PathLike[str] | None = None) -> list[Path]:
    """Every audio file under ``folder`` (recursively, sorted), leaving out those under ``exclude`` (e.g. an output
    folder inside the input folder: earlier outputs are not inputs)."""
    skip = Path(exclude).resolve() if exclude is not None else None
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
                  and not (skip is not None and p.resolve().is_relative_to(skip)))


def _writable_ancestor(folder: Path) -> None:
    """Raise unless ``folder`` exists as a writable folder or can be made inside one."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{folder}: cannot be an output folder ({probe} is a file)")
    if not os.access(probe, os.W_OK):
        raise OutputError(f"{folder}: output folder {probe} is not writable")


def plan(source: str | os.PathLike[str], name: Callable[[Path], str], output: str | os.PathLike[str] | None = None,
         out_dir: str | os.PathLike[str] = ".") -> tuple[list[Job], Path | None]:
    """The jobs for ``source``, every destination checked; returns them and the output folder (``None`` for a file).

    A file goes to ``output`` (default ``name(source)`` in the current folder, whose folder must exist). Every audio
    file under a folder goes to the same relative place under ``out_dir``, named ``name(file)``; the folders are made
    by :func:`run` as it gets to them (planning changes nothing on disk).
    Raises :class:`~audiovae.fileio.OutputError` before anything is processed if a destination is not writable, is a
    directory, is one of the inputs or is shared by two inputs; :class:`~audiovae.errors.ConfigError` for an
    ``output`` file with a folder of inputs; :class:`~audiovae.errors.AudiovaeError` for a folder without audio.
    """
    src = Path(source)
    if not src.is_dir():
        jobs, folder = [Job(src, Path(output) if output is not None else Path(name(src)))], None
    else:
        if output is not None:
            raise ConfigError(f"{src} is a folder: its outputs go to an output folder (--out-dir), not to one file "
                              f"({output})")
        folder = Path(out_dir)
        inside = folder.resolve() != src.resolve() and folder.resolve().is_relative_to(src.resolve())
        inputs = audio_files(src, exclude=folder if inside else None)
        if not inputs:
            raise AudiovaeError(f"{src}: no audio files in this folder")
        jobs = [Job(p, folder / p.relative_to(src).with_name(name(p))) for p in inputs]
        for parent in sorted({j.output.parent for j in jobs}):
            _writable_ancestor(parent)
    inputs_at = {j.source.resolve(): j.source for j in jobs}
    seen: dict[Path, Path] = {}
    for j in jobs:
        dst = j.output.resolve()
        if dst in inputs_at or (j.output.exists() and j.source.exists() and os.path.samefile(j.output, j.source)):
            raise OutputError(f"{j.output}: output would overwrite the input {inputs_at.get(dst, j.source)}")
        if dst in seen:
            raise OutputError(f"{j.output}: the output of both {seen[dst]} and {j.source}; rename one of them")
        seen[dst] = j.source
        if j.output.is_dir():
            raise OutputError(f"{j.output}: is a directory, expected an output file path")
    if folder is None:
        check_output_path(jobs[0].output)
    return jobs, folder


def run(jobs: Sequence[Job], work: Work, on_file: Callable[[Outcome, int, int], None] | None = None,
        out_dir: Path | None = None) -> Summary:
    """Run ``work`` on each job in order, making its output folder first. A job that raises
    :class:`~audiovae.errors.AudiovaeError` is recorded as failed and the next one goes on (any other exception is a
    bug and propagates). After each job, ``on_file(outcome, done, total)``."""
    summary = Summary(out_dir=out_dir)
    for i, job in enumerate(jobs, 1):
        try:
            try:
                job.output.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OutputError(f"{job.output}: cannot make its folder ({e.strerror})") from None
            outcome = Outcome(job, True, work(job.source, job.output))
        except AudiovaeError as e:
            outcome = Outcome(job, False, str(e))
        summary.outcomes.append(outcome)
        if on_file is not None:
            on_file(outcome, i, len(jobs))
    return summary


def map_files(source: str | os.PathLike[str], work: Work, name: Callable[[Path], str],
              output: str | os.PathLike[str] | None = None, out_dir: str | os.PathLike[str] = ".",
              on_file: Callable[[Outcome, int, int], None] | None = None) -> Summary:
    """Apply ``work`` to ``source`` (a file, or every audio file under a folder): :func:`plan`, then :func:`run`.

    Destinations are all checked before the first file is processed (see :func:`plan`); files that fail are listed
    in ``Summary.failed`` and skipped.
    """
    jobs, folder = plan(source, name, output, out_dir)
    return run(jobs, work, on_file, folder)
