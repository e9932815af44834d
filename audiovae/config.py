"""Run configuration: moved to :mod:`audiovae.training.config` (it checks ``model`` against the trainables registry,
:mod:`audiovae.training.registry`); re-exported here so that ``from audiovae.config import ...`` keeps working."""

from __future__ import annotations

from .training.config import (
    DATASET_KINDS,
    DataConfig,
    RunConfig,
    TrainConfig,
    load_run_config,
    packaged_configs,
    run_config_from_dict,
)

__all__ = ["RunConfig", "DataConfig", "TrainConfig", "load_run_config", "packaged_configs", "run_config_from_dict",
           "DATASET_KINDS"]
