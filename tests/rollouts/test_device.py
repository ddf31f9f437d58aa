"""The model side on CUDA gives the CPU's results (runs only where a GPU is present)."""

from __future__ import annotations

import pytest
import torch

from mbmpo.envs import get_env
from mbmpo.models import DynamicsEnsemble, EnsembleTrainer, ModelTrainerConfig, TransitionBuffer
from mbmpo.rollouts import ImaginedBatch, imagine


def _fit_and_imagine(device: str) -> tuple[float, ImaginedBatch]:
    """Fit a small ensemble on fixed data on ``device`` and roll fixed actions out in it."""
    env = get_env("hopper")  # has a termination function
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(600, env.obs_dim, generator=gen)
    act = torch.rand(600, env.act_dim, generator=gen) * 2 - 1
    nxt = obs + 0.05 * torch.randn(600, env.obs_dim, generator=gen)
    ens = DynamicsEnsemble(
        env.obs_dim, env.act_dim, 5, (32, 32), generator=torch.Generator().manual_seed(1)
    ).to(device)
    buf = TransitionBuffer(env.obs_dim, env.act_dim, device=device)
    buf.add(obs, act, nxt)
    trainer = EnsembleTrainer(
        ens, ModelTrainerConfig(max_epochs=3), torch.Generator().manual_seed(2)
    )
    metrics = trainer.fit(buf)
    start = obs[:40].view(10, 4, env.obs_dim).to(device)
    actions = torch.randn(6, 10, 4, env.act_dim, generator=torch.Generator().manual_seed(3))
    steps = iter(actions.to(device))
    batch = imagine(
        ens, lambda o: next(steps), start, 6, env, "fixed", torch.Generator().manual_seed(4)
    )
    assert batch.obs.device.type == device
    return metrics["model/val_loss"], batch


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_and_imagine_on_cuda_match_cpu() -> None:
    loss_cpu, b_cpu = _fit_and_imagine("cpu")
    loss_gpu, b_gpu = _fit_and_imagine("cuda")
    assert loss_gpu == pytest.approx(loss_cpu, rel=1e-3)
    torch.testing.assert_close(b_gpu.obs.cpu(), b_cpu.obs, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(b_gpu.mask.cpu(), b_cpu.mask)


def test_cpu_run_is_deterministic() -> None:
    """The CPU half of the comparison above (runs everywhere)."""
    (l1, b1), (l2, b2) = _fit_and_imagine("cpu"), _fit_and_imagine("cpu")
    assert l1 == l2 and torch.equal(b1.obs, b2.obs) and torch.equal(b1.mask, b2.mask)
