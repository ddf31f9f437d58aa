"""MB-MPO's configuration: a frozen dataclass with the paper's defaults (reference.md section 1).

The number of iterations is implied by the budget (real env steps): iteration 0 takes
``initial_random_steps`` random steps, every later one ``meta_batch_size`` episodes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mbmpo.config_utils import dataclass_from_mapping
from mbmpo.loop import LoopConfig
from mbmpo.models import ModelTrainerConfig
from mbmpo.optim import TRPOConfig
from mbmpo.rollouts import PROPAGATIONS

START_STATES = ("reset", "buffer")
COLLECT_WITH = ("adapted", "pre_update")


@dataclass(frozen=True)
class EnsembleConfig:
    """The dynamics ensemble, its fit and the real-data buffer: the settings MB-MPO, ME-TRPO and
    MB-MPC share (each method's config subclasses this one)."""

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
    """Epoch cap per fit."""
    model_max_steps: int | None = None
    """Optional Adam-step budget per fit, rounded down to whole epochs (at least one); None (the
    paper) leaves only ``model_max_epochs`` and early stopping. See ``ModelTrainerConfig.max_steps``."""
    model_validation_fraction: float = 0.2
    """Per-member validation split."""
    model_persistency: float = 0.99
    """Early-stopping rolling-average persistency."""
    buffer_capacity: int = 300_000
    """FIFO capacity of the real-transition buffer (the ensemble is refit on all of it)."""
    num_threads: int | None = None
    """torch intra-op threads for this run (None: leave torch's setting)."""

    def check_ensemble_settings(self) -> None:
        """Raise ``ValueError`` naming the field for an invalid ensemble/buffer setting."""

        def fail(name: str, msg: str) -> None:
            raise ValueError(f"{type(self).__name__}.{name} {msg}, got {getattr(self, name)!r}")

        for name in ("ensemble_size", "model_batch_size", "model_max_epochs", "buffer_capacity"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                fail(name, "must be a positive int")
        steps = self.model_max_steps
        if steps is not None and (
            isinstance(steps, bool) or not isinstance(steps, int) or steps < 1
        ):
            fail("model_max_steps", "must be null or a positive int")
        if not self.model_hidden_sizes or any(h < 1 for h in self.model_hidden_sizes):
            fail("model_hidden_sizes", "must be a non-empty list of positive ints")
        if self.num_threads is not None and self.num_threads < 1:
            fail("num_threads", "must be null or >= 1")
        if not (math.isfinite(self.model_output_clip) and self.model_output_clip > 0):
            fail("model_output_clip", "must be a finite number > 0")
        self.trainer_config()  # checks learning rate, split and persistency

    def trainer_config(self) -> ModelTrainerConfig:
        """The ensemble fit's settings."""
        return ModelTrainerConfig(
            learning_rate=self.model_learning_rate,
            batch_size=self.model_batch_size,
            max_epochs=self.model_max_epochs,
            max_steps=self.model_max_steps,
            validation_fraction=self.model_validation_fraction,
            persistency=self.model_persistency,
        )

    def ensemble_loop_config(
        self, initial_random_steps: int, episodes_per_iteration: int, min_steps_per_iteration: int
    ) -> LoopConfig:
        """The shared loop's settings, given how the method collects real data."""
        return LoopConfig(
            initial_random_steps=initial_random_steps,
            episodes_per_iteration=episodes_per_iteration,
            min_steps_per_iteration=min_steps_per_iteration,
            ensemble_size=self.ensemble_size,
            model_hidden_sizes=self.model_hidden_sizes,
            model_weight_norm=self.model_weight_norm,
            model_output_clip=self.model_output_clip,
            trainer=self.trainer_config(),
            buffer_capacity=self.buffer_capacity,
        )


@dataclass(frozen=True)
class PolicyGradientConfig:
    """The Gaussian policy, advantage estimation and TRPO step settings that MB-MPO (its outer
    step) and ME-TRPO share."""

    discount: float = 0.99
    """Discount gamma."""
    gae_lambda: float = 1.0
    """GAE lambda (1.0: discounted return minus the baseline)."""
    baseline_reg: float = 1e-5
    """Ridge coefficient of the linear feature baseline."""
    normalize_advantages: bool = True
    """Standardise advantages (per task for MB-MPO, per batch for ME-TRPO)."""
    max_kl: float = 0.01
    """TRPO step: mean KL bound."""
    cg_iters: int = 10
    """TRPO step: conjugate-gradient iterations."""
    cg_damping: float = 1e-5
    """TRPO step: Fisher damping."""
    backtrack_ratio: float = 0.8
    """TRPO step: line-search shrink factor."""
    max_backtracks: int = 15
    """TRPO step: line-search candidates."""
    policy_hidden_sizes: tuple[int, ...] = (32, 32)
    """Policy MLP hidden layers (tanh)."""
    policy_init_std: float = 1.0
    """Initial action std."""
    eval_deterministic: bool = False
    """Evaluate the policy mean instead of sampling (the authors' sampler samples: False)."""

    def check_policy_gradient_settings(self) -> None:
        """Raise ``ValueError`` naming the field for an invalid policy-gradient setting."""

        def fail(name: str, msg: str) -> None:
            raise ValueError(f"{type(self).__name__}.{name} {msg}, got {getattr(self, name)!r}")

        for name in ("discount", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                fail(name, "must be in [0, 1]")
        for name in ("cg_iters", "max_backtracks"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                fail(name, "must be a positive int")
        if self.baseline_reg < 0:
            fail("baseline_reg", "must be >= 0")
        if self.policy_init_std <= 0:
            fail("policy_init_std", "must be > 0")
        if not self.policy_hidden_sizes or any(h < 1 for h in self.policy_hidden_sizes):
            fail("policy_hidden_sizes", "must be a non-empty list of positive ints")
        self.trpo_config()  # checks the KL bound and the line search

    def trpo_config(self) -> TRPOConfig:
        """The TRPO step's settings."""
        return TRPOConfig(
            max_kl=self.max_kl,
            cg_iters=self.cg_iters,
            damping=self.cg_damping,
            backtrack_ratio=self.backtrack_ratio,
            max_backtracks=self.max_backtracks,
        )


@dataclass(frozen=True)
class MBMPOConfig(PolicyGradientConfig, EnsembleConfig):
    """All MB-MPO settings (defaults = the paper's, identical for all six environments)."""

    # --- meta-learning -----------------------------------------------------------------------------
    meta_batch_size: int = 20
    """Tasks T per meta step; task i uses model i // (T / K). Must be a multiple of ensemble_size."""
    inner_lr: float = 0.001
    """Inner step size alpha (vanilla policy gradient on all params incl. log-std); 0 = no adaptation."""
    learnable_inner_lr: bool = False
    """Learn one inner step size per policy parameter element (initialised at inner_lr) with TRPO."""
    meta_steps: int = 30
    """Outer TRPO steps per iteration."""
    imagined_trajectories: int = 50
    """Imagined trajectories per task per rollout (pre- and post-update each)."""
    imagined_horizon: int | None = None
    """Imagined rollout length; None = the env's horizon (200 for the paper's envs)."""
    start_states: str = "reset"
    """Imagined start states: "reset" (the env's reset distribution, Fig. 1) or "buffer" (Fig. 5)."""
    start_reset_prob: float = 0.1
    """With start_states="buffer": probability of a reset-distribution start state instead."""
    start_recent: int = 10_000
    """With start_states="buffer": draw from the last this-many buffer states."""
    propagation: str = "task"
    """Which model imagines which task: "task" (the paper), or "fixed"/"random"/"mean" (ablations)."""
    collect_with: str = "adapted"
    """Real episodes run the adapted policies theta'_i ("adapted", the paper) or theta ("pre_update")."""
    # --- data (the dynamics ensemble and its fit: EnsembleConfig) ------------------------------
    initial_random_steps: int = 5000
    """Uniform random real steps at iteration 0."""

    def __post_init__(self) -> None:
        self.check_ensemble_settings()
        self.check_policy_gradient_settings()

        def fail(name: str, msg: str) -> None:
            raise ValueError(f"MBMPOConfig.{name} {msg}, got {getattr(self, name)!r}")

        for name in (
            "meta_batch_size",
            "meta_steps",
            "imagined_trajectories",
            "initial_random_steps",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                fail(name, "must be a positive int")
        if self.propagation == "task" and self.meta_batch_size % self.ensemble_size != 0:
            raise ValueError(
                f"MBMPOConfig.meta_batch_size ({self.meta_batch_size}) must be a multiple of "
                f"ensemble_size ({self.ensemble_size}) so that every model gets the same number "
                "of tasks"
            )
        if self.imagined_horizon is not None and self.imagined_horizon < 1:
            fail("imagined_horizon", "must be None or >= 1")
        if self.start_states not in START_STATES:
            fail("start_states", f"must be one of {START_STATES}")
        if self.propagation not in PROPAGATIONS:
            fail("propagation", f"must be one of {PROPAGATIONS}")
        if self.collect_with not in COLLECT_WITH:
            fail("collect_with", f"must be one of {COLLECT_WITH}")
        if self.inner_lr < 0:
            fail("inner_lr", "must be >= 0")
        if self.learnable_inner_lr and self.inner_lr == 0:
            fail("inner_lr", "must be > 0 when learnable_inner_lr is set")
        if not 0.0 <= self.start_reset_prob <= 1.0:
            fail("start_reset_prob", "must be in [0, 1]")
        if self.start_recent < 1:
            fail("start_recent", "must be >= 1")
        # the nested configs check the rest (KL bound, learning rate, ...)
        self.loop_config()

    @property
    def adapts(self) -> bool:
        """Whether the inner step changes anything (alpha > 0 or learnable)."""
        return self.inner_lr > 0 or self.learnable_inner_lr

    def loop_config(self) -> LoopConfig:
        """The shared loop's settings: one real episode per task per iteration."""
        return self.ensemble_loop_config(
            initial_random_steps=self.initial_random_steps,
            episodes_per_iteration=self.meta_batch_size,
            min_steps_per_iteration=0,
        )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str = "") -> MBMPOConfig:
        """Build from a plain mapping (YAML/manifest), with clear errors for unknown keys."""
        return dataclass_from_mapping(cls, values, where=where or "mbmpo config")
