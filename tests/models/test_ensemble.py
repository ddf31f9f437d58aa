"""DynamicsEnsemble: batched members equal separate MLPs, weight norm, normalisers, prediction modes."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from mbmpo.models import DynamicsEnsemble

OBS, ACT, K = 4, 2, 3


def _ensemble(hidden=(16, 8), dtype=torch.float32, seed: int = 0) -> DynamicsEnsemble:
    ens = DynamicsEnsemble(OBS, ACT, K, hidden, generator=torch.Generator().manual_seed(seed))
    ens = ens.to(dtype)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # move g away from |v| and set non-trivial normalisers
        for g in ens.g:
            g.mul_(0.5 + torch.rand(g.shape, generator=gen, dtype=dtype))
        ens.obs_mean.copy_(torch.randn(OBS, generator=gen, dtype=dtype))
        ens.obs_std.copy_(0.5 + torch.rand(OBS, generator=gen, dtype=dtype))
        ens.act_mean.copy_(torch.randn(ACT, generator=gen, dtype=dtype))
        ens.act_std.copy_(0.5 + torch.rand(ACT, generator=gen, dtype=dtype))
        ens.delta_mean.copy_(torch.randn(OBS, generator=gen, dtype=dtype))
        ens.delta_std.copy_(0.5 + torch.rand(OBS, generator=gen, dtype=dtype))
    return ens


def _separate_mlps(ens: DynamicsEnsemble) -> list[nn.Sequential]:
    """K ordinary torch MLPs holding the ensemble's raw (v, g, b), with torch's own weight-norm
    parametrisation (``torch.nn.utils.parametrizations.weight_norm``) as the reference."""
    mlps = []
    for k in range(ens.ensemble_size):
        layers: list[nn.Module] = []
        for i, (v, g, b) in enumerate(zip(ens.v, ens.g, ens.b, strict=True)):
            lin = weight_norm(nn.Linear(v.shape[1], v.shape[2]).to(v.dtype), dim=0)
            with torch.no_grad():  # nn.Linear stores [out, in]: g -> [out, 1], v -> [out, in]
                lin.parametrizations.weight.original0.copy_(g[k].T)
                lin.parametrizations.weight.original1.copy_(v[k].T)
                lin.bias.copy_(b[k, 0])
            layers.append(lin)
            if i < len(ens.v) - 1:
                layers.append(nn.ReLU())
        mlps.append(nn.Sequential(*layers))
    return mlps


def test_batched_equals_separate_mlps() -> None:
    ens = _ensemble()
    gen = torch.Generator().manual_seed(3)
    obs = 3 * torch.randn(K, 7, OBS, generator=gen)
    act = torch.randn(K, 7, ACT, generator=gen)
    pred = ens.predict(obs, act)
    for k, mlp in enumerate(_separate_mlps(ens)):
        x = torch.cat(
            ((obs[k] - ens.obs_mean) / ens.obs_std, (act[k] - ens.act_mean) / ens.act_std), -1
        )
        expected = obs[k] + mlp(x) * ens.delta_std + ens.delta_mean
        torch.testing.assert_close(pred[k], expected, rtol=1e-5, atol=1e-5)
    # the folded no-grad snapshot used by rollouts gives the same numbers
    torch.testing.assert_close(ens.frozen().step(obs, act), pred, rtol=1e-5, atol=1e-5)


def test_weight_norm_column_norms_equal_g() -> None:
    ens = _ensemble()
    for (w, _), g in zip(ens.layer_weights(), ens.g, strict=True):
        torch.testing.assert_close(w.norm(dim=1, keepdim=True), g)


def test_weight_norm_gradcheck_float64() -> None:
    ens = _ensemble(hidden=(5, 4), dtype=torch.float64)
    names = [n for n, _ in ens.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in ens.parameters())
    x = torch.randn(
        K, 3, OBS + ACT, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    x.requires_grad_(True)

    def f(x: torch.Tensor, *ps: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(ens, dict(zip(names, ps, strict=True)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-6)


def test_fit_normalizer_and_checkpoint_restores_it() -> None:
    gen = torch.Generator().manual_seed(0)
    obs = 5 + 2 * torch.randn(1000, OBS, generator=gen)
    obs[:, 3] = 7.0  # a constant column: std falls back to 1, stays finite
    act = torch.rand(1000, ACT, generator=gen)
    next_obs = obs + 0.1 * torch.randn(1000, OBS, generator=gen)
    ens = DynamicsEnsemble(OBS, ACT, K, (8,))
    ens.fit_normalizer(obs, act, next_obs)
    torch.testing.assert_close(ens.obs_mean, obs.mean(0))
    torch.testing.assert_close(ens.obs_std[:3], obs[:, :3].std(0, unbiased=False))
    assert ens.obs_std[3] == 1.0
    torch.testing.assert_close(ens.delta_std, (next_obs - obs).std(0, unbiased=False))
    other = DynamicsEnsemble(OBS, ACT, K, (8,))
    other.load_state_dict(ens.state_dict())
    for name in ("obs_mean", "obs_std", "act_mean", "act_std", "delta_mean", "delta_std"):
        assert torch.equal(getattr(other, name), getattr(ens, name))
    o, a = obs[:5].expand(K, 5, OBS), act[:5].expand(K, 5, ACT)
    assert torch.equal(other.predict(o, a), ens.predict(o, a))


def test_output_clip() -> None:
    ens = DynamicsEnsemble(OBS, ACT, K, (8,), output_clip=10.0)
    with torch.no_grad():
        ens.b[-1].fill_(1e6)
    pred = ens.predict(torch.zeros(K, 2, OBS), torch.zeros(K, 2, ACT))
    assert torch.all(pred == 10.0)


def test_predict_random_balanced_and_by_a_member() -> None:
    ens = _ensemble()
    gen = torch.Generator().manual_seed(4)
    b = 11  # not a multiple of K
    obs, act = torch.randn(b, OBS, generator=gen), torch.randn(b, ACT, generator=gen)
    every = ens.predict(obs.expand(K, b, OBS), act.expand(K, b, ACT))  # [K, B, obs]
    out = ens.predict_random(obs, act, torch.Generator().manual_seed(5))
    dist = (every - out[None]).abs().amax(-1)  # [K, B]
    member = dist.argmin(0)
    assert torch.all(dist.amin(0) < 1e-5)
    counts = torch.bincount(member, minlength=K)
    assert counts.max() - counts.min() <= 1 and counts.min() >= 1
    torch.testing.assert_close(ens.predict_mean(obs, act), every.mean(0))


def test_bad_shapes_raise() -> None:
    ens = _ensemble()
    with pytest.raises(ValueError, match="expected obs"):
        ens.predict(torch.zeros(K + 1, 2, OBS), torch.zeros(K + 1, 2, ACT))


def test_frozen_snapshot_precise_with_offset_inputs() -> None:
    """Inputs far from zero with a small spread (e.g. a height near 100 +- 0.01): the rollout
    snapshot must agree with the differentiable path."""
    ens = _ensemble()
    gen = torch.Generator().manual_seed(6)
    with torch.no_grad():
        ens.obs_mean.fill_(100.0)
        ens.obs_std.fill_(0.01)
    obs = 100.0 + 0.01 * torch.randn(K, 9, OBS, generator=gen)
    act = torch.randn(K, 9, ACT, generator=gen)
    torch.testing.assert_close(
        ens.frozen().step(obs, act), ens.predict(obs, act), rtol=0, atol=1e-4
    )
