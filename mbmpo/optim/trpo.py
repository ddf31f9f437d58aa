"""The TRPO step (rllab's ConjugateGradientOptimizer) as a pure function on flat parameter vectors.

Given the surrogate loss gradient ``g`` and a Fisher-vector product ``F``, the search direction is
``s = CG(F + damping I, g)``; the full step is scaled so that the quadratic KL model equals the
bound, ``beta = sqrt(2 max_kl / s^T (F + damping I) s)`` (``(F + damping I) s`` is taken from CG's
residual, ``g - r``, rather than from one more product as rllab does), and is then backtracked by ``ratio^j``
(``j < max_backtracks``). A candidate is accepted only if the loss improves and the KL bound holds;
otherwise the old parameters are kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from mbmpo.optim.cg import conjugate_gradient_with_product


@dataclass(frozen=True)
class TRPOConfig:
    """Settings of one KL-constrained step."""

    max_kl: float = 0.01
    """Trust region: the mean KL(old || new) bound."""
    cg_iters: int = 10
    """Conjugate-gradient iterations for the search direction."""
    damping: float = 1e-5
    """``damping * I`` is added to the Fisher matrix (rllab's ``reg_coeff``)."""
    backtrack_ratio: float = 0.8
    """Step fractions tried are ``backtrack_ratio ** j``."""
    max_backtracks: int = 15
    """``j`` runs over ``0 .. max_backtracks - 1``."""

    def __post_init__(self) -> None:
        if not self.max_kl > 0:
            raise ValueError(f"TRPOConfig.max_kl must be > 0, got {self.max_kl}")
        if self.cg_iters < 1:
            raise ValueError(f"TRPOConfig.cg_iters must be >= 1, got {self.cg_iters}")
        if self.damping < 0:
            raise ValueError(f"TRPOConfig.damping must be >= 0, got {self.damping}")
        if not 0 < self.backtrack_ratio < 1:
            raise ValueError(
                f"TRPOConfig.backtrack_ratio must be in (0, 1), got {self.backtrack_ratio}"
            )
        if self.max_backtracks < 1:
            raise ValueError(f"TRPOConfig.max_backtracks must be >= 1, got {self.max_backtracks}")


@dataclass(frozen=True)
class TRPOResult:
    """Outcome of :func:`trpo_step`."""

    params: Tensor
    """New flat parameters ``[n]`` (the old ones when rejected)."""
    accepted: bool
    """Whether a candidate passed both tests."""
    loss_before: float
    loss_after: float
    """Loss at ``params`` (``loss_before`` when rejected)."""
    kl: float
    """KL at ``params`` (0 when rejected)."""
    backtracks: int
    """Number of step shrinks tried before acceptance (``max_backtracks`` when rejected)."""


def trpo_step(
    params: Tensor,
    grad: Tensor,
    fvp: Callable[[Tensor], Tensor],
    loss_kl: Callable[[Tensor], tuple[float, float]],
    loss_before: float,
    config: TRPOConfig = TRPOConfig(),
) -> TRPOResult:
    """One TRPO step from ``params [n]``.

    :param grad: gradient of the loss at ``params`` ``[n]``.
    :param fvp: ``v [n] -> F v [n]``, the Hessian of the mean KL at ``params`` (no damping).
    :param loss_kl: ``x [n] -> (loss, kl)`` at candidate parameters ``x``.
    :param loss_before: loss at ``params``.
    """

    def damped(v: Tensor) -> Tensor:
        return fvp(v) + config.damping * v

    direction, a_direction = conjugate_gradient_with_product(damped, grad, iters=config.cg_iters)
    shs = float(torch.dot(direction, a_direction))
    step = math.sqrt(2.0 * config.max_kl / (shs + 1e-8)) * direction
    for j in range(config.max_backtracks):
        candidate = params - (config.backtrack_ratio**j) * step
        loss, kl = loss_kl(candidate)
        if math.isfinite(loss) and math.isfinite(kl) and loss < loss_before and kl <= config.max_kl:
            return TRPOResult(candidate, True, loss_before, loss, kl, j)
    return TRPOResult(params.clone(), False, loss_before, loss_before, 0.0, config.max_backtracks)
