"""The dynamics model side: transition buffer, batched dynamics ensemble, its trainer."""

from mbmpo.models.buffer import TransitionBuffer
from mbmpo.models.ensemble import DynamicsEnsemble, FrozenEnsemble
from mbmpo.models.trainer import EnsembleTrainer, ModelTrainerConfig

__all__ = [
    "DynamicsEnsemble",
    "EnsembleTrainer",
    "FrozenEnsemble",
    "ModelTrainerConfig",
    "TransitionBuffer",
]
