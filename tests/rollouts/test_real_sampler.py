"""RealSampler: lock-step envs, one batched policy call per step, idle finished episodes, seeds."""

from __future__ import annotations

import numpy as np
import torch

from mbmpo.envs import get_env
from mbmpo.rollouts import RealSampler


def _check_consistent(batch, horizon: int) -> None:
    """Transitions are grouped by episode and chain: next_obs[i] == obs[i + 1] inside an episode."""
    n = int(batch.episode_lengths.sum())
    assert batch.obs.shape[0] == batch.act.shape[0] == batch.next_obs.shape[0] == n
    ends = np.cumsum(batch.episode_lengths)
    starts = ends - batch.episode_lengths
    for s, e in zip(starts, ends, strict=True):
        np.testing.assert_array_equal(batch.next_obs[s : e - 1], batch.obs[s + 1 : e])
        assert batch.terminated[s : e - 1].sum() == 0
        assert batch.terminated[e - 1] or e - s == horizon
    np.testing.assert_allclose(
        batch.episode_returns, [batch.rewards[s:e].sum() for s, e in zip(starts, ends, strict=True)]
    )


def test_random_actions_inverted_pendulum_idle_finished_episodes() -> None:
    env = get_env("inverted-pendulum")
    sampler = RealSampler(env, num_envs=6, seed=0)
    batch = sampler.run(None)
    assert batch.episode_lengths.shape == (6,) and batch.episode_returns.shape == (6,)
    assert len(set(batch.episode_lengths.tolist())) > 1  # episodes end at different times
    assert np.abs(batch.act).max() <= 1.0 and np.abs(batch.act).max() > 0.5
    np.testing.assert_array_equal(batch.act, batch.raw_act)
    _check_consistent(batch, env.horizon)


def test_one_batched_policy_call_per_step() -> None:
    env = get_env("inverted-pendulum")
    sampler = RealSampler(env, num_envs=5, seed=1)
    calls: list[torch.Tensor] = []

    def act_fn(obs: torch.Tensor) -> torch.Tensor:
        calls.append(obs.clone())
        return 3.0 * torch.sin(10 * obs[:, :1])  # deterministic, sometimes outside [-1, 1]

    batch = sampler.run(act_fn)
    assert len(calls) == batch.episode_lengths.max()
    assert all(c.shape == (5, env.obs_dim) and c.dtype == torch.float32 for c in calls)
    ends = np.cumsum(batch.episode_lengths)
    for m, length in enumerate(batch.episode_lengths):  # a finished row keeps its last obs
        for c in calls[length:]:
            np.testing.assert_array_equal(c[m].numpy(), batch.next_obs[ends[m] - 1])
    np.testing.assert_allclose(batch.act, np.clip(batch.raw_act, -1, 1))
    assert np.abs(batch.raw_act).max() > 1.0
    _check_consistent(batch, env.horizon)


def test_reproducible_given_the_seed() -> None:
    env = get_env("pendulum")
    a, b, c = (RealSampler(env, num_envs=3, seed=s) for s in (7, 7, 8))
    first_a, first_b, first_c = a.run(None), b.run(None), c.run(None)
    assert first_a.obs.shape == (3 * env.horizon, env.obs_dim)
    np.testing.assert_array_equal(first_a.obs, first_b.obs)
    np.testing.assert_array_equal(first_a.act, first_b.act)
    assert not np.array_equal(first_a.obs, first_c.obs)
    second_a, second_b = a.run(None), b.run(None)
    np.testing.assert_array_equal(second_a.next_obs, second_b.next_obs)
    assert not np.array_equal(second_a.obs[:1], first_a.obs[:1])  # a new episode, new reset
    _check_consistent(second_a, env.horizon)


def test_state_dict_resumes_the_same_sequence() -> None:
    env = get_env("inverted-pendulum")
    a = RealSampler(env, num_envs=2, seed=3)
    a.run(None)
    state = a.state_dict()
    expected = a.run(None)
    b = RealSampler(env, num_envs=2, seed=3)
    b.load_state_dict(state)
    resumed = b.run(None)
    np.testing.assert_array_equal(resumed.obs, expected.obs)
    np.testing.assert_array_equal(resumed.act, expected.act)
