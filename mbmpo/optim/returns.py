"""Discounted returns and generalised advantage estimates on masked, fixed-length trajectories.

Trajectories are stored as ``[..., H]`` tensors with an alive ``mask`` (1.0 while the trajectory is
alive at that step, 0.0 after it terminated). Rewards and values at dead steps are ignored and the
value after the last step (or after termination) is taken as 0, as rllab does for finished paths.
"""

from __future__ import annotations

import torch
from torch import Tensor


def discount_matrix(
    horizon: int, factor: float, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """``[H, H]`` matrix ``D`` with ``D[k, t] = factor**(k - t)`` for ``k >= t`` else 0.

    ``x @ D`` computes the discounted reverse cumulative sum of ``x [..., H]`` in one matmul.
    """
    idx = torch.arange(horizon, device=device)
    power = (idx.unsqueeze(1) - idx.unsqueeze(0)).to(dtype)  # [k, t] = k - t
    mat = torch.pow(torch.as_tensor(factor, dtype=dtype, device=device), power.clamp(min=0))
    return torch.where(power >= 0, mat, torch.zeros((), dtype=dtype, device=device))


def discounted_returns(rew: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """Reward-to-go ``R_t = sum_{k >= t} gamma^(k-t) r_k m_k`` ``[..., H]`` (0 at dead steps).

    :param rew: ``[..., H]`` rewards.
    :param mask: ``[..., H]`` alive mask (1.0 alive, 0.0 after termination).
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    r = torch.where(mask > 0, rew, torch.zeros_like(rew))
    d = discount_matrix(rew.shape[-1], gamma, rew.dtype, rew.device)
    return (r @ d) * mask


def gae_advantages(rew: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> Tensor:
    """GAE(gamma, lambda) advantages ``[..., H]`` (0 at dead steps).

    ``delta_t = r_t + gamma V_{t+1} m_{t+1} - V_t`` (the value after the horizon is 0) and
    ``A_t = sum_{k >= t} (gamma lambda)^(k-t) delta_k m_k``. With ``lam = 1`` this is
    ``discounted_returns - values``, the estimator MB-MPO uses.

    :param values: ``[..., H]`` baseline values ``V(s_t)``.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    zero = torch.zeros_like(rew)
    alive = mask > 0
    r = torch.where(alive, rew, zero)
    v = torch.where(alive, values, zero)
    v_next = torch.cat([v[..., 1:], zero[..., :1]], dim=-1)
    delta = torch.where(alive, r + gamma * v_next - v, zero)
    d = discount_matrix(rew.shape[-1], gamma * lam, rew.dtype, rew.device)
    return (delta @ d) * mask
