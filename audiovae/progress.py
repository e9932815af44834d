"""Progress bars on a terminal only: in a log file a bar is hundreds of carriage-return lines."""

from __future__ import annotations


def bar_off(progress: bool) -> bool | None:
    """tqdm's ``disable`` for a ``progress`` flag: off when false, else ``None`` (tqdm: shown only on a terminal)."""
    return None if progress else True
