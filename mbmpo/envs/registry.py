"""The env registry: name -> :class:`EnvSpec` (gymnasium id + settings, horizon, torch reward and
termination), per reference.md §2.

Importing this module also registers our own envs with gymnasium (``mbmpo/Point-v0``,
``mbmpo/PR2Reach-v0``), so ``gym.make`` finds them.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import RescaleAction, TimeLimit

from mbmpo.envs import rewards as R
from mbmpo.envs.initial_states import sample_initial_states
from mbmpo.envs.mujoco_messages import install_warning_filter
from mbmpo.envs.spec import EnvSpec

POINT_GYM_ID = "mbmpo/Point-v0"
PR2_REACH_GYM_ID = "mbmpo/PR2Reach-v0"


def _register_gym_envs() -> None:
    """Register our own envs with gymnasium (idempotent)."""
    if POINT_GYM_ID not in gym.registry:
        gym.register(id=POINT_GYM_ID, entry_point="mbmpo.envs.point:PointEnv", max_episode_steps=50)
    if PR2_REACH_GYM_ID not in gym.registry:
        gym.register(
            id=PR2_REACH_GYM_ID,
            entry_point="mbmpo.envs.pr2_reach:PR2ReachEnv",
            max_episode_steps=200,
        )


_register_gym_envs()

_REGISTRY: dict[str, EnvSpec] = {}


def register(spec: EnvSpec) -> EnvSpec:
    """Add ``spec`` to the registry (names are unique)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"env {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


# -- the six environments of Figure 1 (horizon 200) ------------------------------------------
register(
    EnvSpec(
        name="swimmer",
        gym_id="Swimmer-v5",
        horizon=200,
        obs_dim=8,
        act_dim=2,
        reward_fn=R.swimmer_reward,
        kwargs={"frame_skip": 1},
        description="Swimmer-v5, frame_skip=1 (Figure 1)",
    )
)
register(
    EnvSpec(
        name="halfcheetah",
        gym_id="HalfCheetah-v5",
        horizon=200,
        obs_dim=17,
        act_dim=6,
        reward_fn=R.halfcheetah_reward,
        kwargs={"frame_skip": 1},
        description="HalfCheetah-v5, frame_skip=1 (Figures 1, 2)",
    )
)
register(
    EnvSpec(
        name="hopper",
        gym_id="Hopper-v5",
        horizon=200,
        obs_dim=11,
        act_dim=3,
        reward_fn=R.hopper_reward,
        termination_fn=R.hopper_termination,
        description="Hopper-v5, defaults (Figures 1, 2)",
    )
)
register(
    EnvSpec(
        name="walker2d",
        gym_id="Walker2d-v5",
        horizon=200,
        obs_dim=17,
        act_dim=6,
        reward_fn=R.walker2d_reward,
        termination_fn=R.walker2d_termination,
        description="Walker2d-v5, defaults (Figures 1, 2)",
    )
)
register(
    EnvSpec(
        name="ant",
        gym_id="Ant-v5",
        horizon=200,
        obs_dim=27,
        act_dim=8,
        reward_fn=R.ant_reward,
        termination_fn=R.ant_termination,
        kwargs={
            "include_cfrc_ext_in_observation": False,
            "frame_skip": 2,
            "ctrl_cost_weight": R.ANT_CTRL_COST,
        },
        description="Ant-v5, 27-dim obs, frame_skip=2, ctrl cost 0.005 (Figures 1, 2)",
    )
)
register(
    EnvSpec(
        name="pr2-reach",
        gym_id=PR2_REACH_GYM_ID,
        horizon=200,
        obs_dim=17,
        act_dim=7,
        reward_fn=R.pr2_reach_reward,
        description="7-DoF PR2 arm reaching a random 3-D goal, our MuJoCo env (Figures 1, 2)",
    )
)

# -- long horizon (Figure 5) -----------------------------------------------------------------
register(
    EnvSpec(
        name="halfcheetah-h1000",
        gym_id="HalfCheetah-v5",
        horizon=1000,
        obs_dim=17,
        act_dim=6,
        reward_fn=R.halfcheetah_reward,
        kwargs={"frame_skip": 1},
        description="HalfCheetah-v5, frame_skip=1, horizon 1000 (Figure 5)",
    )
)

# -- cheap envs for tests --------------------------------------------------------------------
register(
    EnvSpec(
        name="pendulum",
        gym_id="Pendulum-v1",
        horizon=200,
        obs_dim=3,
        act_dim=1,
        reward_fn=R.pendulum_reward,
        description="Pendulum-v1 swing-up (cheap, for tests)",
    )
)
register(
    EnvSpec(
        name="inverted-pendulum",
        gym_id="InvertedPendulum-v5",
        horizon=200,
        obs_dim=4,
        act_dim=1,
        reward_fn=R.inverted_pendulum_reward,
        termination_fn=R.inverted_pendulum_termination,
        description="InvertedPendulum-v5 with its termination (cheap, for tests)",
    )
)
register(
    EnvSpec(
        name="point",
        gym_id=POINT_GYM_ID,
        horizon=50,
        obs_dim=2,
        act_dim=2,
        reward_fn=R.point_reward,
        description="2-D point moving to the origin, pure numpy (learning tests, < 1 min)",
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
    install_warning_filter()
    kwargs = {**spec.kwargs, **overrides}
    env = gym.make(spec.gym_id, max_episode_steps=None, **kwargs)
    env = env.unwrapped  # drop gymnasium's own TimeLimit; ours is at spec.horizon
    env = gym.wrappers.OrderEnforcing(env)
    assert isinstance(env.action_space, gym.spaces.Box)
    low, high = env.action_space.low, env.action_space.high
    if not (np.allclose(low, -1.0) and np.allclose(high, 1.0)):
        ones = np.ones(env.action_space.shape, dtype=env.action_space.dtype)
        env = RescaleAction(env, min_action=-ones, max_action=ones)
    env = TimeLimit(env, max_episode_steps=spec.horizon)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


__all__ = ["get_env", "list_envs", "make_env", "register", "sample_initial_states"]
