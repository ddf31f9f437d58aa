"""Model reward/termination functions against the simulators' own, on real transitions.

For every registered env we roll out the real simulator under several action sources (uniform
random, random beyond the action bounds, a smooth random linear feedback policy, sinusoids), with
episodes run to the horizon or to a terminal state, and compare

* ``spec.reward(obs, act, next_obs)`` with the simulator's reward, and
* ``spec.termination(next_obs)`` with the simulator's ``terminated``.

Where the formula is exact the tolerance is float rounding. Where it cannot be (observed vs
finite-difference velocity; Ant's unobserved contact cost) the reward is split: the part other
than the forward velocity must match exactly, and the velocity gap must stay within a documented
bound. The largest gaps are printed in the terminal summary (``tests/envs/conftest.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from mbmpo.envs import get_env, list_envs
from mbmpo.envs.rewards import ANT_CONTACT_COST_BOUND
from mbmpo.envs.spec import EnvSpec

POLICIES = ("uniform", "wide", "linear", "sine")
"""Action sources: U[-1,1]; U[-1.5,1.5] (beyond the bounds: control costs use the unclipped
action); tanh of a random linear feedback (smooth, state dependent); per-joint sinusoids."""

STEPS_PER_POLICY = {"halfcheetah-h1000": 2000, "ant": 1200, "hopper": 1500, "walker2d": 1500}
"""Real steps per action source (default :data:`DEFAULT_STEPS`); keeps the file well under 60 s."""
DEFAULT_STEPS = 1000

EXACT_TOL = {
    # Same formula on the same float64 numbers: only rounding differs.
    "halfcheetah": 1e-9,  # frame_skip=1 + semi-implicit Euler: finite difference == qvel[0]
    "halfcheetah-h1000": 1e-9,
    "point": 1e-12,
    "inverted-pendulum": 0.0,
    # Pendulum-v1 returns float32 observations; the reward is rebuilt from them.
    "pendulum": 1e-5,
    # RescaleAction maps [-1, 1] to [-3, 3] in float32 before the simulator's control cost.
    "pr2-reach": 1e-6,
}
"""Envs whose model reward equals the simulator's: max allowed |gap| per step."""

VELOCITY_INDEX = {"swimmer": 3, "hopper": 5, "walker2d": 8, "ant": 13}
"""Envs whose model reward uses the observed x velocity ``s'[i]`` where the simulator uses a
finite difference ``info['x_velocity']``."""

VELOCITY_GAP_BOUND = {
    # Measured on these transitions (seeded, so reproducible): max | mean of |obs v - fd v|.
    # Swimmer (RK4, 1 substep): the end-of-step velocity vs the step's mean velocity.
    "swimmer": (0.3, 0.03),
    # Hopper / Walker2d (4 Euler substeps): the last substep's velocity vs the mean of the 4;
    # largest at foot impacts.
    "hopper": (0.5, 0.1),
    "walker2d": (1.0, 0.2),
    # Ant (2 substeps): also, the simulator differences the torso xpos, which lags by a substep.
    "ant": (2.0, 0.15),
}
"""(max, mean) bounds on the per-step velocity gap, where the formula cannot be exact."""

NON_VELOCITY_TOL = 1e-9
"""Tolerance on the reward minus its velocity term (and minus Ant's contact cost)."""


@dataclass(frozen=True)
class Transitions:
    """Real transitions of one env, stacked: ``[N, ...]``."""

    obs: np.ndarray
    act: np.ndarray
    next_obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    x_velocity: np.ndarray | None
    contact_cost: np.ndarray | None
    episode: np.ndarray
    """Episode index of each transition ``[N]`` (int)."""


def _policy(name: str, spec: EnvSpec, rng: np.random.Generator):
    """An action function ``(obs [obs], t) -> act [act]`` for the named action source."""
    if name == "uniform":
        return lambda obs, t: rng.uniform(-1.0, 1.0, spec.act_dim)
    if name == "wide":
        return lambda obs, t: rng.uniform(-1.5, 1.5, spec.act_dim)
    if name == "linear":
        w = rng.normal(0.0, 1.0 / np.sqrt(spec.obs_dim), (spec.act_dim, spec.obs_dim))
        b = rng.normal(0.0, 0.3, spec.act_dim)
        return lambda obs, t: np.tanh(w @ np.nan_to_num(obs) + b + 0.1 * rng.normal(size=b.shape))
    if name == "sine":
        freq = rng.uniform(0.02, 0.2, spec.act_dim)
        phase = rng.uniform(0.0, 2 * np.pi, spec.act_dim)
        return lambda obs, t: 0.9 * np.sin(2 * np.pi * freq * t + phase)
    raise ValueError(name)


def _perturb_ant(env: gym.Env, rng: np.random.Generator) -> np.ndarray:
    """Start an Ant episode from a torso height outside or near [0.2, 1] so it reaches terminal
    states (random actions almost never flip the ant)."""
    u: Any = env.unwrapped
    qpos = u.data.qpos.copy()
    qpos[2] = rng.choice([rng.uniform(0.05, 0.19), rng.uniform(1.0, 1.4), rng.uniform(0.2, 0.3)])
    u.set_state(qpos, u.data.qvel.copy())
    return u._get_obs()


def collect(spec: EnvSpec, seed: int) -> Transitions:
    """Roll out every action source for its step budget, episodes to the horizon or to a terminal."""
    rng = np.random.default_rng(seed)
    env = spec.make(seed=seed)
    budget = STEPS_PER_POLICY.get(spec.name, DEFAULT_STEPS)
    keys = ("obs", "act", "next_obs", "rew", "term", "xv", "cc", "ep")
    cols: dict[str, list] = {k: [] for k in keys}
    episode = 0
    for policy_name in POLICIES:
        act_fn = _policy(policy_name, spec, rng)
        steps = 0
        while steps < budget:
            obs, _ = env.reset(seed=int(rng.integers(2**31)))
            if spec.name == "ant" and rng.random() < 0.5:
                obs = _perturb_ant(env, rng)
            for t in range(spec.horizon):
                act = np.asarray(act_fn(obs, t), dtype=np.float64)
                next_obs, rew, terminated, truncated, info = env.step(act)
                cols["obs"].append(obs)
                cols["act"].append(act)
                cols["next_obs"].append(next_obs)
                cols["rew"].append(float(rew))
                cols["term"].append(bool(terminated))
                cols["xv"].append(info.get("x_velocity", np.nan))
                cols["cc"].append(-info.get("reward_contact", np.nan))
                cols["ep"].append(episode)
                obs = next_obs
                steps += 1
                if terminated or truncated:
                    episode += 1
                    break
            else:  # pragma: no cover - TimeLimit must truncate at the horizon
                raise AssertionError(f"{spec.name}: no truncation at the horizon {spec.horizon}")
    env.close()
    xv = np.array(cols["xv"], dtype=np.float64)
    cc = np.array(cols["cc"], dtype=np.float64)
    return Transitions(
        obs=np.array(cols["obs"], dtype=np.float64),
        act=np.array(cols["act"], dtype=np.float64),
        next_obs=np.array(cols["next_obs"], dtype=np.float64),
        reward=np.array(cols["rew"], dtype=np.float64),
        terminated=np.array(cols["term"], dtype=bool),
        x_velocity=None if np.isnan(xv).all() else xv,
        contact_cost=None if np.isnan(cc).all() else cc,
        episode=np.array(cols["ep"], dtype=np.int64),
    )


def _model_reward(spec: EnvSpec, tr: Transitions) -> np.ndarray:
    o, a, n = (torch.from_numpy(x) for x in (tr.obs, tr.act, tr.next_obs))
    return spec.reward(o, a, n).numpy()


@pytest.mark.parametrize("name", list_envs())
def test_reward_and_termination_match_simulator(
    name: str, gap_report: dict[str, dict[str, float]]
) -> None:
    spec = get_env(name)
    tr = collect(spec, seed=0)
    model_rew = _model_reward(spec, tr)
    model_term = spec.termination(torch.from_numpy(tr.next_obs)).numpy()
    gap = np.abs(model_rew - tr.reward)
    row = {"steps": float(len(gap)), "max_gap": float(gap.max()), "mean_gap": float(gap.mean())}
    # Episode returns: per-step velocity gaps largely cancel over an episode (both velocities
    # integrate to the same displacement), so report the largest return gap too.
    ret_gap = np.abs(np.bincount(tr.episode, weights=model_rew - tr.reward))
    ret_scale = np.abs(np.bincount(tr.episode, weights=tr.reward))
    row["max_return_gap"] = float(ret_gap.max())
    row["max_rel_return_gap"] = float((ret_gap / np.maximum(ret_scale, 1.0)).max())

    # Termination: exact for every env, and the terminal branch must actually be exercised.
    np.testing.assert_array_equal(model_term, tr.terminated, err_msg=f"{name}: termination")
    row["terminals"] = float(tr.terminated.sum())
    if spec.termination_fn is not None:
        assert 0 < tr.terminated.sum() < len(tr.terminated), f"{name}: no terminal states reached"
    else:
        assert not tr.terminated.any()

    if name in EXACT_TOL:
        assert gap.max() <= EXACT_TOL[name], f"{name}: max reward gap {gap.max():.3g}"
    else:
        assert name in VELOCITY_INDEX, f"{name}: no reward tolerance documented in this test"
        assert tr.x_velocity is not None
        vel = tr.next_obs[:, VELOCITY_INDEX[name]]
        # Everything but the forward velocity (and Ant's unobservable contact cost) is exact.
        sim_rest = tr.reward - tr.x_velocity
        if name == "ant":
            assert tr.contact_cost is not None
            assert tr.contact_cost.min() >= 0.0
            assert tr.contact_cost.max() <= ANT_CONTACT_COST_BOUND
            row["max_contact_cost"] = float(tr.contact_cost.max())
            sim_rest = sim_rest + tr.contact_cost
        rest_gap = np.abs((model_rew - vel) - sim_rest)
        assert rest_gap.max() <= NON_VELOCITY_TOL, f"{name}: non-velocity gap {rest_gap.max():.3g}"
        vgap = np.abs(vel - tr.x_velocity)
        row["max_vel_gap"] = float(vgap.max())
        row["mean_vel_gap"] = float(vgap.mean())
        max_bound, mean_bound = VELOCITY_GAP_BOUND[name]
        assert vgap.max() <= max_bound, f"{name}: max velocity gap {vgap.max():.3g} > {max_bound}"
        assert vgap.mean() <= mean_bound, f"{name}: mean velocity gap {vgap.mean():.3g}"
        # The observed velocity must still track the simulator's forward reward closely.
        assert np.corrcoef(vel, tr.x_velocity)[0, 1] > 0.95
    gap_report[name] = row
