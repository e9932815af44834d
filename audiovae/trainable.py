"""What the training engine asks of anything it trains: the :class:`Trainable` protocol.

The engine (:mod:`audiovae.training`) knows nothing of VAEs, speakers or vocoders. A model, a vocoder or a prior is
trainable when it returns one loss per optimiser group (:meth:`Trainable.loss`), names those groups
(:meth:`Trainable.param_groups`), may learn statistics from the data before the first step (:meth:`prepare`), turns
validation outputs into its own metrics (:meth:`validation_metrics`: active units for a VAE, codebook use for a VQ-VAE)
and says what its checkpoint holds (:meth:`export`). :class:`TrainableMixin` gives the neutral defaults, so a new
family only overrides what it needs. This module imports nothing from the rest of the package: models, vocoders and
the engine all depend on it, never the other way round.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

__all__ = ["LossOutput", "Trainable", "TrainableMixin", "ValidationResult"]


@dataclass
class LossOutput:
    """What ``loss`` returns: a scalar per optimiser group, scalars to log, tensors for validation and plots."""

    losses: dict[str, torch.Tensor]
    logs: dict[str, float | torch.Tensor] = field(default_factory=dict)
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)


ValidationResult = tuple[dict[str, torch.Tensor], LossOutput]  # (the batch on the CPU, what loss returned for it)


@runtime_checkable
class Trainable(Protocol):
    """The engine's whole view of a model. ``config`` is a dataclass with ``to_dict()`` (saved with the run)."""

    config: object
    default_task: ClassVar[str]

    def loss(self, batch: dict[str, torch.Tensor], step: int) -> LossOutput:
        """The objective of one batch: ``losses`` has one scalar per group of :meth:`param_groups`."""
        ...

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Disjoint parameter groups, one optimiser each (``train.optim.<group>.*`` tunes each)."""
        ...

    def prepare(self, batches: Iterable[dict[str, torch.Tensor]]) -> None:
        """Learn data statistics (e.g. per-band normalisation) from a sample of training batches, fresh runs only."""
        ...

    def validation_metrics(self, results: list[ValidationResult], step: int) -> dict:
        """Model-specific validation metrics (``valid_*`` keys) from every validation batch and its output."""
        ...

    def preview(self, batch: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        """Titled log-mels ``[n_mels, frames]`` to plot at each validation (input above output); may be empty."""
        ...

    def export(self) -> dict[str, nn.Module]:
        """The named components its checkpoint holds (``{"model": self}`` for a model)."""
        ...

    def check_features(self, mel: object) -> None:
        """Refuse (``ConfigError``) a run whose front end (the run's ``MelConfig``) differs from the one a part it
        was built from expects (a frozen VAE under a prior); nothing to check for a model trained from scratch."""
        ...


class TrainableMixin:
    """Neutral defaults of the :class:`Trainable` methods beyond ``loss`` (which every trainable must define)."""

    default_task: ClassVar[str] = "reconstruct"

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"model": [p for p in self.parameters() if p.requires_grad]}  # type: ignore[attr-defined]

    def prepare(self, batches: Iterable[dict[str, torch.Tensor]]) -> None:
        return None

    def validation_metrics(self, results: list[ValidationResult], step: int) -> dict:
        return {}

    def preview(self, batch: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        return []

    def export(self) -> dict[str, nn.Module]:
        return {"model": self}  # type: ignore[dict-item]

    def check_features(self, mel: object) -> None:
        return None
