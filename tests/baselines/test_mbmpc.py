"""MB-MPC: the random-shooting planner on hand-made exact models of the point env (scores equal the
simulator's discounted returns, the best sequence is picked, members are drawn per sequence and
step), the method on the shared loop (schema, exact resume), config errors, and that it beats the
random policy on the point env."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from mb_fixtures import Killed, KillingTracker, no_time, point_ensemble

from baselines.mbmpc import MBMPC, MBMPCConfig, RandomShootingPlanner, first_action_of_best
from mbmpo.checkpoint import load_checkpoint
from mbmpo.envs import get_env
from mbmpo.envs.point import PointEnv
from mbmpo.protocols import ENV_STEPS, EVAL_RETURN_MEAN, WALL_S, Budget, MemoryTracker
from suites.registry import default_config, load_method

TINY: dict[str, Any] = {
    "initial_random_steps": 100,
    "real_steps_per_iteration": 100,
    "collect_envs": 2,
    "ensemble_size": 2,
    "model_hidden_sizes": [16, 16],
    "model_max_epochs": 3,
    "candidates": 20,
    "plan_horizon": 3,
}
BUDGET = Budget(total_env_steps=400, eval_every=100, eval_episodes=2)


def simulator_score(start: np.ndarray, seq: np.ndarray, discount: float) -> float:
    """Discounted return of the action sequence ``seq [H, 2]`` from ``start`` on the REAL env."""
    env = PointEnv()
    env.reset(seed=0)
    env._pos = start.astype(np.float64).copy()
    total = 0.0
    for t, a in enumerate(seq):
        _, r, _, _, _ = env.step(a)
        total += discount**t * r
    return total


def test_scores_are_the_simulators_discounted_returns_for_every_env_and_candidate() -> None:
    env = get_env("point")
    planner = RandomShootingPlanner(env, candidates=64, horizon=5, discount=0.9)
    ens = point_ensemble([(0.0, 0.0)] * 3)  # three identical exact members
    obs = torch.tensor([[0.5, -0.3], [-0.9, 0.8], [0.05, 0.0]])
    gen = torch.Generator().manual_seed(0)
    seqs = planner.sample_sequences(3, gen)
    assert seqs.shape == (3, 64, 5, 2)
    assert float(seqs.min()) >= -1.0 and float(seqs.max()) <= 1.0
    scores = planner.score(ens, obs, seqs, gen)
    assert scores.shape == (3, 64)
    expected = np.array(
        [
            [simulator_score(obs[m].numpy(), seqs[m, c].numpy(), 0.9) for c in range(64)]
            for m in range(3)
        ]
    )
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_plan_executes_the_first_action_of_the_best_sequence() -> None:
    env = get_env("point")
    planner = RandomShootingPlanner(env, candidates=200, horizon=10, discount=0.99)
    ens = point_ensemble([(0.0, 0.0)] * 2)
    obs = torch.tensor([[0.8, 0.1], [-0.4, -0.7]])
    seqs = planner.sample_sequences(2, torch.Generator().manual_seed(7))
    best = [
        int(
            np.argmax(
                [simulator_score(obs[m].numpy(), seqs[m, c].numpy(), 0.99) for c in range(200)]
            )
        )
        for m in range(2)
    ]
    act = planner.plan(ens, obs, torch.Generator().manual_seed(7))  # same candidates
    assert torch.equal(act, torch.stack([seqs[0, best[0], 0], seqs[1, best[1], 0]]))
    # the known answer's direction: the best first step heads toward the goal at the origin
    assert float((act * -obs).sum(-1).min()) > 0.0


def test_hand_made_candidates_pick_the_straight_line_to_the_goal() -> None:
    """From (1, 0) with 10 steps of 0.1, the constant action (-1, 0) reaches the goal exactly and is
    the best of eight constant directions; the planner's scores pick it."""
    env = get_env("point")
    planner = RandomShootingPlanner(env, candidates=8, horizon=10, discount=0.99)
    angles = torch.arange(8) * (2 * math.pi / 8)
    dirs = torch.stack((torch.cos(angles), torch.sin(angles)), -1)  # (-1, 0) is index 4
    seqs = dirs[None, :, None, :].expand(1, 8, 10, 2).contiguous()
    scores = planner.score(
        point_ensemble([(0.0, 0.0)]), torch.tensor([[1.0, 0.0]]), seqs, torch.Generator()
    )
    act = first_action_of_best(seqs, scores)
    torch.testing.assert_close(act, torch.tensor([[-1.0, 0.0]]), atol=1e-6, rtol=0)
    assert int(scores.argmax()) == 4


def test_a_random_member_is_drawn_per_sequence_and_step() -> None:
    """Members that differ only by a drift: with one planning step every member scores exactly
    C / K of C identical candidates (balanced draw); with several steps the members mix within a
    sequence (more distinct scores than members)."""
    env = get_env("point")
    drifts = [(0.0, 0.0), (0.3, 0.0), (0.0, -0.5), (0.1, 0.3)]
    ens = point_ensemble(drifts)
    obs = torch.tensor([[0.2, 0.1]])
    seq = torch.tensor([0.5, -0.5])
    one = RandomShootingPlanner(env, candidates=400, horizon=1)
    scores = one.score(
        ens, obs, seq.expand(1, 400, 1, 2).contiguous(), torch.Generator().manual_seed(1)
    )
    per_member = [
        -float(np.linalg.norm(obs[0].numpy() + 0.1 * seq.numpy() + np.array(d))) for d in drifts
    ]
    for value in per_member:
        assert int(torch.isclose(scores[0], torch.tensor(value), atol=1e-5).sum()) == 100
    three = RandomShootingPlanner(env, candidates=400, horizon=3)
    scores3 = three.score(
        ens, obs, seq.expand(1, 400, 3, 2).contiguous(), torch.Generator().manual_seed(1)
    )
    assert len(torch.unique(scores3.round(decimals=4))) > len(drifts)
    # "fixed": one member per whole sequence -> only K distinct scores
    fixed = RandomShootingPlanner(env, candidates=400, horizon=3, propagation="fixed")
    scores_f = fixed.score(
        ens, obs, seq.expand(1, 400, 3, 2).contiguous(), torch.Generator().manual_seed(1)
    )
    assert len(torch.unique(scores_f.round(decimals=4))) == len(drifts)


def test_config_defaults_yaml_and_errors() -> None:
    cfg = MBMPCConfig()
    assert (cfg.candidates, cfg.plan_horizon, cfg.discount, cfg.propagation) == (
        1000,
        10,
        0.99,
        "random",
    )
    assert (cfg.initial_random_steps, cfg.real_steps_per_iteration, cfg.ensemble_size) == (
        4000,
        4000,
        5,
    )
    assert cfg.loop_config().min_steps_per_iteration == 4000
    assert load_method("mb-mpc") is MBMPC
    assert MBMPCConfig.from_mapping(default_config("mb-mpc")) == cfg
    with pytest.raises(ValueError, match=r"MBMPCConfig.propagation must be one of"):
        MBMPCConfig(propagation="task")
    with pytest.raises(ValueError, match=r"MBMPCConfig.candidates must be >= 1"):
        MBMPCConfig(candidates=0)
    with pytest.raises(ValueError, match=r"unknown MBMPCConfig key\(s\) \['horizon'\]"):
        MBMPCConfig.from_mapping({"horizon": 5})
    with pytest.raises(ValueError, match=r"field 'discount' must be a float"):
        MBMPCConfig.from_mapping({"discount": "1e-3"})


def test_logs_the_schema_against_real_steps_and_resumes_exactly(tmp_path: Path) -> None:
    env = get_env("point")
    ref_tracker = MemoryTracker()
    ref = MBMPC(env, 3, TINY, ref_tracker, tmp_path / "ref")
    summary = ref.train(BUDGET)
    assert summary.env_steps == 400
    steps = [s for s, _ in ref_tracker.rows]
    assert steps == [100, 200, 300, 400]
    for s, row in ref_tracker.rows:
        assert row[ENV_STEPS] == s and EVAL_RETURN_MEAN in row and WALL_S in row
    assert "mbmpc/collect_return" in ref_tracker.rows[1][1]

    killed = KillingTracker(kill_at=2)
    with pytest.raises(Killed):
        MBMPC(env, 3, TINY, killed, tmp_path / "run").train(BUDGET)
    checkpoint = load_checkpoint(tmp_path / "run")
    assert checkpoint is not None and checkpoint["iteration"] == 2
    resumed_tracker = MemoryTracker()
    resumed = MBMPC(env, 3, TINY, resumed_tracker, tmp_path / "run")
    assert resumed.loop.resumed
    assert resumed.train(BUDGET).final_return == summary.final_return
    assert no_time(killed.rows + resumed_tracker.rows) == no_time(ref_tracker.rows)
    other = MemoryTracker()
    MBMPC(env, 4, TINY, other, tmp_path / "other").train(BUDGET)
    assert no_time(other.rows) != no_time(ref_tracker.rows)


def test_mbmpc_beats_the_random_policy_on_point(tmp_path: Path) -> None:
    """Uniform random actions score -44.8 over 50 steps, the optimal policy -2.3."""
    cfg = {
        "initial_random_steps": 500,
        "real_steps_per_iteration": 500,
        "collect_envs": 10,
        "ensemble_size": 2,
        "model_hidden_sizes": [64, 64],
        "model_max_epochs": 50,
        "candidates": 300,
    }
    tracker = MemoryTracker()
    summary = MBMPC(get_env("point"), 0, cfg, tracker, tmp_path).train(
        Budget(total_env_steps=1000, eval_every=500, eval_episodes=10)
    )
    collect = tracker.series("mbmpc/collect_return")
    random_return = tracker.series("collect/random_return")[0][1]
    assert random_return < -30.0
    assert collect[0][1] > -15.0  # the MPC episodes collected at iteration 1
    assert summary.final_return > -15.0


SMOKE_ENTRY = """\
name: mb_smoke
description: ME-TRPO and MB-MPC on pendulum through the suite runner (what smoke.yaml should add)
methods: [me-trpo, mb-mpc]
envs: [pendulum]
seeds: 1
budget: {total_env_steps: 800, eval_every: 400, eval_episodes: 2}
resources: {cpus: 1}
method_overrides:
  me-trpo:
    config: {initial_random_steps: 400, real_steps_per_iteration: 400, collect_envs: 2,
             ensemble_size: 2, model_hidden_sizes: [32, 32], model_max_epochs: 5,
             trpo_steps: 2, imagined_trajectories: 10, imagined_horizon: 50, num_threads: 1}
  mb-mpc:
    config: {initial_random_steps: 400, real_steps_per_iteration: 400, collect_envs: 2,
             ensemble_size: 2, model_hidden_sizes: [32, 32], model_max_epochs: 5,
             candidates: 50, plan_horizon: 5, num_threads: 1}
"""


@pytest.mark.slow  # worker processes + W&B: ~10 s of CPU, but over a minute on a loaded machine
def test_both_methods_run_through_the_suite_runner(tmp_path: Path) -> None:
    """The manifest entries proposed for the smoke suite validate and run end to end (local
    executor, W&B offline), each run logging its evaluations at the expected real steps."""
    from suites.manifest import check_method_configs, load_manifest
    from suites.run import main

    path = tmp_path / "mb_smoke.yaml"
    path.write_text(SMOKE_ENTRY)
    specs = load_manifest(path).expand()
    assert {s.method for s in specs} == {"me-trpo", "mb-mpc"}
    check_method_configs(specs)
    code = main(
        [
            str(path),
            "--results-dir",
            str(tmp_path / "res"),
            "--jobs",
            "1",
            "--no-figure",
            "--wandb-mode",
            "offline",
        ]
    )
    assert code == 0
    checkpoints = sorted(p.parent.name for p in (tmp_path / "res").rglob("checkpoint.pt"))
    assert len(checkpoints) == 2, checkpoints
