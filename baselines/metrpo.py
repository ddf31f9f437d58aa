"""ME-TRPO (Kurutach et al. 2018), as the MB-MPO authors ran it for Figure 2 (reference.md section 4).

:class:`METRPOAgent` is the policy-improvement hook of the shared
:class:`~mbmpo.loop.ModelBasedLoop` (the same loop MB-MPO uses): after the loop has collected
4000 real steps with the current policy and refit the ensemble on all data, the agent takes
``trpo_steps`` TRPO steps, each on ``imagined_trajectories x horizon`` (50k) fresh imagined steps
where every step is predicted by a randomly chosen ensemble member (``propagation="random"``),
with start states from the real env's reset distribution, the linear feature baseline, gamma 0.99
and standardised advantages. The TRPO step is the core's (:func:`mbmpo.optim.trpo_step` on
:class:`mbmpo.optim.MetaObjective` without an inner step, i.e. plain TRPO on one task).

Policy validation (the original ME-TRPO's stopping rule, off by default: ``policy_validation``):
before the first step and then every ``validation_every`` steps, the policy mean's return is
estimated on EACH model from the same fixed start states (drawn once per iteration). A validation
counts as an improvement when the return rose on at least ``validation_threshold`` (70 %) of the
models, strictly, against the returns at the last improving validation (the first validation is
the reference); then the reference moves to the new returns. The policy update stops once
``validation_patience`` (25) steps have passed since the last improvement, or after
``trpo_steps`` steps in all. The current policy is kept when it stops (no rollback).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from baselines.mb_common import ModelBasedConfig, ModelBasedMethod
from mbmpo import checkpoint as ckpt
from mbmpo.algo import advantages, make_policy, mean_return, task_batch
from mbmpo.config import PolicyGradientConfig
from mbmpo.envs import EnvSpec
from mbmpo.loop import ActFn, Agent, LoopContext, derive_seed
from mbmpo.optim import MetaObjective, trpo_step
from mbmpo.policies import GaussianMLPPolicy
from mbmpo.rollouts import PROPAGATIONS, StartStateSampler, imagine

METRPO_PROPAGATIONS = tuple(p for p in PROPAGATIONS if p != "task")
"""Member per imagined step: "random" (ME-TRPO), "fixed" (per trajectory), "mean" (ablations)."""


@dataclass(frozen=True)
class METRPOConfig(ModelBasedConfig, PolicyGradientConfig):
    """ME-TRPO settings (defaults: the MB-MPO authors' Figure-2 setting, reference.md section 4)."""

    buffer_capacity: int = 1_000_000
    """FIFO capacity of the real-transition buffer: large enough that the ensemble is refit on ALL
    data, as ME-TRPO does (100 iterations x 4000 steps)."""
    trpo_steps: int = 30
    """TRPO steps per iteration (with ``policy_validation``: the most it may take)."""
    imagined_trajectories: int = 250
    """Imagined trajectories per TRPO step (250 x horizon 200 = 50k imagined steps)."""
    imagined_horizon: int | None = None
    """Imagined rollout length; None = the env's horizon."""
    propagation: str = "random"
    """Which member predicts each imagined step: "random" (a random member per step, ME-TRPO),
    "fixed" (one per trajectory) or "mean"."""
    policy_validation: bool = False
    """Use the original ME-TRPO's policy-validation stopping rule (module docstring)."""
    validation_every: int = 5
    """Validate the policy on every model after this many TRPO steps."""
    validation_threshold: float = 0.7
    """A validation improves when the return rose on at least this fraction of the models."""
    validation_patience: int = 25
    """Stop the policy update this many TRPO steps after the last improving validation."""
    validation_trajectories: int = 50
    """Fixed start states (one trajectory each, per model) of a validation."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_policy_gradient_settings()
        for name in (
            "trpo_steps",
            "imagined_trajectories",
            "validation_every",
            "validation_patience",
            "validation_trajectories",
        ):
            if getattr(self, name) < 1:
                self._fail(name, "must be >= 1")
        if self.imagined_horizon is not None and self.imagined_horizon < 1:
            self._fail("imagined_horizon", "must be null or >= 1")
        if self.propagation not in METRPO_PROPAGATIONS:
            self._fail("propagation", f"must be one of {METRPO_PROPAGATIONS}")
        if self.propagation != "mean" and self.imagined_trajectories < self.ensemble_size:
            self._fail("imagined_trajectories", f"must be >= ensemble_size ({self.ensemble_size})")
        if not 0.0 < self.validation_threshold <= 1.0:
            self._fail("validation_threshold", "must be in (0, 1]")


class PolicyValidation:
    """The original ME-TRPO's stopping rule as a small state machine (see the module docstring).

    Call :meth:`start` with the per-model returns before the first TRPO step, then
    :meth:`update` after each validation; :attr:`stopped` says whether to stop.
    """

    def __init__(self, threshold: float = 0.7, patience: int = 25) -> None:
        self.threshold = threshold
        self.patience = patience
        self.reference: Tensor | None = None
        self.steps_since_improvement = 0
        self.last_fraction = float("nan")

    def start(self, returns: Tensor) -> None:
        """Per-model returns ``[K]`` of the policy before any step (the first reference)."""
        self.reference = returns.detach().clone()
        self.steps_since_improvement = 0

    def update(self, returns: Tensor, steps: int) -> bool:
        """Record a validation ``[K]`` taken ``steps`` TRPO steps after the previous one; returns
        whether it counted as an improvement."""
        if self.reference is None:
            raise RuntimeError("PolicyValidation.update called before start")
        fraction = float((returns > self.reference).float().mean())
        self.last_fraction = fraction
        improved = fraction >= self.threshold
        if improved:
            self.reference = returns.detach().clone()
            self.steps_since_improvement = 0
        else:
            self.steps_since_improvement += steps
        return improved

    @property
    def stopped(self) -> bool:
        """Whether ``patience`` steps have passed without an improving validation."""
        return self.steps_since_improvement >= self.patience


class METRPOAgent:
    """The policy and its TRPO improvement on imagined data (see the module docstring)."""

    improve_phase = "policy_opt"
    collect_return_key = "metrpo/collect_return"

    def __init__(self, env: EnvSpec, config: METRPOConfig, seed: int, device: torch.device) -> None:
        self.env = env
        self.config = config
        self.device = device
        self.policy = make_policy(env, config, seed, device)
        self.no_step = {
            k: torch.zeros_like(v.detach()) for k, v in self.policy.named_params().items()
        }
        self.start_sampler = StartStateSampler(
            env, mode="reset", seed=derive_seed(seed, "start-states")
        )
        self.trpo = config.trpo_config()
        self.horizon = config.imagined_horizon or env.horizon

    # ----- acting ---------------------------------------------------------------------------------
    def _theta(self) -> dict[str, Tensor]:
        return {k: v.detach() for k, v in self.policy.named_params().items()}

    def _sampler(self, params: Mapping[str, Tensor], gen: torch.Generator) -> ActFn:
        policy = self.policy

        def act(obs: Tensor) -> Tensor:
            with torch.no_grad():
                return policy.sample(obs, params, gen)

        return act

    def _mean_actor(self) -> ActFn:
        policy = self.policy

        def act(obs: Tensor) -> Tensor:
            with torch.no_grad():
                return policy.mean_log_std(obs)[0]

        return act

    def collect_act_fn(self, ctx: LoopContext, num_envs: int) -> ActFn:
        """The current policy, sampled."""
        return self._sampler(self._theta(), ctx.generator)

    def eval_act_fn(self, ctx: LoopContext, num_envs: int) -> ActFn:
        """The current policy (sampled, or its mean with ``eval_deterministic``)."""
        if self.config.eval_deterministic:
            return self._mean_actor()
        return self._sampler(self._theta(), ctx.eval_generator)

    # ----- improving ------------------------------------------------------------------------------
    def trpo_iteration(self, ctx: LoopContext) -> dict[str, float]:
        """One TRPO step on a fresh imagined batch ``[1, N, H]``; returns its metrics."""
        cfg = self.config
        t0 = time.perf_counter()
        theta = self._theta()
        start = self.start_sampler.sample(
            (1, cfg.imagined_trajectories), ctx.buffer, ctx.generator, device=ctx.device
        )
        batch = imagine(
            ctx.ensemble,
            self._sampler(theta, ctx.generator),
            start,
            self.horizon,
            self.env,
            cfg.propagation,
            ctx.generator,
        )
        t_imag = time.perf_counter() - t0
        obj = MetaObjective(self.policy, theta, self.no_step, False, None, 1)
        obj.set_post(task_batch(batch, advantages(batch, cfg)))
        loss, grad = obj.loss_and_grad()
        res = trpo_step(obj.x0(), grad, obj.fvp, obj.loss_kl, loss, self.trpo)
        new_theta, _ = obj.split(res.params)
        with torch.no_grad():
            for k, p in self.policy.named_params().items():
                p.copy_(new_theta[k])
        return {
            "metrpo/imagined_return": mean_return(batch),
            "train/loss_before": res.loss_before,
            "train/loss_after": res.loss_after,
            "train/kl": res.kl,
            "train/step_accepted": float(res.accepted),
            "train/backtracks": float(res.backtracks),
            "time/imagine_s": t_imag,
            "time/trpo_s": time.perf_counter() - t0 - t_imag,
        }

    def model_returns(self, ctx: LoopContext, start: Tensor) -> Tensor:
        """Per-model return ``[K]`` of the policy mean from the fixed ``start [N, obs]`` states
        (model k imagines all N trajectories)."""
        k = ctx.ensemble.ensemble_size
        starts = start.unsqueeze(0).expand(k, *start.shape)  # [K, N, obs]: task k on model k
        batch = imagine(
            ctx.ensemble, self._mean_actor(), starts, self.horizon, self.env, "task", ctx.generator
        )
        return batch.rew.sum(-1).mean(-1)

    def improve(self, ctx: LoopContext) -> dict[str, float]:
        """``trpo_steps`` TRPO steps (fewer when policy validation stops the update)."""
        cfg = self.config
        validation: PolicyValidation | None = None
        fixed_start: Tensor | None = None
        t_val = 0.0
        if cfg.policy_validation:
            t0 = time.perf_counter()
            fixed_start = self.start_sampler.sample(
                (cfg.validation_trajectories,), ctx.buffer, ctx.generator, device=ctx.device
            )
            validation = PolicyValidation(cfg.validation_threshold, cfg.validation_patience)
            validation.start(self.model_returns(ctx, fixed_start))
            t_val += time.perf_counter() - t0
        rows: list[dict[str, float]] = []
        improvements = 0
        for step in range(1, cfg.trpo_steps + 1):
            rows.append(self.trpo_iteration(ctx))
            if (
                validation is not None
                and fixed_start is not None
                and step % cfg.validation_every == 0
            ):
                t0 = time.perf_counter()
                improvements += validation.update(
                    self.model_returns(ctx, fixed_start), cfg.validation_every
                )
                t_val += time.perf_counter() - t0
                if validation.stopped:
                    break
        out: dict[str, float] = {}
        for key in rows[0]:
            vals = [r[key] for r in rows]
            if key.startswith("time/"):
                out[key] = float(sum(vals))
            elif key == "metrpo/imagined_return":
                out[key] = vals[-1]
            else:
                out[key] = float(sum(vals) / len(vals))
        accepted = [r for r in rows if r["train/step_accepted"] > 0]
        out["train/kl"] = (
            float(sum(r["train/kl"] for r in accepted) / len(accepted)) if accepted else 0.0
        )
        out["train/trpo_steps"] = float(len(rows))
        out["policy/std_mean"] = float(self.policy.log_std.detach().exp().mean())
        if validation is not None:
            out["metrpo/validation_stopped"] = float(validation.stopped)
            out["metrpo/validation_improvements"] = float(improvements)
            out["time/validation_s"] = t_val
        return out

    # ----- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": {k: v.detach().cpu().clone() for k, v in self.policy.state_dict().items()},
            "start_sampler": ckpt.start_sampler_state(self.start_sampler),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        ckpt.load_start_sampler_state(self.start_sampler, state["start_sampler"])


class METRPO(ModelBasedMethod):
    """ME-TRPO behind :class:`mbmpo.protocols.Method` (registered as ``"baselines.metrpo:METRPO"``).

    ``config`` is a mapping of :class:`METRPOConfig` fields (unknown keys raise).
    """

    config_class = METRPOConfig
    config: METRPOConfig

    @property
    def policy(self) -> GaussianMLPPolicy:
        return self.agent.policy  # type: ignore[attr-defined, no-any-return]

    def make_agent(self) -> Agent:
        return METRPOAgent(self.env, self.config, self.seed, self.device)
