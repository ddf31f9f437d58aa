"""Environment registry: the paper's environments with batched torch reward/termination functions.

Public API: ``get_env(name) -> EnvSpec``, ``list_envs() -> list[str]``, ``make_env``,
``sample_initial_states``, ``EnvSpec``.
"""

from mbmpo.envs.initial_states import sample_initial_states
from mbmpo.envs.registry import get_env, list_envs, make_env
from mbmpo.envs.spec import EnvSpec

__all__ = ["EnvSpec", "get_env", "list_envs", "make_env", "sample_initial_states"]
