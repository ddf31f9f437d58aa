"""Registry contents, spaces and dims of the made envs, gymnasium ids, initial-state sampling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from mbmpo.envs import EnvSpec, get_env, list_envs, make_env, sample_initial_states
from mbmpo.envs import initial_states as initial_states_module

FIGURE_1 = ("swimmer", "halfcheetah", "hopper", "walker2d", "ant", "pr2-reach")


def test_all_expected_names_are_registered() -> None:
    expected = {*FIGURE_1, "halfcheetah-h1000", "pendulum", "inverted-pendulum", "point"}
    assert expected <= set(list_envs())
    assert list_envs() == sorted(list_envs())
    for name in FIGURE_1:
        assert get_env(name).horizon == 200
    assert get_env("halfcheetah-h1000").horizon == 1000
    assert get_env("point").horizon <= 100


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(KeyError) as err:
        get_env("half-cheetah")
    message = str(err.value)
    assert "half-cheetah" in message
    for name in list_envs():
        assert name in message


def test_paper_settings_reach_the_simulator() -> None:
    """The settings of reference §2 are what the made env actually runs with."""
    cheetah: Any = make_env(get_env("halfcheetah")).unwrapped
    assert cheetah.frame_skip == 1
    swimmer: Any = make_env(get_env("swimmer")).unwrapped
    assert swimmer.frame_skip == 1
    ant: Any = make_env(get_env("ant")).unwrapped
    assert ant.frame_skip == 2
    assert ant._ctrl_cost_weight == pytest.approx(0.005)
    assert ant.observation_space.shape == (27,)
    pr2: Any = make_env(get_env("pr2-reach")).unwrapped
    assert pr2.dt == pytest.approx(0.05)
    assert np.allclose(pr2.model.opt.gravity, 0.0)
    assert np.allclose(pr2.model.actuator_ctrlrange, [[-3.0, 3.0]] * 7)


@pytest.mark.parametrize("name", list_envs())
def test_spec_matches_made_env(name: str) -> None:
    spec = get_env(name)
    env = spec.make(seed=3)
    assert env.observation_space.shape == (spec.obs_dim,)
    assert isinstance(env.action_space, gym.spaces.Box)
    assert env.action_space.shape == (spec.act_dim,)
    np.testing.assert_allclose(env.action_space.low, -1.0)
    np.testing.assert_allclose(env.action_space.high, 1.0)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (spec.obs_dim,)
    next_obs, _, _, _, _ = env.step(env.action_space.sample())
    assert next_obs.shape == (spec.obs_dim,)
    # Our TimeLimit is at the spec's horizon (gymnasium's own is removed).
    limits = []
    wrapped: gym.Env = env
    while isinstance(wrapped, gym.Wrapper):
        if isinstance(wrapped, gym.wrappers.TimeLimit):
            limits.append(wrapped._max_episode_steps)
        wrapped = wrapped.env
    assert limits == [spec.horizon]
    env.close()


def test_time_limit_truncates_at_horizon() -> None:
    spec = get_env("point")
    env = spec.make(seed=0)
    env.reset(seed=0)
    for t in range(spec.horizon):
        _, _, terminated, truncated, _ = env.step(np.zeros(spec.act_dim))
        assert not terminated
        assert truncated == (t == spec.horizon - 1)


@pytest.mark.parametrize("gym_id", ["mbmpo/Point-v0", "mbmpo/PR2Reach-v0"])
def test_our_envs_are_registered_with_gymnasium(gym_id: str) -> None:
    env = gym.make(gym_id)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs.astype(env.observation_space.dtype))
    env.step(env.action_space.sample())
    env.close()


def test_registry_rejects_duplicates() -> None:
    from mbmpo.envs.registry import register

    with pytest.raises(ValueError, match="already registered"):
        register(get_env("point"))


@pytest.mark.parametrize("name", ["point", "halfcheetah", "pr2-reach"])
def test_sample_initial_states_are_reset_observations(name: str) -> None:
    spec = get_env(name)
    states = sample_initial_states(spec, 7, np.random.default_rng(123))
    assert states.shape == (7, spec.obs_dim)
    # The same rng state gives the same states; they are the resets under the drawn seeds.
    again = sample_initial_states(spec, 7, np.random.default_rng(123))
    np.testing.assert_array_equal(states, again)
    seed = int(np.random.default_rng(123).integers(0, 2**31 - 1))
    env = spec.make()
    expected = np.stack([env.reset(seed=seed)[0]] + [env.reset()[0] for _ in range(6)])
    np.testing.assert_allclose(states, expected)
    other = sample_initial_states(spec, 7, np.random.default_rng(124))
    assert not np.allclose(states, other)
    assert len(np.unique(states, axis=0)) == 7


def test_sample_initial_states_resamples_a_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(initial_states_module, "POOL_SIZE", 20)
    spec = get_env("point")
    states = sample_initial_states(spec, 500, np.random.default_rng(0))
    assert states.shape == (500, spec.obs_dim)
    distinct = np.unique(states, axis=0)
    assert 1 < len(distinct) <= 20
    # The pool follows the reset distribution: U([-1, 1]^2) for the point env.
    assert np.all(np.abs(states) <= 1.0)


def test_sample_initial_states_rejects_bad_n() -> None:
    with pytest.raises(ValueError, match="n must be >= 1"):
        sample_initial_states(get_env("point"), 0, np.random.default_rng(0))


def test_envspec_is_exported() -> None:
    assert isinstance(get_env("point"), EnvSpec)


def test_settotalmass_deprecation_is_quiet_other_mujoco_warnings_are_kept(
    capfd: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building HalfCheetah (whose XML uses the deprecated ``settotalmass``) prints nothing, while
    any other MuJoCo warning still reaches stderr and MUJOCO_LOG.TXT."""
    import mujoco

    from mbmpo.envs.mujoco_messages import forward_warning

    monkeypatch.chdir(tmp_path)
    env = make_env(get_env("halfcheetah"), seed=0)
    env.close()
    captured = capfd.readouterr()
    assert "settotalmass" not in captured.out + captured.err
    assert mujoco.get_mju_user_warning() is forward_warning
    forward_warning("Nan, Inf or huge value in QACC at DOF 0.")
    assert "WARNING: Nan, Inf or huge value in QACC" in capfd.readouterr().err
    assert "QACC" in (tmp_path / "MUJOCO_LOG.TXT").read_text()
