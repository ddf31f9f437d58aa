"""EnvSpec: one environment as the suite sees it (gymnasium id + settings, horizon, torch reward
and termination functions for the model-based methods)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch

RewardFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``reward(obs [..., obs], act [..., act], next_obs [..., obs]) -> [...]`` (float)."""
TerminationFn = Callable[[torch.Tensor], torch.Tensor]
"""``termination(next_obs [..., obs]) -> [...]`` (bool)."""


@dataclass(frozen=True)
class EnvSpec:
    """A registered environment.

    Every env made by :meth:`make` has a Box action space of [-1, 1]^act_dim (rescaled if the
    underlying env differs) and is time-limited at ``horizon``. ``reward`` takes the *unclipped*
    action the policy sampled, as the simulator's control cost does.
    """

    name: str
    """Registry name, e.g. ``"halfcheetah"``."""
    gym_id: str
    """gymnasium id, e.g. ``"HalfCheetah-v5"``."""
    horizon: int
    """Episode length cap (real and, by default, imagined)."""
    obs_dim: int
    """Observation size."""
    act_dim: int
    """Action size."""
    reward_fn: RewardFn
    """Batched torch reward r(s, a, s') on any leading batch shape."""
    termination_fn: TerminationFn | None = None
    """Batched torch termination on next_obs; ``None`` when the env never terminates."""
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments for ``gym.make``."""
    description: str = ""
    """One line for ``--help`` listings."""

    def make(self, seed: int | None = None, **overrides: Any) -> gym.Env:
        """A fresh env (action space [-1, 1], TimeLimit at ``horizon``), reset with ``seed`` if given."""
        from mbmpo.envs.registry import make_env

        return make_env(self, seed=seed, **overrides)

    def reward(self, obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """Model reward ``[...]`` for transitions ``obs [..., obs], act [..., act], next_obs [..., obs]``."""
        return self.reward_fn(obs, act, next_obs)

    def termination(self, next_obs: torch.Tensor) -> torch.Tensor:
        """Bool ``[...]``: whether ``next_obs [..., obs]`` is terminal (all False if the env has none)."""
        if self.termination_fn is None:
            return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)
        return self.termination_fn(next_obs)
