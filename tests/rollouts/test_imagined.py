"""Imagined rollouts: member assignment per propagation mode, termination masks, shapes, seeds,
start states."""

from __future__ import annotations

import pytest
import torch

from mbmpo.envs import EnvSpec, get_env
from mbmpo.models import DynamicsEnsemble, TransitionBuffer
from mbmpo.rollouts import StartStateSampler, imagine

K = 5


def _step_reward(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    return next_obs[..., 0] - obs[..., 0]


# a tiny env whose reward is the change of state dim 0 (so it reveals which member moved it)
PROBE = EnvSpec(
    name="probe", gym_id="none", horizon=10, obs_dim=3, act_dim=2, reward_fn=_step_reward
)


def _labelled_ensemble(obs_dim: int, act_dim: int, dim: int, step: float) -> DynamicsEnsemble:
    """Member k predicts s' = s + (k + 1) * step * e_dim, whatever the action (all weights 0 via
    g = 0; the last bias carries the label; default normalisers are the identity)."""
    ens = DynamicsEnsemble(
        obs_dim, act_dim, K, (16, 16), generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        for g in ens.g:
            g.zero_()
        ens.b[-1].zero_()
        ens.b[-1][:, 0, dim] = step * torch.arange(1, K + 1, dtype=torch.float32)
    return ens


def _random_policy(seed: int, act_dim: int):
    gen = torch.Generator().manual_seed(seed)
    return lambda obs: torch.randn(*obs.shape[:-1], act_dim, generator=gen)


def _run(propagation: str, t: int, n: int, h: int, seed: int = 0):
    ens = _labelled_ensemble(3, 2, dim=0, step=1.0)
    start = torch.zeros(t, n, 3)
    gen = torch.Generator().manual_seed(seed)
    return imagine(ens, _random_policy(seed, 2), start, h, PROBE, propagation, gen)


def test_task_propagation_uses_the_tasks_member_and_every_member() -> None:
    batch = _run("task", t=10, n=3, h=4)
    member = batch.rew - 1  # [T, N, H]
    expected = (torch.arange(10) // 2).float()[:, None, None].expand(10, 3, 4)
    assert torch.equal(member, expected)
    assert set(member.unique().tolist()) == set(range(K))
    assert torch.equal(batch.members, expected[:, :, 0].long())


def test_fixed_propagation_constant_per_trajectory_balanced() -> None:
    batch = _run("fixed", t=4, n=7, h=6)  # 28 trajectories, not a multiple of K
    member = (batch.rew - 1).long()
    assert torch.all(member == member[:, :, :1])  # one member for the whole trajectory
    counts = torch.bincount(member[:, :, 0].flatten(), minlength=K)
    assert counts.min() >= 5 and counts.max() <= 6  # every member used, balanced
    assert torch.equal(batch.members, member[:, :, 0])
    other = _run("fixed", t=4, n=7, h=6, seed=1)
    assert not torch.equal(other.members, batch.members)  # the assignment is random


def test_random_propagation_balanced_each_step_and_changes() -> None:
    batch = _run("random", t=4, n=5, h=8)  # 20 rows: exactly 4 per member every step
    member = (batch.rew - 1).long()
    for h in range(8):
        assert torch.equal(
            torch.bincount(member[:, :, h].flatten(), minlength=K), torch.full((K,), 4)
        )
    changes = (member[:, :, 1:] != member[:, :, :-1]).float().mean()
    assert changes > 0.5  # a new member per step (chance of keeping the same one is 1/5)
    assert batch.members is None


def test_mean_propagation() -> None:
    batch = _run("mean", t=2, n=3, h=3)
    torch.testing.assert_close(batch.rew, torch.full((2, 3, 3), 3.0))  # mean of 1..5


def test_rewards_are_the_envs_on_the_stored_transitions() -> None:
    """With a real (random-weight) ensemble on pendulum: rew[h] = r(obs[h], act[h], obs[h+1]),
    and obs[h+1] is the task's member's prediction on the clipped action."""
    env = get_env("pendulum")
    ens = DynamicsEnsemble(
        env.obs_dim, env.act_dim, K, (32, 32), generator=torch.Generator().manual_seed(1)
    )
    start = StartStateSampler(env, seed=0).sample((5, 4), None, torch.Generator().manual_seed(0))
    policy = _random_policy(2, env.act_dim)
    batch = imagine(ens, lambda o: 3 * policy(o), start, 6, env, "task", torch.Generator())
    assert batch.obs.shape == (5, 4, 6, 3) and batch.act.shape == (5, 4, 6, 1)
    assert batch.rew.shape == batch.mask.shape == (5, 4, 6) and torch.all(batch.mask == 1)
    assert batch.act.abs().max() > 1.0  # raw actions are stored unclipped
    nxt = torch.cat((batch.obs[:, :, 1:], batch.final_obs[:, :, None]), dim=2)
    torch.testing.assert_close(batch.rew, env.reward(batch.obs, batch.act, nxt))
    with torch.no_grad():  # task t -> member t (T = K): check one step through ens.predict
        pred = ens.predict(batch.obs[:, :, 2], batch.act[:, :, 2].clamp(-1, 1))
    torch.testing.assert_close(pred, batch.obs[:, :, 3], rtol=1e-5, atol=1e-5)


def test_termination_masks_inverted_pendulum() -> None:
    """Member k tilts the pole (obs[1]) by 0.045 (k + 1) per step; the pole falls (|angle| > 0.2)
    after floor(0.2 / d) + 1 steps; from then on mask and reward are 0 and the state stays at the
    terminal state."""
    env = get_env("inverted-pendulum")
    ens = _labelled_ensemble(env.obs_dim, env.act_dim, dim=1, step=0.045)
    start = torch.zeros(K, 2, env.obs_dim)
    batch = imagine(ens, _random_policy(0, 1), start, 8, env, "task", torch.Generator())
    for k in range(K):
        alive_steps = int(0.2 // (0.045 * (k + 1))) + 1
        expected_mask = (torch.arange(8) < alive_steps).float()
        assert torch.equal(batch.mask[k], expected_mask.expand(2, 8)), k
        # +1 per step while up, 0 on the step that drops the pole, 0 after
        assert torch.equal(batch.rew[k].sum(-1), torch.full((2,), float(alive_steps - 1)))
        assert torch.all(batch.rew[k][:, alive_steps:] == 0)
        frozen = batch.obs[k][:, alive_steps:]  # the terminal state, kept
        assert torch.all(frozen == batch.final_obs[k][:, None])
        assert torch.allclose(frozen[..., 1], torch.tensor(0.045 * (k + 1) * alive_steps))
    assert torch.all(batch.final_obs[:, :, 1].abs() < 0.5)  # no drift after termination


def test_same_seed_same_rollouts() -> None:
    env = get_env("pendulum")
    ens = DynamicsEnsemble(
        env.obs_dim, env.act_dim, K, (16,), generator=torch.Generator().manual_seed(0)
    )
    start = torch.randn(5, 3, 3, generator=torch.Generator().manual_seed(0))

    def run(seed: int):
        return imagine(
            ens,
            _random_policy(seed, 1),
            start,
            5,
            env,
            "random",
            torch.Generator().manual_seed(seed),
        )

    a, b, c = run(0), run(0), run(1)
    for field in ("obs", "act", "rew", "mask"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.obs, c.obs)


def test_bad_arguments() -> None:
    ens = _labelled_ensemble(3, 2, dim=0, step=1.0)
    pol = _random_policy(0, 2)
    with pytest.raises(ValueError, match="multiple of"):
        imagine(ens, pol, torch.zeros(6, 2, 3), 3, PROBE, "task", torch.Generator())
    with pytest.raises(ValueError, match="unknown propagation"):
        imagine(ens, pol, torch.zeros(5, 2, 3), 3, PROBE, "bogus", torch.Generator())


def test_start_states_from_the_buffer() -> None:
    env = get_env("inverted-pendulum")
    buf = TransitionBuffer(env.obs_dim, env.act_dim, capacity=100)
    obs = 100.0 + torch.arange(150, dtype=torch.float32)[:, None].expand(150, env.obs_dim)
    buf.add(obs, torch.zeros(150, 1), obs)  # stored: 150..249 (+100); the last 10 are 240..249
    gen = torch.Generator().manual_seed(0)
    only_buffer = StartStateSampler(env, mode="buffer", reset_prob=0.0, recent=10, seed=0)
    s = only_buffer.sample((20, 30), buf, gen)
    assert s.shape == (20, 30, env.obs_dim)
    assert set(s[..., 0].flatten().tolist()) == {240.0 + i for i in range(10)}
    only_reset = StartStateSampler(env, mode="buffer", reset_prob=1.0, recent=10, seed=0)
    assert (
        only_reset.sample((50,), buf, gen).abs().max() <= 0.01
    )  # InvertedPendulum resets in +-0.01
    mixed = StartStateSampler(env, mode="buffer", reset_prob=0.1, recent=10, seed=0)
    from_reset = (mixed.sample((2000,), buf, gen)[:, 0] < 1.0).float().mean()
    assert 0.07 < from_reset < 0.13
    with pytest.raises(ValueError, match="non-empty buffer"):
        only_buffer.sample((3,), None, gen)


def test_reset_start_states_reproducible() -> None:
    env = get_env("inverted-pendulum")
    a = StartStateSampler(env, seed=3).sample((4, 5), None, torch.Generator())
    b = StartStateSampler(env, seed=3).sample((4, 5), None, torch.Generator())
    assert a.shape == (4, 5, env.obs_dim) and torch.equal(a, b)
    assert a.abs().max() <= 0.01 and a.std() > 0


def test_start_sampler_state_dict() -> None:
    env = get_env("inverted-pendulum")
    a = StartStateSampler(env, seed=5)
    a.sample((3,), None, torch.Generator())
    state = a.state_dict()
    expected = a.sample((4,), None, torch.Generator())
    b = StartStateSampler(env, seed=0)
    b.load_state_dict(state)
    assert torch.equal(b.sample((4,), None, torch.Generator()), expected)
