"""The env registry. (First slice: the cheap Pendulum env; the paper's envs are added next.)"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers import RescaleAction, TimeLimit

from mbmpo.envs.spec import EnvSpec


def _pendulum_reward(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """Pendulum-v1's reward from the observation (cos th, sin th, th_dot) before the step.

    The env clips the torque to [-2, 2]; our action space is [-1, 1] rescaled by 2.
    """
    theta = torch.atan2(obs[..., 1], obs[..., 0])
    torque = 2.0 * act[..., 0].clamp(-1.0, 1.0)
    return -(theta**2 + 0.1 * obs[..., 2] ** 2 + 0.001 * torque**2)


_REGISTRY: dict[str, EnvSpec] = {}


def register(spec: EnvSpec) -> EnvSpec:
    """Add ``spec`` to the registry (names are unique)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"env {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


register(
    EnvSpec(
        name="pendulum",
        gym_id="Pendulum-v1",
        horizon=200,
        obs_dim=3,
        act_dim=1,
        reward_fn=_pendulum_reward,
        description="Pendulum-v1 swing-up (cheap, for tests)",
    )
)


def list_envs() -> list[str]:
    """Names of all registered envs, sorted."""
    return sorted(_REGISTRY)


def get_env(name: str) -> EnvSpec:
    """The :class:`EnvSpec` registered as ``name``.

    :raises KeyError: listing the valid names when ``name`` is unknown.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown env {name!r}; valid envs: {', '.join(list_envs())}") from None


def make_env(spec: EnvSpec, seed: int | None = None, **overrides: Any) -> gym.Env:
    """Make ``spec``'s env with actions in [-1, 1] and a TimeLimit at ``spec.horizon``."""
    kwargs = {**spec.kwargs, **overrides}
    env = gym.make(spec.gym_id, max_episode_steps=None, **kwargs)
    env = env.unwrapped  # drop gymnasium's own TimeLimit; ours is at spec.horizon
    env = gym.wrappers.OrderEnforcing(env)
    assert isinstance(env.action_space, gym.spaces.Box)
    low, high = env.action_space.low, env.action_space.high
    if not (np.allclose(low, -1.0) and np.allclose(high, 1.0)):
        env = RescaleAction(env, min_action=-1.0, max_action=1.0)
    env = TimeLimit(env, max_episode_steps=spec.horizon)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env
