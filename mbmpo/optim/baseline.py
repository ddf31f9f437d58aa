"""Linear feature baseline (rllab's), fitted per task with one batched solve.

Features per step: ``clip(obs, -10, 10)``, its square, ``t/100``, ``(t/100)^2``, ``(t/100)^3`` and 1.
The fit is ridge regression of the discounted return on these features over the alive steps of
each task, ``(F^T F + reg I) w = F^T R``, solved for all tasks at once.
"""

from __future__ import annotations

import torch
from torch import Tensor


def baseline_features(obs: Tensor) -> Tensor:
    """Features ``[..., H, 2 obs + 4]`` of ``obs [..., H, obs]`` (step ``t`` is the index along H)."""
    horizon = obs.shape[-2]
    o = obs.clamp(-10.0, 10.0)
    al = (torch.arange(horizon, device=obs.device, dtype=obs.dtype) / 100.0).reshape(horizon, 1)
    al = al.expand(*obs.shape[:-1], 1)
    return torch.cat([o, o * o, al, al * al, al * al * al, torch.ones_like(al)], dim=-1)


def fit_linear_baseline(
    obs: Tensor, returns: Tensor, mask: Tensor, reg_coeff: float = 1e-5, max_tries: int = 5
) -> Tensor:
    """Fit one linear baseline per task and return its values ``[T, N, H]`` on the same data.

    :param obs: ``[T, N, H, obs]`` states.
    :param returns: ``[T, N, H]`` discounted returns (regression targets).
    :param mask: ``[T, N, H]`` alive mask; dead steps are left out of the fit (values there are 0).
    :param reg_coeff: ridge coefficient; multiplied by 10 (up to ``max_tries`` times) if the solve
        gives non-finite weights, as rllab does.
    """
    if obs.dim() != 4:
        raise ValueError(f"obs must be [T, N, H, obs], got shape {tuple(obs.shape)}")
    t = obs.shape[0]
    feats = baseline_features(obs)  # [T, N, H, D]
    d = feats.shape[-1]
    m = mask.unsqueeze(-1)
    f = (feats * m).reshape(t, -1, d)  # dead rows zeroed: [T, NH, D]
    y = (returns * mask).reshape(t, -1, 1)  # [T, NH, 1]
    ftf = f.transpose(1, 2) @ f  # [T, D, D]
    fty = f.transpose(1, 2) @ y  # [T, D, 1]
    eye = torch.eye(d, dtype=obs.dtype, device=obs.device)
    reg = reg_coeff
    for _ in range(max_tries):
        w = torch.linalg.solve(ftf + reg * eye, fty)  # [T, D, 1]
        if bool(torch.isfinite(w).all()):
            break
        reg *= 10.0
    values = (feats.reshape(t, -1, d) @ w).reshape(mask.shape)
    return values * mask


def standardize_per_task(adv: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """``(adv - mean) / (std + eps)`` per task over alive steps; ``adv, mask`` are ``[T, ...]``."""
    t = adv.shape[0]
    a = adv.reshape(t, -1)
    m = mask.reshape(t, -1)
    n = m.sum(1, keepdim=True).clamp(min=1.0)
    mean = (a * m).sum(1, keepdim=True) / n
    var = (((a - mean) * m) ** 2).sum(1, keepdim=True) / n
    out = (a - mean) / (var.sqrt() + eps) * m
    return out.reshape(adv.shape)
