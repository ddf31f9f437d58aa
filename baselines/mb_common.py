"""What ME-TRPO and MB-MPC share: the model/data half of their configs and the Method wrapper
around the ONE model-based loop (:class:`mbmpo.loop.ModelBasedLoop`).

Both methods are users of that loop, like MB-MPO: the loop collects real data, evaluates, fits the
ensemble and checkpoints; the method only supplies an :class:`mbmpo.loop.Agent` (how it acts and
how it improves). Defaults follow reference.md section 4: 4000 uniform random real steps first,
then 4000 real steps per iteration (20 episodes of 200 steps, in lock-step, one batched act call
per step), the same (512, 512) ensemble of 5 as MB-MPO.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch

from baselines.common import check_field_types
from mbmpo.algo import resolve_device
from mbmpo.config_utils import dataclass_from_mapping
from mbmpo.envs import EnvSpec
from mbmpo.loop import Agent, LoopConfig, ModelBasedLoop
from mbmpo.models import ModelTrainerConfig
from mbmpo.protocols import Budget, RunSummary, Tracker

C = TypeVar("C", bound="ModelBasedConfig")


@dataclass(frozen=True)
class ModelBasedConfig:
    """Real-data collection, dynamics ensemble and model fit (shared by ME-TRPO and MB-MPC)."""

    initial_random_steps: int = 4000
    """Uniform random real steps at iteration 0 (whole episodes, at least this many)."""
    real_steps_per_iteration: int = 4000
    """Real steps collected per later iteration with the method's own actor (whole batches of
    ``collect_envs`` episodes, repeated until at least this many)."""
    collect_envs: int = 20
    """Real episodes run in lock-step per collection batch (20 x horizon 200 = 4000 steps); the
    actor is called once per step for all of them (MB-MPC plans for all envs at once)."""
    ensemble_size: int = 5
    """Dynamics models K."""
    model_hidden_sizes: tuple[int, ...] = (512, 512)
    """Dynamics MLP hidden layers (ReLU)."""
    model_weight_norm: bool = True
    """Weight normalisation in the dynamics models."""
    model_output_clip: float = 1000.0
    """Predicted next states are clipped to +-this."""
    model_learning_rate: float = 1e-3
    """Adam step size of the model fit."""
    model_batch_size: int = 500
    """Rows per member per Adam step."""
    model_max_epochs: int = 500
    """Epoch cap per fit (members stop earlier on their rolling validation average)."""
    model_validation_fraction: float = 0.2
    """Per-member validation split."""
    model_persistency: float = 0.99
    """Early-stopping rolling-average persistency."""
    buffer_capacity: int = 300_000
    """FIFO capacity of the real-transition buffer (the ensemble is refit on all of it)."""
    num_threads: int | None = None
    """torch intra-op threads for this run (None: leave torch's setting)."""

    def __post_init__(self) -> None:
        check_field_types(self, type(self).__name__)
        for name in (
            "initial_random_steps",
            "real_steps_per_iteration",
            "collect_envs",
            "ensemble_size",
            "model_batch_size",
            "model_max_epochs",
            "buffer_capacity",
        ):
            if getattr(self, name) < 1:
                self._fail(name, "must be >= 1")
        if not self.model_hidden_sizes or any(h < 1 for h in self.model_hidden_sizes):
            self._fail("model_hidden_sizes", "must be a non-empty list of positive ints")
        if self.num_threads is not None and self.num_threads < 1:
            self._fail("num_threads", "must be null or >= 1")
        if not (math.isfinite(self.model_output_clip) and self.model_output_clip > 0):
            self._fail("model_output_clip", "must be a finite number > 0")
        # the nested configs check the rest (learning rate, split, persistency, capacity)
        self.loop_config()

    def _fail(self, name: str, msg: str) -> None:
        raise ValueError(f"{type(self).__name__}.{name} {msg}, got {getattr(self, name)!r}")

    def trainer_config(self) -> ModelTrainerConfig:
        """The ensemble fit's settings."""
        return ModelTrainerConfig(
            learning_rate=self.model_learning_rate,
            batch_size=self.model_batch_size,
            max_epochs=self.model_max_epochs,
            validation_fraction=self.model_validation_fraction,
            persistency=self.model_persistency,
        )

    def loop_config(self) -> LoopConfig:
        """The shared loop's settings."""
        return LoopConfig(
            initial_random_steps=self.initial_random_steps,
            episodes_per_iteration=self.collect_envs,
            min_steps_per_iteration=self.real_steps_per_iteration,
            ensemble_size=self.ensemble_size,
            model_hidden_sizes=self.model_hidden_sizes,
            model_weight_norm=self.model_weight_norm,
            model_output_clip=self.model_output_clip,
            trainer=self.trainer_config(),
            buffer_capacity=self.buffer_capacity,
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
