"""Policies with explicit-parameter forwards (for the meta-learning inner step)."""

from mbmpo.policies.gaussian_mlp import GaussianMLPPolicy, gaussian_kl, gaussian_log_prob

__all__ = ["GaussianMLPPolicy", "gaussian_kl", "gaussian_log_prob"]
