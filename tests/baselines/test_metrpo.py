"""ME-TRPO: the policy-validation rule (on constructed return sequences and on a hand-made model
where no policy can improve), the method on the shared loop (schema, exact resume), config
defaults and errors, and that it improves the return on the point env."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from mb_fixtures import Killed, KillingTracker, no_time, point_ensemble

from baselines.metrpo import METRPO, METRPOAgent, METRPOConfig, PolicyValidation
from mbmpo.checkpoint import load_checkpoint
from mbmpo.envs import get_env
from mbmpo.loop import LoopContext
from mbmpo.models import TransitionBuffer
from mbmpo.protocols import ENV_STEPS, EVAL_RETURN_MEAN, WALL_S, Budget, MemoryTracker
from suites.registry import default_config, load_method

TINY: dict[str, Any] = {
    "initial_random_steps": 100,
    "real_steps_per_iteration": 100,
    "collect_envs": 2,
    "ensemble_size": 2,
    "model_hidden_sizes": [16, 16],
    "model_max_epochs": 3,
    "trpo_steps": 2,
    "imagined_trajectories": 4,
    "imagined_horizon": 10,
}
BUDGET = Budget(total_env_steps=400, eval_every=100, eval_episodes=2)


# ----- the validation rule on constructed returns ---------------------------------------------------
def test_validation_stops_after_patience_steps_without_improvement() -> None:
    rule = PolicyValidation(threshold=0.7, patience=25)
    rule.start(torch.zeros(5))
    flat = torch.zeros(5)  # equal is not an improvement
    for i in range(4):
        assert not rule.update(flat, 5)
        assert not rule.stopped, f"stopped after {5 * (i + 1)} steps"
    assert not rule.update(flat, 5)
    assert rule.stopped and rule.steps_since_improvement == 25


def test_validation_improves_on_at_least_the_threshold_fraction_of_models() -> None:
    rule = PolicyValidation(threshold=0.7, patience=25)
    rule.start(torch.zeros(5))
    # 3 of 5 models better (60 % < 70 %): not an improvement, the reference stays
    assert not rule.update(torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0]), 5)
    assert rule.steps_since_improvement == 5 and rule.last_fraction == pytest.approx(0.6)
    assert rule.reference is not None and torch.equal(rule.reference, torch.zeros(5))
    # 4 of 5 better than the reference (zeros): an improvement; the counter resets
    assert rule.update(torch.tensor([2.0, 2.0, 2.0, 2.0, -1.0]), 5)
    assert rule.steps_since_improvement == 0
    # compared with the last IMPROVING validation: after a worse one, a partial recovery that beats
    # the worse one on every model (but not the reference) is no improvement
    assert not rule.update(torch.tensor([1.0, 1.0, 1.0, 1.0, -2.0]), 5)
    assert not rule.update(torch.tensor([1.5, 1.5, 1.5, 1.5, -1.5]), 5)
    assert rule.steps_since_improvement == 10 and rule.last_fraction == 0.0
    # 4 of 5 better than the reference [2, 2, 2, 2, -1]
    assert rule.update(torch.tensor([3.0, 3.0, 3.0, 1.0, 0.0]), 5)
    assert rule.steps_since_improvement == 0 and not rule.stopped


def test_validation_threshold_is_inclusive() -> None:
    rule = PolicyValidation(threshold=0.6, patience=10)
    rule.start(torch.zeros(5))
    assert rule.update(torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0]), 5)  # exactly 60 %
    with pytest.raises(RuntimeError, match="before start"):
        PolicyValidation().update(torch.zeros(3), 5)


# ----- the rule inside the agent, on a model where nothing can improve -----------------------------
def _context(drifts: list[tuple[float, float]], action_gain: float) -> LoopContext:
    env = get_env("point")
    return LoopContext(
        env=env,
        ensemble=point_ensemble(drifts, action_gain=action_gain),
        buffer=TransitionBuffer(2, 2, capacity=10),
        generator=torch.Generator().manual_seed(0),
        eval_generator=torch.Generator().manual_seed(1),
        device=torch.device("cpu"),
    )


def _agent(**overrides: Any) -> METRPOAgent:
    cfg = METRPOConfig(
        ensemble_size=4,
        imagined_trajectories=20,
        imagined_horizon=10,
        validation_trajectories=10,
        **overrides,
    )
    return METRPOAgent(get_env("point"), cfg, seed=0, device=torch.device("cpu"))


def test_agent_stops_after_patience_when_actions_cannot_change_the_return() -> None:
    """Models whose next state ignores the action (gain 0): every model's return is the same for
    every policy, so no validation improves and the update stops after exactly 25 TRPO steps."""
    ctx = _context([(0.0, 0.0), (0.01, 0.0), (0.0, 0.01), (-0.01, 0.0)], action_gain=0.0)
    agent = _agent(policy_validation=True, trpo_steps=100)
    out = agent.improve(ctx)
    assert out["train/trpo_steps"] == 25.0
    assert out["metrpo/validation_stopped"] == 1.0
    assert out["metrpo/validation_improvements"] == 0.0
    # without the flag it runs the fixed number of steps
    plain = _agent(policy_validation=False, trpo_steps=7).improve(ctx)
    assert plain["train/trpo_steps"] == 7.0 and "metrpo/validation_stopped" not in plain


def test_validation_returns_are_per_model_from_fixed_start_states() -> None:
    """On exact models with different drifts the per-model returns differ, and repeat exactly."""
    ctx = _context([(0.0, 0.0), (0.05, 0.0), (0.0, -0.05), (0.1, 0.1)], action_gain=0.1)
    agent = _agent(policy_validation=True)
    start = agent.start_sampler.sample((10,), None, ctx.generator)
    r1 = agent.model_returns(ctx, start)
    assert r1.shape == (4,) and len(torch.unique(r1)) == 4
    assert torch.equal(agent.model_returns(ctx, start), r1)
    assert float(r1[0]) > float(r1[3])  # drifting away from the goal costs return


# ----- the method on the shared loop -----------------------------------------------------------------
def test_config_defaults_yaml_and_errors() -> None:
    cfg = METRPOConfig()
    assert (cfg.trpo_steps, cfg.imagined_trajectories, cfg.propagation) == (30, 250, "random")
    assert cfg.imagined_trajectories * get_env("halfcheetah").horizon == 50_000
    assert (cfg.initial_random_steps, cfg.real_steps_per_iteration, cfg.ensemble_size) == (
        4000,
        4000,
        5,
    )
    assert (cfg.max_kl, cfg.discount, cfg.policy_validation) == (0.01, 0.99, False)
    assert load_method("me-trpo") is METRPO
    assert METRPOConfig.from_mapping(default_config("me-trpo")) == cfg
    with pytest.raises(ValueError, match=r"METRPOConfig.propagation must be one of"):
        METRPOConfig(propagation="task")
    with pytest.raises(ValueError, match=r"METRPOConfig.validation_threshold must be in"):
        METRPOConfig(validation_threshold=0.0)
    with pytest.raises(ValueError, match="max_kl"):
        METRPOConfig(max_kl=0.0)
    with pytest.raises(ValueError, match=r"unknown METRPOConfig key\(s\) \['meta_steps'\]"):
        METRPOConfig.from_mapping({"meta_steps": 3})
    with pytest.raises(ValueError, match=r"field 'trpo_steps' must be an int"):
        METRPOConfig.from_mapping({"trpo_steps": 3.5})


def test_logs_the_schema_against_real_steps_and_resumes_exactly(tmp_path: Path) -> None:
    env = get_env("point")
    ref_tracker = MemoryTracker()
    ref = METRPO(env, 3, TINY, ref_tracker, tmp_path / "ref")
    summary = ref.train(BUDGET)
    assert [s for s, _ in ref_tracker.rows] == [100, 200, 300, 400]
    for s, row in ref_tracker.rows:
        assert row[ENV_STEPS] == s and EVAL_RETURN_MEAN in row and WALL_S in row
    assert "metrpo/collect_return" in ref_tracker.rows[1][1]
    assert ref_tracker.rows[0][1]["train/trpo_steps"] == 2.0

    killed = KillingTracker(kill_at=2)
    with pytest.raises(Killed):
        METRPO(env, 3, TINY, killed, tmp_path / "run").train(BUDGET)
    checkpoint = load_checkpoint(tmp_path / "run")
    assert checkpoint is not None and checkpoint["iteration"] == 2
    resumed_tracker = MemoryTracker()
    resumed = METRPO(env, 3, TINY, resumed_tracker, tmp_path / "run")
    assert resumed.loop.resumed
    assert resumed.train(BUDGET).final_return == summary.final_return
    assert no_time(killed.rows + resumed_tracker.rows) == no_time(ref_tracker.rows)
    for k, v in ref.policy.state_dict().items():
        assert torch.equal(v, resumed.policy.state_dict()[k]), k
    other = MemoryTracker()
    METRPO(env, 4, TINY, other, tmp_path / "other").train(BUDGET)
    assert no_time(other.rows) != no_time(ref_tracker.rows)


def test_metrpo_improves_the_return_on_point(tmp_path: Path) -> None:
    """From about random (-44.8 over 50 steps) toward optimal (-2.3)."""
    cfg = {
        "initial_random_steps": 500,
        "real_steps_per_iteration": 500,
        "collect_envs": 10,
        "ensemble_size": 2,
        "model_hidden_sizes": [64, 64],
        "model_max_epochs": 50,
        "trpo_steps": 10,
        "imagined_trajectories": 50,
    }
    tracker = MemoryTracker()
    summary = METRPO(get_env("point"), 0, cfg, tracker, tmp_path).train(
        Budget(total_env_steps=1500, eval_every=500, eval_episodes=10)
    )
    returns = [r for _, r in tracker.series(EVAL_RETURN_MEAN)]
    assert returns[0] < -30.0  # the initial policy is no better than random
    assert summary.final_return > -15.0
    assert summary.final_return > returns[0] + 20.0
