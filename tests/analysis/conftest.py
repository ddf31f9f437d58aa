"""Fixtures of the analysis tests (defined in ``analysis_fixtures`` so tests can import its helpers
under a unique module name)."""

from analysis_fixtures import cache_dir, wandb_runs

__all__ = ["cache_dir", "wandb_runs"]
