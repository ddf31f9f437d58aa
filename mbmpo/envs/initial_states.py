"""Initial-state sampling for imagined rollouts (the real env's reset distribution)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from mbmpo.envs.spec import EnvSpec

POOL_SIZE = 1000
"""At most this many real resets per call; larger requests resample from that pool."""

_ENV_CACHE: dict[str, gym.Env] = {}


def _cached_env(spec: EnvSpec) -> gym.Env:
    """One env per spec name, kept for later calls (resets are cheap, construction is not)."""
    env = _ENV_CACHE.get(spec.name)
    if env is None:
        env = spec.make()
        _ENV_CACHE[spec.name] = env
    return env


def sample_initial_states(spec: EnvSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """``[n, obs_dim]`` observations right after ``reset``, with reset seeds drawn from ``rng``.

    Up to :data:`POOL_SIZE` distinct resets are made; for larger ``n`` rows are resampled (with
    replacement) from that pool, also with ``rng``. The result is a deterministic function of the
    state of ``rng``.
    """
    if n < 1:
        raise ValueError(f"sample_initial_states: n must be >= 1, got {n}")
    env = _cached_env(spec)
    n_resets = min(n, POOL_SIZE)
    seeds = rng.integers(0, 2**31 - 1, size=n_resets)
    pool = np.empty((n_resets, spec.obs_dim), dtype=np.float64)
    for i, seed in enumerate(seeds):
        obs, _ = env.reset(seed=int(seed))
        pool[i] = obs
    if n_resets == n:
        return pool
    return pool[rng.integers(0, n_resets, size=n)]
