"""PR2 reach: goal distribution, observation consistency, and that the goal box is reachable."""

from __future__ import annotations

import mujoco
import numpy as np

from mbmpo.envs import get_env
from mbmpo.envs.pr2_reach import GOAL_HIGH, GOAL_LOW, PR2ReachEnv


def _env() -> PR2ReachEnv:
    env = get_env("pr2-reach").make()
    unwrapped = env.unwrapped
    assert isinstance(unwrapped, PR2ReachEnv)
    return unwrapped


def test_goals_are_uniform_in_the_box_and_shown_by_the_goal_site() -> None:
    env = _env()
    goals = []
    for seed in range(200):
        env.reset(seed=seed)
        goals.append(env.goal.copy())
        np.testing.assert_allclose(env.model.site_pos[env._goal_site_id], env.goal)
    goals_arr = np.array(goals)
    assert np.all(goals_arr >= GOAL_LOW) and np.all(goals_arr <= GOAL_HIGH)
    # Spread over the box (a uniform sample of 200 covers most of each side).
    span = goals_arr.max(0) - goals_arr.min(0)
    assert np.all(span > 0.8 * (GOAL_HIGH - GOAL_LOW))
    np.testing.assert_allclose(goals_arr.mean(0), (GOAL_LOW + GOAL_HIGH) / 2, atol=0.05)


def test_observation_is_qpos_qvel_and_tip_minus_goal_of_the_current_state() -> None:
    env = _env()
    obs, _ = env.reset(seed=1)
    rng = np.random.default_rng(0)
    scratch = mujoco.MjData(env.model)
    for _ in range(20):
        obs, _, _, _, _ = env.step(rng.uniform(-3.0, 3.0, 7))
        np.testing.assert_allclose(obs[:7], env.data.qpos)
        np.testing.assert_allclose(obs[7:14], env.data.qvel)
        # Tip recomputed from scratch for the observed joint angles.
        scratch.qpos[:] = obs[:7]
        mujoco.mj_kinematics(env.model, scratch)
        np.testing.assert_allclose(
            obs[14:17], scratch.site_xpos[env._tip_id] - env.goal, atol=1e-12
        )


def test_random_torques_cover_the_goal_box() -> None:
    env = _env()
    rng = np.random.default_rng(0)
    tips = []
    for seed in range(10):
        env.reset(seed=seed)
        for _ in range(200):
            env.step(rng.uniform(-3.0, 3.0, 7))
            tips.append(env.tip_position())
    tips_arr = np.array(tips)
    assert np.all(tips_arr.min(0) < GOAL_LOW) and np.all(tips_arr.max(0) > GOAL_HIGH)
    inside = np.all((tips_arr >= GOAL_LOW) & (tips_arr <= GOAL_HIGH), axis=1)
    assert inside.mean() > 0.01


def _inverse_kinematics(
    env: PR2ReachEnv, target: np.ndarray, q0: np.ndarray
) -> tuple[float, np.ndarray]:
    """Damped least squares on the tip position within the joint ranges: (distance, qpos)."""
    data = mujoco.MjData(env.model)
    low, high = env.model.jnt_range.T
    jac = np.zeros((3, env.model.nv))
    q = q0.copy()
    for _ in range(300):
        data.qpos[:] = q
        mujoco.mj_kinematics(env.model, data)
        mujoco.mj_comPos(env.model, data)
        err = target - data.site_xpos[env._tip_id]
        mujoco.mj_jacSite(env.model, data, jac, None, env._tip_id)
        q = np.clip(
            q + 0.5 * jac.T @ np.linalg.solve(jac @ jac.T + 1e-3 * np.eye(3), err), low, high
        )
    data.qpos[:] = q
    mujoco.mj_kinematics(env.model, data)
    return float(np.linalg.norm(target - data.site_xpos[env._tip_id])), q


def test_every_corner_of_the_goal_box_is_reachable_within_the_joint_ranges() -> None:
    env = _env()
    low, high = env.model.jnt_range.T
    corners = np.array(np.meshgrid(*zip(GOAL_LOW, GOAL_HIGH, strict=True))).reshape(3, -1).T
    rng = np.random.default_rng(0)
    for corner in corners:
        best = min(_inverse_kinematics(env, corner, rng.uniform(low, high))[0] for _ in range(10))
        assert best < 1e-3, (corner, best)


def test_jacobian_transpose_controller_reaches_sampled_goals() -> None:
    """A simple torque controller drives the tip to the episode's goal from the start pose."""
    env = _env()
    jac = np.zeros((3, env.model.nv))
    for seed in range(8):
        obs, _ = env.reset(seed=seed)
        start_dist = np.linalg.norm(obs[14:17])
        for _ in range(200):
            mujoco.mj_jacSite(env.model, env.data, jac, None, env._tip_id)
            torque = 20.0 * jac.T @ (-obs[14:17]) - 2.0 * obs[7:14]
            obs, _, _, _, _ = env.step(np.clip(torque, -3.0, 3.0))
        final_dist = np.linalg.norm(obs[14:17])
        assert start_dist > 0.1
        assert final_dist < 0.02, (env.goal, start_dist, final_dist)
