"""Policy optimisation as pure functions: returns/GAE, linear baseline, CG, TRPO, the meta step."""

from mbmpo.optim.baseline import baseline_features, fit_linear_baseline, standardize_per_task
from mbmpo.optim.cg import conjugate_gradient
from mbmpo.optim.meta import MetaObjective, TaskBatch, adapt, inner_loss
from mbmpo.optim.returns import discounted_returns, gae_advantages
from mbmpo.optim.trpo import TRPOConfig, TRPOResult, trpo_step

__all__ = [
    "MetaObjective",
    "TRPOConfig",
    "TRPOResult",
    "TaskBatch",
    "adapt",
    "baseline_features",
    "conjugate_gradient",
    "discounted_returns",
    "fit_linear_baseline",
    "gae_advantages",
    "inner_loss",
    "standardize_per_task",
    "trpo_step",
]
