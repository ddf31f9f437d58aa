"""MB-MPO end to end on the cheap `point` env: resume is exact, NaNs stop the run with a
phase-naming error and keep the last checkpoint, the config checks its invariants, and it learns."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from mbmpo.algo import MBMPO
from mbmpo.checkpoint import checkpoint_path, load_checkpoint
from mbmpo.config import MBMPOConfig
from mbmpo.envs import get_env
from mbmpo.protocols import Budget, MemoryTracker, NonFiniteError

TINY: dict[str, Any] = {
    "meta_batch_size": 4,
    "ensemble_size": 2,
    "meta_steps": 2,
    "imagined_trajectories": 4,
    "imagined_horizon": 10,
    "model_hidden_sizes": [16, 16],
    "model_max_epochs": 3,
    "initial_random_steps": 100,
}
BUDGET = Budget(total_env_steps=100 + 4 * 4 * 50, eval_every=100, eval_episodes=2)


class Killed(Exception):
    """Stands in for the process being killed."""


class KillingTracker(MemoryTracker):
    """Raises on the ``kill_at``-th log call (before that iteration's checkpoint is written)."""

    def __init__(self, kill_at: int) -> None:
        super().__init__()
        self.kill_at = kill_at

    def log(self, metrics: Any, step: int) -> None:
        if len(self.rows) == self.kill_at:
            raise Killed
        super().log(metrics, step)


def _params(m: MBMPO) -> dict[str, torch.Tensor]:
    out = {f"policy.{k}": v.detach().clone() for k, v in m.policy.state_dict().items()}
    out.update({f"model.{k}": v.detach().clone() for k, v in m.loop.ensemble.state_dict().items()})
    return out


def _no_time(rows: list[tuple[int, dict[str, float]]]) -> list[tuple[int, dict[str, float]]]:
    return [(s, {k: v for k, v in r.items() if not k.startswith("time/")}) for s, r in rows]


def test_killed_and_resumed_run_matches_an_uninterrupted_one(tmp_path: Path) -> None:
    env = get_env("point")
    ref_tracker = MemoryTracker()
    ref = MBMPO(env, 3, TINY, ref_tracker, tmp_path / "ref")
    ref_summary = ref.train(BUDGET)
    assert ref_summary.env_steps == BUDGET.total_env_steps
    assert len(ref_tracker.rows) == 5

    killed_tracker = KillingTracker(kill_at=2)  # dies while logging iteration 2
    first = MBMPO(env, 3, TINY, killed_tracker, tmp_path / "run")
    with pytest.raises(Killed):
        first.train(BUDGET)
    assert load_checkpoint(tmp_path / "run")["iteration"] == 2

    resumed_tracker = MemoryTracker()
    resumed = MBMPO(env, 3, TINY, resumed_tracker, tmp_path / "run")
    assert resumed.loop.resumed
    summary = resumed.train(BUDGET)

    assert _no_time(killed_tracker.rows + resumed_tracker.rows) == _no_time(ref_tracker.rows)
    assert summary.final_return == ref_summary.final_return
    p_ref, p_res = _params(ref), _params(resumed)
    assert p_ref.keys() == p_res.keys()
    for k in p_ref:
        assert torch.equal(p_ref[k], p_res[k]), k
    # a different seed gives a different run (the comparison above can fail)
    other = MemoryTracker()
    MBMPO(env, 4, TINY, other, tmp_path / "other").train(BUDGET)
    assert _no_time(other.rows) != _no_time(ref_tracker.rows)
    # a finished run resumed again does nothing more
    again = MemoryTracker()
    assert MBMPO(env, 3, TINY, again, tmp_path / "run").train(BUDGET).env_steps == summary.env_steps
    assert again.rows == []


@pytest.mark.parametrize("phase", ["model_fit", "meta"])
def test_nan_stops_the_run_naming_the_phase_and_keeps_the_checkpoint(
    tmp_path: Path, phase: str
) -> None:
    env = get_env("point")
    short = Budget(total_env_steps=300, eval_every=100, eval_episodes=2)
    MBMPO(env, 0, TINY, MemoryTracker(), tmp_path).train(short)
    before = checkpoint_path(tmp_path).read_bytes()

    m = MBMPO(env, 0, TINY, MemoryTracker(), tmp_path)
    if phase == "meta":
        improve = m.agent.improve

        def poisoned_improve(ctx: Any) -> dict[str, float]:
            out = improve(ctx)
            with torch.no_grad():
                m.policy.w0[0, 0] = math.nan
            return out

        m.agent.improve = poisoned_improve  # type: ignore[method-assign]
    else:
        fit = m.loop.trainer.fit

        def poisoned_fit(buffer: Any) -> dict[str, float]:
            out = fit(buffer)
            with torch.no_grad():
                m.loop.ensemble.b[0][0, 0, 0] = math.inf
            return out

        m.loop.trainer.fit = poisoned_fit  # type: ignore[method-assign]
    with pytest.raises(NonFiniteError, match=f"phase '{phase}'"):
        m.train(Budget(total_env_steps=1000, eval_every=100, eval_episodes=2))
    assert checkpoint_path(tmp_path).read_bytes() == before


def test_config_invariants_and_mapping_errors() -> None:
    cfg = MBMPOConfig()
    assert (cfg.meta_batch_size, cfg.ensemble_size, cfg.inner_lr, cfg.meta_steps) == (
        20,
        5,
        1e-3,
        30,
    )
    assert cfg.loop_config().episodes_per_iteration == 20
    with pytest.raises(ValueError, match="multiple of ensemble_size"):
        MBMPOConfig(meta_batch_size=12, ensemble_size=5)
    with pytest.raises(ValueError, match="start_states"):
        MBMPOConfig(start_states="somewhere")
    with pytest.raises(ValueError, match="collect_with"):
        MBMPOConfig(collect_with="post")
    with pytest.raises(ValueError, match="max_kl"):
        MBMPOConfig(max_kl=0.0)
    with pytest.raises(ValueError, match="inner_lr"):
        MBMPOConfig(inner_lr=-0.1)
    with pytest.raises(ValueError, match=r"unknown MBMPOConfig key\(s\) \['meta_batch'\]"):
        MBMPOConfig.from_mapping({"meta_batch": 20})
    got = MBMPOConfig.from_mapping({"model_hidden_sizes": [64, 64]})
    assert got.model_hidden_sizes == (64, 64)


def test_unavailable_device_is_a_clear_error(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        MBMPO(get_env("point"), 0, TINY, MemoryTracker(), tmp_path, device="cuda")


def test_no_adaptation_and_pre_update_collection_run(tmp_path: Path) -> None:
    """alpha = 0 (Fig. 5's "no adaptation") and collecting with theta both run and log."""
    tracker = MemoryTracker()
    cfg = {**TINY, "inner_lr": 0.0, "collect_with": "pre_update"}
    MBMPO(get_env("point"), 0, cfg, tracker, tmp_path).train(
        Budget(total_env_steps=300, eval_every=100, eval_episodes=2)
    )
    assert len(tracker.series("mbmpo/collect_pre_update_return")) == 1
    assert tracker.series("mbmpo/post_update_return") == []
    assert tracker.series("mbmpo/imagined_pre_return") == []


def test_mbmpo_learns_point(tmp_path: Path) -> None:
    """The pre-update return rises from random (about -43.5 over 50 steps) toward optimal (-3.9)."""
    cfg = {
        "meta_batch_size": 4,
        "ensemble_size": 2,
        "meta_steps": 5,
        "imagined_trajectories": 20,
        "model_hidden_sizes": [64, 64],
        "model_max_epochs": 50,
        "initial_random_steps": 500,
    }
    tracker = MemoryTracker()
    summary = MBMPO(get_env("point"), 0, cfg, tracker, tmp_path).train(
        Budget(total_env_steps=1100, eval_every=100, eval_episodes=10)
    )
    returns = [r for _, r in tracker.series("eval/return_mean")]
    assert returns[0] < -30.0  # the initial policy is no better than random
    assert summary.final_return > -20.0
    assert tracker.series("train/step_accepted")[-1][1] > 0.0


def test_suite_hyperparams_file_is_the_paper_default() -> None:
    import yaml

    path = Path(__file__).resolve().parents[2] / "suites" / "hyperparams" / "mbmpo.yaml"
    loaded = MBMPOConfig.from_mapping(yaml.safe_load(path.read_text()), where=str(path))
    assert loaded == MBMPOConfig()


@pytest.mark.slow
def test_mbmpo_learns_inverted_pendulum_with_termination(tmp_path: Path) -> None:
    """A MuJoCo env with a termination function (imagined and real): the pre-update policy
    balances far longer than the random policy (which falls after about 5-10 steps)."""
    cfg = {
        "meta_batch_size": 4,
        "ensemble_size": 2,
        "meta_steps": 10,
        "imagined_trajectories": 20,
        "imagined_horizon": 100,
        "model_hidden_sizes": [64, 64],
        "model_max_epochs": 50,
        "initial_random_steps": 1000,
    }
    tracker = MemoryTracker()
    summary = MBMPO(get_env("inverted-pendulum"), 0, cfg, tracker, tmp_path).train(
        Budget(total_env_steps=4000, eval_every=1, eval_episodes=5)
    )
    returns = [r for _, r in tracker.series("eval/return_mean")]
    assert returns[0] < 30.0
    assert max(returns[-3:]) > 100.0, returns
    assert summary.env_steps >= 4000
