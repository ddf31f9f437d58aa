"""Reward and termination functions on batch shapes, dtypes, and their gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mbmpo.envs import get_env, list_envs, sample_initial_states

SHAPES = [(5,), (4, 3, 6)]
"""``[B]`` and ``[T, N, B]`` leading shapes."""


def _inputs(name: str, lead: tuple[int, ...], dtype: torch.dtype, seed: int = 0):
    """Plausible ``obs, act, next_obs`` with leading shape ``lead``: real reset states plus noise."""
    spec = get_env(name)
    rng = np.random.default_rng(seed)
    n = int(np.prod(lead))
    obs = sample_initial_states(spec, n, rng) + rng.normal(0.0, 0.05, (n, spec.obs_dim))
    next_obs = obs + rng.normal(0.0, 0.05, (n, spec.obs_dim))
    act = rng.uniform(-1.2, 1.2, (n, spec.act_dim))
    as_t = lambda x: torch.as_tensor(x, dtype=dtype).reshape(*lead, x.shape[-1])  # noqa: E731
    return as_t(obs), as_t(act), as_t(next_obs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("lead", SHAPES)
@pytest.mark.parametrize("name", list_envs())
def test_shapes_dtypes_and_rowwise_consistency(
    name: str, lead: tuple[int, ...], dtype: torch.dtype
) -> None:
    spec = get_env(name)
    obs, act, next_obs = _inputs(name, lead, dtype)
    rew = spec.reward(obs, act, next_obs)
    term = spec.termination(next_obs)
    assert rew.shape == lead and rew.dtype == dtype
    assert term.shape == lead and term.dtype == torch.bool
    # Batched == one row at a time (no mixing across the batch axes).
    flat = [
        spec.reward(o, a, n)
        for o, a, n in zip(
            obs.reshape(-1, spec.obs_dim),
            act.reshape(-1, spec.act_dim),
            next_obs.reshape(-1, spec.obs_dim),
            strict=True,
        )
    ]
    torch.testing.assert_close(rew.reshape(-1), torch.stack(flat))
    flat_term = [spec.termination(n) for n in next_obs.reshape(-1, spec.obs_dim)]
    assert torch.equal(term.reshape(-1), torch.stack(flat_term))


@pytest.mark.parametrize("name", list_envs())
def test_float32_matches_float64(name: str) -> None:
    spec = get_env(name)
    o64, a64, n64 = _inputs(name, (64,), torch.float64, seed=1)
    r64 = spec.reward(o64, a64, n64)
    r32 = spec.reward(o64.float(), a64.float(), n64.float())
    torch.testing.assert_close(r32.double(), r64, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list_envs())
def test_reward_gradients_match_finite_differences(name: str) -> None:
    """The rewards are differentiable in (obs, act, next_obs) away from termination boundaries."""
    spec = get_env(name)
    obs, act, next_obs = _inputs(name, (3,), torch.float64, seed=2)
    if name == "pendulum":
        act = act.clamp(-0.9, 0.9)  # the torque clip has a kink at +-1
    inputs = tuple(x.clone().requires_grad_(True) for x in (obs, act, next_obs))
    assert torch.autograd.gradcheck(spec.reward_fn, inputs, eps=1e-6, atol=1e-5)


TERMINAL_EDITS = {
    # name -> (column, a value outside the healthy range on each side where there is one)
    "hopper": [(0, 0.5), (1, 0.3)],  # z <= 0.7; |angle| >= 0.2 (z has no upper bound)
    "walker2d": [(0, 0.5), (0, 2.5)],  # z not in (0.8, 2)
    "ant": [(0, 0.1), (0, 1.2)],  # z not in [0.2, 1]
    "inverted-pendulum": [(1, 0.25), (1, -0.25)],  # |pole angle| > 0.2
}


@pytest.mark.parametrize("name", sorted(TERMINAL_EDITS))
def test_terminal_states_are_detected_and_nan_is_terminal(name: str) -> None:
    spec = get_env(name)
    _, _, next_obs = _inputs(name, (4,), torch.float64, seed=3)
    assert not spec.termination(next_obs).any(), "reset-like states must not be terminal"
    broken = next_obs.clone()
    for row, (col, value) in enumerate(TERMINAL_EDITS[name]):
        broken[row, col] = value
    # NaN in a checked coordinate is terminal (comparisons with NaN are False, as in gymnasium).
    broken[3, TERMINAL_EDITS[name][0][0]] = float("nan")
    expected = torch.tensor([True, True, False, True])
    assert torch.equal(spec.termination(broken), expected)
