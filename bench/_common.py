"""Shared helpers for the benchmarks: best-of-N timing in alternating blocks, headers, a default corpus and short
training runs (not part of the package)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch


def _once(fn: Callable[[], object], sync: bool) -> float:
    t0 = time.perf_counter()
    fn()
    if sync:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def best_of(fn: Callable[[], object], repeat: int = 7, warmup: int = 1, sync: bool = False) -> float:
    """Best wall time in seconds over ``repeat`` runs after ``warmup`` runs (synchronising CUDA when asked)."""
    for _ in range(warmup):
        _once(fn, sync)
    return min(_once(fn, sync) for _ in range(repeat))


def race(fns: dict[str, Callable[[], object]], repeat: int = 7, rounds: int = 3,
         sync: bool = False) -> dict[str, float]:
    """Best time of each function, measured in alternating blocks (A x repeat, B x repeat, A x repeat, ...).

    Blocks rather than single interleaved calls: right after one library runs, its idle worker threads (OpenBLAS,
    OpenMP) still spin for a while and steal cores from the other, which would penalise whichever runs second.
    Each block starts with one untimed warm-up call; alternating blocks spread machine noise over both.
    """
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], best_of(fn, repeat, warmup=1, sync=sync))
    return best


def example_path() -> Path:
    """The bundled example clip (5 s of speech at 22.05 kHz)."""
    import audiovae

    return Path(audiovae.__file__).parent / "assets" / "example.wav"


def header(title: str) -> None:
    print(f"# {title}  (torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          f"{', CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else ''})")


def speech_data(data: str | None, tmp: str) -> str:
    """``data`` when given, else a speech corpus of 80 sentences built under ``tmp`` (about a minute)."""
    if data is not None:
        return data
    from audiovae.data.corpora.speech import SpeechCorpusConfig, build_speech_corpus

    out = str(Path(tmp) / "speech")
    build_speech_corpus(out, SpeechCorpusConfig(sentences=80), progress=False)
    return out


def short_run(config: str, data: str, cache: str | None, steps: int, device: str, out, *extra: str):  # noqa: ANN001, ANN201
    """Train ``config`` for ``steps`` on ``data`` (validating and checkpointing only at the end); return the finished
    Trainer and the wall seconds of ``fit``."""
    from audiovae.training import Trainer, load_run_config

    overrides = [f"data.train={data}", f"data.cache_dir={cache if cache else 'null'}", f"train.steps={steps}",
                 f"train.out_dir={out}", f"train.log_every={max(1, steps // 10)}", f"train.valid_every={steps}",
                 f"train.checkpoint_every={steps}", *extra]
    trainer = Trainer(load_run_config(config, overrides), device=device, progress=False)
    t0 = time.perf_counter()
    try:
        trainer.fit()
    finally:
        trainer.close()
    return trainer, time.perf_counter() - t0
