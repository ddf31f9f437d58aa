"""Environment registry: the paper's environments with batched torch reward/termination functions.

Public API: ``get_env(name) -> EnvSpec``, ``list_envs() -> list[str]``, ``EnvSpec``.
"""

from mbmpo.envs.registry import get_env, list_envs
from mbmpo.envs.spec import EnvSpec

__all__ = ["EnvSpec", "get_env", "list_envs"]
