"""Atomic file writes: a crash, a full disk or a bad value never leaves a half-written output behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import AudiovaeError


class OutputError(AudiovaeError):
    """The output path cannot be written (missing or read-only folder, a directory in the way...)."""


def check_output_path(path: str | os.PathLike[str], inputs: tuple[str | os.PathLike[str], ...] = ()) -> Path:
    """Validate an output path before any work is done, so long jobs fail early with a clear message; an output that
    is one of ``inputs`` (the same file, by any path) is refused: no command overwrites what it reads."""
    out = Path(path)
    for given in inputs:
        src = Path(given)
        if out.resolve() == src.resolve() or (out.exists() and src.exists() and os.path.samefile(out, src)):
            raise OutputError(f"{out}: output would overwrite the input {src}")
    if out.is_dir():
        raise OutputError(f"{out}: is a directory, expected an output file path")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{out}: output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{out}: output folder {parent} is not writable")
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, on failure delete it.

    The temporary file lives in the same folder so that the final ``os.replace`` is atomic (same filesystem).
    It keeps the target's suffix so that writers which infer the format from the extension still work.
    """
    out = check_output_path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.tmp-", suffix=out.suffix, dir=out.parent)
    except OSError as e:  # a folder that refuses new files although its mode allows them (root, /proc, a full disk)
        raise OutputError(f"{out}: cannot write in {out.parent or '.'} ({e.strerror})") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # after the writer (some writers replace the file): mkstemp's 0600 -> the mode a plain open() would give
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as f:  # flush to disk before the rename makes the file visible
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except OSError as e:  # the writer or the flush failed (no space left, quota, I/O error): nothing replaced
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise write_failure(out, e) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_failure(path: str | os.PathLike[str], error: BaseException) -> OutputError:
    """One line for a writer that failed part-way (the temporary file is gone, any earlier file untouched). Writers
    word a full disk in their own ways (libsndfile: an empty message; torch: "unexpected pos"), so a folder with
    less than 1 MB free is named as the likely reason."""
    out = Path(path)
    text = str(error).strip()
    reason = getattr(error, "strerror", None) or (text.splitlines()[0] if text else "") or type(error).__name__
    with contextlib.suppress(OSError):
        if shutil.disk_usage(out.parent if str(out.parent) else ".").free < 1 << 20 and "space" not in reason:
            reason = f"No space left on device: {reason}"
    kept = "the existing file is unchanged" if out.exists() else "nothing was written"
    return OutputError(f"{out}: could not be written ({reason}); {kept}")


@contextlib.contextmanager
def write_errors(path: str | os.PathLike[str], *kinds: type[BaseException]) -> Iterator[None]:
    """Around a writer inside :func:`atomic_path`: its own exception types ``kinds`` (libsndfile's, safetensors',
    torch's zip writer's ``RuntimeError``: how each words a full disk) become :func:`write_failure`'s one line.
    Readers inside must raise their own errors first, so that an input's fault is not blamed on ``path``."""
    try:
        yield
    except kinds as e:
        raise write_failure(path, e) from None


def remove_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete what :func:`atomic_path` leaves when its process is killed (``.NAME.tmp-XXXX``) in ``folder``; returns
    the files removed. Only for folders one process writes (a training run's), never a shared one."""
    removed = [p for p in Path(folder).glob(".*.tmp-*") if p.is_file()]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` through :func:`atomic_path`: the whole file or nothing."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)
