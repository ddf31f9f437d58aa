"""What ME-TRPO and MB-MPC share: the model/data half of their configs and the Method wrapper
around the ONE model-based loop (:class:`mbmpo.loop.ModelBasedLoop`).

Both methods are users of that loop, like MB-MPO: the loop collects real data, evaluates, fits the
ensemble and checkpoints; the method only supplies an :class:`mbmpo.loop.Agent` (how it acts and
how it improves). Defaults follow reference.md section 4: 4000 uniform random real steps first,
then 4000 real steps per iteration (20 episodes of 200 steps, in lock-step, one batched act call
per step), the same (512, 512) ensemble of 5 as MB-MPO.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch

from baselines.common import check_field_types
from mbmpo.algo import resolve_device
from mbmpo.config import EnsembleConfig
from mbmpo.config_utils import dataclass_from_mapping
from mbmpo.envs import EnvSpec
from mbmpo.loop import Agent, LoopConfig, ModelBasedLoop
from mbmpo.protocols import Budget, RunSummary, Tracker

C = TypeVar("C", bound="ModelBasedConfig")


@dataclass(frozen=True)
class ModelBasedConfig(EnsembleConfig):
    """Real-data collection (shared by ME-TRPO and MB-MPC); the dynamics ensemble, its fit and
    the buffer come from :class:`mbmpo.config.EnsembleConfig`, as for MB-MPO."""

    initial_random_steps: int = 4000
    """Uniform random real steps at iteration 0 (whole episodes, at least this many)."""
    real_steps_per_iteration: int = 4000
    """Real steps collected per later iteration with the method's own actor (whole batches of
    ``collect_envs`` episodes, repeated until at least this many)."""
    collect_envs: int = 20
    """Real episodes run in lock-step per collection batch (20 x horizon 200 = 4000 steps); the
    actor is called once per step for all of them (MB-MPC plans for all envs at once)."""

    def __post_init__(self) -> None:
        check_field_types(self, type(self).__name__)
        self.check_ensemble_settings()
        for name in ("initial_random_steps", "real_steps_per_iteration", "collect_envs"):
            if getattr(self, name) < 1:
                self._fail(name, "must be >= 1")
        self.loop_config()  # the loop config checks the rest (capacity vs random steps)

    def _fail(self, name: str, msg: str) -> None:
        raise ValueError(f"{type(self).__name__}.{name} {msg}, got {getattr(self, name)!r}")

    def loop_config(self) -> LoopConfig:
        """The shared loop's settings."""
        return self.ensemble_loop_config(
            initial_random_steps=self.initial_random_steps,
            episodes_per_iteration=self.collect_envs,
            min_steps_per_iteration=self.real_steps_per_iteration,
        )

    @classmethod
    def from_mapping(cls: type[C], values: Mapping[str, Any], where: str = "") -> C:
        """Build from a plain mapping (YAML/manifest), with clear errors for unknown keys."""
        return dataclass_from_mapping(cls, values, where=where or f"{cls.__name__} config")


class ModelBasedMethod:
    """A model-based method behind :class:`mbmpo.protocols.Method`: its agent on the shared loop.

    Subclasses set :attr:`config_class` and implement :meth:`make_agent`. A ``run_dir`` holding a
    checkpoint is resumed.
    """

    config_class: ClassVar[type[ModelBasedConfig]] = ModelBasedConfig

    def __init__(
        self,
        env: EnvSpec,
        seed: int,
        config: Mapping[str, Any] | ModelBasedConfig,
        tracker: Tracker,
        run_dir: Path,
        device: str = "cpu",
    ) -> None:
        cls = self.config_class
        self.config = config if isinstance(config, cls) else cls.from_mapping(config)  # type: ignore[arg-type]
        if self.config.num_threads is not None:
            torch.set_num_threads(self.config.num_threads)
        self.device = resolve_device(device)
        self.env = env
        self.seed = int(seed)
        self.agent = self.make_agent()
        self.loop = ModelBasedLoop(
            env, self.seed, self.config.loop_config(), self.agent, tracker, run_dir, self.device
        )

    def make_agent(self) -> Agent:
        """The method's acting/improving hook (uses ``self.env``, ``self.config``, ``self.seed``)."""
        raise NotImplementedError

    def train(self, budget: Budget) -> RunSummary:
        """Train until ``budget.total_env_steps`` real steps (resuming from ``run_dir``)."""
        return self.loop.train(budget)

    def close(self) -> None:
        """Close the real envs."""
        self.loop.close()
