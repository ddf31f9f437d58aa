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
    """``[n, obs_dim]`` observations right after ``reset``, drawn with a seed from ``rng``.

    One reset seed is drawn from ``rng``; the env is reset with it and then reset again without a
    seed (continuing its own generator, which is ~3x faster than reseeding every time) for up to
    :data:`POOL_SIZE` distinct states. For larger ``n``, rows are resampled (with replacement)
    from that pool, also with ``rng``. The result is a deterministic function of ``rng``'s state.
    """
    if n < 1:
        raise ValueError(f"sample_initial_states: n must be >= 1, got {n}")
    env = _cached_env(spec)
    n_resets = min(n, POOL_SIZE)
    pool = np.empty((n_resets, spec.obs_dim), dtype=np.float64)
    pool[0] = env.reset(seed=int(rng.integers(0, 2**31 - 1)))[0]
    for i in range(1, n_resets):
        pool[i] = env.reset()[0]
    if n_resets == n:
        return pool
    return pool[rng.integers(0, n_resets, size=n)]
