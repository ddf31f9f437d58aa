"""Model-based RL benchmark suite: baselines behind the shared Method interface."""
