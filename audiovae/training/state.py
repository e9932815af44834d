"""Exact resume: the data order, the learning-rate schedule and the random state as pure functions of the saved state.

Nothing here patches private attributes of torch objects: the learning rate is a function of the step
(:func:`lr_factor`), set on every optimiser group before each step, and the data order is a function of
``(seed, epoch)`` (:func:`epoch_order`), so a resumed run needs only the step, the epoch position, the optimiser
moments and the RNG states, all of which load with ``weights_only=True``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import yaml

from ..checkpoint import CheckpointError, load_torch_state
from ..errors import ConfigError

__all__ = ["epoch_order", "lr_factor", "rng_state", "set_rng_state", "check_resumable", "load_state"]


def epoch_order(seed: int, epoch: int, n: int, batch: int) -> torch.Tensor:
    """Global sample order of one epoch, cut to whole batches: a permutation seeded by ``(seed, epoch)`` only, so an
    interrupted run resumes on the same data (tiled when the data set is smaller than one batch)."""
    g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
    order = torch.cat([torch.randperm(n, generator=g) for _ in range(max(1, -(-batch // n)))])
    return order[: len(order) // batch * batch]


def lr_factor(step: int, warmup: int, total: int, schedule: str) -> float:
    """Learning-rate multiplier: linear warmup, then constant or cosine down to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _first_difference(a, b, prefix: str = "") -> str | None:  # noqa: ANN001
    """Dotted key of the first value that differs between two nested dicts, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _first_difference(a.get(k), b.get(k), f"{prefix}{k}.")
            if d:
                return d
        return None
    return None if a == b else f"{prefix.rstrip('.')} ({b!r} in the saved run, {a!r} now)"


def check_resumable(saved: dict, resolved_yaml: str, out_dir: Path) -> None:
    """Refuse to resume when the model or front end changed since the state was saved (naming the first key)."""
    before = yaml.safe_load(saved.get("config", "")) or {}
    now = yaml.safe_load(resolved_yaml)
    for section in ("model", "mel"):
        diff = _first_difference(now.get(section), before.get(section), f"{section}.")
        if diff:
            raise ConfigError(f"cannot resume {out_dir}: {diff}")


def load_state(path: Path) -> dict:
    """The saved training state (written by ``checkpoint.save_torch_state``), checked to hold what resume needs."""
    state = load_torch_state(path)
    missing = {"model", "optimizers", "step", "epoch", "batch_in_epoch"} - set(state)
    if missing:
        raise CheckpointError(f"{path}: training state lacks {', '.join(sorted(missing))}")
    return state
