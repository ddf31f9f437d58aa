"""Batched torch reward and termination functions, one pair per registered env.

Every function works on any leading batch shape ``[...]`` and keeps the input's dtype and
device: ``reward(obs [..., obs], act [..., act], next_obs [..., obs]) -> [...]`` and
``termination(next_obs [..., obs]) -> bool [...]``.

Rewards follow the MB-MPO authors' observation-based definitions (reference.md §2) with the
coefficients gymnasium v5 uses under our registry settings, so that they match the simulator's
own reward as closely as the observation allows. The MuJoCo simulators reward a finite-difference
x velocity ``(x_after - x_before) / dt``; the model rewards use the observed x velocity at the
end of the step (``qvel[0]`` in the observation). The measured gaps per env are printed by
``tests/envs`` and written down in each function's docstring (per-step |gap| over ~4-6k real
transitions from random, beyond-bounds, linear-feedback and sinusoidal actions).

The per-step gaps cancel largely over an episode (both velocities integrate to the same
displacement). Averaging the velocity before and after the step, ``(s[i] + s'[i]) / 2``, would
cut the per-step gap by 5-50x (measured: Walker2d mean 0.124 -> 0.009, Ant 0.088 -> 0.020); we
keep the paper's ``s'[i]``.

``act`` is the action in the registry's [-1, 1] action space, *unclipped* (the simulators' control
costs use the action as passed to ``step``, before MuJoCo clamps it to the control range).
"""

from __future__ import annotations

import torch


def _sq_norm(x: torch.Tensor) -> torch.Tensor:
    """Sum of squares over the last axis: ``[..., d] -> [...]``."""
    return (x * x).sum(dim=-1)


# --------------------------------------------------------------------------------------------
# Pendulum-v1 (cheap, for tests)


def pendulum_reward(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """Pendulum-v1's reward from the observation ``(cos th, sin th, th_dot)`` *before* the step.

    The env clips the torque to [-2, 2]; our action space is [-1, 1] rescaled by 2. Exact up to
    float rounding (Pendulum's reward is a function of the pre-step state and the clipped torque).
    """
    theta = torch.atan2(obs[..., 1], obs[..., 0])
    torque = 2.0 * act[..., 0].clamp(-1.0, 1.0)
    return -(theta**2 + 0.1 * obs[..., 2] ** 2 + 0.001 * torque**2)


# --------------------------------------------------------------------------------------------
# InvertedPendulum-v5 (cheap, has a termination)

INVERTED_PENDULUM_MAX_ANGLE = 0.2
"""InvertedPendulum-v5 terminates when ``|pole angle| > 0.2`` (obs[1])."""


def inverted_pendulum_termination(next_obs: torch.Tensor) -> torch.Tensor:
    """Terminal when the pole angle ``obs[1]`` leaves [-0.2, 0.2] or any entry is not finite (exact)."""
    finite = torch.isfinite(next_obs).all(dim=-1)
    return ~finite | (next_obs[..., 1].abs() > INVERTED_PENDULUM_MAX_ANGLE)


def inverted_pendulum_reward(
    obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """+1 while the pole is up, 0 on the terminal step (InvertedPendulum-v5's reward, exact)."""
    return (~inverted_pendulum_termination(next_obs)).to(next_obs.dtype)


# --------------------------------------------------------------------------------------------
# Swimmer-v5 (frame_skip=1): obs = qpos[2:] (3), qvel (5); obs[3] = x velocity

SWIMMER_CTRL_COST = 1e-4
"""Swimmer-v5's default ``ctrl_cost_weight``, equal to the paper's 1e-4."""


def swimmer_reward(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """``s'[3] - 1e-4 |a|^2``.

    Swimmer integrates with RK4, so the observed end-of-step x velocity differs from the
    simulator's finite-difference velocity over the step even at frame_skip=1. Measured per-step
    gap: max 0.11, mean 0.012 (typical |reward| 0.05-0.5). Control cost exact.
    """
    return next_obs[..., 3] - SWIMMER_CTRL_COST * _sq_norm(act)


# --------------------------------------------------------------------------------------------
# HalfCheetah-v5 (frame_skip=1): obs = qpos[1:] (8), qvel (9); obs[8] = x velocity

HALFCHEETAH_CTRL_COST = 0.1
"""HalfCheetah-v5's default ``ctrl_cost_weight``, equal to the paper's 0.1."""


def halfcheetah_reward(
    obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor
) -> torch.Tensor:
    """``s'[8] - 0.1 |a|^2``.

    With frame_skip=1 and MuJoCo's semi-implicit Euler integrator the root slide joint moves by
    exactly ``dt * qvel_after``, so the observed velocity equals the simulator's finite
    difference up to float rounding (with frame_skip=5, gymnasium's default, it would not).
    """
    return next_obs[..., 8] - HALFCHEETAH_CTRL_COST * _sq_norm(act)


# --------------------------------------------------------------------------------------------
# Hopper-v5 (defaults, frame_skip=4): obs = qpos[1:] (5), clip(qvel, +-10) (6)

HOPPER_CTRL_COST = 1e-3
"""Hopper-v5's default ``ctrl_cost_weight``, equal to the paper's 1e-3."""


def hopper_termination(next_obs: torch.Tensor) -> torch.Tensor:
    """Terminal unless ``z > 0.7``, ``|angle| < 0.2`` and every ``|s[1:]| < 100`` (Hopper-v5).

    z = obs[0], angle = obs[1]. The simulator checks the state range on the *unclipped* qvel, but
    the observation clips velocities to +-10, so that part can never fire here; a true velocity
    above 100 is the only way this function and the simulator disagree. NaN counts as terminal
    (every comparison with NaN is False, as in the simulator).
    """
    z = next_obs[..., 0]
    angle = next_obs[..., 1]
    rest = next_obs[..., 1:]
    healthy = (
        (z > 0.7) & (angle > -0.2) & (angle < 0.2) & ((rest > -100.0) & (rest < 100.0)).all(dim=-1)
    )
    return ~healthy


def hopper_reward(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """``s'[5] + healthy(s') - 1e-3 |a|^2``.

    The paper writes ``+ 1``; gymnasium v5 pays the alive bonus only while healthy, i.e. not on
    the terminal step, and so do we. The forward term is the end-of-step velocity (clipped to
    +-10 in the observation) where the simulator averages over the 4 substeps of the step
    (finite difference). Measured per-step gap: max 0.21, mean 0.054; alive bonus and control
    cost exact.
    """
    healthy = (~hopper_termination(next_obs)).to(next_obs.dtype)
    return next_obs[..., 5] + healthy - HOPPER_CTRL_COST * _sq_norm(act)


# --------------------------------------------------------------------------------------------
# Walker2d-v5 (defaults, frame_skip=4): obs = qpos[1:] (8), clip(qvel, +-10) (9)

WALKER2D_CTRL_COST = 1e-3
"""Walker2d-v5's default ``ctrl_cost_weight``, equal to the paper's 1e-3."""


def walker2d_termination(next_obs: torch.Tensor) -> torch.Tensor:
    """Terminal unless ``0.8 < z < 2`` and ``-1 < angle < 1`` (Walker2d-v5, exact; NaN terminal)."""
    z = next_obs[..., 0]
    angle = next_obs[..., 1]
    healthy = (z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0)
    return ~healthy


def walker2d_reward(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """``s'[8] + healthy(s') - 1e-3 |a|^2`` (alive bonus and velocity gap as for Hopper).

    Measured per-step gap (velocity only): max 0.61, mean 0.12, largest at foot impacts.
    """
    healthy = (~walker2d_termination(next_obs)).to(next_obs.dtype)
    return next_obs[..., 8] + healthy - WALKER2D_CTRL_COST * _sq_norm(act)


# --------------------------------------------------------------------------------------------
# Ant-v5 (27-dim obs, frame_skip=2, ctrl_cost_weight=0.005): obs = qpos[2:] (13), qvel (14)

ANT_CTRL_COST = 0.005
"""The paper's Ant control cost weight; the registry passes the same value to Ant-v5 (whose own
default is 0.5)."""
ANT_CONTACT_COST_BOUND = 5e-4 * 14 * 6
"""Largest possible Ant-v5 contact cost per step: weight 5e-4 times 14 bodies x 6 force entries,
each clipped to [-1, 1]. The model reward cannot include it (it is not in the 27-dim obs)."""


def ant_termination(next_obs: torch.Tensor) -> torch.Tensor:
    """Terminal unless every entry is finite and ``0.2 <= z <= 1`` (z = obs[0]; Ant-v5, inclusive).

    The simulator's finiteness check also covers the x, y position, which the observation omits.
    """
    z = next_obs[..., 0]
    healthy = torch.isfinite(next_obs).all(dim=-1) & (z >= 0.2) & (z <= 1.0)
    return ~healthy


def ant_reward(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """``s'[13] + healthy(s') - 0.005 |a|^2``.

    Two simulator terms cannot be reproduced from the observation:

    * the contact cost ``5e-4 * |clip(cfrc_ext, -1, 1)|^2`` (between 0 and
      :data:`ANT_CONTACT_COST_BOUND` = 0.042 per step), as the contact forces are not observed;
    * the simulator's forward velocity is a finite difference of the torso's ``xpos``, which
      MuJoCo computes at the *start* of the last substep (it lags the state by one substep), while
      ``s'[13]`` is the free joint's velocity at the end of the step.

    Measured per-step gap: velocity max 1.13, mean 0.088 (largest at ground impacts); contact
    cost at most 0.012 observed. Alive bonus and control cost exact.
    """
    healthy = (~ant_termination(next_obs)).to(next_obs.dtype)
    return next_obs[..., 13] + healthy - ANT_CTRL_COST * _sq_norm(act)


# --------------------------------------------------------------------------------------------
# PR2 reach (our env): obs = qpos (7), qvel (7), tip - goal (3)

PR2_CTRL_COST = 0.005
"""Weight of ``|torque / 3|^2``; with our [-1, 1] actions (torque = 3 a) this is ``0.005 |a|^2``."""


def pr2_reach_reward(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """``-|tip - goal|^2 - 0.005 |a|^2`` with tip - goal = ``s'[14:17]`` (exact up to rounding)."""
    return -_sq_norm(next_obs[..., 14:17]) - PR2_CTRL_COST * _sq_norm(act)


# --------------------------------------------------------------------------------------------
# Point (our env): obs = position (2), goal at the origin


def point_reward(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """``-|p'|``: minus the distance of the next position to the goal at the origin (exact)."""
    return -torch.linalg.vector_norm(next_obs[..., :2], dim=-1)
