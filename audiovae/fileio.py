"""Atomic file writes: a crash, a full disk or a bad value never leaves a half-written output behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import AudiovaeError


class OutputError(AudiovaeError):
    """The output path cannot be written (missing or read-only folder, a directory in the way...)."""


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Validate an output path before any work is done, so long jobs fail early with a clear message."""
    out = Path(path)
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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.tmp-", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # after the writer (some writers replace the file): mkstemp's 0600 -> the mode a plain open() would give
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as f:  # flush to disk before the rename makes the file visible
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` through :func:`atomic_path`: the whole file or nothing."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)
