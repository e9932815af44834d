"""Training: the engine (:mod:`.engine`) against the :class:`~audiovae.trainable.Trainable` protocol, datasets
chosen by config (:mod:`.data`), exact-resume state (:mod:`.state`) and run logs (:mod:`.logging`).

Where things go: a new model family is a ``Trainable`` registered in :data:`audiovae.models.MODELS`; a new kind of
training item is a builder in :data:`.data.DATASETS` (chosen by ``data.dataset``). The engine itself has no branch on
what it trains.
"""

from ..config import DataConfig, RunConfig, TrainConfig, load_run_config, packaged_configs, run_config_from_dict
from ..models import CollapseWarning
from ..trainable import LossOutput, Trainable, TrainableMixin
from .data import DATASETS, TrainData, build_data
from .engine import Trainer, amp_enabled, train
from .state import epoch_order, lr_factor

__all__ = ["RunConfig", "DataConfig", "TrainConfig", "Trainer", "load_run_config", "packaged_configs", "train",
           "run_config_from_dict", "epoch_order", "lr_factor", "CollapseWarning", "Trainable", "TrainableMixin",
           "LossOutput", "DATASETS", "TrainData", "build_data", "amp_enabled"]
