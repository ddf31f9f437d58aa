"""Returns, baseline, CG and the TRPO step on small problems with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from mbmpo.optim import (
    TRPOConfig,
    conjugate_gradient,
    discounted_returns,
    fit_linear_baseline,
    gae_advantages,
    standardize_per_task,
    trpo_step,
)
from mbmpo.optim.baseline import baseline_features


def _returns_by_loop(rew: list[float], alive: int, gamma: float) -> list[float]:
    out = [0.0] * len(rew)
    acc = 0.0
    for t in reversed(range(alive)):
        acc = rew[t] + gamma * acc
        out[t] = acc
    return out


def test_discounted_returns_with_masks() -> None:
    gen = torch.Generator().manual_seed(0)
    rew = torch.randn(3, 7, generator=gen, dtype=torch.float64)
    alive = [7, 4, 1]
    mask = torch.zeros(3, 7, dtype=torch.float64)
    for i, n in enumerate(alive):
        mask[i, :n] = 1.0
    rew_dead = torch.where(mask > 0, rew, torch.full_like(rew, 1e6))  # garbage after termination
    got = discounted_returns(rew_dead, mask, 0.9)
    for i, n in enumerate(alive):
        want = _returns_by_loop(rew[i].tolist(), n, 0.9)
        assert got[i].tolist() == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_gae_lambda_one_is_returns_minus_values_and_lambda_zero_is_td() -> None:
    gen = torch.Generator().manual_seed(1)
    rew = torch.randn(2, 5, 6, generator=gen, dtype=torch.float64)
    val = torch.randn(2, 5, 6, generator=gen, dtype=torch.float64)
    mask = torch.ones_like(rew)
    mask[0, 0, 3:] = 0.0
    ret = discounted_returns(rew, mask, 0.99)
    adv1 = gae_advantages(rew, val, mask, 0.99, 1.0)
    torch.testing.assert_close(adv1, (ret - val) * mask)
    adv0 = gae_advantages(rew, val, mask, 0.99, 0.0)
    v_next = torch.cat([val[..., 1:] * mask[..., 1:], torch.zeros_like(val[..., :1])], -1)
    torch.testing.assert_close(adv0, (rew + 0.99 * v_next - val) * mask)


def test_linear_baseline_recovers_a_linear_target() -> None:
    gen = torch.Generator().manual_seed(2)
    t_, n_, h_, d = 3, 4, 20, 2
    obs = torch.randn(t_, n_, h_, d, generator=gen, dtype=torch.float64)
    mask = torch.ones(t_, n_, h_, dtype=torch.float64)
    mask[:, 0, 15:] = 0.0
    feats = baseline_features(obs)
    w = torch.randn(t_, feats.shape[-1], generator=gen, dtype=torch.float64)  # one per task
    target = torch.einsum("tnhd,td->tnh", feats, w)
    values = fit_linear_baseline(obs, target * mask, mask, reg_coeff=1e-10)
    torch.testing.assert_close(values, target * mask, rtol=1e-5, atol=1e-5)


def test_standardize_per_task_over_alive_steps() -> None:
    gen = torch.Generator().manual_seed(3)
    adv = torch.randn(2, 50, generator=gen, dtype=torch.float64) * 5 + 3
    mask = torch.ones_like(adv)
    mask[1, 30:] = 0.0
    out = standardize_per_task(adv, mask)
    for i in range(2):
        alive = out[i][mask[i] > 0]
        assert float(alive.mean()) == pytest.approx(0.0, abs=1e-9)
        assert float(alive.std(unbiased=False)) == pytest.approx(1.0, rel=1e-6)
    assert bool((out[1, 30:] == 0).all())


def test_conjugate_gradient_solves_spd_system() -> None:
    gen = torch.Generator().manual_seed(4)
    m = torch.randn(8, 8, generator=gen, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(8, dtype=torch.float64)
    b = torch.randn(8, generator=gen, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iters=50, residual_tol=1e-20)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-8, atol=1e-8)


def _quadratic_problem() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    m = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    fisher = m @ m.T + torch.eye(4, dtype=torch.float64)
    c = torch.randn(4, generator=gen, dtype=torch.float64)
    x0 = torch.zeros(4, dtype=torch.float64)
    return fisher, c, x0


def test_trpo_step_respects_the_kl_bound() -> None:
    fisher, c, x0 = _quadratic_problem()

    def loss_kl(x: torch.Tensor) -> tuple[float, float]:
        return float(c @ x), float(0.5 * (x - x0) @ fisher @ (x - x0))

    for max_kl in (1e-2, 1e-6):
        cfg = TRPOConfig(max_kl=max_kl, cg_iters=10)
        res = trpo_step(x0, c, lambda v: fisher @ v, loss_kl, 0.0, cfg)
        assert res.accepted
        assert res.kl <= max_kl
        assert res.loss_after < 0.0
        # the quadratic KL model is exact here: the first (full) step lands on the bound
        assert res.backtracks == 0
        assert res.kl == pytest.approx(max_kl, rel=1e-3)


def test_trpo_step_is_rejected_when_no_candidate_satisfies_the_bound() -> None:
    fisher, c, x0 = _quadratic_problem()

    def loss_kl(x: torch.Tensor) -> tuple[float, float]:
        # the true KL is far larger than the (wrong) quadratic model the step is scaled with
        return float(c @ x), float(1e9 * (x - x0) @ (x - x0))

    cfg = TRPOConfig(max_kl=1e-8)
    res = trpo_step(x0, c, lambda v: fisher @ v, loss_kl, 0.0, cfg)
    assert not res.accepted
    assert torch.equal(res.params, x0)
    assert res.loss_after == 0.0

    def worse(x: torch.Tensor) -> tuple[float, float]:  # the loss never improves
        return 1.0 + float(x @ x), 0.0

    res = trpo_step(x0, c, lambda v: fisher @ v, worse, 1.0, TRPOConfig())
    assert not res.accepted and torch.equal(res.params, x0)


def test_trpo_config_invariants() -> None:
    with pytest.raises(ValueError, match="max_kl"):
        TRPOConfig(max_kl=0.0)
    with pytest.raises(ValueError, match="backtrack_ratio"):
        TRPOConfig(backtrack_ratio=1.0)
    assert math.isclose(TRPOConfig().max_kl, 0.01)


def test_conjugate_gradient_product_comes_from_the_residual() -> None:
    from mbmpo.optim.cg import conjugate_gradient_with_product

    gen = torch.Generator().manual_seed(6)
    m = torch.randn(30, 30, generator=gen, dtype=torch.float64)
    a = m @ m.T + torch.eye(30, dtype=torch.float64)
    b = torch.randn(30, generator=gen, dtype=torch.float64)
    x, ax = conjugate_gradient_with_product(lambda v: a @ v, b, iters=5)  # not converged
    torch.testing.assert_close(ax, a @ x, rtol=1e-9, atol=1e-9)
