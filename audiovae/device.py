"""``--device auto|cpu|cuda`` in one place."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from .errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; ``cuda`` without a GPU is a clear error, not a silent fallback."""
    name = name.lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA GPU is available (use --device auto or cpu)")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"--device {name!r}: choose one of {', '.join(DEVICE_CHOICES)}")


CPU_BF16_ENV = "AUDIOVAE_CPU_BF16"


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): there autocast pays; elsewhere it is emulated.

    ``AUDIOVAE_CPU_BF16=0`` answers no on any CPU (``1`` answers yes): the fp32 paths that CPUs without native bf16
    take, run on one that has it, e.g. to time or test them as on an AVX2-only laptop.
    """
    forced = os.environ.get(CPU_BF16_ENV, "").strip().lower()
    if forced in ("0", "1", "false", "true", "no", "yes"):
        return forced in ("1", "true", "yes")
    if forced and forced != "auto":
        raise ConfigError(f"{CPU_BF16_ENV}={forced!r}: give 0, 1 or auto")
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):  # torch.cpu's own probes (private)
        fn = getattr(torch.cpu, probe, None)
        try:
            if fn is not None and fn():
                return True
        except Exception:  # noqa: BLE001, S112 - a probe that fails means "not known to be supported"
            continue
    return False


@contextlib.contextmanager
def fast_float(device: torch.device) -> Iterator[None]:
    """bf16 autocast where it is native (CUDA, CPUs with :func:`cpu_has_bf16`), and on the CPU denormals flushed to
    zero, for the span of an optimisation over a trained model.

    Elsewhere bf16 is emulated and slower than fp32, so those CPUs stay in fp32: on a 2-core AVX2 CPU one
    convolution's forward and backward was reported at 0.44 s in bf16 against 0.044 s in fp32, and a one-shot test
    of the voice fit took over 8 min in bf16, 58 s in fp32.

    Denormal floats (tiny activations and gradients) take a slow path on x86 CPUs: measured on the voice fit
    (:mod:`audiovae.pipelines.voices`), fp32 steps took 1.2 s and bf16 ones 1.3 s until flushed, then 0.11 s in bf16.
    The flag is process-wide and has no getter, so it is switched back off (torch's default) afterwards.
    """
    flush = device.type == "cpu" and torch.set_flush_denormal(True)
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16,
                            enabled=device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())):
            yield
    finally:
        if flush:
            torch.set_flush_denormal(False)
