"""The SB3 baselines behind the Method interface: schema, schedule, config errors, checkpoint and
resume, determinism; on real SB3 with the cheap Pendulum env (and one slow learning test)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from stable_baselines3 import DDPG
from stable_baselines3.common.buffers import ReplayBuffer
from torch import nn

from baselines.common import STREAM_EVAL, STREAM_TRAIN_RESET, check_field_types, derive_seed
from baselines.sb3 import (
    STATE_FILE,
    DDPGMethod,
    PPOMethod,
    SB3Method,
    TRPOMethod,
    load_replay_buffer,
    save_replay_buffer,
)
from baselines.sb3_config import DDPGConfig, PPOConfig, TRPOConfig
from baselines.sb3_param_noise import ParamNoiseDDPG
from baselines.sb3_policies import LayerNormTD3Policy
from mbmpo.config_utils import dataclass_from_mapping
from mbmpo.envs import get_env
from mbmpo.protocols import (
    ENV_STEPS,
    EVAL_EPISODES,
    EVAL_RETURN_MEAN,
    EVAL_RETURN_STD,
    WALL_S,
    Budget,
    MemoryTracker,
    Method,
)

HYPERPARAMS = Path(__file__).resolve().parents[2] / "suites" / "hyperparams"
SCHEMA = (ENV_STEPS, EVAL_RETURN_MEAN, EVAL_RETURN_STD, EVAL_EPISODES, WALL_S)

METHODS: dict[str, type[SB3Method]] = {"trpo": TRPOMethod, "ppo": PPOMethod, "ddpg": DDPGMethod}
CONFIGS = {"trpo": TRPOConfig, "ppo": PPOConfig, "ddpg": DDPGConfig}

# Tiny settings: on-policy rollouts of 200 steps (so the eval points fall on multiples of 400),
# DDPG with a small buffer and a short warm-up.
TINY: dict[str, dict[str, Any]] = {
    "trpo": {"n_steps": 200, "batch_size": 50},
    "ppo": {"n_steps": 200, "batch_size": 50, "n_epochs": 2},
    "ddpg": {"buffer_size": 5_000, "learning_starts": 100, "batch_size": 64},
}
BUDGETS = {
    "trpo": Budget(total_env_steps=1200, eval_every=400, eval_episodes=2),
    "ppo": Budget(total_env_steps=1200, eval_every=400, eval_episodes=2),
    "ddpg": Budget(total_env_steps=400, eval_every=200, eval_episodes=2),
}


def run(
    name: str,
    run_dir: Path,
    seed: int = 0,
    tracker: MemoryTracker | None = None,
    budget: Budget | None = None,
    config: dict[str, Any] | None = None,
) -> tuple[MemoryTracker, Any]:
    tracker = tracker if tracker is not None else MemoryTracker()
    method = METHODS[name](get_env("pendulum"), seed, config or TINY[name], tracker, run_dir)
    summary = method.train(budget or BUDGETS[name])
    return tracker, summary


def eval_rows(tracker: MemoryTracker) -> list[tuple[int, dict[str, float]]]:
    return [(s, m) for s, m in tracker.rows if EVAL_RETURN_MEAN in m]


def without_wall(rows: list[tuple[int, dict[str, float]]]) -> list[tuple[int, dict[str, float]]]:
    return [(s, {k: v for k, v in m.items() if k != WALL_S}) for s, m in rows]


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, MemoryTracker]:
    """One uninterrupted run per method (seed 0), shared by the tests below."""
    out = {}
    for name in METHODS:
        tracker, _ = run(name, tmp_path_factory.mktemp(f"ref-{name}"))
        out[name] = tracker
    return out


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name", sorted(METHODS))
def test_default_yaml_lists_every_field_with_the_config_defaults(name: str) -> None:
    values = yaml.safe_load((HYPERPARAMS / f"{name}.yaml").read_text())
    cls = CONFIGS[name]
    assert set(values) == {f.name for f in dataclasses.fields(cls)}
    assert dataclass_from_mapping(cls, values) == cls()
    assert cls().policy_hidden == (32, 32) and cls().activation == "tanh"


@pytest.mark.parametrize("name", sorted(METHODS))
def test_unknown_config_key_raises_naming_it(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_stepz"):
        METHODS[name](get_env("pendulum"), 0, {"n_stepz": 3}, MemoryTracker(), tmp_path)


def test_bad_config_values_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"learning_rate.*number in quotes is a string"):
        dataclass_from_mapping(PPOConfig, {"learning_rate": "3e-4"})
    with pytest.raises(ValueError, match=r"batch_size \(1000\) must be <= n_steps"):
        dataclass_from_mapping(PPOConfig, {"n_steps": 256})
    with pytest.raises(ValueError, match=r"activation must be one of \['tanh', 'relu'\]"):
        dataclass_from_mapping(TRPOConfig, {"activation": "sigmoid"})
    with pytest.raises(ValueError, match="exploration_noise must be one of"):
        dataclass_from_mapping(DDPGConfig, {"exploration_noise": "adaptive"})
    with pytest.raises(ValueError, match="n_envs"):
        dataclass_from_mapping(DDPGConfig, {"n_envs": True})  # bools are not ints here
    with pytest.raises(ValueError, match="gamma"):
        dataclass_from_mapping(TRPOConfig, {"gamma": 1.5})


def test_field_types_are_normalised() -> None:
    c = dataclass_from_mapping(DDPGConfig, {"tau": 1, "critic_hidden": [16, 8]})
    assert isinstance(c.tau, float) and c.tau == 1.0
    assert c.critic_hidden == (16, 8)
    assert dataclass_from_mapping(PPOConfig, {"target_kl": None}).target_kl is None
    assert dataclass_from_mapping(PPOConfig, {"target_kl": 0.02}).target_kl == 0.02

    @dataclasses.dataclass(frozen=True)
    class Odd:
        x: list[int]

    with pytest.raises(TypeError, match="unsupported"):
        check_field_types(Odd([1]), "Odd")


def test_methods_satisfy_the_protocol(tmp_path: Path) -> None:
    method: Method = PPOMethod(get_env("pendulum"), 0, TINY["ppo"], MemoryTracker(), tmp_path)
    assert callable(method.train)


def test_derived_seeds_differ_across_streams_and_indices() -> None:
    seeds = [
        derive_seed(s, stream, *idx)
        for s in (0, 1)
        for stream in (STREAM_EVAL, STREAM_TRAIN_RESET)
        for idx in [(0,), (1,), (0, 0), (0, 1), (1, 0)]
    ]
    assert len(set(seeds)) == len(seeds)
    assert derive_seed(3, STREAM_EVAL, 7) == derive_seed(3, STREAM_EVAL, 7)
    assert all(0 <= s < 2**31 for s in seeds)


# ----------------------------------------------------------------------------- training runs


@pytest.mark.parametrize("name", sorted(METHODS))
def test_tiny_run_logs_the_schema_at_the_eval_points(
    name: str, reference_runs: dict[str, MemoryTracker]
) -> None:
    tracker = reference_runs[name]
    budget = BUDGETS[name]
    rows = eval_rows(tracker)
    steps = [s for s, _ in rows]
    every = budget.eval_every
    assert steps == list(range(0, budget.total_env_steps + 1, every))
    for step, metrics in rows:
        assert set(SCHEMA) <= set(metrics)
        assert metrics[ENV_STEPS] == step
        assert metrics[EVAL_EPISODES] == budget.eval_episodes
        assert np.isfinite(metrics[EVAL_RETURN_MEAN]) and metrics[EVAL_RETURN_STD] >= 0
        # Pendulum returns lie in [-16.3 * 200, 0]
        assert -16.3 * 200 <= metrics[EVAL_RETURN_MEAN] <= 0
    walls = [m[WALL_S] for _, m in rows]
    assert walls == sorted(walls) and walls[0] >= 0
    # SB3's training stats under train/..., from the first training chunk on
    assert not any(k.startswith("train/") for k in rows[0][1])
    loss_key = {"trpo": "train/value_loss", "ppo": "train/value_loss", "ddpg": "train/critic_loss"}
    for _, metrics in rows[1:]:
        assert np.isfinite(metrics[loss_key[name]])
        assert metrics["train/n_updates"] > 0
    n_updates = [m["train/n_updates"] for _, m in rows[1:]]
    assert n_updates == sorted(n_updates) and n_updates[0] < n_updates[-1]
    # every row is logged at real env steps, and only once per step
    assert len(set(s for s, _ in tracker.rows)) == len(tracker.rows)
    assert tracker.final["final_return"] == rows[-1][1][EVAL_RETURN_MEAN]
    assert tracker.final[ENV_STEPS] == budget.total_env_steps


def test_on_policy_overshoot_is_logged_at_the_real_step_count(tmp_path: Path) -> None:
    # 300-step rollouts cannot stop at multiples of 400: evaluations happen after the rollout
    # that crosses each eval point, and are logged at the steps actually used.
    tracker, summary = run(
        "trpo",
        tmp_path,
        config={"n_steps": 300, "batch_size": 100},
        budget=Budget(total_env_steps=1000, eval_every=400, eval_episodes=1),
    )
    assert [s for s, _ in eval_rows(tracker)] == [0, 600, 900, 1200]
    assert summary.env_steps == 1200


def test_several_training_envs_count_every_env_step(tmp_path: Path) -> None:
    tracker, summary = run(
        "ppo",
        tmp_path,
        config={"n_steps": 100, "batch_size": 50, "n_epochs": 1, "n_envs": 2},
        budget=Budget(total_env_steps=400, eval_every=200, eval_episodes=1),
    )
    assert [s for s, _ in eval_rows(tracker)] == [0, 200, 400]
    assert eval_rows(tracker)[-1][1]["train/n_updates"] == 2  # one epoch per 200-step batch


@pytest.mark.parametrize("name", sorted(METHODS))
def test_same_seed_gives_the_same_run_and_another_seed_does_not(
    name: str, reference_runs: dict[str, MemoryTracker], tmp_path: Path
) -> None:
    again, _ = run(name, tmp_path / "again")
    assert without_wall(eval_rows(again)) == without_wall(eval_rows(reference_runs[name]))
    other, _ = run(name, tmp_path / "other", seed=1, budget=Budget(200, 200, 2))
    ref = dict(eval_rows(reference_runs[name]))
    assert other.rows[0][1][EVAL_RETURN_MEAN] != ref[0][EVAL_RETURN_MEAN]


class FailingTracker(MemoryTracker):
    """A tracker whose ``fail_at``-th ``log`` call fails (the run dies there, e.g. a killed job)."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.calls = 0
        self.fail_at = fail_at

    def log(self, metrics: Any, step: int) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("simulated kill")
        super().log(metrics, step)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_killed_run_resumes_to_the_same_complete_series(
    name: str, reference_runs: dict[str, MemoryTracker], tmp_path: Path
) -> None:
    # dies while logging its second evaluation (after the first training chunk was checkpointed)
    first = FailingTracker(fail_at=2)
    with pytest.raises(KeyboardInterrupt):
        run(name, tmp_path, tracker=first)
    assert [s for s, _ in eval_rows(first)] == [0]
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["progress"]["pending"] is not None  # checkpointed, not yet delivered

    second, summary = run(name, tmp_path)
    combined = eval_rows(first) + eval_rows(second)
    reference = eval_rows(reference_runs[name])
    # complete and not duplicated, and identical to the uninterrupted run (wall time aside)
    assert without_wall(combined) == without_wall(reference)
    assert summary.env_steps == BUDGETS[name].total_env_steps
    # wall time accumulates across the two sessions
    walls = [m[WALL_S] for _, m in combined]
    assert walls == sorted(walls)
    assert summary.wall_s == walls[-1]


def test_extending_the_budget_continues_without_relogging(tmp_path: Path) -> None:
    short, _ = run("ppo", tmp_path, budget=Budget(400, 400, 2))
    assert [s for s, _ in eval_rows(short)] == [0, 400]
    again, summary = run("ppo", tmp_path, budget=Budget(400, 400, 2))
    assert again.rows == [] and summary.env_steps == 400  # finished: nothing to do
    longer, summary = run("ppo", tmp_path, budget=Budget(800, 400, 2))
    assert [s for s, _ in eval_rows(longer)] == [800]
    # only the latest checkpoint is kept
    assert len(list(tmp_path.glob("ckpt_*"))) == 1
    assert not list(tmp_path.glob(".*tmp*"))


def test_a_run_dir_of_another_run_is_refused(tmp_path: Path) -> None:
    run("ppo", tmp_path, budget=Budget(200, 200, 1))
    with pytest.raises(ValueError, match=r"different run \(differs in \['config'\]\)"):
        run("ppo", tmp_path, config={**TINY["ppo"], "n_epochs": 3}, budget=Budget(400, 200, 1))
    with pytest.raises(ValueError, match=r"differs in \['seed'\]"):
        run("ppo", tmp_path, seed=5, budget=Budget(400, 200, 1))


def test_checkpoint_holds_what_each_method_needs(tmp_path: Path) -> None:
    expected = {
        "ppo": {"model.zip", "rng.pkl", "vecnormalize.pkl"},  # PPO normalises observations
        "trpo": {"model.zip", "rng.pkl"},
        "ddpg": {"model.zip", "rng.pkl", "replay.npz", "param_noise.json"},
    }
    for name, files in expected.items():
        run(name, tmp_path / name, budget=Budget(200, 200, 1))
        (ckpt,) = (tmp_path / name).glob("ckpt_*")
        assert {p.name for p in ckpt.iterdir()} == files, name


# ----------------------------------------------------------------------------- DDPG parts


def test_layer_norm_policy_normalises_hidden_layers_and_reloads(tmp_path: Path) -> None:
    env = get_env("pendulum").make(0)
    model = DDPG(
        LayerNormTD3Policy,
        env,
        policy_kwargs={"net_arch": {"pi": [32, 32], "qf": [16, 16]}, "activation_fn": nn.Tanh},
        seed=0,
        device="cpu",
    )
    policy = model.policy
    for net in (
        policy.actor.mu,
        policy.actor_target.mu,
        policy.critic.qf0,
        policy.critic_target.qf0,
    ):
        kinds = [type(m) for m in net]
        assert kinds.count(nn.LayerNorm) == 2 and kinds.count(nn.Linear) == 3
    assert policy.critic.q_networks[0] is policy.critic.qf0
    assert all(p.requires_grad for p in policy.critic.qf0.parameters())
    # targets start equal to the online nets, and the critic optimiser sees the new layers
    for a, b in zip(policy.actor.parameters(), policy.actor_target.parameters(), strict=True):
        assert torch.equal(a, b)
    opt_params = {id(p) for g in policy.critic.optimizer.param_groups for p in g["params"]}
    assert {id(p) for p in policy.critic.qf0.parameters()} <= opt_params
    opt_params = {id(p) for g in policy.actor.optimizer.param_groups for p in g["params"]}
    assert {id(p) for p in policy.actor.mu.parameters()} <= opt_params

    model.save(tmp_path / "m.zip")
    loaded = DDPG.load(tmp_path / "m.zip", device="cpu")
    obs = np.array([0.3, -0.2, 1.0], dtype=np.float32)
    assert np.array_equal(model.predict(obs)[0], loaded.predict(obs)[0])


@pytest.mark.parametrize("n_added", [7, 23])  # partly filled, and wrapped around (capacity 10)
def test_replay_buffer_round_trip(n_added: int, tmp_path: Path) -> None:
    env = get_env("pendulum").make(0)
    rng = np.random.default_rng(0)

    def fresh() -> ReplayBuffer:
        return ReplayBuffer(10, env.observation_space, env.action_space, device="cpu")

    buf = fresh()
    for _ in range(n_added):
        buf.add(
            rng.normal(size=(1, 3)).astype(np.float32),
            rng.normal(size=(1, 3)).astype(np.float32),
            rng.uniform(-1, 1, size=(1, 1)).astype(np.float32),
            rng.normal(size=(1,)).astype(np.float32),
            rng.uniform(size=(1,)) < 0.3,
            [{"TimeLimit.truncated": bool(rng.uniform() < 0.5)}],
        )
    save_replay_buffer(buf, tmp_path / "r.npz")
    back = fresh()
    load_replay_buffer(back, tmp_path / "r.npz")
    assert (back.pos, back.full) == (buf.pos, buf.full)
    for key in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        assert np.array_equal(getattr(back, key), getattr(buf, key)), key


# ----------------------------------------------------------------------------- learning


@pytest.mark.slow
def test_trpo_learns_inverted_pendulum(tmp_path: Path) -> None:
    """TRPO with 2k-step batches balances InvertedPendulum (return 200 = the horizon) within 40k
    steps; the untrained policy falls within a few steps."""
    tracker = MemoryTracker()
    method = TRPOMethod(
        get_env("inverted-pendulum"),
        0,
        {"n_steps": 2000, "batch_size": 100},
        tracker,
        tmp_path,
    )
    method.train(Budget(total_env_steps=40_000, eval_every=4000, eval_episodes=5))
    returns = [v for _, v in tracker.series(EVAL_RETURN_MEAN)]
    assert returns[0] < 50
    assert np.mean(returns[-3:]) > 150


# ----------------------------------------------------------------------------- parameter noise


def param_noise_model(**kwargs: Any) -> ParamNoiseDDPG:
    env = get_env("pendulum").make(0)
    return ParamNoiseDDPG(
        LayerNormTD3Policy,
        env,
        policy_kwargs={"net_arch": {"pi": [64, 64], "qf": [16, 16]}, "activation_fn": nn.Tanh},
        buffer_size=1000,
        learning_starts=50,
        seed=0,
        device="cpu",
        **kwargs,
    )


def test_param_noise_perturbs_weights_but_not_layer_norm() -> None:
    model = param_noise_model(param_noise_sigma=0.05)
    target = model._perturbed_actor
    model.perturb(target, 0.05)
    noise = []
    for (name, p), src in zip(target.named_parameters(), model.actor.parameters(), strict=True):
        d = (p - src).detach()
        is_ln = any(
            isinstance(m, nn.LayerNorm) and any(q is p for q in m.parameters())
            for m in target.modules()
        )
        if is_ln:
            assert torch.equal(d, torch.zeros_like(d)), name
        else:
            assert not torch.equal(d, torch.zeros_like(d)), name
            noise.append(d.flatten())
    all_noise = torch.cat(noise)
    assert all_noise.numel() > 4000
    assert abs(float(all_noise.std()) - 0.05) < 0.005
    assert abs(float(all_noise.mean())) < 0.005


def test_param_noise_std_adapts_towards_the_target_distance() -> None:
    model = param_noise_model(param_noise_sigma=0.3, param_noise_target=0.2)
    model.learn(200)  # fills the buffer, adapts every 50 steps from step 50 on
    assert np.isfinite(model.param_noise_distance)
    # a target below any distance shrinks the std by 1.01 per adaptation, and the reverse
    sigma = model.param_noise_sigma
    model.param_noise_target = 1e-9
    model.adapt()
    assert model.param_noise_sigma == pytest.approx(sigma / 1.01)
    model.param_noise_target = 1e9
    model.adapt()
    model.adapt()
    assert model.param_noise_sigma == pytest.approx(sigma * 1.01)
    # the distance grows with the std
    model.param_noise_sigma = 0.01
    model.adapt()
    small = model.param_noise_distance
    model.param_noise_sigma = 1.0
    model.adapt()
    assert model.param_noise_distance > 5 * small


def test_param_noise_explores_with_the_perturbed_actor_and_evaluates_without(
    tmp_path: Path,
) -> None:
    model = param_noise_model()
    model.learn(60)  # past learning_starts
    obs = model._last_obs
    action, buffer_action = model._sample_action(model.learning_starts, None, 1)
    with torch.no_grad():
        perturbed = model._perturbed_actor(model.policy.obs_to_tensor(obs)[0]).numpy()
    assert np.allclose(buffer_action, perturbed)
    plain, _ = model.predict(obs, deterministic=True)
    assert not np.allclose(action, plain)
    model.save(tmp_path / "p.zip")
    loaded = ParamNoiseDDPG.load(tmp_path / "p.zip", device="cpu")
    assert loaded.param_noise_sigma == model.param_noise_sigma
    assert np.array_equal(loaded.predict(obs, deterministic=True)[0], plain)


@pytest.mark.slow
def test_ddpg_with_parameter_noise_learns_pendulum(tmp_path: Path) -> None:
    """DDPG (layer norm, adaptive parameter noise) swings Pendulum up within 8k steps: from about
    -1300 to better than -400 (a good policy scores about -150)."""
    tracker, _ = run(
        "ddpg",
        tmp_path,
        config={"buffer_size": 20_000},
        budget=Budget(total_env_steps=8000, eval_every=2000, eval_episodes=5),
    )
    returns = [v for _, v in tracker.series(EVAL_RETURN_MEAN)]
    assert returns[0] < -1000
    assert max(returns[-2:]) > -400
