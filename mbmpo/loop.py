"""The ONE model-based training loop, shared by MB-MPO, ME-TRPO and MB-MPC.

Each iteration:

1. **collect** real data: iteration 0 takes ``initial_random_steps`` uniform random steps; later
   iterations run ``episodes_per_iteration`` episodes (repeated until ``min_steps_per_iteration``
   steps) with the agent's :meth:`Agent.collect_act_fn`. Transitions go into the FIFO buffer.
2. **eval**: the agent's :meth:`Agent.eval_act_fn` (MB-MPO: the pre-update policy) runs
   ``budget.eval_episodes`` episodes on a SEPARATE set of envs; these steps are not counted.
   Evaluation happens at the first iteration, whenever ``budget.eval_every`` more real steps have
   been used since the last one, and at the end.
3. **model_fit**: the ensemble is fit on the whole buffer (warm start).
4. **improve**: the agent's hook (MB-MPO: 30 meta steps; ME-TRPO: TRPO on imagined data;
   MB-MPC: nothing).

Every iteration logs one row at ``step = env_steps`` (real steps only), checks every phase's output
for NaN/inf (raising :class:`~mbmpo.protocols.NonFiniteError` naming the phase, before anything is
saved), and saves a checkpoint atomically in ``run_dir``. A loop built on a ``run_dir`` that holds a
checkpoint resumes from it, exactly (same RNG streams, same buffer, same weights and optimiser
states). Steps 3-4 are skipped once the budget is used up, so the last row is the final evaluation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from mbmpo import checkpoint as ckpt
from mbmpo.envs import EnvSpec
from mbmpo.models import DynamicsEnsemble, EnsembleTrainer, ModelTrainerConfig, TransitionBuffer
from mbmpo.protocols import (
    ENV_STEPS,
    EVAL_EPISODES,
    EVAL_RETURN_MEAN,
    EVAL_RETURN_STD,
    WALL_S,
    Budget,
    NonFiniteError,
    RunSummary,
    Tracker,
)
from mbmpo.rollouts import EpisodeBatch, RealSampler

ActFn = Callable[[Tensor], Tensor]
"""``obs [M, obs] -> act [M, act]``; row ``m`` is episode ``m``."""


@dataclass(frozen=True)
class LoopConfig:
    """What the shared loop needs to know (each method builds one from its own config)."""

    initial_random_steps: int = 5000
    """Uniform random real steps taken at iteration 0 (whole episodes, at least this many)."""
    episodes_per_iteration: int = 20
    """Real episodes per later iteration, one per env (MB-MPO: one per task)."""
    min_steps_per_iteration: int = 0
    """Repeat batches of ``episodes_per_iteration`` episodes until this many steps (0: one batch)."""
    ensemble_size: int = 5
    """Dynamics models K."""
    model_hidden_sizes: tuple[int, ...] = (512, 512)
    """Hidden layers of each dynamics model (ReLU)."""
    model_weight_norm: bool = True
    """Weight normalisation in the dynamics models."""
    model_output_clip: float = 1000.0
    """Predicted next states are clipped to +-this."""
    trainer: ModelTrainerConfig = field(default_factory=ModelTrainerConfig)
    """How the ensemble is fit each iteration."""
    buffer_capacity: int = 300_000
    """FIFO capacity of the real-transition buffer."""

    def __post_init__(self) -> None:
        for name in ("initial_random_steps", "episodes_per_iteration", "ensemble_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"LoopConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.min_steps_per_iteration < 0:
            raise ValueError(
                f"LoopConfig.min_steps_per_iteration must be >= 0, got {self.min_steps_per_iteration}"
            )
        if self.buffer_capacity < self.initial_random_steps:
            raise ValueError(
                f"LoopConfig.buffer_capacity ({self.buffer_capacity}) must hold the initial "
                f"random steps ({self.initial_random_steps})"
            )


@dataclass
class LoopContext:
    """What the agent's hooks see. The loop owns all of it (and checkpoints it)."""

    env: EnvSpec
    ensemble: DynamicsEnsemble
    buffer: TransitionBuffer
    generator: torch.Generator
    """Training randomness (imagined rollouts, collection actions)."""
    eval_generator: torch.Generator
    """Evaluation randomness (kept apart so evaluation never changes training)."""
    device: torch.device
    iteration: int = 0
    env_steps: int = 0


class Agent(Protocol):
    """How a model-based method acts and improves; the loop does everything else.

    MB-MPO: acts with the adapted policies when collecting, the pre-update policy in evaluation,
    improves by meta steps. ME-TRPO: one policy for both, TRPO on imagined data. MB-MPC: a planner
    on the ensemble for both, ``improve`` does nothing.
    """

    @property
    def improve_phase(self) -> str:
        """Name of the improvement phase, for ``time/<phase>_s`` and error messages ("meta")."""
        ...

    @property
    def collect_return_key(self) -> str:
        """Key under which the returns of the agent's collection episodes are logged."""
        ...

    def collect_act_fn(self, ctx: LoopContext, num_envs: int) -> ActFn:
        """The act function for the real collection episodes (iterations >= 1)."""
        ...

    def eval_act_fn(self, ctx: LoopContext, num_envs: int) -> ActFn:
        """The act function for evaluation episodes."""
        ...

    def improve(self, ctx: LoopContext) -> dict[str, float]:
        """Improve on the freshly fit ensemble; returns metrics to log."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def derive_seed(seed: int, tag: str) -> int:
    """An independent 31-bit seed for the stream called ``tag`` of run ``seed``."""
    words = [int(seed)] + [ord(c) for c in tag]
    return int(np.random.SeedSequence(words).generate_state(1)[0] & 0x7FFFFFFF)


def _tensors(obj: Any, prefix: str = "") -> Iterable[tuple[str, Tensor]]:
    """All floating-point tensors inside nested dicts/lists, with their paths."""
    if isinstance(obj, Tensor):
        if obj.is_floating_point():
            yield prefix, obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}[{i}]")


def check_finite(phase: str, iteration: int, metrics: Mapping[str, float], *states: Any) -> None:
    """Raise :class:`NonFiniteError` naming ``phase`` if any metric or state tensor is NaN/inf."""
    bad = [k for k, v in metrics.items() if not math.isfinite(float(v))]
    for state in states:
        bad += [k for k, t in _tensors(state) if not bool(torch.isfinite(t).all())]
    if bad:
        shown = ", ".join(bad[:8]) + (" ..." if len(bad) > 8 else "")
        raise NonFiniteError(
            f"non-finite values after phase '{phase}' of iteration {iteration}: {shown} "
            "(the last good checkpoint is kept)"
        )


class ModelBasedLoop:
    """Collect real data -> evaluate -> fit the ensemble -> improve (see the module docstring)."""

    def __init__(
        self,
        env: EnvSpec,
        seed: int,
        config: LoopConfig,
        agent: Agent,
        tracker: Tracker,
        run_dir: str | Path,
        device: str | torch.device = "cpu",
    ) -> None:
        self.env = env
        self.seed = int(seed)
        self.config = config
        self.agent = agent
        self.tracker = tracker
        self.run_dir = Path(run_dir)
        self.device = torch.device(device)
        model_gen = torch.Generator(device=self.device).manual_seed(derive_seed(seed, "model"))
        self.model_generator = model_gen
        self.ensemble = DynamicsEnsemble(
            env.obs_dim,
            env.act_dim,
            ensemble_size=config.ensemble_size,
            hidden_sizes=config.model_hidden_sizes,
            weight_norm=config.model_weight_norm,
            output_clip=config.model_output_clip,
            device=self.device,
            generator=model_gen,
        )
        self.trainer = EnsembleTrainer(self.ensemble, config.trainer, model_gen)
        self.buffer = TransitionBuffer(
            env.obs_dim, env.act_dim, capacity=config.buffer_capacity, device=self.device
        )
        self.ctx = LoopContext(
            env=env,
            ensemble=self.ensemble,
            buffer=self.buffer,
            generator=torch.Generator(device=self.device).manual_seed(derive_seed(seed, "train")),
            eval_generator=torch.Generator(device=self.device).manual_seed(
                derive_seed(seed, "eval")
            ),
            device=self.device,
        )
        self.collect_sampler = RealSampler(
            env, config.episodes_per_iteration, derive_seed(seed, "collect"), device=self.device
        )
        self._random_sampler: RealSampler | None = None
        self._eval_sampler: RealSampler | None = None
        self._eval_sampler_state: dict[str, Any] | None = None
        self.wall_s = 0.0
        self.last_eval_steps: int | None = None
        self.last_return = float("nan")
        self.resumed = self._restore()

    # ----- samplers -----------------------------------------------------------------------------
    def _random_steps_sampler(self) -> RealSampler:
        if self._random_sampler is None:
            n = max(1, math.ceil(self.config.initial_random_steps / self.env.horizon))
            self._random_sampler = RealSampler(
                self.env, n, derive_seed(self.seed, "random"), device=self.device
            )
        return self._random_sampler

    def _eval_steps_sampler(self, episodes: int) -> RealSampler:
        if self._eval_sampler is None or self._eval_sampler.num_envs != episodes:
            self._eval_sampler = RealSampler(
                self.env, episodes, derive_seed(self.seed, "evaluation"), device=self.device
            )
            if self._eval_sampler_state is not None:
                ckpt.load_real_sampler_state(self._eval_sampler, self._eval_sampler_state)
        return self._eval_sampler

    # ----- checkpointing -------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        eval_state = (
            ckpt.real_sampler_state(self._eval_sampler)
            if self._eval_sampler is not None
            else self._eval_sampler_state
        )
        return {
            "iteration": self.ctx.iteration,
            "env_steps": self.ctx.env_steps,
            "wall_s": self.wall_s,
            "last_eval_steps": self.last_eval_steps,
            "last_return": self.last_return,
            "ensemble": self.ensemble.state_dict(),
            "trainer": self.trainer.state_dict(),
            "buffer": self.buffer.state_dict(),
            "agent": self.agent.state_dict(),
            "rng": {
                "global": ckpt.global_rng_state(),
                "model": self.model_generator.get_state(),
                "train": self.ctx.generator.get_state(),
                "eval": self.ctx.eval_generator.get_state(),
            },
            "samplers": {
                "collect": ckpt.real_sampler_state(self.collect_sampler),
                "eval": eval_state,
            },
        }

    def save(self) -> None:
        """Checkpoint everything into ``run_dir``."""
        ckpt.save_checkpoint(self.run_dir, self._state())

    def _restore(self) -> bool:
        state = ckpt.load_checkpoint(self.run_dir)
        if state is None:
            return False
        self.ctx.iteration = int(state["iteration"])
        self.ctx.env_steps = int(state["env_steps"])
        self.wall_s = float(state["wall_s"])
        self.last_eval_steps = state["last_eval_steps"]
        self.last_return = float(state["last_return"])
        self.ensemble.load_state_dict(state["ensemble"])
        self.trainer.load_state_dict(state["trainer"])
        self.buffer.load_state_dict(state["buffer"])
        self.agent.load_state_dict(state["agent"])
        rng = state["rng"]
        ckpt.set_global_rng_state(rng["global"])
        self.model_generator.set_state(rng["model"])
        self.ctx.generator.set_state(rng["train"])
        self.ctx.eval_generator.set_state(rng["eval"])
        ckpt.load_real_sampler_state(self.collect_sampler, state["samplers"]["collect"])
        self._eval_sampler_state = state["samplers"]["eval"]
        return True

    # ----- phases ---------------------------------------------------------------------------------
    def _collect(self) -> tuple[int, dict[str, float]]:
        """Run the real collection episodes of this iteration; returns (steps, metrics)."""
        cfg = self.config
        first = self.ctx.iteration == 0
        batches: list[EpisodeBatch] = []
        steps = 0
        if first:
            sampler = self._random_steps_sampler()
            while steps < cfg.initial_random_steps:
                batches.append(sampler.run(None))
                steps += batches[-1].num_steps
        else:
            act_fn = self.agent.collect_act_fn(self.ctx, self.collect_sampler.num_envs)
            while True:
                batches.append(self.collect_sampler.run(act_fn))
                steps += batches[-1].num_steps
                if steps >= cfg.min_steps_per_iteration:
                    break
        for b in batches:
            check_finite("collect", self.ctx.iteration, {}, [torch.as_tensor(b.next_obs)])
            self.buffer.add(b.obs, b.act, b.next_obs)
        returns = np.concatenate([b.episode_returns for b in batches])
        key = "collect/random_return" if first else self.agent.collect_return_key
        metrics = {
            key: float(returns.mean()),
            "collect/episodes": float(returns.size),
            "collect/steps": float(steps),
        }
        return steps, metrics

    def _evaluate(self, episodes: int) -> dict[str, float]:
        sampler = self._eval_steps_sampler(episodes)
        batch = sampler.run(self.agent.eval_act_fn(self.ctx, episodes))
        r = batch.episode_returns
        return {
            EVAL_RETURN_MEAN: float(r.mean()),
            EVAL_RETURN_STD: float(r.std()),
            EVAL_EPISODES: float(r.size),
        }

    # ----- the loop -------------------------------------------------------------------------------
    def train(self, budget: Budget) -> RunSummary:
        """Run iterations until ``budget.total_env_steps`` real steps are used (resuming if a
        checkpoint was found)."""
        ctx = self.ctx
        while ctx.env_steps < budget.total_env_steps:
            t_start = time.perf_counter()
            row: dict[str, float] = {"iteration": float(ctx.iteration)}

            t0 = time.perf_counter()
            steps, metrics = self._collect()
            ctx.env_steps += steps
            row.update(metrics)
            row["time/sampling_s"] = time.perf_counter() - t0
            check_finite("collect", ctx.iteration, metrics)
            done = ctx.env_steps >= budget.total_env_steps

            due = (
                self.last_eval_steps is None
                or ctx.env_steps - self.last_eval_steps >= budget.eval_every
                or done
            )
            if due:
                t0 = time.perf_counter()
                metrics = self._evaluate(budget.eval_episodes)
                row["time/eval_s"] = time.perf_counter() - t0
                check_finite("eval", ctx.iteration, metrics)
                row.update(metrics)
                self.last_eval_steps = ctx.env_steps
                self.last_return = metrics[EVAL_RETURN_MEAN]

            if not done:
                t0 = time.perf_counter()
                metrics = self.trainer.fit(self.buffer)
                row["time/model_fit_s"] = time.perf_counter() - t0
                check_finite("model_fit", ctx.iteration, metrics, self.ensemble.state_dict())
                row.update(metrics)

                t0 = time.perf_counter()
                metrics = self.agent.improve(ctx)
                phase = self.agent.improve_phase
                row[f"time/{phase}_s"] = time.perf_counter() - t0
                check_finite(phase, ctx.iteration, metrics, self.agent.state_dict())
                row.update(metrics)

            row["time/iteration_s"] = time.perf_counter() - t_start
            self.wall_s += row["time/iteration_s"]
            row[WALL_S] = self.wall_s
            row[ENV_STEPS] = float(ctx.env_steps)
            ctx.iteration += 1
            self.tracker.log(row, step=ctx.env_steps)
            self.save()
        summary = RunSummary(
            env_steps=ctx.env_steps,
            final_return=self.last_return,
            wall_s=self.wall_s,
            extra={"iterations": float(ctx.iteration)},
        )
        self.tracker.summary(
            {
                ENV_STEPS: summary.env_steps,
                "final_return": summary.final_return,
                WALL_S: summary.wall_s,
                "iterations": ctx.iteration,
            }
        )
        return summary

    def close(self) -> None:
        """Close the real envs."""
        for s in (self.collect_sampler, self._random_sampler, self._eval_sampler):
            if s is not None:
                s.close()
