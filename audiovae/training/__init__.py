"""Training: the engine (:mod:`.engine`) against the :class:`~audiovae.trainable.Trainable` protocol, what it can
build (:mod:`.registry`), the run config (:mod:`.config`), datasets chosen by config (:mod:`.data`), exact-resume
state (:mod:`.state`) and run logs (:mod:`.logging`).

Where things go: a new model family is a ``Trainable`` registered in :data:`audiovae.models.MODELS` (which
:data:`.registry.TRAINABLES` reads through to); a trainable that is not a model (a prior's or a vocoder's training)
is registered in :data:`.registry.TRAINABLES`; a new kind of training item is a builder in :data:`.data.DATASETS`
(chosen by ``data.dataset``). The engine itself has no branch on what it trains.
"""

from ..models import CollapseWarning
from ..trainable import LossOutput, Trainable, TrainableMixin
from .config import DataConfig, RunConfig, TrainConfig, load_run_config, packaged_configs, run_config_from_dict
from .data import DATASETS, TrainData, build_data
from .engine import Trainer, amp_enabled, train
from .registry import TRAINABLES, build_trainable
from .state import epoch_order, lr_factor

__all__ = ["RunConfig", "DataConfig", "TrainConfig", "Trainer", "load_run_config", "packaged_configs", "train",
           "run_config_from_dict", "epoch_order", "lr_factor", "CollapseWarning", "Trainable", "TrainableMixin",
           "LossOutput", "DATASETS", "TrainData", "build_data", "amp_enabled", "TRAINABLES", "build_trainable"]
