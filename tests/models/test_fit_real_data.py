"""The ensemble learns real MuJoCo dynamics from random-action data (real sampler, real buffer)."""

from __future__ import annotations

import pytest
import torch

from mbmpo.envs import get_env
from mbmpo.models import DynamicsEnsemble, EnsembleTrainer, ModelTrainerConfig, TransitionBuffer
from mbmpo.rollouts import RealSampler


def _fit(
    env_name: str, steps: int, hidden: tuple[int, ...], cfg: ModelTrainerConfig, seed: int = 0
):
    env = get_env(env_name)
    sampler = RealSampler(env, num_envs=10, seed=seed)
    buf = TransitionBuffer(env.obs_dim, env.act_dim)
    while len(buf) < steps:
        batch = sampler.run(None)
        buf.add(batch.obs, batch.act, batch.next_obs)
    gen = torch.Generator().manual_seed(seed)
    ens = DynamicsEnsemble(env.obs_dim, env.act_dim, 5, hidden, generator=gen)
    metrics = EnsembleTrainer(ens, cfg, gen).fit(buf)
    # held-out episodes: one-step error relative to predicting "no change"
    test = RealSampler(env, num_envs=5, seed=seed + 100).run(None)
    obs, act, nxt = (torch.as_tensor(x) for x in (test.obs, test.act, test.next_obs))
    with torch.no_grad():
        pred = ens.predict_mean(obs, act)
    rel = ((pred - nxt) ** 2).sum() / ((obs - nxt) ** 2).sum()
    return metrics, float(rel)


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """MuJoCo writes MUJOCO_LOG.TXT into the cwd: keep it out of the source tree."""
    monkeypatch.chdir(tmp_path)


def test_inverted_pendulum_one_step_model() -> None:
    cfg = ModelTrainerConfig(batch_size=100, max_epochs=30)
    metrics, rel = _fit("inverted-pendulum", 1500, (64, 64), cfg)
    assert metrics["model/val_loss"] < 0.05
    assert rel < 0.05


@pytest.mark.slow
def test_halfcheetah_paper_model() -> None:
    """Paper-size members (512, 512) on 5000 random HalfCheetah steps, 25 epochs."""
    cfg = ModelTrainerConfig(max_epochs=25)
    metrics, rel = _fit("halfcheetah", 5000, (512, 512), cfg)
    assert metrics["model/val_loss"] < 0.3
    assert rel < 0.2
