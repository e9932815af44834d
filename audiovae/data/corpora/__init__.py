"""Offline corpus builders: each turns packages from Debian/PyPI into audio files, a manifest and a summary."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ...progress import bar_off


def render_in_processes(render: Callable[..., Any], jobs: Sequence[Any], out: Path, config: Any, workers: int,
                        desc: str, unit: str, progress: bool, chunksize: int) -> Iterator[Any]:
    """``render(job, out, config)`` for every job on ``workers`` processes (0: one per CPU), results in job order
    (so a corpus does not depend on the number of workers), with a progress bar."""
    with ProcessPoolExecutor(workers or os.cpu_count() or 1) as pool:
        results = pool.map(render, jobs, [out] * len(jobs), [config] * len(jobs), chunksize=chunksize)
        yield from tqdm(results, total=len(jobs), desc=desc, unit=unit, disable=bar_off(progress))
