"""Rollouts: real-env sampling (lock-step vector of envs) and imagined rollouts in the ensemble."""

from mbmpo.rollouts.imagined import PROPAGATIONS, ImaginedBatch, StartStateSampler, imagine
from mbmpo.rollouts.real import EpisodeBatch, RealSampler

__all__ = [
    "PROPAGATIONS",
    "EpisodeBatch",
    "ImaginedBatch",
    "RealSampler",
    "StartStateSampler",
    "imagine",
]
