"""The point env: dynamics, and the documented returns of the random and the optimal policy."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from mbmpo.envs import get_env
from mbmpo.envs.point import STEP, PointEnv

DOCUMENTED_RANDOM_RETURN = -44.8
DOCUMENTED_OPTIMAL_RETURN = -2.3
"""The returns written in ``mbmpo/envs/point.py``'s docstring."""


def _returns(act_fn: Callable[[np.ndarray, np.random.Generator], np.ndarray], n: int) -> np.ndarray:
    spec = get_env("point")
    env = spec.make()
    rng = np.random.default_rng(7)
    out = np.empty(n)
    for ep in range(n):
        obs, _ = env.reset(seed=10_000 + ep)
        total, done = 0.0, False
        while not done:
            obs, rew, terminated, truncated, _ = env.step(act_fn(obs, rng))
            total += float(rew)
            done = terminated or truncated
        out[ep] = total
    return out


def test_dynamics_are_a_clipped_single_integrator() -> None:
    env = PointEnv()
    obs, _ = env.reset(seed=0)
    assert np.all(np.abs(obs) <= 1.0)
    nxt, rew, terminated, truncated, _ = env.step(np.array([0.5, -3.0]))
    np.testing.assert_allclose(nxt, obs + STEP * np.array([0.5, -1.0]))
    assert rew == pytest.approx(-np.linalg.norm(nxt))
    assert not terminated and not truncated


def test_documented_returns_and_a_clear_gap() -> None:
    random_returns = _returns(lambda obs, rng: rng.uniform(-1.0, 1.0, 2), 400)
    optimal_returns = _returns(lambda obs, rng: PointEnv.optimal_action(obs), 400)
    for returns, documented in (
        (random_returns, DOCUMENTED_RANDOM_RETURN),
        (optimal_returns, DOCUMENTED_OPTIMAL_RETURN),
    ):
        stderr = returns.std() / np.sqrt(len(returns))
        assert abs(returns.mean() - documented) < 4 * stderr + 0.05, (returns.mean(), documented)
    # A learning test can tell a good policy from a random one by a wide margin.
    assert optimal_returns.mean() - random_returns.mean() > 30.0
    # The optimal policy beats its slower and noisier variants.
    slow = _returns(lambda obs, rng: 0.5 * PointEnv.optimal_action(obs), 100)
    noisy = _returns(lambda obs, rng: PointEnv.optimal_action(obs) + rng.normal(0, 0.3, 2), 100)
    assert optimal_returns.mean() > slow.mean()
    assert optimal_returns.mean() > noisy.mean()
