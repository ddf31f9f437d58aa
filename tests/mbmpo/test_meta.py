"""The policy's batched forward, and the exact meta-gradient and Fisher-vector products of the
MB-MPO objective against finite differences (float64, small policy)."""

from __future__ import annotations

import pytest
import torch

from mbmpo.optim.meta import MetaObjective, TaskBatch, adapt
from mbmpo.policies import GaussianMLPPolicy, gaussian_kl

T, M, OBS, ACT = 3, 40, 3, 2


def _policy() -> GaussianMLPPolicy:
    torch.manual_seed(0)
    pol = GaussianMLPPolicy(OBS, ACT, hidden_sizes=(5, 4), init_std=0.7).double()
    with torch.no_grad():
        pol.log_std.copy_(torch.tensor([-0.3, 0.2], dtype=torch.float64))
    return pol


def _batch(seed: int, dead: bool = True) -> TaskBatch:
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, M, OBS, generator=gen, dtype=torch.float64)
    act = torch.randn(T, M, ACT, generator=gen, dtype=torch.float64)
    adv = torch.randn(T, M, generator=gen, dtype=torch.float64)
    mask = torch.ones(T, M, dtype=torch.float64)
    if dead:
        mask[1, 25:] = 0.0
        adv = adv * mask
    return TaskBatch(obs=obs, act=act, adv=adv, mask=mask)


def test_task_batched_forward_matches_per_task_calls() -> None:
    pol = _policy()
    gen = torch.Generator().manual_seed(9)
    params = {
        k: v.detach() + 0.1 * torch.randn(T, *v.shape, generator=gen, dtype=v.dtype)
        for k, v in pol.named_params().items()
    }
    obs = torch.randn(T, 6, 5, OBS, generator=gen, dtype=torch.float64)
    act = torch.randn(T, 6, 5, ACT, generator=gen, dtype=torch.float64)
    lp = pol.log_prob(obs, act, params)
    assert lp.shape == (T, 6, 5)
    for t in range(T):
        one = {k: v[t] for k, v in params.items()}
        torch.testing.assert_close(lp[t], pol.log_prob(obs[t], act[t], one))
        dist = torch.distributions.Normal(*pol.mean_log_std(obs[t], one)[:1], one["log_std"].exp())
        torch.testing.assert_close(lp[t], dist.log_prob(act[t]).sum(-1))


def test_policy_initial_std_and_sampling_shapes() -> None:
    pol = GaussianMLPPolicy(4, 3)
    mean, log_std = pol.mean_log_std(torch.zeros(7, 4))
    assert mean.shape == (7, 3) and torch.allclose(log_std.exp(), torch.ones(3))
    a = pol.sample(torch.zeros(2, 7, 4), generator=torch.Generator().manual_seed(0))
    assert a.shape == (2, 7, 3)


def test_gaussian_kl_matches_torch_distributions() -> None:
    gen = torch.Generator().manual_seed(3)
    mp, mq = torch.randn(2, 5, 3, generator=gen), torch.randn(2, 5, 3, generator=gen)
    lp, lq = torch.randn(3, generator=gen) * 0.3, torch.randn(3, generator=gen) * 0.3
    want = torch.distributions.kl_divergence(
        torch.distributions.Normal(mp, lp.exp()), torch.distributions.Normal(mq, lq.exp())
    ).sum(-1)
    torch.testing.assert_close(gaussian_kl(mp, lp, mq, lq), want)


def _objective(learn: bool, adapt_on: bool = True) -> MetaObjective:
    pol = _policy()
    theta = {k: v.detach().clone() for k, v in pol.named_params().items()}
    alpha = {k: torch.full_like(v, 0.3) for k, v in theta.items()}
    if learn:  # distinct step sizes per element
        gen = torch.Generator().manual_seed(11)
        alpha = {
            k: 0.1 + 0.4 * torch.rand(v.shape, generator=gen, dtype=v.dtype)
            for k, v in theta.items()
        }
    obj = MetaObjective(pol, theta, alpha, learn, _batch(1) if adapt_on else None, T)
    post = _batch(2)
    obj.set_post(post)
    return obj


@pytest.mark.parametrize(("learn", "adapt_on"), [(False, True), (True, True), (False, False)])
def test_meta_gradient_matches_finite_differences(learn: bool, adapt_on: bool) -> None:
    obj = _objective(learn, adapt_on)
    x0 = obj.x0()
    loss, grad = obj.loss_and_grad()
    assert loss == pytest.approx(float(obj.evaluate(x0)[0]), rel=1e-12)
    eps = 1e-6
    fd = torch.empty_like(x0)
    for i in range(x0.numel()):
        e = torch.zeros_like(x0)
        e[i] = eps
        fd[i] = (obj.evaluate(x0 + e)[0] - obj.evaluate(x0 - e)[0]) / (2 * eps)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-8)
    # the second-order term matters here: a first-order (FOMAML) gradient would differ
    if adapt_on:
        first_order = obj._u  # gradient w.r.t. the adapted params, summed over tasks
        fo = torch.cat([v.sum(0).reshape(-1) for v in first_order.values()])
        assert (fo - grad[: fo.numel()]).abs().max() > 1e-4


@pytest.mark.parametrize(("learn", "adapt_on"), [(False, True), (True, True), (False, False)])
def test_fisher_vector_product_matches_finite_differences_of_the_kl_gradient(
    learn: bool, adapt_on: bool
) -> None:
    obj = _objective(learn, adapt_on)
    x0 = obj.x0()
    gen = torch.Generator().manual_seed(5)
    v = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)

    def kl_grad(x: torch.Tensor) -> torch.Tensor:
        x = x.clone().requires_grad_(True)
        _, kl = obj.evaluate(x, differentiable=True)
        return torch.autograd.grad(kl, x)[0]

    assert float(kl_grad(x0).abs().max()) < 1e-12  # the KL is minimal at the current point
    eps = 1e-5
    fd = (kl_grad(x0 + eps * v) - kl_grad(x0 - eps * v)) / (2 * eps)
    hv = obj.fvp(v)
    torch.testing.assert_close(hv, fd, rtol=1e-6, atol=1e-9)
    # and against the full autograd Hessian-vector product (third order through the inner step)
    x = x0.clone().requires_grad_(True)
    _, kl = obj.evaluate(x, differentiable=True)
    (g,) = torch.autograd.grad(kl, x, create_graph=True)
    (hv_ref,) = torch.autograd.grad(g @ v, x)
    torch.testing.assert_close(hv, hv_ref, rtol=1e-8, atol=1e-12)
    assert float(v @ hv) > 0.0


def test_adapt_matches_the_objective_and_alpha_zero_is_identity() -> None:
    pol = _policy()
    theta = {k: v.detach().clone() for k, v in pol.named_params().items()}
    pre = _batch(1)
    alpha = {k: torch.full_like(v, 0.3) for k, v in theta.items()}
    obj = MetaObjective(pol, theta, alpha, False, pre, T)
    ad = adapt(pol, theta, alpha, pre)
    for k in theta:
        torch.testing.assert_close(ad[k], obj.adapted[k])
    zero = {k: torch.zeros_like(v) for k, v in theta.items()}
    ad0 = adapt(pol, theta, zero, pre)
    for k in theta:
        torch.testing.assert_close(ad0[k], theta[k].expand_as(ad0[k]))


def test_written_out_inner_gradient_and_hvp_match_autograd_double_backward() -> None:
    from mbmpo.optim.inner import InnerLossCurvature
    from mbmpo.optim.meta import inner_loss

    pol, batch = _policy(), _batch(1)
    gen = torch.Generator().manual_seed(0)
    params = {
        k: (
            v.detach() + 0.1 * torch.randn(T, *v.shape, generator=gen, dtype=v.dtype)
        ).requires_grad_(True)
        for k, v in pol.named_params().items()
    }
    curv = InnerLossCurvature(pol, params, batch.obs, batch.act, batch.adv, batch.mask)
    loss = inner_loss(pol, params, batch)
    torch.testing.assert_close(curv.loss, loss.detach())
    grads = torch.autograd.grad(loss.sum(), list(params.values()), create_graph=True)
    u = {k: torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in params.items()}
    hv = torch.autograd.grad(grads, list(params.values()), grad_outputs=list(u.values()))
    mine = curv.hvp(u)
    for k, g, h in zip(params, grads, hv, strict=True):
        torch.testing.assert_close(curv.grad[k], g.detach(), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(mine[k], h, rtol=1e-10, atol=1e-12)
